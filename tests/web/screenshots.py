"""Screenshots of the page's main states for the README: `python tests/web/screenshots.py docs/`.

Runs the app on 127.0.0.1 with the real pipeline (viseme engine) on the test photo and speech."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("LIPDUB_HOME", tempfile.mkdtemp(prefix="lipdub-shots-"))

from conftest import PHOTO, SPEECH, LiveServer  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from lipdub.web import WebSettings  # noqa: E402


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    server = LiveServer(WebSettings(data_dir=Path(tempfile.mkdtemp()) / "web")).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.goto(server.url)
            page.set_input_files("#media-input", str(PHOTO))
            expect(page.locator("#overlay rect")).to_have_count(2, timeout=60_000)
            page.set_input_files("#audio-input", str(SPEECH))
            expect(page.locator("#audio-name")).to_contain_text("3.0 s", timeout=30_000)
            page.locator('#overlay rect[data-number="2"]').click()
            page.screenshot(path=out / "web-pick.png", full_page=True)
            page.click("#start")
            expect(page.locator("#job-stage")).to_have_text("moving the mouth", timeout=600_000)
            page.wait_for_timeout(1500)
            page.locator("#step-progress").screenshot(path=out / "web-progress.png")
            expect(page.locator("#job-state")).to_have_text("done", timeout=600_000)
            page.locator("#result").evaluate("v => { v.currentTime = 1.2; }")
            page.wait_for_timeout(1000)
            page.locator("#step-result").screenshot(path=out / "web-result.png")
            phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
            phone.goto(server.url)
            phone.set_input_files("#media-input", str(PHOTO))
            expect(phone.locator("#overlay rect")).to_have_count(2, timeout=60_000)
            phone.set_input_files("#audio-input", str(SPEECH))
            expect(phone.locator("#audio-name")).to_contain_text("3.0 s", timeout=30_000)
            phone.locator('#overlay rect[data-number="2"]').click()
            phone.evaluate("document.querySelector('#step-faces').scrollIntoView()")
            phone.screenshot(path=out / "web-phone.png")
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
