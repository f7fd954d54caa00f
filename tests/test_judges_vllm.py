"""The in-process vLLM backend: the request -> SamplingParams mapping as a pure function, and,
where vllm is installed and a model is named, one real batch."""

from __future__ import annotations

import importlib.util
import os

import pytest

from judges.base import ChatRequest, JudgeOptions, Message
from judges.errors import JudgeSetupError
from judges.providers.vllm_inproc import conversation, sampling_params_for

MSGS = (Message("system", "Be fair."), Message("user", "A or B?"))


def test_sampling_params_mapping() -> None:
    req = ChatRequest(MSGS, "m", temperature=0.3, max_tokens=8, seed=7, top_logprobs=5)
    assert sampling_params_for(req) == {
        "n": 1,
        "temperature": 0.3,
        "max_tokens": 8,
        "seed": 7,
        "logprobs": 5,
    }
    plain = sampling_params_for(ChatRequest(MSGS, "m", seed=None))
    assert plain == {"n": 1, "temperature": 0.0, "max_tokens": 1024}
    json_mode = sampling_params_for(ChatRequest(MSGS, "m", response_format="json"))
    assert json_mode["structured_outputs"] == {"json_object": True}
    with pytest.raises(JudgeSetupError, match="response_format 'xml'"):
        sampling_params_for(ChatRequest(MSGS, "m", response_format="xml"))
    assert conversation(req) == [
        {"role": "system", "content": "Be fair."},
        {"role": "user", "content": "A or B?"},
    ]


VLLM = importlib.util.find_spec("vllm") is not None
MODEL = os.environ.get("RMB_VLLM_MODEL", "")
SKIP = (
    "vllm is not installed in this venv (make vllm-env)"
    if not VLLM
    else "set RMB_VLLM_MODEL to a small HF model folder"
)


@pytest.mark.vllm
@pytest.mark.skipif(not (VLLM and MODEL), reason=SKIP)
async def test_vllm_batch_for_real() -> None:
    from judges.registry import build_judge

    options = JudgeOptions(max_tokens=16, top_logprobs=3)
    judge = build_judge(f"vllm:{MODEL}", options)
    reqs = [options.request([Message("user", f"Say {w}.")], MODEL) for w in ("yes", "no")]
    try:
        done = await judge.complete_many(reqs)  # type: ignore[attr-defined]
    finally:
        await judge.aclose()
    assert len(done) == 2 and all(c.finish_reason in ("stop", "length") for c in done)
    assert all(c.usage.input_tokens > 0 and c.usage.output_tokens > 0 for c in done)
    assert all(c.logprobs and len(c.logprobs[0].top) >= 1 for c in done)
