"""RunOptions is the one source of a run's options: its fields make the `rmb run` flags, the run
config's keys and defaults, the judge's settings and the manifest's record, and every value is
checked against its field's rule before anything runs."""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from benchmark.cli import build_parser
from benchmark.commands.run import merged_options
from benchmark.config import keys, load_run_config
from benchmark.options import RunOptions, fields_in
from judges.errors import UserError


def run_flags() -> dict[str, Any]:
    """`rmb run`'s flags: option string -> argparse action."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    parser = sub.choices["run"]  # type: ignore[union-attr]
    return {s: a for a in parser._actions for s in a.option_strings}


def test_every_field_is_a_flag_and_a_config_key() -> None:
    flags = run_flags()
    for name, m in fields_in():
        assert m.flag_name(name) in flags, name
        assert flags[m.flag_name(name)].dest == name
        assert flags[m.flag_name(name)].help == m.help
    assert {n for n, m in fields_in() if m.config} == {name for name, _ in keys().values()}
    assert keys()["set"] == ("sets", "list") and keys()["max_cost"] == ("max_cost", "number")
    assert "dry_run" not in {name for name, _ in keys().values()}  # a flag, not a config key


def test_nothing_given_is_the_fields_defaults() -> None:
    got = merged_options(build_parser().parse_args(["run"]))
    assert got == RunOptions()
    assert got.in_flight == 16 and got.template == "pairwise" and got.sets == ("pairwise", "bon")


def test_config_values_are_the_fields_kinds(tmp_path: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text('set = "bon"\nmax-cost = 2\nrps = 3\n')
    assert load_run_config(cfg) == {"sets": ["bon"], "max_cost": 2.0, "rps": 3.0}
    assert merged_options(build_parser().parse_args(["run", "--config", str(cfg)])).sets == ("bon",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"samples": 0}, "--samples must be at least 1, got 0"),
        ({"concurrency": 0}, "--concurrency must be at least 1, got 0"),
        ({"max_cost": 0.0}, "--max-cost must be above 0, got 0.0"),
        ({"max_cost": math.inf}, "--max-cost must be a finite number, got inf"),
        ({"orders": "sideways"}, "--orders: unknown value 'sideways'; choose from both, random"),
        ({"sets": ("pair",)}, "--set: unknown value 'pair'; choose from pairwise, bon"),
        ({"concurrency": "8"}, "--concurrency must be a whole number, got '8'"),
        ({"temperature": "hot"}, "--temperature must be a number, got 'hot'"),
        ({"quiet": 1}, "--quiet must be true or false, got 1"),
    ],
)
def test_a_bad_value_is_refused_by_its_flag(change: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        RunOptions(**change).check()


def test_a_bad_value_stops_the_run_before_anything_is_loaded(tmp_path: Path) -> None:
    from benchmark.api import run

    # no data at that path: the options are refused first
    with pytest.raises(UserError, match="--samples must be at least 1"):
        run(RunOptions(samples=0, data=str(tmp_path / "missing"), runs_dir=tmp_path))
    assert not any(tmp_path.iterdir())


def test_judge_options_and_manifest() -> None:
    o = RunOptions(rps=2.5, timeout=9.0, concurrency=3, temperature=0.7, transport="lean")
    j = o.judge_options()
    assert (j.requests_per_s, j.timeout_s, j.concurrency, j.temperature, j.transport) == (
        2.5,
        9.0,
        3,
        0.7,
        "lean",
    )
    recorded = json.loads(json.dumps(o.manifest(), default=str))
    assert set(recorded) == {f.name for f in fields(RunOptions)}
    assert recorded["rps"] == 2.5 and recorded["sets"] == ["pairwise", "bon"]


def test_a_table_option_is_one_field_away() -> None:
    """Options that hold keys and values (chat-template arguments, an extra request body) are a
    `dict[str, Any] | None` field: a JSON object on the command line, a TOML table in a config,
    a mapping from Python."""
    import argparse

    from benchmark.commands.flags import json_object
    from benchmark.options import hint_kind, valid_kind

    assert hint_kind(dict[str, Any] | None) == "table"
    assert json_object('{"enable_thinking": false}') == {"enable_thinking": False}
    for bad in ("[1, 2]", "{not json"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a JSON object"):
            json_object(bad)
    assert valid_kind("table", {"top_k": 20}) and not valid_kind("table", "top_k=20")
