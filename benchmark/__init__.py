"""What to measure: RMB data in, plan, parse, score, report out; the runner and the CLI.

`benchmark.run(...)` (see benchmark.api) is imported on first use so `import benchmark` stays
light."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import RunResult, arun, run

__all__ = ["RunResult", "arun", "run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")
