"""A page's text is data, never markup: Markdown and HTML escape what the store holds."""

from __future__ import annotations

from html.parser import HTMLParser

from releasegate.reports.page import (
    Grid,
    Items,
    Page,
    Para,
    Section,
    Shell,
    code,
    html,
    markdown,
    strong,
    text,
)

HOSTILE = "<script>alert(1)</script> **bold** [link](http://x) | # `tick` &amp;"

PAGE = Page(
    "a <b>title</b>",
    (text("intro ", code("releasegate resolve wf --env production")),),
    (
        Section(
            "One",
            (
                Para(text("said: ", HOSTILE, " ", strong("Stop "), "now")),
                Items((text(HOSTILE),), numbered=True),
                Grid(("a|b", "c"), ((text(HOSTILE), text(code("x`y"))),)),
                Shell(("releasegate pause wf --env production --reason 'a <b>'",)),
            ),
        ),
        Section("One", (Para(text("again")),)),
    ),
)


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.data: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.data.append(data)


def test_html_escapes_every_text_and_links_nothing_outside() -> None:
    page = html(PAGE)
    parser = Tags()
    parser.feed(page)
    assert "script" not in parser.tags and "b" not in parser.tags and "a" in parser.tags
    assert HOSTILE in "".join(parser.data)  # shown as written
    assert "http://x" not in page.replace("[link](http://x)", "")
    assert 'href="#one"' in page and 'href="#one-2"' in page  # unique anchors
    shell = "releasegate pause wf --env production --reason &#39;a &lt;b&gt;&#39;"
    assert f"<pre><code>{shell}</code></pre>" in page


def test_markdown_escapes_markup_but_keeps_commands_verbatim() -> None:
    page = markdown(PAGE)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "\\*\\*bold\\*\\*" in page and "\\[link\\](http://x)" in page
    assert "| a\\|b | c |" in page and "``x`y``" in page
    assert "said: " in page and " **Stop** now" in page  # spaces outside the stars
    assert "`releasegate resolve wf --env production`" in page
    assert "```sh\nreleasegate pause wf --env production --reason 'a <b>'\n```" in page
