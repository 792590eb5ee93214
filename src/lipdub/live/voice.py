"""A live voice, heard as it arrives: voice activity, loudness and formants every 10 ms, and per video frame
how far the mouth opens and how round it is, once a bounded look-ahead of audio is in.

The same measures as the offline path (`audio.articulation`: loudness x F1 (two readings) for the jaw, low F2
for rounding; silero-vad for activity), computed on the newest audio only: each 10 ms hop is measured once, loudness is
relative to the speaker's running peak instead of the whole recording's, and the smoothing that offline sees
both sides of a frame sees at most `SMOOTH_AHEAD` hops ahead. Frame `i` (audio time `i / fps`) is final once
`need(i)` samples have arrived; the session never holds back more than `lookahead` seconds of audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lipdub.audio import articulation
from lipdub.audio.articulation import HOP_S, LEAD_S, Acoustics
from lipdub.media.audio import SAMPLE_RATE

SR = SAMPLE_RATE
HOP = int(SR * HOP_S)  # 160 samples
HALF_WIN = 200  # a hop's analysis window reaches 12.5 ms past its centre (STFT and LPC alike)
CONTEXT = 2  # hops of audio before the first new hop, so its window is whole
SMOOTH_AHEAD = 0  # hops of the articulation curve past a frame that its smoothing may see
HISTORY = 300  # hops of measures kept (3 s): the jaw and rounding curves are read on this window
PEAK_HISTORY = 1000  # hops (10 s) the running loudness peak is taken over
VAD_CHUNK = 512  # silero-vad's window at 16 kHz (32 ms)
HOLD_S = 0.4  # after speech the mouth may move this long (a breath pause keeps the lips live)


@dataclass(frozen=True)
class FrameControls:
    """One video frame's mouth: index, audio time (s), opening and rounding (0..1), talking (0..1)."""

    index: int
    time: float
    opening: float
    rounding: float
    talking: float


class StreamingVad:
    """silero-vad run on each 512-sample window as it completes. Each session loads its own copy of the
    packaged ONNX model (onnxruntime, one thread), so sessions never share recurrent state and never change
    torch's thread count for the rest of the process."""

    def __init__(self):
        import torch

        threads = torch.get_num_threads()
        from silero_vad import load_silero_vad  # importing silero_vad sets torch to 1 thread; undo that

        self._model = load_silero_vad(onnx=True)
        torch.set_num_threads(threads)
        self.probs: list[float] = []  # per window, from window number `first` on
        self.first = 0

    def feed(self, audio, upto: int) -> None:
        """Run every window that ends at or before sample `upto` and has not run yet (`audio[a:b]`: samples
        a..b of the stream, in absolute numbers)."""
        import torch

        while (self.done + 1) * VAD_CHUNK <= upto:
            k = self.done
            x = torch.from_numpy(np.ascontiguousarray(audio[k * VAD_CHUNK:(k + 1) * VAD_CHUNK]))
            self.probs.append(float(self._model(x, SR).item()))

    @property
    def done(self) -> int:
        """Windows run so far."""
        return self.first + len(self.probs)

    def window(self, a: int, b: int) -> list[float]:
        """Probabilities of windows a .. b-1 (those already dropped are left out)."""
        return self.probs[max(a - self.first, 0):max(b - self.first, 0)]

    def drop_before(self, k: int) -> None:
        """Forget windows before number k (an endless stream keeps a flat memory)."""
        if k - self.first > 1000:
            del self.probs[:k - self.first]
            self.first = k


class _Samples:
    """The recent samples of an endless stream, indexed by absolute sample number."""

    def __init__(self):
        self.start, self.data = 0, np.zeros(0, np.float32)

    @property
    def end(self) -> int:
        return self.start + len(self.data)

    def append(self, x: np.ndarray) -> None:
        self.data = np.concatenate([self.data, x])

    def drop_before(self, sample: int) -> None:
        """Forget samples before `sample` (in steps of a second or more: one copy per step)."""
        if sample - self.start >= SR:
            self.data, self.start = self.data[sample - self.start:].copy(), sample

    def __getitem__(self, s: slice) -> np.ndarray:
        """Samples [s.start, s.stop) in absolute numbers; before the stream began they are zeros."""
        a, b = s.start, s.stop
        if 0 <= a < self.start:
            raise IndexError(f"samples from {a} were dropped (kept from {self.start})")
        lead = max(0, -a)
        out = self.data[max(a, 0) - self.start:b - self.start]
        return np.concatenate([np.zeros(lead, np.float32), out]) if lead else out


