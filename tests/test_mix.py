"""The output soundtrack on real media: ducking only under speech, no clipping, rates/channels reconciled, speakers."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import av
import numpy as np
import pytest
import soxr
from scipy.signal import correlate, firwin, resample_poly

from lipdub.audio.mix import SpeechTrack, integrated_loudness, mix_soundtrack, true_peak_limit

DATA = Path(__file__).parent / "data" / "mix"
START = 2.0  # the dialogue starts 2 s into the output


@cache
def load(name: str) -> tuple[np.ndarray, int]:
    """(channels, n) float32 and rate, decoded with PyAV at the file's own rate and layout."""
    with av.open(str(DATA / name)) as c:
        s = c.streams.audio[0]
        to_float = av.AudioResampler(format="fltp", layout=s.layout.name, rate=s.rate)
        parts = [g.to_ndarray() for f in c.decode(s) for g in to_float.resample(f)]
        return np.concatenate(parts, axis=1).astype(np.float32), s.rate


def rttm_turns() -> list[tuple[float, float]]:
    rows = [line.split() for line in (DATA / "dialogue.rttm").read_text().splitlines() if line.strip()]
    return [(float(r[3]), float(r[3]) + float(r[4])) for r in rows]


def reference_true_peak(x: np.ndarray) -> float:
    """Independent meter: 8x oversampling with a long windowed-sinc interpolator (dBTP)."""
    h = firwin(2 * 64 * 8 + 1, 1 / 8, window=("kaiser", 10.0))
    return 20 * np.log10(np.abs(resample_poly(x, 8, 1, axis=1, window=h)).max())


