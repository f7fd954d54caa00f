"""What each model family accepts: the one place that knows the providers' request rules.

A family says which sampling fields it takes, which token-limit field, its reasoning-effort
levels (and the API's default), whether it returns logprobs, and (Claude) its thinking modes.
`shape()` turns the user's options into exactly the fields that are sent, or a one-line error
before any request; what is sent is what the cache key holds. The table is dated and sourced
below; a user may add or override families with `--model-rules FILE` (`load_rules`).

Rules checked 2026-12-01 against (newest first where they disagree):
- OpenAI: openai-python 3.57 `types/chat/completion_create_params.py` (max_tokens "not compatible
  with o-series models", reasoning_effort none..max "not all models support every value") and
  `types/shared/reasoning_effort.py`; developers.openai.com/api/docs/guides/reasoning and the
  ReasoningEffort schema text ("gpt-5.1 defaults to none ... All models before gpt-5.1 default
  to medium and do not support none ... gpt-5-pro only supports high"); the GPT-5.1/5.2 guide
  ("temperature, top_p and logprobs are only supported with reasoning effort none; older GPT-5
  models raise an error"); 400 texts as users report them: "Unsupported parameter: 'max_tokens'
  is not supported with this model. Use 'max_completion_tokens' instead." (code
  unsupported_parameter), "Unsupported value: 'temperature' does not support 0.9 with this
  model. Only the default (1) value is supported." (unsupported_value); GPT-5.6 tiers
  (sol/terra/luna) default to effort none and require temperature 1 (replicate.com/openai/
  gpt-5.6-sol, github itzcrazykns/vane#1173, 2026).
- Anthropic: anthropic-python 2.14 `_constants.py` (ANTHROPIC_API_VERSION = "2026-10-21"),
  `types/thinking_config_*_param.py` (budget_tokens >= 1024 and < max_tokens; adaptive;
  disabled), `types/output_config_param.py` (effort low..max); platform.claude.com/docs/en/
  api/versioning and api/migration-2026-10-21 ("temperature, top_p and top_k are removed: a
  request that sends any returns 400", "temperature: Extra inputs are not permitted");
  models/migration-guide (Opus 4.7: sampling parameters removed, adaptive-only thinking,
  "thinking.type.enabled is not supported for this model"); models/opus-5/migration-guide
  (thinking on by default, disabled only at effort high or below, default effort high).
- Gemini's OpenAI endpoint: logprobs "not enabled" for 2.5/3.x models (google-gemini issues,
  2025-2026); its errors come as a JSON list of Google error objects.
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from .errors import UserError

Support = Literal["yes", "no", "effort-none"]  # "effort-none": only at reasoning effort "none"

# The API version both Anthropic transports send (the SDK's own, anthropic 2.14
# `_constants.ANTHROPIC_API_VERSION`; tests check they agree). 2023-06-01 still takes
# temperature on the models that had it; 2026-10-21 takes no sampling field on any model.
ANTHROPIC_VERSION = "2026-10-21"
ANTHROPIC_VERSIONS = ("2023-06-01", "2026-10-21")

# default token limits: an answer alone, and an answer after reasoning (thinking tokens count
# against the same limit on both APIs)
ANSWER_TOKENS = 1024
REASONING_TOKENS = 16384
MIN_THINKING_BUDGET = 1024  # anthropic: budget_tokens >= 1024


@dataclass(frozen=True, slots=True)
class Family:
    """One model family's request rules. `match` is a regex on the model id (a `vendor/`
    prefix, as OpenRouter names models, is ignored)."""

    name: str
    provider: str  # "openai" | "anthropic" | "*" (any provider)
    match: str
    temperature: Support = "yes"
    token_field: str = "max_tokens"  # or "max_completion_tokens"
    logprobs: Support = "yes"
    efforts: tuple[str, ...] = ()  # accepted reasoning efforts; () = no effort control
    default_effort: str | None = None  # what the API does when none is sent
    verbosity: bool = False
    thinking: tuple[str, ...] = ()  # anthropic: "adaptive", "budget", "disabled"
    default_thinking: str = "disabled"  # anthropic: what happens without a thinking field
    # anthropic: thinking may be disabled only at these efforts (Opus 5: high or below)
    disabled_efforts: tuple[str, ...] | None = None
    # a known family is checked; an unknown model's options are passed through as given
    known: bool = True
    source: str = ""

    def matches(self, provider: str, model: str) -> bool:
        if self.provider not in ("*", provider):
            return False
        bare = model.rsplit("/", 1)[-1].lower()
        return re.match(self.match, bare) is not None


_OAI_CHAT = "max_completion_tokens"
_GPT5_EFFORTS = ("none", "low", "medium", "high", "xhigh")


def _gpt5x(
    name: str, match: str, efforts: tuple[str, ...], temperature: Support, source: str
) -> Family:
    """GPT-5.1 and later: effort none by default, logprobs only at none."""
    return Family(
        name,
        "*",
        match,
        temperature=temperature,
        token_field=_OAI_CHAT,
        logprobs="effort-none",
        efforts=efforts,
        default_effort="none",
        verbosity=True,
        source=source,
    )


# Opus 4.7 took away sampling and budget thinking; the 5 generation keeps that and thinks by default
_OPUS_47 = Family(
    "claude-opus-4.7+",
    "anthropic",
    r"claude-opus-4-[7-9]",
    temperature="no",
    logprobs="no",
    efforts=("low", "medium", "high", "xhigh", "max"),
    default_effort="high",
    thinking=("adaptive", "disabled"),
    source="platform.claude.com models/migration-guide#migrating-to-claude-opus-4-7",
)

FAMILIES: tuple[Family, ...] = (
    # ---- OpenAI (Chat Completions)
    _gpt5x(
        "openai-gpt-5.6",
        r"gpt-(?:5\.6|6)(?:$|[-.])",  # gpt-5.6, gpt-5.6-sol/terra/luna, gpt-6-*
        _GPT5_EFFORTS,
        "no",
        "replicate gpt-5.6-sol (effort none default); vane#1173 (temperature 1 only)",
    ),
    _gpt5x(
        "openai-gpt-5.2+",
        r"gpt-5\.[2-5](?:$|[-.])",
        _GPT5_EFFORTS,
        "effort-none",
        "OpenAI GPT-5.2 guide; ReasoningEffort schema (xhigh after gpt-5.1-codex-max)",
    ),
    _gpt5x(
        "openai-gpt-5.1",
        r"gpt-5\.1(?:$|-)",
        ("none", "low", "medium", "high"),
        "effort-none",
        "ReasoningEffort schema: gpt-5.1 defaults to none; none/low/medium/high",
    ),
    Family(
        "openai-gpt-5-chat",
        "*",
        r"gpt-5-chat",
        token_field=_OAI_CHAT,
        source="gpt-5-chat-latest is not a reasoning model: it takes temperature",
    ),
    Family(
        "openai-gpt-5-pro",
        "*",
        r"gpt-5-pro",
        temperature="no",
        token_field=_OAI_CHAT,
        logprobs="no",
        efforts=("high",),
        default_effort="high",
        verbosity=True,
        source="ReasoningEffort schema: gpt-5-pro defaults to (and only supports) high",
    ),
    Family(
        "openai-gpt-5",
        "*",
        r"gpt-5(?:$|-)",  # gpt-5, gpt-5-mini, gpt-5-nano, dated ids
        temperature="no",
        token_field=_OAI_CHAT,
        logprobs="no",
        efforts=("minimal", "low", "medium", "high"),
        default_effort="medium",
        verbosity=True,
        source="OpenAI reasoning guide; models before gpt-5.1 default to medium, no none",
    ),
    Family(
        "openai-o-series",
        "*",
        r"o[1-9](?:$|-)",  # o1, o3, o3-mini, o3-pro, o4-mini
        temperature="no",
        token_field=_OAI_CHAT,
        logprobs="no",
        efforts=("low", "medium", "high"),
        default_effort="medium",
        source="openai-python: max_tokens not compatible with o-series models",
    ),
    Family(
        "openai-chat",
        "*",
        r"(?:gpt-4|gpt-3\.5|chatgpt-)",
        token_field=_OAI_CHAT,
        source="openai-python: max_tokens deprecated in favour of max_completion_tokens",
    ),
    # ---- Gemini through its OpenAI-compatible endpoint
    Family(
        "gemini",
        "openai",
        r"gemini-",
        logprobs="no",
        efforts=("none", "minimal", "low", "medium", "high"),
        default_effort="medium",  # 2.5 and 3.x think by default
        source="Gemini OpenAI compatibility; 'Logprobs is not enabled for models/gemini-2.5-*'",
    ),
    # ---- Anthropic (Messages API)
    replace(
        _OPUS_47,
        name="claude-5",
        match=r"claude-(?:opus|sonnet|haiku|fable)-5",
        default_thinking="adaptive",  # on by default
        disabled_efforts=("low", "medium", "high"),
        source="platform.claude.com models/opus-5/migration-guide (2026-07-24)",
    ),
    _OPUS_47,
    Family(
        "claude-4.6",
        "anthropic",
        r"claude-(?:opus|sonnet)-4-6",
        logprobs="no",
        efforts=("low", "medium", "high", "max"),
        default_effort="high",
        thinking=("adaptive", "budget", "disabled"),
        source="Opus 4.6: adaptive recommended, budget_tokens deprecated (still accepted)",
    ),
    Family(
        "claude-opus-4.5",
        "anthropic",
        r"claude-opus-4-5",
        logprobs="no",
        efforts=("low", "medium", "high"),
        default_effort="high",
        thinking=("budget", "disabled"),
        source="effort parameter introduced with Claude Opus 4.5",
    ),
    Family(
        "claude",
        "anthropic",
        r"claude-",
        logprobs="no",
        thinking=("budget", "disabled"),
        source="extended thinking: budget_tokens >= 1024 and < max_tokens",
    ),
)

# what an unknown model on a custom server (vLLM, llama.cpp, SGLang) is assumed to take
GENERIC = Family(
    "generic", "*", r"", known=False, source="OpenAI-compatible servers take max_tokens"
)
_HOSTED_GENERIC = replace(GENERIC, name="openai-unknown", token_field=_OAI_CHAT)
_ANTHROPIC_GENERIC = replace(GENERIC, name="anthropic-unknown", logprobs="no")

_user_families: list[Family] = []


@functools.lru_cache(maxsize=64)
def family_of(provider: str, model: str, *, hosted: bool = False) -> Family:
    """The first family (user rules first) whose pattern matches the model id."""
    for fam in (*_user_families, *FAMILIES):
        if fam.matches(provider, model):
            return fam
    if provider == "anthropic":
        return _ANTHROPIC_GENERIC
    return _HOSTED_GENERIC if hosted else GENERIC


def read_table(path: str | Path, what: str) -> dict[str, Any]:
    """A user's TOML (by its suffix) or JSON file holding a mapping, or a one-line UserError."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise UserError(f"{p}: cannot read the {what}: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{p}: the {what} must be a mapping of model -> its entry")
    return data


