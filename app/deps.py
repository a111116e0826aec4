"""Typed dependency aliases shared by the routers."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, Path, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.security import OWNER_COOKIE, TokenThrottle, owner_required, owner_session, same_secret
from app.templating import templates
from core.params import MAX_ID, whole_number
from infra.config import Settings, get_settings
from infra.db import get_db
from services.errors import FieldError
from services.history import Actor

SessionDep = Annotated[Session, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

#: A row id in a path (`/api/renders/{render_id}`), 1 to MAX_ID.
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
#: A row id in a query string (`?render=7`), 1 to MAX_ID.
QueryId = Annotated[int, Query(ge=1, le=MAX_ID)]
#: A position in a list (a frame's index, a page number) in a path, 0 to MAX_ID.
Index = Annotated[int, Path(ge=0, le=MAX_ID)]
#: An event stream's reconnect cursor: the id of the last event the client saw (SSE).
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]


# ---------------------------------------------------------------- who may do what (share links)
#
# Trust model (docs/user-guide.md, sharing; docs/security.md):
# - local install (SEGUE_REQUIRE_LINK unset): a request without a credential is the owner, as before links
#   existed; a request that carries a share link (Bearer header or the cookie /s/<token> sets) is held to
#   that link, so a view link shows a read-only page;
# - team deployment (SEGUE_REQUIRE_LINK=true): every request needs a live link or the admin token.
# - off loopback (or SEGUE_REQUIRE_OWNER / SEGUE_OWNER_TOKEN): "no credential" is nobody; the owner proves it
#   with the owner secret (the cookie /signin sets, or Bearer). Wrong tokens are limited per client (429).
# `enforce_access` runs for every route of the app (main.create_app) and leaves the result in
# request.state.access; routes that need it take `AccessDep` (the same object, cached per request).

LINK_COOKIE = "segue_link"
CLIENT_HEADER = "X-Segue-Client"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
#: Open without a credential even when links are required.
#: /p/ and /api/p/: a study's participant links check their own token (app/routes/participants.py).
PUBLIC_PREFIXES = (
    "/healthz", "/docs", "/redoc", "/openapi.json", "/static/", "/media/", "/s/", "/signin", "/p/", "/api/p/"
)  # fmt: skip

Role = Literal["owner", "admin", "edit", "comment", "view"]
#: The roles that may change the transition (a positive list: a role added later edits nothing by default).
EDITOR_ROLES = ("owner", "admin", "edit")


@dataclass(frozen=True)
class Access:
    role: Role
    link_id: int | None = None
    #: The only transition a link opens (None: owner and admin open all).
    transition_id: int | None = None
    client: str | None = None
    via_cookie: bool = False

    @property
    def can_edit(self) -> bool:
        return self.role in EDITOR_ROLES

    @property
    def can_comment(self) -> bool:
        """Add review notes and replies (docs/notes.md): editors, and comment links."""
        return self.can_edit or self.role == "comment"

    @property
    def can_manage(self) -> bool:
        """Make and revoke links, delete the transition, create transitions: not with a link."""
        return self.role in ("owner", "admin")

    @property
    def is_link(self) -> bool:
        return self.link_id is not None

    @property
    def actor(self) -> Actor:
        return Actor(link_id=self.link_id, client=self.client)

    def require(
        self, transition_id: int, write: bool = False, comment: bool = False, asked: str | None = None
    ) -> None:
        """Raise unless this access may read (or write; or, with `comment`, add notes to) that transition.

        `asked`: what the request named ("render 12"): another transition's object is answered as missing
        under that name, never under its transition's id (which would tell a link holder which it is)."""
        if self.transition_id is not None and self.transition_id != transition_id:
            raise AccessDenied(404, f"{asked or f'transition {transition_id}'} does not exist")
        if write and comment and not self.can_comment:
            raise AccessDenied(403, self.refusal)
        if write and not comment and not self.can_edit:
            raise AccessDenied(403, self.refusal)

    @property
    def refusal(self) -> str:
        if self.role == "comment":
            return "this is a comment link: it can add notes and replies, not change the transition"
        return "this is a view link: it can look, not change anything"


