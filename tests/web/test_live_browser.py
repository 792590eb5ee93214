"""`lipdub live PHOTO` in Debian's chromium with a fake microphone playing a file (3 s of silence, then speech):
the page asks for the microphone, streams it to the WebSocket and draws the frames on a canvas at the photo's
size; FaceMesh on canvas snapshots sees the mouth rest while the file is silent and move while it speaks."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile
from conftest import cli_server
from mediapipe.python.solutions import face_mesh as mp_mesh
from playwright.sync_api import expect, sync_playwright

from lipdub.media import load_audio

DATA = Path(__file__).parent.parent / "data"
PHOTO = DATA / "viseme" / "portraits" / "img_obama_smile_teeth.jpg"
SPEECH = DATA / "viseme" / "long_silence_12s.flac"  # speech from 4.69 s
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
SILENCE_S = 3.0


@pytest.fixture
def live_url(tmp_path: Path) -> Iterator[str]:
    """`lipdub live PHOTO` on a free port (LIPDUB_HOME in tmp_path); yields the page's URL."""
    with cli_server(tmp_path, ["live", str(PHOTO)], "api/live/status", "live on", timeout=90) as url:
        yield url


def opening(mesh, image: np.ndarray) -> float:
    result = mesh.process(image)
    assert result.multi_face_landmarks, "FaceMesh lost the face on the canvas"
    h, w = image.shape[:2]
    p = np.array([(q.x * w, q.y * h) for q in result.multi_face_landmarks[0].landmark])
    return float(np.linalg.norm(p[14] - p[13]) / np.linalg.norm(p[152] - p[168]))


def test_the_mouth_moves_with_the_fake_microphone_and_rests_in_silence(live_url: str, tmp_path: Path):
    speech = load_audio(SPEECH, sr=16000)[int(4.6 * 16000):int(7.6 * 16000)]
    wav = tmp_path / "mic.wav"
    soundfile.write(wav, np.concatenate([np.zeros(int(SILENCE_S * 16000), np.float32), speech]), 16000,
                    subtype="PCM_16")
    mesh = mp_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)
    seen: list[tuple[float, float]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, f"--use-file-for-fake-audio-capture={wav}"])
        try:
            page = browser.new_page()
            page.goto(live_url)
            page.click("#mic")
            expect(page.locator("#status")).to_have_text("listening: talk", timeout=60_000)
            expect(page.locator("#face")).to_be_visible()
            assert page.locator("#face").evaluate("c => [c.width, c.height]") == [320, 400]
            deadline = time.monotonic() + 60
            while not seen or seen[-1][0] < SILENCE_S + 2.8:
                assert time.monotonic() < deadline, f"frames stopped at {seen[-1:]}"
                t, url = page.evaluate("() => [window.lipdubLive.lastT, document.getElementById('face')"
                                       ".toDataURL('image/png')]")
                if t >= 0 and (not seen or t > seen[-1][0]):
                    png = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
                    image = cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                    seen.append((t, opening(mesh, image)))
                time.sleep(0.05)
            assert int(page.locator("#fps").text_content()) > 0
            assert int(page.locator("#latency").text_content()) >= 0
        finally:
            browser.close()
    t, op = np.array(seen).T
    silent, talking = op[(t > 0.5) & (t < SILENCE_S - 0.5)], op[(t > SILENCE_S + 0.6) & (t < SILENCE_S + 2.8)]
    assert len(silent) >= 5 and len(talking) >= 5, seen
    assert silent.max() < 0.05, seen
    assert np.quantile(talking, 0.8) > 0.06 and talking.max() > silent.max() + 0.03, seen
