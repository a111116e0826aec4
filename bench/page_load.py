"""How fast a 600-frame transition page becomes usable, and how many thumbnails it loads to get there.

    python -m bench.page_load [--frames 600] [--runs 3] [--chromium /usr/bin/chromium]

Builds a transition in a temporary data dir with a finished render whose frames are tiny PNGs (through the
app's own services, the queue stubbed out: nothing is rendered), starts `segue run` on it without a worker,
and loads the page in headless Chromium, a fresh browser context (cold cache) per run, once with the
horizontal film strip and once with the grid. Prints a Markdown table of medians:

- HTML: the server's response for the page (request start to last byte) and its size;
- DOMContentLoaded, first contentful paint, load: from the browser's navigation timing;
- player ready: when static/player.js has set the player up (its controls and keys answer from then on);
- answers ← →: from navigation start until the player has moved to frame 1 after a key press sent as soon
  as it was ready, seen from the test driver, so Playwright's round trips are included: an upper bound;
- thumbnails: strip images loaded one second after `load`, and all frame images fetched (the player's
  preloading included).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _png(index: int, total: int) -> bytes:
    """A 64×64 gradient whose colour walks from blue to green over the transition."""
    from PIL import Image

    f = index / max(1, total - 1)
    image = Image.new("RGB", (64, 64))
    image.putdata(
        [
            (int(60 + 120 * (1 - f)), int(80 + 150 * f * y / 63), int(200 * (1 - f) + 40 * x / 63))
            for y in range(64)
            for x in range(64)
        ]
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def build(data_dir: Path, frames: int) -> int:
    """A transition with one finished `frames`-frame render; returns the transition's id."""
    os.environ["SEGUE_DATA_DIR"] = str(data_dir)
    os.environ["SEGUE_MODEL"] = "segue-tiny"
    from app.cli import migrate
    from infra.db import session_scope
    from infra.storage import get_store
    from services import rendering, transitions
    from services.schemas import TransitionCreate

    migrate()
    rendering.send_render_batch = lambda render_id, indices: None  # type: ignore[assignment]  # nothing renders
    store = get_store()
    with session_scope() as db:
        transition = transitions.create_transition(
            db,
            TransitionCreate(
                title=f"{frames} frames",
                start_prompt="a futuristic cityscape",
                end_prompt="a girl in a magical forest",
                frames=frames,
                seed=1,
                model="segue-tiny",
            ),
        )
        render = rendering.start_render(db, transition)
        for frame in render.frames:
            store.write(frame.key, _png(frame.index, frames))
            frame.status = "done"
        db.commit()
        rendering.finish_render(db, render, "done")
        return transition.id


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "SEGUE_DATA_DIR": str(data_dir),
        "SEGUE_PORT": str(port),
        "SEGUE_EMBEDDED_WORKER": "false",
        "SEGUE_WORKER_THREADS": "1",
    }
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "run"], cwd=REPO, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=2)
            return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((data_dir / "server.log").read_text()[-3000:]) from None
            time.sleep(0.3)


# When the player has set itself up (static/player.js marks its root data-ready), in the page's own clock.
READY = """
new MutationObserver((_, observer) => {
  if (document.querySelector('[data-player][data-ready]')) {
    window.__ready = performance.now();
    observer.disconnect();
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-ready']});
"""

TIMINGS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  const frames = performance.getEntriesByType('resource').filter((e) => e.name.includes('/media/frames/'));
  const strip = [...document.querySelectorAll('.filmstrip img')];
  return {
    html: nav.responseEnd - nav.requestStart, bytes: nav.transferSize,
    dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd, fcp: fcp ? fcp.startTime : NaN,
    ready: window.__ready,
    fetched: frames.length, strip: strip.filter((i) => i.complete && i.naturalWidth > 0).length,
    tiles: document.querySelectorAll('.filmstrip figure').length,
  };
}"""


def measure(browser: Any, url: str, view: str) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1300, "height": 950})
    page = context.new_page()
    page.add_init_script(f"localStorage.setItem('segue.strip.view', '{view}');" + READY)
    page.goto(url, wait_until="commit")
    page.wait_for_selector("[data-player][data-ready]")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.querySelector('[data-player]').dataset.index === '1'", polling=5)
    interactive = page.evaluate("performance.now()")
    page.wait_for_load_state("load")
    page.wait_for_timeout(1000)
    result = dict(page.evaluate(TIMINGS), interactive=interactive)
    context.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chromium", default=os.environ.get("SEGUE_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="segue-page-load-") as tmp:
        data_dir = Path(tmp)
        transition_id = build(data_dir, args.frames)
        process, url = serve(data_dir)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
                )
                page_url = f"{url}/transitions/{transition_id}"
                measure(browser, page_url, "strip")  # warm the server (templates, first queries)
                rows = {
                    view: [measure(browser, page_url, view) for _ in range(args.runs)]
                    for view in ("strip", "grid")
                }
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=30)

    def median(view: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[view])

    print(f"\n{args.frames}-frame transition page, medians of {args.runs} cold loads", end=" ")
    print("(1300×950, headless Chromium)\n")
    columns = [
        "view",
        "HTML",
        "DOMContentLoaded",
        "first paint",
        "player ready",
        "answers ← → (driver)",
        "load",
        "strip thumbnails loaded",
        "frame images fetched",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for view in rows:
        cells = [
            view,
            f"{median(view, 'html'):.0f} ms, {median(view, 'bytes') / 1024:.0f} KB",
            *(f"{median(view, key):.0f} ms" for key in ("dcl", "fcp", "ready", "interactive", "load")),
            f"{median(view, 'strip'):.0f} of {median(view, 'tiles'):.0f}",
            f"{median(view, 'fetched'):.0f}",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
