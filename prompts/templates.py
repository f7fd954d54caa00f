"""Prompt templates: one Jinja file each, metadata in its front matter, rendered in a sandbox.

A template file looks like this (the front matter is a Jinja comment holding TOML, so the file
is still plain Jinja)::

    {#---
    name = "my-judge"
    mode = "pairwise"            # pairwise | listwise | pointwise
    parser = "verdict-ab"        # how the answer is read: `rmb templates list` shows each one's
    version = "1"
    description = "One line shown by `rmb templates list`."
    # optional: max_tokens = 1, top_logprobs = 5, response_format = "json", and the judge's
    # reasoning controls reasoning_effort = "none", verbosity, thinking, chat_template_kwargs
    # = {enable_thinking = false}, extra_body (a user's flag wins over them)
    ---#}
    {% block system %}You are ...{% endblock %}
    {% block user %}...{{ responses[0].text }}...{% endblock %}

`system` is optional; `user` is required; nothing may stand outside the two blocks. Variables:
`conversation` (list of {role, content}), `responses` (list of {label, text} in display order:
labels A, B for pairwise; 1..N for listwise; one response for pointwise), `n` (how many),
`goal` ("helpfulness" | "harmlessness"), `category` ({set, goal, task, scenario}). The macros
in `_common.j2` (`transcript`, `answers`) can be imported by any template.

A template is untrusted code, and what it renders goes to a judge, the cache and reports: it may
import or include only `.j2` files inside its own folder (symlinks resolved; nothing outside) and
the built-ins; a render has a deadline and its output and every string it builds a size cap (see
`prompts.sandbox`); every problem is a one-line TemplateError.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, get_args

import jinja2
import jinja2.meta
from jinja2.sandbox import SandboxedEnvironment

from judges.base import REASONING_OPTIONS, Message

from .parsers import PARSER_MODES
from .sandbox import RenderLimit, bounded_join, environment, read_source, render_deadline
from .sandbox import TemplateError as TemplateError  # defined beside the sandbox that raises it

T = TypeVar("T")
Mode = Literal["pairwise", "listwise", "pointwise"]
BUILTIN_DIR = Path(__file__).resolve().parent
DEFAULT_TEMPLATE = "pairwise"
_FRONT_OPEN, _FRONT_CLOSE = "{#---", "---#}"
_REQUIRED = ("name", "mode", "parser", "version", "description")
_OPTIONAL: dict[str, type] = {"max_tokens": int, "top_logprobs": int, "response_format": str}
# a template may also set the judge's reasoning controls (the user's flags win over it)
_REASONING: dict[str, type] = {
    k: dict if k in ("chat_template_kwargs", "extra_body") else str for k in REASONING_OPTIONS
}
_OPTIONAL.update(_REASONING)


class CategoryLike(Protocol):
    """Where an item sits in RMB (benchmark.data.Category): what a template may show of it."""

    @property
    def set(self) -> str: ...
    @property
    def goal(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def scenario(self) -> str: ...


def display_labels(mode: Mode, n: int) -> list[str]:
    """A, B for pairwise; 1..N for listwise; a single '1' for pointwise."""
    return ["A", "B"][:n] if mode == "pairwise" else [str(i + 1) for i in range(n)]


def _check_count(name: str, mode: Mode, n: int) -> None:
    ok = {"pairwise": n == 2, "pointwise": n == 1, "listwise": n >= 2}[mode]
    if not ok:
        want = {"pairwise": "exactly 2", "pointwise": "exactly 1", "listwise": "at least 2"}[mode]
        raise TemplateError(f"template {name!r} ({mode}) needs {want} responses, got {n}")


@dataclass(frozen=True)
class Template:
    name: str
    mode: Mode
    parser: str
    version: str
    description: str
    source: str
    path: Path | None
    max_tokens: int | None = None
    top_logprobs: int | None = None
    response_format: str | None = None
    # reasoning controls from the front matter (JudgeOptions.with_defaults takes them)
    reasoning: dict[str, Any] = field(default_factory=dict, compare=False)
    # (name, source) of each template it imports or includes, transitively (`_common.j2`)
    imports: tuple[tuple[str, str], ...] = ()
    _jinja: jinja2.Template | None = field(default=None, repr=False, compare=False)

    def text_hash(self) -> str:
        """SHA-256 of the template file (its front matter holds all the metadata) and of the
        files it imports: a changed macro in `_common.j2` is a changed template."""
        h = hashlib.sha256(self.source.encode())
        for name, source in self.imports:
            h.update(b"\0" + name.encode() + b"\0" + source.encode())
        return h.hexdigest()

    def render(
        self,
        *,
        conversation: Sequence[Message],
        responses: Sequence[str],
        goal: str,
        category: CategoryLike,
    ) -> tuple[Message, ...]:
        """(system, user) messages, or (user,) when the template has no system part.
        `responses` are in display order."""
        _check_count(self.name, self.mode, len(responses))
        variables = _variables(self.mode, conversation, responses, goal, category)
        parts = self._guarded(_render_parts, variables)
        system, user = parts["system"].strip(), parts["user"].strip()
        return (
            (Message("system", system), Message("user", user))
            if system
            else (Message("user", user),)
        )

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a render step; a Jinja failure becomes a one-line TemplateError."""
        assert self._jinja is not None, "Template objects come from load_template()"
        try:
            return fn(self._jinja, *args)
        except jinja2.exceptions.SecurityError as e:
            what = f"refused by the sandbox: {e}"
        except jinja2.exceptions.UndefinedError as e:
            what = f"undefined variable: {e.message}"
        except TemplateError:
            raise
        except RenderLimit as e:
            what = f"refused: {e}"
        except (Exception, RecursionError) as e:  # a filter misused on real data, a bad import...
            what = f"cannot render: {type(e).__name__}: {e}"
        raise TemplateError(f"template {self.name!r}: {_one_line(what)}")


