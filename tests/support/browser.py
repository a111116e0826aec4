"""What the browser tests share: `segue run` as a person starts it and Debian's Chromium driven by
Playwright (fixtures; one of each per test process, which every browser test file shares), a JSON call to the
running server's API, reading what the server logged since a test began, keeping a screenshot, and dropping a
file on an element."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.statuses import UNFINISHED

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SEGUE_CHROMIUM", "/usr/bin/chromium")
#: Each running server's log (uvicorn's access log included), by its URL: tests read what it printed.
SERVER_LOGS: dict[str, Path] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(data: Path, models_dir: Path, llm_cache: Path, **extra_env: str) -> Iterator[str]:
    """`segue run` as a person starts it: embedded mode, SQLite, local frames, worker beside the server, its
    data (and log) in `data`; `extra_env` for a module that needs it configured otherwise. Yields its URL."""
    data.mkdir(parents=True, exist_ok=True)
    (data / "cache").symlink_to(llm_cache, target_is_directory=True)  # SmolLM2 de-quantized once a session
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "SEGUE_DATA_DIR": str(data),
        "SEGUE_PORT": str(port),
        "SEGUE_MODELS_DIR": str(models_dir),
        "SEGUE_EVENT_POLL_SECONDS": "0.1",
    }
    env.pop("SEGUE_DATABASE_URL", None)
    env.pop("SEGUE_MODE", None)
    env.pop("SEGUE_MODEL", None)  # the default a person gets
    env.update(extra_env)
    log = (data / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "run"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    SERVER_LOGS[url] = data / "server.log"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((data / "server.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield url
    finally:
        # The embedded worker is killed (even a cold shutdown waits for its next 2-s poll, and nothing it
        # holds outlives the data dir), then `segue run` gets the SIGTERM a person's Ctrl-C sends.
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        for child in children.read_text().split() if children.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGKILL)
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def segue_server(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, llm_cache: Path
) -> Iterator[str]:
    """One `segue run` for every browser test file of this test process (starting one costs about 9 s: the
    server and its embedded worker each import torch and diffusers). Files see it through `server`."""
    with running_server(tmp_path_factory.mktemp("e2e-data"), models_dir, llm_cache) as url:
        yield url


@pytest.fixture(scope="module")
def server(segue_server: str) -> Iterator[str]:
    """The URL of the test process's shared `segue run`, for one test module. Other files' transitions,
    renders and log lines are on it too: a test looks at its own objects (by id; "Render #N" is a server-wide
    id too) and at the part of the log written since it began (`log_offset`, `log_since`). Frames are stored
    by content, so a frame another file rendered with the same prompt, seed and settings is reused.

    When the module ends, the renders it left queued or running are cancelled (a running batch stops at its
    next step), so the next file has the one embedded worker to itself."""
    yield segue_server
    cancel_unfinished_renders(segue_server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium for one test module (the server is shared; the browser is not).

    Playwright's sync API keeps an asyncio event loop running on the test process's main thread while it
    is open: a session-wide Chromium left one running under every later test of the process, and a test
    there that calls asyncio.run (tests/bench/test_load.py, tests/api/test_links.py) failed. A launch costs
    about a second; whatever a module opened (cookies, storage, pages) ends with it."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; .ci/run installs Debian's chromium package")
    with playwright.sync_playwright() as p:
        instance = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield instance
        instance.close()


def api(server: str, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
    """Call the API of the server under test; the JSON answer ({} for an empty one)."""
    request = urllib.request.Request(
        server + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def transitions(server: str) -> list[dict[str, Any]]:
    """Every transition on the server, most recently edited first (the API gives 500 at most at a time)."""
    found: list[dict[str, Any]] = []
    while True:
        page = api(server, "GET", f"/api/transitions?limit=500&offset={len(found)}")
        found += page
        if len(page) < 500:
            return found


def cancel_unfinished_renders(server: str) -> list[int]:
    """Cancel, through the API, every render on the server that is still queued or running; their ids."""
    cancelled = []
    for transition in transitions(server):
        for render in api(server, "GET", f"/api/transitions/{transition['id']}/renders"):
            if render["status"] not in UNFINISHED:
                continue
            try:
                api(server, "POST", f"/api/renders/{render['id']}/cancel")
            except urllib.error.HTTPError as refused:  # 422: it finished between the two calls
                now = api(server, "GET", f"/api/renders/{render['id']}")["status"]
                if refused.code != 422 or now in UNFINISHED:
                    raise
                continue
            cancelled.append(render["id"])
    return cancelled


def log_offset(server: str) -> int:
    """Where the server's log ends now: `log_since(server, offset)` is then what it printed after."""
    return SERVER_LOGS[server].stat().st_size


def log_since(server: str, offset: int) -> str:
    """What the server (uvicorn's access log included) printed since `log_offset` gave `offset`."""
    with SERVER_LOGS[server].open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def editor_page(server: str, browser: Any, tid: int) -> Any:
    """A new page on a transition's editor, as the editing tests look at it (1300 x 1100, 60-s waits)."""
    page = browser.new_page(viewport={"width": 1300, "height": 1100})
    page.set_default_timeout(60_000)
    page.goto(f"{server}/transitions/{tid}")
    return page


def render_again(page: Any, timeout: float = 180_000) -> int:
    """Click the editor's render button and wait until the render it started is done; its id.

    "Render #N" in the panel is the server's render id, counted over every file that used the server: the
    new render is known by the id the panel changes to, never by an assumed number."""
    before = page.locator("#render-panel").get_attribute("data-render-id") or ""
    page.click("#render-button")
    page.wait_for_function(
        "(before) => document.querySelector('#render-panel').dataset.renderId !== before", arg=before
    )
    render_id = page.locator("#render-panel").get_attribute("data-render-id")
    page.locator("#render-head [data-status=done]", has_text=f"Render #{render_id} done").wait_for(
        timeout=timeout
    )
    return int(render_id)


def keep_screenshot(tmp_path: Path, name: str) -> None:
    """Copy a screenshot the test took into SEGUE_SCREENSHOTS, when set (how docs/ images are made)."""
    if os.environ.get("SEGUE_SCREENSHOTS"):
        shutil.copy(tmp_path / name, Path(os.environ["SEGUE_SCREENSHOTS"]) / name)


#: page.evaluate(DROP, [selector, base64 PNG]): drag a PNG file over the element and drop it there.
DROP = """([selector, data]) => {
  const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], "sunset.png", {type: "image/png"}));
  const zone = document.querySelector(selector);
  zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true, cancelable: true}));
  zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
}"""
