"""Speech -> timed mouth-shape cues (phones from PocketSphinx, silence from silero-vad) and per-frame weights.

Shapes follow Rhubarb Lip Sync's letters so animators can use the exports directly:
X rest, A closed (P B M), B slightly open (most consonants, EE), C open (EH AE), D wide open (AA),
E rounded (AO ER), F puckered (UW OW W), G lower lip to upper teeth (F V), H tongue up (L).
Recognition runs in PocketSphinx's phonetic (allphone) mode, so any language gets usable phones; English speech
(`lang` en) can go through its recognised words instead (words.py); where recognition fails (noise, music, a
decoder error) a fallback reads the shape from loudness and spectrum instead.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from lipdub.audio.sphinx import decode_utterance, pcm16
from lipdub.media.audio import SAMPLE_RATE

SR = SAMPLE_RATE  # the working rate (one home: lipdub.media.audio)
PROGRESS_STEP_S = 0.01  # extract_cues' progress counts speech in 10 ms frames
SHAPES: tuple[str, ...] = ("X", "A", "B", "C", "D", "E", "F", "G", "H")
SHAPE_NAMES: dict[str, str] = {
    "X": "rest", "A": "closed (P B M)", "B": "slightly open (K S T, EE)", "C": "open (EH AE)",
    "D": "wide open (AA)", "E": "rounded (AO ER)", "F": "puckered (UW OW W)", "G": "lip to teeth (F V)",
    "H": "tongue up (L)",
}
SHAPE_INDEX = {s: i for i, s in enumerate(SHAPES)}

# CMU phones (PocketSphinx en-us) -> shape; diphthongs glide from their first to their second shape.
PHONE_SHAPES: dict[str, str] = {
    "P": "A", "B": "A", "M": "A",
    "F": "G", "V": "G", "L": "H",
    "AA": "D", "AH": "C", "AE": "C", "EH": "C",
    "AO": "E", "ER": "E", "R": "E", "UH": "E",
    "UW": "F", "W": "F",
    "IY": "B", "IH": "B", "Y": "B",
    **{p: "B" for p in ("K", "G", "NG", "S", "Z", "SH", "ZH", "CH", "JH", "T", "D", "N", "TH", "DH", "HH")},
}
DIPHTHONGS: dict[str, tuple[str, str]] = {
    "AY": ("D", "B"), "AW": ("D", "F"), "OY": ("E", "B"), "EY": ("C", "B"), "OW": ("E", "F"),
}
# how strongly a shape holds against its neighbours while they blend (lips must meet on P/B/M)
DOMINANCE = np.array([0.6, 4.0, 1.0, 1.2, 1.3, 1.3, 1.6, 2.5, 1.0], np.float32)
ANTICIPATION_S = 0.0  # beyond the cues' own leads (closures, rounding): more made the mouth early on real speakers
BLEND_S = 0.028  # std. dev. of the ease in/out
MAX_PHONE_S = 0.6  # a recognised phone longer than this is a decoding failure
# Rhubarb Lip Sync's timing (measured from its source): shapes held >= 70 ms, lips closing 40-120 ms before a
# plosive, vowels anticipated up to 200 ms; pauses: < 120 ms hold the shape, <= 350 ms relax (B), longer close
# (X); in-between shapes of 40-80 ms where the mouth would jump (wide open to closed, spread to puckered).
MIN_HOLD_S = 0.07
HOLD_PAUSE_S, RELAX_PAUSE_S = 0.12, 0.35
TWEEN_S = (0.04, 0.08)
# (from, to) -> (in-between shape, timing): "early" ends at the change, "late" starts there, "centred" straddles it
# (one direction only for most: a mouth pops open but closes through the in-between)
TWEENS: dict[tuple[str, str], tuple[str, str]] = {
    ("D", "A"): ("C", "early"), ("D", "B"): ("C", "centred"), ("D", "G"): ("C", "early"),
    ("D", "X"): ("C", "late"), ("C", "F"): ("E", "centred"), ("F", "C"): ("E", "centred"),
    ("D", "F"): ("E", "centred"), ("H", "F"): ("E", "late"), ("F", "H"): ("E", "early"),
}
CLOSE_LEAD_S = 0.04
VOWEL_LEAD_S = 0.2
ROUNDED, SHUT = ("E", "F"), ("A", "X")
SIBILANTS = ("S", "Z", "SH", "ZH", "CH", "JH")  # made with the teeth close together: the jaw rises
VOWELS = {"AA", "AH", "AE", "EH", "AO", "ER", "UH", "UW", "IY", "IH", *DIPHTHONGS}


@dataclass
class Cue:
    """One mouth shape held from `start` to `end` seconds; `phone` is the recognised phone (None: fallback/rest)."""

    start: float
    end: float
    shape: str
    phone: str | None = None
    tween: bool = False  # an in-between shape: held as short as it is


# ---------------------------------------------------------------- recognition

_decoder_lock = threading.Lock()


@lru_cache(maxsize=1)
def _decoder():
    """PocketSphinx in phonetic mode with the acoustic model and phone LM packaged inside its wheel."""
    import pocketsphinx

    model = pocketsphinx.get_model_path()
    return pocketsphinx.Decoder(
        hmm=os.path.join(model, "en-us", "en-us"),
        allphone=os.path.join(model, "en-us", "en-us-phone.lm.bin"),
        lw=2.0, beam=1e-15, pbeam=1e-15, wip=0.5, frate=100, loglevel="FATAL",  # 1e-10 loses its way
    )


def recognize_phones(wav16k: np.ndarray) -> list[tuple[str, float, float]]:
    """Phones with (start, end) seconds from PocketSphinx's allphone decoder; silence/noise come back as 'SIL'."""
    pcm = pcm16(wav16k)
    with _decoder_lock:
        dec = _decoder()
        decode_utterance(dec, pcm)
        segs = [(s.word, s.start_frame / 100.0, (s.end_frame + 1) / 100.0) for s in dec.seg()]
    return [(_known(word), start, end) for word, start, end in segs]


