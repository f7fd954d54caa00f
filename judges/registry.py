"""Build a judge from a spec string: `PROVIDER:MODEL` (`openai:gpt-4o`, `anthropic:claude-...`,
`vllm:PATH`, `vllm-server:PATH`, `local`, `local:PATH.gguf`).

Each provider is a module exposing `build(model: str, options: JudgeOptions) -> Judge`,
imported only when asked for, so a missing optional package (vllm, llama.cpp) costs nothing
until it is used."""

from __future__ import annotations

import importlib
import os

from .base import Judge, JudgeOptions
from .errors import UserError

PROVIDERS: dict[str, str] = {
    "openai": "judges.providers.openai_api",
    "anthropic": "judges.providers.anthropic_api",
    "vllm": "judges.providers.vllm_inproc",
    "vllm-server": "judges.vllm_server",
    "local": "judges.local",
}
# providers that need no model name (they have a default)
MODEL_OPTIONAL = frozenset({"local"})


def parse_spec(spec: str) -> tuple[str, str]:
    """'openai:gpt-4o' -> ('openai', 'gpt-4o'); 'local' -> ('local', '')."""
    provider, _, model = spec.strip().partition(":")
    provider = provider.strip().lower()
    if provider not in PROVIDERS:
        raise UserError(
            f"unknown judge {spec!r}: the provider must be one of {', '.join(PROVIDERS)} "
            "(e.g. openai:gpt-4o-mini, anthropic:claude-haiku-4-5, vllm:/path/to/model, local)"
        )
    model = model.strip()
    if not model and provider not in MODEL_OPTIONAL:
        raise UserError(f"judge {spec!r}: name a model after '{provider}:'")
    return provider, model


def build_judge(spec: str, options: JudgeOptions) -> Judge:
    provider, model = parse_spec(spec)
    module = importlib.import_module(PROVIDERS[provider])
    judge: Judge = module.build(model, options)
    return judge


def default_judge_spec() -> str:
    """A hosted judge when its key is set, else the embedded local judge (no key, no network)."""
    if os.environ.get("OPENAI_API_KEY"):
        return "openai:gpt-4o-mini"
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "anthropic:claude-haiku-4-5"
    return "local"
