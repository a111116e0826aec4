"""Wake a polling process at once when there is news for it: the embedded mode's queue and event table.

The embedded mode has no server to block on (no Redis BLPOP or XREAD): the worker polls the queue folder
and the web app polls the event table. Each poller waits on a doorbell between two polls instead of
sleeping: a Unix datagram socket of its own, in a folder every process of one install finds from the same
name (the database URL, the queue folder). Whoever writes news rings it (one byte to every socket there),
so a new batch is taken, and a new event streamed, within milliseconds instead of up to a poll interval.

A doorbell only shortens a wait: a poller still reads when its interval ends, so a lost ring (a process on
another machine, a full socket buffer, a platform without Unix datagram sockets) costs at most the
interval, as before. Ringing never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

#: The longest path a Unix socket address can hold (Linux; macOS allows 104), with the NUL at its end.
_MAX_SOCKET_PATH = 103


def folder_for(name: str) -> Path:
    """The short folder of one doorbell (socket paths are limited to about 100 bytes), the same for every
    process of this user that names it alike."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    user = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"segue-bell-{user}" / digest


class Listener:
    """One process's socket on a doorbell; `wait` returns when it is rung or the timeout ends."""

    def __init__(self, sock: socket.socket | None, path: Path | None) -> None:
        self._sock = sock
        self._path = path

    @property
    def ringing_works(self) -> bool:
        return self._sock is not None

    def _drain(self) -> bool:
        rung = False
        assert self._sock is not None
        while True:
            try:
                self._sock.recv(64)
                rung = True
            except OSError:  # BlockingIOError: nothing more to read
                return rung

    def wait(self, timeout: float) -> bool:
        """Block until rung (True) or `timeout` seconds pass (False); rings before this call count."""
        if self._sock is None:
            if timeout > 0:
                time.sleep(timeout)
            return False
        if self._drain():
            return True
        if timeout <= 0:
            return False
        self._sock.settimeout(timeout)  # a blocking read with a deadline: no select(), whatever the fd
        try:
            self._sock.recv(64)
        except OSError:  # TimeoutError: nobody rang
            return False
        finally:
            self._sock.setblocking(False)
        self._drain()
        return True

    async def wait_async(self, timeout: float) -> bool:
        """As `wait`, on the running event loop (its selector watches the socket; nothing blocks)."""
        if self._sock is None:
            await asyncio.sleep(timeout)
            return False
        if self._drain():
            return True
        loop = asyncio.get_running_loop()
        rung = loop.create_future()
        fd = self._sock.fileno()

        def wake() -> None:
            if not rung.done():
                rung.set_result(None)

        try:
            loop.add_reader(fd, wake)
        except (NotImplementedError, RuntimeError):  # a loop without add_reader (Windows' proactor)
            await asyncio.sleep(timeout)
            return self._drain()
        try:
            await asyncio.wait_for(rung, max(timeout, 0.0))
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(fd)
        return self._drain()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._path is not None:
            with contextlib.suppress(OSError):
                self._path.unlink()
            with contextlib.suppress(OSError):  # the last listener takes the folder with it
                self._path.parent.rmdir()
            self._path = None


class Doorbell:
    """A doorbell by name: `listen()` in the poller, `ring()` where the news is written."""

    def __init__(self, name: str, enabled: bool = True) -> None:
        self.folder = folder_for(name)
        self.enabled = enabled  # off (SEGUE_DOORBELL=false): listeners only sleep, rings do nothing

    def _socket_path(self, door: str) -> Path | None:
        path = self.folder / f"{door}.{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
        return path if len(os.fsencode(path)) <= _MAX_SOCKET_PATH else None

    def listener(self, door: str = "all") -> Listener:
        """A bound socket at one door of this doorbell (e.g. one render's events), or a Listener that only
        sleeps where one cannot be made."""
        if not self.enabled or not hasattr(socket, "AF_UNIX"):
            return Listener(None, None)
        path = self._socket_path(door)
        if path is None:
            return Listener(None, None)
        sock = None
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            for attempt in range(2):  # the folder may be removed by its last listener right after mkdir
                self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                try:
                    sock.bind(str(path))
                    break
                except FileNotFoundError:
                    if attempt:
                        raise
            return Listener(sock, path)
        except OSError as exc:
            if sock is not None:
                sock.close()
            log.debug("no doorbell in %s (%s): polling only", self.folder, exc)
            return Listener(None, None)

    @contextlib.contextmanager
    def listen(self, door: str = "all") -> Iterator[Listener]:
        listener = self.listener(door)
        try:
            yield listener
        finally:
            listener.close()

    def ring(self, door: str = "all") -> int:
        """Wake every listener at `door` (returns how many were rung). A socket nobody holds any more (its
        process died) is removed; nothing here raises."""
        if not self.enabled:
            return 0
        prefix = f"{door}."
        try:
            names = [
                e for e in os.scandir(self.folder) if e.name.startswith(prefix) and e.name.endswith(".sock")
            ]
        except OSError:
            return 0
        rung = 0
        try:
            sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        except (OSError, AttributeError):
            return 0
        with sender:
            sender.setblocking(False)
            for entry in names:
                try:
                    sender.sendto(b"!", entry.path)
                    rung += 1
                except BlockingIOError:  # its buffer is full of rings it has not read: it is awake already
                    rung += 1
                except ConnectionRefusedError:  # left behind by a process that died
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                except OSError:
                    continue
        return rung
