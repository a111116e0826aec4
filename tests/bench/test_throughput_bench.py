"""bench/throughput's pure helpers on hand-made inputs (nothing is rendered or timed here)."""

from __future__ import annotations

import pytest

from bench.throughput import cli, report
from bench.throughput import common as bench
from bench.throughput.common import Run


def test_uncovered_gap_counts_both_ends() -> None:
    assert bench.uncovered_gap([]) == 1.0
    assert bench.uncovered_gap([0.0, 1.0]) == 1.0
    assert bench.uncovered_gap([0.5]) == 0.5
    assert bench.uncovered_gap([0.25, 0.5]) == 0.5  # [0.5, 1] is uncovered
    assert bench.uncovered_gap([1.0, 0.0, 0.5, 0.25, 0.75]) == 0.25  # any order


def test_coverage_count_is_a_quarter_rounded_up() -> None:
    assert bench.coverage_count(24) == 6
    assert bench.coverage_count(8) == 2
    assert bench.coverage_count(6) == 2
    assert bench.coverage_count(2) == 1
    assert bench.coverage_count(1) == 1


def test_gap_after_a_quarter_coarse_to_fine_against_index_order() -> None:
    from core.timeline import render_order

    ts = bench.frame_ts(24)
    # Index order (the naive loop): after 6 frames, everything past t = 5/23 is still missing.
    assert bench.gap_after(ts, 24) == pytest.approx(1 - 5 / 23)
    # Coarse to fine (0, 23, 11, 5, 17, 2): the widest hole is 11/23 .. 17/23.
    coarse = [ts[i] for i in render_order(24)]
    assert bench.gap_after(coarse, 24) == pytest.approx(6 / 23)


def test_run_takes_gap_and_first_frame_in_arrival_order() -> None:
    run = Run("x", 3, 8, 4.0, arrivals=[(2.0, 0.5), (1.0, 0.0), (1.0, 1.0), (3.0, 0.25)])
    assert run.fps == 2.0
    assert run.first_frame == 1.0
    # The first two to arrive are t = 0 and t = 1: the whole inside is uncovered.
    assert run.gap == 1.0
    assert Run("empty", 1, 4, 1.0).gap is None


def test_frame_ts_is_the_uniform_grid() -> None:
    assert bench.frame_ts(5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert bench.frame_ts(1) == [0.0]
    assert bench.frame_ts(0) == []


def test_ratio_percent_times_and_verdict() -> None:
    assert bench.ratio(6.0, 2.0) == 3.0
    assert bench.ratio(1.0, 0.0) is None
    assert bench.ratio(None, 2.0) is None
    assert bench.times(2.414) == "2.41×"
    assert bench.times(None) == "—"
    assert bench.percent(0.912) == "91.2 %"
    assert bench.percent(0.8971) == "89.7 %"  # never rounds up to a target
    assert bench.verdict(True) == "met"
    assert bench.verdict(False) == "not met"
    assert bench.verdict(None) == "not measured"


def test_markdown_table_formats_cells() -> None:
    rows = [
        {"name": "naive", "seconds": 12.3456, "evals": 1200.0, "ok": True},
        {"name": "engine", "seconds": 0.01234, "ok": False},
    ]
    table = bench.markdown_table(
        rows, [("name", "method"), ("seconds", "seconds"), ("evals", "U-Net"), ("ok", "ok")]
    )
    assert table.splitlines() == [
        "| method | seconds | U-Net | ok |",
        "|---|---|---|---|",
        "| naive | 12.3 | 1200 | yes |",
        "| engine | 0.0123 | — | no |",
    ]
    assert bench.cell(float("nan")) == "—"
    assert bench.cell(None) == "—"
    assert bench.cell(7) == "7"


def test_parse_sse_joins_data_lines_and_skips_pings() -> None:
    lines = [
        ": ping",
        "id: 1-0",
        "event: frame",
        'data: {"index": 0,',
        'data:  "t": 0.0}',
        "",
        "",
        "id: 2-0",
        "event: done",
        "data: {}",
    ]
    events = list(bench.parse_sse(lines))
    assert [e["event"] for e in events] == ["frame", "done"]
    assert events[0]["data"] == '{"index": 0,\n "t": 0.0}'
    assert events[0]["id"] == "1-0"


def test_sharing_costs_per_in_between() -> None:
    # 13 frames of 20 steps with guidance (40 evaluations each); 6 in-betweens start at step 10.
    full = 13 * 40
    shared = 7 * 40 + 6 * 20
    costs = bench.sharing_costs(full, shared, frames=13, in_betweens=6)
    assert costs["per_frame_full"] == 40
    assert costs["per_in_between_shared"] == pytest.approx(20)
    assert costs["saved_share"] == pytest.approx(0.5)
    assert bench.sharing_costs(full, full, frames=13, in_betweens=0)["saved_share"] == 0.0


def test_median_run_and_spread() -> None:
    runs = [Run("x", 1, 4, s) for s in (3.0, 1.0, 2.0)]
    assert report.median_run(runs).seconds == 2.0
    assert report.median_run(runs[:2]).seconds == 1.0  # the lower middle of an even count
    assert report.spread(runs) == "1–3"
    assert report.spread(runs[:1]) == ""
    with pytest.raises(ValueError):
        report.median_run([])


def test_chunks() -> None:
    assert bench.chunks([0, 7, 3, 1, 5], 2) == [[0, 7], [3, 1], [5]]


def test_parse_args_quick_and_defaults() -> None:
    quick = cli.parse_args(["--quick"])
    assert (quick.frames, quick.steps, quick.repeats) == (8, 8, 1)
    full = cli.parse_args([])
    assert (full.frames, full.steps, full.size, full.seed, full.repeats) == (24, 25, 64, 1, 3)
    assert full.batches == [1, 3, 8] and full.app_batch == 3 and full.fast_batch == 8
    assert cli.parse_args(["--app-batch", "4"]).batches == [1, 3, 4, 8]  # the app's batch is measured raw


def test_report_puts_figures_beside_baselines_and_judges_targets() -> None:
    args = cli.parse_args(["--frames", "4", "--steps", "10", "--batches", "1", "3", "--repeats", "1"])
    ts = bench.frame_ts(4)
    naive = Run("naive diffusers loop", 1, 4, 8.0, arrivals=[(2.0 * (i + 1), t) for i, t in enumerate(ts)])
    naive.unet_items = 80
    engine = {
        1: [Run("Segue engine", 1, 4, 4.0, unet_items=80)],
        3: [Run("Segue engine", 3, 4, 2.0, unet_items=78)],
    }
    app = [Run("Segue end to end, embedded", 3, 4, 2.5, arrivals=[(1.0, 0.0), (1.0, 1.0), (2.5, 0.5)])]
    scaling = {1: [Run("d", 3, 4, 4.0)], 2: [Run("d", 3, 4, 2.2)]}
    text, rows = report.report(
        args, [naive], engine, [], app, [], scaling, {}, ["threads 1"], ["1.00", "1.20"], {}
    )
    assert "| naive diffusers loop (baseline) | 1 |" in text
    assert "| 1.00× |" in text  # the baseline against itself
    assert "3.20×" in text  # the app: 1.6 frames/s against the naive loop's 0.5
    assert "80.0 %" in text  # the app keeps 80 % of the raw engine at batch 3
    assert "1.82×" in text  # 2 workers against 1
    targets = {r["method"]: r["note"] for r in rows if r["section"] == "target"}
    results = list(targets.values())
    assert results[0].endswith(": met")  # end to end 3.2× ≥ 3×
    assert results[1].endswith(": not met")  # 80 % < 90 %
    assert results[2].endswith(": not measured")  # sharing was not run
    assert results[3].endswith(": met")  # 1.82× ≥ 1.7×
    assert "load average (1 min) 1.00 → 1.20" in text


def test_paired_ratio_is_the_median_of_the_ratios_within_each_round() -> None:
    # Per round 2.0, 3.0 and 1.0: the load drifted, the pairs stay comparable.
    versus = report.paired_ratio([2.0, 9.0, 3.0], [1.0, 3.0, 3.0])
    assert (versus.median, versus.low, versus.high) == (2.0, 1.0, 3.0)
    assert str(versus) == "2.00×" and versus.range == "1.00–3.00×"
    assert report.paired_ratio([2.0], [1.0]).range == ""  # one round: no range
    # Rounds that do not pair up: the ratio of the medians.
    assert report.paired_ratio([4.0, 6.0], [2.0]).median == 2.5
    assert report.paired_ratio([], [1.0]).median is None
    assert report.paired_ratio([1.0], [0.0]).median is None


def test_a_missing_stable_diffusion_videos_is_named_with_the_command_that_installs_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from bench.throughput import sdv

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        sdv.Missing, match=r"not installed: pip install --no-deps stable_diffusion_videos==0\.9\.2"
    ):
        sdv.load_walk_pipeline()


