"""`rmb templates list|show|render` and `rmb parse`: see exactly what a judge receives, and how
its answer is read."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmark.commands.selection_args import data_source
from benchmark.data import BoNItem, Item, PairwiseItem, load
from benchmark.plan import render_comparison
from judges.base import Completion
from judges.errors import UserError
from prompts import DEFAULT_TEMPLATE, Template, display_labels, list_templates, load_template
from prompts.parsers import Verdict, parse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("templates", help="list, show or render prompt templates")
    tsub = p.add_subparsers(dest="templates_command", required=True, metavar="ACTION")

    tsub.add_parser("list", help="the built-in templates").set_defaults(func=cmd_list)

    show = tsub.add_parser("show", help="a template's metadata and source")
    show.add_argument("template", metavar="NAME", help="built-in name or path to a .j2 file")
    show.set_defaults(func=cmd_show)

    render = tsub.add_parser("render", help="the messages a judge receives for one RMB item")
    render.add_argument("template", metavar="NAME", help="built-in name or path to a .j2 file")
    render.add_argument("--item", required=True, metavar="UID", help="pair:848, bon:3294, or 848")
    render.add_argument("--data", type=Path, metavar="PATH", help="dataset (default: $RMB_DATA)")
    render.add_argument(
        "--loser", type=int, default=1, metavar="K", help="BoN, pairwise template: loser K (1..)"
    )
    render.add_argument(
        "--candidate", metavar="ID", help="pointwise: chosen|rejected|best|loserK (default: first)"
    )
    render.add_argument("--json", action="store_true", help="print the messages as JSON")
    render.set_defaults(func=cmd_render)

    pp = sub.add_parser("parse", help="read judge outputs with a template's parser")
    pp.add_argument("--template", default=DEFAULT_TEMPLATE, metavar="NAME")
    pp.add_argument(
        "file",
        nargs="?",
        default="-",
        metavar="FILE|-",
        help="plain text (one answer), or JSONL: a 'text' field per line, or `rmb cache export` lines",
    )
    pp.add_argument("--n", type=int, metavar="N", help="responses shown (listwise; default 2/1)")
    pp.set_defaults(func=cmd_parse)


# ---------------------------------------------------------------- list / show


def cmd_list(args: argparse.Namespace) -> int:
    rows = [(t.name, t.mode, t.parser, t.description) for t in list_templates()]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    t = load_template(args.template)
    print(f"name:        {t.name}\nmode:        {t.mode}\nparser:      {t.parser}")
    print(f"version:     {t.version}\ndescription: {t.description}")
    print(f"path:        {t.path}\ntext hash:   {t.text_hash()}")
    print(f"request:     {_extras(t) or 'judge defaults'}")
    print("-" * 72)
    print(t.source, end="" if t.source.endswith("\n") else "\n")
    return 0


def _extras(t: Template) -> str:
    pairs = [
        ("max_tokens", t.max_tokens),
        ("top_logprobs", t.top_logprobs),
        ("response_format", t.response_format),
    ]
    return " ".join(f"{k}={v}" for k, v in pairs if v is not None)


# ---------------------------------------------------------------- render


def find_item(items: list[Item], uid: str) -> Item:
    """By full uid (pair:848), or by number when only one set has it."""
    by_uid = {it.uid: it for it in items}
    if uid in by_uid:
        return by_uid[uid]
    matches = [u for u in (f"pair:{uid}", f"bon:{uid}") if u in by_uid]
    if len(matches) == 1:
        return by_uid[matches[0]]
    if matches:
        raise UserError(f"--item {uid} is ambiguous: {' and '.join(matches)} both exist; give one")
    raise UserError(f"--item {uid}: no such item (uids look like pair:848 or bon:3294)")


def shown_candidates(
    t: Template, item: Item, loser: int, candidate: str | None
) -> tuple[list[str], str]:
    """Candidate ids in display order for this template, and a note saying why this order."""
    ids = list(item.candidates())
    if candidate is not None and t.mode != "pointwise":
        raise UserError(f"--candidate is for pointwise templates; {t.name!r} is {t.mode}")
    if t.mode == "pointwise":
        pick = candidate or ids[0]
        if pick not in ids:
            raise UserError(f"--candidate {pick}: {item.uid} has {', '.join(ids)}")
        return [pick], f"rated alone: {pick}"
    if t.mode == "listwise":
        return ids, "preferred first here; a run shows seeded shuffles"
    if isinstance(item, BoNItem):
        if not 1 <= loser <= len(item.losers):
            raise UserError(f"--loser {loser}: {item.uid} has losers 1..{len(item.losers)}")
        return [
            "best",
            f"loser{loser}",
        ], "best first here; --orders both also judges the swap"
    assert isinstance(item, PairwiseItem)
    return ["chosen", "rejected"], "chosen first here; --orders both also judges the swap"


def cmd_render(args: argparse.Namespace) -> int:
    t = load_template(args.template)
    item = find_item(load(data_source(args)), args.item)
    shown, note = shown_candidates(t, item, args.loser, args.candidate)
    messages = render_comparison(t, item, shown)
    labels = display_labels(t.mode, len(shown))
    order = ", ".join(f"{lbl} = {c}" for lbl, c in zip(labels, shown, strict=True))
    if args.json:
        out = {
            "template": t.name,
            "item": item.uid,
            "shown": shown,
            "labels": labels,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": t.max_tokens,
            "top_logprobs": t.top_logprobs,
            "response_format": t.response_format,
        }
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    print(
        f"# template {t.name} v{t.version} ({t.mode}, parser {t.parser}); item {item.uid} "
        f"({item.category.path})"
    )
    print(f"# display order: {order} ({note})")
    if _extras(t):
        print(f"# request: {_extras(t)}")
    for m in messages:
        print(f"----- {m.role} -----\n{m.content}")
    return 0


# ---------------------------------------------------------------- parse


def _read(file: str) -> str:
    if file == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{file}: cannot read: {e}") from None


def _completion_fields(rec: Any) -> dict[str, Any] | None:
    """A line's completion: the line itself ({"text": ...}), or its "completion" object (the
    lines `rmb cache export` writes)."""
    if isinstance(rec, dict) and isinstance(rec.get("text"), str):
        return rec
    inner = rec.get("completion") if isinstance(rec, dict) else None
    return inner if isinstance(inner, dict) and isinstance(inner.get("text"), str) else None


def _jsonl_records(text: str) -> list[dict[str, Any]] | None:
    """The records when every non-empty line is a JSON object holding a completion; else None
    (the input is one plain-text answer)."""
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            return None
        if _completion_fields(rec) is None:
            return None
        records.append(rec)
    return records or None


def verdict_json(v: Verdict, labels: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": v.kind}
    if v.choice is not None:
        out["choice"] = v.choice
        out["label"] = labels[v.choice] if v.choice < len(labels) else None
    if v.score is not None:
        out["score"] = v.score
    if v.probs is not None:
        out["probs"] = list(v.probs)
    if v.reason:
        out["reason"] = v.reason
    return out


def cmd_parse(args: argparse.Namespace) -> int:
    t = load_template(args.template)
    default_n = {"pairwise": 2, "pointwise": 1}.get(t.mode)
    text = _read(args.file)
    records = _jsonl_records(text) or [{"text": text}]
    where = "stdin" if args.file == "-" else args.file
    for i, rec in enumerate(records, 1):
        n = args.n or rec.get("n_shown") or default_n
        if not isinstance(n, int) or n < 1:
            raise UserError(f"{where}: record {i}: listwise needs --n N or an 'n_shown' field")
        try:
            completion = Completion.from_dict(_completion_fields(rec) or rec)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UserError(f"{where}: record {i}: not a completion record ({e})") from None
        out = verdict_json(parse(t.parser, completion, n), display_labels(t.mode, n))
        for key in ("id", "key"):
            if key in rec:
                out = {key: rec[key], **out}
                break
        print(json.dumps(out, ensure_ascii=False))
    return 0
