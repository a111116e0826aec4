"""The domain's errors, each one a person can act on; app/errors.py answers each over HTTP (404, 409, 422,
429, 503) and the workers record them on the job they failed."""

from __future__ import annotations

from typing import Any

from core.params import error_message, field_of


class NotFound(Exception):
    def __init__(self, what: str, ident: int | str) -> None:
        super().__init__(f"{what} {ident} does not exist")


class FieldError(Exception):
    """A request that is well-formed but not allowed; becomes a 422 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class BrokerUnavailable(Exception):
    """The render queue cannot be reached; nothing was queued."""


class Busy(Exception):
    """Something of the same kind is already under way (an autopilot on this transition): 409 naming it."""


class TooMany(Exception):
    """A quota on things at once (renders queued or running per transition): 429, naming the limit."""


def validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors as [{field, msg, type, loc}], each message naming its field and allowed range."""
    out = []
    for error in errors:
        # Malformed JSON is located by a character offset, not a field: it is the body's problem.
        field = "body" if error.get("type") == "json_invalid" else field_of(error.get("loc", ()))
        out.append(
            {
                "field": field,
                "msg": error_message(error, field),
                "type": error.get("type"),
                "loc": list(error.get("loc", ())),
            }
        )
    return out
