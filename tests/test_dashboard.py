"""The dashboard in a real headless Chromium (Debian's chromium and chromium-driver, which
``make test`` installs: scripts/install-test-tools), against a real API, Redis and worker:
sign in, submit legendre from the form, watch it succeed with its loss curve drawn, open a
sweep's page."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from conftest import TOKEN, Api

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                 reason="needs chromium and chromedriver: "
                                        "run scripts/install-test-tools (make test does)")]


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[Api]:
    service = Api(tmp_path_factory.mktemp("dashboard"))
    yield service
    service.close()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def until(browser, check, timeout: float, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(
        lambda _: check(), message=what)


def test_sign_in_submit_legendre_and_watch_it_succeed(api, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    started = time.monotonic()
    browser.get(f"{api.url}/")
    token = until(browser, lambda: browser.find_element(By.ID, "token"), 30, "the login form")
    token.send_keys("wrong", Keys.ENTER)
    until(browser, lambda: "not accepted" in browser.find_element(By.ID, "login-error").text,
          30, "the refusal of a wrong token")
    token.clear()
    token.send_keys(TOKEN, Keys.ENTER)  # keyboard only
    until(browser, lambda: "live" in browser.find_element(By.ID, "updated").text, 30,
          "the job list")

    browser.get(f"{api.url}/submit")
    approach = until(browser, lambda: Select(browser.find_element(By.ID, "approach")), 30,
                     "the submit form")
    until(browser, lambda: approach.first_selected_option.text == "legendre", 30, "defaults")
    steps = browser.find_element(By.NAME, "steps")
    assert steps.get_attribute("value") == "2000"  # legendre's default, filled in
    approach.select_by_visible_text("exact")
    assert not steps.is_enabled()  # closed-form: no steps
    approach.select_by_visible_text("legendre")
    steps.clear()
    steps.send_keys("60000")  # a few seconds, to see the curve grow
    browser.find_element(By.CSS_SELECTOR, "#submit button[type=submit]").click()

    until(browser, lambda: "/jobs/" in browser.current_url, 30, "the job's page")
    until(browser, lambda: browser.find_element(By.ID, "state").text == "running", 60,
          "the job running")
    until(browser, lambda: "growing live" in browser.find_element(By.ID, "live-note").text,
          30, "the live loss curve")
    until(browser, lambda: browser.find_element(By.ID, "state").text == "succeeded", 120,
          "the job succeeded")
    loss = until(browser, lambda: browser.find_element(By.CSS_SELECTOR, "#loss-chart .loss"),
                 30, "the loss curve")
    job = api.http.get(f"/api/jobs/{browser.current_url.rsplit('/', 1)[1]}").json()
    assert len(loss.get_attribute("points").split()) == len(job["loss_history"]) == 600
    until(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "#fit-chart .fit"), 30,
          "the fit over the data")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#fit-chart circle.data")) > 100
    rows = browser.find_elements(By.CSS_SELECTOR, "#coefficients tr")
    assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == ["a", "b", "c", "d"]
    assert "P3(" in browser.find_element(By.ID, "formula").text
    print(f"\nbrowser: sign in, submit, watch to succeeded in "
          f"{time.monotonic() - started:.1f} s")


def test_a_sweep_page_compares_its_members(api, browser):
    from selenium.webdriver.common.by import By

    started = time.monotonic()
    answer = api.http.post("/api/sweeps", json={
        "base": {"approach": "tensor", "steps": 300, "seed": 1},
        "learning_rates": [1e-6, 3e-6], "seeds": [1, 2]})
    sweep_id = answer.json()["sweep_id"]
    browser.get(f"{api.url}/sweeps/{sweep_id}")
    until(browser, lambda: browser.find_element(By.ID, "state").text == "succeeded", 90,
          "the sweep succeeded")
    rows = browser.find_elements(By.CSS_SELECTOR, "#members tr")
    losses = [float(r.find_elements(By.TAG_NAME, "td")[6].text) for r in rows]
    assert len(rows) == 4 and losses == sorted(losses)  # best first
    assert len(browser.find_elements(By.CSS_SELECTOR, "#members-chart circle.member")) == 4
    print(f"\nbrowser: sweep page in {time.monotonic() - started:.1f} s")
