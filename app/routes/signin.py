"""The owner signs in (when Segue listens beyond loopback, or SEGUE_REQUIRE_OWNER): the owner secret, once,
becomes a cookie derived from it. Wrong secrets count toward the per-client limit (429)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from app.deps import SettingsDep, refuse_if_throttled, throttle_key, token_throttle
from app.security import OWNER_COOKIE, owner_required, owner_session, same_secret
from app.templating import templates

router = APIRouter(include_in_schema=False)
COOKIE_DAYS = 30


def _page(request: Request, error: str | None = None, status_code: int = 200) -> Response:
    return templates.TemplateResponse(request, "pages/signin.html", {"error": error}, status_code=status_code)


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request, settings: SettingsDep) -> Response:
    if not owner_required(settings):
        return RedirectResponse("/", status_code=303)  # on loopback whoever reaches Segue is the owner
    return _page(request)


@router.post("/signin", response_class=HTMLResponse)
async def sign_in(request: Request, settings: SettingsDep) -> Response:
    if not owner_required(settings):
        return RedirectResponse("/", status_code=303)
    throttle, address = token_throttle(request), throttle_key(request)
    refuse_if_throttled(throttle, address)
    form = await request.form(max_files=0, max_fields=5)
    token = str(form.get("token") or "").strip()
    if not same_secret(token, settings.owner_token):
        throttle.failed(address)
        return _page(request, "That is not the owner secret of this Segue.", status_code=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        OWNER_COOKIE,
        owner_session(settings.owner_token),
        max_age=COOKIE_DAYS * 86400,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/signin/out")
def sign_out() -> Response:
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(OWNER_COOKIE, path="/")
    return response
