"""Crash recovery: a job recorded `submitting` whose process died may or may not have created
its batch at the provider. Before this cache submits anything for a judge, each such job is
resolved, so its keys are neither paid twice nor left held forever:

- OpenAI: our job id travels in the batch's `metadata` (`rmb_job`); a batch listed since the job
  was recorded that carries it is the job's (adopted: state `open`). None: the create never
  arrived; the uploaded input file, if any, is deleted and the keys are free.
- Anthropic (no metadata): a batch listed since then that no job records, with as many requests
  as the job, is the job's; if it has ended its custom_ids must be the job's keys. Several
  unended candidates: the job waits (keys held) until they end and their ids can be read.

A `submitting` job is stale when its owner process is gone (same host), or, recorded from
another host, when it has not moved for `LEASE_S` (its owner may be mid-upload)."""

from __future__ import annotations

import time
from typing import Any

from .jobs import Job, JobStore, owner_alive

LEASE_S = 900.0
# provider clocks and ours disagree a little: look this much before the job was recorded
SKEW_S = 300.0


def stale(job: Job, now: float | None = None) -> bool:
    alive = owner_alive(job.owner)
    if alive is None:
        return (now or time.time()) - job.updated_at > LEASE_S
    return not alive


async def resolve(api: Any, jobs: JobStore, job: Job) -> Job | None:
    """Find the batch of a `submitting` job: the job, open, if found; None if it never reached
    the provider (the job is then done and its keys free); the job unchanged if undecidable."""
    since = job.created_at - SKEW_S
    found = None
    if api.provider == "openai":
        async for r in api.recent(since):
            if r.tag == job.id:
                found = r
                break
    else:
        known = jobs.known_batch_ids()
        cands = [r async for r in api.recent(since) if r.batch_id not in known and r.total == job.n]
        keys = set(jobs.keys(job.id))
        for r in cands:
            if r.terminal and await api.custom_ids(r.batch_id) == keys:
                found = r
                break
        live = [r for r in cands if not r.terminal]
        if found is None and len(live) == 1:
            found = live[0]
        elif found is None and live:
            jobs.update(job.id, note=f"{len(live)} unended batches could be this job's; waiting")
            return job
    if found is None:
        if job.file_id:
            await api.discard_file(job.file_id)
        jobs.finish(job.id, "not created", note="the batch never reached the provider")
        return None
    jobs.update(
        job.id, batch_id=found.batch_id, state="open", status=found.status, note="recovered"
    )
    return jobs.get(job.id)
