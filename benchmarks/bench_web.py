"""Benchmark the web app: face-picker latency for a photo (goal < 1 s), API latency while two jobs run, and a
load test: 20 visitors at once, each uploading a photo and a speech and queueing a job (API median and p99
latency while jobs run, no request failing, every job ending).

Run: python benchmarks/bench_web.py [--photo P] [--audio A] [--jobs 2] [--visitors 20]. Starts
`lipdub serve --public --workers 2` on a free port with its data and LIPDUB_HOME in a temp folder (each visitor
has its own session); jobs use the real pipeline (viseme engine).
"""

from __future__ import annotations

import argparse
import concurrent.futures
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
                             str(workers), "--data-dir", str(tmp / "web"), "--public"], env=env,
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


def visitor(url: str, photo: bytes, audio: bytes, i: int, latency: list, failures: list) -> dict:
    """One visitor (own cookie jar: own session): upload both files, queue a job, poll it until it ends."""
    with httpx.Client(base_url=url, timeout=600) as client:
        def call(method: str, path: str, **kw) -> httpx.Response:
            t0 = time.perf_counter()
            try:
                res = client.request(method, path, **kw)
            except httpx.HTTPError as err:
                failures.append(f"{method} {path}: {err!r}")
                raise
            latency.append((method, time.perf_counter() - t0))
            if res.status_code >= 400:
                failures.append(f"{method} {path}: {res.status_code} {res.text[:200]}")
                res.raise_for_status()
            return res

        media = call("POST", "/api/uploads", params={"name": f"photo{i}.jpg"}, content=photo).json()
        speech = call("POST", "/api/uploads", params={"name": f"speech{i}.flac"}, content=audio).json()
        job = call("POST", "/api/jobs", json={"media": media["id"], "audio": speech["id"]}).json()
        while job["state"] not in ("done", "failed", "cancelled"):
            time.sleep(0.5)
            job = call("GET", f"/api/jobs/{job['id']}").json()
            call("GET", "/api/jobs")  # the page's live History
        return job


def load(url: str, photo: Path, audio: Path, n: int, workers: int) -> None:
    """`n` visitors at once; every request's latency, failures, and how every job ended."""
    latency: list[tuple[str, float]] = []
    failures: list[str] = []
    data = photo.read_bytes(), audio.read_bytes()
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(visitor, url, *data, i, latency, failures) for i in range(n)]
        jobs = [f.result() if not f.exception() else {"state": f"error {f.exception()!r}"} for f in futures]
    wall = time.perf_counter() - t0
    states = {s: sum(j["state"] == s for j in jobs) for s in sorted({j["state"] for j in jobs})}
    print(f"{n} visitors at once, {workers} workers ({photo.name} + {audio.name}, viseme): wall {wall:.1f} s, "
          f"jobs {states}, {len(failures)} failed requests of {len(latency) + len(failures)}")
    for line in failures[:5]:
        print(f"  failed: {line}")
    for label, keep in (("all requests", lambda m: True), ("GET (polls)", lambda m: m == "GET"),
                        ("POST (uploads, jobs)", lambda m: m == "POST")):
        xs = sorted(t for m, t in latency if keep(m))
        if xs:
            p99 = xs[min(len(xs) - 1, int(0.99 * len(xs)))]
            print(f"  API latency, {label:20s}: median {1000 * statistics.median(xs):.1f} ms, "
                  f"p99 {1000 * p99:.1f} ms, max {1000 * xs[-1]:.1f} ms ({len(xs)} requests)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--photo", type=Path, default=DATA / "two_people.jpg")
    ap.add_argument("--audio", type=Path, default=DATA / "speech_3s.flac")
    ap.add_argument("--jobs", type=int, default=2, help="workers (jobs at once)")
    ap.add_argument("--visitors", type=int, default=20, help="visitors at once in the load test (0: skip it)")
    ap.add_argument("--load-only", action="store_true", help="only the load test")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lipdub-bench-web-") as tmp:
        proc, url = start_server(Path(tmp), workers=args.jobs)
        try:
            time.sleep(3)  # the detector warms up in the background while a user picks files
            if not args.load_only:
                with httpx.Client(base_url=url, timeout=120) as client:
                    picker(client, args.photo)
                    responsiveness(client, args.photo, args.audio, args.jobs)
            if args.visitors:
                load(url, args.photo, args.audio, args.visitors, args.jobs)
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
