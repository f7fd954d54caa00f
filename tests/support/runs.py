"""Runs the tests share: the team's OpenAI judge at the loopback server, `benchmark.arun` through
it (`go`), what the server was paid for, and a finished run simulated into a real cache."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from benchmark.api import RunResult, arun
from benchmark.data import Item
from benchmark.options import RunOptions
from benchmark.plan import plan
from benchmark.results import JudgedComparison
from benchmark.rundir import COMPARISONS_FILE
from judges.base import (
    ChatRequest,
    Completion,
    JudgeIdentity,
    JudgeOptions,
    Message,
    Usage,
    cache_key,
)
from judges.cache import CacheStore
from judges.registry import build_judge
from prompts.parsers import parse

from .items import SELECTION

MODEL = "loopback-judge"
KEY_ENV = "LOOPBACK_KEY"


def make_judge(base_url: str, options: JudgeOptions, model: str = MODEL) -> Any:
    """The team's OpenAI backend (official SDK) pointed at the loopback server."""
    os.environ.setdefault(KEY_ENV, "sk-loopback")
    return build_judge(f"openai:{model}", replace(options, base_url=base_url, api_key_env=KEY_ENV))


def answered(srv: Any) -> int:
    """Successful answers the server gave (what a user pays for)."""
    return sum(srv.stats()["answers"].values())


def go(
    srv: Any,
    data: Path,
    tmp: Path,
    *,
    concurrency: int = 32,
    template: str = "pairwise",
    wrap: Callable[[Any], Any] | None = None,
    **kw: Any,
) -> RunResult:
    """`benchmark.arun` over `data` with the loopback judge (`wrap`ped, e.g. in a batch
    judge's shape), the cache and runs under `tmp`; `kw` are RunOptions fields."""
    options = RunOptions(
        template=template,
        data=data,
        concurrency=concurrency,
        temperature=kw.pop("temperature", 0.0),
        cache_dir=tmp / "cache",
        runs_dir=tmp / "runs",
        bootstrap=50,
        **kw,
    )
    judge = make_judge(srv.openai_base_url, options.judge_options())
    if wrap is not None:
        judge = wrap(judge)

    async def main() -> RunResult:
        try:
            return await arun(options, judge=judge, handle_signals=False)
        finally:
            await judge.aclose()

    return asyncio.run(main())


def _unit(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def make_run(
    run_dir: Path,
    cache_dir: Path,
    items: list[Item],
    data_dir: Path,
    *,
    model: str = "judge-a",
    template: str = "pairwise",
    quality: float = 0.8,
    bias: float = 0.1,
    invalid: float = 0.03,
    orders: str = "both",
) -> list[JudgedComparison]:
    """A finished run as the runner leaves it: manifest.json, comparisons.jsonl, and every raw
    answer in a real cache store. The simulated judge answers "[[A]]"/"[[B]]" after a line of
    reasoning: right with probability `quality`, "A" regardless with probability `bias`, and
    an unreadable answer with probability `invalid`."""
    identity = JudgeIdentity("sim", model)
    comparisons = plan(items, "pairwise", orders=orders, seed=0)  # type: ignore[arg-type]
    judged, entries = [], []
    for c in comparisons:
        request = ChatRequest(messages=(Message("user", f"{template}:{c.id}"),), model=model)
        key = cache_key(identity, request)
        u = _unit(model, template, c.id)
        better = next(i for i, x in enumerate(c.shown) if x in ("best", "chosen"))
        if u < invalid:
            text = "Both answers have merits and I cannot pick one."
        else:
            pick = (
                0
                if u < invalid + bias
                else better
                if _unit("q", model, c.id) < quality
                else 1 - better
            )
            text = f"Answer {'AB'[pick]} follows the request more closely <and> is safer.\n\n[[{'AB'[pick]}]]"
        completion = Completion(text=text, usage=Usage(120, 30))
        entries.append((key, identity, completion))
        judged.append(
            JudgedComparison(
                c,
                key,
                parse("verdict-ab", completion, len(c.shown)),
                "stop",
                input_tokens=120,
                output_tokens=30,
                cost_usd=0.0002,
            )
        )
    with CacheStore(cache_dir) as store:
        store.put_many(entries)
        cache_file = store.path
    run_dir.mkdir(parents=True)
    manifest: dict[str, Any] = {
        "run_id": run_dir.name,
        "status": "complete",
        "judge": identity.label(),
        "template": {"name": template, "parser": "verdict-ab", "mode": "pairwise"},
        "data": {"source": str(data_dir), "items": len(items)},
        "selection": asdict(SELECTION),
        "plan": {"orders": orders, "bon_strategy": "pairwise", "samples": 1, "seed": 0},
        "ties": "strict",
        "cache": str(cache_file),
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    (run_dir / COMPARISONS_FILE).write_text("".join(j.to_json() + "\n" for j in judged))
    return judged
