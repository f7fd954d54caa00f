"""What the harness itself costs per comparison, with no judge in the way: render the prompt,
build the request and its cache key, look it up in the cache, parse the answer. And how fast
the cache writes and reads (batched, as the runner uses it).

    .venv/bin/python bench/harness.py [--n 2000]"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from support.loopback_server import Format, judge_text  # noqa: E402
from throughput import MODEL, pairwise_items  # noqa: E402

from benchmark.plan import plan, render_comparison  # noqa: E402
from judges.base import Completion, JudgeIdentity, JudgeOptions, Usage, cache_key  # noqa: E402
from judges.cache import CacheStore  # noqa: E402
from prompts import load_template  # noqa: E402
from prompts.parsers import parse  # noqa: E402

BATCH = 256  # answers per cache transaction / keys per lookup, as in the runner


def measure(n: int = 2000) -> dict[str, Any]:
    items = pairwise_items()[: n // 2 + 1]
    by_uid = {it.uid: it for it in items}
    tpl = load_template("pairwise")
    comparisons = plan(items, tpl.mode)[:n]
    identity = JudgeIdentity("openai", MODEL, "http://127.0.0.1:1/v1")
    options = JudgeOptions()
    pairs = [(by_uid[c.item_uid], c) for c in comparisons]

    t = time.perf_counter()
    rendered = [render_comparison(tpl, it, c.shown) for it, c in pairs]
    t_render = time.perf_counter() - t

    t = time.perf_counter()
    keys = [
        cache_key(
            identity,
            options.request(msgs, MODEL, max_tokens=tpl.max_tokens, top_logprobs=tpl.top_logprobs),
        )
        for msgs in rendered
    ]
    t_key = time.perf_counter() - t

    fmt = Format("pairwise", ("A", "B"))
    answers = [
        Completion(
            judge_text(fmt, "AB"[i % 2], i), usage=Usage(900, 30), latency_s=0.2, created_at=1.0
        )
        for i in range(len(keys))
    ]
    with tempfile.TemporaryDirectory() as tmp:
        store = CacheStore(tmp)
        rows = [(k, identity, a) for k, a in zip(keys, answers, strict=True)]
        t = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            store.put_many(rows[i : i + BATCH])
        t_write = time.perf_counter() - t
        t = time.perf_counter()
        got: dict[str, Completion] = {}
        for i in range(0, len(keys), BATCH):
            got.update(store.get_many(keys[i : i + BATCH]))
        t_read = time.perf_counter() - t
        store.close()
    assert len(got) == len(set(keys)), "the cache lost answers"

    t = time.perf_counter()
    verdicts = [parse(tpl.parser, got[k], 2) for k in keys]
    t_parse = time.perf_counter() - t
    assert all(v.kind == "choice" for v in verdicts), "a loopback answer did not parse"

    m = len(keys)

    def us(s: float) -> float:
        return round(1e6 * s / m, 1)

    return {
        "comparisons": m,
        "render_us": us(t_render),
        "key_us": us(t_key),
        "cache_lookup_us": us(t_read),
        "parse_us": us(t_parse),
        "total_us": us(t_render + t_key + t_read + t_parse),
        "cache_writes_per_s": round(m / t_write),
        "cache_reads_per_s": round(m / t_read),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2000)
    print(json.dumps(measure(p.parse_args().n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