def bed_gain_db(duck_db: float, tracks: list[SpeechTrack] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gain (dB per 10 ms) that the mix applied to the original under `tracks` (default: the real dialogue)."""
    if tracks is None:
        speech, rate = load("dialogue_16k.flac")
        tracks = [SpeechTrack(speech, rate, START)]
    original = load("obama_48k_stereo.m4a")
    full, out_rate = mix_soundtrack(tracks, original, duration=14.0, duck_db=duck_db, limiter=False)
    alone, _ = mix_soundtrack(tracks, None, duration=14.0, out_rate=out_rate, out_channels=2, limiter=False)
    plain, _ = mix_soundtrack([], original, duration=14.0, limiter=False)
    bed = full - alone  # what is left of the original in the mix
    hop = out_rate // 100
    n = plain.shape[1] // hop
    frames = lambda x: x[:, : n * hop].reshape(2, n, hop)  # noqa: E731
    ratio = np.sqrt((frames(bed) ** 2).sum(axis=(0, 2)) / np.maximum((frames(plain) ** 2).sum(axis=(0, 2)), 1e-12))
    return (np.arange(n) + 0.5) * hop / out_rate, 20 * np.log10(np.maximum(ratio, 1e-9))


def test_ducking_lowers_the_original_only_while_the_new_speech_speaks():
    t, gain = bed_gain_db(12.0)
    turns = [(START + s, START + e) for s, e in rttm_turns()]
    first, last = turns[0][0], turns[-1][1]
    inside = np.zeros(t.size, bool)
    for s, e in turns:
        inside |= (t > s) & (t < e)
    # under every annotated turn the original is 12 dB down
    assert np.all(np.abs(gain[inside] + 12.0) < 0.3)
    # between turns it stays down (no pumping): the whole conversation is one ducked span
    assert np.all(np.abs(gain[(t > first) & (t < last)] + 12.0) < 0.3)
    # before the first word (minus the attack) and after the last (plus the release) it is untouched
    assert np.all(np.abs(gain[t < first - 0.2]) < 0.05)
    assert np.all(np.abs(gain[t > last + 0.45]) < 0.05)
    # the transitions are ramps, not steps: at most ~0.5 dB per ms anywhere
    assert np.abs(np.diff(gain)).max() / 10.0 < 0.5


def test_the_original_comes_back_between_two_speakers():
    a, rate_a = load("flemish_vl00203_22k.flac")  # 2.31 s, at 1 s
    b, rate_b = load("flemish_vl09647_22k.flac")  # 2.18 s, at 6 s
    t, gain = bed_gain_db(12.0, [SpeechTrack(a, rate_a, 1.0), SpeechTrack(b, rate_b, 6.0)])
    assert np.all(np.abs(gain[(t > 1.5) & (t < 3.0)] + 12.0) < 0.3)  # first speaker talks
    assert np.all(np.abs(gain[(t > 4.0) & (t < 5.8)]) < 0.05)  # nobody talks: the original is back
    assert np.all(np.abs(gain[(t > 6.5) & (t < 8.0)] + 12.0) < 0.3)  # second speaker talks
    assert np.all(np.abs(gain[t > 9.0]) < 0.05)


def test_no_ducking_leaves_the_original_as_it_was():
    _, gain = bed_gain_db(0.0)
    assert np.abs(gain).max() < 1e-3


def test_loud_inputs_are_limited_to_the_true_peak_ceiling():
    speech, rate = load("dialogue_16k.flac")
    original = load("obama_48k_stereo.m4a")
    tracks = [SpeechTrack(speech, rate, START, gain_db=24.0)]
    loud, out_rate = mix_soundtrack(tracks, original, duration=14.0, original_gain_db=3.0, limiter=False)
    assert reference_true_peak(loud) > 6.0  # far over full scale without the limiter
    out, _ = mix_soundtrack(tracks, original, duration=14.0, original_gain_db=3.0, ceiling_dbtp=-1.0)
    assert reference_true_peak(out) <= -1.0 + 0.1
    assert np.abs(out).max() < 1.0
    # only the overs are turned down: the lead-in (the original alone, below the ceiling) keeps its level
    lead = slice(0, int(START * out_rate))
    assert reference_true_peak(loud[:, lead]) < -1.5
    np.testing.assert_allclose(out[:, lead], loud[:, lead], rtol=1e-6, atol=1e-7)


def test_limiter_leaves_audio_below_the_ceiling_bit_for_bit():
    original, rate = load("obama_48k_stereo.m4a")
    quiet = original * np.float32(10 ** ((-3.0 - reference_true_peak(original)) / 20))
    assert np.array_equal(true_peak_limit(quiet, rate, ceiling_dbtp=-1.0), quiet)


def test_limiter_gain_is_smooth_and_recovers():
    original, rate = load("obama_48k_stereo.m4a")
    x = original[:, : 6 * rate].copy()
    x[:, 2 * rate: 2 * rate + rate // 2] *= 8.0  # a half-second burst 18 dB too loud
    y = true_peak_limit(x, rate, ceiling_dbtp=-1.0)
    gain = np.ones(x.shape[1])
    ok = np.abs(x[0]) > 1e-3
    gain[ok] = y[0, ok] / x[0, ok]
    assert gain.max() <= 1.0 + 1e-6
    assert np.abs(np.diff(20 * np.log10(gain[ok]))).max() < 0.2  # dB per sample: no clicks
    np.testing.assert_array_equal(y[:, : rate], x[:, : rate])  # untouched well before the burst
    np.testing.assert_array_equal(y[:, 4 * rate:], x[:, 4 * rate:])  # and back to unity after it


@pytest.mark.parametrize("original_name", ["suit_44k_stereo.m4a", "obama_48k_stereo.m4a"])
@pytest.mark.parametrize("speech_name", ["dialogue_16k.flac", "flemish_vl00203_22k.flac"])
def test_mono_speech_goes_into_a_stereo_original_at_its_rate(original_name, speech_name):
    speech, speech_rate = load(speech_name)
    original, rate = load(original_name)
    duration = 5.5
    tracks = [SpeechTrack(speech, speech_rate, 0.5)]
    out, out_rate = mix_soundtrack(tracks, (original, rate), duration=duration, limiter=False)
    bed, _ = mix_soundtrack([], (original, rate), duration=duration, limiter=False)
    assert out_rate == rate and out.shape == (2, round(duration * rate)) and out.dtype == np.float32
    part = out - bed
    np.testing.assert_allclose(part[0], part[1], atol=1e-6)  # centred: the same in both channels
    # the speech itself survives the rate change: back at its own rate it matches the input
    back = soxr.resample(part[0], rate, speech_rate)
    a = int(0.5 * speech_rate)
    ref = speech[0, : len(back) - a]
    err = back[a: a + ref.size] - ref
    assert 10 * np.log10((ref ** 2).sum() / (err ** 2).sum()) > 30.0


def test_speech_alone_keeps_its_own_rate_and_samples():
    speech, rate = load("flemish_vl00203_22k.flac")
    out, out_rate = mix_soundtrack([SpeechTrack(speech, rate, 0.0)], None, duration=speech.shape[1] / rate)
    assert out_rate == rate and out.shape == speech.shape
    np.testing.assert_array_equal(out, speech)


def test_two_speakers_land_at_their_start_times_and_nothing_plays_between():
    a, rate_a = load("flemish_vl00203_22k.flac")
    b, rate_b = load("flemish_vl09647_22k.flac")
    starts = (0.0, 3.5)
    duration = max(starts[0] + a.shape[1] / rate_a, starts[1] + b.shape[1] / rate_b)
    out, rate = mix_soundtrack([SpeechTrack(a, rate_a, starts[0]), SpeechTrack(b, rate_b, starts[1])], None,
                               duration=duration, limiter=False)
    assert out.shape == (1, round(duration * rate))
    for clip, start in ((a[0], starts[0]), (b[0], starts[1])):
        lag = np.argmax(correlate(out[0], clip, mode="valid", method="fft"))
        assert lag == round(start * rate)
    gap = out[0, a.shape[1] + 1: round(starts[1] * rate) - 1]
    assert gap.size > rate and np.abs(gap).max() == 0.0


def test_output_has_exactly_the_asked_length_whatever_the_inputs():
    speech, rate = load("dialogue_16k.flac")  # 9 s
    original = load("suit_44k_stereo.m4a")  # 6 s
    for duration in (3.0, 7.25, 12.0):
        out, out_rate = mix_soundtrack([SpeechTrack(speech, rate, 1.0)], original, duration=duration)
        assert out.shape == (2, round(duration * out_rate))
    out, _ = mix_soundtrack([], original, duration=12.0, limiter=False)
    assert np.abs(out[:, round(6.1 * 44100):]).max() == 0.0  # the shorter original is followed by silence


def surround_original(channels: int) -> tuple[np.ndarray, int]:
    """A `channels`-wide original: the Obama speech front left, the dialogue (at 48 kHz) in the centre."""
    front, rate = load("obama_48k_stereo.m4a")
    speech, speech_rate = load("dialogue_16k.flac")
    centre = soxr.resample(speech[0], speech_rate, rate)
    n = min(front.shape[1], centre.size)
    x = np.zeros((channels, n), np.float32)
    x[0], x[2] = front[0, :n], centre[:n]
    return x, rate


@pytest.mark.parametrize("channels", [6, 10])  # 5.1, and wider than the writers' 7.1 (the mix takes it)
def test_a_surround_original_folds_to_stereo_keeping_left_left_and_the_centre_centred(channels):
    original, rate = surround_original(channels)
    out, out_rate = mix_soundtrack([], (original, rate), duration=6.0, limiter=False)
    assert out_rate == rate and out.shape == (2, 6 * rate)
    n = 6 * rate
    front, centre = original[0, :n], original[2, :n]
    corr = lambda a, b: np.corrcoef(a, b)[0, 1]  # noqa: E731
    assert corr(out[1], centre) > 0.999  # the right side holds only the centre (front left stays left)
    assert corr(out[0] - out[1], front) > 0.999  # the centre is equally loud on both sides
    assert 0.1 < np.abs(out).max() <= 1.0


def test_gain_settings_scale_each_part():
    speech, rate = load("dialogue_16k.flac")
    original = load("suit_44k_stereo.m4a")
    base_s, r = mix_soundtrack([SpeechTrack(speech, rate, 0.0)], None, duration=5.0, out_rate=44100,
                               out_channels=2, limiter=False)
    louder_s, _ = mix_soundtrack([SpeechTrack(speech, rate, 0.0, gain_db=-6.0)], None, duration=5.0,
                                 out_rate=44100, out_channels=2, limiter=False)
    np.testing.assert_allclose(louder_s, base_s * 10 ** (-6 / 20), atol=1e-6)
    base_o, _ = mix_soundtrack([], original, duration=5.0, limiter=False)
    quiet_o, _ = mix_soundtrack([], original, duration=5.0, original_gain_db=-10.0, limiter=False)
    np.testing.assert_allclose(quiet_o, base_o * 10 ** (-10 / 20), atol=1e-6)


def test_speech_loudness_normalisation_hits_the_target():
    speech, rate = load("dialogue_16k.flac")
    original = load("obama_48k_stereo.m4a")
    tracks = [SpeechTrack(speech, rate, 0.0)]
    out, r = mix_soundtrack(tracks, None, duration=9.0, speech_loudness=-23.0, limiter=False)
    assert integrated_loudness(out, r) == pytest.approx(-23.0, abs=0.3)
    # "original": the new speech as loud as the soundtrack it replaces (-16 LUFS when there is none)
    out, r = mix_soundtrack(tracks, original, duration=9.0, speech_loudness="original", limiter=False)
    bed, _ = mix_soundtrack([], original, duration=9.0, limiter=False)
    assert integrated_loudness(out - bed, r) == pytest.approx(integrated_loudness(*original), abs=0.5)
    out, r = mix_soundtrack(tracks, None, duration=9.0, speech_loudness="original", limiter=False)
    assert integrated_loudness(out, r) == pytest.approx(-16.0, abs=0.3)


def test_invalid_arguments_are_refused():
    speech, rate = load("dialogue_16k.flac")
    with pytest.raises(ValueError, match="duck_db"):
        mix_soundtrack([SpeechTrack(speech, rate)], None, duration=1.0, duck_db=-12)
    with pytest.raises(ValueError, match="duration"):
        mix_soundtrack([SpeechTrack(speech, rate)], None, duration=0.0)
    with pytest.raises(ValueError, match="nothing to mix"):
        mix_soundtrack([], None, duration=1.0)


def test_a_low_rate_original_is_upsampled_to_better_speech_without_delay():
    original, rate = load("dialogue_16k.flac")  # a 16 kHz mono soundtrack (speech from 1.69 s)
    speech, speech_rate = load("flemish_vl00203_22k.flac")
    out, out_rate = mix_soundtrack([SpeechTrack(speech, speech_rate, 5.0)], (original, rate), duration=8.0,
                                   limiter=False)
    assert out_rate == speech_rate and out.shape == (1, 8 * speech_rate)  # the speech keeps its 22.05 kHz
    # before the new speech: the original alone, resampled (in chunks) exactly like one whole-file soxr pass
    expected = soxr.resample(original[0], rate, speech_rate, quality="VHQ")[: 4 * speech_rate]
    np.testing.assert_allclose(out[0, : 4 * speech_rate], expected, atol=1e-5)
    assert np.abs(expected[2 * speech_rate:]).max() > 0.05  # (that stretch does hold speech)


def test_long_soundtracks_are_processed_in_chunks_with_no_seams(monkeypatch):
    import lipdub.audio.mix as mix

    original, rate = load("dialogue_16k.flac")
    speech, speech_rate = load("flemish_vl00203_22k.flac")
    args = ([SpeechTrack(speech, speech_rate, 3.0, gain_db=20.0)], (original * 4, rate))
    kwargs = {"duration": 8.0, "duck_db": 10.0, "speech_activity": lambda a, r: [(0.2, 2.0)]}
    whole, _ = mix_soundtrack(*args, **kwargs)
    monkeypatch.setattr(mix, "_CHUNK", 5003)  # ~35 chunks, boundaries everywhere
    chunked, _ = mix_soundtrack(*args, **kwargs)
    assert reference_true_peak(whole) > -1.5  # the limiter had work to do
    np.testing.assert_allclose(chunked, whole, atol=2e-5)
