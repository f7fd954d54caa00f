"""What requests cost: the chars/4 token estimate and the price table's USD."""

from __future__ import annotations

from judges.base import ChatRequest, JudgeIdentity, Usage
from judges.pricing import cost_usd


def estimate_input_tokens(request: ChatRequest) -> int:
    """chars/4: a provider-neutral estimate, good enough for budgets."""
    return max(1, sum(len(m.content) for m in request.messages) // 4)


def price_known(identity: JudgeIdentity) -> bool:
    """Whether the price table knows this judge (a local model is known: it costs 0)."""
    return cost_usd(identity, Usage(1, 1)) is not None


def cost_of(identity: JudgeIdentity, usage: Usage) -> float:
    """USD for that usage, 0 when the price of the model is unknown (a local model)."""
    return float(cost_usd(identity, usage) or 0.0)
