"""Keeping a hostile web page out of a person's Segue (docs/security.md has the threat model).

- Hosts: only the names this Segue serves are answered (a DNS-rebinding page names its own domain).
- Cross-site writes: a state-changing request from another origin is refused before any route runs.
- Headers: a strict Content-Security-Policy and friends on every response, so pages cannot be framed and
  tokens stay where they are.
- The owner's secret (a cookie in the browser, Bearer for the API) and a per-client limit on wrong tokens.
- Tokens never reach the access log.

`SecurityMiddleware` is pure ASGI, so event streams and file downloads pass through it untouched.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.config import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The three content types a cross-site <form> (or a no-cors fetch) may send without a CORS preflight.
SIMPLE_CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
#: Request headers no page may send to another origin without a preflight, which CORS (closed) refuses.
PREFLIGHTED_HEADERS = (b"authorization", b"x-segue-client", b"hx-request")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")
OWNER_COOKIE = "segue_owner"
OWNER_TOKEN_FILE = "owner-token"
#: Paths whose URL is itself a credential: share links, participant links and their API.
TOKEN_PATHS = ("/s/", "/p/", "/api/p/")
#: Files served as stored bytes: never a document, whatever their name says.
MEDIA_PREFIXES = ("/media/",)
#: Served as they are; anything else under MEDIA_PREFIXES is a download of opaque bytes.
SAFE_MEDIA_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/webp",
        "image/gif",
        "audio/wav",
        "audio/x-wav",
        "audio/mpeg",
        "audio/ogg",
        "audio/flac",
        "video/mp4",
        "video/webm",
    }
)
NO_REFERRER = b"no-referrer"
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "encrypted-media",
        "fullscreen",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "picture-in-picture",
        "publickey-credentials-get",
        "screen-wake-lock",
        "serial",
        "usb",
        "xr-spatial-tracking",
    )
)


# ---------------------------------------------------------------- hosts (DNS rebinding)


def host_name(host_header: str) -> str:
    """The name in a Host header, without port, brackets or a trailing dot: `[::1]:8000` -> `::1`."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else ""
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    address = _ip(host)
    return address is not None and address.is_loopback


def listen_scope(host: str) -> str:
    """Where a bind address is reachable from: "loopback", "private" (LAN, or every interface) or "public"."""
    if is_loopback(host):
        return "loopback"
    if host in WILDCARD_BINDS:
        return "private"  # every interface: a container's, or a LAN's; the owner secret is needed
    address = _ip(host)
    if address is not None and (address.is_private or address.is_link_local):
        return "private"
    return "public"  # a globally routable address, or a name that resolves to who knows what


@dataclass(frozen=True)
class HostPolicy:
    names: frozenset[str]
    suffixes: tuple[str, ...]
    any_host: bool
    any_ip: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> HostPolicy:
        configured = [h.strip().lower() for h in settings.allowed_hosts.split(",") if h.strip()]
        names = {*LOCAL_HOSTS, *(host_name(h) for h in configured if not h.startswith("."))}
        if settings.host not in WILDCARD_BINDS:
            names.add(host_name(settings.host) if settings.host.startswith("[") else settings.host.lower())
        if settings.env == "test":
            names.add("testserver")  # Starlette's TestClient; never in development or production
        return cls(
            names=frozenset(names - {"*"}),
            suffixes=tuple(h for h in configured if h.startswith(".")),
            any_host="*" in configured,
            # Bound to every interface: any of the machine's addresses may be typed; an IP literal cannot
            # be rebound (rebinding needs a name the attacker's DNS answers), so IP Hosts are safe.
            any_ip=settings.host in WILDCARD_BINDS,
        )

    def allows(self, host_header: str) -> bool:
        name = host_name(host_header)
        if not name:
            return False
        if self.any_host or name in self.names:
            return True
        if any(name.endswith(suffix) or name == suffix[1:] for suffix in self.suffixes):
            return True
        return self.any_ip and _ip(name) is not None


# ---------------------------------------------------------------- cross-site writes


def parse_origins(value: str) -> frozenset[str]:
    return frozenset(o.strip().lower().rstrip("/") for o in value.split(",") if o.strip())


