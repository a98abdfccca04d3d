"""Open report.html in real headless Chromium: images decode, nothing leaves the page, no console errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import REPO, write_hand_run

from job.report.render import write_report

CHROMIUM = os.environ.get("CHROME_BIN") or shutil.which("chromium") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def driver():
    if not (CHROMIUM and DRIVER):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver must be installed in CI (.ci/run installs them)")
        pytest.skip("chromium/chromedriver not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,2000",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield drv
    drv.quit()


def test_report_in_real_browser(driver, tmp_path):
    write_hand_run(tmp_path)
    report = write_report(tmp_path)
    driver.get(report.as_uri())
    assert "MLPs" in driver.title or "models" in driver.title
    images = driver.execute_script("return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth]);")
    assert len(images) >= 6
    assert all(complete and width > 0 for _, complete, width in images), images
    # no request leaves the page: every resource is the file itself or an inline data: URI
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name);")
    assert [r for r in resources if not r.startswith("data:")] == []
    requests = [e for e in driver.get_log("performance") if '"Network.requestWillBeSent"' in e["message"]]
    urls = [e["message"] for e in requests]
    assert all("file://" in u or "data:image" in u for u in urls), urls[:3]
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    artifacts = Path(os.environ.get("TEST_ARTIFACTS", REPO / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(artifacts / "report.png"))


def test_the_choice_reads_plainly_in_a_real_browser(driver, tmp_path):
    """What was chosen, why, how sure (share of resamples best), the margin, and what it costs: on screen."""
    write_hand_run(tmp_path)
    driver.get(write_report(tmp_path).as_uri())
    section = driver.find_element("id", "choice")
    driver.execute_script("arguments[0].scrollIntoView()", section)
    assert section.is_displayed() and section.size["height"] > 300
    text = section.text
    assert "Chosen: Model 2." in text and "no smaller model is shown within 1 pp" in text
    assert "share of resamples in which it is best" in text and "75.0%" in text and "25.0%" in text
    assert "within 1.0 pp?" in text and "not shown" in text and "What the choice costs" in text
    assert "At other margins" in text and "1.0 pp Model 2 (this run)" in text
    artifacts = Path(os.environ.get("TEST_ARTIFACTS", REPO / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    assert section.screenshot(str(artifacts / "choice.png"))


def test_a_five_split_report_shows_the_matrix_the_noise_bars_and_the_cd_diagram(driver, tmp_path):
    """A real run of three models on 5 splits x 2 seeds: the section that compares architectures reads on
    screen, with every part of the noise estimable."""
    from helpers import run_job

    done = run_job("run", "--splits", "5", "--repeats", "2", "--sample", "500", "--epochs", "1", "--models", "1,2,3",
                   "--out", str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    driver.get((run_dir / "report.html").as_uri())
    section = driver.find_element("id", "architectures")
    driver.execute_script("arguments[0].scrollIntoView()", section)
    text = section.text
    assert "P(row > column)" in text and "Where the noise comes from" in text and "Mean ranks" in text
    assert "Descriptive" in text and "corrected t" in text
    images = driver.execute_script(
        "return Array.from(arguments[0].querySelectorAll('img')).map(i => [i.alt, i.complete, i.naturalWidth]);",
        section,
    )
    assert len(images) == 2 and all(complete and width > 300 for _, complete, width in images), images
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    artifacts = Path(os.environ.get("TEST_ARTIFACTS", REPO / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(artifacts / "report-splits.png"))