class LiveVoice:
    """Audio in, per-frame mouth controls out. `push(samples)` returns the frames that became final."""

    def __init__(self, fps: float = 25.0, lookahead: float = 0.15):
        self.fps = float(fps)
        # the newest frame is at most one frame old, and it needed the curve to its end plus the articulatory
        # lead, SMOOTH_AHEAD hops of smoothing, one hop of rounding up and the last hop's window: whatever the
        # budget leaves is the lead (at most offline's)
        fixed = 2.0 / self.fps + (SMOOTH_AHEAD + 1) * HOP_S + (HALF_WIN + 1) / SR
        if lookahead < fixed:
            raise ValueError(f"lookahead must be at least {fixed * 1000:.0f} ms at {self.fps:g} fps")
        self.lead = min(LEAD_S, lookahead - fixed)
        self.lookahead = lookahead
        self.samples = _Samples()
        self.vad = StreamingVad()
        # per hop since the start, trimmed to PEAK_HISTORY: band dB, F1, F2, low-band centroid (articulation's)
        self._measures = np.zeros((0, 4), np.float32)
        self._first_hop = 0  # absolute hop number of self._measures[0]
        self._hops = 0  # hops measured so far
        self._next_frame = 0
        self._talk_raw: list[float] = []
        _warm_up()


    # ------------------------------------------------------------------------------------- timing

    def last_hop(self, i: int) -> int:
        """The last 10 ms hop of the curve frame i reads (its end plus the lead, plus the smoothing)."""
        return int(np.ceil(((i + 1) / self.fps + self.lead) / HOP_S)) + SMOOTH_AHEAD

    def need(self, i: int) -> int:
        """Samples that must have arrived before frame i is final."""
        return self.last_hop(i) * HOP + HALF_WIN + 1

    @property
    def pushed(self) -> int:
        return self.samples.end

    # ------------------------------------------------------------------------------------- stream

    def push(self, samples: np.ndarray) -> list[FrameControls]:
        """Add float32 mono samples (already checked); return every frame that is now final."""
        self.samples.append(samples)
        return self._ready(self.pushed)

    def flush(self) -> list[FrameControls]:
        """Every frame that starts inside the audio pushed (the look-ahead past the end is silence)."""
        end = self.pushed
        n = int(np.ceil(end * self.fps / SR))
        if n > self._next_frame:
            self.samples.append(np.zeros(max(0, self.need(n - 1) - end), np.float32))
        return [c for c in self._ready(self.pushed) if c.index < n]

    def _ready(self, have: int) -> list[FrameControls]:
        self.vad.feed(self.samples, have)
        last = self._next_frame
        while self.need(last) <= have:
            last += 1
        if last == self._next_frame:
            return []
        self._measure(self.last_hop(last - 1))  # once per batch of final frames: fewer, larger analyses
        out = [self._frame(i) for i in range(self._next_frame, last)]
        self._next_frame = last
        self._forget()
        return out

    def _forget(self) -> None:
        """Drop samples and measures no later frame reads (memory stays flat on an endless stream)."""
        self.samples.drop_before(min(self.vad.done * VAD_CHUNK, (self._hops - CONTEXT) * HOP))
        self.vad.drop_before(int((self._next_frame / self.fps - HOLD_S) * SR) // VAD_CHUNK - 1)
        extra = self.last_hop(self._next_frame) - PEAK_HISTORY - self._first_hop
        if extra > 0:
            self._measures = self._measures[extra:]
            self._first_hop += extra

    def _measure(self, last: int) -> None:
        """Loudness (band dB) and formants of hops self._hops .. last, each once."""
        first = self._hops
        if last < first:
            return
        s0 = (first - CONTEXT) * HOP
        seg = self.samples[s0:last * HOP + HALF_WIN + 1]
        db, centroid = articulation.bands(seg)
        f1, f2 = articulation.formants(seg, np.arange(len(seg) // HOP + 2) >= CONTEXT)
        new = np.stack([x[CONTEXT:CONTEXT + last - first + 1] for x in (db, f1, f2, centroid)], axis=1)
        self._measures = np.concatenate([self._measures, new.astype(np.float32)])
        self._hops = last + 1

    def _acoustics(self, upto: int) -> tuple[Acoustics, int]:
        """Measures of the HISTORY hops up to hop `upto` (absolute), with loudness against the running peak;
        and the absolute number of their first hop."""
        end = upto + 1 - self._first_hop
        start = max(0, end - HISTORY)
        db, f1, f2, centroid = self._measures[start:end].T
        peak = float(np.percentile(self._measures[max(0, end - PEAK_HISTORY):end, 0], 95))
        ac = Acoustics(articulation.loudness(db, peak).astype(np.float32), f1, f2, centroid)
        return ac, self._first_hop + start

    def _frame(self, i: int) -> FrameControls:
        ac, h0 = self._acoustics(self.last_hop(i))
        lead = self.lead + i / self.fps - h0 * HOP_S
        opening = float(articulation.per_frame(articulation.jaw_opening(ac), self.fps, 1, lead)[0])
        rounding = float(articulation.per_frame(articulation.lip_rounding(ac), self.fps, 1, lead)[0])
        talking = self._talking(i)
        return FrameControls(i, i / self.fps, opening * talking, rounding * talking, talking)

    def _talking(self, i: int) -> float:
        """1 while silero hears speech around frame i (up to HOLD_S after it), 0 in silence; eased over three
        frames. Only windows that have arrived count."""
        t = i / self.fps
        lo = max(0, int((t - HOLD_S) * SR) // VAD_CHUNK)
        probs = self.vad.window(lo, self.need(i) // VAD_CHUNK)
        self._talk_raw.append(1.0 if probs and max(probs) >= 0.5 else 0.0)
        del self._talk_raw[:-3]
        return float(np.mean(self._talk_raw))


def _warm_up() -> None:
    """Run the analysis once on a little noise, so the first pushed chunk does not pay for the libraries'
    first-call set-up (imports, FFT plans), a second or more on a slow machine."""
    noise = np.random.default_rng(0).normal(0, 0.01, 2000).astype(np.float32)
    articulation.bands(noise)
    articulation.formants(noise)
