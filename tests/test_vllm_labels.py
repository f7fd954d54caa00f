"""In-process vLLM reads the verdict labels' logprobs exactly (`logprob_token_ids`), so the
`pairwise-logprob` parser gets P(A) and P(B) even where one of them is not in the top-k.

The vLLM test is opt-in with the others (`make test-vllm`, `.venv-vllm`); the runner's side
(which requests carry the labels) runs everywhere."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pytest

from benchmark.data import Selection, load
from benchmark.plan import plan
from benchmark.runner.prepare import prepare
from judges.base import ChatRequest, JudgeIdentity, JudgeOptions, Message
from judges.providers import vllm_inproc
from prompts import load_template
from prompts.parsers import logprob_ab

REPO = Path(__file__).resolve().parent.parent
MODEL = Path(
    os.environ.get("VLLM_MODEL") or REPO / ".venv-vllm" / "models" / "SmolLM2-135M-Instruct"
)
QUESTIONS = [
    "Which reply is correct? A: 'Paris is the capital of France.' B: 'Paris is in Spain.'",
    "Which reply is kinder? A: 'Go away.' B: 'Happy to help, what do you need?'",
    "Which reply answers 2+2? A: 'It is 4.' B: 'Bananas are yellow.'",
]


@pytest.mark.vllm
@pytest.mark.timeout(1800)
def test_label_logprobs_are_exact_where_the_top_k_misses_one() -> None:
    if not (MODEL / "config.json").is_file():
        pytest.fail(f"no converted model at {MODEL}: run `make vllm-env` (or set VLLM_MODEL)")
    judge = vllm_inproc.build(str(MODEL), JudgeOptions(seed=0))
    plain = [
        ChatRequest(
            (Message("user", q + " Answer with the single letter A or B."),),
            judge.identity.model,
            max_tokens=1,
            top_logprobs=1,
        )
        for q in QUESTIONS
    ]
    labelled = [replace(r, logprob_labels=("A", "B")) for r in plain]
    try:
        top_only = asyncio.run(judge.complete_many(plain))
        exact = asyncio.run(judge.complete_many(labelled))
    finally:
        asyncio.run(judge.aclose())
    for a, b in zip(top_only, exact, strict=True):
        assert a.logprobs and b.logprobs
        assert a.logprobs[0].token == b.logprobs[0].token  # the same answer, greedy
        seen = {tok.strip() for tok, _ in b.logprobs[0].top}
        assert {"A", "B"} <= seen  # both labels scored, whatever the top-1 is
        # with top-1 only, the label not answered is missing; with the labels it is there
        assert len({tok.strip() for tok, _ in a.logprobs[0].top} & {"A", "B"}) <= 1
        verdict = logprob_ab(b, 2)
        if verdict.kind == "choice":
            assert verdict.probs is not None and min(verdict.probs) > 0.0


@pytest.mark.parametrize(
    ("provider", "template", "labels"),
    [
        ("vllm", "pairwise-logprob", ("A", "B")),  # scores given tokens: asks for the labels
        ("openai", "pairwise-logprob", None),  # top_logprobs only: its keys stay as they were
        ("vllm", "pairwise", None),  # a verdict read from text needs no logprobs
    ],
)
def test_the_runner_asks_label_logprobs_of_a_judge_that_scores_them(
    rmb_dir: Path, provider: str, template: str, labels: tuple[str, ...] | None
) -> None:
    only = Selection(sets=("pairwise",), tasks=("Code",), limit=3)
    items = only.apply(load(rmb_dir, only))
    tpl = load_template(template)
    identity = JudgeIdentity(provider, "m")
    prepared = prepare(items, plan(items, tpl.mode), tpl, identity, JudgeOptions())
    requests = [prepared.request(k) for k in prepared.first]
    assert requests and {r.logprob_labels for r in requests} == {labels}
    if labels is None:  # unset, the key is what it was before the field existed
        assert "logprob_labels" not in requests[0].canonical_json()