def load_rules(path: str | Path) -> None:
    """Add families from a TOML or JSON file; each entry may start `like` a built-in family:
    `[families.my-gpt] match = "my-gpt" like = "openai-gpt-5" temperature = "no"`."""
    data = read_table(path, "model rules")
    set_rules(data.get("families", data), where=str(path))


def set_rules(entries: Mapping[str, Any], *, where: str = "model rules") -> None:
    if not isinstance(entries, Mapping):
        raise UserError(f"{where}: the model rules must map a family name to its rules")
    known = {f.name: f for f in FAMILIES}
    names = {f.name for f in fields(Family)}
    for name, entry in entries.items():
        if not isinstance(entry, Mapping):
            raise UserError(f"{where}: family {name!r} must be a table of rules")
        entry = dict(entry)
        base = known.get(str(entry.pop("like", "")), GENERIC)
        unknown = set(entry) - names
        if unknown:
            raise UserError(
                f"{where}: family {name!r}: unknown rule(s) {sorted(unknown)}; known: "
                f"{sorted(names - {'name'})}, like"
            )
        for key in ("efforts", "thinking", "disabled_efforts"):
            if key in entry and entry[key] is not None:
                entry[key] = tuple(entry[key])
        entry.setdefault("match", re.escape(name))
        entry.setdefault("provider", "*")
        _user_families.insert(0, replace(base, name=name, **entry))
    family_of.cache_clear()