def _variables(
    mode: Mode,
    conversation: Sequence[Message],
    responses: Sequence[str],
    goal: str,
    category: CategoryLike,
) -> dict[str, Any]:
    labels = display_labels(mode, len(responses))
    return {
        "conversation": [{"role": m.role, "content": m.content} for m in conversation],
        "responses": [{"label": lbl, "text": t} for lbl, t in zip(labels, responses, strict=True)],
        "n": len(responses),
        "goal": goal,
        "category": {k: getattr(category, k) for k in ("set", "goal", "task", "scenario")},
    }


def _render_parts(tpl: jinja2.Template, variables: dict[str, Any]) -> dict[str, str]:
    """The system and user blocks, and what the file renders outside them ("outside"), from one
    pass over the whole file (so top-level imports, macros and sets reach the blocks): each
    block's function is wrapped to keep a copy of what it yields."""
    with render_deadline():
        ctx = tpl.new_context(variables)
        parts = {"system": "", "user": ""}
        for name in parts:
            if name in ctx.blocks:
                ctx.blocks[name][0] = _capture(ctx.blocks[name][0], name, parts)
        whole = bounded_join(tpl.root_render_func(ctx))
    for text in parts.values():
        whole = whole.replace(text, "", 1)
    return {**parts, "outside": whole.strip()}


def _capture(
    block: Callable[[Any], Iterator[str]], name: str, into: dict[str, str]
) -> Callable[[Any], Iterator[str]]:
    def render(context: Any) -> Iterator[str]:
        into[name] = bounded_join(block(context))
        yield into[name]

    return render


# ---------------------------------------------------------------- loading and validation


