"""One co-viewing channel per transition: its edit events (core.events.TransitionEvent), for every viewer.

It is the event bus (infra/bus.py) with the transitions topic: a Redis Stream per transition in
distributed mode, rows of transition_events in embedded mode, with the same resumable ids. Render
events stay on the render bus; the co-viewing stream (app/coviewing.py) follows both.
"""

from __future__ import annotations

import logging

from core.events import TransitionEvent
from infra.bus import TRANSITIONS, EventBus, get_bus

log = logging.getLogger(__name__)


def get_channel() -> EventBus:
    return get_bus(topic=TRANSITIONS)


def announce(event: TransitionEvent) -> None:
    """Publish after the change is committed; a viewer missing one event must not undo a saved edit."""
    try:
        get_channel().publish(event)
    except Exception:  # the edit is saved; co-viewers catch up on their next reload
        log.exception("could not publish %s for transition %s", event.name, event.transition_id)
