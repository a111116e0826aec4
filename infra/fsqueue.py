"""The embedded mode's broker: kombu's filesystem transport, with messages written atomically.

kombu writes a message straight into the queue folder under its final name, so a worker polling at that
moment can take the file while it is still empty; it then fails to decode it and the Celery worker stops
("Unrecoverable error: JSONDecodeError"), leaving every render queued. Here a message is written under a
name no consumer looks at and renamed into place once whole (a rename within a folder is atomic).
Registered as the `filesystem://` transport by infra/queue.py, so URLs and settings stay as they were.

kombu's consumer sleeps `polling_interval` whenever the folder is empty, so a render's first batch waited
up to that long before a worker took it. Here the consumer waits on a doorbell of the queue folder
instead (infra/doorbell.py), which every message put there rings: it takes the message at once, and the
interval only bounds the wait where a ring cannot arrive.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

from infra.doorbell import Doorbell, Listener


def doorbell(folder: str) -> Doorbell:
    from infra.config import get_settings

    return Doorbell(f"queue {os.path.realpath(folder)}", enabled=get_settings().doorbell)


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        target = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.partial")  # not "<queue>.msg": never taken
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {target!r} to directory") from exc
        doorbell(self.data_folder_out).ring()


class Transport(filesystem.Transport):
    Channel = Channel

    _listener: Listener | None = None

    def drain_events(self, connection: Any, timeout: float | None = None) -> None:  # type: ignore[override]
        """kombu's loop (virtual.Transport.drain_events), waiting on the queue's doorbell between polls."""
        if self._listener is None:  # listening before the first look: a message put after it rings
            options: dict[str, Any] = getattr(self.client, "transport_options", None) or {}
            folder = options.get("data_folder_in", "data_in")
            self._listener = doorbell(folder).listener()
        started = monotonic()
        interval = self.polling_interval
        if timeout and interval and interval > timeout:
            interval = timeout
        while True:
            try:
                self.cycle.get(self._deliver, timeout=timeout)  # type: ignore[attr-defined]
                return
            except Empty:
                if timeout is not None and monotonic() - started >= timeout:
                    raise TimeoutError() from None
                if interval is not None:
                    self._listener.wait(interval)

    def close_connection(self, connection: Any) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        super().close_connection(connection)
