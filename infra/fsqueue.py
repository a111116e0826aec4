"""The embedded mode's broker: kombu's filesystem transport, with messages written atomically.

kombu writes a message straight into the queue folder under its final name, so a worker polling at that
moment can take the file while it is still empty; it then fails to decode it and the Celery worker stops
("Unrecoverable error: JSONDecodeError"), leaving every render queued. Here a message is written under a
name no consumer looks at and renamed into place once whole (a rename within a folder is atomic).
Registered as the `filesystem://` transport by infra/queue.py, so URLs and settings stay as they were.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


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


class Transport(filesystem.Transport):
    Channel = Channel