def test_the_speed_report_states_each_issue_20_target_beside_its_figure() -> None:
    args = cli.parse_args(["--quick"])
    naive = [Run("naive", 1, 8, 4.0)]
    engine = {3: [Run("engine", 3, 8, 2.0)], 8: [Run("engine", 8, 8, 1.0)]}
    app = {3: [Run("app", 3, 8, 2.05)], 8: [Run("app", 8, 8, 1.25)]}
    sdv = {8: [Run("stable-diffusion-videos 0.9.2 (make_clip_frames)", 8, 8, 2.0)]}
    text, rows = report.speed_report(args, naive, engine, app, [], {}, sdv, None)
    assert "app ≥ 95% of the engine at batch 3: 97.6 % met" in text
    assert "app ≥ 95% of the engine at batch 8: 80.0 % not met" in text
    assert "Segue end to end ≥ 1.5× stable-diffusion-videos: 1.60× (Segue end to end, batch 8) met" in text
    assert "no end-to-end row at that fidelity not measured" in text
    missing, _ = report.speed_report(args, naive, engine, app, [], {}, {}, "not installed: pip install x")
    assert "stable-diffusion-videos: not measured — not installed: pip install x" in missing


def test_the_apps_share_is_paired_with_the_engine_measured_around_it_in_each_round() -> None:
    args = cli.parse_args(["--quick"])
    naive = [Run("naive", 1, 8, 4.0)] * 2
    # The engine's own rounds (2.0 s, 4.0 s) drifted; measured around each app render it took 2.2 and 3.0 s.
    engine = {3: [Run("engine", 3, 8, 2.0), Run("engine", 3, 8, 4.0)]}
    bracket = {3: [Run("engine", 3, 8, 2.2), Run("engine", 3, 8, 3.0)]}
    app = {3: [Run("app", 3, 8, 2.2), Run("app", 3, 8, 3.3)]}
    text, _ = report.speed_report(args, naive, engine, app, [], {}, {}, None, bracket)
    # Per round 100 % and 90.9 %: the median, 95.5 % (against the engine's rounds it would be 90.9 / 121 %).
    assert "app ≥ 95% of the engine at batch 3: 95.5 % met" in text
    unpaired, _ = report.speed_report(args, naive, engine, app, [], {}, {}, None)
    assert "app ≥ 95% of the engine at batch 3: 106.1 % met" in unpaired
