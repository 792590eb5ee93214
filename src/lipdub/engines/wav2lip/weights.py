"""The official Wav2Lip/S3FD checkpoints: where they come from, how to verify them, and a resumable fetch.

Hashes: S3FD's SHA-256 is published (its file name carries the hash prefix, torch-hub style, and the full value
appears in public download manifests). For the four Wav2Lip checkpoints no SHA-256 is published by the authors
or found in public manifests, and the original OneDrive links have moved more than once. So they are verified
"trust on first use": the first download must load as a checkpoint of the right network (key names and shapes),
and its SHA-256 is then recorded beside the file (`<file>.sha256`); every later fetch, from any mirror, must
match that record. `--sha256` gives an expected hash up front instead.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lipdub.errors import LipdubError
from lipdub.hashing import file_sha256
from lipdub.settings import Settings, load_settings

_CHUNK = 1 << 20
_USER_AGENT = "lipdub-weights/1"


@dataclass(frozen=True)
class OfficialWeights:
    """One official checkpoint file."""

    name: str
    filename: str
    kind: str  # network: wav2lip | syncnet | disc_qual | s3fd
    description: str
    urls: tuple[str, ...]  # tried in order: official first, then known mirrors
    sha256: str | None = None  # published value; None -> trust on first use (see module doc)
    size: int | None = None  # exact bytes when known
    size_note: str = ""  # what is known about the size when `size` is not


_ONEDRIVE = "https://iiitaphyd-my.sharepoint.com/personal/radrabha_m_research_iiit_ac_in/_layouts/15/download.aspx?share="

WEIGHTS: dict[str, OfficialWeights] = {
    w.name: w
    for w in (
        OfficialWeights(
            "wav2lip", "wav2lip.pth", "wav2lip", "Wav2Lip generator: most accurate lip-sync",
            (_ONEDRIVE + "Eb3LEzbfuKlJiR600lQWRxgBIY27JZg80f7V9jtMfbNDaQ",
             "https://huggingface.co/numz/wav2lip_studio/resolve/main/Wav2lip/wav2lip.pth"),
            size_note="~146 MB weights only; up to ~416 MB with optimizer state",
        ),
        OfficialWeights(
            "wav2lip_gan", "wav2lip_gan.pth", "wav2lip", "Wav2Lip + GAN: slightly weaker sync, better visual quality",
            (_ONEDRIVE + "EdjI7bZlgApMqsVoEUUXpLsBxqXbn5z8VTmoxp55YNDcIA",
             "https://huggingface.co/numz/wav2lip_studio/resolve/main/Wav2lip/wav2lip_gan.pth",
             "https://huggingface.co/camenduru/Wav2Lip/resolve/main/checkpoints/wav2lip_gan.pth"),
            size_note="145,829,145 bytes reported for a public mirror copy",
        ),
        OfficialWeights(
            "lipsync_expert", "lipsync_expert.pth", "syncnet", "SyncNet lip-sync expert (training loss, sync scores)",
            (_ONEDRIVE + "EQRvmiZg-HRAjvI6zqN9eTEBP74KefynCwPWVmF57l-AYA",
             "https://huggingface.co/camenduru/Wav2Lip/resolve/main/checkpoints/lipsync_expert.pth"),
            size_note="unknown (66 MB of weights, more with optimizer state)",
        ),
        OfficialWeights(
            "visual_quality_disc", "visual_quality_disc.pth", "disc_qual",
            "Visual quality discriminator (GAN training only)",
            (_ONEDRIVE + "EQVqH88dTm1HjlK11eNba5gBbn15WMS0B0EZbDBttqrqkg",),
            size_note="unknown (56 MB of weights, more with optimizer state)",
        ),
        OfficialWeights(
            "s3fd", "s3fd.pth", "s3fd", "S3FD face detector (the reference's detector)",
            ("https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",),
            sha256="619a31681264d3f7f7fc7a16a42cbbe8b23f31a256f75a366e5a1bcd59b33543",
            size=89_843_225,
        ),
    )
}


def spec(name: str) -> OfficialWeights:
    """The table entry for `name`, or a LipdubError listing the known names."""
    try:
        return WEIGHTS[name]
    except KeyError:
        raise LipdubError(f"unknown weights {name!r} (known: {', '.join(WEIGHTS)})") from None


def weights_dir() -> Path:
    """Where fetched weights live: Settings().weights_dir (moves with LIPDUB_HOME)."""
    return load_settings(Settings).weights_dir


def weights_path(name: str) -> Path:
    """The path the weights `name` are (or would be) stored at."""
    return weights_dir() / spec(name).filename


def recorded_sha256(path: Path) -> str | None:
    """The SHA-256 recorded beside `path` at its first download, if any."""
    side = path.with_name(path.name + ".sha256")
    return side.read_text().split()[0] if side.is_file() else None


def expected_sha256(name: str) -> str | None:
    """Published hash, else the one recorded at the first download, else None."""
    return spec(name).sha256 or recorded_sha256(weights_path(name))


def resolve_checkpoint(checkpoint: str | os.PathLike[str]) -> Path:
    """A checkpoint argument -> a file: an existing path, else a name from `lipdub weights list`, with or without
    its `.pth` (`wav2lip_gan`, `wav2lip_gan.pth`), found in weights_dir(). Anything else comes back unchanged (the
    loader reports it as not found)."""
    path = Path(checkpoint).expanduser()
    name = path.name.removesuffix(".pth")
    if path.exists() or path.parent != Path(".") or name not in WEIGHTS:
        return path
    stored = weights_path(name)
    if not stored.is_file():
        raise LipdubError(f"not found here, and official weights {name!r} are not downloaded yet: run "
                          f"`lipdub weights fetch {name}`", checkpoint)
    return stored


def resolve_fields(config, *names: str):
    """A copy of the pydantic `config` whose fields `names` (paths to weights, e.g. `init`, `expert`) go through
    resolve_checkpoint."""
    found = {n: resolve_checkpoint(getattr(config, n)) for n in names if getattr(config, n, None) is not None}
    return config.model_copy(update=found)


def _download(url: str, part: Path, progress: bool) -> None:
    """Append the rest of `url` to `part` (HTTP Range when part already has bytes), with a tqdm bar."""
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to fetch: the part file is already complete
            return
        raise
    with response:
        if have and response.status != 206:  # server ignored the range: start again
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as out, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removesuffix(".part"), disable=not progress, leave=False,
        ) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))


def _check_structure(name: str, part: Path, target: Path) -> None:
    """Trust on first use: the file must load as a checkpoint of the right network."""
    from lipdub.engines.wav2lip.checkpoint import KIND_NAMES, guess_kind, load_state_dict

    kind = spec(name).kind
    state = load_state_dict(part)  # CheckpointError for anything unreadable
    found = guess_kind(state)
    if found != kind:
        what = KIND_NAMES.get(found, found) if found else "no known network"
        raise LipdubError(f"downloaded file is not a {name} checkpoint (it looks like {what})", target)


def fetch(name: str, url: str | None = None, sha256: str | None = None, progress: bool = True) -> Path:
    """Download official weights `name` into weights_dir(), resumably, verified, renamed into place atomically.

    `url` replaces the table's sources; `sha256` the expected hash. A hash mismatch deletes the partial file.
    """
    entry = spec(name)
    target = weights_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    expected = (sha256 or expected_sha256(name) or "").lower() or None
    if target.is_file() and (expected is None or file_sha256(target) == expected):
        return target  # present and verified (or nothing to verify it against)
    part = target.with_name(target.name + ".part")
    errors = []
    for source in ([url] if url else list(entry.urls)):
        try:
            _download(source, part, progress)
            break
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
            errors.append(f"{source}: {getattr(err, 'reason', err)}")
    else:
        raise LipdubError(f"could not download {name} ({'; '.join(errors)}); try --url with a mirror", target)
    got = file_sha256(part)
    if expected and got != expected:
        part.unlink(missing_ok=True)
        raise LipdubError(f"sha256 mismatch for {name}: got {got}, expected {expected}; partial file deleted", target)
    if not expected:
        try:
            _check_structure(name, part, target)
        except LipdubError:
            part.unlink(missing_ok=True)
            raise
        side = target.with_name(target.name + ".sha256")
        side.write_text(f"{got}  {target.name}  (recorded at first download from {url or 'the official table'})\n")
    os.replace(part, target)
    return target


def status() -> list[dict[str, object]]:
    """One row per official checkpoint: name, kind, size, sha256 (and where it comes from), path if present."""
    rows = []
    for name, entry in WEIGHTS.items():
        path = weights_path(name)
        recorded = recorded_sha256(path)
        rows.append({
            "name": name,
            "kind": entry.kind,
            "source": entry.urls[0],
            "mirrors": len(entry.urls) - 1,
            "size": f"{entry.size:,} B" if entry.size else (entry.size_note or "unknown"),
            "sha256": entry.sha256 or recorded or "not published: recorded at first fetch",
            "sha256_origin": "published" if entry.sha256 else ("recorded" if recorded else "none"),
            "path": str(path) if path.is_file() else None,
        })
    return rows
