"""The MLflow UI as a person sees it, in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by selenium), on a real ``mlflow server`` holding a finished tiny
sweep (2 configurations x 2 folds, 1 epoch): the experiment opens on its runs with the sweep run
and its configuration runs nested under it, a configuration run shows ``cv_accuracy_mean``, a
fold run shows its confusion-matrix PNG and its model, the compare view of the configuration
runs renders. Screenshots go to the test's folder and, when ``US8K_TEST_ARTIFACTS`` names a
folder, are copied there (``.ci/run`` installs Chromium when missing; without it the test skips).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.parse
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestration.cv_sweep import main
from orchestration.tracking import TAG_CONFIG, TAG_KIND, TAG_SWEEP, ui_runs_url

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
WAIT_S = 180  # generous: a busy 2-core machine renders MLflow's UI slowly; never a speed test
EXPERIMENT, SWEEP = "ui-sweep", "ui"
ARGS = ["--folds", "1,2", "--epochs", "1", "--no-refit", "--search-space", '{"learning_rate": [1e-3, 3e-3]}',
        "--set", "train.filters=[8,8,16,16]", "--set", "features.frames=44", "--set", "train.batch_size=32"]

pytestmark = pytest.mark.slow


def _first(paths: tuple[str, ...]) -> str | None:
    return next((p for p in paths if Path(p).exists()), None) or None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium through selenium, with Debian's driver (no driver download)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    binary = _first(CHROMIUM) or shutil.which("chromium")
    driver_path = _first(CHROMEDRIVER) or shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver "
                    "(.ci/run does it when running as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1920,1080", "--hide-scrollbars"):
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager fetch anything
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def sweep_server(ray_local, tiny_dataset_root, tmp_path_factory, mlflow_server_tools):
    """A real mlflow server, and a finished tiny sweep logged to it; (uri, runs by kind)."""
    folder = tmp_path_factory.mktemp("ui-sweep")
    proc, uri = mlflow_server_tools.start(folder)
    try:
        args = ["--data-dir", str(tiny_dataset_root), "--cache-dir", str(folder / "cache"),
                "--storage-path", str(folder / "ray"), "--tracking-uri", uri, "--experiment", EXPERIMENT,
                "--name", SWEEP, *ARGS]
        assert main(args) == 0
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name(EXPERIMENT)
        runs = client.search_runs([exp.experiment_id], f"tags.`{TAG_SWEEP}` = '{SWEEP}'")
        by_kind: dict[str, list] = {}
        for run in runs:
            by_kind.setdefault(run.data.tags[TAG_KIND], []).append(run)
        yield uri, exp.experiment_id, by_kind
    finally:
        mlflow_server_tools.stop(proc)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screenshots")
    yield folder
    target = os.environ.get("US8K_TEST_ARTIFACTS")
    if target:
        shutil.copytree(folder, Path(target) / "mlflow-ui", dirs_exist_ok=True)


def _wait(driver, condition, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.5).until(condition)
    except TimeoutException:
        pytest.fail(f"the MLflow UI never showed {what} within {WAIT_S} s at {driver.current_url}; "
                    f"page text: {_text(driver)[:1500]!r}")


def _text(driver) -> str:
    from selenium.webdriver.common.by import By

    try:
        return driver.find_element(By.TAG_NAME, "body").text
    except Exception:
        return ""


def _shows(*texts: str):
    return lambda driver: all(t in _text(driver) for t in texts)


def _close_assistant(driver) -> None:
    """Close MLflow's assistant side panel if it is open (it takes a quarter of the screenshots)."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, '[data-component-id="mlflow.assistant.chat_panel.close"]'):
        if button.is_displayed():
            button.click()


def _run_link(driver, run_id: str):
    from selenium.webdriver.common.by import By

    links = driver.find_elements(By.CSS_SELECTOR, f'div[role="gridcell"] a[href*="/runs/{run_id}"]')
    return next((link for link in links if link.is_displayed()), None)


def _expand(driver, run_id: str) -> None:
    """Click the +/- button in front of a run's name in the runs table."""
    from selenium.webdriver.common.by import By

    _run_link(driver, run_id).find_element(By.XPATH, "./ancestor::div[@role='gridcell']//button").click()


def test_the_mlflow_ui_shows_the_sweep_its_configurations_folds_and_their_comparison(browser, sweep_server, shots,
                                                                                     tmp_path):
    """One test, four views in order: the runs table, a configuration run, a fold run, the
    compare view. One test, not four: under ``pytest -n 2`` each xdist worker running one of
    them would build the module's sweep and server again (~60 s)."""
    _the_experiment_opens_on_the_sweep_with_its_configurations_nested(browser, sweep_server, shots)
    _a_configuration_run_shows_its_cv_accuracy_mean(browser, sweep_server, shots)
    _a_fold_run_shows_its_confusion_matrix_and_its_model(browser, sweep_server, shots, tmp_path)
    _the_compare_view_of_the_configuration_runs_renders(browser, sweep_server, shots)


