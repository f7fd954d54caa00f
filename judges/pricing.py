"""What a judge's tokens cost, or that the cost is unknown (never an invented $0).

Prices come from `genai-prices` (pydantic's maintained price data, bundled in the package: no
network), matched by provider and model, with its long-context tiers (the whole request is
billed at the tier its prompt reaches) and its cached-input rate. A user's table (`--prices
FILE`, `{"model": {"input": 2.5, "output": 10.0, "cached_input": 1.25}}`, USD per million
tokens; a dated id is priced by the longest entry it starts with) wins over it. A model on
this machine costs 0; a model neither source knows has no price: `cost_usd` returns None and
the reports say "cost unknown"."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .base import JudgeIdentity, Usage
from .errors import UserError
from .models import read_table

# judges that run on this machine: no bill
FREE_PROVIDERS = frozenset({"local", "vllm", "vllm-server", "loopback"})
# the provider id genai-prices knows each hosted backend by
GENAI_PROVIDER = {"openai": "openai", "anthropic": "anthropic"}

# Anthropic's 5-minute prompt-cache writes cost 1.25x input; the batch APIs of OpenAI and
# Anthropic bill everything (cache discounts included) at half (both checked 2025-11)
CACHE_WRITE_SHARE = 1.25
BATCH_SHARE = 0.5

# one rate (USD per million tokens): flat, or (base, ((threshold, rate), ...)) where a request
# whose input exceeds a threshold pays that tier's rate on all its tokens
Rate = float | tuple[float, tuple[tuple[int, float], ...]]


@dataclass(frozen=True, slots=True)
class Rates:
    input: Rate
    output: Rate
    cached_input: Rate | None  # None: cached input is billed as input
    source: str

    def cost(self, usage: Usage) -> float:
        """`usage` at these rates, with Anthropic's cache writes and the batch APIs' discount."""
        n_in = usage.input_tokens
        cached = min(usage.cached_input_tokens, n_in)
        written = min(usage.cache_write_tokens, n_in - cached)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        usd = (
            (n_in - cached - written) * _at(self.input, n_in)
            + cached * _at(cached_rate, n_in)
            + written * _at(self.input, n_in) * CACHE_WRITE_SHARE
            + usage.output_tokens * _at(self.output, n_in)
        ) / 1e6
        return usd * BATCH_SHARE if usage.batch else usd


def _at(rate: Rate, input_tokens: int) -> float:
    if isinstance(rate, float):
        return rate
    base, tiers = rate
    for start, price in reversed(tiers):
        if input_tokens > start:
            return price
    return base


FREE = Rates(0.0, 0.0, None, "runs on this machine")
_user: dict[str, Rates] = {}


def set_prices(overrides: Mapping[str, Mapping[str, float]], *, where: str = "prices") -> None:
    """Add or replace entries: {model: {"input": usd_per_mtok, "output": usd_per_mtok,
    "cached_input": usd_per_mtok (optional)}}."""
    checked: dict[str, Rates] = {}
    for model, entry in overrides.items():
        try:
            cached = entry.get("cached_input")
            prices = [float(entry["input"]), float(entry["output"])]
            prices += [] if cached is None else [float(cached)]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise UserError(
                f"{where}: entry {model!r} needs numeric 'input' and 'output' "
                "(USD per million tokens)"
            ) from None
        # NaN or a negative price would switch --max-cost off (every comparison is False)
        if not all(math.isfinite(x) and 0 <= x <= 1e6 for x in prices):
            raise UserError(
                f"{where}: entry {model!r}: prices must be finite numbers from 0 to 1e6 USD per "
                f"million tokens, got {', '.join(f'{x:g}' for x in prices)}"
            )
        checked[model] = Rates(prices[0], prices[1], None if cached is None else prices[2], where)
    _user.update(checked)  # all or nothing: a bad entry leaves the table as it was
    rates_of.cache_clear()


def load_prices(path: str | Path) -> None:
    """Override prices from a TOML or JSON file."""
    set_prices(read_table(path, "price table"), where=str(path))


def reset_prices() -> None:
    _user.clear()
    rates_of.cache_clear()


def _user_rates(model: str) -> Rates | None:
    if model in _user:
        return _user[model]
    best = max((m for m in _user if model.startswith(m + "-")), key=len, default=None)
    return _user[best] if best else None


def runs_here(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


@functools.lru_cache(maxsize=256)
def rates_of(identity: JudgeIdentity) -> Rates | None:
    """The judge's rates: the user's table, else genai-prices, else None (unknown); a model on
    this machine is FREE."""
    if identity.provider in FREE_PROVIDERS or (identity.base_url and runs_here(identity.base_url)):
        return FREE
    return _user_rates(identity.model) or _library_rates(identity)


def _library_rates(identity: JudgeIdentity) -> Rates | None:
    # ~1.6 MB of price data: imported only when a remote judge is priced
    import genai_prices
    from genai_prices import data_snapshot, types

    snapshot = data_snapshot.get_snapshot()
    try:
        if identity.base_url:
            provider, model = snapshot.find_provider_model(
                identity.model, None, None, identity.base_url
            )
        elif identity.provider in GENAI_PROVIDER:
            provider, model = snapshot.find_provider_model(
                identity.model, None, GENAI_PROVIDER[identity.provider], None
            )
        else:
            return None
    except LookupError:
        return None
    price = model.get_prices(datetime.now(tz=UTC))

    def rate(value: Any) -> Rate | None:
        if value is None:
            return None
        if isinstance(value, types.TieredPrices):
            return float(value.base), tuple((t.start, float(t.price)) for t in value.tiers)
        return float(value)

    inp, out = rate(getattr(price, "input_mtok", None)), rate(getattr(price, "output_mtok", None))
    if inp is None or out is None:
        return None
    cached = rate(getattr(price, "cache_read_mtok", None))
    source = f"genai-prices {genai_prices.__version__} ({provider.id}:{model.id})"
    return Rates(inp, out, cached, source)


def cost_usd(identity: JudgeIdentity, usage: Usage) -> float | None:
    """The bill for `usage`; 0.0 for a model on this machine, None when no price is known."""
    rates = rates_of(identity)
    return None if rates is None else rates.cost(usage)


def describe(identity: JudgeIdentity) -> str:
    """One line for `rmb prices`: the rates per million tokens and where they come from."""
    rates = rates_of(identity)
    if rates is None:
        return (
            f"{identity.label()}: cost unknown (no price in genai-prices or --prices; give one "
            'with --prices FILE: {"MODEL": {"input": USD, "output": USD}} per million tokens)'
        )

    def show(rate: Rate | None) -> str:
        if rate is None:
            return "as input"
        if isinstance(rate, float):
            return f"${rate:g}"
        base, tiers = rate
        return f"${base:g}" + "".join(f" (${p:g} above {s:,} input tokens)" for s, p in tiers)

    return (
        f"{identity.label()}: input {show(rates.input)}, cached input "
        f"{show(rates.cached_input)}, output {show(rates.output)} per 1M tokens "
        f"[{rates.source}]"
    )
