"""`lipdub data prepare` + `stats` through the CLI: the training layout, split by episode, aligned samples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from lipdub import faces, media
from lipdub.audio.mel import melspectrogram
from lipdub.cli import main
from lipdub.data.store import iter_clips

PREP = Path(__file__).parent / "data" / "prep"
pytestmark = pytest.mark.slow  # the whole chain runs once for the module (~35 s on 2 busy cores)


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path]:
    """Two 'episodes' of the host and one of another person, run through cut -> filter -> prepare."""
    base = tmp_path_factory.mktemp("chain")
    episodes = base / "episodes"
    episodes.mkdir()
    shutil.copy(PREP / "host_20s.mp4", episodes / "ep1.mp4")
    shutil.copy(PREP / "host_20s.mp4", episodes / "ep2.mp4")
    shutil.copy(PREP / "guest_5s.mp4", episodes / "guest.mp4")
    clips, kept, ds = base / "clips", base / "kept", base / "dataset"
    assert main(["data", "cut", str(episodes), "-o", str(clips), "-j", "2"]) == 0
    assert main(["data", "filter", str(clips), "--person", str(PREP / "host.jpg"), "-o", str(kept), "-j", "2"]) == 0
    assert main(["data", "prepare", str(kept), "-o", str(ds), "--val-split", "0.3", "-j", "2"]) == 0
    return {"episodes": episodes, "clips": clips, "kept": kept, "dataset": ds}


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


def test_layout_split_by_episode_and_manifest(chain):
    ds = chain["dataset"]
    train, val = _lines(ds / "filelists" / "train.txt"), _lines(ds / "filelists" / "val.txt")
    assert train and val
    train_src, val_src = {x.split("/")[0] for x in train}, {x.split("/")[0] for x in val}
    assert not train_src & val_src
    assert {s.split("-")[0] for s in train_src | val_src} == {"ep1", "ep2"}  # the other person is gone
    manifest = json.loads((ds / "manifest.json").read_text())
    assert manifest["format"] == "lipdub-dataset" and manifest["fps"] == 25 and manifest["sample_rate"] == 16000
    assert manifest["clips"] == len(train) + len(val)
    frames = 0
    for key in train + val:
        d = ds / key
        info = json.loads((d / "clip.json").read_text())
        n = info["n_frames"]
        frames += n
        assert sorted(int(p.stem) for p in d.glob("*.jpg")) == list(range(n))
        audio, sr = sf.read(d / "audio.wav", dtype="int16")
        assert sr == 16000 and audio.ndim == 1 and len(audio) == n * 640
        mel = np.load(d / "mel.npy")
        assert mel.dtype == np.float32
        np.testing.assert_allclose(mel, melspectrogram(audio.astype(np.float32) / 32768), atol=1e-4)
        assert max(cv2.imread(str(d / "0.jpg")).shape[:2]) <= 256
        assert manifest["sources"][key.split("/")[0]]["split"] == ("val" if key in val else "train")
    assert manifest["frames"] == frames
    assert abs(manifest["hours"] - frames / 25 / 3600) < 1e-3


def test_training_dataset_yields_aligned_samples(chain):
    from lipdub.train.dataset import LipSyncDataset, load_face

    ds = chain["dataset"]
    data = LipSyncDataset(ds, "train")
    item = data[len(data) // 2]
    c, s = data.locate(len(data) // 2)
    clip_dir = data.clips[c].path
    assert item["window"].shape == (5, 96, 96, 3)
    np.testing.assert_array_equal(item["window"][0].numpy(), load_face(clip_dir / f"{s}.jpg", 96))
    mel = np.load(clip_dir / "mel.npy")
    start = int(80 * s / 25)
    np.testing.assert_array_equal(item["mel"].numpy()[0], mel[:, start:start + 16])

    # the sample's frame and sound are the source episode's frame and sound at the same instant
    info = json.loads((clip_dir / "clip.json").read_text())
    src = Path(info["origin"])
    t0 = round(info["start"] * 25) + s  # source frame index of the sample's first frame
    wav, _ = sf.read(clip_dir / "audio.wav", dtype="float32")
    src_wav = media.load_audio(src)
    mine = wav[s * 640: (s + 5) * 640]
    lags = list(range(-640, 641, 8))
    scores = [float(np.dot(mine, src_wav[t0 * 640 + lag: t0 * 640 + lag + len(mine)])) for lag in lags]
    assert abs(lags[int(np.argmax(scores))]) <= 16
    tracks = faces.analyze(src, fps=25)
    crop = cv2.imread(str(clip_dir / f"{s}.jpg"))[..., ::-1].astype(np.float32)
    diffs = []
    for k in range(t0 - 3, t0 + 4):
        frame = next(media.iter_frames(src, fps=25, start=k))
        face = max(tracks.faces_in(k), key=lambda f: f.area)
        top, bottom, left, right = faces.crop_box(face, frame.shape)
        ref = cv2.resize(frame[top:bottom, left:right], (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_AREA)
        diffs.append(float(np.abs(ref.astype(np.float32) - crop).mean()))
    assert int(np.argmin(diffs)) == 3 and diffs[3] < 6


def test_rerun_skips_prepared_clips_and_stats_report_the_set(chain, capsys):
    ds = chain["dataset"]
    stamps = {p: p.stat().st_mtime_ns for p in ds.rglob("clip.json")}
    assert main(["data", "prepare", str(chain["kept"]), "-o", str(ds), "--val-split", "0.3", "-j", "1"]) == 0
    assert {p: p.stat().st_mtime_ns for p in ds.rglob("clip.json")} == stamps
    capsys.readouterr()
    assert main(["data", "stats", str(ds), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    manifest = json.loads((ds / "manifest.json").read_text())
    assert stats["clips"] == manifest["clips"] and stats["sources"] == 2
    assert abs(stats["hours"] - manifest["hours"]) < 1e-3
    assert stats["faces_per_frame"] == 1.0
    assert stats["sync_offsets"] == {} and stats["sync_measured"] == 0  # no --sync-expert: nothing measured
    assert main(["data", "stats", str(ds)]) == 0
    assert "sync offsets      not measured" in capsys.readouterr().out
    assert stats["train_clips"] + stats["val_clips"] == manifest["clips"]
    # the episodes themselves were never touched, and every kept clip made it into the dataset
    assert sorted(p.name for p in chain["episodes"].iterdir()) == ["ep1.mp4", "ep2.mp4", "guest.mp4"]
    assert len(list(iter_clips(chain["kept"]))) == manifest["clips"]
