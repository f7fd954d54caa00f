"""Every option of a run in one typed record, `RunOptions`: its fields generate the `rmb run`
flags, the run config's keys (TOML, see benchmark.config) and their defaults, the checks made
before anything runs, and the manifest's record of the options. A new option is one field here
(and, if it changes what a judge is asked, the JudgeOptions field it fills).

Each field's metadata is an `Opt`: the help text, the flag group, and what a value must be
(`min`/`max`, `above` for a strict lower bound, `finite`, `choices`). Adding an option:

    reasoning_effort: str | None = opt(
        None, "how hard a reasoning model thinks", "judge",
        choices=("low", "medium", "high"), judge="reasoning_effort",
    )

gives `--reasoning-effort`, the config key `reasoning_effort`, the check, the manifest entry,
and `judge_options().reasoning_effort`. The kind of value comes from the annotation: str (or
Path), int, float, bool, tuple[str, ...] (a repeatable flag), dict[str, Any] (a JSON object
on the command line, a TOML table in a config)."""

from __future__ import annotations

import functools
import typing
from collections.abc import Iterator
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from judges.base import DEFAULT, JudgeOptions
from judges.models import ANSWER_TOKENS, ANTHROPIC_VERSION, ANTHROPIC_VERSIONS, REASONING_TOKENS
from judges.pool import MAX_SLOTS as POOL_SLOTS
from judges.pool import read_url_file

from .data import Goal, Selection, SetName
from .option_meta import Kind, Opt, check_value, hint_kind, opt
from .option_meta import valid_kind as valid_kind  # re-exported
from .plan import BON_STRATEGIES, ORDERS

_J = JudgeOptions()
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
VERBOSITY = ("low", "medium", "high")


