"""The loop, worker side: probe fixes for a problem, and run the autopilot's rounds.

A Fix (kind "fix") probes the candidate fixes of one problem and stores them as proposals, best first.
An autopilot (kind "autopilot") is a chain of steps, each one task under a lease (worker/lease.py):

  0. resume: a step that died between its round's edit and that edit's render finds the edit by the
     tag its history line carries and renders it (never applying a second edit).
  1. evaluate: the previous round's render is finished; score it. A round that did not lower the worst
     problem's severity is undone (history undo of exactly its edit) and the run stops.
  2. stop rules: max_rounds rounds run, the target smoothness reached, the frame budget spent, or no
     problem a fix can take on.
  3. propose: for the worst problem, plan each candidate fix as a render would, probe-render the frames it
     changes nearest the problem's t (stored under their frame keys, so the fix's render reuses them) and
     predict the largest scorer change across that stretch (`propose`).
  4. apply the best-predicted fix that fits the budget as one ordinary edit (its history line names the
     problem) and start a render (only the changed frames compute); the run `waits` without a lease until
     that render ends, whose end sends the next step (services/rendering.finish_render).

Probes use the render's own frames' stored scores and the same scorer as the confusion map, so
"predicted" and the map agree on what a change is.
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

from sqlalchemy import select

from core import problems as grouping
from core.params import RenderSnapshot
from core.scores import distance
from core.statuses import Status
from core.timeline import POSITION_TOLERANCE, TimelineKeyframe, keys_of, per_segment
from infra.db import new_session
from infra.queue import send_autofix
from infra.storage import get_store
from infra.tables import Autofix, Edit, Render, Transition, utcnow
from services import autofix as service
from services import rendering, scores
from services.errors import FieldError
from services.history import Actor, Conflict, undo
from services.jobs import AUTOFIXES
from services.presenters import latest_render
from worker import lease
from worker.images import png, thumbnail

log = logging.getLogger(__name__)

#: Problems a fix can take on (a plateau is the other side of a jump; spacing answers it, not an edit).
FIXABLE = (grouping.JUMP, grouping.BACKWARDS, grouping.NEITHER)
#: Bridge prompts probed per problem; the best two are kept beside "more frames" (three fixes at most).
BRIDGES_PROBED = 2
BRIDGES_KEPT = 2
#: Frames rendered to probe one fix at most: the changed frames nearest its t (they are reused on apply).
MAX_PROBES = 8
#: A fix must be predicted to lower the stretch's largest change by at least this fraction.
MIN_GAIN = 0.02


def run_autofix(autofix_id: int) -> dict[str, object]:
    return lease.run_job(AUTOFIXES, autofix_id, f"autofix {autofix_id}", _step, {"step": "dropped"})


class _Run:
    """This claim's view of the row: every write checks the lease (LeaseLost once cancelled or taken)."""

    def __init__(self, autofix_id: int, token: str) -> None:
        self.id, self.token = autofix_id, token

    def set(self, **values: Any) -> None:
        lease.write_job(AUTOFIXES, self.id, self.token, **values)

    def end(self, status: str, stopped_because: str, **values: Any) -> None:
        values.setdefault("phase", stopped_because)
        if not lease.finish_job(
            AUTOFIXES,
            self.id,
            self.token,
            status,
            stopped_because=stopped_because,
            finished_at=utcnow(),
            **values,
        ):
            raise lease.LeaseLost(f"autofix {self.id} was cancelled or taken over")


def _step(autofix_id: int, token: str) -> dict[str, object]:
    with new_session() as db:
        if not lease.claim_job(db, AUTOFIXES, autofix_id, token):
            return {"step": "nothing to do"}
        row = db.get(Autofix, autofix_id)
        if row is None:
            return {"step": "gone"}
        kind = row.kind
    run = _Run(autofix_id, token)
    try:
        if kind == "fix":
            return _fix(run)
        return _autopilot(run)
    except lease.LeaseLost:
        raise
    except Exception as exc:
        log.exception("autofix %s failed", autofix_id)
        run.end(Status.FAILED, f"failed: {type(exc).__name__}: {exc}", error=f"{type(exc).__name__}: {exc}")
        return {"step": "failed"}


