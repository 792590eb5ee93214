"""Audio in and out: decode any audio (or a video's soundtrack) to float32, check it has speech, write wav/flac."""

from __future__ import annotations

import os
from collections.abc import Iterator

import av
import numpy as np
import soxr

from lipdub.errors import LipdubError, MediaError
from lipdub.media.atomic import atomic_output
from lipdub.media.info import open_input

SAMPLE_RATE = 16000  # Hz, the working rate: analysis (mel, VAD, cues) and engines all run on 16 kHz mono
SILENCE_DBFS = -60.0
MAX_CHANNELS = 64  # FFmpeg's limit: an array with more rows is (n, channels) passed the wrong way round
MAX_WRITE_CHANNELS = 8  # 7.1, the widest audio the writers encode


def load_audio(path: str | os.PathLike[str], sr: int | None = SAMPLE_RATE, mono: bool = True) -> np.ndarray:
    """Decode the first audio stream to float32 in [-1, 1]: (n,) if `mono`, else (channels, n).

    Any container/codec/sample format PyAV reads. Samples are converted exactly (PCM16 gives int16/32768)
    with av.AudioResampler; mono is the mean of the channels and rate conversion uses soxr 'HQ', i.e. the
    same as `librosa.load(path, sr=sr, mono=mono)` that Wav2Lip uses. `sr=None` keeps the native rate.
    An empty or silent file is returned as is; use `require_speech` where audio is needed.
    """
    with open_input(path) as container:
        if not container.streams.audio:
            raise MediaError("has no audio stream", path)
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        native = stream.codec_context.sample_rate
        channels = 1 if mono else max(1, stream.codec_context.channels or 1)
        rate = sr if sr and native and sr != native else None
        resample = soxr.ResampleStream(native, rate, channels, dtype="float32", quality="HQ") if rate else None
        remaining = _edit_list_samples(container, stream)
        parts: list[np.ndarray] = []
        try:
            for chunk in _decoded_chunks(container, stream):
                if remaining is not None:  # drop the encoder's end padding the mp4 edit list excludes
                    chunk, remaining = chunk[:, :remaining], remaining - min(remaining, chunk.shape[1])
                chunk = to_channels(chunk, channels)
                parts.append(resample.resample_chunk(chunk.T).T if resample else chunk)
        except av.FFmpegError as err:
            raise MediaError(f"audio stream cannot be decoded ({err.strerror})", path) from err
    if resample:
        parts.append(resample.resample_chunk(np.zeros((0, channels), np.float32), last=True).T)
    audio = np.concatenate(parts, axis=1) if parts else np.zeros((channels, 0), np.float32)
    return np.ascontiguousarray(audio[0] if mono else audio, dtype=np.float32)


def _decoded_chunks(container: av.container.InputContainer, stream: av.AudioStream) -> Iterator[np.ndarray]:
    """float32 (channels, n) blocks of the stream, converted exactly by av.AudioResampler (s16 -> /32768)."""
    resampler = av.AudioResampler(format="fltp")
    for packet in container.demux(stream):
        for frame in _decode(packet):
            for out in resampler.resample(frame):
                yield out.to_ndarray()
    for out in resampler.resample(None):
        yield out.to_ndarray()


def _edit_list_samples(container: av.container.InputContainer, stream: av.AudioStream) -> int | None:
    """Exact sample count of an mp4/mov audio track (its edit list says where AAC padding ends), else None."""
    if "mp4" not in container.format.name or not stream.duration or not stream.time_base:
        return None
    return round(stream.duration * stream.time_base * stream.codec_context.sample_rate)


def _decode(packet: av.Packet) -> list[av.AudioFrame]:
    try:
        return packet.decode()
    except av.InvalidDataError:
        return []  # a damaged packet: skip it as players do


def require_speech(audio: np.ndarray, path: str | os.PathLike[str] | None = None) -> np.ndarray:
    """Return `audio` if it holds sound; LipdubError naming the file if it is empty or silent (< -60 dBFS)."""
    if audio.size == 0:
        raise LipdubError("audio is empty", path)
    peak = float(np.max(np.abs(audio)))
    if not np.isfinite(peak):
        raise LipdubError("audio holds invalid (NaN/inf) samples", path)
    if peak < 10 ** (SILENCE_DBFS / 20):
        level = "-inf" if peak == 0 else f"{20 * np.log10(peak):.0f}"
        raise LipdubError(f"audio is silent (peak {level} dBFS)", path)
    return audio


def as_planar(audio: np.ndarray, dtype: type | None = np.float32, max_channels: int = MAX_CHANNELS) -> np.ndarray:
    """C-contiguous (channels, n) audio from (n,) or (channels, n), as `dtype` (None keeps the samples' type).

    ValueError for any other shape or more than `max_channels` rows (a (n, channels) array passed the wrong
    way round); writers pass MAX_WRITE_CHANNELS.
    """
    audio = np.asarray(audio, dtype=dtype)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.shape[0] > max_channels:
        raise ValueError(f"audio must be (n,) or (channels, n), got shape {audio.shape}")
    return np.ascontiguousarray(audio)


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """(c, n) audio as float32 (channels, n), the same way when decoding and when mixing.

    Mono is copied to every channel; mono out is the channel mean (as librosa does); wider audio folds onto
    stereo (front pair kept, the other channels shared by both sides at -3 dB); any other mismatch (a stream
    whose layout changes mid-way) puts the mean in every channel.
    """
    x = x.astype(np.float32, copy=False)
    c = x.shape[0]
    if c == channels:
        return x
    if c == 1:
        return np.repeat(x, channels, axis=0)
    if channels == 1:
        return x.mean(axis=0, keepdims=True)
    if channels == 2:
        rest = x[2:].sum(axis=0) * np.float32(np.sqrt(0.5))
        return np.stack([x[0] + rest, x[1] + rest]) / np.float32(1 + np.sqrt(0.5) * (c - 2) / 2)
    return np.repeat(x.mean(axis=0, keepdims=True), channels, axis=0)


_AUDIO_CODECS = {".wav": ("pcm_s16le", "s16"), ".flac": ("flac", "s16"), ".m4a": ("aac", "fltp"),
                 ".aac": ("aac", "fltp"), ".mp3": ("libmp3lame", "fltp"), ".ogg": ("libvorbis", "fltp"),
                 ".opus": ("libopus", "flt")}


def write_audio(path: str | os.PathLike[str], audio: np.ndarray, rate: int) -> None:
    """Write float32 (n,) or (channels, n) audio atomically: 16-bit wav/flac (or m4a/mp3/ogg by extension)."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in _AUDIO_CODECS:
        raise LipdubError(f"cannot write audio as {ext or 'no extension'} (use .wav or .flac)", path)
    codec, fmt = _AUDIO_CODECS[ext]
    planar = as_planar(np.clip(audio, -1.0, 1.0), max_channels=MAX_WRITE_CHANNELS)
    layout = {1: "mono", 2: "stereo"}.get(planar.shape[0], f"{planar.shape[0]}c")
    with atomic_output(path) as tmp, av.open(str(tmp), "w") as container:
        stream = container.add_stream(codec, rate=int(rate), layout=layout)
        stream.format = fmt
        container.start_encoding()  # a valid (empty) file even with no samples
        step = 65536
        for i in range(0, planar.shape[1], step):
            frame = av.AudioFrame.from_ndarray(planar[:, i:i + step], format="fltp", layout=layout)
            frame.sample_rate, frame.pts = int(rate), i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
