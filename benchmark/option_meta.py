"""What a field of `benchmark.options.RunOptions` is to the user: its `Opt` metadata (help,
flag group, bounds, choices), the kind of value its annotation says it holds, and the checks of
a value against both, each failing with a one-line error naming the option."""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from judges.errors import UserError

# what a field holds, from its annotation: str/Path, int, float, bool, tuple[str, ...], and
# dict[str, Any] ("table": a JSON object on the command line, a TOML table in a config)
Kind = Literal["string", "int", "number", "bool", "list", "table"]
# how a kind is named in an error message
KIND_WORDS: dict[Kind, str] = {
    "string": "a string",
    "int": "a whole number",
    "number": "a number",
    "bool": "true or false",
    "list": "a list of strings",
    "table": "a table of keys and values (a JSON object on the command line)",
}


@dataclass(frozen=True, slots=True)
class Opt:
    """What a field of RunOptions is to the user: metadata only, read by the generators below."""

    help: str
    group: str  # flag group in `rmb run --help`: main (no group), selection, plan, judge, run
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    above: float | None = None  # strictly greater than
    finite: bool = False
    judge: str | None = None  # the JudgeOptions field this option fills
    config: bool = True  # a key of the run config file
    flag: str | None = None  # default: --the-field-name

    def flag_name(self, name: str) -> str:
        return self.flag or "--" + name.replace("_", "-")


def opt(default: Any, help: str, group: str, **meta: Any) -> Any:
    """A RunOptions field: its default and its `Opt` metadata."""
    return field(default=default, metadata={"opt": Opt(help, group, **meta)})


def hint_kind(hint: Any) -> Kind:
    """The kind of value a field annotated `hint` holds (None aside)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is tuple:
        return "list"
    if hint is dict or typing.get_origin(hint) is dict:
        return "table"
    return {bool: "bool", int: "int", float: "number"}.get(hint, "string")  # type: ignore[return-value]


def check_value(name: str, v: Any, m: Opt, kind: Kind) -> None:
    if v is None:
        return
    if not _of_kind(kind, v):
        raise UserError(f"{name} must be {KIND_WORDS[kind]}, got {v!r}")
    if m.choices is not None:
        for one in v if isinstance(v, tuple) else (v,):
            if one not in m.choices:
                raise UserError(
                    f"{name}: unknown value {one!r}; choose from {', '.join(m.choices)}"
                )
    if isinstance(v, bool) or not isinstance(v, int | float):
        return
    if m.finite and not math.isfinite(v):
        raise UserError(f"{name} must be a finite number, got {v}")
    if m.min is not None and not v >= m.min:
        raise UserError(f"{name} must be at least {_num(m.min)}, got {_num(v)}")
    if m.max is not None and not v <= m.max:
        raise UserError(f"{name} must be at most {_num(m.max)}, got {_num(v)}")
    if m.above is not None and not v > m.above:
        raise UserError(f"{name} must be above {_num(m.above)}, got {_num(v)}")


def _num(x: float) -> str:
    """4294967295, not 4.29497e+09; a number too long to read, shortened."""
    text = str(x)
    return text if len(text) <= 24 else f"{x:.3g}"


def _of_kind(kind: Kind, v: Any) -> bool:
    """Whether a value given in Python is of the kind its field holds (paths are strings)."""
    if kind == "string":
        return isinstance(v, str | Path)
    if kind == "list":
        return isinstance(v, tuple | list) and all(isinstance(x, str) for x in v)
    if kind == "table":
        return isinstance(v, Mapping)
    return valid_kind(kind, v)


def valid_kind(kind: Kind, v: Any) -> bool:
    """Whether a config value is of the kind its option holds."""
    if kind == "string":
        return isinstance(v, str)
    if kind == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "number":
        return isinstance(v, int | float) and not isinstance(v, bool)
    if kind == "bool":
        return isinstance(v, bool)
    if kind == "table":
        return isinstance(v, dict)
    return isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
