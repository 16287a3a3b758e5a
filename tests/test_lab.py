"""JupyterLab as users see it: notebook 06 opened in JupyterLab in a real (headless) browser and run.

`jupyter lab --no-browser` from this environment serves copies of the notebooks whose parameters cell was
set the way papermill sets it (the tiny budget on synthetic data, as in test_notebooks.py, with
``progress = "auto"`` so that tqdm draws ipywidgets progress bars). Headless Chromium opens each, runs
all cells from the Run menu, waits until the kernel is idle, and checks what a user would see: no error
output; every Markdown heading rendered as a heading of its own (no paragraph swallowed, no literal ``\\n``);
a progress widget in a notebook that trained a model, and no "Error displaying widget"; an image under every
figure cell; the explorer of notebook 06 redrawing its drawing when a slider moves. Screenshots go to
runs/lab/. The server is stopped at the end, failed or not.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``; .ci/run
installs them) and ``selenium`` (requirements.txt); nothing is downloaded at run time. Where the browser is
missing the test is skipped with that reason, but in CI (CI=true) it fails instead.
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import papermill
import pytest
from conftest import ROOT, child_env

from helpers.pipeline import runner

pytestmark = pytest.mark.lab

SHOTS = ROOT / "runs" / "lab"
# The notebook that shows each thing JupyterLab renders: 06 trains its VAEs in the lab's empty model cache (progress
# widgets), has headings, figures, the latent explorer and the most cells. Every notebook runs under nbval
# (test_notebooks.py) and has its markdown checked (test_markdown.py); the others add nothing new here.
NOTEBOOKS = runner.notebooks(["06"])
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1000"]
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def browser_paths() -> tuple[str, str]:
    """Debian's chromium and chromedriver; skip without them, or fail in CI, which must run this test."""
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if all(found):
        return found
    reason = ("headless Chromium is not installed: `apt-get install -y chromium chromium-driver` "
              "(Debian packages; .ci/run installs them)")
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; in CI this test must run, not be skipped")
    pytest.skip(reason)


# ---------------------------------------------------------------------------------------------------
# The server and the browser
# ---------------------------------------------------------------------------------------------------


@dataclass
class Lab:
    url: str
    token: str
    root: Path  # the folder it serves: the prepared notebooks
    work: Path  # their figures, metrics and model cache

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def kernel_state(self, name: str) -> str | None:
        """The execution state of the kernel of the notebook ``name``, or None before it has one."""
        states = [s["kernel"]["execution_state"] for s in self.api("sessions") if s["path"] == name]
        return states[0] if states else None


def prepare(notebooks: Path, work: Path, data_dir: Path) -> None:
    """Copies of the notebooks with their parameters injected as papermill injects them (test_notebooks.py's
    tiny parameters, but widget progress bars)."""
    params = {"data_dir": str(data_dir), "budget": "tiny", "fig_dir": str(work / "figures"),
              "results_path": str(work / "metrics.json"), "runs_dir": str(work / "runs"), "progress": "auto",
              **runner.SMALL_PARAMS["tiny"]}
    for path in NOTEBOOKS:
        mine = {k: v for k, v in params.items() if k in papermill.inspect_notebook(str(path))}
        runner.check_parameters(path, mine)
        papermill.execute_notebook(str(path), str(notebooks / path.name), parameters=mine, prepare_only=True,
                                   kernel_name="python3", progress_bar=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_server(root: Path, home: Path, port: int, token: str, log) -> subprocess.Popen:
    """`jupyter lab` as `make lab` starts it (root allowed, kernels over IPC), on its own port and token."""
    env = {**child_env(), "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime")}  # the user's own Jupyter settings stay out of it
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--KernelManager.transport=ipc", *(["--allow-root"] if os.geteuid() == 0 else [])]
    return subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_server(proc: subprocess.Popen, home: Path) -> None:
    """SIGTERM (the server shuts its kernels down), SIGKILL if it hangs; then any kernel of this server left
    over (found by its connection file in ``home``'s runtime folder) is killed by its pid."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid in [p.name for p in Path("/proc").iterdir() if p.name.isdigit()]:
        try:
            cmdline = (Path("/proc") / pid / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if f"{home / 'runtime'}/kernel-" in cmdline and int(pid) != os.getpid():
            os.kill(int(pid), signal.SIGKILL)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, synthetic_dir):
    browser_paths()  # before anything starts
    base = tmp_path_factory.mktemp("lab")
    root, work = base / "notebooks", base / "work"
    root.mkdir()
    prepare(root, work, synthetic_dir)
    home = Path(tempfile.mkdtemp(prefix="lab-"))  # short: kernels' Unix sockets live in its runtime folder
    port, token = free_port(), secrets.token_hex(16)
    log_path = base / "server.log"
    with open(log_path, "w", encoding="utf-8") as log:
        proc = start_server(root, home, port, token, log)
    server = Lab(f"http://127.0.0.1:{port}", token, root, work)
    try:
        deadline = time.monotonic() + 60
        while True:
            log = log_path.read_text(encoding="utf-8")
            assert proc.poll() is None, f"jupyter lab exited with {proc.returncode}:\n{log[-3000:]}"
            try:
                server.api("status")
                break
            except OSError:
                log = log_path.read_text(encoding="utf-8")
                assert time.monotonic() < deadline, f"jupyter lab did not answer in 60 s:\n{log}"
                time.sleep(0.3)
        yield server
    finally:
        stop_server(proc, home)
        shutil.rmtree(home, ignore_errors=True)
    log = log_path.read_text(encoding="utf-8")
    assert "Kernel is running over TCP" not in log, "JupyterLab's kernels run over TCP, not IPC"
    assert not listening(port), f"something still listens on port {port} after the server stopped"


@pytest.fixture(scope="module")
def browser(lab, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROME_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    # Both paths given: Selenium Manager, which would download a browser and driver, is never called.
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        yield driver
    finally:
        driver.quit()


# ---------------------------------------------------------------------------------------------------
# Driving JupyterLab
# ---------------------------------------------------------------------------------------------------


def wait_for(condition, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(interval)


def menu(driver, top: str, item: str) -> None:
    """Click ``top`` in JupyterLab's menu bar, then ``item`` in its menu."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//div[contains(@class, 'lm-MenuBar-itemLabel') and text()='{top}']").click()
    xpath = f"//li[contains(@class, 'lm-Menu-item')][.//div[contains(@class, 'lm-Menu-itemLabel') and text()='{item}']]"
    wait_for(lambda: driver.find_elements(By.XPATH, xpath), 10, f"the menu item {top} > {item}")[0].click()


