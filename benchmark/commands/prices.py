"""`rmb prices MODEL...`: the rates a run would be charged, where they come from, and what the
model's request rules send."""

from __future__ import annotations

import argparse

from judges.base import JudgeIdentity, JudgeOptions
from judges.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prices",
        help="what a judge costs per million tokens (and the source), and what it is sent",
        description="One line per judge: input, cached input and output USD per million tokens "
        "and their source (genai-prices' bundled data, or --prices FILE), or 'cost unknown'; "
        "then what the model family's rules send by default.",
    )
    p.add_argument("judges", nargs="+", metavar="PROVIDER:MODEL", help="e.g. openai:gpt-5.1")
    p.add_argument("--base-url", metavar="URL", help="the server the judges are reached at")
    p.add_argument("--prices", metavar="FILE", help="a price table over the bundled one")
    p.add_argument("--model-rules", metavar="FILE", help="model family rules over the built-in")
    p.set_defaults(func=cmd_prices)


def cmd_prices(args: argparse.Namespace) -> int:
    from judges.models import load_rules
    from judges.pricing import describe, load_prices
    from judges.registry import parse_spec

    if args.prices:
        load_prices(args.prices)
    if args.model_rules:
        load_rules(args.model_rules)
    for spec in args.judges:
        provider, model = parse_spec(spec)
        identity = JudgeIdentity(provider, model, (args.base_url or "").rstrip("/"))
        print(describe(identity))
        try:
            s = JudgeOptions(base_url=args.base_url).shaped(identity)
        except UserError as exc:  # a family whose defaults cannot be sent says why
            print(f"  sends: {exc}")
            continue
        sent = [f"temperature {'not sent' if s.temperature is None else f'{s.temperature:g}'}"]
        sent.append(f"token limit {s.max_tokens:,}" + (" (room to reason)" if s.reasons else ""))
        if s.reasoning_effort:
            sent.append(f"reasoning effort {s.reasoning_effort}")
        print("  sends: " + ", ".join(sent))
    return 0