def _known(phone: str) -> str:
    """The phone when the shape table knows it, else 'SIL' (silence, noise, fillers)."""
    return phone if (phone in PHONE_SHAPES or phone in DIPHTHONGS) else "SIL"


def english(lang: str | None) -> bool:
    """Is this language code English (en, en-us, en_GB, ...)?"""
    return bool(lang) and lang.lower().replace("_", "-").split("-")[0] == "en"


def recognize(wav16k: np.ndarray, lang: str | None = None) -> list[tuple[str, float, float]]:
    """Timed phones of a stretch of speech: through its words when it is English (`lang` en: words.py), else
    (or where no word was found) from the phonetic decoder."""
    if english(lang):
        from lipdub.audio.words import recognize_words

        phones = recognize_words(wav16k)[1]
        if phones:
            return [(_known(p), start, end) for p, start, end in phones]
    return recognize_phones(wav16k)


def phones_to_cues(phones: list[tuple[str, float, float]]) -> list[Cue]:
    """Map phones to shapes (splitting diphthongs 60/40 into their two shapes); silence becomes X."""
    cues: list[Cue] = []
    for phone, start, end in phones:
        if phone in DIPHTHONGS:
            first, second = DIPHTHONGS[phone]
            mid = start + 0.6 * (end - start)
            cues += [Cue(start, mid, first, phone), Cue(mid, end, second, phone)]
        else:
            cues.append(Cue(start, end, PHONE_SHAPES.get(phone, "X"), None if phone == "SIL" else phone))
    return cues


# ---------------------------------------------------------------- fallback from loudness and spectrum

