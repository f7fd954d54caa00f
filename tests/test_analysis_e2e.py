"""The analyses end to end: the real runner and openai SDK against the loopback judge on real
RMB items. A judge told to prefer the longer answer shows it in the report's length section;
a judge that answers by a hash of the request does not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_html_chromium import chromium
from test_report_e2e import real_subset  # noqa: F401  (a fixture)
from test_runner import go

pytestmark = pytest.mark.slow  # real RMB runs, reports and a browser: ~10-30 s


def test_length_section_shows_a_length_biased_judge(
    loopback: Any,
    tmp_path: Path,
    real_subset: Path,  # noqa: F811
) -> None:
    loopback.configure(policy="longer")
    run = go(loopback, real_subset, tmp_path)
    assert run.status == "complete"
    report = json.loads((run.run_dir / "report.json").read_text())
    length = report["analysis"]["length"]
    assert report["analysis"]["length_unit"] == "characters"
    # every choice between answers of different length went to the longer one
    assert length["picks_longer"]["value"] == 1.0
    assert length["picks_longer"]["n"] == run.comparisons - length["equal_length"]
    assert length["accuracy_preferred_longer"]["value"] == 1.0
    assert length["accuracy_preferred_shorter"]["value"] == 0.0
    assert 0 < length["preferred_longer"] < 1
    md = (run.run_dir / "report.md").read_text()
    assert "## Length (characters)" in md
    assert (
        "**The judge prefers the longer answer: it is right in 100.0% of the comparisons where "
        "the preferred answer is the longer one and 0.0% where it is the shorter one" in md
    )
    html = (run.run_dir / "report.html").read_text()
    assert '<section class="analysis" id="length">' in html
    assert 'id="chart-length-longer"' in html and "The judge prefers the longer answer" in html

    # the same items under a judge blind to length: no such finding
    loopback.configure(policy="hash")
    fair = go(loopback, real_subset, tmp_path, template="pairwise-tie")
    fair_report = json.loads((fair.run_dir / "report.json").read_text())
    picks = fair_report["analysis"]["length"]["picks_longer"]
    assert 0.2 < picks["value"] < 0.8
    gap = fair_report["analysis"]["length"]["longer_gap_ci"]
    assert gap["low"] < 0 < gap["high"]
    assert "The judge prefers the" not in (fair.run_dir / "report.md").read_text()


def test_calibration_and_samples_sections_in_the_browser(
    loopback: Any,
    tmp_path: Path,
    real_subset: Path,  # noqa: F811
) -> None:
    """A logprob judge's report has the reliability diagram; a run with --samples 3 has the
    majority-of-k curve, each drawn by the browser."""

    logprob = go(loopback, real_subset, tmp_path, template="pairwise-logprob")
    cal = json.loads((logprob.run_dir / "report.json").read_text())["analysis"]["calibration"]
    # the loopback judge states P(choice) in [0.55, 0.95] whatever it chose
    assert cal["comparisons"] == logprob.comparisons
    assert 0.55 <= cal["mean_confidence"] <= 0.95
    assert sum(b["n"] for b in cal["bins"]) == cal["comparisons"]
    assert 0 <= cal["ece"] <= 1 and set(cal["selective"]) == {"0.5", "0.8"}
    dom = chromium(tmp_path, "--dump-dom", (logprob.run_dir / "report.html").as_uri()).stdout
    chart = dom[dom.index('id="chart-reliability"') :]
    chart = chart[: chart.index("</svg>")]
    assert chart.count('<circle class="point"') == len(cal["bins"])
    assert 'class="diagonal"' in chart

    voted = go(loopback, real_subset, tmp_path, samples=3, temperature=1.0)
    report = json.loads((voted.run_dir / "report.json").read_text())
    curve = report["analysis"]["samples"]
    assert [p["k"] for p in curve] == [1, 2, 3]
    # k = K is the run's own vote: the headline accuracy
    assert curve[-1]["accuracy"] == report["overall"]["accuracy"]
    dom = chromium(tmp_path, "--dump-dom", (voted.run_dir / "report.html").as_uri()).stdout
    chart = dom[dom.index('id="chart-samples"') :]
    assert chart[: chart.index("</svg>")].count('<circle class="point"') == 3