def reset_rules() -> None:
    _user_families.clear()
    family_of.cache_clear()


# ------------------------------------------------------------------------- shaping a request


@dataclass(frozen=True, slots=True)
class Shaped:
    """The fields a request sends, resolved from the options and the family."""

    temperature: float | None
    max_tokens: int
    top_logprobs: int | None
    reasoning_effort: str | None
    thinking: str | None  # anthropic: "adaptive" | "disabled" | "<budget tokens>"
    verbosity: str | None
    reasons: bool = field(default=False)  # the model may spend tokens reasoning


@dataclass(frozen=True, slots=True)
class Asked:
    """What the user and the template asked for (None = not set: the family's default)."""

    temperature: float | None
    temperature_set: bool
    max_tokens: int | None  # the user's --max-tokens
    template_max_tokens: int | None
    top_logprobs: int | None
    reasoning_effort: str | None
    thinking: str | None
    verbosity: str | None
    api_version: str | None = None


def _fail(fam: Family, model: str, what: str, fix: str) -> UserError:
    return UserError(f"{model} ({fam.name} rules, judges/models.py): {what}; {fix}")


def shape(provider: str, model: str, asked: Asked, *, hosted: bool = False) -> Shaped:
    """The request fields for `model` under its family's rules, or a UserError naming the
    option to change. Defaults: temperature 0 where the family takes it (else not sent), the
    API's own effort, and a token limit with room for reasoning when the model reasons."""
    fam = family_of(provider, model, hosted=hosted)
    effort = asked.reasoning_effort
    if effort is not None and fam.known and effort not in fam.efforts:
        raise _fail(
            fam,
            model,
            f"reasoning effort {effort!r} is not accepted",
            f"use --reasoning-effort {'|'.join(fam.efforts)}"
            if fam.efforts
            else "drop --reasoning-effort (this model takes none)",
        )
    wants_logprobs = asked.top_logprobs is not None
    if wants_logprobs and fam.logprobs == "effort-none" and effort is None:
        effort = "none"  # logprobs come only without reasoning: ask for none explicitly
    resolved_effort = effort if effort is not None else fam.default_effort
    thinking = _thinking(fam, model, asked, resolved_effort)
    at_none = resolved_effort in (None, "none")
    if wants_logprobs and (fam.logprobs == "no" or (fam.logprobs == "effort-none" and not at_none)):
        raise _fail(
            fam,
            model,
            "the API returns no logprobs"
            + (" unless reasoning effort is none" if fam.logprobs == "effort-none" else ""),
            "use a template without top_logprobs (e.g. pairwise)"
            + (" or --reasoning-effort none" if fam.logprobs == "effort-none" else ""),
        )
    # the version both transports send decides, whoever serves it (an Anthropic-compatible
    # server that wants a temperature, such as vLLM's, takes --api-version 2023-06-01)
    versioned = provider == "anthropic"
    temperature = _temperature(fam, model, asked, at_none, thinking, versioned)
    if temperature is not None and fam.temperature == "effort-none" and effort is None:
        effort = "none"  # the sampling field is valid only at none: say so in the request
    if asked.verbosity is not None and not fam.verbosity and fam.known:
        raise _fail(fam, model, "verbosity is not accepted", "drop --verbosity")
    reasons = (not at_none if provider != "anthropic" else thinking not in (None, "disabled")) or (
        not fam.known and effort not in (None, "none")
    )
    limit = _max_tokens(asked, reasons, thinking)
    return Shaped(
        temperature=temperature,
        max_tokens=limit,
        top_logprobs=asked.top_logprobs,
        reasoning_effort=effort,
        thinking=thinking if asked.thinking is not None else None,
        verbosity=asked.verbosity,
        reasons=reasons,
    )