def cross_site_refusal(
    method: str, headers: dict[bytes, bytes], scheme: str, allowed_origins: Iterable[str]
) -> str | None:
    """Why a request must be refused as cross-site, or None when it may go on.

    The browser tells us where a request comes from: `Sec-Fetch-Site` (Fetch Metadata, set by the browser
    only) and `Origin` (sent with every non-GET request by every current browser; `null` from sandboxed
    frames, data: URLs and some redirects). A request carrying neither is from a program or an old browser,
    and is accepted only if no page could have sent it cross-site without a CORS preflight: a method other
    than POST (the only simple method that writes), a body that is not one of the three "simple" form
    types, or a header such as Authorization or X-Segue-Client.
    """
    if method in SAFE_METHODS:
        return None
    origin = headers.get(b"origin", b"").decode("latin-1").strip().lower()
    site = headers.get(b"sec-fetch-site", b"").decode("latin-1").strip().lower()
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    own = f"{scheme}://{host}"
    if origin and origin != "null":
        if origin == own or origin in allowed_origins:
            return None
        return f"Origin {origin} is not this Segue ({own})"
    if site in ("same-origin", "none"):
        # Only the browser sets Sec-Fetch-Site; `Origin: null` with it comes from our own page under a
        # strict Referrer-Policy (a proxy may add one), never from a sandboxed frame (that is "cross-site").
        return None
    if origin == "null":
        return "Origin null (a sandboxed frame, a data: URL or a file) is not this Segue"
    if site:
        return f"a {site} request (Sec-Fetch-Site) without an Origin this Segue accepts"
    content_type = headers.get(b"content-type", b"").decode("latin-1").split(";", 1)[0].strip().lower()
    if method != "POST":  # PUT, PATCH, DELETE: no page sends them cross-site without a CORS preflight
        return None
    if any(name in headers for name in PREFLIGHTED_HEADERS):
        return None
    if content_type not in SIMPLE_CONTENT_TYPES:  # JSON, or no body: a form always has a type
        return None
    return (
        "a form-like request without an Origin header; programs send JSON, or Authorization, "
        "or an X-Segue-Client header"
    )


# ---------------------------------------------------------------- response headers


def content_security_policy(settings: Settings, extra_style: str = "", worker_src: str = "") -> str:
    """Segue's policy. One page may add style sources (a nonce, hashes) and a worker-src (ReDoc)."""
    extra = ""
    if settings.s3_public_url:  # frames read straight from a bucket or a CDN
        match = re.match(r"^(https?://[^/]+)", settings.s3_public_url)
        extra = f" {match.group(1)}" if match else ""
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            f"style-src 'self' {extra_style}".strip(),
            f"img-src 'self' data: blob:{extra}",
            f"media-src 'self' blob:{extra}",
            f"connect-src 'self'{extra}",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            *([f"worker-src {worker_src}"] if worker_src else []),
        )
    )


def _header_list(message: Message) -> list[tuple[bytes, bytes]]:
    return list(message.get("headers", []))


