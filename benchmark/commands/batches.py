"""`rmb batches list|status|cancel|collect`: the batch jobs recorded in a cache (`rmb run --batch`).

`list` reads the cache database only; the others ask each job's provider (with the judge's key,
from the provider's variable or --api-key-env). `collect` puts every ended batch's answers in the
cache, so a later `rmb run` or `rmb report` finds them; rerunning the `rmb run --batch` command
does the same and also submits what is missing."""

from __future__ import annotations

import argparse
import asyncio
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from judges.errors import UserError

if TYPE_CHECKING:
    from judges.base import JudgeIdentity
    from judges.batch import Job


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batches", help="list, poll, cancel or collect provider batch jobs")
    bsub = p.add_subparsers(dest="batches_command", required=True, metavar="ACTION")

    def add(name: str, help_: str, remote: bool = True) -> argparse.ArgumentParser:
        c = bsub.add_parser(name, help=help_)
        c.add_argument(
            "--cache-dir", type=Path, metavar="DIR", help="default: $RMB_CACHE_DIR or ./cache"
        )
        if remote:
            c.add_argument(
                "--api-key-env", metavar="VAR", help="the environment variable holding the API key"
            )
        return c

    ls = add("list", "the open batch jobs (--all: finished ones too)", remote=False)
    ls.add_argument("--all", action="store_true", help="finished jobs too")
    ls.set_defaults(func=cmd_list)
    st = add("status", "poll the open jobs at their providers")
    st.set_defaults(func=cmd_status)
    ca = add("cancel", "cancel jobs at their providers (finished lines are still collected)")
    ca.add_argument("jobs", nargs="*", metavar="JOB", help="job or batch ids (default: all open)")
    ca.set_defaults(func=cmd_cancel)
    co = add("collect", "put the answers of every ended batch in the cache")
    co.set_defaults(func=cmd_collect)


def _jobs_store(args: argparse.Namespace) -> Any:
    from judges.batch import JobStore
    from judges.cache import default_cache_dir

    directory = args.cache_dir or default_cache_dir()
    if not (directory / "completions.sqlite").exists():
        raise UserError(f"{directory}: no cache here yet (a run creates it); pass --cache-dir DIR")
    return JobStore(directory)


def cmd_list(args: argparse.Namespace) -> int:
    from judges.batch import JobView, progress_line

    jobs = _jobs_store(args)
    states = ("submitting", "open", "done") if args.all else ("submitting", "open")
    found = jobs.jobs(states=states)
    if not found:
        print("no batch jobs" if args.all else "no open batch jobs")
    for job in found:
        note = f"  ({job.note})" if job.note else ""
        print(f"{job.identity.label()}  {progress_line(JobView(job, None))}  {job.status}{note}")
    return 0


def _by_judge(jobs: list[Job]) -> dict[JudgeIdentity, list[Job]]:
    out: dict[JudgeIdentity, list[Job]] = defaultdict(list)
    for job in jobs:
        out[job.identity].append(job)
    return out


async def _each_judge(args: argparse.Namespace, act: Any) -> None:
    """`act(runner, jobs)` for every judge with open jobs, its batch client built from its
    identity (the key from its provider's variable, or --api-key-env)."""
    from judges.base import JudgeOptions
    from judges.cache import CacheStore
    from judges.registry import build_judge

    from ..runner.batch import make_runner

    jobs = _jobs_store(args)
    store = CacheStore(jobs.path.parent)
    try:
        for identity, open_jobs in _by_judge(jobs.jobs()).items():
            options = JudgeOptions(base_url=identity.base_url or None, api_key_env=args.api_key_env)
            judge = build_judge(f"{identity.provider}:{identity.model}", options)
            runner = make_runner(judge, store, cut_ok=False)
            try:
                await act(runner, open_jobs)
            finally:
                await runner.api.aclose()
                runner.jobs.close()
                await judge.aclose()
    finally:
        store.close()
        jobs.close()


def cmd_status(args: argparse.Namespace) -> int:
    from judges.batch import BatchOutcome, progress_line

    async def act(runner: Any, jobs: list[Job]) -> None:
        out = BatchOutcome()
        for view in await runner.refresh(out, set(), None, collect=False):
            print(f"{runner.identity.label()}  {progress_line(view)}")

    asyncio.run(_each_judge(args, act))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    wanted = set(args.jobs)

    async def act(runner: Any, jobs: list[Job]) -> None:
        for job in jobs:
            if wanted and not {job.id, job.batch_id} & wanted:
                continue
            remote = await runner.cancel(job)
            print(f"{job.id}  {job.batch_id}  {remote.status if remote else 'not created yet'}")

    asyncio.run(_each_judge(args, act))
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from judges.batch import BatchOutcome

    total = BatchOutcome()

    async def act(runner: Any, jobs: list[Job]) -> None:
        await runner.recover()
        await runner.refresh(total, set(), None)

    asyncio.run(_each_judge(args, act))
    print(
        f"{total.collected:,} answers collected into the cache; "
        f"${total.spent_usd:.4f} at batch prices; rerun `rmb run ... --batch` to submit the rest"
    )
    return 0
