"""A run config file (TOML) holding the same options as `rmb run`; flags given on the command
line win over it. Keys are the long flag names (`max-cost` or `max_cost`), e.g.

    judge = "openai:gpt-4o"
    template = "pairwise-tie"
    data = "../RMB_dataset"
    set = ["pairwise"]
    per-scenario = 20
    concurrency = 32
    max-cost = 5.0
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from benchmark.option_meta import KIND_WORDS, Kind, valid_kind
from benchmark.options import fields_in, kinds
from judges.errors import UserError


def keys() -> dict[str, tuple[str, Kind]]:
    """config key -> (RunOptions field, kind): the long flag names of every option a config may
    hold (`--set` is `set`, holding the field `sets`)."""
    kind = kinds()
    return {
        m.flag_name(name)[2:].replace("-", "_"): (name, kind[name])
        for name, m in fields_in()
        if m.config
    }


def load_run_config(path: Path | str) -> dict[str, Any]:
    """RunOptions field -> value, of the field's kind (the ranges are RunOptions.check's). API
    keys do not belong here (use api-key-env)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as e:
        raise UserError(f"{path}: cannot read the run config: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML ({e})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file") from None
    known = keys()
    out: dict[str, Any] = {}
    for key, value in raw.items():
        norm = key.replace("-", "_")
        if norm not in known:
            hint = (
                " (keep keys out of files: set api-key-env to the variable's name)"
                if "key" in norm
                else ""
            )
            raise UserError(
                f"{path}: unknown option {key!r}{hint}; known: {', '.join(sorted(known))}"
            )
        name, kind = known[norm]
        if not valid_kind(kind, value):
            raise UserError(f"{path}: option {key!r} must be {KIND_WORDS[kind]}, got {value!r}")
        if kind == "number":
            value = float(value)
        if kind == "list" and isinstance(value, str):
            value = [value]
        out[name] = value
    return out
