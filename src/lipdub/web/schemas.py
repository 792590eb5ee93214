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
    id: int = Field(description="face (track) id to send as `face_id`")
    number: int = Field(description="1-based, left to right, as drawn on the picker")
    box: list[float] = Field(description="x1, y1, x2, y2 in first-frame pixels")
    score: float
    thumbnail: str = Field(description="JPEG data URL")


class FacesOut(BaseModel):
    upload_id: str
    width: int
    height: int
    frame_url: str
    faces: list[FaceOut]
    seconds: float = Field(description="time the detection took on the server")


class SpeakerIn(BaseModel):
    audio: str = Field(description="upload id of this speaker's audio")
    face_id: int | None = None
    start: float = Field(0.0, ge=0)


class JobIn(BaseModel):
    media: str = Field(description="upload id of the picture or video")
    audio: str | None = Field(None, description="upload id of the speech (one speaker)")
    face_id: int | None = Field(None, description="the face that speaks; None: the main face")
    speakers: list[SpeakerIn] = Field(default_factory=list, description="several speakers (replaces audio/face_id)")
    engine: Literal["auto", "viseme", "wav2lip"] = "auto"
    paste: Literal["blend", "box"] = "blend"
    keep_original_audio: bool = False
    duck_db: float = Field(0.0, ge=0, le=60, description="how far the original audio is lowered under speech")


class JobOut(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    stage: str
    percent: float
    eta: float | None = Field(None, description="seconds left, estimated")
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
    auth: bool