class AccessDenied(Exception):
    """401 (a credential is needed), 403 (the role does not allow it), 404 (not for this link) or 429 (too
    many wrong tokens from this client: `retry_after` seconds)."""

    def __init__(
        self, status: int, message: str, clear_cookie: bool = False, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.clear_cookie = clear_cookie
        self.retry_after = retry_after


def _marks(access: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator that marks a route with who may use it (the access check reads `_segue_access`)."""

    def mark(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        endpoint._segue_access = access  # type: ignore[attr-defined]
        return endpoint

    return mark


#: A route that no share link may use (making links, deleting a transition, ...).
owner_only = _marks("owner")
#: A POST that changes nothing of the transition (e.g. making an export): view links may use it.
viewers_may = _marks("read")
#: A write that comment links may make too (adding a review note or a reply, docs/notes.md).
commenters_may = _marks("comment")
#: A route without a transition in its path that checks `AccessDep` itself (e.g. the comparison).
checks_access_itself = _marks("self")


def _keyframe_transition(db: Session, ident: int) -> int | None:
    from infra.tables import Keyframe

    return db.scalar(select(Keyframe.transition_id).where(Keyframe.id == ident))


def _render_transition(db: Session, ident: int) -> int | None:
    from infra.tables import Render

    return db.scalar(select(Render.transition_id).where(Render.id == ident))


def _link_transition(db: Session, ident: int) -> int | None:
    from infra.tables import ShareLink

    return db.scalar(select(ShareLink.transition_id).where(ShareLink.id == ident))


def _export_transition(db: Session, ident: int) -> int | None:
    from infra.tables import Export, Render

    return db.scalar(
        select(Render.transition_id).join(Export, Export.render_id == Render.id).where(Export.id == ident)
    )


#: How a path parameter leads to the transition a request is about. A router whose paths name something
#: else (e.g. `export_id`) registers its own resolver here; a link may not use a route none of these match.
TRANSITION_OF: dict[str, Callable[[Session, int], int | None]] = {
    "transition_id": lambda _db, ident: ident,
    "keyframe_id": _keyframe_transition,
    "render_id": _render_transition,
    "link_id": _link_transition,
    "export_id": _export_transition,
}


def _credential(request: Request) -> tuple[str | None, bool]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    cookie = request.cookies.get(LINK_COOKIE)
    return (cookie, True) if cookie else (None, False)


def resolve_credential(
    db: Session, settings: Settings, token: str | None, client: str | None = None
) -> Access | None:
    """The access a token grants: admin, a live link, or None when the token opens nothing."""
    if token is None:
        return None
    if same_secret(token, settings.owner_token):
        return Access(role="owner", client=client)
    if settings.admin_token and hmac.compare_digest(token.encode(), settings.admin_token.encode()):
        return Access(role="admin", client=client)
    from services.links import find_active

    link = find_active(db, token)
    if link is None:
        return None
    return Access(role=link.role, link_id=link.id, transition_id=link.transition_id, client=client)  # type: ignore[arg-type]


def token_throttle(request: Request) -> TokenThrottle:
    throttle = getattr(request.app.state, "token_throttle", None)
    if throttle is None:  # an app built without create_app (a test's bare router)
        throttle = request.app.state.token_throttle = TokenThrottle(get_settings().max_token_failures)
    return throttle


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def throttle_key(request: Request) -> str:
    """Whose wrong tokens a request counts among: its address, and apart from them the requests a browser
    marks as sent by another site (Sec-Fetch-Site, which no page can set). Another site's page that loads
    `/s/<wrong token>` ten times then locks out only itself, not the person at that address."""
    address = client_address(request)
    if request.headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site"):
        return f"{address} (from another site)"
    return address


def refuse_if_throttled(throttle: TokenThrottle, address: str) -> None:
    wait = throttle.retry_after(address)
    if wait is not None:
        message = f"too many wrong tokens from this address; try again in {wait} s"
        raise AccessDenied(429, message, retry_after=wait)


def check_token(
    request: Request, db: Session, settings: Settings, token: str, client: str | None = None
) -> Access | None:
    """`resolve_credential`, limited per client: past SEGUE_MAX_TOKEN_FAILURES wrong tokens a minute, 429."""
    throttle, address = token_throttle(request), throttle_key(request)
    refuse_if_throttled(throttle, address)
    granted = resolve_credential(db, settings, token, client)
    if granted is None:
        throttle.failed(address)
    return granted


def _owner_cookie(request: Request, settings: Settings) -> bool | None:
    """True: the owner's browser; False: a cookie that opens nothing (a wrong token); None: no cookie."""
    cookie = request.cookies.get(OWNER_COOKIE)
    if not cookie:
        return None
    throttle, address = token_throttle(request), throttle_key(request)
    refuse_if_throttled(throttle, address)
    if settings.owner_token and same_secret(cookie, owner_session(settings.owner_token)):
        return True
    throttle.failed(address)
    return False


def enforce_access(request: Request, db: SessionDep, settings: SettingsDep) -> Access:
    client = (request.headers.get(CLIENT_HEADER) or "")[:64] or None
    path = request.url.path
    public = any(path.startswith(p) for p in PUBLIC_PREFIXES)
    token, via_cookie = _credential(request)
    if public:
        access = Access(role="owner", client=client)  # public routes check what they need themselves
        request.state.access = access
        return access
    granted = check_token(request, db, settings, token, client) if token is not None else None
    if token is not None and granted is None:
        raise AccessDenied(404, "this share link does not exist, was revoked or has expired", via_cookie)
    if granted is None and owner_required(settings) and _owner_cookie(request, settings):
        granted = Access(role="owner", client=client)
    if granted is None:
        if settings.require_link:
            raise AccessDenied(401, "this Segue needs a share link or the admin token")
        if owner_required(settings):
            page = not path.startswith("/api") and "text/html" in request.headers.get("accept", "")
            if request.method == "GET" and page:
                raise AccessDenied(303, "/signin")
            raise AccessDenied(
                401,
                "sign in as the owner at /signin (or send Authorization: Bearer <owner token>), "
                "or open a share link",
            )
        granted = Access(role="owner", client=client)
    access = replace(granted, via_cookie=via_cookie)
    request.state.access = access
    if not access.is_link:
        return access

    route = request.scope.get("route")
    marker = getattr(getattr(route, "endpoint", None), "_segue_access", None)
    if marker == "owner":
        raise AccessDenied(403, "a share link cannot do this; only the owner can")
    write = request.method not in _SAFE_METHODS and marker != "read"
    params = request.path_params
    for name, resolve in TRANSITION_OF.items():
        if name in params:
            try:
                ident = int(params[name])
            except (TypeError, ValueError):
                raise AccessDenied(404, f"{name} {params[name]} does not exist") from None
            if not 1 <= ident <= MAX_ID:  # no such row; and the database must not see it
                raise AccessDenied(404, f"{name} {params[name]} does not exist")
            transition_id = resolve(db, ident)
            if transition_id is None:
                raise AccessDenied(404, f"{name.removesuffix('_id')} {ident} does not exist")
            asked = f"{name.removesuffix('_id')} {ident}"
            access.require(transition_id, write=write, comment=marker == "comment", asked=asked)
            return access
    if marker == "self":
        if write and not access.can_edit:
            raise AccessDenied(403, access.refusal)
        return access
    if path == "/" and request.method == "GET":
        raise AccessDenied(303, f"/transitions/{access.transition_id}")
    raise AccessDenied(403, "a share link opens its own transition only")


AccessDep = Annotated[Access, Depends(enforce_access)]


def _template_access(request: Request) -> dict[str, Any]:
    access = getattr(request.state, "access", None) or Access(role="owner")
    return {
        "access": access,
        "can_edit": access.can_edit,
        "can_comment": access.can_comment,
        "can_manage": access.can_manage,
    }


if _template_access.__name__ not in {p.__name__ for p in templates.context_processors}:
    templates.context_processors.append(_template_access)


def _version(text: object) -> int | None:
    """A transition version named in a header or a form (1 to MAX_ID, ASCII digits), else None."""
    version = whole_number(text)
    return version if version is not None and 1 <= version <= MAX_ID else None


def _if_match(if_match: Annotated[str | None, Header(alias="If-Match")] = None) -> int | None:
    """The version named by an If-Match header: `"7"`, `W/"7"` or `7`; `*` (or none) names no version."""
    if if_match is None or if_match.strip() in ("", "*"):
        return None
    version = _version(if_match.strip().removeprefix("W/").strip().strip('"'))
    if version is None:
        raise FieldError(
            "If-Match",
            f'If-Match must name a transition version, 1 to {MAX_ID}, like "7" (got {if_match[:40]!r})',
        )
    return version


IfMatchDep = Annotated[int | None, Depends(_if_match)]


def form_version(value: object) -> int | None:
    """The version a page form names (its hidden `version` field); None when it names none. A value that is
    no version is a FieldError: a form never writes regardless of the version because its version was junk."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    version = _version(value)
    if version is None:
        shown = str(value)[:40]
        raise FieldError("version", f"version must be a transition version, 1 to {MAX_ID} (got {shown!r})")
    return version


def based_on(header: int | None, body: int | None) -> int | None:
    """The version a write is based on, from the If-Match header or the body's `version` field."""
    if header is not None and body is not None and header != body:
        raise FieldError("version", f"If-Match names version {header} but the body names {body}")
    return header if header is not None else body
