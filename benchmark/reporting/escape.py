"""Text from the dataset or a judge (scenario and model names, labels, reasons) escaped for the
place it goes. A name is data, never markup or a terminal command: ESC/OSC sequences (an OSC 52
clipboard write, a cursor move, a title change) are shown, not obeyed; rich markup is printed as
typed; Markdown gets no raw HTML. (HTML reports escape through Jinja's autoescape.)"""

from __future__ import annotations

import re

# C0 and C1 control characters, DEL, and the bidirectional overrides that reorder what a
# terminal or an editor shows ("Trojan source")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_MD_SPECIAL = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|"}


def _visible(m: re.Match[str]) -> str:
    c = m.group()
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def for_terminal(text: str, *, keep_newlines: bool = True) -> str:
    """Control characters shown as \\x1b, \\u202e...; tabs and (if kept) newlines left as they are."""
    text = _CONTROL.sub(_visible, text)
    return text if keep_newlines else text.replace("\n", "\\n").replace("\t", "\\t")


def for_markdown(text: object) -> str:
    """One table cell or heading: one line, no raw HTML, no column break, controls shown."""
    flat = for_terminal(str(text), keep_newlines=False)
    return "".join(_MD_SPECIAL.get(c, c) for c in flat)


def for_rich(text: object) -> str:
    """A cell of a rich table: its markup printed as typed, controls shown."""
    from rich.markup import escape  # rich is imported where it prints

    return escape(for_terminal(str(text), keep_newlines=False))
