"""Encode RGB frames (+ audio) atomically: H.264/AAC in mp4/mov/mkv at an exact constant rate, or PNG frames."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
import soxr
from PIL import Image

from lipdub.errors import LipdubError
from lipdub.media.atomic import atomic_output, is_sequence_pattern
from lipdub.media.audio import MAX_WRITE_CHANNELS, as_planar, write_audio
from lipdub.media.info import as_rate
from lipdub.media.threads import Consumer

CONTAINERS = {".mp4", ".mov", ".mkv", ".m4v"}
AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
SURROUND = {3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}  # ffmpeg's default layouts
BT709 = 1  # ISO/IEC 23091-4 code for BT.709 matrix, primaries and transfer
LIMITED = 1  # AVCOL_RANGE_MPEG: Y in 16..235, U/V in 16..240
# frames waiting for the encoder thread: a generator batch (8) at 720p, so writing a batch never waits
ENCODE_QUEUE_BYTES = 24 * 2**20


def sequence_audio_path(pattern: str | os.PathLike[str]) -> Path:
    """Where a PNG sequence's audio goes: the pattern's prefix + `audio.wav` (`frames/%05d.png` -> frames/audio.wav)."""
    pattern = Path(pattern)
    prefix = re.split(r"%0?\d*d", pattern.name, maxsplit=1)[0]
    return pattern.parent / f"{prefix}audio.wav"


def downmix_to_stereo(audio: np.ndarray, rate: int) -> np.ndarray:
    """(channels, n) surround audio (default layout for its channel count, e.g. 5.1) to (2, n) stereo."""
    layout = SURROUND.get(audio.shape[0], f"{audio.shape[0]}c")
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, np.float32), format="fltp", layout=layout)
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
    out = [f.to_ndarray() for f in [*resampler.resample(frame), *resampler.resample(None)]]
    return np.concatenate(out, axis=1)[:, : audio.shape[1]]


def bt709_limited(kr: float = 0.2126, kb: float = 0.0722) -> np.ndarray:
    """The 3x4 matrix (R, G, B, 1) in 0..255 -> (Y, U, V) in BT.709 limited range ("tv" levels)."""
    kg = 1 - kr - kb
    y = np.array([kr, kg, kb]) * 219 / 255
    u = np.array([-kr, -kg, 1 - kb]) / (2 * (1 - kb)) * 224 / 255
    v = np.array([1 - kr, -kg, -kb]) / (2 * (1 - kr)) * 224 / 255
    return np.array([[*y, 16], [*u, 128], [*v, 128]])


def swscale_yuv420(rgb: np.ndarray) -> av.VideoFrame:
    """An (H, W, 3) uint8 RGB frame -> yuv420p (BT.709, limited range) by swscale: PyAV's copy, then its reformat."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    return frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")


