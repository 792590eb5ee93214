"""The REST API under /api (uploads, faces, jobs, progress as SSE, ranged result download) that the page uses."""

from __future__ import annotations

import asyncio
import math
import mimetypes
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse

from lipdub.errors import LipdubError, MediaError
from lipdub.web.config import WebSettings
from lipdub.web.picker import ClientGone, FacePicker
from lipdub.web.schemas import ConfigOut, FacesOut, JobIn, JobOut, UploadOut
from lipdub.web.sessions import SCOPE_KEY, Visitor
from lipdub.web.store import TERMINAL, Job, Store, Upload
from lipdub.web.uploads import UploadTooLarge, accept, frame_path, mb_text, new_id, save_stream
from lipdub.web.worker import JobQueue

SSE_POLL = 0.25
SSE_KEEPALIVE = 15.0


@dataclass
class WebContext:
    """What every route needs: settings, the store, the queue and the data folders."""

    settings: WebSettings
    store: Store
    queue: JobQueue
    data_dir: Path
    picker: FacePicker

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    def job_dir(self, job_id: str) -> Path:
        return self.data_dir / "jobs" / job_id

    def engines(self) -> list[str]:
        return ["viseme", "wav2lip"] if self.settings.resolved_checkpoint() else ["viseme"]


def ctx_of(request: Request) -> WebContext:
    return request.app.state.ctx


# what <video>, <img> and EventSource load: they cannot send a header, so these GETs may carry `?token=`
QUERY_TOKEN_PATHS = re.compile(r"/api/(jobs/[^/]+/(result|events)|uploads/[^/]+/(frame\.jpg|file))")


def presented_token(request: Request) -> str:
    """The token the request carries: the Bearer header, or `?token=` only on the GET routes a media element or
    EventSource loads (a token in a URL ends up in history and logs)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:]
    if request.method in ("GET", "HEAD") and QUERY_TOKEN_PATHS.fullmatch(request.url.path):
        return request.query_params.get("token", "")
    return ""


def _token_ok(request: Request) -> bool:
    token = ctx_of(request).settings.token or ""
    return bool(token) and secrets.compare_digest(presented_token(request).encode(), token.encode())


def require_token(request: Request) -> None:
    """Bearer token check. In public mode visitors need none (their session cookie says who they are); a token
    given there must be the admin's."""
    settings = ctx_of(request).settings
    if not settings.token or (settings.public and not presented_token(request)):
        return
    if not _token_ok(request):
        raise HTTPException(401, "missing or wrong token (send 'Authorization: Bearer <token>')",
                            headers={"WWW-Authenticate": "Bearer"})


def visitor_of(request: Request) -> Visitor:
    """Who asks. Outside public mode everyone with access sees everything."""
    settings = ctx_of(request).settings
    if not settings.public or _token_ok(request):
        return Visitor(owner=None, admin=True)
    return Visitor(owner=request.scope[SCOPE_KEY], admin=False)


router = APIRouter(prefix="/api", dependencies=[Depends(require_token)])

