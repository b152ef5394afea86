"""The playground in a real browser: headless Chromium (Debian's package) driven by Selenium.

It starts ``gradfit serve`` as a user would, uploads a CSV, runs 50 steps, watches the loss fall, checks the final
parameters against :func:`gradfit.fit` with the same options, presses stop and reset, and saves screenshots
(``GRADFIT_SCREENSHOTS`` names the folder; else the test's temporary folder). Skipped where no Chromium and
ChromeDriver are installed (``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gradfit.data import synthetic

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")


@pytest.fixture
def server():
    """``gradfit serve`` on a free port of 127.0.0.1, stopping by itself after two minutes at most."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gradfit", "serve", "--port", "0", "--quit-after", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert match, f"no address in {line!r}"
        yield match.group(0)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def browser():
    selenium = pytest.importorskip("selenium.webdriver")
    options = selenium.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = selenium.Chrome(service=selenium.ChromeService(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition, timeout: float = 30.0, what: str = "the page"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"waited {timeout} s for {what}")


def test_upload_run_stop_and_reset_in_chromium(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    shots = Path(os.environ.get("GRADFIT_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    csv = tmp_path / "my line.csv"
    data = synthetic.linear(seed=4)
    data.to_csv(csv, index=False)
    browser.get(server)
    page = browser.find_element
    wait_for(lambda: "100 rows" in page(By.ID, "data-about").text, what="the first built-in dataset")
    page(By.ID, "file").send_keys(str(csv))
    uploaded = lambda: "my line.csv" in page(By.ID, "data-about").text or page(By.ID, "data-error").text  # noqa: E731
    assert wait_for(uploaded, what="the upload") is True, page(By.ID, "data-error").text
    wait_for(lambda: "parameters a, b" in page(By.ID, "formula-check").text, what="the formula check")
    steps = page(By.ID, "steps")
    steps.clear()
    steps.send_keys("50")
    page(By.ID, "play").click()
    wait_for(lambda: page(By.ID, "status").text == "finished", what="the run's end")
    state = browser.execute_script("return window.gradfitPlayground;")
    losses = [row[1] for row in state["rows"]]
    assert len(losses) == 51 and losses[-1] < 0.1 * losses[0]  # the start and 50 steps
    shown = lambda: float(page(By.ID, "loss-now").text or "nan") == pytest.approx(state["end"]["loss"], rel=1e-4)  # noqa: E731
    wait_for(shown, what="the final loss drawn")  # drawn at the next frame after the end

    import gradfit

    direct = gradfit.fit("a*x + b", data, y="y", x="x", optimizer="sgd", lr=0.1, steps=50, seed=0)
    assert state["end"]["params_hex"] == {k: float(v).hex() for k, v in direct.flat_params.items()}
    assert "gradfit fit 'my line.csv' --model 'a*x + b' --y y --x x" in page(By.ID, "command").text
    browser.save_screenshot(str(shots / "playground-finished.png"))

    page(By.ID, "reset").click()  # the same run again, held before its first update
    wait_for(lambda: page(By.ID, "status").text == "paused", what="the reset")
    for _ in range(3):
        page(By.ID, "step").click()
        time.sleep(0.15)
    wait_for(lambda: len(browser.execute_script("return window.gradfitPlayground.rows;")) == 4, what="three steps")
    replay = browser.execute_script("return window.gradfitPlayground.rows;")
    assert [row[1] for row in replay] == losses[:4]
    browser.save_screenshot(str(shots / "playground-stepping.png"))
    page(By.ID, "stop").click()
    wait_for(lambda: page(By.ID, "status").text == "finished", what="the stop")
    assert "interrupted after 3 steps" in page(By.ID, "end-message").text
    stats = browser.execute_script("return window.gradfitPlayground.stats;")
    # Redraws are coalesced to animation frames: fewer than the rows received (one redraw per row would be at least
    # that many), and about one per message (plus the clicks'; a loaded machine's frames add a few).
    assert stats["redraws"] < stats["rows"] and stats["redraws"] <= stats["messages"] + 12
