"""`vllm:MODEL --replicas N`: N vLLM engines on Ray behind one judge, on one node or a cluster.

vLLM's offline `LLM` is one engine in one process (`data_parallel_size > 1` raises in its
`__init__`), so a node of 8 GPUs or a cluster is used by running one engine per replica, each a
Ray actor holding one `vllm.LLM` through the in-process judge (judges/providers/vllm_inproc.py): the same
chat rendering, sampling parameters and parse, which is why the identity is the in-process
judge's, the model (folder digest or hub id, and revision), never the layout, and one cache
serves 1 replica or 16.

Ray's own `ray.data.llm` processors were the first candidate and do not fit a judge run: they
run a Dataset to its end (answers come back in output blocks, not one by one into the cache),
their fault handling retries inside the Dataset (a run cannot say which replica died and what
moved), and `vLLMEngineProcessorConfig` pins the vLLM API its stage code calls. What is taken
from them is how an engine is placed: one bundle per TP×PP worker, packed, the actor capturing
its children (`_ray_scheduling_strategy_fn` in ray/llm/_internal/batch/stages/
vllm_engine_stage.py), and the "uni" executor for a single-device engine, "ray" otherwise.

Work is pulled, never pushed: each replica takes the next batch of waiting requests when it is
free, so a slow replica never holds the others back, and each batch's answers go back to their
callers (the runner commits them to the cache) as soon as it returns. A replica that dies
(`RayActorError`) has its batch put back at the head of the queue for the others, and the run's
log says so; when every replica is gone the waiting requests fail with a setup error.

`ray_address` joins a running cluster (`auto`, `ray://host:10001`); without it a local Ray
instance is started for the run and stopped at `aclose()`. The `judges` package is shipped to
the workers as a runtime-env module, so nodes need vLLM and Ray, not this project."""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .base import ChatRequest, Completion, JudgeIdentity, JudgeOptions, JudgeStats
from .errors import JudgeSetupError
from .providers.vllm_inproc import check_model, model_identity, runtime_env

log = logging.getLogger("judges")

# requests per replica call: vLLM batches within a call (its default max_num_seqs is 256)
GPU_BATCH = 256
CPU_BATCH = 16
# the engine core in the actor's own process: killing the actor then leaves no orphan behind
ACTOR_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
# how long a replica may take to load its engine (a large model from a network disk is slow)
START_TIMEOUT_S = 1800.0
RAY_HINT = "install it in the vLLM venv (`.venv-vllm/bin/pip install 'ray[data]'`)"


