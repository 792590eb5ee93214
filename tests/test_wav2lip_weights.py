"""`lipdub weights` fetches resumably from a (local) server, verifies every byte, and never leaves a bad file."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lipdub.cli import main
from lipdub.engines.wav2lip import weights
from lipdub.engines.wav2lip.protocol import write_protocol_checkpoint
from lipdub.errors import LipdubError

NAME = "visual_quality_disc"  # the smallest official network: its protocol checkpoint stands in for the real file


class Server(BaseHTTPRequestHandler):
    """Serves `files` with HTTP Range support; records the Range header of every request."""

    files: dict[str, bytes] = {}
    ranges: list[str | None] = []
    honour_range = True

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        wanted = self.headers.get("Range")
        type(self).ranges.append(wanted)
        start = int(wanted.removeprefix("bytes=").split("-")[0]) if wanted and self.honour_range else 0
        if start >= len(data) and wanted:
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def payloads(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("served")
    disc = write_protocol_checkpoint(root / "disc.pth", "disc_qual").read_bytes()
    corrupt = bytearray(disc)
    corrupt[len(corrupt) // 2: len(corrupt) // 2 + 64] = bytes(64)
    sync = write_protocol_checkpoint(root / "sync.pth", "syncnet").read_bytes()
    return {"/disc.pth": disc, "/corrupt.pth": bytes(corrupt), "/sync.pth": sync}


@pytest.fixture(scope="module")
def base_url(payloads):
    Server.files = payloads
    server = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LIPDUB_HOME", str(tmp_path / "home"))
    Server.ranges = []
    Server.honour_range = True
    return tmp_path / "home"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_fetch_verifies_and_lands_in_lipdub_home(home, base_url, payloads):
    data = payloads["/disc.pth"]
    path = weights.fetch(NAME, url=base_url + "/disc.pth", sha256=sha(data), progress=False)
    assert path == home / "weights" / "visual_quality_disc.pth"
    assert path.read_bytes() == data
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no .part left
    assert weights.resolve_checkpoint(NAME) == path


def test_resume_after_partial_file(home, base_url, payloads):
    data = payloads["/disc.pth"]
    part = home / "weights" / "visual_quality_disc.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[: len(data) // 3])
    path = weights.fetch(NAME, url=base_url + "/disc.pth", sha256=sha(data), progress=False)
    assert Server.ranges == [f"bytes={len(data) // 3}-"]  # only the rest was asked for
    assert path.read_bytes() == data and not part.exists()


def test_server_without_range_support_restarts(home, base_url, payloads):
    data = payloads["/disc.pth"]
    part = home / "weights" / "visual_quality_disc.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes")
    Server.honour_range = False
    path = weights.fetch(NAME, url=base_url + "/disc.pth", sha256=sha(data), progress=False)
    assert path.read_bytes() == data


def test_corrupted_bytes_rejected_and_deleted(home, base_url, payloads):
    with pytest.raises(LipdubError, match="sha256 mismatch.*partial file deleted"):
        weights.fetch(NAME, url=base_url + "/corrupt.pth", sha256=sha(payloads["/disc.pth"]), progress=False)
    assert not any((home / "weights").iterdir())


def test_first_download_is_checked_and_its_hash_recorded(home, base_url, payloads):
    path = weights.fetch(NAME, url=base_url + "/disc.pth", progress=False)  # no published hash: trust on first use
    assert weights.recorded_sha256(path) == sha(payloads["/disc.pth"])
    row = next(r for r in weights.status() if r["name"] == NAME)
    assert row["path"] == str(path) and row["sha256_origin"] == "recorded"
    # a later fetch from a mirror serving other bytes is refused
    path.unlink()
    with pytest.raises(LipdubError, match="sha256 mismatch"):
        weights.fetch(NAME, url=base_url + "/corrupt.pth", progress=False)
    assert not path.exists()


def test_first_download_of_the_wrong_network_is_refused(home, base_url):
    with pytest.raises(LipdubError, match="not a visual_quality_disc checkpoint.*lipsync_expert"):
        weights.fetch(NAME, url=base_url + "/sync.pth", progress=False)
    assert not any((home / "weights").iterdir())


def test_unreachable_source_is_a_clear_error(base_url):
    with pytest.raises(LipdubError, match="could not download.*--url"):
        weights.fetch(NAME, url=base_url + "/missing.pth", progress=False)


def test_s3fd_has_a_published_hash_and_size():
    s3fd = weights.WEIGHTS["s3fd"]
    assert s3fd.sha256.startswith("619a316812") and s3fd.urls[0].endswith("s3fd-619a316812.pth")
    assert s3fd.size == 89_843_225


def test_cli_list_fetch_path(home, base_url, payloads, capsys):
    assert main(["weights", "path", NAME]) == 1
    assert "not downloaded" in capsys.readouterr().err
    with pytest.raises(LipdubError, match="lipdub weights fetch wav2lip_gan"):
        weights.resolve_checkpoint("wav2lip_gan")
    url, digest = base_url + "/disc.pth", sha(payloads["/disc.pth"])
    assert main(["weights", "fetch", NAME, "--url", url, "--sha256", digest, "--quiet"]) == 0
    stored = home / "weights" / "visual_quality_disc.pth"
    assert capsys.readouterr().out.strip() == str(stored)
    assert main(["weights", "path", NAME]) == 0
    assert capsys.readouterr().out.strip() == str(stored)
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name in weights.WEIGHTS:
        assert name in out
    assert f"present: {stored}" in out and weights.WEIGHTS["s3fd"].sha256 in out
