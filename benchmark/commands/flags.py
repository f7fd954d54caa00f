"""RunOptions as command-line flags: the flags of its fields (`rmb run` all of them, other
commands the selection), and the options back from what was given (flags, a config file)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.option_meta import Kind, Opt, check_value
from benchmark.options import RunOptions, defaults, fields_in, kinds
from judges.errors import UserError

_ARG_TYPES: dict[Kind, Any] = {"int": int, "number": float}
TITLES = {"selection": "dataset selection"}


def add_flags(
    parser: argparse.ArgumentParser, groups: tuple[str, ...], *, with_defaults: bool = False
) -> None:
    """The flags of the options in `groups`, one argparse group each. Without `with_defaults`
    every flag defaults to None, so that "not given" is told apart from the default value (a run
    config fills the gap first)."""
    kind = kinds()
    made: dict[str, Any] = {}
    all_defaults = defaults()
    for name, m in fields_in(*groups):
        g: Any
        # "main" options stand at the top of --help, outside any group
        if m.group == "main":
            g = parser
        elif m.group in made:
            g = made[m.group]
        else:
            g = made[m.group] = parser.add_argument_group(TITLES.get(m.group, m.group))
        k = kind[name]
        kw: dict[str, Any] = {"dest": name, "help": m.help}
        kw["default"] = all_defaults[name] if with_defaults else None
        if k == "bool":
            kw["action"] = "store_true"
        else:
            if m.metavar:
                kw["metavar"] = m.metavar
            if k == "list":
                kw["action"] = "append"
                kw["default"] = None
            elif m.choices is not None:
                kw["choices"] = m.choices
            elif k in _ARG_TYPES:
                kw["type"] = _bounded(_ARG_TYPES[k], m)
            elif k == "table":
                kw["type"] = json_object
        g.add_argument(m.flag_name(name), **kw)


def _bounded(convert: Any, m: Opt) -> Any:
    """argparse's type: the conversion, and a range error as argparse's own usage message."""
    if m.min is None and m.max is None and m.above is None and not m.finite:
        return convert
    kind: Kind = "int" if convert is int else "number"

    def parse(text: str) -> Any:
        try:
            v = convert(text)
        except ValueError:
            what = "a whole number" if convert is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        try:  # the field's own rule (bounds, finite), said as argparse says it
            check_value("the value", v, m, kind)
        except UserError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix("the value ")) from None
        return v

    parse.__name__ = convert.__name__
    return parse


def json_object(text: str) -> dict[str, Any]:
    """argparse's type of a table option: a JSON object, e.g. '{"enable_thinking": false}'."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({e})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _split(values: list[str] | tuple[str, ...] | str | None) -> tuple[str, ...]:
    raw = [values] if isinstance(values, str) else values or []
    return tuple(v.strip() for r in raw for v in r.split(",") if v.strip())


def from_values(values: Mapping[str, Any]) -> RunOptions:
    """RunOptions from flag/config values (None = not given: the field's default), with the
    repeatable lists split at commas and choices compared case-insensitively."""
    kind = kinds()
    out: dict[str, Any] = {}
    for name, m in fields_in():
        v = values.get(name)
        if v is None:
            continue
        if kind[name] == "list":
            v = _split(v)
            if m.choices is not None:
                v = tuple(dict.fromkeys(x.lower() for x in v))
            if not v:
                continue
        elif isinstance(v, Path):
            v = str(v)
        out[name] = v
    return RunOptions(**out).check()
