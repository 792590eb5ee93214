"""A video's first run (cold face cache) renders while its faces are analysed, and gives exactly the frames the
two-pass run (faces from the cache, then rendering) gives: when the face chosen on the first frames is the whole
video's, and when it is not (the speculative output is discarded and the video rendered again)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lipdub import faces, media
from lipdub.pipeline import AnimateRequest, animate

DATA = Path(__file__).parent / "data"
TALK = DATA / "pipeline" / "talk_2s.mp4"  # 50 frames, one man talking
ABA = DATA / "faces" / "cut_aba.mp4"  # woman (frames 0-24) | man (25-49) | woman (50-74)
SPEECH = DATA / "viseme" / "dutch_vl04108.flac"


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    """3.2 s of the speech (80 frames): longer than the one-face video (which then plays backward), as long as
    the others."""
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    media.write_audio(path, media.load_audio(SPEECH)[: int(3.2 * 16000)], 16000)
    return path


def run(video: Path, speech: Path, out: Path) -> tuple[list[np.ndarray], list[dict]]:
    """`animate` (viseme engine) into lossless PNGs; their pixels and the speakers' report."""
    out.mkdir()
    result = animate(AnimateRequest(media=video, audio=speech, output=out / "%04d.png", engine="viseme"))
    return [np.asarray(Image.open(f).convert("RGB")) for f in sorted(out.glob("*.png"))], result.speakers


def assert_same(cold: list[np.ndarray], warm: list[np.ndarray]) -> None:
    assert len(cold) == len(warm) > 0
    differ = [i for i, (a, b) in enumerate(zip(cold, warm, strict=True)) if not np.array_equal(a, b)]
    assert not differ, f"frames {differ} differ between the overlapped and the two-pass run"


def changed(frames: list[np.ndarray], video: Path) -> list[int]:
    """Output frames that differ from the source frame they show (the mouth was animated)."""
    source = media.iter_frames(video)
    return [i for i, (out, src) in enumerate(zip(frames, source, strict=False))
            if np.abs(out.astype(int) - src.astype(int)).max() > 8]


# one talking head; and woman | man | woman, where her second shot is a new track that must join her person
@pytest.mark.parametrize("video", [TALK, ABA], ids=["one_face", "cuts"])
def test_cold_run_overlapped_with_the_analysis_equals_the_two_pass_run(lipdub_home, tmp_path, caplog, speech,
                                                                       video):
    assert not faces.is_cached(video)
    with caplog.at_level(logging.INFO, logger="lipdub.pipeline"):
        cold, cold_speakers = run(video, speech, tmp_path / "cold")
    assert "faces analysed while rendering" in caplog.text
    assert "rendered again" not in caplog.text  # the speculation held: one render
    assert faces.is_cached(video)  # the analysis was stored as a separate pass stores it
    warm, warm_speakers = run(video, speech, tmp_path / "warm")  # the two-pass path: faces from the cache, then render
    assert_same(cold, warm)
    assert cold_speakers[0]["face"] == warm_speakers[0]["face"]
    moved = changed(cold, video)
    assert len(moved) > 25, "the speaking face was animated"
    if video == ABA:
        assert any(i < 25 for i in moved) and any(50 <= i < 75 for i in moved) and not any(25 <= i < 50 for i in moved)


@pytest.fixture
def man_longest(tmp_path) -> Path:
    """The woman for 25 frames, then the man for 50 (his shot of cut_aba played forward, then backward): the
    default rule chooses him, who is not on screen in the frames a first batch is rendered from."""
    shots = list(media.iter_frames(ABA))
    path = tmp_path / "woman_then_man.mp4"
    with media.VideoWriter(path, 25, crf=10) as writer:
        for frame in shots[:50] + shots[25:50][::-1]:
            writer.write(frame)
    return path


def test_a_wrong_first_guess_is_discarded_and_the_result_is_the_two_pass_one(lipdub_home, tmp_path, man_longest,
                                                                            caplog, speech):
    with caplog.at_level(logging.INFO, logger="lipdub.pipeline"):
        cold, cold_speakers = run(man_longest, speech, tmp_path / "cold")
    assert "faces analysed while rendering" in caplog.text
    assert "rendered again" in caplog.text  # the woman, chosen on the first frames, was not the whole video's choice
    warm, warm_speakers = run(man_longest, speech, tmp_path / "warm")
    assert_same(cold, warm)
    assert cold_speakers[0]["face"] == warm_speakers[0]["face"]
    moved = changed(cold, man_longest)
    assert moved and min(moved) >= 25, "only the man (from frame 25 on) is animated"


def test_background_analysis_hands_every_frame_and_gives_final_faces_early(lipdub_home):
    """The frames handed on are the video's decoded frames; the faces `partial` gives while the analysis runs are
    the whole video's for those frames; the result is `analyze`'s (read back from the cache it wrote)."""
    assert not faces.is_cached(ABA)
    analysis = faces.BackgroundAnalysis(ABA, 25.0, ahead=4)
    early = []
    try:
        for k, (handed, decoded) in enumerate(zip(analysis.frames(), media.iter_frames(ABA), strict=True)):
            assert np.array_equal(handed, decoded)
            if k % 10 == 9:  # faces of frames up to k, taken while the tracker is only a few frames further
                early.append((k + 1, analysis.partial(0, k + 1)))
        whole = analysis.result()
    finally:
        analysis.close()
    assert whole.num_frames == 75 and len(early) == 7
    for k, part in early:
        for i in range(k):
            got, want = part.faces_in(i), whole.faces_in(i)
            assert [f.track_id for f in got] == [f.track_id for f in want], (k, i)
            assert all(np.array_equal(a.landmarks, b.landmarks) for a, b in zip(got, want, strict=True)), (k, i)
    assert faces.is_cached(ABA)
    cached = faces.analyze(ABA)  # a cache hit: the entry the background analysis stored
    assert np.array_equal(cached.landmarks, whole.landmarks) and cached.persons == whole.persons
