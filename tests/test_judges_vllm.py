"""The in-process vLLM backend: the request -> SamplingParams mapping as a pure function, and,
where vllm is installed and a model is named, one real batch."""

from __future__ import annotations

import importlib.util
import os
from collections import UserDict
from types import SimpleNamespace

import pytest

from judges.base import ChatRequest, JudgeOptions, Message
from judges.errors import JudgeSetupError
from judges.providers.vllm_inproc import VLLMJudge, conversation, sampling_params_for, too_long

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
    assert "temperature" not in sampling_params_for(ChatRequest(MSGS, "m", temperature=None))
    assert conversation(req) == [
        {"role": "system", "content": "Be fair."},
        {"role": "user", "content": "A or B?"},
    ]


class Engine:
    """`vllm.LLM`'s surface as the backend uses it: a tokenizer whose chat template returns a
    transformers-5 BatchEncoding (a UserDict), and a `chat` that, like vLLM, rejects a whole
    batch when one prompt exceeds the model's length."""

    class model_config:
        max_model_len = 64

    def get_tokenizer(self) -> Engine:
        return self

    def apply_chat_template(
        self, conv: list[dict[str, str]], **kw: object
    ) -> UserDict[str, list[int]]:
        return UserDict(
            {"input_ids": [0] * sum(len(m["content"]) for m in conv), "attention_mask": [1]}
        )

    def chat(self, convs: list[list[dict[str, str]]], **kw: object) -> list[object]:
        if any(sum(len(m["content"]) for m in c) >= 64 for c in convs):
            raise ValueError(
                "The decoder prompt (length 300) is longer than the maximum model length of 64"
            )
        out = SimpleNamespace(text="[[A]]", token_ids=[1], finish_reason="stop", logprobs=None)
        return [SimpleNamespace(outputs=[out], prompt_token_ids=[0] * 9) for _ in convs]


def test_an_over_long_item_is_refused_alone_never_the_batch() -> None:
    engine = Engine()
    long = ChatRequest((Message("user", "x" * 300),), "m")
    short = ChatRequest((Message("user", "A or B?"),), "m")
    # transformers 5: a BatchEncoding, whose len() is its 2 keys, not the prompt's tokens
    assert (too_long(engine, long) or "").startswith("context too long: the prompt has 300 tokens")
    assert too_long(engine, short) is None
    judge = VLLMJudge.__new__(VLLMJudge)  # the batch logic alone, on the engine above
    judge.vllm = SimpleNamespace(SamplingParams=dict)
    # the guard missed it (say, a chat template adds tokens): vLLM rejects the batch, the
    # other requests are answered one by one and only the long one is refused
    done = judge._chat(engine, [short, long, short])
    assert [c.finish_reason for c in done] == ["stop", "refused", "stop"]
    assert (done[1].error or "").startswith("context too long")


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