def _the_experiment_opens_on_the_sweep_with_its_configurations_nested(browser, sweep_server, shots):
    uri, exp_id, runs = sweep_server
    (sweep,) = runs["sweep"]
    configs = {r.data.tags[TAG_CONFIG]: r for r in runs["config"]}
    assert len(configs) == 2 and len(runs["fold"]) == 4
    # The link the sweep prints: it opens the runs table, not the GenAI overview.
    browser.get(ui_runs_url(uri, exp_id))
    _wait(browser, lambda d: _run_link(d, sweep.info.run_id), "the sweep run in the runs table")
    assert "Runs" in _text(browser) and "Traces\n0" not in _text(browser)
    _close_assistant(browser)
    # Collapsed: only the sweep is listed; its configurations appear, indented, under it.
    assert all(_run_link(browser, c.info.run_id) is None for c in configs.values())
    _expand(browser, sweep.info.run_id)
    _wait(browser, lambda d: all(_run_link(d, c.info.run_id) for c in configs.values()), "the configuration runs")
    sweep_x = _run_link(browser, sweep.info.run_id).location["x"]
    for config in configs.values():
        link = _run_link(browser, config.info.run_id)
        assert link.text.startswith(config.data.tags[TAG_CONFIG]) and link.location["x"] > sweep_x
    # A configuration's fold runs, nested one level deeper, with their dataset and model.
    best = max(configs.values(), key=lambda r: r.data.metrics["cv_accuracy_mean"])
    folds = [r for r in runs["fold"] if r.data.tags[TAG_CONFIG] == best.data.tags[TAG_CONFIG]]
    _expand(browser, best.info.run_id)
    _wait(browser, lambda d: all(_run_link(d, f.info.run_id) for f in folds), "the fold runs")
    config_x = _run_link(browser, best.info.run_id).location["x"]
    rows = _grid_rows(browser)
    for fold in folds:
        assert _run_link(browser, fold.info.run_id).location["x"] > config_x
        row = rows[fold.info.run_name]
        # Dataset, Source and Models columns: the training features, the driver, the Keras model.
        assert "us8k-features folds" in row and "cv_sweep.py" in row and "model" in row.split(" / ")
    browser.save_screenshot(str(shots / "experiment-runs.png"))


def _grid_rows(driver) -> dict[str, str]:
    """Run name -> the text of its row across the table's pinned and scrolling parts."""
    from selenium.webdriver.common.by import By

    parts: dict[str, list[str]] = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "div[role='row'][row-index]"):
        parts.setdefault(row.get_attribute("row-index"), []).append(row.text.replace("\n", " / "))
    names = {}
    for texts in parts.values():
        joined = " / ".join(t for t in texts if t)
        for link in joined.split(" / "):
            names.setdefault(link, joined)
    return names


def _a_configuration_run_shows_its_cv_accuracy_mean(browser, sweep_server, shots):
    uri, exp_id, runs = sweep_server
    config = runs["config"][0]
    browser.get(f"{uri}/#/experiments/{exp_id}/runs/{config.info.run_id}?workflowType=machine_learning")
    _wait(browser, _shows("cv_accuracy_mean", "fold_1_accuracy", config.info.run_name), "the configuration's metrics")
    _close_assistant(browser)
    lines = _text(browser).splitlines()
    shown = float(lines[lines.index("cv_accuracy_mean") + 1])
    assert shown == pytest.approx(config.data.metrics["cv_accuracy_mean"])
    browser.save_screenshot(str(shots / "configuration-run.png"))


def _a_fold_run_shows_its_confusion_matrix_and_its_model(browser, sweep_server, shots, tmp_path):
    uri, exp_id, runs = sweep_server
    fold = runs["fold"][0]
    base = f"{uri}/#/experiments/{exp_id}/runs/{fold.info.run_id}"
    browser.get(f"{base}?workflowType=machine_learning")
    _wait(browser, _shows("Logged models (1)", "test_accuracy", "Parent run"), "the fold run's overview")
    _close_assistant(browser)
    lines = _text(browser).splitlines()
    model_row = lines[lines.index("Logged models (1)"):]
    assert "model" in model_row and "Ready" in model_row  # the logged Keras model, linked to the run
    browser.save_screenshot(str(shots / "fold-run.png"))

    browser.get(f"{base}/artifacts/confusion_matrix.png?workflowType=machine_learning")
    script = ("const i = document.querySelector('img[alt=\"confusion_matrix.png\"]');"
              "return i && i.complete ? [i.naturalWidth, i.naturalHeight] : null;")
    size = _wait(browser, lambda d: d.execute_script(script), "the confusion-matrix PNG")
    local = MlflowClient(uri).download_artifacts(fold.info.run_id, "confusion_matrix.png", str(tmp_path))
    import matplotlib.pyplot as plt

    height, width = plt.imread(local).shape[:2]
    assert list(size) == [width, height]  # the logged figure itself, decoded by the browser
    browser.save_screenshot(str(shots / "fold-confusion-matrix.png"))


def _the_compare_view_of_the_configuration_runs_renders(browser, sweep_server, shots):
    uri, exp_id, runs = sweep_server
    ids = [r.info.run_id for r in runs["config"]]
    query = urllib.parse.urlencode({"runs": json.dumps(ids), "experiments": json.dumps([exp_id]),
                                    "workflowType": "machine_learning"})
    browser.get(f"{uri}/#/compare-runs?{query}")
    names = [r.info.run_name for r in runs["config"]]
    _wait(browser, _shows(f"Comparing {len(ids)} Runs", "Parallel Coordinates Plot", "cv_accuracy_mean", *names),
          "the comparison of the configuration runs")
    _wait(browser, lambda d: d.execute_script("return document.querySelectorAll('.js-plotly-plot .main-svg').length"),
          "the parallel-coordinates plot")
    _close_assistant(browser)
    browser.save_screenshot(str(shots / "compare-configurations.png"))