def _frame_features(wav16k: np.ndarray, hop: int = 160) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 10 ms: loudness relative to the speech peak (0..1), spectral centroid (Hz), high-band ratio."""
    from lipdub.audio.mel import stft_magnitude  # librosa.stft's result without librosa's seconds of import

    wav = np.asarray(wav16k, np.float32)
    spec = stft_magnitude(wav, n_fft=512, hop=hop, win=400, pad_mode="constant") ** 2
    freqs = np.fft.rfftfreq(512, 1 / SR)
    power = spec.sum(axis=0) + 1e-10
    db = 10 * np.log10(power)
    peak = np.percentile(db, 95)
    rel = np.clip((db - (peak - 35.0)) / 35.0, 0.0, 1.0)
    centroid = (spec * freqs[:, None]).sum(axis=0) / power
    high = spec[freqs >= 3500].sum(axis=0) / power
    return rel, centroid, high


def fallback_cues(wav16k: np.ndarray, start: float = 0.0, end: float | None = None) -> list[Cue]:
    """Shapes from loudness and spectrum alone: loud low-centroid sound opens wide, quiet voiced sound
    rounds, hiss shows teeth, dips close the lips. Used where phone recognition fails."""
    from lipdub.media.filters import median_filter

    end = len(wav16k) / SR if end is None else end
    seg = np.asarray(wav16k[int(start * SR): int(end * SR)], np.float32)
    if len(seg) < 400:
        return [Cue(start, end, "X")]
    rel, centroid, high = _frame_features(seg)
    labels = np.full(len(rel), SHAPE_INDEX["B"])
    voiced = high < 0.35
    labels[voiced & (rel > 0.45) & (centroid < 900)] = SHAPE_INDEX["E"]
    labels[voiced & (rel > 0.45) & (centroid >= 900)] = SHAPE_INDEX["C"]
    labels[voiced & (rel > 0.75) & (centroid < 1800)] = SHAPE_INDEX["D"]
    labels[voiced & (rel > 0.2) & (rel <= 0.45) & (centroid < 600)] = SHAPE_INDEX["F"]
    labels[rel < 0.2] = SHAPE_INDEX["A"]
    labels = median_filter(labels, size=7, mode="nearest")
    cues: list[Cue] = []
    bounds = np.flatnonzero(np.diff(labels)) + 1
    for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(labels)], strict=True):
        cues.append(Cue(start + a * 0.01, min(end, start + b * 0.01), SHAPES[labels[a]]))
    cues[-1].end = end
    return cues


# ---------------------------------------------------------------- cue extraction

def _merge(cues: list[Cue]) -> list[Cue]:
    """Join neighbours with the same shape and phone-less rests; drop empty cues."""
    out: list[Cue] = []
    for c in cues:
        if c.end - c.start <= 1e-6:
            continue
        if out and out[-1].shape == c.shape and (c.shape == "X" or out[-1].phone == c.phone):
            out[-1].end = c.end
        else:
            out.append(Cue(c.start, c.end, c.shape, c.phone))
    return out


def _drop_short(cues: list[Cue], min_dur: float) -> list[Cue]:
    """Give cues shorter than `min_dur` to their longer neighbour (closures A are kept: lips must meet)."""
    cues = list(cues)
    changed = True
    while changed and len(cues) > 1:
        changed = False
        for i, c in enumerate(cues):
            if c.end - c.start >= min_dur - 1e-6 or c.shape == "A":
                continue
            prev = cues[i - 1] if i > 0 else None
            nxt = cues[i + 1] if i + 1 < len(cues) else None
            if nxt is None or (prev is not None and prev.end - prev.start >= nxt.end - nxt.start):
                prev.end = c.end
            else:
                nxt.start = c.start
            del cues[i]
            changed = True
            break
    return cues


def _silence_mask(wav16k: np.ndarray, cues_grid: int) -> np.ndarray:
    """Speech flags on a 10 ms grid from silero-vad (hysteresis 0.5 / 0.35)."""
    from lipdub.audio import vad

    segments = vad.speech_segments(wav16k, min_silence=0.15, pad=0.04)
    speech = np.zeros(cues_grid, bool)
    for s, e in segments:
        speech[int(round(s * 100)): int(round(e * 100))] = True
    return speech


def extract_cues(wav16k: np.ndarray, fps: float | None = None, method: str = "auto", text: str | None = None,
                 lang: str | None = None, progress: Callable[[int, int], None] | None = None) -> list[Cue]:
    """Timed mouth cues covering the whole audio.

    method: 'phones' (PocketSphinx), 'energy' (loudness/spectrum fallback only) or 'auto' (phones, with the
    fallback for speech stretches the recogniser leaves mostly silent). `text`: the transcript, spoken in `lang`
    (en, nl, de, fr, ...): its phones are aligned to the audio instead of recognised. `lang` English without a
    text: phones through the recognised words (words.py: slower, fewer mid-vowel closures). Silence found by the
    voice-activity detector is always rest (X). `fps` sets the shortest cue (one frame; 40 ms if None).
    `progress(done, total)`: called after each stretch of speech recognised, in PROGRESS_STEP_S frames of speech.
    """
    wav = np.asarray(wav16k, np.float32).reshape(-1)
    duration = len(wav) / SR
    if duration <= 0:
        return []
    grid = int(np.ceil(duration * 100))
    speech = _silence_mask(wav, grid)
    phones: list[tuple[str, float, float]] = []
    if text and text.strip():
        from lipdub.audio.align import align

        phones = align(wav, text, lang or "en").phones
    elif method != "energy":
        runs, done = _runs(speech), 0
        total = sum(b - a for a, b in runs)
        if progress is not None:
            progress(0, total)
        for a, b in runs:  # decode only around speech: silence costs nothing
            lo, hi = max(0, a - 30), min(grid, b + 30)
            try:
                found = recognize(wav[lo * 160: hi * 160], lang)
            except Exception:  # the decoder failed on this stretch: the fallback covers it
                found = []
            phones += [(p, s + lo / 100, e + lo / 100) for p, s, e in found]
            done += b - a
            if progress is not None:
                progress(done, total)
    # shape id per 10 ms from the phones, then the fallback where speech has no phones
    labels = np.full(grid, -1, np.int64)
    phone_at = np.full(grid, "", object)
    for cue in phones_to_cues(phones):
        a, b = int(round(cue.start * 100)), int(round(cue.end * 100))
        if cue.phone and cue.end - cue.start > MAX_PHONE_S:
            continue  # no phone lasts that long: the decoder lost its way here, the fallback takes over
        labels[a:b] = SHAPE_INDEX[cue.shape]
        phone_at[a:b] = cue.phone or ""
    labels[~speech] = SHAPE_INDEX["X"]
    for a, b in _runs(speech):
        spans = [(a, b)] if method == "energy" or np.mean(labels[a:b] > 0) < 0.5 else [
            (a + i, a + j) for i, j in _runs(labels[a:b] < 0) if j - i >= 10]
        for lo, hi in spans:
            for c in fallback_cues(wav, lo / 100, hi / 100):
                i, j = int(round(c.start * 100)), int(round(c.end * 100))
                labels[i:j] = SHAPE_INDEX[c.shape]
                phone_at[i:j] = ""
    labels[labels < 0] = SHAPE_INDEX["X"]
    _pause_shapes(labels, speech)
    cues = []
    change = np.flatnonzero((np.diff(labels) != 0) | (phone_at[1:] != phone_at[:-1])) + 1
    for a, b in zip(np.r_[0, change], np.r_[change, grid], strict=True):
        cues.append(Cue(a / 100, min(b / 100, duration), SHAPES[labels[a]], phone_at[a] or None))
    min_dur = 1.0 / fps if fps else 0.04
    cues = in_betweens(timing_rules(_merge(_drop_short(_merge(cues), min_dur))))
    cues[-1].end = duration
    return [Cue(round(c.start, 3), round(c.end, 3), c.shape, c.phone, c.tween) for c in cues]


def timing_rules(cues: list[Cue]) -> list[Cue]:
    """Rhubarb's co-articulation timing on a cue list: rounded vowels reach back up to 200 ms into the flexible
    consonants before them; lips close CLOSE_LEAD_S before a plosive (taking it from the previous cue, which
    keeps at least 40 ms)."""
    cues = [Cue(c.start, c.end, c.shape, c.phone) for c in cues]
    for i, c in enumerate(cues):
        if c.shape not in ROUNDED:
            continue
        j = i - 1
        while j >= 0 and _flexible(cues[j]) and c.start - cues[j].start <= VOWEL_LEAD_S:
            cues[j].shape = c.shape
            j -= 1
    for prev, c in zip(cues, cues[1:], strict=False):
        if c.shape == "A" and prev.shape != "A":
            shift = min(CLOSE_LEAD_S, max(prev.end - prev.start - 0.04, 0.0))
            prev.end -= shift
            c.start -= shift
    return _merge(cues)


def _pause_shapes(labels: np.ndarray, speech: np.ndarray) -> None:
    """Rhubarb's pauses, in place on the 10 ms shape labels: where the voice-activity detector hears a pause
    between speech, under 120 ms the mouth holds its shape, up to 350 ms it relaxes (B, or C before a B),
    longer it closes (X); before closed lips (A) it stays closed. (The recogniser's own short silences inside
    speech stay closed: they are mostly the silent closure of a stop.)"""
    for a, b in _runs(~speech):
        if a == 0 or b == len(speech) or labels[b] == SHAPE_INDEX["A"] or (b - a) / 100 > RELAX_PAUSE_S:
            continue
        relaxed = SHAPE_INDEX["C"] if labels[b] == SHAPE_INDEX["B"] else SHAPE_INDEX["B"]
        labels[a:b] = labels[a - 1] if (b - a) / 100 < HOLD_PAUSE_S else relaxed


def in_betweens(cues: list[Cue]) -> list[Cue]:
    """Rhubarb's in-between shapes: where the mouth would jump (TWEENS), a 40-80 ms shape between the two,
    a third (early/late) or a quarter (centred) of the cues it takes its time from; none under 40 ms."""
    out = [Cue(c.start, c.end, c.shape, c.phone) for c in cues]
    tweens: list[Cue] = []
    for first, second in zip(out, out[1:], strict=False):
        rule = TWEENS.get((first.shape, second.shape))
        if rule is None:
            continue
        shape, timing = rule
        a, b = first.end - first.start, second.end - second.start
        d = min({"early": a / 3, "late": b / 3, "centred": min(a, b) / 4}[timing], TWEEN_S[1])
        if d < TWEEN_S[0] - 1e-6:
            continue
        start = {"early": first.end - d, "late": first.end, "centred": first.end - d / 2}[timing]
        tweens.append(Cue(start, start + d, shape, None, tween=True))
    for t in tweens:  # each takes at most a third of a neighbour, so neighbours keep time of their own
        for c in out:
            if c.start < t.start < c.end:
                c.end = t.start
            if c.start < t.end < c.end:
                c.start = t.end
    return sorted(out + tweens, key=lambda c: c.start)


def _flexible(cue: Cue) -> bool:
    """A consonant whose lips are free to take the next vowel's shape (K, S, T, N... but not P, F, L)."""
    return cue.shape == "B" and cue.phone is not None and cue.phone not in VOWELS


