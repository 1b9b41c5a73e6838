"""The web page in a real browser (Debian's chromium driven by Selenium through Debian's
chromium-driver): upload a real clip, wait for the diarized transcript, click a word and
read the player's time, rename a speaker, download an srt and parse it; and the key prompt
of a server that needs one."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import srt
from audio_tools import CONVERSATION
from conftest import ServerFactory
from live_server import LiveServer
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[Any]:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.fail("the browser test needs Debian's chromium and chromium-driver (.ci/run)")
    options = Options()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1100,1500")
    options.add_argument("--autoplay-policy=no-user-gesture-required")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


def player_time(browser: Any) -> float:
    return float(browser.execute_script("return document.querySelector('#player').currentTime"))


def test_upload_read_play_rename_download(
    live_server: LiveServer, browser: Any, downloads: Path
) -> None:
    browser.get(f"{live_server.url}/")
    wait = WebDriverWait(browser, 300)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model option[value='tiny.en']"))
    Select(browser.find_element(By.ID, "model")).select_by_value("tiny.en")
    browser.find_element(By.ID, "file-input").send_keys(str(CONVERSATION))
    browser.find_element(By.ID, "submit").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#transcript .turn"))
    turns = browser.find_elements(By.CSS_SELECTOR, "#transcript .turn")
    labels = [t.find_element(By.CSS_SELECTOR, ".speaker").text for t in turns]
    assert labels == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00", "SPEAKER_01"]
    assert "budget report" in turns[1].text.lower() and "friday" in turns[2].text.lower()

    # A click on a word puts the player there; Enter on a focused word does the same.
    words = browser.find_elements(By.CSS_SELECTOR, "#transcript .word")
    budget = next(w for w in words if w.text.lower().startswith("budget"))
    start = float(budget.get_attribute("data-start"))
    budget.click()
    wait.until(lambda d: start - 0.05 <= player_time(d) < start + 1.5)
    assert "current" in (budget.get_attribute("class") or "")
    friday = next(w for w in words if w.text.lower().startswith("friday"))
    friday.send_keys(Keys.ENTER)
    later = float(friday.get_attribute("data-start"))
    wait.until(lambda d: later - 0.05 <= player_time(d) < later + 1.5)

    # Renaming a speaker renames every turn of theirs, and the downloads.
    browser.find_element(By.CSS_SELECTOR, ".speaker[data-speaker='SPEAKER_00']").click()
    name_input = browser.find_element(By.CSS_SELECTOR, ".speaker-input")
    name_input.send_keys("Alice", Keys.ENTER)
    renamed = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".turn .speaker")]
    assert renamed == ["Alice", "SPEAKER_01", "Alice", "SPEAKER_01"]
    browser.find_element(By.CSS_SELECTOR, ".downloads button[data-format='srt']").click()
    path = downloads / "transcript.srt"
    deadline = time.monotonic() + 30
    while not path.is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    captions = list(srt.parse(path.read_text()))
    assert captions[0].content.startswith("[Alice]: Good morning")
    assert captions[1].content.startswith("[SPEAKER_01]: Thanks")
    # The job is listed under Recent.
    assert CONVERSATION.name in browser.find_element(By.ID, "jobs").text
    if os.environ.get("WEB_SCREENSHOT"):  # docs/web-page.png is made this way
        browser.save_screenshot(os.environ["WEB_SCREENSHOT"])


def test_the_page_asks_for_a_key_when_the_server_needs_one(
    server_factory: ServerFactory, browser: Any
) -> None:
    server = server_factory(API_KEYS="page-key-123")
    browser.get(f"{server.url}/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: d.find_element(By.ID, "key-panel").is_displayed())
    assert not browser.find_elements(By.CSS_SELECTOR, "#model option")
    browser.find_element(By.ID, "key-input").send_keys("page-key-123", Keys.ENTER)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"))
    assert not browser.find_element(By.ID, "key-panel").is_displayed()
    browser.execute_script("localStorage.clear()")