RAW_BODY = {"requestBody": {"required": True, "description": "the file's bytes, streamed",
                            "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                "format": "binary"}}}}}


# ---- helpers
def upload_out(up: Upload) -> UploadOut:
    frame = f"/api/uploads/{up.id}/frame.jpg" if up.kind in ("image", "video") else None
    return UploadOut(id=up.id, name=up.name, kind=up.kind, size=up.size, frame_url=frame,
                     **{k: up.info.get(k) for k in ("width", "height", "fps", "num_frames", "duration", "has_audio")})


def job_out(job: Job, ctx: WebContext | None = None) -> JobOut:
    """The job as the API shows it; with `ctx`, a queued job also gets its place in the queue and an ETA."""
    url = f"/api/jobs/{job.id}/result" if job.state == "done" else None
    eta, position = job.eta, None
    if job.state == "queued" and ctx is not None:
        position, typical = ctx.store.queue_position(job), ctx.store.typical_seconds()
        if typical is not None:  # rounds of `workers` jobs ahead, then its own run
            eta = typical * (math.ceil(position / ctx.settings.workers) + 1)
    return JobOut(id=job.id, state=job.state, stage=job.stage, percent=job.percent, eta=eta, error=job.error,
                  queue_position=position,
                  created=job.created, started=job.started, finished=job.finished, params=job.params,
                  result={k: v for k, v in job.result.items() if k != "output"} if job.result else None,
                  result_url=url)


def get_upload_or_404(request: Request, upload_id: str) -> Upload:
    """The upload, if it exists and the visitor may see it (others' are 404, as if they did not exist)."""
    up = ctx_of(request).store.get_upload(upload_id)
    if up is None or not visitor_of(request).sees(up.owner):
        raise HTTPException(404, f"unknown upload {upload_id!r}")
    return up


def get_job_or_404(request: Request, job_id: str) -> Job:
    job = ctx_of(request).store.get_job(job_id)
    if job is None or not visitor_of(request).sees(job.owner):
        raise HTTPException(404, f"unknown job {job_id!r}")
    return job


# ---- config
@router.get("/config", response_model=ConfigOut, summary="Engines available and the server's limits")
def config(request: Request) -> ConfigOut:
    ctx = ctx_of(request)
    engines = ctx.engines()
    return ConfigOut(engines=engines, default_engine=engines[-1], max_upload_bytes=ctx.settings.max_upload_bytes,
                     max_duration=ctx.settings.max_duration, workers=ctx.settings.workers,
                     auth=bool(ctx.settings.token) and not ctx.settings.public, public=ctx.settings.public,
                     motion=True)


# ---- uploads
@router.post("/uploads", status_code=201, response_model=UploadOut, openapi_extra=RAW_BODY,
             summary="Upload a picture, video or audio file (raw body, streamed to disk)",
             responses={413: {"description": "larger than the size limit"},
                        422: {"description": "not a readable picture/video/audio, or too long"}})
async def create_upload(request: Request, name: str = Query("upload", max_length=255,
                                                            description="file name, for display")) -> UploadOut:
    ctx, who = ctx_of(request), visitor_of(request)
    limit = ctx.settings.max_upload_bytes
    what = f"this server's limit of {mb_text(limit)}"
    if not who.admin:  # public mode: what this visitor has left of their quota
        quota = int(ctx.settings.quota_mb * 1e6)
        left = quota - (await run_in_threadpool(ctx.store.usage, who.owner))[1]
        if left < limit:
            limit, what = max(left, 0), f"what is left of your {mb_text(quota)} (delete some uploads first)"
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"{name}: file is larger than {what}")
    ctx.tmp_dir.mkdir(parents=True, exist_ok=True)
    ctx.uploads_dir.mkdir(parents=True, exist_ok=True)
    part = ctx.tmp_dir / f"{new_id()}.part"
    try:
        size = await save_stream(request.stream(), part, limit)
    except UploadTooLarge as err:
        raise HTTPException(413, f"{name}: file is larger than {what}") from err
    if size == 0:
        part.unlink(missing_ok=True)
        raise HTTPException(422, f"{name}: the file is empty")
    try:
        up = await run_in_threadpool(accept, part, name, size, ctx.uploads_dir, ctx.settings.max_duration)
    except LipdubError as err:
        raise HTTPException(422, str(err)) from err
    up.owner = who.owner
    await run_in_threadpool(ctx.store.add_upload, up)
    return upload_out(up)


@router.get("/uploads/{upload_id}", response_model=UploadOut, summary="An upload's media facts")
def read_upload(upload_id: str, request: Request) -> UploadOut:
    return upload_out(get_upload_or_404(request, upload_id))


@router.get("/uploads/{upload_id}/frame.jpg", response_class=FileResponse, summary="First frame as JPEG")
def read_frame(upload_id: str, request: Request) -> FileResponse:
    up = get_upload_or_404(request, upload_id)
    if up.kind == "audio":
        raise HTTPException(422, f"{up.name}: an audio file has no picture")
    return FileResponse(frame_path(up.path), media_type="image/jpeg")


@router.get("/uploads/{upload_id}/file", response_class=FileResponse,
            summary="The uploaded file itself (HTTP Range supported), for the page's before/after view")
def read_file(upload_id: str, request: Request) -> FileResponse:
    up = get_upload_or_404(request, upload_id)
    return FileResponse(up.path, media_type=mimetypes.guess_type(up.path.name)[0] or "application/octet-stream")


@router.get("/uploads/{upload_id}/faces", response_model=FacesOut,
            summary="Every person of the picture or video: ids, first-frame boxes, best-view thumbnails, "
                    "the time spans of their tracks (cached per content)")
async def read_faces(upload_id: str, request: Request) -> FacesOut | Response:
    ctx = ctx_of(request)
    up = await run_in_threadpool(get_upload_or_404, request, upload_id)
    if up.kind == "audio":
        raise HTTPException(422, f"{up.name}: is an audio file; faces need a picture or a video")
    t0 = time.perf_counter()
    try:
        faces = await ctx.picker.faces(up, gone=request.is_disconnected)
    except ClientGone:
        return Response(status_code=499)  # nobody is listening; the detection was stopped
    except LipdubError as err:
        raise HTTPException(422, str(err)) from err
    return FacesOut(upload_id=up.id, width=up.info["width"], height=up.info["height"],
                    frame_url=f"/api/uploads/{up.id}/frame.jpg", faces=faces, seconds=time.perf_counter() - t0)


@router.delete("/uploads/{upload_id}", status_code=204, summary="Delete an upload and its files",
               responses={409: {"description": "a queued or running job uses it"}})
def delete_upload(upload_id: str, request: Request) -> Response:
    ctx = ctx_of(request)
    up = get_upload_or_404(request, upload_id)
    if ctx.store.upload_in_use(up.id):
        raise HTTPException(409, f"{up.name}: a queued or running job uses this file; cancel the job first")
    ctx.store.delete_upload(up.id)
    for path in (up.path, frame_path(up.path)):
        path.unlink(missing_ok=True)
    return Response(status_code=204)


# ---- jobs
def _check_job(request: Request, body: JobIn) -> dict[str, Any]:
    """Validate a job against the uploads and engines; the parameters to store (with display names)."""
    ctx = ctx_of(request)
    media = get_upload_or_404(request, body.media)
    if media.kind not in ("image", "video"):
        raise HTTPException(422, f"{media.name}: is an audio file; the face must come from a picture or a video")
    speakers = [s.model_dump() for s in body.speakers]
    if not speakers:
        if body.audio is None:
            raise HTTPException(422, "no audio: give `audio` or `speakers`")
        speakers = [{"audio": body.audio, "face_id": body.face_id, "start": 0.0}]
    limit = ctx.settings.max_duration
    for i, spk in enumerate(speakers):
        audio = get_upload_or_404(request, spk["audio"])
        if audio.kind == "image" or (audio.kind == "video" and not audio.info.get("has_audio")):
            raise HTTPException(422, f"{audio.name}: has no audio to speak")
        end = spk["start"] + float(audio.info.get("duration") or 0)
        if end > limit:  # the output lasts until the last speech ends: bounded like any upload
            raise HTTPException(422, f"speakers[{i}].start: this speech would end at {end:.1f} s; this server "
                                     f"makes videos of at most {limit:g} s")
        spk["audio_name"], spk["audio_duration"] = audio.name, audio.info.get("duration")
    if body.keep_original_audio and not (media.kind == "video" and media.info.get("has_audio")):
        raise HTTPException(422, f"{media.name}: has no original audio to keep")
    engines = ctx.engines()
    engine = engines[-1] if body.engine == "auto" else body.engine
    if engine not in engines:
        raise HTTPException(422, "the neural engine (wav2lip) needs a checkpoint; none is configured on this server")
    params = body.model_dump()
    params.update(engine=engine, speakers=speakers, media_name=media.name, media_kind=media.kind,
                  media_duration=media.info.get("duration"))
    return params


@router.post("/jobs", status_code=201, response_model=JobOut, summary="Queue a job")
def create_job(body: JobIn, request: Request) -> JobOut:
    ctx, who = ctx_of(request), visitor_of(request)
    params = _check_job(request, body)
    if not who.admin and ctx.store.usage(who.owner)[0] >= ctx.settings.quota_jobs:
        raise HTTPException(429, f"you already have {ctx.settings.quota_jobs} job(s) waiting or running; "
                                 "wait for one to end or cancel it")
    job = Job(id=new_id(), state="queued", params=params, owner=who.owner)
    ctx.store.add_job(job)
    ctx.queue.notify()
    return job_out(ctx.store.get_job(job.id), ctx)


@router.get("/jobs", response_model=list[JobOut], summary="History: the latest jobs, newest first")
def list_jobs(request: Request, limit: int = Query(100, ge=1, le=1000)) -> list[JobOut]:
    ctx = ctx_of(request)
    return [job_out(j, ctx) for j in ctx.store.list_jobs(limit, owner=visitor_of(request).owner)]


@router.get("/jobs/{job_id}", response_model=JobOut, summary="A job's state, stage, percent and ETA")
def read_job(job_id: str, request: Request) -> JobOut:
    return job_out(get_job_or_404(request, job_id), ctx_of(request))


@router.get("/jobs/{job_id}/events", summary="The job's state as Server-Sent Events until it ends",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`event: status` with a JobOut as data, on every change"}})
async def job_events(job_id: str, request: Request) -> StreamingResponse:
    ctx = ctx_of(request)
    await run_in_threadpool(get_job_or_404, request, job_id)  # SQLite reads never run on the event loop

    async def stream():
        last, quiet_since = None, time.monotonic()
        while not await request.is_disconnected():
            job = await run_in_threadpool(ctx.store.get_job, job_id)
            if job is None:
                yield "event: deleted\ndata: {}\n\n"
                return
            data = (await run_in_threadpool(job_out, job, ctx)).model_dump_json()
            if data != last:
                yield f"event: status\ndata: {data}\n\n"
                last, quiet_since = data, time.monotonic()
            elif time.monotonic() - quiet_since > SSE_KEEPALIVE:
                yield ": keepalive\n\n"
                quiet_since = time.monotonic()
            if job.state in TERMINAL:
                return
            await asyncio.sleep(SSE_POLL)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, summary="Cancel a queued or running job",
             responses={409: {"description": "the job has already ended"}})
def cancel_job(job_id: str, request: Request) -> JobOut:
    ctx = ctx_of(request)
    job = get_job_or_404(request, job_id)
    if job.state in TERMINAL or not ctx.queue.cancel(job_id):
        raise HTTPException(409, f"job {job_id} has already ended ({ctx.store.get_job(job_id).state})")
    ctx.queue.wait_stopped(job_id)
    return job_out(get_job_or_404(request, job_id))


@router.get("/jobs/{job_id}/result", response_class=FileResponse,
            summary="The finished video (supports HTTP Range, so players can seek)",
            responses={200: {"content": {"video/mp4": {}}}, 206: {"description": "partial content"},
                       409: {"description": "the job is not done"}})
def job_result(job_id: str, request: Request, download: bool = False) -> FileResponse:
    ctx = ctx_of(request)
    job = get_job_or_404(request, job_id)
    path = ctx.job_dir(job_id) / "result.mp4"
    if job.state != "done" or not path.is_file():
        raise HTTPException(409, f"job {job_id} has no result ({job.state})")
    return FileResponse(path, media_type="video/mp4", filename=f"lipdub-{job_id[:8]}.mp4",
                        content_disposition_type="attachment" if download else "inline")


@router.delete("/jobs/{job_id}", status_code=204, summary="Delete a job (cancelling it first) and its files")
def delete_job(job_id: str, request: Request) -> Response:
    ctx = ctx_of(request)
    job = get_job_or_404(request, job_id)
    if job.state not in TERMINAL and ctx.queue.cancel(job_id):
        ctx.queue.wait_stopped(job_id)
    ctx.store.delete_job(job_id)
    shutil.rmtree(ctx.job_dir(job_id), ignore_errors=True)
    return Response(status_code=204)


def describe_error(ctx: WebContext, job: Job, message: str) -> str:
    """Replace server paths of uploads in an error message by the names the user gave them."""
    ids = [job.params.get("media")] + [s.get("audio") for s in job.params.get("speakers", [])]
    for up in filter(None, (ctx.store.get_upload(i) for i in ids if i)):
        message = message.replace(str(up.path), up.name)
    return message.replace(str(ctx.job_dir(job.id) / "result.mp4"), "the result")


def make_request(ctx: WebContext, job: Job) -> Any:
    """The `AnimateRequest` for a stored job (uploads resolved to their files)."""
    from lipdub.pipeline import AnimateRequest, FaceChoice, SpeakerSpec

    p = job.params

    def path(upload_id: str) -> Path:
        up = ctx.store.get_upload(upload_id)
        if up is None or not up.path.is_file():
            raise MediaError("an uploaded file of this job was deleted; upload it again")
        return up.path

    speakers = [SpeakerSpec(audio=path(s["audio"]), face=FaceChoice(face_id=s.get("face_id")),
                            start=float(s.get("start", 0.0))) for s in p["speakers"]]
    single = len(speakers) == 1 and speakers[0].start == 0
    return AnimateRequest(
        media=path(p["media"]), output=ctx.job_dir(job.id) / "result.mp4",
        audio=speakers[0].audio if single else None, face=speakers[0].face if single else FaceChoice(),
        speakers=[] if single else speakers, engine=p["engine"], checkpoint=ctx.settings.resolved_checkpoint(),
        paste=p["paste"], mix="original" if p["keep_original_audio"] else "replace", duck_db=float(p["duck_db"]),
        silence=p.get("silence", "auto"), device=ctx.settings.device,
        **{k: p[k] for k in ("motion", "seed", "lang") if p.get(k) is not None})

