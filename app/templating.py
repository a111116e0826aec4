"""The template environment: one Jinja2 environment for pages and the fragments htmx swaps in."""

from __future__ import annotations

from typing import Any

from jinja2_fragments.fastapi import Jinja2Blocks

from core import params
from infra.config import REPO_ROOT, get_settings

templates = Jinja2Blocks(directory=REPO_ROOT / "templates")


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%"


templates.env.filters["percent"] = _percent
templates.env.filters["number"] = params.format_number
templates.env.globals.update(
    zip=zip,
    scheduler_labels=params.SCHEDULER_LABELS,
    text_interpolation_labels=params.TEXT_INTERPOLATION_LABELS,
    noise_interpolation_labels=params.NOISE_INTERPOLATION_LABELS,
    attention_interpolation_labels=params.ATTENTION_INTERPOLATION_LABELS,
    spacing_labels=params.SPACING_LABELS,
    in_between_labels=params.IN_BETWEEN_LABELS,
    image_endpoints_labels=params.IMAGE_ENDPOINTS_LABELS,
    image_url=lambda sha256: _store_url(sha256),
)


def _store_url(key: str) -> str:
    """Where the page loads a frame-store image (a keyframe's image) from."""
    from infra.storage import get_store

    return get_store().url(key)


def fragment(template: str, **context: Any) -> str:
    return templates.env.get_template(template).render(**context)


def settings_context() -> dict[str, Any]:
    """What the settings form needs: every limit and default, from core.params and the configuration."""
    s = get_settings()
    limits = {
        name: {"low": r.low, "high": r.high(), "multiple": r.multiple} for name, r in params.RANGES.items()
    }
    defaults = {
        **params.defaults(),
        "seed": "",
        "width": s.default_size,
        "height": s.default_size,
        "model": s.model,
    }
    keyframe_limits = {name: {"low": r.low, "high": r.high()} for name, r in params.KEYFRAME_RANGES.items()}
    return {
        "limits": limits,
        "keyframe_limits": keyframe_limits,
        "defaults": defaults,
        "models": s.models,
        "default_model": s.model,
    }
