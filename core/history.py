"""A transition's edit history as documents, pure: a snapshot ("document") is {"transition": {field: value},
"keyframes": {"<id>": {field: value}}}; a change has the same shape with only what changed, a keyframe that
does not exist being null. `diff` finds the change between two documents, `apply_to_doc` applies one, and
`summarize` says in one line what it did. services/history.py stores them and applies them to the database.
"""

from __future__ import annotations

import copy
from typing import Any

Doc = dict[str, Any]

#: Kinds whose rows move the undo/redo stacks instead of being pushed on them.
UNDO, REDO, REVERT = "undo", "redo", "revert"

#: How a transition's fields are named in a summary (the rest: their name with spaces).
LABELS = {
    "title": "title",
    "negative_prompt": "negative prompt",
    "frames": "frames",
    "seed": "seed",
    "steps": "steps",
    "guidance_scale": "guidance",
    "width": "width",
    "height": "height",
    "scheduler": "scheduler",
    "text_interpolation": "interpolation",
    "batch_size": "batch size",
    "model": "model",
    "audio": "soundtrack",
    "guidance_until": "guidance until",
    "deep_cache_interval": "deep cache interval",
    "deep_cache_from": "deep cache from",
    "neighbour_reuse_from": "neighbour reuse from",
}


def diff(old: Doc, new: Doc) -> tuple[Doc, Doc]:
    """(before, after): only what differs between two snapshots."""
    before: Doc = {"transition": {}, "keyframes": {}}
    after: Doc = {"transition": {}, "keyframes": {}}
    a, b = old.get("transition", {}), new.get("transition", {})
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            before["transition"][name] = a.get(name)
            after["transition"][name] = b.get(name)
    ka, kb = old.get("keyframes", {}), new.get("keyframes", {})
    for kid in sorted(set(ka) | set(kb), key=int):
        x, y = ka.get(kid), kb.get(kid)
        if x is None or y is None:
            if x != y:
                before["keyframes"][kid] = x
                after["keyframes"][kid] = y
            continue
        changed = [f for f in sorted(set(x) | set(y)) if x.get(f) != y.get(f)]
        if changed:
            before["keyframes"][kid] = {f: x.get(f) for f in changed}
            after["keyframes"][kid] = {f: y.get(f) for f in changed}
    return _compact(before), _compact(after)


def _compact(change: Doc) -> Doc:
    return {section: values for section, values in change.items() if values}


def apply_to_doc(doc: Doc, change: Doc) -> Doc:
    """A snapshot with a change applied (no database)."""
    out = copy.deepcopy(doc)
    out.setdefault("transition", {}).update(change.get("transition", {}))
    keyframes = out.setdefault("keyframes", {})
    for kid, values in change.get("keyframes", {}).items():
        if values is None:
            keyframes.pop(kid, None)
        elif kid in keyframes:
            keyframes[kid].update(values)
        else:
            keyframes[kid] = dict(values)
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, dict) and "key" in value and "duration" in value:  # a soundtrack (animatics)
        return f"\u201c{value.get('name', 'soundtrack')}\u201d"
    if isinstance(value, dict) and "sha256" in value:  # a keyframe's image (docs/image-endpoints.md)
        return f"an image {value.get('width')} \u00d7 {value.get('height')} ({str(value['sha256'])[:8]})"
    if isinstance(value, dict) and "first" in value:  # a keyframe's MoCE concepts
        first, second = _fmt(value["first"]), _fmt(value.get("second"))
        return f"{first} first, then {second} (N = {value.get('switch_step')})"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        short = value if len(value) <= 48 else value[:47].rstrip() + "…"
        return f"\u201c{short}\u201d"
    return str(value)


def _keyframe_name(values: dict[str, Any]) -> str:
    if values.get("is_start"):
        return "start prompt"
    if values.get("is_end"):
        return "end prompt"
    return f"keyframe at {_fmt(values.get('position'))}"


def summarize(before: Doc, after: Doc, context: Doc | None = None) -> str:
    """One line naming what a change did, e.g. 'keyframe at 0.4 added: “a garden”; steps 25 → 30'."""
    parts: list[str] = []
    old_t, new_t = before.get("transition", {}), after.get("transition", {})
    for name in new_t:
        parts.append(
            f"{LABELS.get(name, name.replace('_', ' '))} {_fmt(old_t.get(name))} → {_fmt(new_t[name])}"
        )
    old_k, new_k = before.get("keyframes", {}), after.get("keyframes", {})
    known = (context or {}).get("keyframes", {})
    for kid in sorted(set(old_k) | set(new_k), key=int):
        old, new = old_k.get(kid), new_k.get(kid)
        if old is None and new is not None:
            parts.append(f"{_keyframe_name(new)} added: {_fmt(new.get('prompt'))}")
        elif new is None and old is not None:
            parts.append(f"{_keyframe_name(old)} deleted ({_fmt(old.get('prompt'))})")
        elif old is not None and new is not None:
            whole = {**known.get(kid, {}), **old}
            name = _keyframe_name(whole)
            if "position" in new:
                parts.append(f"{name} moved to {_fmt(new['position'])}")
                name = _keyframe_name({**whole, "position": new["position"]})
            if "prompt" in new:
                parts.append(f"{name} → {_fmt(new['prompt'])}")
            for other in sorted(set(new) - {"position", "prompt"}):
                parts.append(f"{name}: {other.replace('_', ' ')} {_fmt(old.get(other))} → {_fmt(new[other])}")
    return "; ".join(parts) or "no change"
