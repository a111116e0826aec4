"""Issue 21 through the app: Hosts (DNS rebinding), cross-site writes, security headers, the owner's sign-in
off loopback, the wrong-token limit, tokens out of the access log, and uploads served as what they are."""

from __future__ import annotations

import io
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from PIL import Image

from tests.support.isolation import SAME_ORIGIN

HTML = {"Accept": "text/html"}
HX = {"HX-Request": "true"}
EVIL = {"Origin": "http://evil.example"}
REPO = Path(__file__).resolve().parents[2]


def create(client: TestClient, **extra: Any) -> dict[str, Any]:
    body = {"start_prompt": "a city", "end_prompt": "a forest", "frames": 3, "seed": 3, "steps": 4, **extra}
    response = client.post("/api/transitions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def version(client: TestClient, tid: int) -> int:
    return client.get(f"/api/transitions/{tid}").json()["version"]


# ---------------------------------------------------------------- Hosts


@pytest.mark.parametrize(
    "host", ["localhost:8000", "127.0.0.1:8000", "[::1]:8000", "localhost", "testserver"]
)
def test_the_hosts_segue_serves_are_answered(client: TestClient, host: str) -> None:
    assert client.get("/api/transitions", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example:8800", "evil.example", "[fe80::1]:8000", "10.0.0.7:8000", ""])
def test_other_hosts_get_400_naming_the_setting(client: TestClient, host: str) -> None:
    for path in ("/", "/api/transitions", "/static/segue.js", "/docs", "/healthz"):
        response = client.get(path, headers={"Host": host})
        assert response.status_code == 400, (host, path)
        assert response.text.count("\n") <= 1 and "SEGUE_ALLOWED_HOSTS" in response.text
        assert "<" not in response.text  # nothing of Segue's pages or data reaches a rebound page
    refused = client.post(
        "/api/transitions", json={"start_prompt": "a", "end_prompt": "b"}, headers={"Host": host}
    )
    assert refused.status_code == 400 and client.get("/api/transitions").json() == []


def test_allowed_hosts_names_suffixes_and_a_wildcard_bind(app_with: Any) -> None:
    with TestClient(app_with(allowed_hosts="segue.team.example, .corp.example")) as c:
        assert c.get("/api/transitions", headers={"Host": "segue.team.example"}).status_code == 200
        assert c.get("/api/transitions", headers={"Host": "a.corp.example:443"}).status_code == 200
        assert c.get("/api/transitions", headers={"Host": "corp.example.evil.example"}).status_code == 400
        assert c.get("/api/transitions", headers={"Host": "10.0.0.7"}).status_code == 400
    # Bound to every interface: any of the machine's IP addresses may be typed (an IP cannot be rebound),
    # never a name that is not allowed. The owner must sign in there: Bearer with the owner secret.
    with TestClient(app_with(host="0.0.0.0", owner_token="owner-secret-for-tests-0123456789")) as c:
        owner = {"Authorization": "Bearer owner-secret-for-tests-0123456789"}
        for host in ("10.0.0.7:8000", "[fd00::5]:8000", "192.168.1.20"):
            assert c.get("/api/transitions", headers={"Host": host, **owner}).status_code == 200
        assert c.get("/api/transitions", headers={"Host": "evil.example", **owner}).status_code == 400


def test_the_test_host_is_only_allowed_in_the_test_environment() -> None:
    from app.security import HostPolicy
    from infra.config import Settings

    assert HostPolicy.from_settings(Settings(env="test")).allows("testserver")
    assert not HostPolicy.from_settings(Settings(env="development")).allows("testserver")
    assert not HostPolicy.from_settings(Settings(env="production")).allows("testserver")


# ---------------------------------------------------------------- cross-site writes


def test_a_form_from_another_origin_changes_nothing(client: TestClient) -> None:
    tid = create(client)["id"]
    form = {"steps": "30", "title": "pwned"}
    for headers in (
        EVIL,
        {"Origin": "http://127.0.0.1:9999"},  # another port of the same machine: same site, other origin
        {"Origin": "null"},  # a sandboxed iframe (the ComfyUI bypass)
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "same-site"},
    ):
        with TestClient(client.app) as bare:  # no default Origin
            response = bare.post(f"/transitions/{tid}/settings", data=form, headers=headers)
            assert response.status_code == 403, headers
            assert "cross-site request refused" in response.text and "SEGUE_ALLOWED_ORIGINS" in response.text
            assert bare.post(f"/transitions/{tid}/render", headers={**headers, **HX}).status_code == 403
            assert bare.post(f"/api/transitions/{tid}/renders", headers=headers).status_code == 403
            refused = bare.delete(f"/api/transitions/{tid}", headers=headers)
            assert refused.status_code == 403 and "cross-site" in refused.json()["detail"]
            project = {"project": ("p.segue.json", b"{}", "application/json")}
            assert bare.post("/projects/import", files=project, headers=headers).status_code == 403
    assert version(client, tid) == 1
    assert client.get(f"/api/transitions/{tid}/renders").json() == []
    assert [t["id"] for t in client.get("/api/transitions").json()] == [tid]


def test_a_form_without_origin_is_refused_but_programs_get_through(client: TestClient) -> None:
    tid = create(client)["id"]
    with TestClient(client.app) as bare:
        for content in (
            {"data": {"steps": "30"}},
            {"content": b"steps=30", "headers": {"Content-Type": "text/plain"}},
        ):
            assert bare.post(f"/transitions/{tid}/settings", **content).status_code == 403
        assert version(client, tid) == 1
        # A JSON body, a custom header or Authorization: a page could not send these cross-site unpreflighted.
        assert bare.patch(f"/api/transitions/{tid}", json={"steps": 6}).status_code == 200
        assert bare.post(f"/transitions/{tid}/settings", data={"steps": "7"}, headers=HX).status_code == 200
        assert bare.post(f"/api/transitions/{tid}/renders").status_code == 202  # no body: not a form
    assert version(client, tid) == 3


def test_our_own_pages_post_with_our_origin_or_fetch_metadata(client: TestClient) -> None:
    tid = create(client)["id"]
    with TestClient(client.app) as bare:
        same = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
        assert bare.post(f"/transitions/{tid}/settings", data={"steps": "8"}, headers=same).status_code in (
            200,
            303,
        )
        # A strict Referrer-Policy (say, from a proxy) makes a browser send `Origin: null` on its own forms;
        # Sec-Fetch-Site, which pages cannot set, still says same-origin.
        masked = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
        assert bare.post(f"/transitions/{tid}/settings", data={"steps": "9"}, headers=masked).status_code in (
            200,
            303,
        )
    assert version(client, tid) == 3


def test_allowed_origins_let_a_proxy_or_second_front_end_write_and_cors_stays_closed_otherwise(
    app_with: Any, client: TestClient
) -> None:
    preflight = {"Origin": "https://studio.example", "Access-Control-Request-Method": "PATCH"}
    closed = client.options("/api/transitions", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    got = client.get("/api/transitions", headers={"Origin": "https://studio.example"})
    assert "access-control-allow-origin" not in got.headers
    with TestClient(app_with(allowed_origins="https://studio.example")) as c:
        tid = create(c)["id"]
        ok = c.patch(
            f"/api/transitions/{tid}", json={"steps": 5}, headers={"Origin": "https://studio.example"}
        )
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://studio.example"
        opened = c.options(f"/api/transitions/{tid}", headers=preflight)
        assert opened.headers["access-control-allow-origin"] == "https://studio.example"
        assert c.patch(f"/api/transitions/{tid}", json={"steps": 6}, headers=EVIL).status_code == 403


def test_a_bad_allowed_origin_is_refused_at_start() -> None:
    from pydantic import ValidationError

    from infra.config import Settings

    with pytest.raises(ValidationError, match="allowed_origins"):
        Settings(allowed_origins="studio.example")


# ---------------------------------------------------------------- headers


def assert_secured(response: Any, *, token_bearing: bool = False) -> None:
    h = response.headers
    csp = h["content-security-policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "img-src 'self' data: blob:",
        "frame-ancestors 'none'",
    ):
        assert directive in csp, (response.url, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
    assert (
        h["permissions-policy"]
        and "=*" not in h["permissions-policy"]
        and "self" not in h["permissions-policy"]
    )
    assert h["referrer-policy"] in ("no-referrer", "same-origin")
    if token_bearing:
        assert h["referrer-policy"] == "no-referrer" and "no-store" in h["cache-control"]


def test_every_kind_of_response_carries_the_security_headers(client: TestClient) -> None:
    from infra.storage import get_store

    tid = create(client)["id"]
    render = client.post(f"/api/transitions/{tid}/renders").json()
    key = "ab" + "0" * 62
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "PNG")
    get_store().write(key, out.getvalue())
    link = client.post(f"/api/transitions/{tid}/links", json={"role": "view"}).json()
    paths = [
        "/",
        "/transitions/new",
        f"/transitions/{tid}",
        f"/frames/{render['id']}/0",  # pages
        f"/transitions/{tid}/render-panel",
        f"/renders/{render['id']}/scores",  # fragments
        f"/transitions/{tid}/suggestions/segments",
        f"/renders/{render['id']}/export-panel",
        "/api/transitions",
        f"/api/transitions/{tid}",
        "/openapi.json",
        "/healthz",  # API
        "/docs",
        "/redoc",
        "/static/segue.js",
        "/static/vendor/htmx-2.0.11.min.js",  # docs and assets
        f"/media/frames/ab/{key}.png",
        "/nothing-here",
        "/api/transitions/999999",  # media, 404s
    ]
    for path in paths:
        response = client.get(path, headers=HTML if not path.startswith("/api") else {})
        assert response.status_code in (200, 404, 503), (path, response.status_code)
        assert_secured(response)
        if not path.startswith(("/static/", "/media/")):
            assert response.headers["cache-control"] == "no-store", path
    media = client.get(f"/media/frames/ab/{key}.png")
    assert (
        media.headers["content-type"] == "image/png" and "sandbox" in media.headers["content-security-policy"]
    )
    # The share link's own URL is the token: never a Referer, never cached.
    opened = client.get(link["url"], follow_redirects=False)
    assert opened.status_code == 303
    assert_secured(opened, token_bearing=True)
    # Refusals are secured too.
    assert_secured(client.get("/", headers={"Host": "evil.example"}))
    with TestClient(client.app) as bare:
        assert_secured(bare.post(f"/transitions/{tid}/settings", data={"steps": "3"}, headers=EVIL))


def test_pages_have_no_inline_script_style_or_handlers(client: TestClient) -> None:
    import re

    tid = create(client)["id"]
    client.post(f"/api/transitions/{tid}/keyframes", json={"position": 0.5, "prompt": "a river"})
    render = client.post(f"/api/transitions/{tid}/renders").json()
    for path in (
        "/",
        "/transitions/new",
        f"/transitions/{tid}",
        f"/transitions/{tid}?render={render['id']}",
        f"/transitions/{tid}/render-panel",
        f"/transitions/{tid}/suggestions/segments",
        f"/frames/{render['id']}/0",
        f"/renders/{render['id']}/scores",
        "/docs",
        "/redoc",
        "/signin",
    ):
        text = client.get(path, headers=HTML).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path  # scripts come from files only
        assert "<style" not in text and not re.search(r"\sstyle=", text), path
        assert not re.search(r"\son[a-z]+=", text) and "javascript:" not in text, path


def test_the_redoc_page_lets_only_its_own_styles_in(client: TestClient) -> None:
    first, second = client.get("/redoc"), client.get("/redoc")
    csp = first.headers["content-security-policy"]
    assert "'nonce-" in csp and "unsafe-inline" not in csp and "script-src 'self';" in csp
    assert csp != second.headers["content-security-policy"]  # a new nonce every time
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'data-nonce="{nonce}"' in first.text


# ---------------------------------------------------------------- the owner, off loopback


def test_off_loopback_the_owner_signs_in_and_links_work_as_before(app_with: Any, tmp_path: Path) -> None:
    from infra.config import get_settings

    with TestClient(app_with(host="0.0.0.0"), headers=SAME_ORIGIN) as c:
        secret_file = get_settings().data_dir / "owner-token"
        secret = secret_file.read_text().strip()
        assert len(secret) >= 40 and stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        # Nobody is the owner by reaching the server.
        assert c.get("/api/transitions").status_code == 401
        page = c.get("/", headers=HTML, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/signin"
        assert c.post("/api/transitions", json={"start_prompt": "a", "end_prompt": "b"}).status_code == 401
        # Health and the API docs answer without signing in (no worker runs beside this test's app).
        health = c.get("/healthz")
        assert health.status_code == 503 and health.json()["down"] == ["no worker alive"], health.json()
        assert c.get("/docs").status_code == 200
        # Bearer for the API and programs.
        owner = {"Authorization": f"Bearer {secret}"}
        tid = c.post("/api/transitions", json={"start_prompt": "a", "end_prompt": "b"}, headers=owner).json()[
            "id"
        ]
        view = c.post(f"/api/transitions/{tid}/links", json={"role": "view"}, headers=owner).json()
        # The browser: a wrong secret is refused, the right one becomes a cookie (not the secret itself).
        wrong = c.post("/signin", data={"token": "guess"})
        assert wrong.status_code == 401 and "not the owner secret" in wrong.text
        signed = c.post("/signin", data={"token": secret}, follow_redirects=False)
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"]
        assert "segue_owner=" in cookie and secret not in cookie and "HttpOnly" in cookie
        assert "samesite=lax" in cookie.lower()
        assert c.get("/", headers=HTML).status_code == 200
        assert c.get("/api/transitions").status_code == 200
        assert c.post("/signin/out", follow_redirects=False).status_code == 303
        c.cookies.clear()
        assert c.get("/api/transitions").status_code == 401
        # A share link works as today, with its own role.
        assert (
            c.get(f"/api/transitions/{tid}", headers={"Authorization": f"Bearer {view['token']}"}).status_code
            == 200
        )
        refused = c.patch(
            f"/api/transitions/{tid}", json={"steps": 5}, headers={"Authorization": f"Bearer {view['token']}"}
        )
        assert refused.status_code == 403
    # The same secret at the next start (it is kept), and the owner's own one wins when set.
    with TestClient(app_with(host="0.0.0.0")) as c:
        assert c.get("/api/transitions", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    with TestClient(app_with(host="0.0.0.0", owner_token="my-own-owner-secret-0123456789")) as c:
        assert c.get("/api/transitions", headers={"Authorization": f"Bearer {secret}"}).status_code == 404
        ok = c.get("/api/transitions", headers={"Authorization": "Bearer my-own-owner-secret-0123456789"})
        assert ok.status_code == 200


def test_on_loopback_nobody_signs_in_unless_asked(app_with: Any) -> None:
    with TestClient(app_with()) as c:
        assert c.get("/api/transitions").status_code == 200
        assert c.get("/signin", follow_redirects=False).headers["location"] == "/"
    with TestClient(app_with(require_owner="true")) as c:
        assert c.get("/api/transitions").status_code == 401


def test_a_short_owner_token_is_refused() -> None:
    from pydantic import ValidationError

    from infra.config import Settings

    with pytest.raises(ValidationError, match="SEGUE_OWNER_TOKEN must be 16 characters"):
        Settings(owner_token="short")


def _run(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "SEGUE_DATA_DIR": str(tmp_path / "data"), "SEGUE_ENV": "test", **env}
    full.pop("SEGUE_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "run"],
        cwd=REPO,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_public_address_without_an_owner_secret_does_not_start(tmp_path: Path) -> None:
    result = _run({"SEGUE_HOST": "8.8.8.8", "SEGUE_PORT": "8799"}, tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert "public address 8.8.8.8 with no owner secret" in lines[-1] and "SEGUE_OWNER_TOKEN" in lines[-1]
    assert not (tmp_path / "data" / "segue.db").exists()  # refused before anything started


def test_a_private_bind_makes_and_prints_a_secret_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli import check_owner_secret
    from infra.config import Settings

    monkeypatch.delenv("SEGUE_OWNER_TOKEN", raising=False)
    settings = Settings(host="0.0.0.0", data_dir=tmp_path)
    first = check_owner_secret(settings)
    secret = (tmp_path / "owner-token").read_text().strip()
    assert first is not None and secret in first and "/signin" in first
    again = check_owner_secret(Settings(host="0.0.0.0", data_dir=tmp_path))
    assert again is not None and secret not in again and "owner-token" in again
    assert check_owner_secret(Settings(host="127.0.0.1", data_dir=tmp_path / "other")) is None


# ---------------------------------------------------------------- guessing tokens


def test_wrong_tokens_are_limited_per_client(app_with: Any) -> None:
    app = app_with(max_token_failures="3")
    with TestClient(app) as owner:
        tid = create(owner)["id"]
        link = owner.post(f"/api/transitions/{tid}/links", json={"role": "view"}).json()
    with TestClient(app, client=("198.51.100.7", 5000)) as guesser:
        for guess in ("a" * 43, "b" * 43):
            assert (
                guesser.get("/api/transitions", headers={"Authorization": f"Bearer {guess}"}).status_code
                == 404
            )
        assert guesser.get("/s/" + "c" * 43, follow_redirects=False).status_code == 404
        limited = guesser.get(f"/api/transitions/{tid}", headers={"Authorization": f"Bearer {link['token']}"})
        assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
        assert "too many wrong tokens" in limited.json()["detail"]
        assert guesser.get(link["url"], follow_redirects=False).status_code == 429  # even a right guess
    with TestClient(app, client=("198.51.100.8", 5000)) as other:  # another client is not held back
        assert (
            other.get(
                f"/api/transitions/{tid}", headers={"Authorization": f"Bearer {link['token']}"}
            ).status_code
            == 200
        )


def test_guessing_the_owner_secret_is_limited(app_with: Any) -> None:
    app = app_with(host="0.0.0.0", owner_token="owner-secret-for-tests-0123456789", max_token_failures="2")
    with TestClient(app, headers=SAME_ORIGIN) as c:
        assert c.post("/signin", data={"token": "guess-1"}).status_code == 401
        c.cookies.set("segue_owner", "forged-cookie")
        assert c.get("/api/transitions").status_code == 401
        c.cookies.clear()
        assert c.post("/signin", data={"token": "owner-secret-for-tests-0123456789"}).status_code == 429


def test_the_owner_secret_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    from app import security

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest
    monkeypatch.setattr(security.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    assert security.same_secret("owner-secret-0123456789", "owner-secret-0123456789")
    assert not security.same_secret("owner-secret-0123456780", "owner-secret-0123456789")
    assert not security.same_secret("", "")  # no secret set opens nothing
    assert len(calls) == 2


# ---------------------------------------------------------------- tokens out of the log


def test_share_tokens_never_reach_the_access_log() -> None:
    from uvicorn.logging import AccessFormatter

    from app.security import install_log_redaction

    install_log_redaction()
    logger = logging.getLogger("uvicorn.access")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(
                AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s').format(record)
            )

    handler = Keep()
    logger.addHandler(handler)
    # setLevel, not `logger.level =`: the logger caches isEnabledFor, and a uvicorn run earlier in this
    # process (log_level="warning", tests/support/serving.py) left INFO cached as off.
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        token = "Zk3r9_secretTOKENvalue-abcdefghijklmnopqrstu"
        for path in (f"/s/{token}", f"/p/{token}?x=1", f"/api/renders/1/events?token={token}", "/s/leave"):
            logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 303)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert len(records) == 4 and not any(token in line for line in records)
    assert '"GET /s/… HTTP/1.1"' in records[0] and '"GET /p/…?x=1 HTTP/1.1"' in records[1]
    assert "token=…" in records[2] and "/s/leave" in records[3]


# ---------------------------------------------------------------- uploads


def test_stored_uploads_are_served_by_hash_as_what_they_are(client: TestClient) -> None:
    from core.uploads import check_upload, store_upload
    from infra.config import get_settings

    out = io.BytesIO()
    Image.new("RGB", (6, 6), (1, 2, 3)).save(out, "PNG")
    upload = check_upload(out.getvalue())
    store_upload(get_settings().uploads_dir, upload)
    served = client.get(f"/media/uploads/{upload.key}")
    assert served.status_code == 200 and served.content == upload.data
    assert (
        served.headers["content-type"] == "image/png"
        and served.headers["x-content-type-options"] == "nosniff"
    )
    assert "sandbox" in served.headers["content-security-policy"]
    # A file that is not a content-hash name of an accepted kind is never served, whatever is on disk.
    planted = get_settings().uploads_dir / "ev" / "evil.html"
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_text("<script>alert(1)</script>")
    assert client.get("/media/uploads/ev/evil.html").status_code == 404
    svg = "e" * 64 + ".svg"
    (get_settings().uploads_dir / "ee").mkdir(parents=True, exist_ok=True)
    (get_settings().uploads_dir / "ee" / svg).write_text("<svg onload='alert(1)'/>")
    assert client.get(f"/media/uploads/ee/{svg}").status_code == 404
    assert client.get(f"/media/uploads/zz/{upload.name}").status_code == 404


def test_a_frame_store_file_is_never_served_as_a_document(client: TestClient) -> None:
    from infra.config import get_settings

    # Whatever lands in the served directories, the browser gets bytes to download, not a page to run.
    frames = get_settings().frames_dir / "zz"
    frames.mkdir(parents=True, exist_ok=True)
    (frames / "page.html").write_text("<script>alert(document.cookie)</script>")
    (frames / "image.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>")
    for name in ("page.html", "image.svg"):
        response = client.get(f"/media/frames/zz/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"] == "attachment"
        assert "sandbox" in response.headers["content-security-policy"]


def test_an_upload_rule_broken_in_a_route_is_a_422_naming_the_field(client: TestClient) -> None:
    from fastapi import APIRouter

    from core.uploads import check_upload

    router = APIRouter()

    @router.post("/api/test-upload")
    async def take(request: Request) -> dict[str, str]:
        return {"name": check_upload(await request.body(), field="image").name}

    client.app.include_router(router)
    refused = client.post("/api/test-upload", content=b"<svg/>", headers={"Content-Type": "image/svg+xml"})
    assert refused.status_code == 422
    assert refused.json()["errors"]["image"].startswith("this is not a file type Segue accepts")
