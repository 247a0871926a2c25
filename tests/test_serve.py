"""gssf serve: the search page in a real headless browser (Debian's chromium through selenium), 127.0.0.1 only."""
from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from gssf.cli.main import main

pytestmark = pytest.mark.slow

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """The page's app under uvicorn in a thread, started and stopped by the test."""

    def __init__(self, folder: Path) -> None:
        import uvicorn

        from gssf.serve import create_app

        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(create_app(folder), host="127.0.0.1", port=self.port,
                                                    log_level="warning"))  # fmt: skip
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("the page did not start within 30 s")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}/"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("serve")
    assert main(["train", "tux", "--set", "train.epochs=2", "--run-dir", str(tmp / "run"), "--no-progress"]) == 0
    assert main(["index", "build", str(tmp / "run"), "--out", str(tmp / "images")]) == 0
    assert main(["index", "build", str(tmp / "run"), "--out", str(tmp / "captions"), "--side", "text"]) == 0
    return tmp


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM and DRIVER, "make test installs Debian's chromium and chromium-driver (apt)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _submit(browser, text=None, upload=None, k=None, cosine=False) -> None:
    from selenium.webdriver.common.by import By

    if text is not None:
        box = browser.find_element(By.ID, "q")
        box.clear()
        box.send_keys(text)
    if upload is not None:
        browser.find_element(By.ID, "image").send_keys(str(upload))
    if k is not None:
        field = browser.find_element(By.ID, "k")
        field.clear()
        field.send_keys(str(k))
    if cosine:
        browser.find_element(By.ID, "cosine").click()
    from selenium.webdriver.support.ui import WebDriverWait

    from selenium.common.exceptions import WebDriverException

    # Mark the form's page, submit, and wait until a complete page without the mark has
    # replaced it. Chrome can answer a query on an element of the page being left with a
    # generic inspector error rather than a stale-element one, so every driver error
    # while the navigation is under way just means "not yet".
    browser.execute_script("window.__gssfFormPage = true;")
    browser.find_element(By.ID, "go").click()
    WebDriverWait(browser, 60, ignored_exceptions=(WebDriverException,)).until(
        lambda b: b.execute_script("return !window.__gssfFormPage && document.readyState === 'complete'")
    )


def _hits(browser):
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, ".hit")


def test_typing_a_caption_shows_the_ranked_images(indexes: Path, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from gssf.index import SearchIndex

    with _Server(indexes / "images") as url:
        browser.get(url)
        assert "229 image items" in browser.find_element(By.TAG_NAME, "body").text
        _submit(browser, text="a red mushroom", k=8)
        hits = _hits(browser)
        assert len(hits) == 8
        # the page shows what the Python API returns, in order, and every picture loads
        want = SearchIndex(indexes / "images").search_text("a red mushroom", 8)
        assert [int(h.get_attribute("data-index")) for h in hits] == [w.index for w in want]
        scores = [float(h.find_element(By.CLASS_NAME, "score").text) for h in hits]
        assert scores == sorted(scores, reverse=True)
        for img in browser.find_elements(By.CSS_SELECTOR, ".hit img"):
            assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
        assert browser.find_element(By.ID, "q").get_attribute("value") == "a red mushroom"
        browser.save_screenshot(str(tmp_path / "page.png"))
        # the cosine switch ranks the same index's items by cosine
        _submit(browser, cosine=True)
        assert "(cosine)" in browser.find_element(By.ID, "results").text and len(_hits(browser)) == 8
        # bad input: a message on the page, and the page keeps working
        _submit(browser, text="   ")
        assert "empty" in browser.find_element(By.ID, "error").text
        # the browser itself refuses k above the field's max; without that check the server does
        browser.execute_script("document.getElementById('k').removeAttribute('max')")
        _submit(browser, text="a cat", k=1000)
        assert "k must be a whole number" in browser.find_element(By.ID, "error").text
        browser.get(url + "item/99999")
        assert "no such item" in browser.page_source
        browser.get(url)
        _submit(browser, text="tux the penguin", k=3)
        assert len(_hits(browser)) == 3


def test_uploading_an_image_shows_captions_and_bad_uploads_are_refused(indexes: Path, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from gssf.index import SearchIndex

    index = SearchIndex(indexes / "captions")
    image = Path(SearchIndex(indexes / "images").items[0]["path"])
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is not a picture")
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\x89PNG" + b"\0" * (11 << 20))
    with _Server(indexes / "captions") as url:
        browser.get(url)
        _submit(browser, upload=image, k=5)
        hits = _hits(browser)
        assert len(hits) == 5
        want = index.search_image(image, 5)
        assert [h.find_element(By.CLASS_NAME, "label").text for h in hits] == [w.caption for w in want]
        browser.get(url)
        _submit(browser, upload=not_image)
        assert "not an image" in browser.find_element(By.ID, "error").text
        browser.get(url)
        _submit(browser, upload=huge)
        assert "larger than 10 MB" in browser.find_element(By.ID, "error").text
        browser.get(url)
        _submit(browser)
        assert "choose an image" in browser.find_element(By.ID, "error").text
        _submit(browser, upload=image, k=2)  # still serving
        assert len(_hits(browser)) == 2
