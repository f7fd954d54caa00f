"""Subcommands. Each module defines `register(subparsers)` that adds its parser(s) and sets
`func` to a handler taking the parsed args and returning an exit code."""

from types import ModuleType

from . import batches, cache, data, local, prices, report, run, runs, templates

COMMAND_MODULES: list[ModuleType] = [
    data,
    templates,
    run,
    cache,
    batches,
    report,
    runs,
    local,
    prices,
]
