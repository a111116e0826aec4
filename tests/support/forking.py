"""Worker processes for live-stack tests, forked from a process that has already imported their libraries.

A render worker spends about 6 s of CPU importing torch, diffusers, transformers and scipy before its first
batch, and a full test run starts some forty of them. Here one server process per test process (the zygote)
imports those libraries once, with the environment every test worker gets (`HF_HUB_OFFLINE=1`, one torch
thread), and forks a child per worker. The child takes the test's environment, working directory and log,
then runs the same entry module as `python -m worker ...` does, so Segue's own code (settings, Celery app,
tables) is imported fresh in every worker, as in a real one; only third-party modules that hold no per-test
state are inherited. A child that hands its process over to another module with `os.execv(python, [python,
"-m", module, ...])`, as `segue render` does, runs that module next in the same way. The child is a real
process: signals, `os._exit` statuses and kills are the real ones.

The zygote has no threads (fork stays safe), dies with the test process, and its children die with it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PR_SET_PDEATHSIG = 1
#: Read by third-party libraries when they are imported (or by OpenMP when torch loads it): a zygote's
#: values are every child's, so each set of them has its own zygote.
IMPORT_TIME_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: What a render worker imports before its first batch, and nothing of Segue's.
PRELOADED = (
    "torch",
    "diffusers",
    "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion",
    "transformers",
    "scipy.stats",
    "celery",
    "celery.__main__",
    "kombu",
    "redis",
    "sqlalchemy",
    "PIL.Image",
    "numpy",
)


def _die_with_parent(sig: int) -> None:
    # Not app.cli.die_with_parent: the zygote imports nothing of Segue's (its children import it fresh), and
    # a worker child must die at once (SIGKILL), not shut down warm on SIGTERM.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


def serve() -> None:
    """The zygote's loop: one JSON request per stdin line ({module, args, env, cwd, log, status}), answered
    with the child's pid on stdout; each child's exit status is written to its `status` file when it ends."""
    import importlib

    _die_with_parent(signal.SIGKILL)
    for name in PRELOADED:
        importlib.import_module(name)
    print("ready", flush=True)
    statuses: dict[int, str] = {}
    stdin = sys.stdin.fileno()
    buffered = b""
    while True:
        readable, _, _ = select.select([stdin], [], [], 0.05)
        if readable:
            chunk = os.read(stdin, 65536)
            if not chunk:  # the test process is gone
                return
            buffered += chunk
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(request)  # never returns
                statuses[pid] = request["status"]
                print(pid, flush=True)
        while statuses:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            path = statuses.pop(pid, None)
            if path is not None:
                Path(path + ".tmp").write_text(str(os.waitstatus_to_exitcode(status)))
                os.replace(path + ".tmp", path)


class _ExecModule(BaseException):
    """`os.execv(python, [python, "-m", module, *args])` in a forked child: become that module instead."""

    def __init__(self, module: str, args: list[str]) -> None:
        super().__init__(module)
        self.module, self.args = module, args


_real_execv = os.execv


def _exec_as_module(path: str, argv: Any) -> None:
    """os.execv in a forked child. `segue render` hands its process over to `python -m worker.headless`
    with execv (app/cli.py): a real exec would start a fresh interpreter that imports torch again (the ~6 s
    of CPU the zygote exists to save), so a `python -m` exec runs that module in this process, as the zygote
    runs its first. Anything else is a real exec."""
    argv = list(argv)
    if path == sys.executable and argv[1:2] == ["-m"] and len(argv) >= 3:
        raise _ExecModule(argv[2], argv[3:])
    _real_execv(path, argv)


def _child(request: dict) -> None:  # type: ignore[type-arg]
    """In the forked child: become the requested process, as `python -m <module> <args>` would start."""
    import runpy

    import torch

    status = 1
    try:
        _die_with_parent(signal.SIGKILL)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        os.dup2(os.open(request["log"], flags, 0o644), 1)
        os.dup2(os.open(request.get("stderr") or request["log"], flags, 0o644), 2)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        torch.set_num_threads(int(request["env"].get("OMP_NUM_THREADS", "1")))
        if request["cwd"] not in sys.path:
            sys.path.insert(0, request["cwd"])
        module, args = request["module"], request["args"]
        os.execv = _exec_as_module  # type: ignore[assignment]
        while True:
            sys.argv = [module, *args]
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            except _ExecModule as handover:
                module, args = handover.module, handover.args
                continue
            break
        status = 0
    except SystemExit as exc:
        from worker.exiting import status_of  # the status (and message) python -m would end with

        status = status_of(exc.code)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


class Forked:
    """A forked child, with the parts of subprocess.Popen's interface the tests use."""

    def __init__(self, pid: int, status: Path, args: list[str]) -> None:
        self.pid = pid
        self.args = args
        self.returncode: int | None = None
        self._status = status

    def poll(self) -> int | None:
        if self.returncode is None and self._status.exists():
            self.returncode = int(self._status.read_text())
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from tests.support.forking import serve; serve()"],
            cwd=REPO,
            env={**env, "PYTHONPATH": str(REPO)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.lock = threading.Lock()
        self.statuses = Path(tempfile.mkdtemp(prefix="segue-zygote-"))
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()
        if ready.strip() != b"ready":
            raise RuntimeError(f"the worker zygote did not start: {ready!r}")

    def spawn(
        self,
        module: str,
        args: list[str],
        env: dict[str, str],
        cwd: Path,
        log: Path,
        stderr: Path | None = None,
    ) -> Forked:
        status = self.statuses / f"{time.monotonic_ns()}.status"
        request = {"module": module, "args": args, "env": env, "cwd": str(cwd), "log": str(log)}
        request["stderr"] = None if stderr is None else str(stderr)
        with self.lock:
            assert self.process.stdin is not None and self.process.stdout is not None
            self.process.stdin.write(json.dumps(request | {"status": str(status)}).encode() + b"\n")
            self.process.stdin.flush()
            pid = int(self.process.stdout.readline())
        return Forked(pid, status, [module, *args])

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


#: One zygote per set of import-time values in this test process (in practice one).
_zygotes: dict[tuple[str | None, ...], Zygote] = {}


def spawn(
    module: str, args: list[str], env: dict[str, str], cwd: Path, log: Path, stderr: Path | None = None
) -> Forked:
    """`python -m module args` with env, cwd and output to log (standard error too, unless `stderr` is
    given), forked from a zygote started with the same import-time environment."""
    key = tuple(env.get(name) for name in IMPORT_TIME_ENV)
    zygote = _zygotes.get(key)
    if zygote is None or zygote.process.poll() is not None:
        zygote = _zygotes[key] = Zygote(env)
        atexit.register(zygote.close)
    return zygote.spawn(module, args, env, cwd, log, stderr)


def run(
    module: str, args: list[str], env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """subprocess.run([python, "-m", module, *args], capture_output=True, text=True), forked."""
    with tempfile.TemporaryDirectory(prefix="segue-run-") as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        process = spawn(module, args, env, cwd, out, err)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        return subprocess.CompletedProcess(
            [sys.executable, "-m", module, *args],
            code,
            out.read_text(errors="replace"),
            err.read_text(errors="replace"),
        )
