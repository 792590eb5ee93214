"""lipdub.live: a photo that talks along with a live voice, in real time on a CPU.

`LiveSession(photo)` sets the face up once; `push(chunk)` takes float32 mono 16 kHz audio of any length and
returns the frames that are final as `(seconds, RGB array)`; `close()` flushes. `voice.LiveVoice` is the
streaming analysis (voice activity, loudness and formants with a bounded look-ahead) behind it.
"""

from lipdub.live.session import ChunkError, LiveSession, check_chunk
from lipdub.live.voice import FrameControls, LiveVoice

__all__ = ["ChunkError", "FrameControls", "LiveSession", "LiveVoice", "check_chunk"]
