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

from judges.errors import UserError

_STR, _INT, _FLOAT, _BOOL, _LIST = (
    "a string",
    "a whole number",
    "a number",
    "true or false",
    "a list of strings",
)

# config key -> (argparse dest, expected kind)
KEYS: dict[str, tuple[str, str]] = {
    "judge": ("judge", _STR),
    "template": ("template", _STR),
    "data": ("data", _STR),
    "set": ("sets", _LIST),
    "goal": ("goals", _LIST),
    "task": ("tasks", _LIST),
    "scenario": ("scenarios", _LIST),
    "per_scenario": ("per_scenario", _INT),
    "limit": ("limit", _INT),
    "seed": ("seed", _INT),
    "orders": ("orders", _STR),
    "bon_strategy": ("bon_strategy", _STR),
    "permutations": ("permutations", _INT),
    "samples": ("samples", _INT),
    "ties": ("ties", _STR),
    "concurrency": ("concurrency", _INT),
    "rps": ("rps", _FLOAT),
    "tpm": ("tpm", _INT),
    "temperature": ("temperature", _FLOAT),
    "max_tokens": ("max_tokens", _INT),
    "system_prompt": ("system_prompt", _STR),
    "base_url": ("base_url", _STR),
    "api_key_env": ("api_key_env", _STR),
    "timeout": ("timeout", _FLOAT),
    "max_retries": ("max_retries", _INT),
    "transport": ("transport", _STR),
    "cache_dir": ("cache_dir", _STR),
    "runs_dir": ("runs_dir", _STR),
    "run_id": ("run_id", _STR),
    "max_cost": ("max_cost", _FLOAT),
    "batch": ("batch", _BOOL),
    "no_wait": ("no_wait", _BOOL),
    "poll": ("poll", _FLOAT),
    "prices": ("prices", _STR),
    "bootstrap": ("bootstrap", _INT),
    "quiet": ("quiet", _BOOL),
}


def _ok(kind: str, v: Any) -> bool:
    if kind == _STR:
        return isinstance(v, str)
    if kind == _INT:
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == _FLOAT:
        return isinstance(v, int | float) and not isinstance(v, bool)
    if kind == _BOOL:
        return isinstance(v, bool)
    return isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))


def load_run_config(path: Path | str) -> dict[str, Any]:
    """argparse dest -> value, checked. API keys do not belong here (use api-key-env)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as e:
        raise UserError(f"{path}: cannot read the run config: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML ({e})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file") from None
    out: dict[str, Any] = {}
    for key, value in raw.items():
        norm = key.replace("-", "_")
        if norm not in KEYS:
            hint = (
                " (keep keys out of files: set api-key-env to the variable's name)"
                if "key" in norm
                else ""
            )
            raise UserError(
                f"{path}: unknown option {key!r}{hint}; known: {', '.join(sorted(KEYS))}"
            )
        dest, kind = KEYS[norm]
        if not _ok(kind, value):
            raise UserError(f"{path}: option {key!r} must be {kind}, got {value!r}")
        if kind == _FLOAT:
            value = float(value)
        if kind == _LIST and isinstance(value, str):
            value = [value]
        out[dest] = value
    return out