def _thinking(fam: Family, model: str, asked: Asked, effort: str | None) -> str | None:
    """The thinking mode in force (sent only when the user set one)."""
    mode = asked.thinking
    if mode is None:
        return fam.default_thinking if fam.thinking else None
    kind = "budget" if mode.isdigit() else mode
    if kind not in ("adaptive", "budget", "disabled"):
        raise UserError(f"--thinking {mode!r}: use adaptive, disabled or a token budget (>= 1024)")
    if fam.known and kind not in fam.thinking:
        fix = f"use --thinking {'|'.join(fam.thinking)}" if fam.thinking else "drop --thinking"
        raise _fail(fam, model, f"thinking {kind!r} is not accepted", fix)
    if kind == "budget" and int(mode) < MIN_THINKING_BUDGET:
        raise UserError(
            f"--thinking {mode}: a thinking budget is at least {MIN_THINKING_BUDGET} tokens"
        )
    if (
        kind == "disabled"
        and fam.disabled_efforts is not None
        and effort not in fam.disabled_efforts
    ):
        raise _fail(
            fam,
            model,
            f"thinking cannot be disabled at effort {effort!r}",
            f"use --reasoning-effort {'|'.join(fam.disabled_efforts)} or drop --thinking disabled",
        )
    return mode


def _temperature(
    fam: Family, model: str, asked: Asked, at_none: bool, thinking: str | None, versioned: bool
) -> float | None:
    allowed = fam.temperature == "yes" or (fam.temperature == "effort-none" and at_none)
    if versioned:
        version = asked.api_version or ANTHROPIC_VERSION
        allowed = allowed and version < "2026-10-21" and thinking in (None, "disabled")
    if not asked.temperature_set:
        return 0.0 if allowed else None
    if asked.temperature is not None and not allowed:
        raise _fail(
            fam,
            model,
            f"temperature {asked.temperature:g} is not accepted"
            + (" at this reasoning effort" if fam.temperature == "effort-none" else ""),
            "drop --temperature (the API's own default is used)",
        )
    return asked.temperature


def _max_tokens(asked: Asked, reasons: bool, thinking: str | None) -> int:
    default = asked.max_tokens or (REASONING_TOKENS if reasons else ANSWER_TOKENS)
    limit = asked.template_max_tokens if asked.template_max_tokens is not None else default
    if reasons:
        limit = max(limit, default)
    if thinking is not None and thinking.isdigit() and limit <= int(thinking):
        limit = int(thinking) + (asked.template_max_tokens or ANSWER_TOKENS)
    return limit
