"""The page in a real browser (Debian's chromium via Playwright): against `lipdub serve` with the real pipeline,
and against the app on 127.0.0.1 with stand-in job runners for the page's own behaviour (slots, Start, delete,
reload, a phone-sized window, the API docs offline)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import web_runners
from conftest import NO_FACE, PHOTO, SPEECH, cli_server
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
FACES_WAIT = 180_000  # first face detection spawns the picker process; slow on a loaded machine
WAIT = 120_000  # a job process starting, an upload checked: seconds when idle, far longer on a loaded machine
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """`lipdub serve` on a free port, its data and LIPDUB_HOME in tmp_path; yields the URL it printed."""
    with cli_server(tmp_path, ["serve", "--data-dir", str(tmp_path / "web")], "api/config", "serving on",
                    timeout=60) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(server)
    yield page
    context.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator:
    """open_page(url, **context options) -> a page on `url` in a fresh browser context (closed after)."""
    contexts = []

    def make(url: str, **options) -> Page:
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.goto(url)
        return page

    yield make
    for context in contexts:
        context.close()


def test_two_people_photo_second_face_speaks(page: Page, server: str):
    page.set_input_files("#media-input", str(PHOTO))
    expect(page.locator("#overlay rect")).to_have_count(2, timeout=FACES_WAIT)
    expect(page.locator("#faces-hint")).to_contain_text("2 faces")
    page.set_input_files("#audio-input", str(SPEECH))
    expect(page.locator("#audio-name")).to_contain_text("3.0 s", timeout=WAIT)
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
    page.wait_for_function("document.querySelector('#result').readyState >= 1", timeout=WAIT)
    duration = video.evaluate("v => v.duration")
    assert duration == pytest.approx(3.0, abs=0.15)
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function("document.querySelector('#result').currentTime > 0.5", timeout=WAIT)
    assert video.evaluate("v => v.videoWidth") == 480
    expect(page.locator("#history tbody tr")).to_have_count(1)


def test_picture_without_a_face_says_so(page: Page):
    page.set_input_files("#media-input", str(NO_FACE))
    expect(page.locator("#media-error")).to_have_text(
        "No face found in no_face.jpg. Use a picture or video where a face is clearly visible.", timeout=FACES_WAIT)
    expect(page.locator("#overlay rect")).to_have_count(0)
    page.set_input_files("#audio-input", str(SPEECH))
    expect(page.locator("#audio-name")).to_contain_text("3.0 s", timeout=WAIT)
    expect(page.locator("#start")).to_be_disabled()


# ---- the page's own behaviour, with stand-in job runners (web_runners) on the app served on 127.0.0.1
def ready_to_start(page: Page) -> None:
    """Photo and speech accepted, the second face chosen: Start can be pressed."""
    page.set_input_files("#media-input", str(PHOTO))
    expect(page.locator("#overlay rect")).to_have_count(2, timeout=FACES_WAIT)
    page.set_input_files("#audio-input", str(SPEECH))
    expect(page.locator("#audio-name")).to_contain_text("3.0 s", timeout=WAIT)
    page.locator('#overlay rect[data-number="2"]').click()
    expect(page.locator("#start")).to_be_enabled()


def jobs_of(url: str) -> list[dict]:
    return httpx.get(url + "/api/jobs").json()


def test_a_rejected_file_empties_its_slot_and_says_why_next_to_it(make_server, open_page, tmp_path):
    live = make_server(runner=web_runners.quick)
    page = open_page(live.url)
    ready_to_start(page)
    bad_speech, bad_picture = tmp_path / "bad.wav", tmp_path / "bad.jpg"
    bad_speech.write_bytes(b"not a sound\n" * 100)
    bad_picture.write_bytes(b"not a picture\n" * 100)
    page.set_input_files("#audio-input", str(bad_speech))
    expect(page.locator("#audio-error")).to_contain_text("bad.wav", timeout=WAIT)
    expect(page.locator("#media-error")).to_have_text("")
    expect(page.locator("#audio-name")).to_have_text("")  # the old speech is no longer in use
    expect(page.locator("#start")).to_be_disabled()
    expect(page.locator("#start-reason")).to_have_text("add the speech")
    page.set_input_files("#media-input", str(bad_picture))
    expect(page.locator("#media-error")).to_contain_text("bad.jpg", timeout=WAIT)
    expect(page.locator("#overlay rect")).to_have_count(0)  # the old photo and its boxes are gone
    expect(page.locator("#step-faces")).to_be_hidden()
    expect(page.locator("#start-reason")).to_have_text("add a picture or a video")
    expect(page.locator("#start")).to_be_disabled()
    assert jobs_of(live.url) == []


def test_deleting_a_running_job_asks_first_then_cancels_it(make_server, open_page, monkeypatch):
    monkeypatch.setenv("WEB_TEST_SLOW_SECONDS", "60")
    live = make_server(runner=web_runners.slow)
    page = open_page(live.url)
    ready_to_start(page)
    page.click("#start")
    expect(page.locator("#job-state")).to_have_text("running", timeout=WAIT)
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.locator("#history tbody tr button", has_text="Delete").click()
    expect(page.locator("#history tbody tr")).to_have_count(1)
    assert asked and "Cancel it and delete it?" in asked[0]
    assert jobs_of(live.url)[0]["state"] == "running"  # said no: nothing happened
    page.once("dialog", lambda d: d.accept())
    page.locator("#history tbody tr button", has_text="Delete").click()
    expect(page.locator("#job-state")).to_have_text("deleted", timeout=WAIT)
    expect(page.locator("#cancel")).to_be_hidden()
    expect(page.locator("#job-error")).to_have_text("")
    expect(page.locator("#history tbody tr")).to_have_count(0)
    assert jobs_of(live.url) == []
    expect(page.locator("#start")).to_be_enabled()


def test_phone_window_double_click_makes_one_job_shown_in_view_without_sideways_scroll(make_server, open_page,
                                                                                         monkeypatch):
    monkeypatch.setenv("WEB_TEST_SLOW_SECONDS", "4")
    live = make_server(runner=web_runners.slow)
    page = open_page(live.url, viewport={"width": 390, "height": 844})
    ready_to_start(page)
    number = page.locator(".face-number").first
    assert number.bounding_box()["height"] >= 16  # legible face numbers on a small picture
    page.evaluate("window.scrollTo(0, 0)")
    page.locator("#start").dblclick()
    expect(page.locator("#job-state")).to_have_text("running", timeout=WAIT)
    box = page.locator("#job-progress").bounding_box()  # viewport coordinates: scrolled into view
    assert box["y"] >= 0 and box["y"] + box["height"] <= 844, box
    expect(page.locator("#start")).to_be_disabled()
    # the page scrolled to the progress: the second click of a double click can land on Cancel (seen in CI when
    # the job started between the two clicks); it must not cancel the job just started
    cancel = page.locator("#cancel").bounding_box()
    page.mouse.move(cancel["x"] + cancel["width"] / 2, cancel["y"] + cancel["height"] / 2)
    page.mouse.down(click_count=2)
    page.mouse.up(click_count=2)
    expect(page.locator("#start-reason")).to_contain_text("a job is running")
    expect(page.locator("#history tbody tr")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for name in ("Show", "Delete"):
        right = page.locator("#history tbody tr button", has_text=name).bounding_box()
        assert right["x"] + right["width"] <= 390
    expect(page.locator("#job-state")).to_have_text("done", timeout=WAIT)
    assert len(jobs_of(live.url)) == 1  # the double click made one job
    expect(page.locator("#start")).to_be_enabled()  # a second job is a deliberate click away


def test_reload_brings_back_the_running_job_and_history_follows_it(make_server, open_page, monkeypatch):
    monkeypatch.setenv("WEB_TEST_SLOW_SECONDS", "6")
    live = make_server(runner=web_runners.slow)
    page = open_page(live.url)
    ready_to_start(page)
    page.click("#start")
    expect(page.locator("#job-stage")).to_have_text("moving the mouth", timeout=WAIT)
    page.reload()
    expect(page.locator("#step-progress")).to_be_visible()
    expect(page.locator("#job-state")).to_have_text("running")
    row = page.locator("#history tbody tr")
    expect(row.locator("td[data-label=Speech]")).to_have_text("speech_3s.flac (3.0 s)")
    expect(row.locator(".state")).to_have_text(re.compile(r"running \d+ %"))
    expect(row.locator(".state")).to_have_text("done", timeout=WAIT)  # live, no reload
    expect(page.locator("#result")).to_be_visible()
    expect(page.locator("#original")).to_be_visible()  # before / after
    assert page.locator("#original").evaluate("img => img.naturalWidth") == 480


def test_api_docs_render_with_the_network_cut_off(make_server, open_page):
    live = make_server()
    outside = []
    page = open_page("about:blank")
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(live.url)
               else (outside.append(route.request.url), route.abort()))
    page.goto(live.url + "/api/docs")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=WAIT)
    assert page.locator(".swagger-ui .opblock").count() >= 13
    assert outside == []


def test_several_speakers_with_start_times_in_english(make_server, open_page):
    live = make_server(runner=web_runners.quick)
    page = open_page(live.url)
    page.set_input_files("#media-input", str(PHOTO))
    expect(page.locator("#overlay rect")).to_have_count(2, timeout=FACES_WAIT)
    page.check("#multi")
    expect(page.locator("#faces-hint")).to_have_text("give each face that speaks its own audio and start time")
    expect(page.locator("#audio-input")).to_be_disabled()  # the main Speech box is not used now
    expect(page.locator("#audio-slot")).to_have_class(re.compile("off"))
    expect(page.locator("#start-reason")).to_have_text("give at least one face its audio")
    faces = page.locator("#face-list li")
    for i, start in ((0, "0"), (1, "1.5")):
        faces.nth(i).locator("input.face-file").set_input_files(str(SPEECH))
        expect(faces.nth(i).locator(".face-audio-name")).to_have_text("speech_3s.flac (3.0 s)", timeout=WAIT)
        faces.nth(i).locator(".face-start input").fill(start)
        faces.nth(i).locator(".face-start input").dispatch_event("change")
    expect(page.locator("#face-list input[type=file]:visible")).to_have_count(0)  # no "No file chosen"
    page.check("#english")  # both speak English
    page.click("#start")
    expect(page.locator("#job-state")).to_have_text("done", timeout=WAIT)
    job = jobs_of(live.url)[0]
    ids = [int(faces.nth(i).get_attribute("data-face-id")) for i in range(2)]
    assert [(s["face_id"], s["start"]) for s in job["params"]["speakers"]] == [(ids[0], 0.0), (ids[1], 1.5)]
    assert job["params"]["lang"] == "en"
    expect(page.locator("#history tbody tr td[data-label=Speech]")).to_have_text("2 speakers")


def test_public_mode_a_visitor_cannot_see_anothers_job(make_server, open_page):
    live = make_server(runner=web_runners.quick, public=True)
    alice = open_page(live.url)
    ready_to_start(alice)
    alice.click("#start")
    expect(alice.locator("#job-state")).to_have_text("done", timeout=WAIT)
    job_id = alice.locator("#history tbody tr").get_attribute("data-job-id")
    bob = open_page(live.url)  # another browser: its own session cookie
    expect(bob.locator("#step-options")).to_be_visible()
    bob.wait_for_timeout(500)  # History loaded
    expect(bob.locator("#history tbody tr")).to_have_count(0)
    status = bob.evaluate("id => fetch('/api/jobs/' + id).then(r => r.status)", job_id)
    assert status == 404
    alice.reload()
    expect(alice.locator("#history tbody tr")).to_have_count(1)
    assert "lipdub_session" not in alice.evaluate("document.cookie")  # HttpOnly: scripts cannot read it
