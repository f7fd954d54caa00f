"""Templates are untrusted code: what they may import, how long they may render, how much they
may build, and how every failure reads (one line, never a traceback)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_prompts import HEADER, _cat, write

import prompts.sandbox as sandbox
from judges.base import Message
from prompts.templates import TemplateError, load_template

USER = "{% block user %}{{ responses }}"


def refused(tmp_path: Path, body: str) -> str:
    with pytest.raises(TemplateError) as e:
        load_template(write(tmp_path, body))
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 600, msg
    return msg


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "home" / ".aws" / "credentials"
    secret.parent.mkdir(parents=True)
    secret.write_text("aws_secret_access_key = AKIA-SECRET")
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "helpers.j2").symlink_to(secret)
    msg = refused(folder, USER + '{% include "helpers.j2" %}{% endblock %}')
    assert "leads outside" in msg and "AKIA" not in msg


@pytest.mark.parametrize(
    "name",
    ["../outside.j2", "notes.txt", "/etc/passwd", "sub/../../outside.j2"],
)
def test_only_j2_files_inside_the_folder(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "tpl"
    (folder / "sub").mkdir(parents=True)
    (tmp_path / "outside.j2").write_text("SECRET")
    (folder / "notes.txt").write_text("SECRET")
    msg = refused(folder, USER + '{% include "' + name + '" %}{% endblock %}')
    assert "SECRET" not in msg


def test_a_j2_file_in_a_subfolder_and_the_builtins_are_fine(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "part.j2").write_text("[part]")
    body = '{% import "_common.j2" as c %}{% block user %}{% include "sub/part.j2" %}{{ n }}'
    t = load_template(write(tmp_path, body + "{% endblock %}"))
    (msg,) = t.render(
        conversation=[Message("user", "q")],
        responses=["a", "b"],
        goal="helpfulness",
        category=_cat(),
    )
    assert msg.content == "[part]2"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("{{ 'x' * 10**8 }}", "cap"),
        ("{{ 'x' * 100000000 }}", "cap"),
        ("{{ [1] * 10**9 }}", "cap"),
        ("{{ 10**100**1000 }}", "too large"),
        ("{{ 9 ** 999999 }}", "too large"),
        ("{{ 'x' | center(10**9) }}", "cap"),
        ("{{ 'x'.ljust(10**9) }}", "cap"),
        ("{{ " + "9" * 5000 + " }}", "cannot compile"),
        ("{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}", "cannot compile"),
        (
            "{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
            "{% endfor %}{{ ns.s }}",
            "cap",
        ),
    ],
)
def test_huge_values_are_refused_in_one_line(tmp_path: Path, body: str, needle: str) -> None:
    t = time.monotonic()
    msg = refused(tmp_path, USER + body + "{% endblock %}")
    assert needle in msg, msg
    assert time.monotonic() - t < 30


def test_a_runaway_loop_meets_the_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "RENDER_DEADLINE_S", 1.0)
    body = (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% for k in range(100000) %}"
        "{% endfor %}{% endfor %}{% endfor %}"
    )
    t = time.monotonic()
    msg = refused(tmp_path, USER + body + "{% endblock %}")
    assert "still rendering after 1 s" in msg
    assert time.monotonic() - t < 10


def test_output_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "MAX_PROMPT_CHARS", 100_000)
    body = "{% for i in range(100000) %}{{ responses[0].text }}{% endfor %}"
    assert "renders more than 100,000 characters" in refused(
        tmp_path, USER + body + "{% endblock %}"
    )


def test_a_huge_template_file_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "big.j2"
    p.write_text(HEADER.format(mode="pairwise", parser="verdict-ab") + "x" * 2_000_000)
    with pytest.raises(TemplateError, match="larger than"):
        load_template(str(p))


def test_a_template_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "latin.j2"
    p.write_bytes(HEADER.format(mode="pairwise", parser="verdict-ab").encode() + b"\xff\xfe")
    with pytest.raises(TemplateError, match="cannot read") as e:
        load_template(str(p))
    assert "\n" not in str(e.value)
    if os.geteuid() != 0:  # root reads anything
        p.chmod(0)
        with pytest.raises(TemplateError, match="cannot read"):
            load_template(str(p))
