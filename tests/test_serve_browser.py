"""The chat page in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium):
the disclaimer first, a streamed reply, the crisis reply with helplines first and set apart, a new
conversation, and no request to any host but the server.

Takes a screenshot of the page into the test's temporary folder. To regenerate the one in the docs:

    MH_LIGHTNING_SCREENSHOT=docs/serve_screenshot.png python -m pytest -q tests/test_serve_browser.py

(a relative path is taken from the repository root)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import scripted
from serve_support import REPO, thread_server

from mh_lightning.safety import DISCLAIMER, crisis_reply, load_resources

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                       reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")
SCREENSHOT_ENV = "MH_LIGHTNING_SCREENSHOT"  # where to write the docs' screenshot too (unset: nowhere)
TIMEOUT = 90  # seconds: a loaded 2-core machine runs the tiny model and a browser side by side


@pytest.fixture
def browser(tmp_path: Path):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-default-apps", "--disable-extensions", "--window-size=430,900",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_script_timeout(TIMEOUT)
    yield driver
    driver.quit()


def requested_urls(driver) -> list[str]:
    """Every URL the page asked for (the browser's network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def watch_replies(driver) -> None:
    """Record in `window.seen` each text the last reply shows while it streams."""
    driver.execute_script("""
        window.seen = [];
        new MutationObserver(() => {
          const last = document.querySelector('#messages li.assistant:last-child');
          const text = last ? last.textContent : "";
          if (text && window.seen.at(-1) !== text) window.seen.push(text);
        }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
    """)


def save_screenshot(driver, folder: Path) -> Path:
    """The page as a PNG in `folder`, copied to $MH_LIGHTNING_SCREENSHOT when that is set."""
    shot = folder / "serve_screenshot.png"
    assert driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get(SCREENSHOT_ENV):
        docs = REPO / os.environ[SCREENSHOT_ENV]  # an absolute path stays as it is
        docs.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, docs)
    return shot


def send(driver, text: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "text")
    box.send_keys(text)
    driver.find_element(By.ID, "send").click()


def wait_for(driver, script: str) -> object:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, TIMEOUT, poll_frequency=0.05).until(lambda d: d.execute_script(script))


def test_the_chat_page_streams_shows_helplines_first_and_stays_on_this_server(loaded, browser, tmp_path):
    from selenium.webdriver.common.by import By

    # a supportive answer that the output screen passes ("Try to breathe slowly. You are doing well, and
    # you are not alone." is a known false positive of the answer head: docs/safety.md, Output screening)
    answer = " Anxiety at night is common. Try a slow walk or a warm drink, and talk to someone you trust.\n<HUMAN>:"
    with thread_server(loaded) as (url, _), scripted(loaded, answer):
        browser.get(f"{url}/")
        notice = browser.find_element(By.CSS_SELECTOR, "#notice .disclaimer").text
        assert notice == DISCLAIMER and browser.find_elements(By.CSS_SELECTOR, "#messages li") == []

        watch_replies(browser)
        send(browser, "I feel anxious tonight.")
        wait_for(browser, "return !document.getElementById('send').disabled && window.seen.length > 0")
        seen = browser.execute_script("return window.seen")
        assert seen[-1] == "Anxiety at night is common. Try a slow walk or a warm drink, and talk to someone you trust."
        assert seen[0] == "Anxiety at night is common."  # a sentence at a time, as the guard releases them
        assert browser.find_element(By.CSS_SELECTOR, "#messages li.user").text == "I feel anxious tonight."

        send(browser, "I want to kill myself")
        wait_for(browser, "return document.querySelectorAll('#messages li.assistant').length == 2 && "
                          "!document.getElementById('send').disabled")
        reply = browser.find_elements(By.CSS_SELECTOR, "#messages li.assistant")[1]
        parts = reply.find_elements(By.XPATH, "./*")
        assert parts[0].get_attribute("class") == "crisis"  # the helplines come first, in their own box
        assert parts[0].get_attribute("textContent") == crisis_reply(load_resources())
        assert "988" in parts[0].text and "116 123" in parts[0].text
        assert parts[1].text == ("Anxiety at night is common. Try a slow walk or a warm drink, and talk to someone "
                                 "you trust.")
        assert parts[0].value_of_css_property("border-left-color") != parts[1].value_of_css_property("color")
        assert DISCLAIMER not in reply.text  # shown once, at the top of the page

        browser.set_window_size(430, 1500)  # a phone's width, tall enough to show the whole conversation
        browser.execute_script("document.querySelector('main').scrollTop = 0")
        save_screenshot(browser, tmp_path)

        urls = [urlsplit(u) for u in requested_urls(browser)]
        assert {u.netloc for u in urls if u.scheme in ("http", "https", "ws", "wss")} == {urlsplit(url).netloc}
        # the rest is the browser's own start page (chrome://...) and inline data, not the network
        assert {u.scheme for u in urls} <= {"http", "data", "chrome"}, urls

        browser.find_element(By.ID, "new").click()
        assert browser.find_elements(By.CSS_SELECTOR, "#messages li") == []
        stored = "return localStorage.length + sessionStorage.length + document.cookie.length"
        assert browser.execute_script(stored) == 0


def test_a_busy_server_makes_the_page_wait_and_retry_not_fail(loaded, browser):
    import threading

    import httpx
    from serve_support import Gate, wait_until

    with thread_server(loaded, max_queue=1) as (url, engine), scripted(loaded, " I am here now.\n<HUMAN>:"):
        browser.get(f"{url}/")
        gate = Gate(loaded[0])
        body = {"messages": [{"role": "user", "content": "hello"}]}
        others = [threading.Thread(target=httpx.post, args=(f"{url}/v1/chat/completions",),
                                   kwargs={"json": body, "timeout": 120}) for _ in range(2)]
        others[0].start()
        wait_until(lambda: engine.active == 1)
        others[1].start()
        wait_until(lambda: engine.jobs.qsize() == 1)  # full: the page's request gets 429
        watch_replies(browser)
        send(browser, "Is anyone there?")
        wait_for(browser, "return window.seen.length > 0")
        gate.release()
        wait_for(browser, "return !document.getElementById('send').disabled")
        for thread in others:
            thread.join(60)
        seen = browser.execute_script("return window.seen")
        assert seen[0] == "Many people are talking right now. Your reply is coming, please stay…"
        assert seen[-1] == "I am here now."
