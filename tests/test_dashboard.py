"""The dashboard in a real headless Chromium (Debian's chromium and chromium-driver, which
``make test`` installs: scripts/install-test-tools), against a real API, Redis and worker:
sign in and submit from the form; a running job opened mid-fit (its loss history from the
first recorded step, its current curve); a degree sweep's AIC, BIC and final loss by degree;
finished sweep members listed as finished; the user's own CSV started as a sweep; every API
value shown as text; no inline script allowed, no 404 (the favicon) and no console error."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conftest import TOKEN, Api

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                 reason="needs chromium and chromedriver: "
                                        "run scripts/install-test-tools (make test does)")]
PAGES = ("/", "/submit", "/jobs/{job_id}", "/sweeps/{sweep_id}")


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[Api]:
    service = Api(tmp_path_factory.mktemp("dashboard"), rate_limit=6000)
    yield service
    service.close()


@pytest.fixture(scope="module")
def browser(api) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    driver.get(f"{api.url}/healthz")  # the origin, to hold the token in its session
    driver.execute_script("sessionStorage.setItem('polyfit-token', arguments[0])", TOKEN)
    yield driver
    driver.quit()


def until(browser, check, timeout: float, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(
        lambda _: check(), message=what)


def by_id(browser, element_id: str):
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, element_id)


def css(browser, selector: str) -> list:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


def wait_for(api: Api, job_id: str, check, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    while not check(document := api.http.get(f"/api/jobs/{job_id}").json()):
        assert time.monotonic() < deadline, f"{what}: {document['state']}"
        time.sleep(0.1)
    return document


def test_sign_in_and_submit_from_the_form(api, browser):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{api.url}/")
    token = until(browser, lambda: by_id(browser, "token"), 30, "the login form")
    token.send_keys("wrong", Keys.ENTER)
    until(browser, lambda: "not accepted" in by_id(browser, "login-error").text, 30,
          "the refusal of a wrong token")
    token.clear()
    token.send_keys(TOKEN, Keys.ENTER)  # keyboard only
    until(browser, lambda: "live" in by_id(browser, "updated").text, 30, "the job list")
    states = [o.text for o in Select(by_id(browser, "state")).options]
    assert states == ["any", *api.http.get("/api/choices").json()["state"]]

    browser.get(f"{api.url}/submit")
    approach = until(browser, lambda: Select(by_id(browser, "approach")), 30, "the form")
    until(browser, lambda: approach.first_selected_option.text == "legendre", 30, "defaults")
    choices = api.http.get("/api/choices").json()
    for name in ("target", "device", "dtype"):
        select = Select(css(browser, f"select[name={name}]")[0])
        assert [o.text for o in select.options] == choices[name]  # from the API, not the page
    steps = css(browser, "input[name=steps]")[0]
    assert steps.get_attribute("value") == "2000"  # legendre's default, filled in
    approach.select_by_visible_text("exact")
    assert not steps.is_enabled()  # closed-form: no steps
    approach.select_by_visible_text("legendre")
    steps.clear()
    steps.send_keys("3000")
    css(browser, "#submit button[type=submit]")[0].click()
    until(browser, lambda: "/jobs/" in browser.current_url, 30, "the job's page")
    until(browser, lambda: by_id(browser, "state").text == "succeeded", 120, "succeeded")
    job = api.http.get(f"/api/jobs/{browser.current_url.rsplit('/', 1)[1]}").json()
    assert job["request"]["steps"] == 3000
    rows = css(browser, "#coefficients tr")
    assert [r.text.split()[0] for r in rows] == ["a", "b", "c", "d"]
    assert "P3(" in by_id(browser, "formula").text


def test_a_running_job_opened_mid_fit_shows_its_whole_history_and_current_curve(api, browser):
    started = time.monotonic()
    job_id = api.http.post("/api/jobs", json={
        "approach": "legendre", "steps": 400_000, "record_every": 100}).json()["job_id"]
    opened = wait_for(api, job_id, lambda d: d["progress"] and d["progress"]["step"] > 20_000,
                      120, "the job past step 20000")
    browser.get(f"{api.url}/jobs/{job_id}")
    until(browser, lambda: css(browser, "#loss-chart polyline.loss"), 30, "the loss curve")
    first_step = opened["loss_history"][0][0] + 1  # the first recorded step, 100
    assert first_step == 100
    # drawn from the first recorded step on, not from when the page opened
    x_axis_start = css(browser, "#loss-chart text")[0].text
    assert float(x_axis_start) == first_step
    points = len(css(browser, "#loss-chart polyline.loss")[0].get_attribute("points").split())
    assert points >= len(opened["loss_history"]) > 100
    until(browser, lambda: css(browser, "#fit-chart polyline.fit"), 30, "the current curve")
    assert by_id(browser, "curve-kind").text == "current"
    assert by_id(browser, "state").text == "running"
    assert "growing live" in by_id(browser, "live-note").text
    assert [r.text.split()[0] for r in css(browser, "#coefficients tr")] == ["a", "b", "c", "d"]
    by_id(browser, "cancel").click()
    until(browser, lambda: by_id(browser, "state").text == "cancelled", 60, "cancelled")
    print(f"\nbrowser: running job page in {time.monotonic() - started:.1f} s")


def test_a_degree_sweep_charts_aic_bic_and_final_loss_by_degree(api, browser):
    sweep_id = api.http.post("/api/sweeps", json={
        "base": {"approach": "exact", "n_points": 200}, "degrees": list(range(1, 10))}
    ).json()["sweep_id"]
    browser.get(f"{api.url}/sweeps/{sweep_id}")
    until(browser, lambda: by_id(browser, "state").text == "succeeded", 90, "succeeded")
    sweep = api.http.get(f"/api/sweeps/{sweep_id}").json()
    rows = [r.find_elements("tag name", "td") for r in css(browser, "#members tr")]
    shown = {int(r[2].text): (float(r[6].text), float(r[7].text), float(r[8].text))
             for r in rows}
    for member in sweep["members"]:
        loss, aic, bic = shown[member["degree"]]
        assert loss == pytest.approx(member["final_loss"], rel=1e-5)
        assert aic == pytest.approx(member["aic"], rel=1e-5)
        assert bic == pytest.approx(member["bic"], rel=1e-5)
    for criterion in ("aic", "bic"):
        line = css(browser, f"#criteria-chart polyline.{criterion}")[0]
        assert len(line.get_attribute("points").split()) == 9
    assert len(css(browser, "#degree-loss-chart circle.member")) == 9
    assert not by_id(browser, "degree-figure").get_attribute("hidden")
    assert by_id(browser, "rate-figure").get_attribute("hidden")  # one learning rate: none
    best_aic = min(sweep["members"], key=lambda m: m["aic"])["degree"]
    assert f"lowest AIC at degree {best_aic}" in by_id(browser, "best-criteria").text


def test_a_learning_rate_sweep_and_its_finished_members_in_the_job_list(api, browser):
    sweep_id = api.http.post("/api/sweeps", json={
        "base": {"approach": "tensor", "steps": 300, "seed": 1},
        "learning_rates": [1e-6, 3e-6], "seeds": [1, 2]}).json()["sweep_id"]
    browser.get(f"{api.url}/sweeps/{sweep_id}")
    until(browser, lambda: by_id(browser, "state").text == "succeeded", 90, "succeeded")
    rows = css(browser, "#members tr")
    losses = [float(r.find_elements("tag name", "td")[6].text) for r in rows]
    assert len(rows) == 4 and losses == sorted(losses)  # best first
    assert len(css(browser, "#members-chart circle.member")) == 4
    members = {m["job_id"] for m in api.http.get(f"/api/sweeps/{sweep_id}").json()["members"]}

    browser.get(f"{api.url}/")
    until(browser, lambda: len(css(browser, "#jobs tr")) >= 4, 30, "the job list")
    listed = {}
    for row in css(browser, "#jobs tr"):
        cells = row.find_elements("tag name", "td")
        job_id = cells[0].find_element("tag name", "a").get_attribute("href").rsplit("/", 1)[1]
        listed[job_id] = (cells[2].text, cells[3].text)
    assert {listed[job_id] for job_id in members} == {("succeeded", "300 steps")}


def test_the_users_csv_started_as_a_sweep(api, browser, tmp_path: Path):
    from selenium.webdriver.support.ui import Select

    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n0,1\n1,two\n")
    good = tmp_path / "points.csv"
    rows = [(x / 10, 1 + 2 * (x / 10) - (x / 10) ** 2 + 0.01 * (-1) ** x, 0.01)
            for x in range(40)]
    good.write_text("x,y,sigma\n" + "".join(f"{x},{y},{s}\n" for x, y, s in rows))

    browser.get(f"{api.url}/submit")
    approach = until(browser, lambda: Select(by_id(browser, "approach")), 30, "the form")
    until(browser, lambda: approach.first_selected_option.text == "legendre", 30, "defaults")
    by_id(browser, "data").send_keys(str(bad))
    until(browser, lambda: "line 3: not a number" in by_id(browser, "error").text, 30,
          "the bad row named")
    by_id(browser, "data").send_keys(str(good))
    until(browser, lambda: "40 points read" in by_id(browser, "data-note").text, 30,
          "the points read")
    assert "sigma" in by_id(browser, "data-note").text
    assert not css(browser, "select[name=target]")[0].is_enabled()  # the data replaces it
    approach.select_by_visible_text("exact")
    css(browser, "input[name=absolute_sigma]")[0].click()
    by_id(browser, "degrees").send_keys("1-3")
    css(browser, "#submit button[type=submit]")[0].click()
    until(browser, lambda: "/sweeps/" in browser.current_url, 30, "the sweep's page")
    until(browser, lambda: by_id(browser, "state").text == "succeeded", 90, "succeeded")
    sweep = api.http.get(f"/api/sweeps/{browser.current_url.rsplit('/', 1)[1]}").json()
    base = sweep["request"]["base"]
    assert base["data"]["x"] == [x for x, _, _ in rows] and base["absolute_sigma"] is True
    assert sorted(m["degree"] for m in sweep["members"]) == [1, 2, 3]
    assert min(sweep["members"], key=lambda m: m["bic"])["degree"] == 2  # the data's degree


def test_values_from_the_api_are_shown_as_text_never_run(api, browser):
    from polyfit.store.keys import job_key

    job_id = api.http.post("/api/jobs", json={"approach": "exact"}).json()["job_id"]
    wait_for(api, job_id, lambda d: d["state"] == "succeeded", 60, "succeeded")
    hostile = '<img src=x onerror="document.title=\'owned\'">'
    redis.Redis.from_url(api.server.url).hset(job_key(job_id), mapping={
        "worker": hostile, "error": json.dumps({"type": "<b>Bold</b>", "message": hostile})})
    browser.get(f"{api.url}/jobs/{job_id}")
    until(browser, lambda: hostile in by_id(browser, "error").text, 30, "the error")
    assert hostile in by_id(browser, "timings").text
    assert not css(browser, "main img") and not css(browser, "main b")
    assert browser.title != "owned"


def test_pages_allow_only_their_own_scripts_and_log_no_errors(api, browser):
    job_id = api.http.post("/api/jobs", json={"approach": "exact"}).json()["job_id"]
    wait_for(api, job_id, lambda d: d["state"] == "succeeded", 60, "succeeded")
    sweep_id = api.http.post("/api/sweeps", json={
        "base": {"approach": "exact"}, "degrees": [1, 2]}).json()["sweep_id"]
    browser.get_log("browser")  # what earlier tests left
    for page in PAGES:
        path = page.format(job_id=job_id, sweep_id=sweep_id)
        answer = api.http.get(path)
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "<script>" not in answer.text  # each page's script is a file of its own
        browser.get(f"{api.url}{path}")
        until(browser, lambda: browser.execute_script("return document.readyState") == "complete",
              30, path)
        time.sleep(1)  # its first calls answered
        assert browser.execute_script(
            "return document.querySelector('link[rel=icon]').href").endswith("/favicon.svg")
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert not errors, f"{path}: {errors}"
    assert api.http.get("/static/favicon.svg").status_code == 200
    assert api.http.get("/favicon.ico").status_code == 200
    # the policy is enforced: a script written into the page does not run
    browser.execute_script("""const s = document.createElement('script');
        s.textContent = "document.title = 'inline ran'"; document.body.append(s);""")
    time.sleep(0.5)
    assert browser.title != "inline ran"
    assert any("Content Security Policy" in entry["message"]
               for entry in browser.get_log("browser"))
