"""`vllm:MODEL --replicas N` (judges/ray_replicas.py): engine replicas on Ray.

The `ray`-marked test is opt-in (`make test-ray`: `.venv-vllm` with Ray): two replicas of
SmolLM2-135M on a local Ray instance judge 50 real RMB comparisons through the real runner,
one replica is killed mid-run, and every comparison is answered once (the replicas' own answer
counts), with the handover in the log. The unmarked ones run everywhere."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
from pathlib import Path

import pytest

from benchmark.api import arun
from benchmark.data import PairwiseItem, load_file
from benchmark.options import RunOptions
from judges import ray_replicas
from judges.base import JudgeIdentity, JudgeOptions
from judges.errors import JudgeSetupError
from judges.providers import vllm_inproc
from judges.ray_replicas import Layout, engine_layout_kwargs
from judges.registry import build_judge

REPO = Path(__file__).resolve().parent.parent
MODEL = Path(
    os.environ.get("VLLM_MODEL") or REPO / ".venv-vllm" / "models" / "SmolLM2-135M-Instruct"
)


def test_layout_is_checked_and_becomes_engine_arguments() -> None:
    assert engine_layout_kwargs(Layout(replicas=8)) == {"distributed_executor_backend": "uni"}
    assert engine_layout_kwargs(Layout(2, tensor_parallel=4, pipeline_parallel=2)) == {
        "tensor_parallel_size": 4,
        "pipeline_parallel_size": 2,
        "distributed_executor_backend": "ray",
    }
    with pytest.raises(JudgeSetupError, match="--replicas must be at least 1"):
        Layout(replicas=0).check()


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed here")
def test_replicas_without_ray_say_how_to_get_it(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(JudgeSetupError, match="needs Ray"):
        build_judge(f"vllm:{tmp_path}", JudgeOptions(replicas=2))


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs Ray")
def test_identity_is_the_model_never_the_layout(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    ids = {
        build_judge(f"vllm:{tmp_path}", JudgeOptions(replicas=n, tensor_parallel=tp)).identity
        for n, tp in ((2, 1), (16, 1), (4, 2))
    }
    assert ids == {JudgeIdentity("vllm", vllm_inproc.model_identity(str(tmp_path)))}


def _items(rmb_dir: Path, n: int) -> list[PairwiseItem]:
    """The n shortest pairwise items with distinct answers: CPU time stays small."""
    pairs = [
        it
        for f in sorted((rmb_dir / "Pairwise_set").rglob("*.json"))
        for it in load_file(f)
        if isinstance(it, PairwiseItem) and it.chosen.text.strip() != it.rejected.text.strip()
    ]

    def size(p: PairwiseItem) -> int:
        conv = sum(len(m.content) for m in p.conversation)
        return conv + len(p.chosen.text) + len(p.rejected.text)

    return sorted(pairs, key=lambda p: (size(p), p.uid))[:n]


@pytest.mark.ray
@pytest.mark.timeout(3600)
def test_two_replicas_one_killed_mid_run_every_comparison_answered_once(
    rmb_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if not (MODEL / "config.json").is_file():
        pytest.fail(f"no converted model at {MODEL}: run `make vllm-env` (or set VLLM_MODEL)")
    options = JudgeOptions(max_tokens=48, seed=0, concurrency=64, replicas=2)
    judge = ray_replicas.build(str(MODEL), options)
    killed: list[int] = []

    async def kill_one_mid_run() -> None:
        # once replica 0 has answered a batch and is busy with the next, kill it
        while not (judge.replicas and judge.replicas[0].answered and judge.replicas[0].busy):
            await asyncio.sleep(0.2)
        killed.append(judge.replicas[0].busy)
        judge.kill_replica(0)

    async def scenario() -> object:
        killer = asyncio.create_task(kill_one_mid_run())
        try:
            return await arun(
                RunOptions(
                    template="pairwise",
                    max_tokens=options.max_tokens,
                    concurrency=options.concurrency,
                    cache_dir=tmp_path / "cache",
                    runs_dir=tmp_path / "runs",
                ),
                judge=judge,
                items=_items(rmb_dir, 25),  # 25 items x both orders = 50 comparisons
                handle_signals=False,
            )
        finally:
            killer.cancel()
            await judge.aclose()

    with caplog.at_level(logging.WARNING, logger="judges"):
        replicas = judge.replicas
        result = asyncio.run(scenario())
    assert killed, "the run ended before replica 0 could be killed"
    assert result.status == "complete" and result.comparisons == 50  # type: ignore[attr-defined]
    assert judge.stats.errors == 0
    answered = [h.answered for h in replicas]
    # every request answered, and by one replica only: the replicas returned exactly as many
    # answers as there are distinct requests, none of them from the killed one's last batch
    assert sum(answered) == result.sent == result.requests  # type: ignore[attr-defined]
    assert not replicas[0].alive and replicas[1].alive and answered[0] > 0
    assert "vllm replica 0 died" in caplog.text and "go to the 1 other replica" in caplog.text


def test_a_hub_model_is_named_with_its_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    assert vllm_inproc.model_identity("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    monkeypatch.setenv("RMB_VLLM_ENGINE_ARGS", '{"revision": "a09a354"}')
    assert (
        vllm_inproc.model_identity("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct@a09a354"
    )