def _hold(cues: list[Cue], min_dur: float = MIN_HOLD_S, keep: float = 0.04) -> list[Cue]:
    """Grow every cue shorter than `min_dur` on both sides until it is held that long, taking the time from
    neighbours that keep at least `keep` seconds (Rhubarb's minimum hold, for the animation only); closed
    lips (A, X) give no time: the lips must still meet there."""
    cues = [Cue(c.start, c.end, c.shape, c.phone, c.tween) for c in cues]
    for i, c in enumerate(cues):
        need = min_dur - (c.end - c.start)
        if need <= 0 or c.tween:
            continue
        if i > 0 and cues[i - 1].shape not in SHUT:
            take = min(need / 2, max(cues[i - 1].end - cues[i - 1].start - keep, 0.0))
            cues[i - 1].end -= take
            c.start -= take
            need -= take
        if i + 1 < len(cues) and cues[i + 1].shape not in SHUT:
            take = min(need, max(cues[i + 1].end - cues[i + 1].start - keep, 0.0))
            cues[i + 1].start += take
            c.end += take
    return cues


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs of the True runs."""
    padded = np.r_[False, flags, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


# ---------------------------------------------------------------- per-frame weights

def cue_track(cues: list[Cue], fps: float, n_frames: int) -> np.ndarray:
    """Per-frame shape weights `(n_frames, len(SHAPES))` (rows sum to 1) after co-articulation: each shape
    is held at least 70 ms, eased in and out with a Gaussian, weighed by its dominance (closures win) and
    averaged over the frame's time span (centred on i / fps), so no shape flashes for a single frame."""
    step = 0.005
    total = max(n_frames / fps, cues[-1].end if cues else 0.0)
    n = int(np.ceil(total / step)) + 1
    ind = np.zeros((n, len(SHAPES)), np.float32)
    ind[:, 0] = 1e-3
    for c in _hold(cues):
        a = max(0, int(round((c.start - ANTICIPATION_S) / step)))
        b = max(a + 1, int(round((c.end - ANTICIPATION_S) / step)))
        ind[a:b] = 0
        ind[a:b, SHAPE_INDEX[c.shape]] = 1
    tail = int(round(((cues[-1].end if cues else 0.0) - ANTICIPATION_S) / step))
    ind[max(tail, 0):] = 0
    ind[max(tail, 0):, 0] = 1
    from lipdub.media.filters import gaussian_filter1d

    smooth = gaussian_filter1d(ind * DOMINANCE, BLEND_S / step, axis=0, mode="nearest")
    smooth /= smooth.sum(axis=1, keepdims=True)
    edges = np.round((np.arange(n_frames + 1) - 0.5) / fps / step).astype(int).clip(0, n - 1)  # centred on i / fps
    cum = np.concatenate([np.zeros((1, len(SHAPES))), np.cumsum(smooth, axis=0)])
    width = np.maximum(edges[1:] - edges[:-1], 1)[:, None]
    track = (cum[np.minimum(edges[:-1] + width[:, 0], n)] - cum[edges[:-1]]) / width
    track = np.clip(track, 0, None)
    track /= np.maximum(track.sum(axis=1, keepdims=True), 1e-9)
    return _no_single_frames(track).astype(np.float32)