# ---------------------------------------------------------------- one problem's fixes


def _fix(run: _Run) -> dict[str, object]:
    with new_session() as db:
        row = db.get(Autofix, run.id)
        assert row is not None
        render = db.get(Render, row.render_id) if row.render_id else None
        transition = db.get(Transition, row.transition_id)
        if render is None or transition is None:
            run.end(Status.FAILED, "the render it was asked for is gone", error="render deleted")
            return {"step": "failed"}
        problem = next((p for p in scores.render_problems(db, render) if p.id == row.problem_id), None)
        if problem is None:
            run.end(
                Status.FAILED, f"render {render.id} no longer shows {row.problem_id}", error="problem gone"
            )
            return {"step": "failed"}
        run.set(phase=f"probing fixes for {service.describe_problem(problem.id)}")
        proposals, probes = propose(db, run, transition, render, problem, budget=None)
    if not proposals:
        run.end(Status.DONE, "no fix could be probed for this problem", frames_spent=probes, proposals=[])
        return {"step": "done", "proposals": 0}
    helpful = [p for p in proposals if p["predicted"] < p["current"]]
    because = (
        f"{len(proposals)} fixes probed; {len(helpful)} predicted to lower the change across the stretch"
    )
    run.end(Status.DONE, because, frames_spent=probes, proposals=proposals)
    return {"step": "done", "proposals": len(proposals)}


def _stretch(problem: grouping.Problem, last: int) -> tuple[int, int]:
    """The frames on both sides of the problem: a jump's pair, or a run with one frame beyond each end."""
    if problem.kind == grouping.JUMP:
        return problem.frames
    return max(0, problem.frames[0] - 1), min(last, problem.frames[1] + 1)


def _more_frames(
    snapshot: RenderSnapshot, keys: list[TimelineKeyframe], transition: Transition, render: Render, left: int
) -> dict[str, Any] | None:
    """The "more frames here" fix, when the new frames fall between the existing ones (so every existing
    frame is reused): one segment on a plain grid (frames n -> 2n - 1), or per-segment frame counts (the
    segment's count doubled). None where more frames would move existing ones."""
    frames = sorted(render.frames, key=lambda f: f.index)
    if any(k.hold_frames for k in keys) or snapshot.spacing in ("perceptual", "adaptive", "audio"):
        return None
    if not per_segment(keys):
        if len(keys) != 2:
            return None
        count = 2 * snapshot.frames - 1
        return {
            "frames": count,
            "keyframe_id": None,
            "cost": count - snapshot.frames,
            "snapshot": snapshot.model_copy(update={"frames": count}),
        }
    segment = frames[left].segment
    start = keys[segment]
    if start.cut:
        return None  # a cut's frames all show its keyframe: more of them change nothing
    current = start.frames or sum(1 for f in frames if f.segment == segment)
    row = next(
        (k for k in transition.keyframes if abs(k.position - start.position) <= POSITION_TOLERANCE), None
    )
    if row is None or current < 1:
        return None
    shots = [
        k.model_copy(update={"frames": 2 * current})
        if abs(k.position - start.position) <= POSITION_TOLERANCE
        else k
        for k in snapshot.keyframes
    ]
    return {
        "frames": 2 * current,
        "keyframe_id": row.id,
        "cost": current,
        "snapshot": snapshot.model_copy(update={"keyframes": shots}),
    }


def _window(ts: list[float], low: float, high: float) -> list[int]:
    return [i for i, t in enumerate(ts) if low - 1e-9 <= t <= high + 1e-9]


