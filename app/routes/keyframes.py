from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from app.deps import AccessDep, Id, IfMatchDep, SessionDep, based_on
from core.params import whole_number
from core.uploads import UploadRefused
from services import image_captions, keyframe_images, moce
from services import transitions as services
from services.keyframe_images import ImageChange
from services.schemas import KeyframeCreate, KeyframeOut, KeyframeUpdate

router = APIRouter(prefix="/api", tags=["keyframes"])
#: Room for a form's other fields and its multipart framing beside the largest image.
FORM_OVERHEAD = 256 * 1024


def _out(keyframe) -> KeyframeOut:  # type: ignore[no-untyped-def]
    return KeyframeOut.model_validate(keyframe, from_attributes=True)


async def _read_body(request: Request) -> tuple[dict[str, Any], ImageChange | None]:
    """A keyframe body as JSON (`image_url`: a frame of Segue, null removes the image) or as a form with a
    file field `image` (docs/image-endpoints.md); the image checked, nothing stored yet."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        # Refused on its declared length before a byte is read (or spooled to disk).
        declared = request.headers.get("content-length", "")
        if (
            size := whole_number(declared)
        ) is not None and size > keyframe_images.max_bytes() + FORM_OVERHEAD:
            limit = keyframe_images.max_bytes() / 1e6
            raise UploadRefused(
                "image",
                f"the request is {size / 1e6:.1f} MB; images of at most {limit:g} MB are accepted",
            )
        values: dict[str, Any] = {}
        image: ImageChange | None = None
        async with request.form(max_files=1, max_fields=64) as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if name != "image":
                        raise UploadRefused(name, "only the field `image` takes a file")
                    image = keyframe_images.accept(await value.read(keyframe_images.max_bytes() + 1))
                elif name == "image_url":
                    image = keyframe_images.from_url(value.strip() or None)
                elif value.strip() != "" or name == "prompt":
                    values[name] = value
        return values, image
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: [[[[... nested
        body = None
    if not isinstance(body, dict):
        raise RequestValidationError(
            [{"type": "dict_type", "loc": ("body",), "msg": "the body must be a JSON object", "input": None}]
        )
    image = keyframe_images.from_url(body.pop("image_url")) if "image_url" in body else None
    return body, image


def _validated(model: type[BaseModel], values: dict[str, Any]) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


async def _create_body(request: Request) -> tuple[KeyframeCreate, ImageChange | None]:
    values, image = await _read_body(request)
    return _validated(KeyframeCreate, values), image


async def _update_body(request: Request) -> tuple[KeyframeUpdate, ImageChange | None]:
    values, image = await _read_body(request)
    return _validated(KeyframeUpdate, values), image


def _body_doc(model: type[BaseModel], what: str) -> dict[str, Any]:
    """The request body in the OpenAPI schema: JSON with `image_url`, or a form with a file `image`."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    image_url = {
        "anyOf": [
            {"type": "string", "pattern": r"^(https?://[^/]+)?/media/frames/[0-9a-f]{2}/[0-9a-f]+\.png$"},
            {"type": "null"},
        ],
        "description": "a frame already in Segue as the keyframe's image; null removes the image",
    }
    json_schema = {**schema, "properties": {**schema.get("properties", {}), "image_url": image_url}}
    form_schema = {
        **schema,
        "properties": {
            **schema.get("properties", {}),
            "image": {"type": "string", "format": "binary", "description": "PNG, JPEG, WebP or GIF"},
        },
    }
    return {
        "requestBody": {
            "required": True,
            "description": what,
            "content": {
                "application/json": {"schema": json_schema},
                "multipart/form-data": {"schema": form_schema},
            },
        }
    }


CreateBody = Annotated[tuple[KeyframeCreate, ImageChange | None], Depends(_create_body)]
UpdateBody = Annotated[tuple[KeyframeUpdate, ImageChange | None], Depends(_update_body)]


@router.post(
    "/transitions/{transition_id}/keyframes",
    response_model=KeyframeOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        403: {"description": "a form (multipart) without Segue's Origin: cross-site (app/security.py)"}
    },
    openapi_extra=_body_doc(KeyframeCreate, "the keyframe; an image as a file `image` or as `image_url`"),
)
def add_keyframe(
    transition_id: Id, body: CreateBody, db: SessionDep, access: AccessDep, if_match: IfMatchDep
) -> KeyframeOut:
    data, image = body
    transition = services.get_transition(db, transition_id)
    expected = based_on(if_match, data.version)
    return _out(
        services.add_keyframe(db, transition, data, expected=expected, actor=access.actor, image=image)
    )


@router.get("/keyframes/{keyframe_id}", response_model=moce.KeyframeDetail)
def get_keyframe(keyframe_id: Id, db: SessionDep) -> moce.KeyframeDetail:
    """A keyframe with its settings, `image` ({url, width, height, sha256, caption} or null: `caption` is
    the text a render chose for a picture keyframe without a prompt) and `concepts`; when
    their switch step is "auto", `moce` shows the search: `{status: queued|running|done|failed,
    chosen_step, trace: [{step, disparity, thumbnail_url}]}` (null: no search for the keyframe's current
    inputs, or no "auto" concepts)."""
    keyframe = services.get_keyframe(db, keyframe_id)
    detail = moce.keyframe_detail(db, keyframe)
    if detail.image is not None:  # a picture without a prompt: the caption a render chose for it
        detail.image.caption = image_captions.shown_caption(keyframe)
    return detail


@router.patch(
    "/keyframes/{keyframe_id}",
    response_model=KeyframeOut,
    openapi_extra=_body_doc(
        KeyframeUpdate, "the fields that change; `image` (file) or `image_url` (null removes)"
    ),
)
def update_keyframe(
    keyframe_id: Id, body: UpdateBody, db: SessionDep, access: AccessDep, if_match: IfMatchDep
) -> KeyframeOut:
    patch, image = body
    keyframe = services.get_keyframe(db, keyframe_id)
    expected = based_on(if_match, patch.version)
    return _out(
        services.update_keyframe(db, keyframe, patch, expected=expected, actor=access.actor, image=image)
    )


@router.delete("/keyframes/{keyframe_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_keyframe(keyframe_id: Id, db: SessionDep, access: AccessDep, if_match: IfMatchDep) -> Response:
    """Delete an intermediate keyframe (If-Match: the version this is based on; stale: 409)."""
    keyframe = services.get_keyframe(db, keyframe_id)
    services.delete_keyframe(db, keyframe, expected=if_match, actor=access.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