def phone_track(cues: list[Cue], fps: float, n_frames: int, phones: tuple[str, ...]) -> np.ndarray:
    """Per frame, 0 .. 1: how much the cues of these phones sound at the frame's time (i / fps), eased in and
    out like the shapes (BLEND_S)."""
    from lipdub.media.filters import gaussian_filter1d

    step = 0.005
    n = int(np.ceil(max(n_frames / fps, cues[-1].end if cues else 0.0) / step)) + 1
    inside = np.zeros(n, np.float32)
    for c in cues:
        if c.phone in phones:
            inside[int(round(c.start / step)): int(round(c.end / step))] = 1.0
    eased = gaussian_filter1d(inside, BLEND_S / step, mode="nearest")
    return eased[np.minimum(np.round(np.arange(n_frames) / fps / step).astype(int), n - 1)].astype(np.float32)


def _no_single_frames(track: np.ndarray, passes: int = 6) -> np.ndarray:
    """Where a shape would lead for one frame between frames of another shape (a flash), ease that frame
    toward its neighbours (a closure is held one frame longer instead, so the lips still meet)."""
    track = track.copy()
    closed = SHAPE_INDEX["A"]
    for _ in range(passes):
        top = track.argmax(axis=1)
        lone = np.flatnonzero((top[1:-1] != top[:-2]) & (top[:-2] == top[2:])) + 1  # a flash: X Y X
        if len(lone) == 0:
            break
        for i in lone:
            if top[i] == closed:
                j = i - 1 if track[i - 1, closed] >= track[i + 1, closed] else i + 1
                track[j] = track[i]
            else:
                track[i] = 0.4 * track[i] + 0.3 * (track[i - 1] + track[i + 1])
    return track


