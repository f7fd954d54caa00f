"""vLLM for real, on CPU, with SmolLM2-135M-Instruct converted from the shipped GGUF.

The `vllm`-marked tests are opt-in (`make test-vllm`; `make test` deselects them): they need
`.venv-vllm` from `make vllm-env` and take minutes. The unmarked ones (engine flags, model
identity, a server that fails to start) run everywhere. Twenty real RMB comparisons (ten short pairwise items, both
orders) go through each path with the real runner — in-process `vllm:`, `vllm-server:` through
the OpenAI backend, and the same kind of server through the Anthropic backend — and each path's
rerun must be answered from the cache alone."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

import benchmark
from benchmark.api import RunResult
from benchmark.data import Item, PairwiseItem, load_file
from benchmark.options import RunOptions
from judges import vllm_server
from judges.base import JudgeOptions, Message
from judges.errors import JudgeSetupError
from judges.providers import anthropic_api, openai_api, vllm_inproc
from judges.providers.vllm_inproc import check_model, cpu_dtype, model_identity

REPO = Path(__file__).resolve().parent.parent
MODEL = Path(
    os.environ.get("VLLM_MODEL") or REPO / ".venv-vllm" / "models" / "SmolLM2-135M-Instruct"
)
PER_GOAL = 5  # 10 items x 2 orders = 20 comparisons
# JSON mode: vLLM's structured output makes even a 135M model close its object and stop, so the
# answers parse and are cached (free text from it rambles to max_tokens: cut off, not cached)
TEMPLATE = "pairwise-json"
OPTIONS = JudgeOptions(max_tokens=160, seed=0, concurrency=8)


@pytest.fixture(scope="module")
def model_dir() -> Path:
    if not (MODEL / "config.json").is_file():
        pytest.fail(f"no converted model at {MODEL}: run `make vllm-env` (or set VLLM_MODEL)")
    return MODEL


def _size(item: PairwiseItem) -> int:
    return (
        sum(len(m.content) for m in item.conversation)
        + len(item.chosen.text)
        + len(item.rejected.text)
    )


@pytest.fixture(scope="module")
def items(rmb_dir: Path) -> list[Item]:
    """The shortest pairwise items of each goal (distinct answers), so CPU time stays small."""
    pairs = [
        it
        for f in sorted((rmb_dir / "Pairwise_set").rglob("*.json"))
        for it in load_file(f)
        if isinstance(it, PairwiseItem) and it.chosen.text.strip() != it.rejected.text.strip()
    ]
    picked: list[Item] = []
    for goal in ("helpfulness", "harmlessness"):
        of_goal = sorted(
            (p for p in pairs if p.category.goal == goal), key=lambda p: (_size(p), p.uid)
        )
        picked += of_goal[:PER_GOAL]
    assert len(picked) == 2 * PER_GOAL
    return picked


def _vllm_children() -> list[str]:
    """Command lines of this process's children that are vLLM's (engine core, server)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        # the engine core names itself VLLM::EngineCore; the server runs vllm.entrypoints
        if ppid == os.getpid() and ("VLLM::" in cmd or "vllm.entrypoints" in cmd):
            found.append(cmd)
    return found


