"""USD per million input/output tokens for common judge models, for cost estimates.

List prices (standard tier, no batch or cache discounts) as published by OpenAI and Anthropic,
last checked 2025-11; providers change them, so a user can override or extend the table with a
TOML or JSON file (`{"model": {"input": 2.5, "output": 10.0}}`) or a dict via `set_prices`.
A dated model id (`gpt-4o-2024-08-06`, `claude-3-5-sonnet-20241022`) is priced by the longest
table entry it starts with. Unknown price -> None; a model on this machine costs 0."""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from .base import JudgeIdentity, Usage
from .errors import UserError

PRICES_CHECKED = "2025-11"

# model id prefix -> (input, output) USD per 1M tokens
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-2024-05-13": (5.00, 15.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o1": (15.00, 60.00),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "claude-3-haiku": (0.25, 1.25),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-3-opus": (15.00, 75.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-opus-4-1": (15.00, 75.00),
    "claude-opus-4-5": (5.00, 25.00),
}

# judges that run on this machine: no bill
FREE_PROVIDERS = frozenset({"local", "vllm", "vllm-server", "loopback"})
HOSTED = {"openai": "api.openai.com", "anthropic": "api.anthropic.com"}

_prices: dict[str, tuple[float, float]] = dict(DEFAULT_PRICES)


def set_prices(overrides: Mapping[str, Mapping[str, float]], *, where: str = "prices") -> None:
    """Add or replace entries: {model: {"input": usd_per_mtok, "output": usd_per_mtok}}."""
    checked: dict[str, tuple[float, float]] = {}
    for model, entry in overrides.items():
        try:
            prices = (float(entry["input"]), float(entry["output"]))
        except (KeyError, TypeError, ValueError):
            raise UserError(
                f"{where}: entry {model!r} needs numeric 'input' and 'output' "
                "(USD per million tokens)"
            ) from None
        # NaN or a negative price would switch --max-cost off (every comparison is False)
        if not all(math.isfinite(x) and 0 <= x <= 1e6 for x in prices):
            raise UserError(
                f"{where}: entry {model!r}: prices must be finite numbers from 0 to 1e6 USD per "
                f"million tokens, got input={prices[0]}, output={prices[1]}"
            )
        checked[model] = prices
    _prices.update(checked)  # all or nothing: a bad entry leaves the table as it was


def load_prices(path: str | Path) -> None:
    """Override the table from a TOML or JSON file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise UserError(f"{p}: cannot read the price table: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{p}: the price table must be a mapping of model -> prices")
    set_prices(data, where=str(p))


def reset_prices() -> None:
    _prices.clear()
    _prices.update(DEFAULT_PRICES)


def price_of(model: str) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens, by exact id or the longest known prefix."""
    if model in _prices:
        return _prices[model]
    best = max((m for m in _prices if model.startswith(m + "-")), key=len, default=None)
    return _prices[best] if best else None


def _runs_here(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


# Discounts on the input price (checked 2025-11): prompt-cache reads (OpenAI by model family,
# longest prefix wins; Anthropic 0.1x), Anthropic's 5-minute cache writes (1.25x), and the batch
# APIs of both (0.5x on everything, caching discounts included).
CACHED_INPUT_SHARE: dict[str, float] = {
    "gpt-4o": 0.5,
    "gpt-4.1": 0.25,
    "gpt-5": 0.1,
    "o1": 0.5,
    "o3": 0.25,
    "o4-mini": 0.25,
    "claude": 0.1,
}
CACHE_WRITE_SHARE = 1.25
BATCH_SHARE = 0.5


def cached_input_share(model: str) -> float:
    best = max((m for m in CACHED_INPUT_SHARE if model.startswith(m)), key=len, default=None)
    return CACHED_INPUT_SHARE[best] if best else 0.5


def cost_usd(identity: JudgeIdentity, usage: Usage) -> float | None:
    """The bill for `usage`; 0.0 for a model on this machine, None when the price is unknown
    (a hosted OpenAI-compatible server the table does not know)."""
    if identity.provider in FREE_PROVIDERS or (identity.base_url and _runs_here(identity.base_url)):
        return 0.0
    price = price_of(identity.model)
    if price is None:
        return None
    return priced(usage, price, identity.model)


def priced(usage: Usage, price: tuple[float, float], model: str) -> float:
    """`usage` at (input, output) USD per 1M tokens, with the cache and batch discounts."""
    cached, written = usage.cached_input_tokens, usage.cache_write_tokens
    fresh = usage.input_tokens - cached - written
    inp = fresh + cached * cached_input_share(model) + written * CACHE_WRITE_SHARE
    usd = (inp * price[0] + usage.output_tokens * price[1]) / 1e6
    return usd * BATCH_SHARE if usage.batch else usd
