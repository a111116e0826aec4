"""Share links: make, list and revoke them (the owner), and open one (/s/<token> sets a cookie)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from app.deps import LINK_COOKIE, AccessDenied, Id, SessionDep, SettingsDep, check_token, owner_only
from app.templating import templates
from infra.tables import ShareLink, Transition, utcnow
from services import links
from services.errors import FieldError
from services.schemas import LinkCreate, LinkCreated, LinkOut
from services.transitions import get_transition

router = APIRouter(tags=["links"])
COOKIE_DAYS = 30
GONE = "this share link does not exist, was revoked or has expired"


@router.post(
    "/api/transitions/{transition_id}/links", response_model=LinkCreated, status_code=status.HTTP_201_CREATED
)
@owner_only
def create_link(transition_id: Id, data: LinkCreate, db: SessionDep) -> LinkCreated:
    """A link that opens this transition with `role` (view: read only; edit: edit and render).

    The token is in this answer only; Segue keeps its SHA-256. Send it as `Authorization: Bearer <token>`
    or open `url` in a browser."""
    link, token = links.create_link(db, get_transition(db, transition_id), data.role, data.expires_at)
    return LinkCreated(**links.link_out(link).model_dump(), token=token, url=links.link_url(token))


@router.get("/api/transitions/{transition_id}/links", response_model=list[LinkOut])
@owner_only
def list_links(transition_id: Id, db: SessionDep) -> list[LinkOut]:
    """Every link of the transition, revoked and expired ones too; never their tokens."""
    return [links.link_out(link) for link in links.list_links(db, get_transition(db, transition_id))]


@router.delete("/api/links/{link_id}", status_code=status.HTTP_204_NO_CONTENT)
@owner_only
def revoke_link(link_id: Id, db: SessionDep) -> Response:
    """Revoke: the link opens nothing from now on (404 for its holder). Revoking twice is harmless."""
    links.revoke(db, links.get_link(db, link_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- pages


@router.get("/s/leave", include_in_schema=False)
def leave(request: Request) -> Response:
    """Stop using the share link this browser opened (the cookie goes)."""
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(LINK_COOKIE, path="/")
    return response


@router.get("/s/{token}", include_in_schema=False)
def open_link(request: Request, token: str, db: SessionDep, settings: SettingsDep) -> Response:
    """Open a share link (or the admin token) in a browser: remember it in a cookie, go to the transition."""
    access = check_token(request, db, settings, token)
    if access is None:
        raise AccessDenied(
            404, "this share link does not exist, was revoked or has expired", clear_cookie=True
        )
    target = f"/transitions/{access.transition_id}" if access.transition_id is not None else "/"
    response = RedirectResponse(target, status_code=303)
    max_age = COOKIE_DAYS * 86400
    if access.link_id is not None:
        link = links.get_link(db, access.link_id)
        expires = links.aware(link.expires_at)
        if expires is not None:
            max_age = max(1, min(max_age, int((expires - datetime.now(UTC)).total_seconds())))
    response.set_cookie(
        LINK_COOKIE,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


def share_context(
    db: Any, request: Request, transition: Transition, created: tuple[ShareLink, str] | None = None
) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    return {
        "t": transition,
        "share_links": [links.link_out(link) for link in links.list_links(db, transition)],
        "new_link": (
            {"id": created[0].id, "role": created[0].role, "url": base + links.link_url(created[1])}
            if created
            else None
        ),
        "share_errors": {},
        "now": utcnow(),
    }


@router.post("/transitions/{transition_id}/links", response_class=HTMLResponse, include_in_schema=False)
@owner_only
async def create_link_page(request: Request, transition_id: Id, db: SessionDep) -> Response:
    transition = get_transition(db, transition_id)
    form = await request.form()
    role = str(form.get("role") or "view")
    expires_raw = str(form.get("expires_in_days") or "").strip()
    errors: dict[str, str] = {}
    created = None
    try:
        expires_at = None
        if expires_raw:
            try:
                days = float(expires_raw)
            except ValueError:
                raise FieldError("expires_in_days", "expires in: a number of days, like 7") from None
            if not 0 < days <= 3650:
                raise FieldError("expires_in_days", "expires in: between 0 and 3650 days")
            expires_at = utcnow() + timedelta(days=days)
        created = links.create_link(db, transition, role, expires_at)
    except FieldError as exc:
        errors[exc.field] = exc.message
    context = share_context(db, request, transition, created)
    context["share_errors"] = errors
    return templates.TemplateResponse(
        request, "partials/share.html", context, status_code=422 if errors else 200
    )


@router.post("/links/{link_id}/revoke", response_class=HTMLResponse, include_in_schema=False)
@owner_only
def revoke_link_page(request: Request, link_id: Id, db: SessionDep) -> Response:
    link = links.revoke(db, links.get_link(db, link_id))
    transition = get_transition(db, link.transition_id)
    return templates.TemplateResponse(request, "partials/share.html", share_context(db, request, transition))
