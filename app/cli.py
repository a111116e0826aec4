"""`segue` command: migrate the database, run the web server (with an embedded worker), run a worker,
or render a project file headless (`segue render`)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from core.registry import model_location
from infra.config import REPO_ROOT, Settings, get_settings

log = logging.getLogger("segue")


def migrate(database_url: str | None = None) -> None:
    """Bring the database to the newest schema (Alembic upgrade head)."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.attributes["configure_logging"] = False
    if database_url:
        config.attributes["database_url"] = database_url
    command.upgrade(config, "head")


def prepare_model() -> None:
    """Build the offline tiny model once, before the first render needs it (torch lives in the worker)."""
    settings = get_settings()
    if settings.model != "segue-tiny":
        return
    target = Path(model_location("segue-tiny", settings.models_folder))
    if (target / "model_index.json").is_file():
        return
    log.info("building the offline tiny model in %s", target)
    subprocess.run([sys.executable, "-m", "engine.cli", "build-tiny", str(target)], check=True)


def worker_command(settings=None, name: str = "segue") -> list[str]:  # type: ignore[no-untyped-def]
    s = settings or get_settings()
    return [
        sys.executable,
        "-m",
        "worker",  # Celery's command line, without the interpreter's slow teardown (worker/__main__.py)
        "-A",
        "worker.celery_app",
        "worker",
        "--pool",
        "solo",
        "--concurrency",
        "1",
        "--queues",
        s.render_queue,
        "--loglevel",
        "INFO",
        "--hostname",
        f"{name}@%h",
    ]


def run(args: argparse.Namespace) -> None:
    import uvicorn

    settings = get_settings()
    # Errors a person can act on, before anything starts (no "Segue is up" followed by a crash).
    _check_owner_secret_first(settings)
    _check_port(settings.host, settings.port)
    _check_writable(settings.data_dir)
    owner_notice = check_owner_secret(settings)
    _prepare_store()
    migrate()
    prepare_model()
    worker = None
    if settings.embedded_worker:
        command = worker_command(settings, "segue-embedded")
        worker = subprocess.Popen(command, cwd=REPO_ROOT, preexec_fn=die_with_parent)
        # uvicorn re-raises SIGTERM after its graceful shutdown; make that an exit that runs `finally`.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(
        f"Segue is up: http://{settings.host}:{settings.port}  (data in {settings.data_dir.resolve()})",
        flush=True,
    )
    if owner_notice:
        print(owner_notice, flush=True)
    try:
        uvicorn.run(
            "app.main:create_app", factory=True, host=settings.host, port=settings.port, log_level="info"
        )
    finally:
        if worker is not None:
            _stop(worker)


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SystemExit(
                f"port {port} is in use on {host} ({exc.strerror}); set SEGUE_PORT to a free port"
            ) from None


def _check_owner_secret_first(settings: Settings) -> None:
    from app.security import refuse_public_without_secret

    refuse_public_without_secret(settings)  # before the port: an address Segue must not serve on as it is


def check_owner_secret(settings: Settings) -> str | None:
    """Off loopback the owner signs in (docs/security.md). A public address needs SEGUE_OWNER_TOKEN set;
    on a private one (a LAN, a container's every-interface bind) a secret is made at first start and
    printed once. Returns what to tell the person, or None on loopback."""
    from app.security import (
        ensure_owner_secret,
        owner_required,
        owner_token_path,
        refuse_public_without_secret,
    )

    if not owner_required(settings):
        return None
    refuse_public_without_secret(settings)
    secret, created = ensure_owner_secret(settings)
    if created:
        return (
            f"Owner secret (sign in at /signin; kept in {owner_token_path(settings)}): {secret}\n"
            "Set SEGUE_OWNER_TOKEN to choose your own."
        )
    where = "SEGUE_OWNER_TOKEN" if os.environ.get("SEGUE_OWNER_TOKEN") else str(owner_token_path(settings))
    return f"The owner signs in at /signin with the secret in {where}."


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise SystemExit(
            f"the data directory {folder.resolve()} is not writable ({exc.strerror}); "
            "set SEGUE_DATA_DIR to a directory Segue may write to"
        ) from None


def _prepare_store() -> None:
    from infra.storage import StoreError, prepare_store

    try:
        prepare_store()
    except StoreError as exc:
        raise SystemExit(f"{exc}; check SEGUE_FRAME_STORE and the SEGUE_S3_* settings") from None


def die_with_parent() -> None:
    """Linux: a child process (the embedded worker, a benchmark's worker) gets SIGTERM even if its parent dies
    without cleaning up (kill -9), so none is left orphaned. For Popen's preexec_fn."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _check_settings() -> None:
    """A bad SEGUE_* value is named with what is allowed, instead of a traceback."""
    from pydantic import ValidationError

    try:
        get_settings()
    except ValidationError as exc:
        lines = [
            (f"SEGUE_{str(error['loc'][0]).upper()}: " if error["loc"] else "")
            + str(error["msg"]).removeprefix("Value error, ")
            for error in exc.errors()
        ]
        raise SystemExit("Segue's settings are not valid:\n  " + "\n  ".join(lines)) from None


def render_command(args: list[str]) -> list[str]:
    """`segue render ...` is worker/headless.py in its own process: the web side never imports the engine."""
    return [sys.executable, "-m", "worker.headless", *args]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["render"]:  # everything after `render` is the headless renderer's (its own --help)
        os.execv(sys.executable, render_command(argv[1:]))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="segue", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="migrate, then serve the web app with an embedded worker (SEGUE_* settings)")
    sub.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    sub.add_parser("prepare-model", help="build the offline tiny model if it is the configured model")
    sub.add_parser("worker", help="run a render worker (one per GPU)")
    sub.add_parser(
        "render", help="render a project file headless: segue render project.json --out film.mp4 (see --help)"
    )
    args = parser.parse_args(argv)
    _check_settings()
    if args.command == "run":
        run(args)
    elif args.command == "migrate":
        _prepare_store()
        migrate()
    elif args.command == "prepare-model":
        prepare_model()
    elif args.command == "worker":
        _prepare_store()
        os.execv(sys.executable, worker_command())


if __name__ == "__main__":
    main()