def _no_vllm_children(within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while _vllm_children() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _vllm_children() == []


def _run(judge: object, items: Sequence[Item], tmp: Path, template: str = TEMPLATE) -> RunResult:
    spec = judge if isinstance(judge, str) else None
    options = RunOptions(
        judge=spec,
        template=template,
        max_tokens=OPTIONS.max_tokens,
        concurrency=OPTIONS.concurrency,
        cache_dir=tmp / "cache",
        runs_dir=tmp / "runs",
        bootstrap=50,
    )
    return benchmark.run(
        options,
        judge=None if spec else judge,  # type: ignore[arg-type]
        items=items,
        handle_signals=False,
    )


def _check_first(result: RunResult, min_readable: int) -> None:
    """Every comparison asked and judged; the verdicts parse (a 135M judge is weak, but in JSON
    mode most of its answers carry a readable "winner")."""
    assert result.status == "complete"
    assert result.comparisons == 4 * PER_GOAL
    assert result.sent == result.requests > 0
    assert len(result.judged) == result.comparisons
    kinds = [j.verdict.kind for j in result.judged]
    assert set(kinds) <= {"choice", "tie", "invalid"}
    readable = [j for j in result.judged if j.verdict.kind == "choice"]
    reasons = [j.verdict.reason for j in result.judged if j.verdict.kind == "invalid"]
    assert len(readable) >= min_readable, reasons
    assert all(j.finish_reason in ("stop", "length") for j in result.judged)
    assert result.scores is not None


def _check_rerun(first: RunResult, again: RunResult, min_cached: int) -> None:
    """The rerun sends nothing for the answers the first run cached, and reads them the same."""
    cached = len({j.key for j in first.judged if j.finish_reason == "stop"})
    assert cached >= min_cached
    assert again.cache_hits == cached
    assert again.sent == again.requests - again.cache_hits
    before = {j.comparison.id: j.verdict for j in first.judged if j.finish_reason == "stop"}
    after = {j.comparison.id: j.verdict for j in again.judged}
    assert all(after[k] == v for k, v in before.items())


@pytest.mark.vllm
@pytest.mark.timeout(3600)
def test_in_process_vllm_judges_rmb_and_the_cache_answers_the_rerun(
    model_dir: Path, items: list[Item], tmp_path: Path
) -> None:
    judge = vllm_inproc.build(str(model_dir), OPTIONS)
    try:
        first = _run(judge, items, tmp_path)
    finally:
        asyncio.run(judge.aclose())
    _no_vllm_children()  # the engine core stopped with the judge
    _check_first(first, min_readable=first.comparisons // 2)
    assert first.judged[0].latency_s > 0

    rerun_judge = vllm_inproc.build(str(model_dir), OPTIONS)
    again = _run(rerun_judge, items, tmp_path)
    _check_rerun(first, again, min_cached=first.comparisons // 2)
    if again.sent == 0:
        assert not rerun_judge.loaded  # nothing to ask: the model was never loaded


@pytest.mark.vllm
@pytest.mark.timeout(3600)
def test_vllm_server_through_openai_judges_rmb_and_the_cache_answers_the_rerun(
    model_dir: Path, items: list[Item], tmp_path: Path
) -> None:
    spec = f"vllm-server:{model_dir}"
    first = _run(spec, items, tmp_path)
    _no_vllm_children()  # the run closed the judge, and the judge its server
    _check_first(first, min_readable=first.comparisons // 2)

    judge = vllm_server.build(str(model_dir), OPTIONS)
    again = _run(judge, items, tmp_path)
    _check_rerun(first, again, min_cached=first.comparisons // 2)
    if again.sent == 0:
        assert judge.server.pid is None and judge._inner is None  # never started


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[vllm_server.VLLMServer]:
    srv = vllm_server.VLLMServer(model_dir, served_name=model_identity(str(model_dir)))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


# The Messages API has no JSON mode, and unconstrained the 135M model rambles to max_tokens (cut
# off: invalid, not cached). Asked for one letter with little room, it sometimes stops.
TERSE_TEMPLATE = """{#---
name = "test-terse"
mode = "pairwise"
parser = "verdict-ab"
version = "1"
description = "Test template: the better reply's letter and nothing else."
max_tokens = 12
---#}
{% from "_common.j2" import transcript, answers %}
{% block system %}
You compare two assistant replies and name the better one.
{% endblock %}
{% block user %}
{{ transcript(conversation) }}

{{ answers(responses) }}

Reply with one letter, A or B.
{% endblock %}
"""


@pytest.mark.vllm
@pytest.mark.timeout(3600)
def test_anthropic_backend_on_the_vllm_server_judges_rmb_and_reruns_from_cache(
    server: vllm_server.VLLMServer, items: list[Item], tmp_path: Path
) -> None:
    template = tmp_path / "terse.j2"
    template.write_text(TERSE_TEMPLATE)
    options = replace(OPTIONS, base_url=server.root_url)
    judge = anthropic_api.build(server.served_name, options)
    try:
        first = _run(judge, items, tmp_path, template=str(template))
        _check_first(first, min_readable=1)
        again = _run(judge, items, tmp_path, template=str(template))
        _check_rerun(first, again, min_cached=1)
    finally:
        asyncio.run(judge.aclose())


@pytest.mark.vllm
@pytest.mark.timeout(3600)
def test_same_server_answers_the_same_over_openai_and_anthropic_routes(
    server: vllm_server.VLLMServer,
) -> None:
    """Greedy decoding of one prompt (system message included): /v1/chat/completions and
    /v1/messages must give the same text, so both backends map the request the same way."""
    opts = JudgeOptions(max_tokens=40, seed=0, concurrency=1)
    msgs = (
        Message("system", "You answer in one short sentence."),
        Message("user", "Which is larger, 9.11 or 9.9? Explain briefly."),
    )
    request = opts.request(msgs, server.served_name)

    async def both() -> tuple[str, str]:
        oa = openai_api.build(server.served_name, replace(opts, base_url=server.base_url))
        an = anthropic_api.build(server.served_name, replace(opts, base_url=server.root_url))
        try:
            a, b = await asyncio.gather(oa.complete(request), an.complete(request))
        finally:
            await oa.aclose()
            await an.aclose()
        assert a.error is None and b.error is None, (a.error, b.error)
        assert a.usage.input_tokens == b.usage.input_tokens > 20
        return a.text, b.text

    via_openai, via_anthropic = asyncio.run(both())
    assert via_openai.strip() and via_openai == via_anthropic


# ---------------------------------------------------------------- everywhere (no vLLM needed)


def test_engine_arguments_become_server_flags() -> None:
    engine = {"dtype": "float32", "enforce_eager": True, "enable_prefix_caching": False}
    assert vllm_server.server_flags({**engine, "max_model_len": 4096, "seed": 0}) == [
        *("--dtype", "float32", "--enforce-eager", "--no-enable-prefix-caching"),
        *("--max-model-len", "4096", "--seed", "0"),
    ]


def test_cpu_dtype_is_bfloat16_only_where_the_cpu_computes_it() -> None:
    assert cpu_dtype("flags : fpu sse avx2 fma") == "float32"
    assert cpu_dtype("flags : avx2 avx512f avx512_bf16") == "bfloat16"
    assert cpu_dtype("flags : avx2 amx_bf16 amx_tile") == "bfloat16"


def test_model_identity_follows_the_folder_contents(tmp_path: Path) -> None:
    folder = tmp_path / "judge-model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"x" * 10)
    first = model_identity(str(folder))
    assert first.startswith("judge-model@") and model_identity(str(folder)) == first
    (folder / "model.safetensors").write_bytes(b"x" * 20)
    assert model_identity(str(folder)) != first
    assert (
        model_identity("HuggingFaceTB/SmolLM2-135M-Instruct")
        == "HuggingFaceTB/SmolLM2-135M-Instruct"
    )


def test_gguf_files_and_folders_without_config_are_refused_early(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(JudgeSetupError, match=r"GGUF file.*gguf_to_hf"):
        check_model(str(gguf))
    with pytest.raises(JudgeSetupError, match=r"no config\.json"):
        check_model(str(tmp_path))
    with pytest.raises(JudgeSetupError, match=r"no config\.json"):
        vllm_server.build(str(tmp_path), OPTIONS)


def test_a_server_that_cannot_start_is_a_setup_error_with_its_output(tmp_path: Path) -> None:
    """A real child that exits at once (its interpreter lacks vLLM): the error carries the
    reason from its output, and no process is left behind."""
    (tmp_path / "config.json").write_text("{}")
    python = str(tmp_path / "python")
    # the base interpreter outside any venv: it has no vLLM, and it is not sys.executable, so
    # the server is really started and really fails
    Path(python).symlink_to(os.path.realpath(sys.executable))
    srv = vllm_server.VLLMServer(tmp_path, "m", python=python, args=["--bogus"])
    with pytest.raises(JudgeSetupError, match=r"exited with code 1(.|\n)*No module named"):
        srv.start(timeout_s=60)
    assert srv.pid is None
