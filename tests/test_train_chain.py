"""The whole fine-tuning chain on one real episode, through the CLI: cut -> filter -> prepare (split by time
inside the episode) -> stats -> train expert -> train generator -> animate --checkpoint.

Everything is tiny (a 20 s episode, 2 training steps per network at batch 2): this shows the steps fit
together; what each step does well is shown by its own tests (test_data_*, test_train*).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_train import lipdub

from lipdub import media
from lipdub.data.prepare import GAP_S
from lipdub.data.store import iter_clips
from lipdub.faces import detect_faces

PREP = Path(__file__).parent / "data" / "prep"
TINY = ["--batch-size", 2, "--max-steps", 2, "--eval-steps", 1, "--num-workers", 0, "--device", "cpu",
        "--no-progress"]
pytestmark = pytest.mark.slow


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


def _prepare_one_episode(base: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """cut + filter + prepare one episode; a split far from what was asked is refused first."""
    episodes, clips, kept, ds = base / "episodes", base / "clips", base / "kept", base / "dataset"
    episodes.mkdir()
    shutil.copy(PREP / "host_20s.mp4", episodes / "ep1.mp4")
    assert lipdub("data", "cut", episodes, "-o", clips, "-j", 1) == 0
    capsys.readouterr()
    assert lipdub("data", "filter", clips, "--person", PREP / "host.jpg", "-o", f"{kept}/", "-j", 1) == 0
    assert f"report: {kept / 'report.json'}\n" in capsys.readouterr().out  # no '//' from the trailing slash
    n_kept = len(list(iter_clips(kept)))
    assert n_kept >= 3
    assert lipdub("data", "prepare", kept, "-o", ds, "--val-split", 0.02, "-j", 1) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # (above it: the progress bar)
    assert err.startswith("lipdub: error: ") and "by time inside the one source video" in err
    assert "--force-split" in err
    assert lipdub("data", "prepare", kept, "-o", ds, "--val-split", 0.3, "-j", 1) == 0
    out = capsys.readouterr().out
    assert f"{n_kept} already done" in out and "by time inside the one source video" in out
    return ds


def test_one_episode_from_cut_to_animate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = _prepare_one_episode(tmp_path, capsys)
    train, val = _lines(ds / "filelists" / "train.txt"), _lines(ds / "filelists" / "val.txt")
    assert train and val
    span = {key: json.loads((ds / key / "clip.json").read_text()) for key in train + val}
    # whole clips, the held-out ones last, and a gap between so no sentence is in both
    assert min(span[k]["start"] for k in val) - max(span[k]["end"] for k in train) >= GAP_S
    split = json.loads((ds / "manifest.json").read_text())["split"]
    assert split["by"] == "time" and 0.15 <= split["val_fraction"] <= 0.6
    assert lipdub("data", "stats", ds) == 0
    assert "by time" in capsys.readouterr().out

    runs = tmp_path / "runs"
    assert lipdub("train", "expert", ds, "-o", runs / "expert", *TINY) == 0
    assert lipdub("train", "generator", ds, "--expert", runs / "expert" / "best.pth", "-o", runs / "gen",
                  *TINY) == 0
    assert "generator: step 2" in capsys.readouterr().out

    wav, sr = sf.read(ds / val[0] / "audio.wav", dtype="float32")
    sf.write(tmp_path / "speech.wav", wav[:sr], sr)  # 1 s of held-out speech
    out = tmp_path / "out.mp4"
    assert lipdub("animate", PREP / "host.jpg", tmp_path / "speech.wav", "-o", out, "--engine", "wav2lip",
                  "--checkpoint", runs / "gen" / "last.pth", "--device", "cpu", "-q") == 0
    frames = list(media.iter_frames(out))
    assert len(frames) == 25 and abs(len(media.load_audio(out)) - sr) < 0.05 * sr
    photo = media.read_image(PREP / "host.jpg")
    x1, y1, x2, y2 = (int(v) for v in detect_faces(photo)[0].box[:4])
    mouth = (slice((y1 + y2) // 2 + (y2 - y1) // 8, y2), slice(x1 + (x2 - x1) // 4, x2 - (x2 - x1) // 4))
    diff = np.abs(frames[12][mouth].astype(np.float32) - photo[mouth].astype(np.float32)).mean()
    assert diff > 3  # the trained generator (2 steps from scratch: a blur) painted the mouth
