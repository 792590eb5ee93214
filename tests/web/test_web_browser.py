"""The page in a real browser (Debian's chromium via Playwright) against `lipdub serve` with the real pipeline."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import NO_FACE, PHOTO, SPEECH
from playwright.sync_api import Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """`lipdub serve` on a free port, its data and LIPDUB_HOME in tmp_path; yields the URL it printed."""
    port = free_port()
    env = dict(os.environ, LIPDUB_HOME=str(tmp_path / "home"), LIPDUB_THREADS="2")
    env.pop("LIPDUB_CHECKPOINT", None)
    log = open(tmp_path / "server.log", "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "lipdub", "serve", "--port", str(port), "--data-dir",
                             str(tmp_path / "web")], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(url + "api/config", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        log.seek(0)
        assert f"serving on {url}" in log.read()
        yield url
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


@pytest.fixture
def page(server: str) -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(server)
        yield page
        browser.close()


def test_two_people_photo_second_face_speaks(page: Page, server: str):
    page.set_input_files("#media-input", str(PHOTO))
    expect(page.locator("#overlay rect")).to_have_count(2, timeout=30_000)
    expect(page.locator("#faces-hint")).to_contain_text("2 faces")
    page.set_input_files("#audio-input", str(SPEECH))
    expect(page.locator("#audio-name")).to_contain_text("3.0 s", timeout=30_000)
    second = page.locator('#overlay rect[data-number="2"]')
    second.click()  # a real mouse click at the box centre
    expect(second).to_have_class("chosen")
    expect(page.locator("#engine")).to_have_value("viseme")
    page.click("#start")
    expect(page.locator("#job-state")).to_have_text(re.compile("done|failed|cancelled"), timeout=240_000)
    assert page.locator("#job-state").text_content() == "done", page.locator("#job-error").text_content()
    # the job was asked for the face that was clicked
    job = httpx.get(server + "api/jobs").json()[0]
    assert job["params"]["face_id"] == int(second.get_attribute("data-face-id"))
    assert job["result"]["speakers"][0]["face"] == job["params"]["face_id"]
    # the video element plays a video of the speech's length
    video = page.locator("#result")
    expect(video).to_be_visible()
    page.wait_for_function("document.querySelector('#result').readyState >= 1", timeout=30_000)
    duration = video.evaluate("v => v.duration")
    assert duration == pytest.approx(3.0, abs=0.15)
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function("document.querySelector('#result').currentTime > 0.5", timeout=30_000)
    assert video.evaluate("v => v.videoWidth") == 480
    expect(page.locator("#history tbody tr")).to_have_count(1)


def test_picture_without_a_face_says_so(page: Page):
    page.set_input_files("#media-input", str(NO_FACE))
    expect(page.locator("#media-error")).to_have_text(
        "No face found in no_face.jpg. Use a picture or video where a face is clearly visible.", timeout=30_000)
    expect(page.locator("#overlay rect")).to_have_count(0)
    page.set_input_files("#audio-input", str(SPEECH))
    expect(page.locator("#audio-name")).to_contain_text("3.0 s", timeout=30_000)
    expect(page.locator("#start")).to_be_disabled()
