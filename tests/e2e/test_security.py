"""A hostile page in the person's own browser (issue 21): served from a second local origin, it auto-submits
Segue's forms and fetches its API with and without credentials, also from a sandboxed iframe (`Origin:
null`); nothing changes and it reads nothing. Every page runs under the CSP without a single violation,
every kind of response carries the headers, and the access log never shows a share token."""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import SERVER_LOGS, log_offset, log_since, transitions
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

# Every page reports what the CSP refused (the event fires for each blocked script, style, frame, eval).
VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample || ''}`);
});
"""

ATTACKER = """<!doctype html>
<html><head><meta charset="utf-8"><title>cute cats</title></head>
<body>
<h1>Cute cats</h1>
<iframe name="sink1"></iframe><iframe name="sink2"></iframe><iframe name="sink3"></iframe>
<iframe name="sink4"></iframe><iframe name="sink5"></iframe>
<form method="post" action="SEGUE/transitions/TID/settings" target="sink1">
  <input name="steps" value="77"><input name="title" value="pwned by a form"></form>
<form method="post" action="SEGUE/transitions/TID/render" target="sink2"></form>
<form method="post" action="SEGUE/transitions/TID/keyframes" target="sink3">
  <input name="position" value="0.5"><input name="prompt" value="pwned keyframe"></form>
<form method="post" action="SEGUE/api/transitions" target="sink4" enctype="text/plain">
  <input name='{"start_prompt": "pwned", "end_prompt": "pwned", "x": "' value='"}'></form>
<form method="post" action="SEGUE/transitions/TID/delete" target="sink5"></form>
<iframe id="sandboxed" sandbox="allow-scripts allow-forms" src="/sandboxed.html"></iframe>
<script>
const S = "SEGUE", T = TID;
window.results = {};
async function attempt(name, run) {
  try {
    const response = await run();
    let body = "";
    try { body = await response.text(); } catch (e) { body = ""; }
    results[name] = {type: response.type, status: response.status, body};
  } catch (e) {
    results[name] = {error: String(e)};
  }
}
window.addEventListener("message", (event) => { results.sandboxed = event.data; });
(async () => {
  for (const form of document.forms) form.submit();
  const project = new Blob([PROJECT], {type: "application/json"});
  const ops = {
    "read": () => fetch(`${S}/api/transitions`),
    "read-with-credentials": () => fetch(`${S}/api/transitions`, {credentials: "include"}),
    "read-no-cors": () => fetch(`${S}/api/transitions/${T}`, {mode: "no-cors", credentials: "include"}),
    "read-project": () => fetch(`${S}/api/transitions/${T}/project`, {credentials: "include"}),
    "patch-json": () => fetch(`${S}/api/transitions/${T}`, {method: "PATCH", credentials: "include",
      headers: {"Content-Type": "application/json"}, body: '{"steps": 66}'}),
    "delete": () => fetch(`${S}/api/transitions/${T}`, {method: "DELETE", credentials: "include"}),
    "render-no-cors": () => fetch(`${S}/api/transitions/${T}/renders`,
      {method: "POST", mode: "no-cors", credentials: "include"}),
    "create-as-text": () => fetch(`${S}/api/transitions`, {method: "POST", mode: "no-cors",
      headers: {"Content-Type": "text/plain"}, body: '{"start_prompt": "pwned", "end_prompt": "pwned"}'}),
    "settings-urlencoded": () => fetch(`${S}/transitions/${T}/settings`, {method: "POST", mode: "no-cors",
      credentials: "include", body: new URLSearchParams({steps: "55", title: "pwned by fetch"})}),
    "import-multipart": () => {
      const data = new FormData();
      data.append("project", project, "p.segue.json");
      return fetch(`${S}/projects/import`,
        {method: "POST", mode: "no-cors", credentials: "include", body: data});
    },
    "link-no-cors": () => fetch(`${S}/api/transitions/${T}/links`, {method: "POST", mode: "no-cors",
      credentials: "include", headers: {"Content-Type": "text/plain"}, body: '{"role": "edit"}'}),
  };
  for (const [name, run] of Object.entries(ops)) await attempt(name, run);
  const deadline = Date.now() + 15000;
  while (!results.sandboxed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  document.title = "done";
})();
</script>
</body></html>
"""

# In a sandboxed frame the page's origin is opaque: browsers send `Origin: null` (the ComfyUI bypass).
SANDBOXED = """<!doctype html>
<html><head><meta charset="utf-8"></head><body>
<form id="f" method="post" action="SEGUE/transitions/TID/settings">
  <input name="steps" value="44"><input name="title" value="pwned from a sandbox"></form>
<script>
(async () => {
  const seen = {};
  for (const [name, init] of Object.entries({
    "settings-no-cors": {method: "POST", mode: "no-cors", body: new URLSearchParams({steps: "33"})},
    "render-no-cors": {method: "POST", mode: "no-cors"},
    "read": {},
  })) {
    const url = name === "read" ? "SEGUE/api/transitions" :
      name === "render-no-cors" ? "SEGUE/api/transitions/TID/renders" : "SEGUE/transitions/TID/settings";
    try {
      const response = await fetch(url, init);
      let body = ""; try { body = await response.text(); } catch (e) {}
      seen[name] = {type: response.type, status: response.status, body};
    } catch (e) { seen[name] = {error: String(e)}; }
  }
  parent.postMessage(seen, "*");
  document.getElementById("f").submit();
})();
</script></body></html>
"""


def _api(server: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        server + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        text = response.read()
        return (
            json.loads(text) if text and response.headers.get_content_type() == "application/json" else text
        )


@pytest.fixture(scope="module")
def transition(server: str) -> dict[str, Any]:
    """A small transition rendered once, so pages show the player, film strip, scores and export panel."""
    body = {"title": "Calm", "start_prompt": "a quiet lake", "end_prompt": "a snowy mountain"}
    created = _api(server, "POST", "/api/transitions", {**body, "frames": 4, "steps": 4, "seed": 7})
    render = _api(server, "POST", f"/api/transitions/{created['id']}/renders")
    deadline = time.monotonic() + 240
    while _api(server, "GET", f"/api/renders/{render['id']}")["status"] != "done":
        assert time.monotonic() < deadline, "the render did not finish"
        time.sleep(0.5)
    return {"id": created["id"], "render": render["id"]}


@pytest.fixture
def attacker(server: str, tmp_path: Path, transition: dict[str, Any]) -> Iterator[str]:
    """The hostile page, on another port of the same machine: same site, another origin."""
    tid = str(transition["id"])
    with urllib.request.urlopen(f"{server}/api/transitions/{tid}/project", timeout=20) as response:
        project = response.read().decode()  # a valid project file: imported, it would make a transition
    for name, text in (("index.html", ATTACKER), ("sandboxed.html", SANDBOXED)):
        page = text.replace("SEGUE", server).replace("TID", tid).replace("PROJECT", json.dumps(project))
        (tmp_path / name).write_text(page)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _state(server: str, tid: int) -> dict[str, Any]:
    t = _api(server, "GET", f"/api/transitions/{tid}")
    return {
        "transitions": [x["id"] for x in transitions(server)],  # every one on the server, not 100
        "version": t["version"],
        "title": t["title"],
        "steps": t["steps"],
        "keyframes": len(t["keyframes"]),
        "renders": len(_api(server, "GET", f"/api/transitions/{tid}/renders")),
        "links": len(_api(server, "GET", f"/api/transitions/{tid}/links")),
    }


def test_a_hostile_page_changes_nothing_and_reads_nothing(
    server: str, browser: Any, attacker: str, transition: dict[str, Any]
) -> None:
    tid = transition["id"]
    before = _state(server, tid)
    log_start = log_offset(server)  # the server is shared: only what it logs from here on is this test's
    page = browser.new_context().new_page()
    page.goto(attacker + "/index.html")
    page.wait_for_function("() => document.title === 'done'", timeout=60_000)
    results = page.evaluate("window.results")
    # The forms' posts land in their frames after the page is done: each has reached the server (and was
    # answered) once the access log shows it (settings: the fetch, the sandbox's fetch and a form at least;
    # /api/transitions: the text/plain fetch and the form).
    forms = [f"/transitions/{tid}/{action}" for action in ("render", "keyframes", "delete")]

    def posted() -> bool:
        sent = re.findall(r'"POST (/\S+) HTTP/1\.1" \d+', log_since(server, log_start))
        return (
            sent.count(f"/transitions/{tid}/settings") >= 3
            and sent.count("/api/transitions") >= 2
            and all(path in sent for path in forms)
        )

    wait_for(posted, timeout=30, what="the hostile page's form posts in the access log")

    # Nothing changed: no edit, render, keyframe, link, deletion or import.
    assert _state(server, tid) == before
    # The attacker read nothing: CORS failures or opaque (empty) answers, from its page and its sandbox.
    sandboxed = results.pop("sandboxed")
    assert set(sandboxed) == {"settings-no-cors", "render-no-cors", "read"}
    for name, seen in [*results.items(), *(("sandboxed " + k, v) for k, v in sandboxed.items())]:
        assert "error" in seen or (seen["type"] == "opaque" and seen["status"] == 0 and seen["body"] == ""), (
            name,
            seen,
        )
    assert "error" in results["read-with-credentials"] and "error" in results["read-project"]
    # The writes reached Segue and were refused there (403), the sandbox's `Origin: null` included.
    requests = log_since(server, log_start)
    refused = re.findall(r'"POST (/\S+) HTTP/1\.1" 403', requests)
    assert refused.count(f"/transitions/{tid}/settings") >= 3  # form, fetch, sandboxed form and fetch
    for path in (
        f"/transitions/{tid}/render",
        f"/transitions/{tid}/delete",
        f"/transitions/{tid}/keyframes",
        "/api/transitions",
        "/projects/import",
        f"/api/transitions/{tid}/renders",
        f"/api/transitions/{tid}/links",
    ):
        assert path in refused, (path, refused)
    assert not re.search(r'"(POST|PATCH|DELETE) \S+ HTTP/1\.1" 2\d\d', requests)

    # The same form from Segue's own page is applied: the refusal is about where a request comes from.
    own = browser.new_context().new_page()
    own.goto(f"{server}/transitions/{tid}")
    status = own.evaluate(
        """(tid) => fetch(`/transitions/${tid}/settings`, {method: "POST", headers: {"HX-Request": "true"},
            body: new URLSearchParams({steps: "5", title: "Calm"})}).then((r) => r.status)""",
        tid,
    )
    assert status == 200 and _state(server, tid)["version"] == before["version"] + 1


def _pages(server: str, transition: dict[str, Any]) -> list[str]:
    tid, rid = transition["id"], transition["render"]
    return [
        "/",
        "/transitions/new",
        f"/transitions/{tid}",
        f"/transitions/{tid}?render={rid}",
        f"/frames/{rid}/1",
        f"/renders/compare?a={rid}&b={rid}",
        "/docs",
        "/redoc",
        "/s/not-a-real-link-token-000000000000000000000",
        "/transitions/999999",
    ]


def test_no_page_breaks_the_content_security_policy(
    server: str, browser: Any, transition: dict[str, Any]
) -> None:
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    context.add_init_script(VIOLATIONS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(f"pageerror {e}"))
    for path in _pages(server, transition):
        page.goto(server + path)
        page.wait_for_load_state("networkidle")
        if path == "/docs":
            page.locator(".opblock").first.wait_for()
        if path == "/redoc":
            page.locator("h1:has-text('Segue')").first.wait_for()
        if path.endswith(f"render={transition['render']}"):
            page.locator("#scores .plot-points .point").first.wait_for()
            page.locator(".export-panel form").wait_for()
            page.locator(".filmstrip .frame-link").first.click()  # the frame dialog (htmx swap)
            page.locator("#frame-dialog[open]").wait_for()
            page.keyboard.press("Escape")
            page.locator("#scores .plot-points .point").first.hover()  # the scores tooltip
            page.screenshot(path="/tmp/segue-security-editor.png", full_page=True)
            # Positions once in style="" now come from data-css-* through the CSSOM.
            left = page.locator(".timeline-bar .marker").first.evaluate("e => e.style.left")
            assert left == "0%"
            assert page.locator(".player-screen").evaluate("e => e.style.aspectRatio") == "64 / 64"
        violations = page.evaluate("window.__violations")
        assert violations == [], (path, violations)
    assert not [m for m in console if "Content Security Policy" in m or "pageerror" in m], console


def _headers(url: str, accept: str = "*/*") -> dict[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        response = urllib.request.urlopen(request, timeout=20)
    except urllib.error.HTTPError as exc:
        response = exc
    with response:
        return {k.lower(): v for k, v in response.headers.items()}


def test_every_kind_of_response_is_sent_with_the_security_headers(
    server: str, transition: dict[str, Any]
) -> None:
    tid, rid = transition["id"], transition["render"]
    frame = _api(server, "GET", f"/api/renders/{rid}")["frames"][0]["url"]
    urls = {
        "page": f"/transitions/{tid}",
        "fragment": f"/transitions/{tid}/render-panel",
        "scores fragment": f"/renders/{rid}/scores",
        "API": f"/api/transitions/{tid}",
        "render events (SSE)": f"/api/renders/{rid}/events",
        "page stream (SSE)": f"/renders/{rid}/stream",
        "co-viewing (SSE)": f"/api/transitions/{tid}/events",
        "media file": frame,
        "docs": "/docs",
        "redoc": "/redoc",
        "OpenAPI": "/openapi.json",
        "static": "/static/segue.js",
        "404": "/no-such-page",
    }
    for kind, path in urls.items():
        h = _headers(server + path, "text/html" if kind in ("page", "404") else "*/*")
        csp = h.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, kind
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, kind
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY", kind
        assert h["referrer-policy"] in ("no-referrer", "same-origin") and h["permissions-policy"], kind
        if "SSE" in kind:
            assert h["content-type"].startswith("text/event-stream") and h["cache-control"] == "no-store", (
                kind
            )
    assert _headers(server + frame)["content-type"] == "image/png"


def test_share_tokens_never_reach_the_access_log(
    server: str, browser: Any, transition: dict[str, Any]
) -> None:
    start = log_offset(server)  # the server is shared: other files' share links are in its log too
    link = _api(server, "POST", f"/api/transitions/{transition['id']}/links", {"role": "view"})
    page = browser.new_context().new_page()
    page.goto(server + link["url"])
    assert page.url.endswith(f"/transitions/{transition['id']}")
    page.goto(server + "/s/" + "wrong-guess-token-" + "x" * 30)
    # This test's two visits, redacted, in what the server logged since it began: the link's (303 to the
    # transition) and the wrong guess's (404).
    seen = ('"GET /s/… HTTP/1.1" 303', '"GET /s/… HTTP/1.1" 404')
    wait_for(
        lambda: all(line in log_since(server, start) for line in seen), timeout=30, what=f"{seen} logged"
    )
    log = SERVER_LOGS[server].read_text(errors="replace")  # the whole log: never, by any test
    assert link["token"] not in log and "wrong-guess-token" not in log


def test_off_loopback_the_owner_signs_in_with_the_secret_printed_at_first_start(
    tmp_path: Path, browser: Any
) -> None:
    import os
    import subprocess
    import sys

    from tests.support.browser import REPO, free_port

    port = free_port()
    env = {**os.environ, "SEGUE_DATA_DIR": str(tmp_path), "SEGUE_HOST": "0.0.0.0", "SEGUE_PORT": str(port)}
    env.update(SEGUE_EMBEDDED_WORKER="false", HF_HUB_OFFLINE="1")
    for name in ("SEGUE_DATABASE_URL", "SEGUE_MODE", "SEGUE_OWNER_TOKEN", "SEGUE_ENV"):
        env.pop(name, None)
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "run"], cwd=REPO, env=env, stdout=out, stderr=out
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while "Owner secret" not in log.read_text(errors="replace") or not _up(url):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        secret = re.search(r"Owner secret .*: (\S+)", log.read_text()).group(1)
        assert secret == (tmp_path / "owner-token").read_text().strip()

        page = browser.new_context().new_page()
        page.add_init_script(VIOLATIONS)
        page.goto(url + "/")
        assert page.url == url + "/signin"  # nobody is the owner by reaching the server
        page.fill("input[name=token]", "not-the-secret")
        page.click("button[type=submit]")
        assert "not the owner secret" in page.locator(".error").inner_text()
        page.fill("input[name=token]", secret)
        page.click("button[type=submit]")
        assert page.url == url + "/" and page.locator("h1").first.inner_text() == "Transitions"
        assert page.evaluate("window.__violations") == []
        page.screenshot(path="/tmp/segue-signed-in.png")
        cookie = next(c for c in page.context.cookies() if c["name"] == "segue_owner")
        assert cookie["httpOnly"] and cookie["value"] != secret
        # Another browser without the cookie is not the owner; the API wants Bearer.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "/api/transitions", timeout=10)
        assert refused.value.code == 401
        request = urllib.request.Request(
            url + "/api/transitions", headers={"Authorization": f"Bearer {secret}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response) == []
        printed_after = log.read_text().split("Set SEGUE_OWNER_TOKEN", 1)[1]
        assert secret not in printed_after  # printed once, never logged
        # Signing out: the cookie goes, the next page asks again.
        page.click("form.signout button")
        assert page.url == url + "/signin"
        assert not [c for c in page.context.cookies() if c["name"] == "segue_owner"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def _up(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/healthz", timeout=2)
    except urllib.error.HTTPError:
        return True  # 503 (no worker here) is up
    except OSError:
        return False
    return True
