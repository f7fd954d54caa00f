"""Templates: the built-ins render every turn and every response exactly once, in display order,
on real RMB items; loading refuses broken or unsafe templates with a one-line error."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from benchmark.data import BoNItem, Item, PairwiseItem, load
from benchmark.plan import render_comparison
from judges.base import Message
from prompts import BUILTIN_DIR, Template, TemplateError, list_templates, load_template

BUILTINS = [
    "pairwise", "pairwise-tie", "pairwise-goal", "pairwise-json", "pairwise-logprob",
    "listwise", "pointwise", "pointwise-5",
]  # fmt: skip
FILES = [
    "BoN_set/Harmlessness/S3.json",  # BoN items with 6 losers, harmlessness
    "BoN_set/Helpfulness/Code/Quality and Optimization.json",  # 6 losers, helpfulness
    "Pairwise_set/Helpfulness/Reasoning/Analytical Reasoning.json",  # multi-turn helpfulness
    "Pairwise_set/Harmlessness/S9.json",  # multi-turn harmlessness
]


@pytest.fixture(scope="module")
def items(rmb_dir: Path) -> list[Item]:
    return [it for f in FILES for it in load(rmb_dir / f)]


def _texts(item: Item) -> list[str]:
    return [m.content for m in item.conversation] + [r.text for r in item.candidates().values()]


def _clean(item: Item) -> bool:
    """No text is empty or inside another: then 'appears exactly once' is a sound check."""
    texts = [t.strip() for t in _texts(item)]
    return all(t and len(t) > 20 for t in texts) and not any(
        a in b for i, a in enumerate(texts) for j, b in enumerate(texts) if i != j
    )


def pick(
    items: list[Item], *, kind: type, goal: str, turns: int, losers: int | None = None
) -> Item:
    for it in items:
        if (
            isinstance(it, kind)
            and it.category.goal == goal
            and len(it.conversation) == turns
            and (losers is None or (isinstance(it, BoNItem) and len(it.losers) == losers))
            and _clean(it)
        ):
            return it
    raise AssertionError(f"no {kind.__name__} {goal} item with {turns} turns in {FILES}")


def assert_once_in_order(body: str, parts: Sequence[str]) -> list[int]:
    positions = []
    for p in parts:
        assert body.count(p) == 1, f"appears {body.count(p)} times: {p[:60]!r}"
        positions.append(body.index(p))
    assert positions == sorted(positions), "not in the given order"
    return positions


def check_rendering(t: Template, item: Item, shown: Sequence[str]) -> None:
    messages = render_comparison(t, item, shown)
    assert [m.role for m in messages] == ["system", "user"]
    system, user = messages[0].content, messages[1].content
    cands = item.candidates()
    for text in _texts(item):
        assert text not in system
    turns = assert_once_in_order(user, [m.content for m in item.conversation])
    answers = assert_once_in_order(user, [cands[c].text for c in shown])
    assert max(turns) < min(answers), "the conversation comes before the responses"
    # each turn is marked with its role, each response with its display label
    for m, pos in zip(item.conversation, turns, strict=True):
        assert user[:pos].rstrip().endswith(f"[{m.role.capitalize()}]")
    labels = ["A", "B"] if t.mode == "pairwise" else [str(i + 1) for i in range(len(shown))]
    for label, pos in zip(labels, answers, strict=True):
        assert user[:pos].rstrip().endswith(f"<response {label}>")


@pytest.mark.parametrize("name", [n for n in BUILTINS if n.startswith("pairwise")])
def test_pairwise_templates_on_real_items(name: str, items: list[Item]) -> None:
    t = load_template(name)
    for goal in ("helpfulness", "harmlessness"):
        for turns in (1, 3, 5):
            if goal == "helpfulness" and turns == 1:
                item = pick(items, kind=BoNItem, goal=goal, turns=1)
                order = ("best", "loser1")
            else:
                item = pick(items, kind=PairwiseItem, goal=goal, turns=turns)
                order = ("chosen", "rejected")
            check_rendering(t, item, order)
            check_rendering(t, item, order[::-1])


@pytest.mark.parametrize("goal", ["helpfulness", "harmlessness"])
def test_listwise_bon_with_six_losers(goal: str, items: list[Item]) -> None:
    item = pick(items, kind=BoNItem, goal=goal, turns=1, losers=6)
    ids = list(item.candidates())
    assert len(ids) == 7
    t = load_template("listwise")
    check_rendering(t, item, ids)
    shuffled = [ids[i] for i in (3, 0, 6, 2, 5, 1, 4)]
    check_rendering(t, item, shuffled)
    assert "from 1 to 7" in render_comparison(t, item, ids)[1].content


@pytest.mark.parametrize("name", ["pointwise", "pointwise-5"])
def test_pointwise_on_real_items(name: str, items: list[Item]) -> None:
    t = load_template(name)
    for goal, turns in (("helpfulness", 3), ("harmlessness", 5)):
        item = pick(items, kind=PairwiseItem, goal=goal, turns=turns)
        for cid in ("chosen", "rejected"):
            check_rendering(t, item, [cid])
            other = "rejected" if cid == "chosen" else "chosen"
            assert item.candidates()[other].text not in render_comparison(t, item, [cid])[1].content


def test_goal_picks_the_criteria(items: list[Item]) -> None:
    t = load_template("pairwise-goal")
    help_item = pick(items, kind=PairwiseItem, goal="helpfulness", turns=3)
    harm_item = pick(items, kind=PairwiseItem, goal="harmlessness", turns=3)
    help_sys = render_comparison(t, help_item, ("chosen", "rejected"))[0].content
    harm_sys = render_comparison(t, harm_item, ("chosen", "rejected"))[0].content
    assert "helpfulness" in help_sys and "harmlessness" not in help_sys
    assert "harmlessness" in harm_sys and "helpfulness" not in harm_sys


def test_builtin_metadata() -> None:
    templates = {t.name: t for t in list_templates()}
    assert sorted(templates) == sorted(BUILTINS)
    assert len({t.text_hash() for t in templates.values()}) == len(BUILTINS)
    assert load_template("pairwise").text_hash() == templates["pairwise"].text_hash()
    lp = templates["pairwise-logprob"]
    assert (lp.max_tokens, lp.top_logprobs, lp.parser) == (1, 5, "logprob-ab")
    js = templates["pairwise-json"]
    assert js.response_format == "json" and "JSON" in js.source
    assert {t.mode for t in templates.values()} == {"pairwise", "listwise", "pointwise"}
    for t in templates.values():
        assert t.path is not None and t.path.parent == BUILTIN_DIR and t.description


def test_wrong_number_of_responses() -> None:
    t = load_template("pairwise")
    with pytest.raises(TemplateError, match="exactly 2"):
        t.render(conversation=[Message("user", "q")], responses=["a", "b", "c"], goal="helpfulness",
                 category=_cat())  # fmt: skip
    with pytest.raises(TemplateError, match="exactly 1"):
        load_template("pointwise").render(
            conversation=[Message("user", "q")],
            responses=["a", "b"],
            goal="helpfulness",
            category=_cat(),
        )


def _cat():  # type: ignore[no-untyped-def]
    from benchmark.data import Category

    return Category.parse("Pairwise_set/Helpfulness/Code/Data Management")


# ---------------------------------------------------------------- user templates, validation

HEADER = '{{#---\nname = "mine"\nmode = "{mode}"\nparser = "{parser}"\nversion = "1"\ndescription = "test"\n---#}}\n'


def write(tmp_path: Path, body: str, mode: str = "pairwise", parser: str = "verdict-ab") -> str:
    p = tmp_path / "mine.j2"
    p.write_text(HEADER.format(mode=mode, parser=parser) + body)
    return str(p)


def test_user_template_by_path(tmp_path: Path) -> None:
    body = (
        '{% from "_common.j2" import transcript %}\n'
        "{% macro shout(s) %}{{ s | upper }}{% endmacro %}\n"
        "{% block user %}{{ transcript(conversation) }}\n"
        "{% for r in responses %}{{ shout(r.label) }}: {{ r.text }}\n{% endfor %}"
        "{{ category.scenario }} {{ goal }} {{ n }}{% endblock %}"
    )
    t = load_template(write(tmp_path, body))
    (msg,) = t.render(
        conversation=[Message("user", "hello")],
        responses=["one", "two"],
        goal="helpfulness",
        category=_cat(),
    )
    assert msg.role == "user"
    assert msg.content.endswith("A: one\nB: two\nData Management helpfulness 2")
    assert "[User]\nhello" in msg.content


UNSAFE = [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ responses.__class__ }}",
    "{% if goal == 'harmlessness' %}{{ ().__class__.__base__.__subclasses__() }}{% endif %}",
    "{{ conversation[0].content.format.__globals__ }}",
]


@pytest.mark.parametrize("expr", UNSAFE)
def test_sandbox_refuses(tmp_path: Path, expr: str) -> None:
    with pytest.raises(TemplateError, match="sandbox") as e:
        load_template(write(tmp_path, "{% block user %}" + expr + "{{ responses }}{% endblock %}"))
    assert "\n" not in str(e.value)


BROKEN = [
    ("{% block user %}{{ question }}{% endblock %}", {}, "undefined variable: 'question'"),
    ("{% block user %}{% if %}{% endblock %}", {}, "line"),
    ("{% block user %}{{ responses }}", {}, "line"),
    (
        "{% block user %}x{% endblock %}",
        {"parser": "verdict-xyz"},
        "parser 'verdict-xyz' does not exist",
    ),
    ("{% block user %}x{% endblock %}", {"parser": "rating-10"}, "reads pointwise answers"),
    ("{% block user %}x{% endblock %}", {"mode": "triplewise"}, "mode 'triplewise'"),
    ("{% block system %}x{% endblock %}", {}, "no {% block user %}"),
    ("stray text\n{% block user %}x{% endblock %}", {}, "outside"),
    ("{% block user %}{% if false %}x{% endif %}{% endblock %}", {}, "renders empty"),
]


@pytest.mark.parametrize(("body", "meta", "message"), BROKEN)
def test_broken_templates_are_refused(
    tmp_path: Path, body: str, meta: dict[str, str], message: str
) -> None:
    with pytest.raises(TemplateError) as e:
        load_template(write(tmp_path, body, **meta))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_front_matter_problems(tmp_path: Path) -> None:
    p = tmp_path / "bare.j2"
    p.write_text("{% block user %}x{% endblock %}")
    with pytest.raises(TemplateError, match="no front matter"):
        load_template(str(p))
    p.write_text('{#---\nname = "x"\nmode = "pairwise"\n---#}\n{% block user %}x{% endblock %}')
    with pytest.raises(TemplateError, match="lacks parser, version, description"):
        load_template(str(p))
    p.write_text(
        HEADER.format(mode="pairwise", parser="verdict-ab").replace("---#}", "colour = 1\n---#}")
    )
    with pytest.raises(TemplateError, match="unknown keys: colour"):
        load_template(str(p))
    p.write_text("{#---\nname = \n---#}\n")
    with pytest.raises(TemplateError, match="not valid TOML"):
        load_template(str(p))


def test_unknown_names() -> None:
    with pytest.raises(
        TemplateError, match="unknown template 'pairwize'; built-in: listwise, pairwise"
    ):
        load_template("pairwize")
    with pytest.raises(TemplateError, match="unknown template '_common'"):
        load_template("_common")
    with pytest.raises(TemplateError, match="no such template file"):
        load_template("nowhere/mine.j2")


@pytest.mark.parametrize("name", BUILTINS)
def test_same_pair_same_request_in_both_sets(name: str) -> None:
    # BoN comparisons that repeat a pairwise pair must render the same request (one cache entry)
    from benchmark.data import Category

    t = load_template(name)
    n = {"pairwise": 2, "listwise": 3, "pointwise": 1}[t.mode]
    conv, responses = [Message("user", "q")], [f"r{i}" for i in range(n)]
    for goal, tail in (("helpfulness", "Code/Data Management"), ("harmlessness", "S1")):
        pair, bon = (
            Category.parse(f"{s}/{goal.capitalize()}/{tail}") for s in ("Pairwise_set", "BoN_set")
        )
        got = [
            t.render(conversation=conv, responses=responses, goal=goal, category=c)
            for c in (pair, bon)
        ]
        assert got[0] == got[1]


def test_response_text_is_data_not_template() -> None:
    # answers about Jinja or with braces are shown literally, never evaluated
    text = "Use {{ ''.__class__ }} and {% raw %} in Jinja; {# not a comment #}"
    (_, user) = load_template("pairwise").render(
        conversation=[Message("user", "How do I escape {{ x }}?")],
        responses=[text, "other"],
        goal="helpfulness",
        category=_cat(),
    )
    assert text in user.content and "How do I escape {{ x }}?" in user.content


def test_imports_are_part_of_the_template(tmp_path: Path) -> None:
    """What a template imports is hashed with it; an import the run cannot name is refused."""
    (tmp_path / "_mine.j2").write_text("{% macro m(x) %}[{{ x }}]{% endmacro %}")
    path = write(tmp_path, '{% from "_mine.j2" import m %}{% block user %}{{ m(n) }}{% endblock %}')
    before = load_template(path)
    assert [name for name, _ in before.imports] == ["_mine.j2"]
    (tmp_path / "_mine.j2").write_text("{% macro m(x) %}<{{ x }}>{% endmacro %}")
    assert load_template(path).text_hash() != before.text_hash()
    with pytest.raises(TemplateError, match=r"imports 'nowhere\.j2', which is not found"):
        load_template(
            write(tmp_path, '{% import "nowhere.j2" as w %}{% block user %}x{% endblock %}')
        )
    with pytest.raises(TemplateError, match="named by an expression"):
        load_template(write(tmp_path, "{% block user %}{% include goal %}{% endblock %}"))