PROMPTS = "return [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent)"
STATUS = "const e = document.querySelector('.jp-Notebook-ExecutionIndicator'); return e && e.dataset.status"


def open_notebook(driver, lab: Lab, name: str) -> None:
    """As a user would: the previous notebook's tab closed, the next one double-clicked in the file browser.
    The first one, or after anything unexpected, by loading JupyterLab at the notebook's address."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    item = (f"//li[contains(@class, 'jp-DirListing-item')][.//span[contains(@class, 'jp-DirListing-itemText')]"
            f"/span[text()='{name}']]")
    try:
        assert driver.find_elements(By.CSS_SELECTOR, ".jp-DirListing"), "JupyterLab is not loaded yet"
        if driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel"):
            menu(driver, "File", "Close Tab")
            wait_for(lambda: not driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel"), 10, "the tab to close")
        ActionChains(driver).double_click(driver.find_element(By.XPATH, item)).perform()
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel"), 10, f"{name} to open")
    except Exception:  # a fresh page: the fallback for any state the last test may have left
        driver.get(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")


def run_all(driver, lab: Lab, name: str, timeout: float = 240) -> None:
    """Open the notebook, Run > Run All Cells, wait until no cell is queued or running and the kernel is idle."""
    open_notebook(driver, lab, name)
    wait_for(lambda: driver.execute_script(PROMPTS) and lab.kernel_state(name) == "idle", 60,
             f"{name} to open and its kernel to start")
    menu(driver, "Run", "Run All Cells")
    wait_for(lambda: any("*" in p or re.search(r"\d", p) for p in driver.execute_script(PROMPTS)), 30,
             "the first cell to start")
    wait_for(lambda: (not any("*" in p for p in driver.execute_script(PROMPTS))
                      and driver.execute_script(STATUS) == "idle"), timeout, f"{name} to finish", interval=0.5)


def save(driver, lab: Lab, name: str) -> dict:
    """File > Save Notebook; return the saved notebook (outputs included)."""
    path = lab.root / name
    before = path.stat().st_mtime_ns
    menu(driver, "File", "Save Notebook")
    wait_for(lambda: path.stat().st_mtime_ns != before, 30, f"{name} to be saved")
    return json.loads(path.read_text(encoding="utf-8"))


# What each rendered cell shows, in notebook order (JupyterLab keeps every cell in the page).
CELLS = """return [...document.querySelectorAll('.jp-Notebook .jp-Cell')].map(cell => ({
  headings: [...cell.querySelectorAll('.jp-RenderedMarkdown :is(h1, h2, h3, h4, h5, h6)')].map(
    h => [Number(h.tagName[1]), h.textContent.replace(/¶$/, '').trim()]),
  images: [...cell.querySelectorAll('.jp-OutputArea-output img')].filter(i => i.complete && i.naturalWidth > 0).length,
  progress: cell.querySelectorAll('.jp-OutputArea-output .widget-hprogress').length,
  text: cell.querySelector('.jp-Cell-outputArea') ? cell.querySelector('.jp-Cell-outputArea').textContent : '',
}))"""


def source_headings(markdown: str) -> list:
    """(level, text) of each ATX heading outside code fences; inline code and emphasis marks dropped."""
    found, fenced = [], False
    for line in markdown.splitlines():
        fenced ^= line.lstrip().startswith("```")
        m = None if fenced else HEADING.match(line)
        if m:
            found.append([len(m.group(1)), re.sub(r"[`*]", "", m.group(2))])
    return found


def screenshot(driver, path: Path, shown_height: int = 14000) -> None:
    """The whole notebook in one picture: the window made as tall as the notebook, scrolled to its top."""
    height = driver.execute_script("return document.querySelector('.jp-WindowedPanel-outer').scrollHeight")
    driver.set_window_size(1280, min(height + 250, shown_height))
    driver.execute_script("document.querySelector('.jp-WindowedPanel-outer').scrollTop = 0")
    time.sleep(0.5)  # a frame to lay the page out again
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)


def models_in(work: Path) -> set:
    return {p.parent.name for p in (work / "runs" / "models").glob("*/model.pt")}


# ---------------------------------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------------------------------


def test_make_lab_starts_jupyterlab_for_root_too():
    env = child_env()
    dry_run = subprocess.run(["make", "-n", "lab"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    (command,) = [line for line in dry_run.stdout.splitlines() if "jupyter lab" in line]
    assert ("--allow-root" in command) == (os.geteuid() == 0), command  # Jupyter refuses root without it
    assert "--KernelManager.transport=ipc" in command, command


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_renders_in_jupyterlab(path, lab, browser):
    trained_before = models_in(lab.work)
    try:
        run_all(browser, lab, path.name)
        nb = save(browser, lab, path.name)
        cells = browser.execute_script(CELLS)
    finally:  # also the picture of a run that failed or hung
        screenshot(browser, SHOTS / f"{path.stem}.png")
    try:
        trained = models_in(lab.work) - trained_before
        assert trained, f"{path.name} trained no model in the lab's empty cache: its progress widgets went unchecked"
        check_outputs(path.name, nb, cells, trained=trained)
        for i in [i for i, c in enumerate(nb["cells"]) if "latent_explorer(" in "".join(c["source"])]:
            check_explorer_redraws(browser, i, SHOTS / f"{path.stem}_explorer")
        page = browser.execute_script("return document.body.textContent")
        assert "official Jupyter news" not in page, "JupyterLab asks about Jupyter news: `make setup` turns it off"
    finally:
        for session in lab.api("sessions"):  # one kernel at a time: each notebook's stops when it is checked
            lab.api(f"sessions/{session['id']}", method="DELETE")


def check_outputs(name: str, nb: dict, cells: list, trained: set) -> None:
    assert len(cells) == len(nb["cells"]), f"{name}: {len(cells)} cells shown, {len(nb['cells'])} in the notebook"
    errors = [f"cell {i}: {o['ename']}: {o['evalue']}" for i, c in enumerate(nb["cells"])
              for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, f"{name}: error output in JupyterLab:\n" + "\n".join(errors)
    not_run = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and c["execution_count"] is None]
    assert not not_run, f"{name}: cells {not_run} did not run"
    for i, (cell, shown) in enumerate(zip(nb["cells"], cells)):
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            literal = [text for _, text in shown["headings"] if "\\n" in text]
            assert not literal, f"{name}, cell {i}: a heading holds a literal \\n: {literal}"
            assert shown["headings"] == source_headings(source), f"{name}, cell {i}: headings rendered as {shown}"
        assert "Error displaying widget" not in shown["text"], f"{name}, cell {i}: {shown['text'][:500]}"
        figures = source.count("plt.show()")
        assert shown["images"] >= figures, f"{name}, cell {i}: {figures} figure(s), {shown['images']} image(s) shown"
    if trained:  # a notebook that trains shows its progress bars as widgets
        assert sum(c["progress"] for c in cells) >= 1, f"{name} trained {sorted(trained)} but shows no progress widget"


def check_explorer_redraws(driver, index: int, shots: Path) -> None:
    """Drag the explorer's first slider; the drawing (a PNG the kernel sends back) must change."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    cell = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")[index]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)

    def drawing():  # read in one call: the output widget replaces its image when it redraws
        return driver.execute_script("const i = arguments[0].querySelector('.widget-output img'); return i && i.src",
                                     cell)

    before = wait_for(drawing, 30, "the explorer's drawing")
    shots.parent.mkdir(parents=True, exist_ok=True)
    cell.screenshot(f"{shots}_before.png")
    handle = cell.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
    ActionChains(driver).click_and_hold(handle).move_by_offset(40, 0).release().perform()
    wait_for(lambda: drawing() not in (None, before), 30, "the drawing to change after the slider moved")
    time.sleep(0.3)  # the new image decoded and laid out before the picture
    cell.screenshot(f"{shots}_after.png")