class Yuv420:
    """RGB frames of one even size -> yuv420p BT.709 limited-range frames, as swscale makes them (+-1 level).

    Luma per pixel; chroma sited as swscale's default: each sample is the mean of a pixel pair horizontally and
    the [1, 3, 3, 1]/8 weighted rows 2k-1..2k+2 vertically (edge rows repeated), summed exactly in 16 bits.
    OpenCV releases the GIL, so the caller's thread converts while the encoder thread encodes; the scratch
    buffers are reused, only the frame's planes are new.
    """

    CHROMA_SCALE = 32  # the chroma transform's fixed-point output (x32 fits uint16, rounds once at the end)
    # offsets that make the rounding swscale's on average, fitted on real frames and charts (mean difference
    # ~0): OpenCV's 10-bit fixed-point luma lands ~0.06 low, swscale's chroma ~0.08 below the exact value
    LUMA_BIAS, CHROMA_BIAS = 0.06, -0.08

    def __init__(self, width: int, height: int) -> None:
        assert width % 2 == 0 and height % 2 == 0, "yuv420p needs even sizes"
        self.width, self.height = width, height
        self.matrix = bt709_limited()
        self.matrix[:, 3] += [self.LUMA_BIAS, self.CHROMA_BIAS, self.CHROMA_BIAS]
        self.chroma_matrix = self.matrix * self.CHROMA_SCALE
        self.chroma_matrix[:, :3] /= 8  # the rows' weights sum to 8
        self.yuv = np.empty((height, width, 3), np.uint8)
        self.rows = np.empty((height // 2, width, 3), np.uint16)  # rows 2k + 2k+1
        self.outer = np.empty_like(self.rows)  # rows 2k-1 + 2k+2
        self.pairs = np.empty((height // 2, width // 2, 3), np.uint16)
        self.chroma = np.empty_like(self.pairs)
        self.chroma8 = np.empty((height // 2, width // 2, 3), np.uint8)

    def __call__(self, rgb: np.ndarray) -> av.VideoFrame:
        """A new yuv420p frame (tagged BT.709, limited range) of an (H, W, 3) uint8 RGB frame."""
        import cv2  # lazily: reading media needs no OpenCV

        if self.height < 8:  # swscale's chroma rows follow other rules on frames this short: let it convert them
            return swscale_yuv420(rgb)
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        frame.colorspace, frame.color_range = BT709, LIMITED
        y, u, v = (np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width] for p in frame.planes)
        cv2.transform(rgb, self.matrix, dst=self.yuv)
        cv2.extractChannel(self.yuv, 0, dst=y)
        self._chroma_rows(rgb)
        cv2.resize(self.outer, (self.width // 2, self.height // 2), dst=self.pairs, interpolation=cv2.INTER_LINEAR)
        cv2.transform(self.pairs, self.chroma_matrix, dst=self.chroma)
        cv2.convertScaleAbs(self.chroma, dst=self.chroma8, alpha=1 / self.CHROMA_SCALE)
        cv2.mixChannels([self.chroma8], [u, v], [1, 0, 2, 1])
        return frame

    def _chroma_rows(self, rgb: np.ndarray) -> None:
        """self.outer[k] = rows 2k-1 + 3 (2k) + 3 (2k+1) + 2k+2 of `rgb` (the first/last row repeated)."""
        import cv2

        even, odd, outer, last = rgb[0::2], rgb[1::2], self.outer, len(rgb) - 1
        cv2.add(even, odd, dst=self.rows, dtype=cv2.CV_16U)
        cv2.add(rgb[0], rgb[min(2, last)], dst=outer[0], dtype=cv2.CV_16U)
        cv2.add(rgb[max(last - 2, 0)], rgb[last], dst=outer[-1], dtype=cv2.CV_16U)
        if len(outer) > 2:
            cv2.add(odd[:-2], even[2:], dst=outer[1:-1], dtype=cv2.CV_16U)
        cv2.scaleAdd(self.rows, 3.0, outer, dst=outer)


class VideoWriter:
    """Write (H, W, 3) uint8 RGB frames at an exact constant rate; use as a context manager.

    mp4/mov/m4v/mkv: H.264 (libx264, `crf`, yuv420p, BT.709 tagged) + AAC audio, mp4/mov with faststart.
    Frame i has pts i in time base 1/fps (29.97 -> 30000/1001). yuv420p needs even sizes: an odd width or
    height is padded by one replicated edge pixel (H.264 cannot signal a 1-px crop in 4:2:0), so the file is
    at most one pixel wider/taller than the frames. Audio ((n,) or (channels, n) float32 at `audio_rate`;
    surround is downmixed to stereo) starts at 0 and is encoded as the video advances, so muxing stays
    interleaved; all of it is written, even past the last frame.

    A path with a printf pattern (`frames/%05d.png`) writes lossless RGB PNGs numbered from 0 instead
    (the file index is the frame index); audio, if given, goes beside them as `frames/audio.wav`.
    Output is written under a temp name and renamed on success; on error nothing is left behind.
    `write` converts a frame to yuv420p (BT.709, limited range) in the caller's thread; frames are encoded in
    a background thread (a few frames queued at most), so `write` returns while the encoder works; an encoding
    error is raised by a later `write` or when the `with` block ends.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int] | None = None,
                 audio: np.ndarray | None = None, audio_rate: int | None = None, crf: int = 18,
                 preset: str = "fast") -> None:
        self.path = Path(path)
        self.rate = as_rate(fps)
        self.size = size
        self.crf, self.preset = crf, preset
        self.frames_written = 0
        self.sequence = is_sequence_pattern(self.path)
        if not self.sequence and self.path.suffix.lower() not in CONTAINERS:
            raise LipdubError(f"cannot write video as {self.path.suffix or 'no extension'} "
                              f"(use .mp4, .mov, .mkv or a PNG pattern like frames/%05d.png)", self.path)
        self.audio = None if audio is None else as_planar(audio, max_channels=MAX_WRITE_CHANNELS)
        if self.audio is not None and not audio_rate:
            raise ValueError("audio needs audio_rate")
        self.audio_rate = int(audio_rate or 0)
        if self.audio is not None and self.audio.shape[0] > 2:  # surround: ffmpeg's standard stereo downmix
            self.audio = downmix_to_stereo(self.audio, self.audio_rate)
        if self.audio is not None and self.audio_rate not in AAC_RATES:  # e.g. 44000 Hz: AAC cannot store it
            target = min((r for r in AAC_RATES if r >= self.audio_rate), default=max(AAC_RATES))
            self.audio = np.ascontiguousarray(soxr.resample(self.audio.T, self.audio_rate, target, "HQ").T)
            self.audio_rate = target
        self._stack = contextlib.ExitStack()
        self._tmp: Path | None = None
        self._out: av.container.OutputContainer | None = None
        self._video: av.VideoStream | None = None
        self._audio: av.AudioStream | None = None
        self._audio_pos = 0
        self._encoder: Consumer[tuple[int, object]] | None = None
        self._yuv: Yuv420 | None = None  # the caller's thread converts RGB -> yuv420p

    def __enter__(self) -> VideoWriter:
        self._tmp = self._stack.enter_context(atomic_output(self.path))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:  # the caller failed: drop the temp output, keep the old file
            self._abort()
            self._stack.__exit__(exc_type, exc, tb)
            return
        try:
            if self._encoder is not None:
                self._encoder.finish()  # every queued frame encoded, or the encoder's error raised
            self._finish()
        except BaseException:
            self._abort()
            self._stack.__exit__(*sys.exc_info())
            raise
        self._stack.__exit__(None, None, None)  # renames the temp output into place
        if self.sequence and self.audio is not None and self.audio.shape[1]:
            write_audio(sequence_audio_path(self.path), self.audio, self.audio_rate)

    def write(self, rgb: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        if self._tmp is None:
            raise RuntimeError("use VideoWriter as a context manager: `with VideoWriter(...) as w:`")
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
        if self.size is None:
            self.size = (rgb.shape[1], rgb.shape[0])
        if (rgb.shape[1], rgb.shape[0]) != tuple(self.size):
            raise ValueError(f"frame is {rgb.shape[1]}x{rgb.shape[0]}, the video is {self.size[0]}x{self.size[1]}")
        if self._encoder is None:
            queued = rgb.nbytes if self.sequence else rgb.nbytes // 2  # yuv420p: 1.5 bytes a pixel
            self._encoder = Consumer(self._encode, int(min(8, max(2, ENCODE_QUEUE_BYTES // queued))))
        # the queued copy is the writer's own: the caller may reuse `rgb` at once
        self._encoder.submit((self.frames_written, rgb.copy() if self.sequence else self._video_frame(rgb)))
        self.frames_written += 1

    def _encode(self, item: tuple[int, object]) -> None:
        """The encoder thread: frame `index` as a PNG, or into the container."""
        index, frame = item
        if self.sequence:
            Image.fromarray(frame).save(str(self._tmp) % index, format="PNG", compress_level=1)
        else:
            self._write_video(index, frame)

    # ---- container internals -------------------------------------------------------------------------

    def _open(self) -> None:
        assert self._tmp is not None and self.size is not None
        options = {"movflags": "+faststart"} if self.path.suffix.lower() in {".mp4", ".mov", ".m4v"} else {}
        self._out = av.open(str(self._tmp), "w", options=options)
        width, height = (self.size[0] + 1) // 2 * 2, (self.size[1] + 1) // 2 * 2
        video = self._out.add_stream("libx264", rate=self.rate, options={"crf": str(self.crf),
                                                                          "preset": self.preset})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        cc = video.codec_context
        cc.time_base = Fraction(1) / self.rate
        cc.colorspace = cc.color_primaries = cc.color_trc = BT709
        cc.color_range = LIMITED  # "tv" range, what players expect
        self._video = video
        if self.audio is not None and self.audio.shape[1]:
            layout = "mono" if self.audio.shape[0] == 1 else "stereo"
            self._audio = self._out.add_stream("aac", rate=self.audio_rate, layout=layout)
            self._audio.bit_rate = 96_000 * self.audio.shape[0]

    def _video_frame(self, rgb: np.ndarray) -> av.VideoFrame:
        """An RGB frame as a new yuv420p frame, padded to even sizes (yuv420p needs them)."""
        pad_h, pad_w = rgb.shape[0] % 2, rgb.shape[1] % 2
        if pad_h or pad_w:
            rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        if self._yuv is None:
            self._yuv = Yuv420(rgb.shape[1], rgb.shape[0])
        return self._yuv(rgb)

    def _write_video(self, index: int, frame: av.VideoFrame) -> None:
        if self._out is None:
            self._open()
        assert self._out is not None and self._video is not None
        frame.pts, frame.time_base = index, self._video.codec_context.time_base
        for packet in self._video.encode(frame):
            self._out.mux(packet)
        self._write_audio_until(Fraction(index + 1) / self.rate)

    def _write_audio_until(self, seconds: Fraction | None) -> None:
        """Encode the given audio from where it stopped up to `seconds` (None: to its end)."""
        if self._audio is None or self.audio is None or self._out is None:
            return
        end = self.audio.shape[1] if seconds is None else min(self.audio.shape[1],
                                                              int(seconds * self.audio_rate))
        if end <= self._audio_pos:
            return
        chunk = np.ascontiguousarray(self.audio[:, self._audio_pos:end])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self._audio.layout.name)
        frame.sample_rate, frame.pts = self.audio_rate, self._audio_pos
        frame.time_base = Fraction(1, self.audio_rate)
        for packet in self._audio.encode(frame):
            self._out.mux(packet)
        self._audio_pos = end

    def _finish(self) -> None:
        if self.frames_written == 0:
            raise LipdubError("no frames to write", self.path)
        if self._out is None:
            return
        assert self._video is not None
        for packet in self._video.encode(None):
            self._out.mux(packet)
        self._write_audio_until(None)
        if self._audio is not None:
            for packet in self._audio.encode(None):
                self._out.mux(packet)
        self._out.close()  # writes the trailer; an error here must not commit the file
        self._out = None

    def _abort(self) -> None:
        if self._encoder is not None:
            self._encoder.cancel()
            self._encoder = None
        if self._out is not None:
            with contextlib.suppress(av.FFmpegError, OSError):
                self._out.close()
            self._out = None