@dataclass(frozen=True, slots=True)
class RunOptions:
    """The options of one run, as `rmb run` flags, config keys and `benchmark.run(options)`."""

    judge: str | None = opt(
        None,
        "openai:MODEL, anthropic:MODEL, vllm:MODEL, local (default: openai if OPENAI_API_KEY is "
        "set, else anthropic if ANTHROPIC_API_KEY is, else local)",
        "main",
        metavar="SPEC",
    )
    template: str = opt(
        "pairwise",
        "prompt template (default: pairwise); see `rmb templates list`",
        "main",
        metavar="NAME|PATH",
    )
    # ------------------------------------------------------------------ selection
    data: str | Path | None = opt(
        None,
        "RMB_dataset directory, one RMB JSON file, or a JSONL file of records in the same shape "
        "(default: $RMB_DATA, else the copy `rmb data fetch` made)",
        "selection",
        metavar="PATH",
    )
    sets: tuple[str, ...] = opt(
        ("pairwise", "bon"),
        "pairwise and/or bon (repeat or comma-separate; default: both)",
        "selection",
        metavar="SET",
        choices=typing.get_args(SetName),
        flag="--set",
    )
    goals: tuple[str, ...] = opt(
        ("helpfulness", "harmlessness"),
        "helpfulness and/or harmlessness (repeat or comma-separate; default: both)",
        "selection",
        metavar="GOAL",
        choices=typing.get_args(Goal),
        flag="--goal",
    )
    tasks: tuple[str, ...] = opt(
        (),
        "helpfulness task name or glob, e.g. 'Code' (case-insensitive; repeatable)",
        "selection",
        metavar="GLOB",
        flag="--task",
    )
    scenarios: tuple[str, ...] = opt(
        (),
        "scenario name or glob, e.g. 'S1*' or '*Translation' (case-insensitive; repeatable)",
        "selection",
        metavar="GLOB",
        flag="--scenario",
    )
    per_scenario: int | None = opt(
        None,
        "at most N items per scenario and set, seeded sample",
        "selection",
        metavar="N",
        min=1,
        max=10**9,
    )
    limit: int | None = opt(
        None, "at most N items in all, seeded sample", "selection", metavar="N", min=1, max=10**9
    )
    seed: int = opt(
        0,
        "sampling seed (default 0); a given seed picks the same items every time",
        "selection",
        min=0,
        max=2**32 - 1,  # what every RNG (and the judges' `seed` fields) accept
    )
    # ------------------------------------------------------------------ plan
    orders: str = opt("both", "pairwise display orders (default: both)", "plan", choices=ORDERS)
    bon_strategy: str | None = opt(
        None, "Best-of-N strategy (default: the template's mode)", "plan", choices=BON_STRATEGIES
    )
    permutations: int = opt(
        1, "listwise: K seeded shuffles per item (default 1)", "plan", metavar="K", min=1, max=1000
    )
    samples: int = opt(
        1,
        "K answers per comparison, majority vote (default 1)",
        "plan",
        metavar="K",
        min=1,
        max=1000,
    )
    ties: str = opt(
        "strict",
        "a tie scores 0 (strict, RMB's rule) or 0.5 (default: strict)",
        "plan",
        choices=("strict", "half"),
    )
    bootstrap: int = opt(
        1000,
        "bootstrap resamples for intervals (default 1000)",
        "plan",
        metavar="N",
        min=0,
        max=10**6,
    )
    # ------------------------------------------------------------------ judge
    concurrency: int | None = opt(
        None,
        f"requests in flight (default {_J.concurrency}); for several --base-url servers each "
        f"one's ceiling (default {POOL_SLOTS}: each server's limit adapts to its queueing)",
        "judge",
        metavar="N",
        min=1,
        max=100_000,
        judge="concurrency",
    )
    rps: float | None = opt(
        None,
        "at most R requests per second",
        "judge",
        metavar="R",
        above=0,
        max=1e6,
        finite=True,
        judge="requests_per_s",
    )
    tpm: int | None = opt(
        None,
        "at most T tokens per minute",
        "judge",
        metavar="T",
        min=1,
        max=10**12,
        judge="tokens_per_min",
    )
    temperature: float | None = opt(
        None,
        "sampling temperature (default: 0 where the model family takes one, not sent where it "
        "does not: reasoning models, Claude on API version 2026-10-21)",
        "judge",
        min=0,
        max=2,  # OpenAI's range (Anthropic's is 0-1: the API says so)
        finite=True,
        judge="temperature",
    )
    max_tokens: int | None = opt(
        None,
        f"token limit of an answer (default {ANSWER_TOKENS:,}, or {REASONING_TOKENS:,} for a "
        "model that reasons: its thinking counts against the limit; a template may set its own)",
        "judge",
        metavar="N",
        min=1,
        max=10**7,
        judge="max_tokens",
    )
    reasoning_effort: str | None = opt(
        None,
        "OpenAI reasoning_effort / Anthropic output_config.effort (default: the API's own; "
        "see `rmb prices MODEL` for what a model is sent)",
        "judge",
        choices=EFFORTS,
        judge="reasoning_effort",
    )
    verbosity: str | None = opt(
        None,
        "OpenAI GPT-5 verbosity (default: the API's own)",
        "judge",
        choices=VERBOSITY,
        judge="verbosity",
    )
    thinking: str | None = opt(
        None,
        "Claude thinking: adaptive, disabled, or a budget of N tokens (>= 1024) (default: the "
        "model's own: off before Claude 5, adaptive from it)",
        "judge",
        metavar="MODE|N",
        judge="thinking",
    )
    chat_template_kwargs: dict[str, Any] | None = opt(
        None,
        "chat-template arguments for vLLM/SGLang, a JSON object, e.g. '{\"enable_thinking\": false}'",
        "judge",
        metavar="JSON",
        judge="chat_template_kwargs",
    )
    extra_body: dict[str, Any] | None = opt(
        None,
        "more request body fields a server accepts, a JSON object (merged last)",
        "judge",
        metavar="JSON",
        judge="extra_body",
    )
    api_version: str | None = opt(
        None,
        f"anthropic-version both Anthropic transports send (default {ANTHROPIC_VERSION}, the "
        "SDK's; 2023-06-01 still takes a temperature on the models that had one)",
        "judge",
        choices=ANTHROPIC_VERSIONS,
        judge="api_version",
    )
    system_prompt: str | None = opt(
        None,
        "a system message put before the template's",
        "judge",
        metavar="TEXT",
        judge="system_prompt",
    )
    base_url: tuple[str, ...] = opt(
        (),
        "OpenAI-compatible server (vLLM, llama.cpp, SGLang); repeat it for several servers of "
        "one judge: each request goes to the least busy, a failing one is rested and retried",
        "judge",
        metavar="URL",
        judge="base_urls",
    )
    base_url_file: str | None = opt(
        None,
        "a file of base URLs, one a line (# comments): the servers of one judge",
        "judge",
        metavar="FILE",
    )
    judge_id: str | None = opt(
        None,
        "the cache identity of a custom server's judge instead of its address (e.g. "
        "MODEL@REVISION), so its cache survives a move; several servers without it are named by "
        "the model id they serve",
        "judge",
        metavar="NAME",
        judge="judge_id",
    )
    replicas: int = opt(
        1,
        "vllm: engine replicas on Ray (default 1: one engine in this process)",
        "judge",
        metavar="N",
        min=1,
        judge="replicas",
    )
    tensor_parallel: int = opt(
        1,
        "vllm: GPUs per pipeline stage of each engine (tensor parallel; default 1)",
        "judge",
        metavar="K",
        min=1,
        judge="tensor_parallel",
    )
    pipeline_parallel: int = opt(
        1,
        "vllm: pipeline stages of each engine, across nodes on Ray (default 1)",
        "judge",
        metavar="P",
        min=1,
        judge="pipeline_parallel",
    )
    ray_address: str | None = opt(
        None,
        "vllm: run the replicas on this Ray cluster (auto, ray://HOST:10001) instead of a local "
        "Ray instance started for the run",
        "judge",
        metavar="ADDRESS",
        judge="ray_address",
    )
    api_key_env: str | None = opt(
        None,
        "the environment variable holding the API key",
        "judge",
        metavar="VAR",
        judge="api_key_env",
    )
    transport: str | None = opt(
        None,
        "HTTP client of openai: and anthropic: judges: the official SDK or a lean aiohttp "
        "session (default: lean for --base-url servers, sdk for the hosted APIs)",
        "judge",
        choices=("sdk", "lean"),
        judge="transport",
    )
    timeout: float = opt(
        _J.timeout_s,
        f"per-request timeout in seconds (default {_J.timeout_s:g})",
        "judge",
        metavar="S",
        above=0,
        max=86_400,
        finite=True,
        judge="timeout_s",
    )
    max_retries: int = opt(
        _J.max_retries,
        f"retries on 429/5xx/timeouts (default {_J.max_retries})",
        "judge",
        metavar="N",
        min=0,
        max=100,
        judge="max_retries",
    )
    # ------------------------------------------------------------------ run
    cache_dir: str | Path | None = opt(
        None, "answer cache (default: $RMB_CACHE_DIR or ./cache)", "run", metavar="DIR"
    )
    runs_dir: str | Path = opt(
        "runs", "where run directories go (default: ./runs)", "run", metavar="DIR"
    )
    run_id: str | None = opt(
        None,
        "run directory name (default: derived from judge, template, data, options)",
        "run",
        metavar="ID",
    )
    max_cost: float | None = opt(
        None,
        "stop before spending more than this",
        "run",
        metavar="USD",
        above=0,
        max=1e9,
        finite=True,
    )
    prices: str | Path | None = opt(
        None,
        "USD per million tokens for models the built-in table lacks "
        '(TOML/JSON: {"model": {"input": 2.5, "output": 10}})',
        "run",
        metavar="FILE",
    )
    model_rules: str | Path | None = opt(
        None,
        "request rules for model families the built-in table lacks or gets wrong "
        '(TOML/JSON: [families.NAME] match = "regex", like = "openai-gpt-5", temperature = "no")',
        "run",
        metavar="FILE",
    )
    batch: bool = opt(
        False,
        "openai:/anthropic: send through the provider's batch API (half price, within 24 h); "
        "waits and polls unless --no-wait; Ctrl-C leaves the batches running",
        "run",
    )
    no_wait: bool = opt(
        False,
        "--batch: submit and exit; rerun the command (or `rmb batches collect`) to collect",
        "run",
    )
    poll: float = opt(
        5.0,
        "--batch: first wait between polls in seconds, growing to a minute (default 5)",
        "run",
        metavar="S",
        above=0,
        finite=True,
    )
    dry_run: bool = opt(
        False, "count requests, cache hits, tokens and cost; send nothing", "run", config=False
    )
    quiet: bool = opt(False, "no progress bar, no table", "run")

    def selection(self) -> Selection:
        return Selection(
            sets=self.sets,  # type: ignore[arg-type]
            goals=self.goals,  # type: ignore[arg-type]
            tasks=self.tasks,
            scenarios=self.scenarios,
            per_scenario=self.per_scenario,
            limit=self.limit,
            seed=self.seed,
        )

    def judge_options(self, base: JudgeOptions | None = None) -> JudgeOptions:
        """The judge's settings these options give (the rest as in `base`). The servers are the
        --base-url ones, then the --base-url-file ones; an unset concurrency is the judge's
        default, or each server's ceiling when several servers make one judge."""
        given = {m.judge: getattr(self, f.name) for f, m in _opts() if m.judge}
        if given["temperature"] is None:
            given["temperature"] = DEFAULT  # the model family's default
        if self.base_url_file is not None:
            given["base_urls"] = (*self.base_url, *read_url_file(self.base_url_file))
        if self.concurrency is None:
            pool = len(given["base_urls"]) > 1 or self.judge_id is not None
            given["concurrency"] = POOL_SLOTS if pool else (base or _J).concurrency
        return replace(base or JudgeOptions(), **given)

    @property
    def in_flight(self) -> int:
        """The concurrency a run uses (the option, or its default as `judge_options` says)."""
        return self.judge_options().concurrency

    def check(self) -> RunOptions:
        """Every value against its field's rule; the first that breaks one is a UserError
        naming its flag. Returns self, so `RunOptions(...).check()` reads as a sentence."""
        kind = kinds()
        for f, m in _opts():
            check_value(m.flag_name(f.name), getattr(self, f.name), m, kind[f.name])
        return self

    def manifest(self) -> dict[str, Any]:
        """The options as the manifest records them (no secret: a key lives in the environment,
        the options name only its variable)."""
        return asdict(self)


@functools.cache
def _opts() -> tuple[tuple[Any, Opt], ...]:
    return tuple((f, f.metadata["opt"]) for f in fields(RunOptions))


@functools.cache
def kinds() -> dict[str, Kind]:
    """field name -> the kind of value it holds, from its annotation."""
    hints = typing.get_type_hints(RunOptions)
    return {f.name: hint_kind(hints[f.name]) for f in fields(RunOptions)}


def fields_in(*groups: str) -> Iterator[tuple[str, Opt]]:
    for f, m in _opts():
        if not groups or m.group in groups:
            yield f.name, m


def defaults() -> dict[str, Any]:
    return {f.name: f.default for f in fields(RunOptions) if f.default is not MISSING}
