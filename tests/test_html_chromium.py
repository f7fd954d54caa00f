"""report.html opens offline in a real headless Chromium: the browser's DOM holds the RMB table,
the subsets table, the SVG charts with their bars and interval whiskers, and the worst-scenario
examples; the screenshot is a real rendering, not a blank page."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from support.items import real_items
from support.runs import make_run

from benchmark.reporting.rebuild import ensure_reports, rebuild
from benchmark.scoring import SUBSET_NAMES

# a real browser per test: in the slow set (make test-fast leaves it out)
pytestmark = pytest.mark.slow

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run does it)")
    return subprocess.run(
        [exe, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    w, h = struct.unpack(">II", head[16:24])
    return w, h


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory, rmb_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("html")
    make_run(root / "run", root / "cache", real_items(rmb_dir), rmb_dir)
    rebuilt = rebuild(root / "run", bootstrap=300)
    return next(p for p in rebuilt.paths if p.suffix == ".html")


def test_dom_has_table_charts_and_examples(report_html: Path, tmp_path: Path) -> None:
    dom = chromium(tmp_path, "--dump-dom", report_html.as_uri()).stdout
    # the browser parsed the page and the RMB table: one row, the paper's columns
    table = re.search(r'<table class="paper" id="rmb-table">(.*?)</table>', dom, re.S)
    assert table is not None
    headers = re.findall(r"<th>(.*?)</th>", table.group(1))
    assert headers == ["Judge × template", *SUBSET_NAMES, "Overall"]
    assert len(re.findall(r"<tr>", table.group(1))) == 2  # header + the run
    subsets = re.search(r'<table id="subsets-table">(.*?)</table>', dom, re.S)
    assert subsets is not None and len(re.findall(r"<tr", subsets.group(1))) == 1 + 4 + 1
    # charts: subsets + one per helpfulness set, bars and whiskers for every row
    charts = re.findall(r'<svg class="chart" id="([^"]+)"', dom)
    assert charts == [
        "chart-subsets",
        "chart-tasks-bon",
        "chart-tasks-pairwise",
        # the analyses (a judge without probabilities or samples: no calibration, no curve)
        "chart-length-longer",
        "chart-length-ratio",
        "chart-position-length",
        "chart-generators",
    ]
    accuracy = dom[: dom.index('<section class="analysis"')]
    assert accuracy.count('<rect class="bar"') == 5 + 12 + 12
    assert accuracy.count('<g class="ci">') == accuracy.count('<rect class="bar"')
    sections = re.findall(r'<section class="analysis" id="([^"]+)"', dom)
    assert sections == ["length", "position", "generators"]
    # a dot and a dataset tick per answer-writing model of RMB
    generators = re.search(r'<table id="generators-table">(.*?)</table>', dom, re.S)
    assert generators is not None
    models = len(re.findall(r"<tr>", generators.group(1))) - 1
    chart = dom[dom.index('id="chart-generators"') :]
    chart = chart[: chart.index("</svg>")]
    assert models >= 10 and chart.count('<circle class="dot"') == models
    assert chart.count('class="reference"') == models
    # worst scenarios with worked examples one click away, the judge's cached answers inside
    assert dom.count('<details class="scenario">') == 5
    assert dom.count('<details class="example">') >= 5
    assert "[[A]]" in dom or "[[B]]" in dom


def test_screenshot_is_a_real_rendering(report_html: Path, tmp_path: Path) -> None:
    shot, blank = tmp_path / "report.png", tmp_path / "blank.png"
    chromium(tmp_path, "--window-size=1280,1600", f"--screenshot={shot}", report_html.as_uri())
    empty = tmp_path / "empty.html"
    empty.write_text("<!doctype html><html><body></body></html>")
    chromium(tmp_path, "--window-size=1280,1600", f"--screenshot={blank}", empty.as_uri())
    assert png_size(shot) == (1280, 1600)
    # text, tables and bars compress far worse than a white page
    assert shot.stat().st_size > 40_000
    assert shot.stat().st_size > 10 * blank.stat().st_size


def test_compare_page_renders_its_tables_and_forest_plots(
    tmp_path: Path, rmb_dir: Path, report_html: Path
) -> None:
    """compare.html in the browser: the runs table, per pair a forest plot of B − A with a dot
    and an interval per subset and Overall, and the scenarios behind a click."""
    from benchmark.reporting.compare import compare_runs
    from benchmark.reporting.report import write_comparison

    make_run(tmp_path / "weak", tmp_path / "cache", real_items(rmb_dir), rmb_dir, quality=0.6)
    strong = report_html.parent
    ensure_reports([strong, tmp_path / "weak"])
    paths = write_comparison(tmp_path / "cmp", compare_runs([strong, tmp_path / "weak"]))
    dom = chromium(tmp_path, "--dump-dom", paths[2].as_uri()).stdout
    runs = re.search(r'<table class="paper" id="runs-table">(.*?)</table>', dom, re.S)
    assert runs is not None and len(re.findall(r"<tr>", runs.group(1))) == 1 + 2
    charts = re.findall(r'<svg class="chart" id="([^"]+)"', dom)
    assert charts == ["chart-pair-1", "chart-pair-1-scenarios"]
    subsets_chart = dom[dom.index('id="chart-pair-1"') : dom.index('id="chart-pair-1-scenarios"')]
    assert subsets_chart.count("<circle") == 4 + 1
    assert '<details class="scenarios">' in dom and "Holm" in dom