def _front_matter(source: str, where: str) -> dict[str, Any]:
    text = source.lstrip()
    if not text.startswith(_FRONT_OPEN) or _FRONT_CLOSE not in text:
        raise TemplateError(
            f"{where}: no front matter: start the file with a '{_FRONT_OPEN}' ... '{_FRONT_CLOSE}' "
            f"comment holding name, mode, parser, version, description (TOML)"
        )
    body = text[len(_FRONT_OPEN) : text.index(_FRONT_CLOSE)]
    try:
        meta = tomllib.loads(body)
    except tomllib.TOMLDecodeError as e:
        raise TemplateError(
            f"{where}: front matter is not valid TOML: {' '.join(str(e).split())}"
        ) from None
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise TemplateError(f"{where}: front matter lacks {', '.join(missing)}")
    unknown = sorted(set(meta) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise TemplateError(f"{where}: front matter has unknown keys: {', '.join(unknown)}")
    if meta["mode"] not in get_args(Mode):
        raise TemplateError(
            f"{where}: mode {meta['mode']!r} is not one of {', '.join(get_args(Mode))}"
        )
    for key, typ in _OPTIONAL.items():
        if key in meta and not isinstance(meta[key], typ):
            raise TemplateError(f"{where}: front matter {key} must be a {typ.__name__}")
    if meta.get("response_format") not in (None, "json"):
        raise TemplateError(f'{where}: response_format must be "json" or absent')
    for key in ("name", "parser", "description"):
        if not isinstance(meta[key], str) or not meta[key].strip():
            raise TemplateError(f"{where}: front matter {key} must be a non-empty string")
    return meta


def _check_parser(meta: dict[str, Any], where: str) -> None:
    # imported here: benchmark.verdicts sits downstream of prompts in the flow
    parser = meta["parser"]
    if parser not in PARSER_MODES:
        raise TemplateError(
            f"{where}: parser {parser!r} does not exist; known: {', '.join(PARSER_MODES)}"
        )
    if PARSER_MODES[parser] != meta["mode"]:
        raise TemplateError(
            f"{where}: parser {parser!r} reads {PARSER_MODES[parser]} answers, "
            f"but the template's mode is {meta['mode']}"
        )


class _TrialCategory:
    def __init__(self, goal: str) -> None:
        self.set, self.goal, self.task, self.scenario = "pairwise", goal, "Trial", "Trial"


def _trial_render(template: Template, where: str) -> None:
    """Render a synthetic multi-turn item under both goals so an undefined variable or an unsafe
    expression fails now, not at the first real request; and refuse text outside the blocks."""
    conversation = [Message("user", "q1"), Message("assistant", "a1"), Message("user", "q2")]
    n = {"pairwise": 2, "listwise": 3, "pointwise": 1}[template.mode]
    responses = [f"response text {i}" for i in range(n)]
    for goal in ("helpfulness", "harmlessness"):
        variables = _variables(template.mode, conversation, responses, goal, _TrialCategory(goal))
        parts = template._guarded(_render_parts, variables)
        if not parts["user"].strip():
            raise TemplateError(f"{where}: the user block renders empty")
        if parts["outside"]:
            raise TemplateError(
                f"{where}: text outside {{% block system %}} / {{% block user %}} would be "
                f"ignored: {parts['outside'][:60]!r}"
            )


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _from_source(source: str, path: Path | None, where: str) -> Template:
    meta = _front_matter(source, where)
    _check_parser(meta, where)
    env = environment(path.parent if path else BUILTIN_DIR, BUILTIN_DIR)
    try:
        with render_deadline():
            compiled = env.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"{where}: line {e.lineno}: {_one_line(e.message or str(e))}") from None
    except (Exception, RecursionError) as e:  # a constant Jinja cannot print, nesting too deep
        raise TemplateError(
            f"{where}: cannot compile: {type(e).__name__}: {_one_line(str(e))}"
        ) from None
    if "user" not in compiled.blocks:
        raise TemplateError(f"{where}: no {{% block user %}} ... {{% endblock %}}")
    template = Template(
        name=meta["name"],
        mode=meta["mode"],
        parser=meta["parser"],
        version=str(meta["version"]),
        description=meta["description"],
        source=source,
        path=path,
        max_tokens=meta.get("max_tokens"),
        top_logprobs=meta.get("top_logprobs"),
        response_format=meta.get("response_format"),
        reasoning={k: meta[k] for k in _REASONING if k in meta},
        imports=_imports(env, source, where),
        _jinja=compiled,
    )
    _trial_render(template, where)
    return template


def _imports(env: SandboxedEnvironment, source: str, where: str) -> tuple[tuple[str, str], ...]:
    """The templates `source` imports, extends or includes, and theirs, each once, in order."""
    found: dict[str, str] = {}
    todo = [source]
    while todo:
        try:
            names = list(jinja2.meta.find_referenced_templates(env.parse(todo.pop())))
        except (jinja2.TemplateSyntaxError, ValueError, RecursionError) as e:
            raise TemplateError(f"{where}: an imported template: {_one_line(str(e))}") from None
        for name in names:
            if name is None:
                raise TemplateError(
                    f"{where}: imports a template named by an expression; name it literally "
                    "so the run can tell when it changes"
                )
            if name not in found:
                try:
                    found[name] = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
                except jinja2.TemplateNotFound:
                    raise TemplateError(f"{where}: imports {name!r}, which is not found") from None
                except TemplateError as e:
                    raise TemplateError(f"{where}: {e}") from None
                todo.append(found[name])
    return tuple(found.items())


def _builtin_paths() -> list[Path]:
    return sorted(
        (p for p in BUILTIN_DIR.glob("*.j2") if not p.name.startswith("_")), key=lambda p: p.stem
    )


def load_template(name_or_path: str) -> Template:
    """A built-in template by name, or a .j2 file by path; validated before it is returned."""
    builtin = BUILTIN_DIR / f"{name_or_path}.j2"
    looks_like_path = "/" in name_or_path or name_or_path.endswith(".j2")
    if not looks_like_path and not name_or_path.startswith("_") and builtin.is_file():
        path = builtin
    elif looks_like_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise TemplateError(f"{path}: no such template file")
    else:
        known = ", ".join(p.stem for p in _builtin_paths())
        raise TemplateError(
            f"unknown template {name_or_path!r}; built-in: {known}; or give a path to a .j2 file"
        )
    source = read_source(path, str(path))
    template = _from_source(source, path.resolve(), str(path))
    if path == builtin and template.name != path.stem:
        raise TemplateError(
            f"{path}: front matter name {template.name!r} differs from the file name"
        )
    return template


def list_templates() -> list[Template]:
    """The built-in templates, by name."""
    return [load_template(p.stem) for p in _builtin_paths()]
