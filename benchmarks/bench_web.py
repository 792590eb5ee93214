"""Benchmark the web app: face-picker latency for a photo (goal < 1 s) and API latency while two jobs run.

Run: python benchmarks/bench_web.py [--photo P] [--audio A] [--jobs 2]. Starts `lipdub serve --workers 2`
on a free port with its data and LIPDUB_HOME in a temp folder; jobs use the real pipeline (viseme engine).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

DATA = Path(__file__).resolve().parent.parent / "tests" / "web" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, LIPDUB_HOME=str(tmp / "home"))
    env.pop("LIPDUB_CHECKPOINT", None)
    proc = subprocess.Popen([sys.executable, "-m", "lipdub", "serve", "--port", str(port), "--workers",
                             str(workers), "--data-dir", str(tmp / "web")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/config", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("server did not start")


def upload(client: httpx.Client, data: bytes, name: str) -> dict:
    res = client.post("/api/uploads", params={"name": name}, content=data)
    res.raise_for_status()
    return res.json()


def variants(photo: Path, n: int) -> list[bytes]:
    """`n` JPEGs of the same photo with different bytes (so each misses the detection cache)."""
    im = Image.open(photo).convert("RGB")
    out = []
    for q in range(90, 90 - n, -1):
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=q)
        out.append(buf.getvalue())
    return out


def picker(client: httpx.Client, photo: Path) -> None:
    """Round-trip and server time of GET /faces: first call, new content (cache miss), same content (hit)."""
    def faces(upload_id: str) -> tuple[float, float, int]:
        t0 = time.perf_counter()
        body = client.get(f"/api/uploads/{upload_id}/faces").json()
        return time.perf_counter() - t0, body["seconds"], len(body["faces"])

    ups = [upload(client, data, f"v{i}.jpg") for i, data in enumerate(variants(photo, 6))]
    first = faces(ups[0]["id"])
    misses = [faces(u["id"]) for u in ups[1:]]
    hits = [faces(ups[0]["id"]) for _ in range(5)]
    w, h = Image.open(photo).size
    print(f"face picker, {photo.name} {w}x{h}, {first[2]} faces (goal < 1 s round trip):")
    print(f"  first request after start : {first[0]:.3f} s  (server {first[1]:.3f} s)")
    print(f"  new content (cache miss)  : median {statistics.median(m[0] for m in misses):.3f} s, "
          f"max {max(m[0] for m in misses):.3f} s")
    print(f"  same content (cache hit)  : median {statistics.median(h[0] for h in hits):.3f} s")


def responsiveness(client: httpx.Client, photo: Path, audio: Path, n_jobs: int) -> None:
    """Latency of page/API requests while `n_jobs` real jobs run, next to the idle latency."""
    def sample() -> float:
        t0 = time.perf_counter()
        for path in ("/api/config", "/api/jobs", "/"):
            client.get(path).raise_for_status()
        return (time.perf_counter() - t0) / 3

    idle = [sample() for _ in range(20)]
    media, speech = upload(client, photo.read_bytes(), photo.name), upload(client, audio.read_bytes(), audio.name)
    faces = client.get(f"/api/uploads/{media['id']}/faces").json()["faces"]
    jobs = [client.post("/api/jobs", json={"media": media["id"], "audio": speech["id"],
                                           "face_id": faces[i % len(faces)]["id"]}).json() for i in range(n_jobs)]
    t0, busy, both = time.perf_counter(), [], 0
    while True:
        busy.append(sample())
        states = [client.get(f"/api/jobs/{j['id']}").json() for j in jobs]
        both += sum(s["state"] == "running" for s in states) == n_jobs
        if all(s["state"] in ("done", "failed", "cancelled") for s in states):
            break
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    q = statistics.quantiles(busy, n=20) if len(busy) >= 2 else busy * 19
    print(f"{n_jobs} jobs ({photo.name} + {audio.name}, viseme), wall {wall:.1f} s, "
          f"states {[s['state'] for s in states]}, {both} samples with all {n_jobs} running")
    for s in states:
        if s["state"] != "done":
            print(f"  job {s['id'][:8]} {s['state']}: {s['error']}")
    print(f"  API latency idle : median {1000 * statistics.median(idle):.1f} ms")
    print(f"  API latency busy : median {1000 * statistics.median(busy):.1f} ms, p95 {1000 * q[18]:.1f} ms, "
          f"max {1000 * max(busy):.1f} ms ({len(busy)} samples)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--photo", type=Path, default=DATA / "two_people.jpg")
    ap.add_argument("--audio", type=Path, default=DATA / "speech_3s.flac")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lipdub-bench-web-") as tmp:
        proc, url = start_server(Path(tmp), workers=args.jobs)
        try:
            time.sleep(3)  # the detector warms up in the background while a user picks files
            with httpx.Client(base_url=url, timeout=120) as client:
                picker(client, args.photo)
                responsiveness(client, args.photo, args.audio, args.jobs)
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
