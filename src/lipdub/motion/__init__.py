"""lipdub.motion: a photo that talks also blinks, breathes, lifts its brows and moves its head.

Sits between faces and engines: the engine draws the mouth on the still, and the pipeline then moves each
output frame with `Motion.apply(i, frame)`, so the mouth moves with the head (either engine) while the engines
keep their per-face set-up and pose caches; `Motion.frame(i)` gives the moved photo and its moved faces.
`plan` decides what each face does from its speech, `warp` moves the pixels and the landmarks, `sheet`
draws frames over time for a person to check.
"""

from lipdub.motion.layer import Motion
from lipdub.motion.plan import STYLES, Controls, Voice, plan_face, voice_of
from lipdub.motion.warp import HeadWarp, eye_aspect_ratio

__all__ = ["STYLES", "Controls", "HeadWarp", "Motion", "Voice", "eye_aspect_ratio", "plan_face", "voice_of"]
