"""The layer probe's odd-one-out scoring (core/odd_one_out.py, bench/layer_probe.py) and a small run."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from bench import layer_probe
from bench.layer_probe import Pool, best_row, human_pool, score_readings, study_triplets, world_pool
from core import odd_one_out
from engine.layer_features import Reading
from tests.support import renders
from tests.support.forking import run
from tests.support.studies import answer_all, finished_render, participant, study

ROOT = Path(__file__).resolve().parents[2]


@given(st.lists(st.floats(0, 2, allow_nan=False), min_size=3, max_size=3, unique=True))
def test_the_odd_one_is_the_one_left_out_of_the_closest_pair(pair_distances: list[float]) -> None:
    ab, ac, bc = pair_distances
    table = {(0, 1): ab, (0, 2): ac, (1, 2): bc}
    candidates = odd_one_out.odd_candidates(lambda i, j: table[(min(i, j), max(i, j))], (0, 1, 2))
    closest = min(table, key=lambda k: table[k])
    if len(candidates) == 1:  # (near-equal sums are a tie)
        assert candidates == [({0, 1, 2} - set(closest)).pop()]


def test_a_distance_that_cannot_tell_items_apart_scores_chance() -> None:
    same = odd_one_out.accuracy(lambda i, j: 0.5, [(0, 1, 2)] * 3, [0, 1, 2])
    assert same == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="position 0, 1 or 2"):
        odd_one_out.accuracy(lambda i, j: 0.5, [(0, 1, 2)], [3])


def planted(rng: np.random.Generator, n: int, signal_block: str) -> tuple[dict[Reading, np.ndarray], Pool]:
    """Items in 2-member groups; only `signal_block` sees the groups (its features share a group vector)."""
    groups = rng.normal(size=(n // 2, 16))
    pool = Pool()
    triplets: list[tuple[int, int, int]] = []
    odd: list[int] = []
    for _ in range(200):
        g, h = rng.choice(n // 2, size=2, replace=False)
        items = [2 * g, 2 * g + 1, 2 * h + rng.integers(2)]
        order = rng.permutation(3)
        a, b, c = (int(items[k]) for k in order)
        triplets.append((a, b, c))
        odd.append(int(np.where(order == 2)[0][0]))
    pool.sets["planted"] = (triplets, odd)
    features = {}
    for block in ("down_blocks.0", "mid_block", "up_blocks.0", "up_blocks.1"):
        for t in (50, 500):
            for text in (False, True):
                noise = rng.normal(size=(n, 16))
                if block == signal_block and t == 500 and not text:
                    noise = np.repeat(groups, 2, axis=0) + 0.3 * noise
                features[Reading(block, t, text)] = noise
    return features, pool


def test_the_probe_finds_the_block_where_a_signal_is_planted() -> None:
    rng = np.random.default_rng(0)
    features, pool = planted(rng, 60, "up_blocks.0")
    rows = score_readings(features, pool)
    best = best_row(rows)
    assert (best.features, best.timestep, best.conditioned) == ("up_blocks.0", 500, False)
    assert best.accuracy["planted"] > 0.9
    others = [r.accuracy["planted"] for r in rows if r is not best]
    assert max(others) < 0.6 and np.mean(others) == pytest.approx(1 / 3, abs=0.08)
    # Only conditioned readings allowed: the planted one is not among them.
    assert best_row(rows, conditioned=True).conditioned


def test_the_world_triplets_hold_their_ground_truth() -> None:
    pool = world_pool(96, 40, seed=0, side=64)
    scenes = pool.scenes
    for name, (triplets, odd) in pool.sets.items():
        assert len(triplets) == 40 and sorted(set(odd)) == [0, 1, 2]  # the odd one is not always last
        for triplet, position in zip(triplets, odd, strict=True):
            pair = [scenes[i] for k, i in enumerate(triplet) if k != position]
            other = scenes[triplet[position]]
            assert (pair[0].sky, pair[0].ground) == (pair[1].sky, pair[1].ground)
            if name == "world sky+ground":
                assert (other.sky == pair[0].sky) != (other.ground == pair[0].ground)
            else:
                assert (other.sky, other.ground) == (pair[0].sky, pair[0].ground)
                assert pair[0].main == pair[1].main != other.main
    control = world_pool(96, 40, seed=0, side=64, captions="background")
    assert control.sets == pool.sets and control.prompts != pool.prompts
    kinds = {o.kind for scene in scenes for o in scene.objects}
    assert not any(kind in prompt for prompt in control.prompts for kind in kinds)


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_human_triplets_share_one_pool_of_frames() -> None:
    red, blue = png((200, 0, 0)), png((0, 0, 200))
    pale = Image.new("RGB", (32, 32), (210, 10, 10))
    pool = human_pool({"s1": [((red, pale, blue), 2), ((red, pale, blue), 0)]}, side=64)
    assert len(pool.images) == 3 and pool.images[0].size == (64, 64)
    assert pool.sets["study s1"] == ([(0, 1, 2), (0, 1, 2)], [2, 0])


def test_a_database_without_studies_gives_no_human_triplets(tmp_path: Path, capsys) -> None:
    assert study_triplets(f"sqlite:///{tmp_path / 'empty.db'}") == {}
    assert "no studies" in capsys.readouterr().err


def test_the_studies_reader_is_used_once_study_tables_exist(tmp_path: Path, monkeypatch) -> None:
    import sqlite3

    path = tmp_path / "studies.db"
    sqlite3.connect(path).execute("create table study_answers (id integer primary key)").connection.commit()
    answers = {"s": [((png((0, 0, 0)),) * 3, 1)]}
    monkeypatch.setattr(layer_probe, "STUDY_READER", (__name__, "fake_reader"))
    globals()["fake_reader"] = lambda url: answers if url.endswith("studies.db") else {}
    assert study_triplets(f"sqlite:///{path}") == answers


def test_the_probe_prints_a_row_per_block_noise_and_prompt_and_records_the_best(tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    env = {**os.environ, "SEGUE_DATA_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    args = ["--model", "segue-tiny", "--images", "48", "--triplets", "12", "--timesteps", "50,800"]
    args += ["--threads", "1", "--record", "--json", str(out)]
    args += ["--database-url", f"sqlite:///{tmp_path / 'none.db'}"]
    result = run("bench.layer_probe", args, env, ROOT, timeout=300)  # forked: torch is imported already
    assert result.returncode == 0, result.stderr[-3000:]
    rows = re.findall(r"^\| ([\w.]+|CLIP image) \| (\d+|-) \| (yes|no|-) \| ", result.stdout, flags=re.M)
    blocks = ["down_blocks.0", "down_blocks.1", "mid_block", "up_blocks.0", "up_blocks.1"]
    expected = [(b, t, c) for b in blocks for t in ("50", "800") for c in ("no", "yes")]
    assert rows[: len(expected)] == expected
    assert [r[0] for r in rows[len(expected) :]] == ["SSIM", "pixels"]  # segue-tiny has no CLIP
    assert "no studies" in result.stderr
    table = json.loads(out.read_text())
    assert set(table["sets"]) == {"world sky+ground", "world object"}
    assert all(0 <= v <= 1 for r in table["rows"] for v in r["accuracy"].values())
    recorded = json.loads((tmp_path / "models" / "segue-tiny" / "layer-probe.json").read_text())
    best_plain = max((r for r in table["rows"] if r["conditioned"] is False), key=lambda r: r["mean"])
    assert (recorded["block"], recorded["timestep"]) == (best_plain["features"], best_plain["timestep"])
    assert recorded["revision"] == table["revision"] != ""


def test_people_s_triplets_reach_the_layer_probe(client: TestClient, database: str) -> None:
    """bench.layer_probe reads every study's answered triplets (STUDY_READER): the three stored frames in the
    item's order and the position the participant chose."""
    render_id = finished_render(client)
    made = study(client, [render_id], title="Odd frames")
    token = participant(client, made["id"])["token"]
    seen = answer_all(client, token, lambda item: item["frames"][2]["index"])

    found = study_triplets(database)
    triplets = found[f"Odd frames (#{made['id']})"]
    assert len(triplets) == len(seen) == 4
    for (pictures, odd), item in zip(triplets, seen, strict=True):
        assert odd == 2
        assert pictures == [renders.png(frame["index"], (64, 64)) for frame in item["frames"]]