@dataclass(frozen=True, slots=True)
class Layout:
    """How the engines are laid out: never part of the judge's identity."""

    replicas: int = 1
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    ray_address: str | None = None

    @property
    def devices_per_replica(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel

    def check(self) -> None:
        for name, n in (
            ("--replicas", self.replicas),
            ("--tensor-parallel", self.tensor_parallel),
            ("--pipeline-parallel", self.pipeline_parallel),
        ):
            if n < 1:
                raise JudgeSetupError(f"{name} must be at least 1, got {n}")


def engine_layout_kwargs(layout: Layout) -> dict[str, Any]:
    """`LLM()` arguments for one replica's engine: its TP and PP, and the executor that spans
    them ("uni" for one device, Ray's for several, as ray.data.llm chooses)."""
    if layout.devices_per_replica == 1:
        return {"distributed_executor_backend": "uni"}
    return {
        "tensor_parallel_size": layout.tensor_parallel,
        "pipeline_parallel_size": layout.pipeline_parallel,
        "distributed_executor_backend": "ray",
    }


class Replica:
    """The Ray actor: one engine (the in-process judge, holding one `vllm.LLM`)."""

    def __init__(
        self, model: str, options: JudgeOptions, llm_kwargs: dict[str, Any], env: dict[str, str]
    ) -> None:
        os.environ.update(env)
        from judges.providers.vllm_inproc import VLLMJudge

        self.judge = VLLMJudge(model, options, **llm_kwargs)
        self.judge.load()

    def ready(self) -> int:
        return os.getpid()

    def chat(self, requests: list[ChatRequest]) -> list[Completion]:
        return self.judge.run_batch(requests)


@dataclass(eq=False)
class _Handle:
    index: int
    actor: Any
    placement_group: Any = None
    alive: bool = True
    answered: int = 0
    busy: int = 0  # requests in its current batch
    pid: int | None = None


_Job = tuple[ChatRequest, "asyncio.Future[Completion]"]


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise JudgeSetupError(f"vllm --replicas needs Ray ({exc}); {RAY_HINT}") from None
    return ray


class RayVLLMJudge:
    """N engine replicas on Ray; requests batched to whichever replica is free."""

    def __init__(self, model: str, options: JudgeOptions, layout: Layout) -> None:
        check_model(model)
        layout.check()
        self.model = model
        self.options = options
        self.layout = layout
        self.identity = JudgeIdentity("vllm", model_identity(model))
        self.stats = JudgeStats()
        self.ray = _import_ray()
        self.replicas: list[_Handle] = []
        self.batch = GPU_BATCH
        self._queue: collections.deque[_Job] = collections.deque()
        self._work: asyncio.Event | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._started: asyncio.Task[None] | None = None
        self._owns_ray = False

    @property
    def max_in_flight(self) -> int:
        """Requests worth handing the judge at once: a batch in service and one waiting, per
        replica."""
        return 2 * self.batch * self.layout.replicas

    # ------------------------------------------------------------ starting

    def _connect(self) -> bool:
        """Join the cluster, or start a local Ray instance (then it is ours to stop)."""
        ray = self.ray
        if ray.is_initialized():
            return False
        env = {"py_modules": [str(Path(__file__).resolve().parent)]}
        address = self.layout.ray_address
        try:
            if address:
                ray.init(address=address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(runtime_env=env, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise JudgeSetupError(f"vllm --replicas: cannot start or join {where}: {exc}") from None
        return True

    def _placement(self, gpus: float, cpus: float) -> tuple[dict[str, Any], dict[str, str], Any]:
        """Where one replica runs (actor options, its environment, its placement group): a
        GPU, or a bundle per TP×PP worker, packed, captured by the engine's own workers; or a
        share of the CPUs."""
        ray = self.ray
        env = {**runtime_env(self.model), **ACTOR_ENV}
        opts: dict[str, Any] = {"max_restarts": 0}
        n = self.layout.devices_per_replica
        pg = None
        if gpus and n == 1:
            opts.update(num_gpus=1, num_cpus=1)
        elif gpus:
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            pg = ray.util.placement_group([{"GPU": 1, "CPU": 1}] * n, strategy="PACK")
            strategy = PlacementGroupSchedulingStrategy(
                pg, placement_group_capture_child_tasks=True
            )
            opts.update(num_gpus=0, num_cpus=0, scheduling_strategy=strategy)
        elif n > 1:
            raise JudgeSetupError(
                "vllm: --tensor-parallel/--pipeline-parallel need GPUs; this Ray cluster "
                "has none (on CPU use --replicas alone)"
            )
        else:
            opts["num_cpus"] = max(1, math.floor(cpus / self.layout.replicas))
            # vLLM's CPU engine binds its threads to every core by default: replicas sharing
            # a node would fight over them; Ray's OMP_NUM_THREADS (= num_cpus) sizes them
            env["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
        return opts, env, pg

    def _spawn(self) -> None:
        ray = self.ray
        resources = ray.cluster_resources()
        gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 1))
        need = self.layout.replicas * self.layout.devices_per_replica
        if gpus and need > gpus:
            raise JudgeSetupError(
                f"vllm: {self.layout.replicas} replicas x {self.layout.devices_per_replica} "
                f"GPUs each need {need} GPUs; the Ray cluster has {gpus:g}"
            )
        self.batch = GPU_BATCH if gpus else CPU_BATCH
        remote = ray.remote(Replica)
        llm_kwargs = engine_layout_kwargs(self.layout)
        options = replace(self.options, replicas=1, ray_address=None)
        for i in range(self.layout.replicas):
            opts, env, pg = self._placement(gpus, cpus)
            actor = remote.options(**opts).remote(self.model, options, llm_kwargs, env)
            self.replicas.append(_Handle(i, actor, pg))

    async def _start(self) -> None:
        self._owns_ray = await asyncio.to_thread(self._connect)
        await asyncio.to_thread(self._spawn)
        self._work = asyncio.Event()
        self._loops = [asyncio.create_task(self._serve(h)) for h in self.replicas]

    async def _ensure_started(self) -> None:
        if self._started is None:
            self._started = asyncio.create_task(self._start())
        await asyncio.shield(self._started)

    # ------------------------------------------------------------ serving

    def _signal(self) -> None:
        if self._work is not None:
            self._work.set()

    async def _take(self) -> list[_Job]:
        """The next batch for a free replica: up to `batch` waiting requests, split evenly
        when there are fewer than the replicas could take (so no replica idles while another
        holds the tail)."""
        assert self._work is not None
        while not self._queue:
            self._work.clear()
            await self._work.wait()
        alive = sum(h.alive for h in self.replicas) or 1
        n = min(self.batch, max(1, math.ceil(len(self._queue) / alive)))
        batch: list[_Job] = []
        while self._queue and len(batch) < n:
            job = self._queue.popleft()
            if not job[1].done():  # its caller went away (Ctrl-C)
                batch.append(job)
        if self._queue:
            self._signal()
        return batch

    def _died(self, handle: _Handle, batch: list[_Job], exc: BaseException) -> None:
        handle.alive = False
        handle.busy = 0
        self._queue.extendleft(reversed(batch))
        alive = [h for h in self.replicas if h.alive]
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if alive:
            log.warning(
                "vllm replica %d died (%s); its %d requests go to the %d other replica(s)",
                handle.index,
                reason[:300],
                len(batch),
                len(alive),
            )
            self._signal()
            return
        err = JudgeSetupError(f"vllm: every replica has died; the last: {reason[:500]}")
        while self._queue:
            _, fut = self._queue.popleft()
            if not fut.done():
                fut.set_exception(err)

    async def _serve(self, handle: _Handle) -> None:
        ray = self.ray
        try:
            # bounded: Ray may hold an actor its memory monitor killed while it loaded as
            # "to be rescheduled" with no restart left, and never answer
            handle.pid = await asyncio.wait_for(handle.actor.ready.remote(), START_TIMEOUT_S)
        except (ray.exceptions.RayActorError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                exc = TimeoutError(f"not loaded after {START_TIMEOUT_S:.0f} s")
                ray.kill(handle.actor, no_restart=True)
            self._died(handle, [], exc)
            return
        while True:
            batch = await self._take()
            if not batch:
                continue
            handle.busy = len(batch)
            try:
                done: list[Completion] = await handle.actor.chat.remote([r for r, _ in batch])
            except ray.exceptions.RayActorError as exc:
                self._died(handle, batch, exc)
                return
            except Exception as exc:  # the engine raised (a bug, a bad request): every waiter
                handle.busy = 0
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            handle.busy = 0
            handle.answered += len(done)
            for (_, fut), c in zip(batch, done, strict=True):
                self.stats.requests += 1
                self.stats.count(c)
                if not fut.done():
                    fut.set_result(c)

    async def complete(self, request: ChatRequest) -> Completion:
        await self._ensure_started()
        if not any(h.alive for h in self.replicas):
            raise JudgeSetupError("vllm: every replica has died")
        fut: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._queue.append((request, fut))
        self._signal()
        return await fut

    def kill_replica(self, index: int) -> None:
        """Stop one replica as a crash would (tests, operators): its batch moves on."""
        self.ray.kill(self.replicas[index].actor, no_restart=True)

    async def aclose(self) -> None:
        for t in self._loops:
            t.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        ray = self.ray
        for h in self.replicas:
            ray.kill(h.actor, no_restart=True)
            if h.placement_group is not None:
                ray.util.remove_placement_group(h.placement_group)
        self.replicas = []
        self._started = None
        if self._owns_ray:
            await asyncio.to_thread(ray.shutdown)
            self._owns_ray = False

    def summary(self) -> str:
        return "; ".join(
            f"replica {h.index}: {h.answered} answered" + ("" if h.alive else ", died")
            for h in self.replicas
        )


def build(model: str, options: JudgeOptions) -> RayVLLMJudge:
    """`vllm:MODEL` with --replicas N (or --ray-address): the engines on Ray."""
    if not model:
        raise JudgeSetupError("vllm: name a model id or path, e.g. --judge vllm:/models/m")
    layout = Layout(
        options.replicas, options.tensor_parallel, options.pipeline_parallel, options.ray_address
    )
    return RayVLLMJudge(model, options, layout)
