"""Training on CPU: dataset windows, a tiny expert run that learns sync, the generator, resume, DDP, eval, animate.

The dataset is built here, in the documented layout, from two real talking-head snippets (fixed face crops,
tests/data/train/): 4-second clips; the held-out ('val') clips are later times of the same two speakers.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

DATA = Path(__file__).parent / "data" / "train"
FPS = 25
# source name -> (snippet, [(start s, end s, split)])
CLIPS = {
    "man": ("man_talking_crop128.mp4", [(0, 4, "train"), (4, 8, "train"), (8, 12, "train"), (12, 16, "train"),
                                        (16, 20, "val")]),
    "vox": ("voxceleb_man_crop128.mp4", [(0, 4, "train"), (4, 8, "train"), (8, 11.96, "val")]),
}


def _decode(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """All frames (BGR uint8) and the 16 kHz mono float32 audio of a snippet."""
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        res = av.AudioResampler(format="flt", layout="mono", rate=16000)
        chunks = [r.to_ndarray().reshape(-1) for f in c.decode(audio=0) for r in res.resample(f)]
        chunks += [r.to_ndarray().reshape(-1) for r in res.resample(None)]
    return frames, np.concatenate(chunks)


def build_dataset(root: Path, cache_mel: bool = True) -> Path:
    """A tiny dataset in the layout `lipdub data prepare` writes (val sources: later times of the same people).

    With cache_mel=False the mel.npy files are left out (the loader must compute and cache them).
    """
    from lipdub.audio.mel import melspectrogram

    lists: dict[str, list[str]] = {"train": [], "val": []}
    sources, total = {}, 0
    for source, (snippet, parts) in CLIPS.items():
        frames, wav = _decode(DATA / snippet)
        for i, (start, end, split) in enumerate(parts):
            a, b = round(start * FPS), min(round(end * FPS), len(frames), len(wav) // 640)
            name = f"{source}_{split}/{i:03d}"
            clip_dir = root / name
            clip_dir.mkdir(parents=True)
            for k, img in enumerate(frames[a:b]):
                cv2.imwrite(str(clip_dir / f"{k}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            audio = wav[a * 640:b * 640]
            pcm = (np.clip(audio, -1, 1 - 1 / 32768) * 32768).astype("<i2")
            with wave.open(str(clip_dir / "audio.wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16000)
                w.writeframes(pcm.tobytes())
            if cache_mel:
                np.save(clip_dir / "mel.npy", melspectrogram(pcm.astype(np.float32) / 32768))
            (clip_dir / "clip.json").write_text(json.dumps(
                {"source": f"{source}_{split}", "clip": f"{i:03d}", "n_frames": b - a, "fps": FPS,
                 "start": start, "end": end, "offset_frames": 0}))
            lists[split].append(name)
            sources[f"{source}_{split}"] = {"clips": sources.get(f"{source}_{split}", {}).get("clips", 0) + 1,
                                            "split": split}
            total += b - a
    (root / "filelists").mkdir()
    for split, names in lists.items():
        (root / "filelists" / f"{split}.txt").write_text("\n".join(names) + "\n")
    (root / "manifest.json").write_text(json.dumps(
        {"format": "lipdub-dataset", "version": 1, "fps": FPS, "sample_rate": 16000,
         "clips": sum(map(len, lists.values())), "frames": total, "hours": total / FPS / 3600,
         "sources": sources}))
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("train") / "dataset")


# --- dataset: the reference's sampling facts

def test_generator_sample_follows_the_reference_windows(dataset: Path) -> None:
    from lipdub.train.dataset import LipSyncDataset, load_face

    ds = LipSyncDataset(dataset, "train")
    assert all(s >= 1 for _, s in ds.index)  # frame 0 has no window one frame earlier
    i = 37
    item = ds[i]
    c, s = ds.locate(i)
    clip = ds.clips[c]
    mel = np.load(clip.path / "mel.npy")
    assert item["window"].shape == (5, 96, 96, 3) and item["ref"].shape == (5, 96, 96, 3)
    for k in range(5):  # frame s+k: its own window starts one frame earlier than at inference
        m = int(80 * (s + k - 1) / FPS)
        np.testing.assert_array_equal(item["indiv_mels"][k, 0].numpy(), mel[:, m:m + 16])
        truth = load_face(clip.path / f"{s + k}.jpg", 96)  # BGR, resized from 128 px
        np.testing.assert_array_equal(item["window"][k].numpy(), truth)
    e = int(80 * s / FPS)  # the expert's window: the first frame's own index
    np.testing.assert_array_equal(item["mel"][0].numpy(), mel[:, e:e + 16])
    assert not np.array_equal(item["ref"].numpy(), item["window"].numpy())  # from elsewhere in the clip
    again = ds[i]
    np.testing.assert_array_equal(again["ref"].numpy(), item["ref"].numpy())  # reproducible draw
    refs = {ds.other_start(ds.rng(j), c, s) for j in range(50)}
    assert s not in refs and len(refs) > 10


def test_expert_samples_are_half_aligned_and_negatives_come_from_the_same_clip(dataset: Path) -> None:
    from lipdub.train.dataset import ExpertDataset

    ds = ExpertDataset(dataset, "train")
    labels = [float(ds[i]["label"]) for i in range(200)]
    assert 0.35 < np.mean(labels) < 0.65
    for i in range(40):
        item, (c, s) = ds[i], ds.locate(i)
        assert item["frames"].shape == (5, 48, 96, 3)  # lower halves only
        aligned = ds.lower(c, s)
        assert np.array_equal(item["frames"].numpy(), aligned.numpy()) == (float(item["label"]) == 1.0)
    pairs = ExpertDataset(dataset, "val", pairs=True)
    item = pairs[3]
    assert set(item) == {"frames", "shifted", "mel"}
    assert not np.array_equal(item["frames"].numpy(), item["shifted"].numpy())


def test_missing_mel_is_computed_once_and_cached(tmp_path: Path) -> None:
    from lipdub.audio.mel import melspectrogram
    from lipdub.train.dataset import LipSyncDataset, _read_wav16k

    root = build_dataset(tmp_path / "ds", cache_mel=False)
    clip = root / "vox_val" / "002"
    assert not (clip / "mel.npy").exists()
    LipSyncDataset(root, "val")
    cached = np.load(clip / "mel.npy")
    np.testing.assert_array_equal(cached, melspectrogram(_read_wav16k(clip / "audio.wav")))


def test_a_dataset_without_filelist_or_with_too_short_clips_is_a_clear_error(tmp_path: Path, dataset: Path) -> None:
    from lipdub.errors import LipdubError
    from lipdub.train.dataset import LipSyncDataset

    with pytest.raises(LipdubError, match="filelist"):
        LipSyncDataset(tmp_path, "train")
    (tmp_path / "filelists").mkdir()
    (tmp_path / "filelists" / "train.txt").write_text("missing/000\n")
    with pytest.raises(LipdubError, match="missing"):
        LipSyncDataset(tmp_path, "train")
