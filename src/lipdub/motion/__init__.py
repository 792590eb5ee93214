"""lipdub.motion: a photo that talks also blinks, breathes, lifts its brows and moves its head.

Sits between faces and engines: the pipeline asks `Motion.frame(i)` for each output frame of a still and
gives the engine the moved frame and the moved face, so the mouth is drawn on the moving head (either engine).
`plan` decides what each face does from its speech, `warp` moves the pixels and the landmarks, `sheet`
draws frames over time for a person to check.
"""

from lipdub.motion.layer import Motion
from lipdub.motion.plan import STYLES, Controls, Voice, plan_face, voice_of
from lipdub.motion.warp import HeadWarp, eye_aspect_ratio

__all__ = ["STYLES", "Controls", "HeadWarp", "Motion", "Voice", "eye_aspect_ratio", "plan_face", "voice_of"]
