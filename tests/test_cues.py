"""Mouth cues from real and synthesized speech: timing against espeak-ng's phonemes, rest in silence,
smooth per-frame weights, Rhubarb-compatible exports and the `lipdub cues` command."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

from lipdub.audio import cues as C
from lipdub.cli import main
from lipdub.media import load_audio

DATA = Path(__file__).parent / "data" / "viseme"
FPS = 25


@pytest.fixture(scope="module")
def espeak() -> tuple[np.ndarray, list[dict]]:
    doc = json.loads((DATA / "espeak_en.json").read_text())
    return load_audio(DATA / "espeak_en.flac", sr=16000), doc["phones"]


@pytest.fixture(scope="module")
def espeak_cues(espeak) -> list[C.Cue]:
    return C.extract_cues(espeak[0], FPS)


@pytest.fixture(scope="module")
def dialogue() -> np.ndarray:
    return load_audio(DATA / "long_silence_12s.flac", sr=16000)


def test_cue_boundaries_land_within_one_frame_of_espeak_phone_starts(espeak, espeak_cues):
    _, phones = espeak
    truth = np.array([p["start"] for p in phones if p["phone"] not in (";", "_", "_:", "_!")])
    bounds = np.array([c.start for c in espeak_cues[1:]])
    hit = np.array([np.min(np.abs(bounds - t)) <= 1 / FPS for t in truth])
    assert hit.mean() >= 0.75, f"only {hit.mean():.0%} of {len(truth)} phone starts have a cue within 40 ms"
    # and the cues are not just dense noise: most cue boundaries are near a real phone start
    near = np.array([np.min(np.abs(truth - b)) <= 1 / FPS for b in bounds])
    assert near.mean() >= 0.7


def test_bilabials_give_closed_cues_and_vowels_open_ones(espeak, espeak_cues):
    _, phones = espeak
    starts = [p["start"] for p in phones] + [len(espeak[0]) / 16000]

    def shape_at(t: float) -> str:
        return next(c.shape for c in espeak_cues if c.start <= t < c.end)

    bilabial = [(a, b) for p, a, b in zip(phones, starts, starts[1:], strict=False) if p["phone"] in "pbm"]
    closed = [shape_at((a + b) / 2) in ("A", "X") for a, b in bilabial]  # X (rest) is lips closed too
    assert len(bilabial) >= 6 and np.mean(closed) >= 0.7
    spans = list(zip(phones, starts, starts[1:], strict=False))
    open_vowels = [(a, b) for p, a, b in spans if p["phone"] in ("a", "aI", "A:")]
    assert open_vowels and np.mean([shape_at((a + b) / 2) in "CD" for a, b in open_vowels]) >= 0.6


def test_silence_is_rest_and_speech_is_not(dialogue):
    cues = C.extract_cues(dialogue, FPS)
    assert cues[0].start == 0 and abs(cues[-1].end - 12.0) < 0.01
    assert all(a.end == b.start for a, b in zip(cues, cues[1:], strict=False))
    assert all(c.shape == "X" for c in cues if c.end <= 4.5)
    talking = [c for c in cues if c.start >= 4.8 and c.shape != "X"]
    assert sum(c.end - c.start for c in talking) > 4.0
    assert {c.shape for c in talking} >= {"A", "B", "C", "D"}


def test_energy_fallback_opens_on_loud_speech_and_rests_in_silence(dialogue):
    cues = C.extract_cues(dialogue, FPS, method="energy")
    assert all(c.phone is None for c in cues)
    assert all(c.shape == "X" for c in cues if c.end <= 4.5)
    opened = sum(c.end - c.start for c in cues if c.shape in "CDE")
    assert opened > 1.0


def test_dutch_speech_gets_varied_shapes_throughout():
    """Phonetic mode: a Flemish sentence (4.2 s, speech from 0.2 s to the end) keeps the mouth moving."""
    audio = load_audio(DATA / "dutch_vl04108.flac", sr=16000)
    cues = C.extract_cues(audio, FPS)
    speaking = [c for c in cues if 0.3 <= c.start < 3.9]
    assert len({c.shape for c in speaking}) >= 6
    assert sum(c.end - c.start for c in speaking if c.shape != "X") > 3.0
    assert sum(c.phone is not None for c in speaking) > 25  # recognised phones, not the fallback
    # every second of the sentence has several cues: no shape held for long
    assert max(c.end - c.start for c in speaking) < 0.5


def test_the_same_speech_gets_the_same_cues_whatever_the_process_decoded_before(espeak):
    """A web server or batch worker decodes job after job in one process: a job's mouth must not depend on the
    jobs before it (PocketSphinx's live cepstral mean would otherwise carry over from the last utterance)."""
    dutch = load_audio(DATA / "dutch_vl04108.flac", sr=16000)
    first = C.extract_cues(dutch, FPS)
    C.extract_cues(espeak[0], FPS)  # another speaker, another language in between
    assert C.extract_cues(dutch, FPS) == first


def test_a_lost_decoder_is_covered_by_the_fallback(monkeypatch, dialogue):
    """A recogniser that returns one phone for seconds (a search failure) must not freeze the mouth."""
    monkeypatch.setattr(C, "recognize_phones", lambda wav: [("B", 0.0, len(wav) / 16000)])
    cues = C.extract_cues(dialogue, FPS)
    talking = [c for c in cues if c.start >= 4.8]
    assert len({c.shape for c in talking}) >= 4
    assert max(c.end - c.start for c in talking if c.shape != "X") < 1.0


def test_track_weights_are_smooth_and_never_flash_for_one_frame(espeak_cues):
    n = int(np.ceil(8.47 * FPS))
    track = C.cue_track(espeak_cues, FPS, n)
    assert track.shape == (n, len(C.SHAPES))
    np.testing.assert_allclose(track.sum(axis=1), 1.0, atol=1e-5)
    top = track.argmax(axis=1)
    flashes = (top[1:-1] != top[:-2]) & (top[:-2] == top[2:])
    assert not flashes.any()  # no shape leads for one frame between frames of another
    spike = np.abs(track[1:-1] - (track[:-2] + track[2:]) / 2).max(axis=1)
    assert np.quantile(spike, 0.95) < 0.4
    # eased: the weight of a shape changes by well under 1 between frames most of the time
    assert np.quantile(np.abs(np.diff(track, axis=0)).max(axis=1), 0.9) < 0.7
    # closures win: where a bilabial cue is, the closed shape dominates its frames
    for cue in espeak_cues:
        if cue.shape == "A" and cue.end - cue.start >= 0.05:
            i = int((cue.start + cue.end) / 2 * FPS)
            assert track[i].argmax() == C.SHAPE_INDEX["A"], cue


def test_exports_follow_rhubarb_formats(espeak_cues):
    tsv = C.to_rhubarb_tsv(espeak_cues).splitlines()
    rows = [line.split("\t") for line in tsv]
    times = [float(t) for t, _ in rows]
    assert all(len(r) == 2 and r[1] in C.SHAPES for r in rows)
    assert times == sorted(times) and rows[-1][1] == "X" and times[0] == 0.0
    assert all(a[1] != b[1] for a, b in zip(rows[:-1], rows[1:-1], strict=False))
    doc = json.loads(C.to_json(espeak_cues, sound_file="speech.wav"))
    assert doc["metadata"]["soundFile"] == "speech.wav"
    assert {"start", "end", "value"} <= set(doc["mouthCues"][0])
    back = C.from_json(C.to_json(espeak_cues))
    assert [(c.shape, c.phone) for c in back] == [(c.shape, c.phone) for c in espeak_cues]


def test_cues_command_writes_json_and_tsv(tmp_path, capsys):
    audio = DATA / "espeak_en.flac"
    assert main(["cues", str(audio), "-o", str(tmp_path / "c.json")]) == 0
    doc = json.loads((tmp_path / "c.json").read_text())
    assert len(doc["mouthCues"]) > 40
    assert main(["cues", str(audio), "-o", str(tmp_path / "c.tsv"), "--fps", "30"]) == 0
    assert (tmp_path / "c.tsv").read_text().splitlines()[0] == "0.00\tX"
    capsys.readouterr()
    assert main(["cues", str(audio), "-o", str(tmp_path / "c.xml")]) == 1
    assert "c.xml" in capsys.readouterr().err and not (tmp_path / "c.xml").exists()


def test_recogniser_models_come_from_the_wheel_without_network(monkeypatch, espeak):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    C._decoder.cache_clear()
    phones = C.recognize_phones(espeak[0][: 16000 * 3])
    assert len([p for p, _, _ in phones if p != "SIL"]) > 15


# ---------------------------------------------------------------- transcripts, closures, rounding (issue 13)

def _espeak_sentence(lang: str) -> tuple[np.ndarray, dict]:
    return load_audio(DATA / f"espeak_{lang}.flac", sr=16000), json.loads((DATA / f"espeak_{lang}.json").read_text())


def _spans(doc: dict, duration: float, names: tuple[str, ...]) -> list[tuple[float, float]]:
    """(start, end) of espeak-ng's phones with these names (stress marks ignored)."""
    starts = [p["start"] for p in doc["phones"]] + [duration]
    return [(a, b) for p, a, b in zip(doc["phones"], starts, starts[1:], strict=False)
            if p["phone"].strip("',") in names and b - a > 0.03]


BILABIAL = ("p", "b", "m")
ROUND_VOWELS = ("u", "u:", "o:", "O", "oU", "VU", "0", "O:", "y")
OTHER_VOWELS = ("a", "a:", "A", "A:", "aI", "a#", "i", "i:", "I", "E", "EI", "e:")


def test_transcript_alignment_places_dutch_words_within_60_ms():
    """A female Dutch voice at 140 wpm, aligned with the text (which espeak-ng speaks in its male voice)."""
    from lipdub.audio.align import align

    audio, doc = _espeak_sentence("nl")
    words = align(audio, doc["text"], "nl").words
    assert [w for w, _ in words] == [w["word"] for w in doc["words"]]
    errors = np.abs(np.array([t for _, t in words]) - np.array([w["start"] for w in doc["words"]]))
    assert errors.max() <= 0.06, errors


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_with_a_transcript_the_lips_close_within_40_ms_of_each_bilabial_and_round_on_o_u(lang):
    audio, doc = _espeak_sentence(lang)
    cues = C.extract_cues(audio, FPS, text=doc["text"], lang=lang)
    track = C.cue_track(cues, 100, len(audio) // 160)  # 10 ms frames: timing finer than video frames
    closed = track[:, C.SHAPE_INDEX["A"]] > 0.5  # from 50 % on a closure seals the lips (shapes.articulate)
    bilabials = _spans(doc, len(audio) / 16000, BILABIAL)
    missed = [a for a, _ in bilabials if not closed[max(0, int((a - 0.04) * 100)): int((a + 0.04) * 100) + 1].any()]
    assert len(bilabials) >= 7 and not missed, missed
    rounded = track[:, [C.SHAPE_INDEX["E"], C.SHAPE_INDEX["F"]]].sum(axis=1)
    on = [rounded[int(a * 100): int(b * 100)].mean() for a, b in _spans(doc, len(audio) / 16000, ROUND_VOWELS)]
    off = [rounded[int(a * 100): int(b * 100)].mean() for a, b in _spans(doc, len(audio) / 16000, OTHER_VOWELS)]
    assert np.mean(on) > 0.5 and np.mean(off) < 0.2, (on, off)


def test_without_a_transcript_english_bilabials_still_close():
    audio, doc = _espeak_sentence("en")
    track = C.cue_track(C.extract_cues(audio, FPS), 100, len(audio) // 160)
    closed = track[:, C.SHAPE_INDEX["A"]] + track[:, C.SHAPE_INDEX["X"]] > 0.5  # rest is closed lips too
    hits = [closed[max(0, int((a - 0.04) * 100)): int((a + 0.04) * 100) + 1].any()
            for a, _ in _spans(doc, len(audio) / 16000, BILABIAL)]
    assert np.mean(hits) >= 0.8, hits


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_acoustics_open_the_jaw_on_open_vowels_and_round_the_lips_on_o_u(lang):
    """Language independent: F1 opens the jaw (a: vs i, u), low F2 rounds the lips (o, u vs a, i, e)."""
    from lipdub.audio import articulation as A

    audio, doc = _espeak_sentence(lang)
    ac = A.analyse(audio)
    jaw, rounding = A.jaw_opening(ac), A.lip_rounding(ac)
    duration = len(audio) / 16000

    def mean(curve: np.ndarray, names: tuple[str, ...]) -> float:
        return float(np.mean([curve[int(a * 100): int(b * 100)].mean() for a, b in _spans(doc, duration, names)]))

    assert mean(jaw, ("a", "a:", "A", "A:", "aI", "a#")) > mean(jaw, ("i", "i:", "I", "u", "u:", "y")) + 0.2
    assert mean(rounding, ROUND_VOWELS) > 0.4 and mean(rounding, OTHER_VOWELS) < 0.1


JFK = ("and", "so", "my", "fellow", "americans", "ask", "not")  # what jfk_4.6s.flac says


def test_english_speech_told_as_english_gets_the_phones_of_its_words():
    """`lang` en without a transcript (a real 1961 recording): the phones come from recognised English words,
    most of the spoken words are found, and the lips close on the M of "my" and "Americans" within 40 ms of
    where the transcript's own alignment puts them."""
    from lipdub.audio.align import align
    from lipdub.audio.words import recognize_words

    audio = load_audio(DATA / "jfk_4.6s.flac", sr=16000)
    words, phones = recognize_words(audio)
    assert sum(w in words for w in JFK) >= 4, words
    assert {"M", "F", "AE"} <= {p for p, _, _ in phones}  # my fellow ask: dictionary phones, timed
    found = C.cue_track(C.extract_cues(audio, FPS, lang="en"), 100, len(audio) // 160)
    closed = found[:, C.SHAPE_INDEX["A"]] > 0.5
    ms = [a for p, a, _ in align(audio, " ".join(JFK), "en").phones if p == "M"]
    assert len(ms) == 2 and all(closed[int((a - 0.04) * 100): int((a + 0.04) * 100) + 1].any() for a in ms), ms


def test_recognition_reports_its_progress_over_the_speech(dialogue):
    """What `animate` shows as its "preparing" bar: from 0 to all the speech, in order, silence not counted."""
    seen: list[tuple[int, int]] = []
    C.extract_cues(dialogue, FPS, progress=lambda done, total: seen.append((done, total)))
    done, totals = [d for d, _ in seen], {t for _, t in seen}
    assert len(totals) == 1 and seen[0][0] == 0 and done[-1] == totals.pop() and done == sorted(done)
    assert len(seen) >= 3 and 100 * 4 < done[-1] < len(dialogue) // 160  # a few runs; the silent start is left out


def test_a_language_without_a_transcript_is_refused_unless_english(tmp_path, capsys):
    out = tmp_path / "c.json"
    assert main(["cues", str(DATA / "espeak_nl.flac"), "--lang", "nl", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--lang nl" in err[0] and "--text" in err[0]
    assert main(["cues", str(DATA / "jfk_4.6s.flac"), "--lang", "en-us", "-o", str(out)]) == 0
    assert {"M", "F"} <= {c["phone"] for c in json.loads(out.read_text())["mouthCues"]}


def test_cues_command_takes_a_transcript_and_rejects_bad_ones(tmp_path, capsys):
    _, doc = _espeak_sentence("nl")
    script = tmp_path / "tekst.txt"
    script.write_text(doc["text"], encoding="utf-8")
    out = tmp_path / "c.json"
    assert main(["cues", str(DATA / "espeak_nl.flac"), "--text-file", str(script), "--lang", "nl", "-o", str(out)]) == 0
    phones = {c["phone"] for c in json.loads(out.read_text())["mouthCues"]}
    assert {"M", "B", "P", "UW"} <= phones  # moeder, boter, op, boer: the transcript's phones, as CMU names
    capsys.readouterr()
    assert main(["cues", str(DATA / "espeak_nl.flac"), "--text", "hallo", "--lang", "xx", "-o", str(out)]) == 1
    assert "'xx'" in capsys.readouterr().err
    assert main(["cues", str(DATA / "espeak_nl.flac"), "--text-file", str(tmp_path / "none.txt")]) == 1
    assert "none.txt" in capsys.readouterr().err


def test_pauses_between_words_relax_the_mouth_and_long_ones_close_it(espeak):
    """Rhubarb's pause rule on real timing: 0.25 s of silence spliced in before "over" leaves the lips apart
    (relaxed B or C), 0.7 s before "called" closes them (X); speech around them is untouched."""
    audio = espeak[0]

    def splice(x: np.ndarray, at: float, seconds: float) -> np.ndarray:
        i = int(at * 16000)
        return np.concatenate([x[:i], np.zeros(int(seconds * 16000), np.float32), x[i:]])

    cues = C.extract_cues(splice(splice(audio, 6.85, 0.7), 4.29, 0.25), FPS)

    def shape_at(t: float) -> str:
        return next(c.shape for c in cues if c.start <= t < c.end)

    assert shape_at(4.29 + 0.125) in ("B", "C")
    assert shape_at(6.85 + 0.25 + 0.35) == "X"
    assert {shape_at(t) for t in np.arange(5.0, 6.8, 0.04)} - {"X"}  # the words between still move


def test_a_wide_open_mouth_closes_through_an_in_between_shape():
    """Rhubarb's in-betweens: D held 300 ms then closed lips pass through C for 40-80 ms just before the
    closure; one too short to take 40 ms from gets none; the exports show the in-between."""
    cues = [C.Cue(0.0, 0.2, "X"), C.Cue(0.2, 0.5, "D", "AA"), C.Cue(0.5, 0.6, "A", "M"), C.Cue(0.6, 0.69, "D", "AA"),
            C.Cue(0.69, 0.8, "A", "P"), C.Cue(0.8, 1.2, "X")]
    out = C.in_betweens(cues)
    assert [c.shape for c in out] == ["X", "D", "C", "A", "D", "A", "X"]
    tween = out[2]
    assert 0.04 <= round(tween.end - tween.start, 6) <= 0.08 and tween.end == 0.5 and out[1].end == tween.start
    assert all(a.end == b.start for a, b in zip(out, out[1:], strict=False))
    assert "C" in [line.split("\t")[1] for line in C.to_rhubarb_tsv(out).splitlines()]
    track = C.cue_track(out, 100, 120)  # not stretched to the 70 ms hold: it stays an in-between
    assert track[int(0.44 * 100):int(0.49 * 100), C.SHAPE_INDEX["C"]].max() > 0.3


# ---------------------------------------------------------------- per-speaker transcripts (issue 13)

def test_each_speaker_is_aligned_to_its_own_transcript(tmp_path):
    """Two speakers (a Dutch and an English sentence), each with its transcript in its --speaker: each one's lips
    close within 40 ms of its own bilabials (audio only misses Dutch ones; the other's text would misplace them)."""
    from lipdub.audio.speakers import parse_speaker
    from lipdub.engines.viseme import VisemeEngine
    from lipdub.media import write_audio
    from lipdub.pipeline import AnimateRequest, _prepare_speakers

    first = {"nl": (3.6, "Mijn moeder bakt op maandag brood met boter."),
             "en": (2.45, "Please bring me a bottle of fresh milk.")}  # each sentence's first 2.5-3.6 s
    for lang, (seconds, _) in first.items():
        write_audio(tmp_path / f"{lang}.wav", _espeak_sentence(lang)[0][: int(seconds * 16000)], 16000)
    (tmp_path / "en.txt").write_text(first["en"][1], encoding="utf-8")
    specs = [parse_speaker(f"face=0,audio={tmp_path / 'nl.wav'},text={first['nl'][1]},lang=nl"),
             parse_speaker(f"face=1,audio={tmp_path / 'en.wav'},text-file={tmp_path / 'en.txt'},lang=en")]
    assert specs[0].text == first["nl"][1] and specs[1].lang == "en"
    request = AnimateRequest(media=DATA / "portraits" / PORTRAIT, output=tmp_path / "o.mp4", speakers=specs,
                             text="not what either says")
    speakers = _prepare_speakers(request, VisemeEngine(text=request.text), FPS)
    for sp, (lang, (seconds, _)) in zip(speakers, first.items(), strict=True):
        track = C.cue_track(sp.engine.cues, 100, int(seconds * 100))
        closed = track[:, C.SHAPE_INDEX["A"]] > 0.5
        bilabials = [(a, b) for a, b in _spans(_espeak_sentence(lang)[1], 99.0, BILABIAL) if b < seconds]
        missed = [a for a, _ in bilabials if not closed[max(0, int((a - .04) * 100)): int((a + .04) * 100) + 1].any()]
        assert len(bilabials) >= 4 and not missed, (lang, missed)


def test_one_text_for_several_speakers_is_refused(tmp_path, capsys):
    args = ["animate", str(DATA / "portraits" / PORTRAIT), "-o", str(tmp_path / "o.mp4"), "--text", "hallo",
            "--speaker", f"face=0,audio={DATA / 'espeak_nl.flac'}",
            "--speaker", f"face=1,audio={DATA / 'espeak_en.flac'}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--speaker" in err[0] and "Traceback" not in err[0]
    assert main(["animate", str(DATA / "portraits" / PORTRAIT), "--speaker",
                 f"audio={DATA / 'espeak_nl.flac'},lang=nl"]) != 0
    assert "lang=" in capsys.readouterr().err


PORTRAIT = "img_eastasian_woman_closed_mouth.jpg"
