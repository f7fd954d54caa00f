"""Leaderboard rows and groups from real report dicts: ranked by Overall within the runs over
the same items, never across selections."""

from __future__ import annotations

import json

from synthetic_runs import always_first, always_longer, item, judge, pick

from benchmark.reporting.board import leaderboard, plan_text
from benchmark.reporting.report import report_dict
from benchmark.scoring import score

ITEMS = [item("a", 200, 100), item("b", 100, 300), item("c", 120, 100), item("d", 50, 100)]
OTHER = ITEMS[:2]


def report(name: str, items: list, policy: object, **plan: object) -> tuple[str, dict]:  # type: ignore[type-arg]
    judged = judge(items, policy)  # type: ignore[arg-type]
    manifest = {
        "judge": f"sim:{name}",
        "template": {"name": "pairwise"},
        "plan": {"orders": "both", "bon_strategy": "pairwise", **plan},
        "data": {"items": len(items), "items_hash": f"hash-{len(items)}"},
        "selection": {"per_scenario": len(items), "seed": 0},
        "finished_at": "2026-12-01T06:00:00Z",
    }
    d = report_dict(score(items, judged, bootstrap=100), manifest)
    # as report.json is read back
    return name, json.loads(json.dumps({**d, "items": list(d["items"])}))


def test_ranked_by_overall_within_a_selection() -> None:
    reports = [
        report("first", ITEMS, always_first),
        report("oracle", ITEMS, lambda it, c: pick(c, "chosen"), samples=3),
        report("longer", ITEMS, always_longer),
        report("oracle-small", OTHER, lambda it, c: pick(c, "chosen")),
    ]
    groups = leaderboard(reports)
    assert [g.data for g in groups] == ["hash-4", "hash-2"]
    main = groups[0]
    assert main.description == "4 items (per_scenario=4)"
    assert [r.run for r in main.rows] == ["oracle", "first", "longer"]
    # first and longer both score 0.5 (ties broken by name)
    assert [r.overall.accuracy for r in main.rows] == [1.0, 0.5, 0.5]
    top = main.rows[0]
    assert top.judge == "sim:oracle" and top.template == "pairwise"
    assert top.plan == "orders both · BoN pairwise · 3 samples"
    assert top.consistency == 1.0 and top.invalid_rate == 0.0
    assert top.subsets["Harmlessness Pairwise"].accuracy == 1.0
    assert top.subsets["Helpfulness BoN"].accuracy is None
    assert main.rows[1].consistency == 0.0
    assert top.date == "2026-12-01T06:00:00Z" and top.items == 4
    assert [r.run for r in groups[1].rows] == ["oracle-small"]


def test_plan_text() -> None:
    assert plan_text({}) == "–"
    assert plan_text({"orders": "random", "permutations": 3}) == "orders random · 3 permutations"
