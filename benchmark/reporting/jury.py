"""`rmb jury RUN RUN ...`: a new run directory whose verdicts combine several runs' verdicts
(see analysis/jury.py), with a manifest naming its members, scored and reported like any run:
`rmb compare` pits it against its best member, `rmb leaderboard` ranks it with the others."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark import rundir as mf
from benchmark.analysis.jury import JuryError, JuryRule, Member, jury
from benchmark.reporting.board import plan_text
from benchmark.rundir import COMPARISONS_FILE, MANIFEST_FILE, read_judged, read_manifest
from judges.errors import UserError

from .facts import run_label as label_of
from .rebuild import Rebuilt, rebuild


@dataclass
class JuryRun:
    run_dir: Path
    rebuilt: Rebuilt
    warnings: list[str] = field(default_factory=list)


def _member(path: Path) -> tuple[Member, dict[str, Any]]:
    if not (path / COMPARISONS_FILE).is_file():
        raise UserError(f"{path}: not a run directory (no {COMPARISONS_FILE})")
    manifest = read_manifest(path)
    return Member(label_of(manifest) or path.name, read_judged(path)), manifest


def _same(values: Sequence[Any]) -> Any:
    return values[0] if all(v == values[0] for v in values) else None


def make_jury(
    paths: Sequence[Path],
    *,
    rule: JuryRule = "majority",
    shared: bool = False,
    out: Path | None = None,
    data: Path | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
) -> JuryRun:
    """Combine the runs at `paths` into a new run directory (default: runs/jury-<rule>-<hash>
    beside the first member) and write its reports."""
    loaded = [_member(Path(p)) for p in paths]
    members = [m for m, _ in loaded]
    manifests = [m for _, m in loaded]
    labels = [m.label for m in members]
    # two runs of one judge × template: tell them apart by directory
    members = [
        Member(f"{m.label} ({Path(p).name})", m.judged) if labels.count(m.label) > 1 else m
        for m, p in zip(members, paths, strict=True)
    ]
    plans = [m.get("plan") or {} for m in manifests]
    try:
        verdicts = jury(members, rule, shared=shared)
    except JuryError as e:
        if _same(plans) is None:
            differ = "; ".join(
                f"{m.label}: {plan_text(p)}" for m, p in zip(members, plans, strict=True)
            )
            raise JuryError(f"{e} (the plans differ: {differ})") from None
        raise
    digest = hashlib.sha256(
        "\n".join([rule, str(shared), *(str(Path(p).resolve()) for p in paths)]).encode()
    ).hexdigest()
    run_id = f"jury-{rule}-{digest[:8]}"
    run_dir = out or Path(paths[0]).parent / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    first = manifests[0]
    modes = [(m.get("template") or {}).get("mode") for m in manifests]
    template_names = [(m.get("template") or {}).get("name") for m in manifests]
    data_info = dict(first.get("data") or {})
    if verdicts.warnings:
        # restricted: its own items, named by the comparisons kept (no selection applies)
        uids = sorted({j.comparison.item_uid for j in verdicts.judged})
        data_info["items"] = len(uids)
        data_info["items_hash"] = "jury:" + hashlib.sha256("\n".join(uids).encode()).hexdigest()
    manifest = {
        "run_id": run_id,
        "status": "complete",
        # with one template, the label's "× template" says it once
        "judge": f"jury ({rule}): "
        + " + ".join(
            str(mm.get("judge") or m.label) if _same(template_names) else m.label
            for m, mm in zip(members, manifests, strict=True)
        ),
        "template": {"name": _same(template_names) or "mixed", "mode": _same(modes)},
        "jury": {
            "rule": rule,
            "shared_only": bool(verdicts.warnings),
            "members": [
                {"label": m.label, "path": str(Path(p).resolve()), "run_id": mm.get("run_id")}
                for m, p, mm in zip(members, paths, manifests, strict=True)
            ],
        },
        "data": data_info,
        "selection": None if verdicts.warnings else first.get("selection"),
        "plan": first.get("plan"),
        "ties": first.get("ties") or "strict",
        "cache": first.get("cache"),
        "versions": mf.versions(),
        "git_commit": mf.git_commit(),
        "started_at": mf.now_iso(),
        "finished_at": mf.now_iso(),
        "warnings": verdicts.warnings,
    }
    mf.write_json(run_dir / MANIFEST_FILE, manifest)
    (run_dir / COMPARISONS_FILE).write_text("".join(j.to_json() + "\n" for j in verdicts.judged))
    rebuilt = rebuild(run_dir, data=data, bootstrap=bootstrap, seed=seed, reparse_answers=False)
    return JuryRun(run_dir, rebuilt, verdicts.warnings)
