"""The sandbox a template renders in (`prompts.templates`): a template is untrusted code, and
what it renders goes to a judge, the cache and reports. It may import or include only `.j2`
files inside its own folder and the built-ins (symlinks resolved; nothing outside); a render has
a deadline (`RENDER_DEADLINE_S`), and its output and every value it builds a size cap
(`MAX_PROMPT_CHARS`)."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jinja2
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment

from judges.errors import UserError

RENDER_DEADLINE_S = 5.0  # one prompt; real templates take well under a millisecond
MAX_PROMPT_CHARS = 8_000_000  # ~2M tokens: more than any judge's context
MAX_TEMPLATE_BYTES = 1_000_000  # a template file or one it imports


class TemplateError(UserError):
    """A template that cannot be used: unknown, malformed, unsafe or inconsistent."""


_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("render_deadline", default=0.0)


@contextlib.contextmanager
def render_deadline() -> Iterator[None]:
    """Within this block a render (or compile) gives up after RENDER_DEADLINE_S."""
    token = _deadline.set(time.monotonic() + RENDER_DEADLINE_S)
    try:
        yield
    finally:
        _deadline.reset(token)


class RenderLimit(Exception):
    """A render ran past its deadline or built too much text."""


def _tick() -> None:
    end = _deadline.get()
    if end and time.monotonic() > end:
        raise RenderLimit(f"still rendering after {RENDER_DEADLINE_S:g} s (a runaway loop?)")


def _bounded(value: Any) -> Any:
    if isinstance(value, str | list | tuple | bytes) and len(value) > MAX_PROMPT_CHARS:
        raise RenderLimit(f"builds a value of {len(value):,} items (cap {MAX_PROMPT_CHARS:,})")
    return value


def bounded_join(chunks: Iterator[str]) -> str:
    out, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_PROMPT_CHARS:
            raise RenderLimit(f"renders more than {MAX_PROMPT_CHARS:,} characters")
        _tick()
        out.append(chunk)
    return "".join(out)


def _small_ints(args: Sequence[Any], kwargs: dict[str, Any]) -> None:
    # a width or count argument (center(10**9), "x".ljust(...)) would allocate before any check
    for a in (*args, *kwargs.values()):
        if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_PROMPT_CHARS:
            raise RenderLimit(f"passes {a:.3g} to a function or filter (cap {MAX_PROMPT_CHARS:,})")


def _power(left: Any, right: Any) -> Any:
    ints = isinstance(left, int) and isinstance(right, int)
    # a number of thousands of digits: slow to compute, and Python refuses to print it
    if ints and abs(left) > 1 and right > 0 and right * math.log2(abs(left)) > 4096:
        raise RenderLimit(f"computes {left:.3g} ** {right}, a number too large to print")
    return left**right


def _times(left: Any, right: Any) -> Any:
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(n, int):
            _bounded_size(len(seq) * n)
    return left * right


def _bounded_size(n: int) -> None:
    if n > MAX_PROMPT_CHARS:
        raise RenderLimit(f"builds a value of {n:,} items (cap {MAX_PROMPT_CHARS:,})")


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox (no attribute escapes) plus bounds: the deadline is checked at every
    call, attribute and item access; `*` and `**` are checked before they run (this also keeps
    the compiler from folding `10**10**10` at load); results are size-capped."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        _tick()
        if op == "**":
            return _power(left, right)
        if op == "*":
            return _times(left, right)
        return super().call_binop(context, op, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        _small_ints(args, kwargs)
        return _bounded(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        return _bounded(super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return _bounded(super().getitem(obj, argument))


def _bounded_filter(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)  # keeps jinja's pass_context/pass_environment marks
    def run(*args: Any, **kwargs: Any) -> Any:
        _tick()
        _small_ints(args[1:], kwargs)
        return _bounded(fn(*args, **kwargs))

    return run


class _FolderLoader(jinja2.BaseLoader):
    """`.j2` files inside the given folders only: a name with `..`, a symlink or anything else
    that resolves outside its folder is refused (a `helpers.j2 -> ~/.aws/credentials` would
    send the secret to the judge, the cache and every report)."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders = [f.resolve() for f in folders]

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        if not template.endswith(".j2"):
            raise TemplateError(f"imports {template!r}: only .j2 files can be imported")
        pieces = split_template_path(template)  # TemplateNotFound on '..'
        for folder in self.folders:
            path = folder.joinpath(*pieces)
            if not path.exists() and not path.is_symlink():
                continue
            real = path.resolve()
            if not real.is_relative_to(folder) or not real.is_file():
                raise TemplateError(
                    f"imports {template!r}, which leads outside {folder} (a symlink?); only .j2 "
                    "files inside the template's folder and the built-ins can be imported"
                )
            return read_source(real, template), str(real), lambda: True
        raise jinja2.TemplateNotFound(template)


def read_source(path: Path, where: str) -> str:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_TEMPLATE_BYTES + 1)
        if len(data) > MAX_TEMPLATE_BYTES:
            raise TemplateError(f"{where}: larger than {MAX_TEMPLATE_BYTES:,} bytes")
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TemplateError(f"{where}: cannot read: {e}") from None


def environment(search: Path, builtin_dir: Path) -> SandboxedEnvironment:
    # the template's own folder first, then the built-ins (for `{% import "_common.j2" %}`)
    env = _Sandbox(
        loader=_FolderLoader([search, builtin_dir]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters = {name: _bounded_filter(f) for name, f in env.filters.items()}
    return env