def propose(
    db: Any,
    run: _Run,
    transition: Transition,
    render: Render,
    problem: grouping.Problem,
    budget: int | None,
) -> tuple[list[dict[str, Any]], int]:
    """Probe candidate fixes for `problem` of `render`; (proposals best first, frames rendered to probe).

    Each candidate is a changed timeline (a bridge keyframe at the problem's t; more frames there). Its
    frames are planned and keyed exactly as a render would; the frames it changes nearest t (MAX_PROBES at
    most) are rendered at full settings, scored, and stored under their frame keys (applying the fix
    reuses them). `predicted` is the largest scorer change between neighbours over those frames and the
    unchanged frames beside them; `current` the same over that stretch of the render as it is.
    `budget`: frames left to spend; fixes whose re-render would cost more are not proposed."""
    from core.params import KeyframeSnapshot
    from core.timeline import frame_keys
    from engine.pipeline import get_engine
    from infra.config import get_settings
    from services.noise_paths import plan as plan_frames_of
    from worker.headless import request_of
    from worker.scoring import score_and_store, scorers_for
    from worker.suggestions import bridge_candidates

    settings = get_settings()
    found, _ = scores.shape(db, render)
    if found is None:
        return [], 0
    scorer_name = found.scorer
    snapshot = render.snapshot
    keys = keys_of(snapshot)
    frames = sorted(render.frames, key=lambda f: f.index)
    left, right = _stretch(problem, len(frames) - 1)
    if not any(f.change is not None for f in found.frames):
        return [], 0
    segment_cost = sum(1 for f in frames if f.segment == problem.segment)

    engine = get_engine(snapshot.model, models_dir=settings.models_dir, device=settings.worker_device)
    scorer = next((s for s in scorers_for(engine) if s.name == scorer_name), None)
    if scorer is None:
        return [], 0
    candidates: list[dict[str, Any]] = []

    # (a) bridges: a keyframe with a suggested prompt at the problem's t
    t = problem.t
    if all(abs(t - k.position) > 2 * POSITION_TOLERANCE for k in keys) and (
        budget is None or segment_cost <= budget
    ):
        a, b = keys[problem.segment], keys[problem.segment + 1]
        details: dict[str, Any] = {}
        seed = (snapshot.seed * 1_000_003 + run.id) % (2**31)
        kept, _rejected, _proposed = bridge_candidates(
            engine,
            snapshot.model,
            a.prompt,
            b.prompt,
            BRIDGES_PROBED,
            BRIDGES_PROBED,
            seed,
            [k.prompt for k in keys],
            details,
        )
        for candidate in kept[:BRIDGES_PROBED]:
            added = KeyframeSnapshot(position=t, prompt=candidate.prompt)
            shots = sorted([*snapshot.keyframes, added], key=lambda k: k.position)
            candidates.append(
                {
                    "kind": "bridge",
                    "label": f"Insert “{candidate.prompt}” at t = {t:.3f}",
                    "prompt": candidate.prompt,
                    "position": round(t, 6),
                    "cost": segment_cost,
                    "snapshot": snapshot.model_copy(update={"keyframes": shots}),
                }
            )

    # (b) more frames in the stretch (a jump: the in-between is what it misses)
    if problem.kind == grouping.JUMP:
        more = _more_frames(snapshot, keys, transition, render, left)
        if more is not None and (budget is None or more["cost"] <= budget):
            where = "the transition" if more["keyframe_id"] is None else "this segment"
            candidates.append(
                {
                    "kind": "frames",
                    "label": f"More frames: {where} gets {more['frames']} (+{more['cost']}, existing reused)",
                    "position": round(t, 6),
                    "frames": more["frames"],
                    "keyframe_id": more["keyframe_id"],
                    "cost": more["cost"],
                    "snapshot": more["snapshot"],
                }
            )

    # Plan each candidate as a render would; the frames it changes nearest t are probed (once per key)
    pixels = snapshot.pixels()
    old_keys = {f.key for f in frames}
    stored = scores.stored_scores(db, scorer_name, list(old_keys))
    embeddings: dict[str, list[float]] = {k: list(v.embedding) for k, v in stored.items()}
    todo: dict[str, tuple[Any, list[Any]]] = {}
    planned = []
    for candidate in candidates:
        try:
            plans = plan_frames_of(candidate["snapshot"])
        except FieldError:
            continue
        keyed = frame_keys(pixels, plans, snapshot.model_revision)
        changed = sorted(
            (i for i, k in enumerate(keyed) if k not in old_keys), key=lambda i: abs(plans[i].t - t)
        )
        candidate["cost"] = len({keyed[i] for i in changed})  # what its render computes, probes included
        if budget is None or candidate["cost"] <= budget:
            planned.append((candidate, plans, keyed, changed))
    # Probes share a third of the budget (the rest pays the chosen fix's render): each candidate probes the
    # changed frames nearest t, MAX_PROBES at most
    share = MAX_PROBES if budget is None else (budget // 3) // max(1, len(planned))
    each = max(1, min(MAX_PROBES, share))
    for candidate, plans, keyed, changed in planned:
        probe = set(changed[:each])
        if not probe:
            continue
        # The probed frames and the unchanged frames next to them: a changed frame not probed ends it
        low_i, high_i = max(0, min(probe) - 1), min(len(plans) - 1, max(probe) + 1)
        window = [i for i in range(low_i, high_i + 1) if i in probe or keyed[i] in old_keys]
        candidate.update(
            keys=[keyed[i] for i in window],
            probed={keyed[i] for i in probe},
            near_key=keyed[min(probe, key=lambda i: abs(plans[i].t - t))],
            span=(plans[window[0]].t, plans[window[-1]].t),
        )
        for i in probe:
            todo.setdefault(keyed[i], (plans[i], plans))
    candidates = [c for c in candidates if c.get("keys")]
    images: dict[str, Any] = {}
    keys_todo = list(todo)
    store = get_store()
    batch = max(1, snapshot.batch_size)
    for start in range(0, len(keys_todo), batch):
        chunk = keys_todo[start : start + batch]
        run.set(phase=f"probing fixes: frames {start + 1}–{start + len(chunk)} of {len(keys_todo)}")
        rendered = engine.render(pixels, [request_of(todo[k][0], todo[k][1]) for k in chunk])
        prompts = [(todo[k][0].prompt_a, todo[k][0].prompt_b) for k in chunk]
        values = scorer.score(rendered, prompts)
        for key, image, value in zip(chunk, rendered, values, strict=True):
            images[key] = image
            embeddings[key] = value.embedding.tolist()
            # A probe is the very frame the fix's render needs: stored (and scored) under its frame key,
            # so applying the fix reuses it instead of rendering it again
            store.write(key, png(image))
        score_and_store(engine, rendered, chunk, prompts)

    proposals = []
    ts = [f.t for f in frames]
    for number, candidate in enumerate(candidates):
        sequence = [embeddings[k] for k in candidate["keys"] if k in embeddings]
        if len(sequence) < 2:
            continue
        predicted = max(distance(scorer_name, x, y) for x, y in zip(sequence, sequence[1:], strict=False))
        span = _window(ts, *candidate["span"])
        before = [found.frames[i].change for i in span[:-1]]
        current = max([c for c in before if c is not None], default=0.0)
        thumb = None
        near = images.get(candidate["near_key"])
        if near is not None:
            thumb = hashlib.sha256(f"autofix-probe\n{candidate['near_key']}".encode()).hexdigest()
            store.write(thumb, png(thumbnail(near)))
        hidden = ("snapshot", "keys", "near_key", "span")
        proposals.append(
            {
                **{k: v for k, v in candidate.items() if k not in hidden},
                "probed": sorted(candidate["probed"]),
                "id": f"{candidate['kind']}-{number}",
                "predicted": round(float(predicted), 5),
                "current": round(float(current), 5),
                "thumbnail_key": thumb,
            }
        )
    bridges = sorted((p for p in proposals if p["kind"] == "bridge"), key=lambda p: p["predicted"])
    rest = [p for p in proposals if p["kind"] != "bridge"]
    return sorted(bridges[:BRIDGES_KEPT] + rest, key=lambda p: p["predicted"]), len(keys_todo)


# ---------------------------------------------------------------- the autopilot


def summary_of(db: Any, render: Render) -> dict[str, Any]:
    """What a round records of a render: the map's summary and its worst problem's severity."""
    found, _ = scores.shape(db, render)
    grouped = grouping.group(found.frames) if found else []
    summary = found.summary if found else None
    return {
        "render_id": render.id,
        "scorer": found.scorer if found else None,
        "smoothness": round(summary.smoothness, 4) if summary else None,
        "max_jump": round(summary.max_jump, 5) if summary else None,
        "monotonicity": round(summary.monotonicity, 4) if summary else None,
        "worst": round(grouping.worst(grouped), 4),
        "problems": len(grouped),
        "frames_computed": render.frames_computed,
    }


def _problem_dict(problem: grouping.Problem) -> dict[str, Any]:
    return scores.problem_out(problem).model_dump()


def _tag(autofix_id: int, number: int) -> str:
    """How a round's edit names itself in the history (found again after a crash)."""
    return f"autopilot #{autofix_id} round {number}:"


def _wait_for(run: _Run, render: Render, phase: str, **values: Any) -> dict[str, object]:
    """Give up the lease and wait for `render`; its end (or the reaper) sends the next step."""
    if not lease.finish_job(
        AUTOFIXES, run.id, run.token, Status.WAITING, render_id=render.id, phase=phase, **values
    ):
        raise lease.LeaseLost(f"autofix {run.id} was cancelled or taken over")
    with new_session() as db:
        fresh = db.get(Render, render.id)
        finished = fresh is not None and fresh.is_finished
    if finished:  # it ended before this row waited for it (all frames reused): go on now
        send_autofix(run.id)
    return {"step": "waiting", "render": render.id}


def _autopilot(run: _Run) -> dict[str, object]:
    with new_session() as db:
        row = db.get(Autofix, run.id)
        transition = db.get(Transition, row.transition_id) if row else None
        if row is None or transition is None:
            return {"step": "gone"}
        rounds = [dict(r) for r in row.rounds or []]
        spent = row.frames_spent
        actor = Actor(link_id=row.link_id, client="autopilot")

        # 0. A step that died between applying its round's edit and waiting for the render: find the
        # edit by the tag its history line carries, render it and wait; if it never landed, start anew
        if rounds and rounds[-1].get("outcome") == "applying":
            tag = _tag(run.id, len(rounds))
            landed = next(
                (
                    e
                    for e in db.scalars(select(Edit).where(Edit.transition_id == transition.id))
                    if tag in str(e.payload)
                ),
                None,
            )
            if landed is None:
                rounds.pop()
            else:
                rounds[-1] = {**rounds[-1], "edit_version": landed.version, "outcome": None}
                redo = rendering.start_render(db, transition, link_id=row.link_id)
                return _wait_for(run, redo, f"round {len(rounds)}: rendering its edit", rounds=rounds)

        # 1. Evaluate the round whose render just ended
        if rounds and rounds[-1].get("outcome") is None:
            current = rounds[-1]
            render = db.get(Render, row.render_id) if row.render_id else None
            if render is None or render.status != Status.DONE:
                status = render.status if render else "deleted"
                why = f"round {len(rounds)}'s render was {status}" + (
                    f": {render.error}" if render is not None and render.error else ""
                )
                current["outcome"] = status
                run.end(
                    Status.FAILED if status == Status.FAILED else Status.CANCELLED,
                    why,
                    rounds=rounds,
                    error=why,
                )
                return {"step": "stopped"}
            spent += render.frames_computed
            after = summary_of(db, render)
            current["after"] = after
            current["frames_spent"] = spent  # probes and renders of the run so far
            before_worst = float(current["before"]["worst"])
            if after["worst"] >= before_worst - 1e-6:
                try:
                    undo(db, transition, expected=current["edit_version"], actor=actor)
                    current["outcome"] = "reverted"
                    why = (
                        f"round {len(rounds)} did not improve the worst problem "
                        f"(severity {before_worst:.2f} → "
                        f"{after['worst']:.2f}); its edit was undone"
                    )
                except Conflict:
                    current["outcome"] = "kept"
                    why = (
                        f"round {len(rounds)} did not improve the worst problem, and the transition was "
                        "edited "
                        "meanwhile, so its edit was left for a person to undo"
                    )
                db.refresh(transition)
                restored = rendering.start_render(db, transition, link_id=row.link_id)
                run.end(Status.DONE, why, rounds=rounds, frames_spent=spent, render_id=restored.id)
                return {"step": "reverted"}
            current["outcome"] = "kept"
            run.set(rounds=rounds, frames_spent=spent)

        # 2. The render to work from: the latest of the current version, rendered first if needed
        render = latest_render(db, transition)
        if (
            render is None
            or render.transition_version != transition.version
            or render.status == Status.FAILED
            or (render.status == Status.CANCELLED)
        ):
            render = rendering.start_render(db, transition, link_id=row.link_id)
            return _wait_for(run, render, "rendering the current version first", rounds=rounds)
        if not render.is_finished:
            return _wait_for(run, render, f"waiting for render {render.id} to finish", rounds=rounds)

        # 3. Stop rules
        summary = summary_of(db, render)
        found = scores.render_problems(db, render)
        target = row.target_smoothness
        budget = row.budget_frames
        if len(rounds) >= row.max_rounds:
            run.end(
                Status.DONE,
                f"ran its {row.max_rounds} rounds (max_rounds)",
                rounds=rounds,
                frames_spent=spent,
            )
            return {"step": "done"}
        if target is not None and summary["smoothness"] is not None and summary["smoothness"] >= target:
            why = f"smoothness {summary['smoothness']:.2f} reached the target {target:.2f}"
            run.end(Status.DONE, why, rounds=rounds, frames_spent=spent)
            return {"step": "done"}
        if budget is not None and spent >= budget:
            run.end(Status.DONE, f"spent its budget of {budget} frames", rounds=rounds, frames_spent=spent)
            return {"step": "done"}
        fixable = [p for p in found if p.kind in FIXABLE and 0 < p.t < 1]
        if not fixable:
            why = "no problem left that a fix can take on" if found else "no problems left: the map is calm"
            run.end(Status.DONE, why, rounds=rounds, frames_spent=spent)
            return {"step": "done"}

        # 4. Propose for the worst problem, apply the best-predicted fix, render what changed
        problem = fixable[0]
        number = len(rounds) + 1
        run.set(phase=f"round {number}: probing fixes for {service.describe_problem(problem.id)}")
        left = None if budget is None else budget - spent
        proposals, probes = propose(db, run, transition, render, problem, budget=left)
        spent += probes
        # A fix must promise less change, and its render (the frames its probes did not render) must fit
        # in what is left of the budget
        left_after = None if budget is None else budget - spent
        helpful = [
            p
            for p in proposals
            if p["predicted"] < p["current"] * (1 - MIN_GAIN)
            and (left_after is None or p["cost"] - len(p.get("probed", [])) <= left_after)
        ]
        promising = [p for p in proposals if p["predicted"] < p["current"] * (1 - MIN_GAIN)]
        if promising and not helpful:
            why = (
                f"no fix that would help with {service.describe_problem(problem.id)} fits in the frames left"
            )
            run.end(Status.DONE, why, rounds=rounds, frames_spent=spent, proposals=proposals)
            return {"step": "done"}
        if not helpful:
            best = min((p["predicted"] for p in proposals), default=math.nan)
            why = f"no fix is predicted to help with {service.describe_problem(problem.id)}" + (
                f" (largest change now {proposals[0]['current']:.3f}, best probe {best:.3f})"
                if proposals
                else ""
            )
            run.end(Status.DONE, why, rounds=rounds, frames_spent=spent, proposals=proposals)
            return {"step": "done"}
        because = f"{_tag(run.id, number)} fixes {service.describe_problem(problem.id)}"
        pending = {
            "problem": _problem_dict(problem),
            "fix": None,
            "edit_version": None,
            "before": summary,
            "after": None,
            "outcome": "applying",
        }
        run.set(rounds=[*rounds, pending], frames_spent=spent)
        version = None
        applied = None
        for proposal in helpful:
            try:
                run.set(phase=f"round {number}: applying {proposal['label']}")
                version = service.apply_proposal(db, transition, proposal, because, actor=actor)
                applied = proposal
                break
            except FieldError as exc:  # e.g. a keyframe too close to another: try the next one
                log.info("autofix %s: %s not applicable (%s)", run.id, proposal["label"], exc.message)
                db.rollback()
                db.refresh(transition)
        if applied is None:
            run.end(Status.DONE, "no proposed fix could be applied", rounds=rounds, frames_spent=spent)
            return {"step": "done"}
        rounds.append({**pending, "fix": applied, "edit_version": version, "outcome": None})
        db.refresh(transition)
        probed = frozenset(applied.get("probed", []))
        rendered = rendering.start_render(db, transition, link_id=row.link_id, probed=probed)
        return _wait_for(
            run,
            rendered,
            f"round {number}: rendering what {applied['label']} changed",
            rounds=rounds,
            frames_spent=spent,
            proposals=proposals,
        )
