"""The REST API's request and response bodies (pydantic), which also document it in OpenAPI."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class UploadOut(BaseModel):
    id: str
    name: str = Field(description="the client's file name, for display only")
    kind: Literal["image", "video", "audio"]
    size: int
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    num_frames: int | None = None
    duration: float | None = None
    has_audio: bool | None = None
    frame_url: str | None = Field(None, description="first frame as JPEG (pictures and videos)")


class FaceOut(BaseModel):
    id: int = Field(description="person id to send as `face_id`: one person, who may appear in several shots")
    number: int = Field(description="1-based, by first appearance then left to right, as drawn on the picker")
    box: list[float] | None = Field(description="x1, y1, x2, y2 in first-frame pixels; None if not in it")
    score: float | None = None
    start: float = Field(description="first seen, seconds")
    end: float = Field(description="last seen, seconds")
    spans: list[list[float]] = Field(description="[start, end] seconds of each of its tracks (one per shot it is in)")
    thumbnail: str | None = Field(description="JPEG data URL of the face at its best (largest) view")


class FacesOut(BaseModel):
    upload_id: str
    width: int
    height: int
    frame_url: str
    faces: list[FaceOut]
    seconds: float = Field(description="time the detection took on the server")


MAX_FACE_ID = 100_000
MAX_START = 24 * 3600.0  # a schema bound; the server's max_duration bounds where the speech may end


class SpeakerIn(BaseModel):
    audio: str = Field(description="upload id of this speaker's audio")
    face_id: int | None = Field(None, ge=0, le=MAX_FACE_ID)
    start: float = Field(0.0, ge=0, le=MAX_START, description="seconds into the video where this speech starts; "
                                                              "it must end within the server's max_duration")


class JobIn(BaseModel):
    media: str = Field(description="upload id of the picture or video")
    audio: str | None = Field(None, description="upload id of the speech (one speaker)")
    face_id: int | None = Field(None, ge=0, le=MAX_FACE_ID,
                                description="the person who speaks (an id of the faces list); None: the main face")
    speakers: list[SpeakerIn] = Field(default_factory=list, description="several speakers (replaces audio/face_id)")
    engine: Literal["auto", "viseme", "wav2lip"] = "auto"
    paste: Literal["blend", "box"] = "blend"
    keep_original_audio: bool = False
    duck_db: float = Field(0.0, ge=0, le=60, description="how far the original audio is lowered under speech")
    silence: Literal["auto", "rest", "animate"] = Field(
        "auto", description="the neural mouth while the speaker is silent: rest (back to the original), animate")
    motion: Literal["natural", "none", "lively", "idle"] | None = Field(
        None, description="head motion for a photo (when this server's lipdub has it; see /api/config)")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="makes the motion repeatable")
    lang: Literal["en"] | None = Field(
        None, description="'en': the speech is English: the viseme engine takes its phones from the recognised words "
        "(fewer lip closures mid-vowel; reading the speech then takes about as long as it lasts)")


class JobOut(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    stage: str
    percent: float
    eta: float | None = Field(None, description="seconds left, estimated (queued: until it ends)")
    queue_position: int | None = Field(None, description="queued: 1 = the next to start")
    error: str | None = None
    created: float
    started: float | None = None
    finished: float | None = None
    params: dict
    result: dict | None = None
    result_url: str | None = None


class ConfigOut(BaseModel):
    engines: list[str]
    default_engine: str
    max_upload_bytes: int
    max_duration: float
    workers: int
    motion: bool = Field(description="jobs accept `motion` and `seed`")
    auth: bool = Field(description="every call needs the token")
    public: bool = Field(description="public mode: each browser sees only its own uploads and jobs")
