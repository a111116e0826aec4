"""app/security.py's rules, one by one, and the templates' part of the CSP (nothing inline)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from app.security import (
    HostPolicy,
    TokenThrottle,
    cross_site_refusal,
    host_name,
    listen_scope,
    owner_session,
    redact,
    security_headers,
)
from infra.config import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "header,name",
    [
        ("localhost:8000", "localhost"),
        ("[::1]:8000", "::1"),
        ("[::1]", "::1"),
        ("Segue.Example.", "segue.example"),
        ("127.0.0.1", "127.0.0.1"),
        ("[broken", ""),
        ("", ""),
    ],
)
def test_the_name_in_a_host_header(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(
    "host,scope",
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("localhost", "loopback"),
        ("127.0.0.2", "loopback"),
        ("0.0.0.0", "private"),
        ("::", "private"),
        ("192.168.1.5", "private"),
        ("10.1.2.3", "private"),
        ("fd00::1", "private"),
        ("8.8.8.8", "public"),
        ("2001:4860::1", "public"),
        ("segue.example.com", "public"),
    ],
)
def test_where_a_bind_address_is_reachable_from(host: str, scope: str) -> None:
    assert listen_scope(host) == scope


def test_the_default_hosts_are_the_bound_address_and_loopback_names() -> None:
    policy = HostPolicy.from_settings(Settings(host="192.168.1.5", env="production"))
    for host in ("192.168.1.5:8000", "localhost:8000", "127.0.0.1", "[::1]:8000"):
        assert policy.allows(host), host
    for host in ("evil.example", "192.168.1.6", "[fe80::1]", "localhost.evil.example", "testserver"):
        assert not policy.allows(host), host
    assert HostPolicy.from_settings(Settings(allowed_hosts="*")).allows("anything.example")


def _headers(**h: str) -> dict[bytes, bytes]:
    return {k.replace("_", "-").lower().encode(): v.encode() for k, v in h.items()}


FORM = {"content_type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    "method,headers,allowed",
    [
        ("GET", {"origin": "http://evil.example"}, True),  # reads are CORS's business, and change nothing
        ("POST", {"origin": "http://segue:8000", **FORM}, True),
        ("POST", {"origin": "https://studio.example", **FORM}, True),  # SEGUE_ALLOWED_ORIGINS
        ("POST", {"origin": "https://segue:8000", **FORM}, False),  # another scheme is another origin
        ("POST", {"origin": "http://segue:8001", **FORM}, False),  # another port
        ("POST", {"origin": "http://evil.example", "content_type": "application/json"}, False),
        ("POST", {"origin": "null", **FORM}, False),
        ("DELETE", {"origin": "null"}, False),
        ("POST", {"origin": "null", "sec_fetch_site": "same-origin", **FORM}, True),
        ("POST", {"sec_fetch_site": "cross-site", "content_type": "application/json"}, False),
        ("POST", {"sec_fetch_site": "same-site", **FORM}, False),
        ("POST", FORM, False),
        ("POST", {"content_type": "multipart/form-data; boundary=x"}, False),
        ("POST", {"content_type": "text/plain;charset=UTF-8"}, False),
        ("POST", {"content_type": "application/json"}, True),
        ("POST", {}, True),  # no body: no form sends that
        ("POST", {"authorization": "Bearer x", **FORM}, True),
        ("POST", {"hx_request": "true", **FORM}, True),
        ("PATCH", {"x_segue_client": "abc", **FORM}, True),
        # PUT, PATCH, DELETE: no page sends them cross-site without a preflight, whatever the body
        ("PUT", {"content_type": "multipart/form-data; boundary=x"}, True),
        ("DELETE", FORM, True),
        ("PUT", {"origin": "http://evil.example", "content_type": "multipart/form-data; boundary=x"}, False),
    ],
)
def test_which_writes_are_cross_site(method: str, headers: dict[str, str], allowed: bool) -> None:
    h = _headers(host="segue:8000", **headers)
    reason = cross_site_refusal(method, h, "http", frozenset({"https://studio.example"}))
    assert (reason is None) == allowed, reason


def test_headers_replace_what_a_route_set_and_keep_a_routes_own_policy() -> None:
    csp = "default-src 'self'"
    got = dict(
        security_headers(
            "/api/x",
            [(b"content-type", b"application/json"), (b"cache-control", b"max-age=60")],
            csp,
            frozenset(),
        )
    )
    assert got[b"cache-control"] == b"no-store" and got[b"referrer-policy"] == b"no-referrer"
    page = dict(security_headers("/", [(b"content-type", b"text/html; charset=utf-8")], csp, frozenset()))
    assert page[b"referrer-policy"] == b"same-origin" and page[b"content-security-policy"] == csp.encode()
    link = dict(security_headers("/s/tok", [(b"content-type", b"text/html")], csp, frozenset()))
    assert link[b"referrer-policy"] == b"no-referrer"
    own = dict(
        security_headers("/redoc", [(b"content-security-policy", b"style-src 'nonce-1'")], csp, frozenset())
    )
    assert own[b"content-security-policy"] == b"style-src 'nonce-1'"
    static = dict(security_headers("/static/a.js", [(b"cache-control", b"max-age=60")], csp, frozenset()))
    assert static[b"cache-control"] == b"max-age=60"


def test_wrong_tokens_are_counted_in_a_sliding_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("app.security.time.monotonic", lambda: now[0])
    throttle = TokenThrottle(limit=3, window=60)
    for _ in range(3):
        assert throttle.retry_after("a") is None
        throttle.failed("a")
        now[0] += 10
    assert throttle.retry_after("a") == 30 and throttle.retry_after("b") is None
    now[0] += 30  # the first failure leaves the window
    assert throttle.retry_after("a") is None


def test_the_owner_cookie_is_derived_from_the_secret_not_the_secret() -> None:
    value = owner_session("owner-secret-0123456789")
    assert "owner-secret" not in value and len(value) == 64
    assert value != owner_session("owner-secret-0123456780")


@pytest.mark.parametrize(
    "line,clean",
    [
        ("/s/AbC_12-x", "/s/…"),
        ("/p/AbC_12-x?t=1", "/p/…?t=1"),
        ("/s/leave", "/s/leave"),
        ("/api/x?token=abc&y=1", "/api/x?token=…&y=1"),
        ("/static/s/file.js", "/static/s/file.js"),
        ("GET /s/abc HTTP/1.1", "GET /s/… HTTP/1.1"),
    ],
)
def test_tokens_are_redacted(line: str, clean: str) -> None:
    assert redact(line) == clean


def test_the_redaction_filter_keeps_every_record(caplog: pytest.LogCaptureFixture) -> None:
    from app.security import RedactTokens

    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, "%s %s", ("GET", "/s/secret"), None)
    assert RedactTokens().filter(record) and record.args == ("GET", "/s/…")


TEMPLATES = sorted((REPO / "templates").rglob("*.html"))


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(REPO / "templates")))
def test_templates_have_nothing_inline_the_csp_refuses(template: Path) -> None:
    text = re.sub(r"\{#.*?#\}", "", template.read_text(), flags=re.S)  # comments may name what they avoid
    assert not re.search(r"\sstyle\s*=", text), 'style="": use a class, or data-css-* (static/segue.js)'
    assert "<style" not in text, "<style>: put the rules in a file under static/"
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "inline <script>: load a file from static/"
    assert not re.search(r"\s(on[a-z]+|hx-on[:\w-]*)\s*=", text), (
        "inline handler: add a listener in a static file"
    )
    assert "javascript:" not in text
