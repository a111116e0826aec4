"""`segue render project.json --out film.mp4`: render a project file without the web app or a database.

The same path as a render in the studio: core.timeline plans the frames and keys them, the engine renders
them coarse to fine in batches, and worker/encode.py writes the files the export task writes. Frames are
stored under their content key; with `--cache-dir` pointing at a frame store (e.g. the studio's
data/frames) frames that already exist there are reused, and new ones are kept for next time.

    python -m worker.headless project.json --out city-to-forest.mp4 --gif city.gif --frames-dir frames/
"""

from __future__ import annotations

import argparse
import base64
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from core.params import PROBED_SPACINGS, RenderSnapshot
from core.registry import TINY_MODEL, model_location, model_revision
from core.timeline import FramePlan, frame_keys, render_order, shared_weight
from infra.config import get_settings
from infra.storage import LocalFrameStore
from services import noise_paths, projects
from services.errors import FieldError, validation_errors
from services.exports import DEFAULT_FPS, DEFAULT_HOLD_SECONDS, FORMATS, ExportOptions
from worker.encode import Soundtrack, SourceFrame, encode, format_for_path, frame_name
from worker.images import png

PROG = "segue render"


class Bar:
    """A progress bar on stderr: redrawn in place on a terminal, one line per step otherwise (logs)."""

    def __init__(self, stream: TextIO, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self.started = time.perf_counter()
        self.last_line = 0.0

    def show(self, label: str, done: float, total: float, note: str = "") -> None:
        if self.quiet:
            return
        fraction = done / total if total else 1.0
        filled = round(28 * fraction)
        seconds = time.perf_counter() - self.started
        shown = note or f"{fraction:4.0%}"
        text = f"{label:<10} [{'#' * filled}{'.' * (28 - filled)}] {shown}  {seconds:5.1f} s"
        if self.tty:
            self.stream.write("\r" + text + ("\n" if fraction >= 1 else ""))
        elif fraction >= 1 or seconds - self.last_line >= 1.0:  # a log gets a line a second at most
            self.last_line = seconds
            self.stream.write(text + "\n")
        self.stream.flush()

    def say(self, message: str) -> None:
        if not self.quiet:
            self.stream.write(message + "\n")
            self.stream.flush()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Render a Segue project file (GET /api/transitions/<id>/project) headless, "
        "with the same engine as the studio, and write a video, animation, zip or contact sheet.",
    )
    parser.add_argument("project", help="the project file (.segue.json), or - to read it from stdin")
    parser.add_argument(
        "--out",
        action="append",
        default=[],
        metavar="FILE",
        help="write FILE; its extension picks the format: .mp4 .webm .gif .webp .zip, "
        ".png (contact sheet). May be given more than once",
    )
    parser.add_argument(
        "--gif", action="append", default=[], metavar="FILE", help="also write an animated GIF"
    )
    parser.add_argument("--frames-dir", metavar="DIR", help="also write every frame as DIR/0007_t0.3043.png")
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="a frame store to reuse and keep frames in (e.g. the studio's data/frames); default: none",
    )
    parser.add_argument(
        "--fps",
        type=int,
        default=None,
        help=f"frames per second (default: the project's, else {DEFAULT_FPS})",
    )
    parser.add_argument(
        "--inbetweens",
        choices=("none", "flow"),
        default="none",
        help="flow: synthesize frames between rendered ones by optical flow to reach --fps",
    )
    parser.add_argument(
        "--audio",
        type=Path,
        metavar="FILE",
        help="the project's soundtrack file (default: its name beside the project file, or the frame store)",
    )
    parser.add_argument("--hold-keyframes", action="store_true", help="show the frames at keyframes longer")
    parser.add_argument(
        "--hold-seconds",
        type=float,
        default=DEFAULT_HOLD_SECONDS,
        help=f"how long a held keyframe shows (default {DEFAULT_HOLD_SECONDS:g})",
    )
    parser.add_argument("--loop", action="store_true", help="ping-pong: play forward, then backward")
    parser.add_argument(
        "--model", help="render with this model instead of the project's (a name or a directory)"
    )
    parser.add_argument(
        "--models-dir", type=Path, help="where built-in models live (default SEGUE_MODELS_DIR)"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1 … (default SEGUE_WORKER_DEVICE)")
    parser.add_argument("--batch-size", type=int, help="frames per engine call (default: the project's)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    args.outputs = [Path(p) for p in [*args.out, *args.gif]]
    if not args.outputs and not args.frames_dir:
        parser.error("nothing to write: give --out FILE, --gif FILE or --frames-dir DIR")
    for path in args.outputs:
        try:
            format_for_path(path)
        except ValueError as exc:
            parser.error(str(exc))
    return args


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read(projects.MAX_PROJECT_BYTES + 1)
    return Path(source).read_bytes()


def _fail(message: str, code: int = 2) -> int:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = get_settings()
    bar = Bar(sys.stderr, quiet=args.quiet)

    # 1. The project, checked like an import (unknown fields, limits, the timeline)
    try:
        project = projects.load(_read(args.project))
    except OSError as exc:
        return _fail(f"cannot read {args.project}: {exc.strerror or exc}")
    except ValidationError as exc:
        lines = [f"  {e['field']}: {e['msg']}" for e in validation_errors(list(exc.errors()))]  # type: ignore[arg-type]
        return _fail(f"{args.project} is not a valid project file:\n" + "\n".join(lines))
    except ValueError as exc:
        return _fail(f"{args.project}: {exc}")
    try:
        options = [
            ExportOptions(
                format=format_for_path(path),  # type: ignore[arg-type]
                fps=args.fps or project.settings.fps,
                inbetweens=args.inbetweens,
                hold_keyframes=args.hold_keyframes,
                hold_seconds=args.hold_seconds,
                loop=args.loop,
            )
            for path in args.outputs
        ]
        model = args.model or project.model
        render_settings = project.render_settings(model)
    except ValidationError as exc:
        return _fail("; ".join(e["msg"] for e in validation_errors(list(exc.errors()))))  # type: ignore[arg-type]

    # 2. Plan and key the frames exactly as the studio does
    models_dir = args.models_dir or settings.models_folder
    revision = model_revision(model, models_dir)
    if not revision and model == TINY_MODEL:  # built on first use: build it now, its revision keys the frames
        from engine.tiny_model import ensure_tiny_model

        ensure_tiny_model(Path(model_location(model, models_dir)))
        revision = model_revision(model, models_dir)
    if project.model_revision and revision and revision != project.model_revision:
        bar.say(
            f"warning: the project was made with revision {project.model_revision} of {project.model}; "
            f"here it is {revision}: frames will differ from the original's"
        )
    snapshot = project.snapshot(model, revision)
    track = None
    if project.audio is not None:  # the soundtrack: the sound of the videos, and spacing "audio"
        track = _soundtrack(project.audio, args)
        if track is None:
            return _fail(
                f"the project's soundtrack {project.audio.name!r} was not found: give it with --audio FILE "
                "or put it beside the project file"
            )
        if snapshot.spacing == "audio":
            from services import audio

            analysis = audio.analyse(audio.check_upload(track.read_bytes()).samples)
            energy = audio.frame_energies(analysis, snapshot.frames, snapshot.fps, snapshot.audio_offset)
            snapshot = snapshot.model_copy(update={"audio_energy": energy})
    if snapshot.spacing in PROBED_SPACINGS:
        return _fail(
            f"spacing '{snapshot.spacing}' places the frames from a probe render, which segue render does "
            "not run yet; render this project in the studio, or set another spacing"
        )
    try:
        plans = noise_paths.plan(snapshot)  # the studio's planner: spacing, keyframe settings, sharing
    except FieldError as exc:
        return _fail(f"{exc.field}: {exc.message}")
    pixels = snapshot.pixels()
    keys = frame_keys(pixels, plans, revision)

    scratch = None
    if args.cache_dir:
        store = LocalFrameStore(Path(args.cache_dir))
    else:
        scratch = tempfile.TemporaryDirectory(prefix="segue-render-")
        store = LocalFrameStore(Path(scratch.name))
    try:
        # Keyframe images (docs/image-endpoints.md): their PNG bytes (checked against their hashes when the
        # file was loaded) go into the frame store, where the image path reads them as the studio's does.
        for sha, text in project.images.items():
            if not store.exists(sha):
                store.write(sha, base64.b64decode(text))
        # 3. Render what is not stored yet, coarse to fine, in batches; a frame shown twice (a hold) once
        todo, seen = [], set()
        for index in render_order(len(plans)):
            if keys[index] not in seen and not store.exists(keys[index]):
                todo.append(index)
            seen.add(keys[index])
        # Trajectory sharing: in-betweens start from their anchors' latents, so the anchors go first.
        todo.sort(key=lambda i: plans[i].start_step > 0)
        reused = len(plans) - len(todo)
        if todo:
            batch_size = args.batch_size or render_settings.batch_size
            device = args.device or settings.worker_device
            bar.say(f"loading {model} on {device}; {len(todo)} frames to render, {reused} reused")
            threads = settings.torch_threads
            _render(model, models_dir, device, threads, batch_size, snapshot, plans, keys, todo, store, bar)
        else:
            bar.show("frames", len(plans), len(plans), f"{len(plans)}/{len(plans)} reused")
        sources = [SourceFrame(p.index, p.t, store.path(k)) for p, k in zip(plans, keys, strict=True)]

        # 4. Write the frames and the files
        if args.frames_dir:
            folder = Path(args.frames_dir)
            folder.mkdir(parents=True, exist_ok=True)
            for source in sources:
                shutil.copyfile(source.path, folder / frame_name(source.index, source.t, len(sources)))
            bar.say(f"wrote {len(sources)} frames to {folder}")
        positions = [k.position for k in project.keyframes]
        for path, option in zip(args.outputs, options, strict=True):
            sound = (
                Soundtrack(track, snapshot.audio_offset) if track and FORMATS[option.format].sound else None
            )
            encode(
                sources,
                path,
                option,
                positions,
                title=project.title,
                on_progress=partial(bar.show, path.name[:10], total=1.0),
                threads=settings.torch_threads,
                sound=sound,
                source_fps=snapshot.fps,
            )
            bar.say(f"wrote {path} ({path.stat().st_size / 1024:.1f} kB)")
    finally:
        if scratch is not None:
            scratch.cleanup()
    bar.say(
        f"done: {len(plans)} frames ({len(todo)} rendered, {reused} reused) "
        f"in {time.perf_counter() - bar.started:.1f} s"
    )
    return 0


def _soundtrack(audio: projects.ProjectAudio, args: argparse.Namespace) -> Path | None:
    """The project's soundtrack file: --audio, its name beside the project file, or the frame store."""
    if args.audio:
        return Path(args.audio) if Path(args.audio).is_file() else None
    if args.project != "-":
        beside = Path(args.project).parent / Path(audio.name).name
        if beside.is_file():
            return beside
    from infra.storage import get_store

    for store in [LocalFrameStore(Path(args.cache_dir))] if args.cache_dir else []:
        if store.has_audio(audio.key):
            return store.audio_path(audio.key)
    try:
        data = get_store().read_audio(audio.key)
    except (FileNotFoundError, OSError):
        return None
    copy = Path(tempfile.mkdtemp(prefix="segue-audio-")) / audio.key
    copy.write_bytes(data)
    return copy


def _render(
    model: str,
    models_dir: Path,
    device: str,
    threads: int,
    batch: int,
    snapshot: RenderSnapshot,
    plans: Sequence[FramePlan],
    keys: Sequence[str],
    todo: Sequence[int],
    store: LocalFrameStore,
    bar: Bar,
) -> None:
    """Render the frames `todo` (indices into plans) on the engine and store each under its key; frames
    that depend on a keyframe image through the studio's image path (worker/keyframe_images.py)."""
    import torch

    from engine.pipeline import get_engine
    from worker import keyframe_images

    torch.set_num_threads(threads)
    engine = get_engine(model, models_dir=models_dir, device=device)
    total = len(plans)
    done = total - len(todo)
    bar.show("frames", done, total, f"{done}/{total} frames")
    shared_steps = sorted({plan.start_step for plan in plans if plan.start_step > 0})
    for start in range(0, len(todo), batch):
        indices = todo[start : start + batch]
        requests = [request_of(plans[i], plans) for i in indices]
        rows = keyframe_images.image_frames(snapshot, [plans[i] for i in indices])
        images = keyframe_images.render(
            engine,
            snapshot,
            requests,
            rows,
            lambda plain: engine.render(snapshot.pixels(), plain, keep_latents_at=shared_steps),
            store=store,
        )
        for index, image in zip(indices, images, strict=True):
            store.write(keys[index], png(image))
        done += len(indices)
        bar.show("frames", done, total, f"{done}/{total} frames")


def request_of(plan: FramePlan, plans: Sequence[FramePlan]) -> Any:
    """The engine's request for a planned frame (engine.probe.request_of) with its keyframes' frames and,
    for a shared in-between, where it starts."""
    from engine.pipeline import SharedStart
    from engine.probe import request_of as inputs_of

    request = inputs_of(plan)
    if plan.ends is not None:  # attention interpolation: the keyframes' frames, as requests too
        request = replace(request, ends=tuple(request_of(end, plans) for end in plan.ends))
    if plan.start_step > 0 and plan.anchor_a is not None and plan.anchor_b is not None:
        anchor_a, anchor_b = (request_of(plans[i], plans) for i in (plan.anchor_a, plan.anchor_b))
        start = SharedStart(anchor_a, anchor_b, shared_weight(plan, plans), plan.start_step)
        request = replace(request, start=start)
    return request


if __name__ == "__main__":
    from worker.exiting import exit_now

    exit_now(main())  # the files are written and closed: no need to wait for torch's teardown
