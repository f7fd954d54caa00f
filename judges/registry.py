"""Build a judge from a spec string: `PROVIDER:MODEL` (`openai:gpt-4o`, `anthropic:claude-...`,
`vllm:PATH`, `vllm-server:PATH`, `local`, `local:PATH.gguf`).

Each provider is a module exposing `build(model: str, options: JudgeOptions) -> Judge`,
imported only when asked for, so a missing optional package (vllm, llama.cpp) costs nothing
until it is used."""

from __future__ import annotations

import importlib
import os
from dataclasses import replace

from .base import Judge, JudgeOptions
from .errors import UserError
from .urls import check_base_url

PROVIDERS: dict[str, str] = {
    "openai": "judges.providers.openai_api",
    "anthropic": "judges.providers.anthropic_api",
    "vllm": "judges.providers.vllm_inproc",
    "vllm-server": "judges.vllm_server",
    "local": "judges.local",
}
# providers that need no model name (they have a default)
MODEL_OPTIONAL = frozenset({"local"})
# providers that return the logprobs of given tokens exactly (ChatRequest.logprob_labels)
SCORES_LABELS = frozenset({"vllm"})


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
    if provider == "vllm" and (options.replicas > 1 or options.ray_address):
        module = importlib.import_module("judges.ray_replicas")  # the engines on Ray
        ray_judge: Judge = module.build(model, options)
        return ray_judge
    if options.base_url is not None:  # before any request: see judges/urls.py
        options = replace(options, base_url=check_base_url(options.base_url))
    if options.base_urls:
        options = replace(options, base_urls=tuple(check_base_url(u) for u in options.base_urls))
    module = importlib.import_module(PROVIDERS[provider])
    urls = options.base_urls or ((options.base_url,) if options.base_url else ())
    if len(urls) > 1 or options.judge_id:
        if provider != "openai" or not urls:
            raise UserError(
                f"judge {spec!r}: several --base-url servers and --judge-id are for "
                "OpenAI-compatible servers: use --judge openai:MODEL --base-url URL ..."
            )
        from .pool import build_pool

        return build_pool(
            provider, model, options, urls, options.judge_id, lambda _, o: module.build(model, o)
        )
    if urls:
        options = replace(options, base_url=urls[0], base_urls=())
    judge: Judge = module.build(model, options)
    return judge


def default_judge_spec() -> str:
    """A hosted judge when its key is set, else the embedded local judge (no key, no network)."""
    if os.environ.get("OPENAI_API_KEY"):
        return "openai:gpt-4o-mini"
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "anthropic:claude-haiku-4-5"
    return "local"
