"""A document page as plain blocks, written once and rendered as Markdown or as HTML.

A report builds a ``Page`` of sections of blocks (paragraphs, lists, tables, shell
commands) whose text is a sequence of ``Span`` (plain, code or strong), never markup:
so text from the store (a description, a run's input, a reason) cannot inject Markdown
or HTML. ``markdown`` escapes it by hand; ``html`` goes through a Jinja2 template with
autoescaping on, one self-contained file with no external resource.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

Kind = str  # "" plain, "code", "strong"


class Span(NamedTuple):
    text: str
    kind: Kind = ""


Text = tuple[Span, ...]


def text(*parts: str | Span) -> Text:
    """A run of text: strings are plain, spans keep their kind."""
    return tuple(p if isinstance(p, Span) else Span(p) for p in parts if p != "")


def code(value: str) -> Span:
    return Span(value, "code")


def strong(value: str) -> Span:
    return Span(value, "strong")


@dataclass(frozen=True)
class Para:
    text: Text


@dataclass(frozen=True)
class Items:
    items: tuple[Text, ...]
    numbered: bool = False


@dataclass(frozen=True)
class Grid:
    head: tuple[str, ...]
    rows: tuple[tuple[Text, ...], ...]


@dataclass(frozen=True)
class Shell:
    """Commands to type, one a line (a ``#`` line is a comment)."""

    lines: tuple[str, ...]


Block = Para | Items | Grid | Shell


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Page:
    title: str
    intro: tuple[Text, ...]
    sections: tuple[Section, ...]


# -- Markdown ---------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}#+!|~])")


def _md_plain(value: str) -> str:
    value = re.sub(r"\s+", " ", value)  # no newline can start a heading or end a table row
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", value)


def _md_code(value: str) -> str:
    value = re.sub(r"\s+", " ", value)
    longest = max((len(m) for m in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _md_text(spans: Text) -> str:
    out = []
    for s in spans:
        if s.kind == "code":
            out.append(_md_code(s.text))
        elif s.kind == "strong":  # spaces outside the stars, or it is not bold
            inner = s.text.strip()
            lead, trail = (
                s.text[: len(s.text) - len(s.text.lstrip())],
                s.text[len(s.text.rstrip()) :],
            )
            out.append(f"{_md_plain(lead)}**{_md_plain(inner)}**{_md_plain(trail)}")
        else:
            out.append(_md_plain(s.text))
    return "".join(out)


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Para):
        return [_md_text(block.text)]
    if isinstance(block, Items):
        return [
            (f"{i}. " if block.numbered else "- ") + _md_text(item)
            for i, item in enumerate(block.items, 1)
        ]
    if isinstance(block, Grid):
        head = "| " + " | ".join(_md_plain(h) for h in block.head) + " |"
        rule = "|" + "---|" * len(block.head)
        return [head, rule] + [
            "| " + " | ".join(_md_text(c) for c in row) + " |" for row in block.rows
        ]
    longest = max((len(m) for line in block.lines for m in re.findall(r"`{3,}", line)), default=2)
    fence = "`" * (longest + 1)
    return [f"{fence}sh", *(" ".join(line.splitlines()) for line in block.lines), fence]


def markdown(page: Page) -> str:
    out = [f"# {_md_plain(page.title)}", ""]
    for para in page.intro:
        out += [_md_text(para), ""]
    for section in page.sections:
        out += [f"## {_md_plain(section.title)}", ""]
        for block in section.blocks:
            out += [*_md_block(block), ""]
    return "\n".join(out).rstrip() + "\n"


# -- HTML -------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,sans-serif;max-width:980px;margin:2rem auto;padding:0 1rem;color:#222;
line-height:1.45}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;padding-bottom:.3rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;font-size:.92rem}
td,th{border-bottom:1px solid #eee;padding:.35rem .5rem;text-align:left;vertical-align:top}
code{background:#f3f3f3;padding:0 .2rem;border-radius:3px;font-size:.9em}
pre{background:#1e1e1e;color:#eee;padding:.7rem 1rem;border-radius:4px;overflow-x:auto}
pre code{background:none;color:inherit;padding:0}
nav ol{columns:2}li{margin:.2rem 0}
"""

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ page.title }}</title><style>{{ css }}</style></head><body>
{%- macro spans(t) -%}
{%- for s in t -%}
{%- if s.kind == "code" %}<code>{{ s.text }}</code>
{%- elif s.kind == "strong" %}<strong>{{ s.text }}</strong>
{%- else %}{{ s.text }}{% endif -%}
{%- endfor -%}
{%- endmacro %}
<h1>{{ page.title }}</h1>
{% for p in page.intro %}<p>{{ spans(p) }}</p>
{% endfor -%}
<nav><ol>
{%- for s in page.sections %}
<li><a href="#{{ s.anchor }}">{{ s.title }}</a></li>
{%- endfor %}
</ol></nav>
{% for s in page.sections %}
<h2 id="{{ s.anchor }}">{{ s.title }}</h2>
{%- for b in s.blocks %}
{%- if b.kind == "para" %}
<p>{{ spans(b.block.text) }}</p>
{%- elif b.kind == "items" %}
{%- set tag = "ol" if b.block.numbered else "ul" %}
<{{ tag }}>
{%- for i in b.block.items %}
<li>{{ spans(i) }}</li>
{%- endfor %}
</{{ tag }}>
{%- elif b.kind == "grid" %}
<table><tr>{% for h in b.block.head %}<th>{{ h }}</th>{% endfor %}</tr>
{%- for row in b.block.rows %}
<tr>{% for c in row %}<td>{{ spans(c) }}</td>{% endfor %}</tr>
{%- endfor %}
</table>
{%- else %}
<pre><code>{{ b.block.lines | join("\\n") }}</code></pre>
{%- endif %}
{%- endfor %}
{% endfor %}
</body></html>
"""


class _Tagged(NamedTuple):
    kind: str
    block: Block


def _kind(block: Block) -> str:
    if isinstance(block, Para):
        return "para"
    if isinstance(block, Items):
        return "items"
    return "grid" if isinstance(block, Grid) else "shell"


def _anchor(title: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def html(page: Page) -> str:
    """The page as one self-contained HTML file; every text is escaped by the template."""
    from jinja2 import Environment

    env = Environment(autoescape=True, trim_blocks=False, lstrip_blocks=False)
    template = env.from_string(_TEMPLATE)
    taken: set[str] = set()
    sections = [
        {
            "title": s.title,
            "anchor": _anchor(s.title, taken),
            "blocks": [_Tagged(_kind(b), b) for b in s.blocks],
        }
        for s in page.sections
    ]
    view = {"title": page.title, "intro": page.intro, "sections": sections}
    return template.render(page=view, css=CSS)


def plain(spans: Sequence[Span]) -> str:
    """The text of ``spans`` without markup (for a terminal)."""
    return "".join(s.text for s in spans)
