"""Share links: a token that opens one transition with a role (view, comment or edit), revocable,
maybe expiring.

The token is 32 random bytes from `secrets` (256 bits, url-safe base64), shown once; only its SHA-256 is
stored, so a copy of the database does not open anything. A revoked or expired link is treated as one that
never existed (404), so a holder learns nothing about the transition.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from infra.tables import ShareLink, Transition, utcnow
from services.errors import FieldError
from services.rows import found
from services.schemas import LinkOut

TOKEN_BYTES = 32
#: view: read only; comment: read, add notes and replies (docs/notes.md); edit: change and render too.
ROLES = ("view", "comment", "edit")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every moment Segue stores is UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def is_active(link: ShareLink, now: datetime | None = None) -> bool:
    now = now or utcnow()
    expires = aware(link.expires_at)
    return link.revoked_at is None and (expires is None or expires > now)


def link_url(token: str) -> str:
    return f"/s/{token}"


def create_link(
    db: Session, transition: Transition, role: str, expires_at: datetime | None = None
) -> tuple[ShareLink, str]:
    """A new link and its token (the only time the token exists outside the holder's hands)."""
    if role not in ROLES:
        raise FieldError("role", f"role must be one of: {', '.join(ROLES)} (got {role!r})")
    expires_at = aware(expires_at)
    if expires_at is not None and expires_at <= utcnow():
        raise FieldError("expires_at", "expires_at must be in the future")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = ShareLink(
        transition_id=transition.id, role=role, token_hash=hash_token(token), expires_at=expires_at
    )
    db.add(link)
    db.commit()
    return link, token


def list_links(db: Session, transition: Transition) -> list[ShareLink]:
    return list(
        db.scalars(select(ShareLink).where(ShareLink.transition_id == transition.id).order_by(ShareLink.id))
    )


def get_link(db: Session, link_id: int) -> ShareLink:
    return found(db, ShareLink, link_id, "link")


def revoke(db: Session, link: ShareLink) -> ShareLink:
    """Stop the link working from now on (it stays listed, so the history can still name it)."""
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        db.commit()
    return link


def find_active(db: Session, token: str) -> ShareLink | None:
    """The live link this token opens, or None (unknown, revoked and expired look the same)."""
    if not token or len(token) > 200:
        return None
    link = db.scalar(select(ShareLink).where(ShareLink.token_hash == hash_token(token)))
    return link if link is not None and is_active(link) else None


def link_out(link: ShareLink) -> LinkOut:
    return LinkOut(
        id=link.id,
        transition_id=link.transition_id,
        role=link.role,  # type: ignore[arg-type]
        created_at=link.created_at,
        expires_at=aware(link.expires_at),
        revoked_at=aware(link.revoked_at),
        active=is_active(link),
    )