def loudness_envelope(wav16k: np.ndarray, fps: float, n_frames: int | None = None) -> np.ndarray:
    """Per-frame loudness in [0, 1] relative to the speech peak (35 dB range), for scaling how wide the mouth
    opens: louder syllables open the jaw further."""
    rel, _, _ = _frame_features(np.asarray(wav16k, np.float32)) if len(wav16k) >= 400 else (np.zeros(1), 0, 0)
    n_frames = int(np.ceil(len(wav16k) * fps / SR)) if n_frames is None else n_frames
    t = (np.arange(n_frames) + 0.5) / fps
    return np.interp(t, np.arange(len(rel)) * 0.01, rel).astype(np.float32)


# ---------------------------------------------------------------- exports

def to_json(cues: list[Cue], sound_file: str | None = None) -> str:
    """Rhubarb-style JSON (`metadata`, `mouthCues` with start/end/value) plus each cue's phone and shape name."""
    duration = cues[-1].end if cues else 0.0
    doc = {
        "metadata": {"soundFile": sound_file, "duration": round(duration, 3)},
        "mouthCues": [{"start": round(c.start, 3), "end": round(c.end, 3), "value": c.shape,
                       "phone": c.phone, "name": SHAPE_NAMES[c.shape]} for c in cues],
    }
    return json.dumps(doc, indent=1)


def from_json(text: str) -> list[Cue]:
    """Read cues back from `to_json` output (or a Rhubarb JSON file)."""
    doc = json.loads(text)
    return [Cue(float(c["start"]), float(c["end"]), str(c["value"]), c.get("phone")) for c in doc["mouthCues"]]


def to_rhubarb_tsv(cues: list[Cue]) -> str:
    """Rhubarb's TSV: one `time<TAB>shape` line where the shape changes, then the end time with X."""
    lines = [f"{c.start:.2f}\t{c.shape}" for i, c in enumerate(cues) if i == 0 or cues[i - 1].shape != c.shape]
    if cues:
        lines.append(f"{cues[-1].end:.2f}\tX")
    return "\n".join(lines) + "\n"