def _media_type(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return ""


def security_headers(
    path: str, response_headers: list[tuple[bytes, bytes]], csp: str, cors_origins: frozenset[str]
) -> list[tuple[bytes, bytes]]:
    """The response's headers with Segue's security headers set (replacing any of the same name)."""
    media_type = _media_type(response_headers)
    token_path = path.startswith(TOKEN_PATHS)
    media = path.startswith(MEDIA_PREFIXES)
    cacheable = path.startswith("/static/") or media
    ours: dict[bytes, bytes] = {
        b"content-security-policy": (csp + "; sandbox" if media else csp).encode(),
        b"x-content-type-options": b"nosniff",
        b"x-frame-options": b"DENY",
        b"permissions-policy": PERMISSIONS_POLICY.encode(),
        b"cross-origin-opener-policy": b"same-origin",
        b"cross-origin-resource-policy": b"cross-origin" if cors_origins else b"same-origin",
        # Pages keep `same-origin`, so their own forms still send a real Origin in browsers without Fetch
        # Metadata (no-referrer turns it into `null`); a Referer never leaves Segue either way.
        b"referrer-policy": b"same-origin" if media_type == "text/html" and not token_path else NO_REFERRER,
    }
    if not cacheable:
        ours[b"cache-control"] = b"no-store"  # pages, fragments, API answers: they may carry tokens
    if media and media_type not in SAFE_MEDIA_TYPES:
        # Stored bytes are never a document (HTML, SVG, XML...): the browser downloads them.
        ours[b"content-type"] = b"application/octet-stream"
        ours[b"content-disposition"] = b"attachment"
    if any(k.lower() == b"content-security-policy" for k, _ in response_headers):
        del ours[b"content-security-policy"]  # a page that set its own (stricter or nonce-bearing) policy
    kept = [(k, v) for k, v in response_headers if k.lower() not in ours]
    return kept + list(ours.items())


# ---------------------------------------------------------------- the middleware


class SecurityMiddleware:
    """Host check (400), cross-site write refusal (403), then security headers on whatever answers."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = HostPolicy.from_settings(settings)
        self.origins = parse_origins(settings.allowed_origins)
        self.csp = content_security_policy(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        headers = {k.lower(): v for k, v in scope.get("headers", [])}

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": security_headers(path, _header_list(message), self.csp, self.origins),
                }
            await send(message)

        host = headers.get(b"host", b"").decode("latin-1")
        if not self.hosts.allows(host):
            shown = host_name(host) or "(none)"
            await _refuse(
                send_secured,
                400,
                f"Host {shown!r} is not served by this Segue; to serve it, add it to SEGUE_ALLOWED_HOSTS",
                path,
            )
            return
        reason = cross_site_refusal(scope["method"], headers, scope.get("scheme", "http"), self.origins)
        if reason is not None:
            await _refuse(
                send_secured,
                403,
                f"cross-site request refused: {reason}; a proxy or second front end is added with "
                "SEGUE_ALLOWED_ORIGINS",
                path,
            )
            return
        await self.app(scope, receive, send_secured)


async def _refuse(send: Send, status: int, message: str, path: str) -> None:
    if path.startswith("/api/") or path == "/openapi.json":
        body, media_type = json.dumps({"detail": message}).encode(), b"application/json"
    else:
        body, media_type = (message + "\n").encode(), b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", media_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------- the owner's secret


def owner_required(settings: Settings) -> bool:
    """Off loopback, or when asked (SEGUE_REQUIRE_OWNER, or a SEGUE_OWNER_TOKEN set), the owner signs in."""
    return settings.require_owner or bool(settings.owner_token) or not is_loopback(settings.host)


def refuse_public_without_secret(settings: Settings) -> None:
    """Listening on a public address with no owner secret: refuse to start, saying how to set one."""
    if owner_required(settings) and listen_scope(settings.host) == "public" and not settings.owner_token:
        raise SystemExit(
            f"Segue would listen on the public address {settings.host} with no owner secret; "
            "set SEGUE_OWNER_TOKEN (16+ characters, e.g. `openssl rand -hex 32`) or SEGUE_HOST=127.0.0.1"
        )


def owner_token_path(settings: Settings) -> Path:
    return settings.data_dir / OWNER_TOKEN_FILE


def ensure_owner_secret(settings: Settings) -> tuple[str, bool]:
    """SEGUE_OWNER_TOKEN, else the secret kept in the data directory, made (0600) at first start.

    Returns the secret and whether it was made just now. The running settings carry it from then on.
    """
    if settings.owner_token:
        return settings.owner_token, False
    path = owner_token_path(settings)
    created = False
    try:
        secret = path.read_text().strip()
    except FileNotFoundError:
        secret = secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of this Segue made it first
            secret = path.read_text().strip()
        else:
            with os.fdopen(fd, "w") as file:
                file.write(secret + "\n")
            created = True
    settings.owner_token = secret
    return secret, created


def owner_session(secret: str) -> str:
    """The browser cookie's value: derived from the secret, so the cookie is not the secret itself."""
    return hmac.new(secret.encode(), b"segue owner session v1", hashlib.sha256).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison (the time taken says nothing about how much of a guess was right)."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


# ---------------------------------------------------------------- wrong tokens, per client


class TokenThrottle:
    """At most `limit` wrong tokens per client in a sliding window; beyond that, 429 for the rest of it.

    In memory, per process: several web processes each count on their own (docs/security.md).
    """

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, client: str) -> int | None:
        """Seconds until this client may try a token again, or None when it may now."""
        now = time.monotonic()
        with self._lock:
            failures = self._recent(client, now)
            if len(failures) < self.limit:
                if not failures:
                    self._failures.pop(client, None)
                return None
            return max(1, int(failures[0] + self.window - now + 0.999))

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent(client, now).append(now)
            if len(self._failures) > 10_000:  # a flood of clients: forget those whose minute is over
                stale = [k for k, v in self._failures.items() if not v or v[-1] <= now - self.window]
                for key in stale:
                    del self._failures[key]


# ---------------------------------------------------------------- tokens out of the logs

_TOKEN_IN_PATH = re.compile(r"(?<![^\s\"])((?:/api)?/[sp]/)(?!leave\b)[^/?#\s\"]+")
_TOKEN_IN_QUERY = re.compile(r"((?:^|[?&])(?:token|access_token)=)[^&#\s\"]+", re.IGNORECASE)


def redact(text: str) -> str:
    """`/s/AbC123` -> `/s/…`; `?token=AbC` -> `?token=…`."""
    return _TOKEN_IN_QUERY.sub(r"\1…", _TOKEN_IN_PATH.sub(r"\1…", text))


class RedactTokens(logging.Filter):
    """On uvicorn's access logger: the request line's path has its tokens replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install_log_redaction(names: Iterable[str] = ("uvicorn.access",)) -> None:
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
