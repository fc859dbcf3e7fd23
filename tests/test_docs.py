"""The docs match the code: every command and option has its place in docs/cli.md, and
every relative link in the README and docs/ points at a file (and heading) that exists.

Commands are read from the Typer app itself (``releasegate.cli.app.app`` with its
``audit`` and ``db`` groups), so a new command or option fails here until it is documented.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from releasegate.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CLI_DOC = DOCS / "cli.md"
HEADING = re.compile(r"^## releasegate (\S.*?)\s*$", re.MULTILINE)
FENCE = re.compile(r"^(`{3,}|~{3,}).*?^\1\s*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`+[^`\n]*`+")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def is_group(command: Any) -> bool:
    """A command with subcommands (Typer may vendor click, so no isinstance on click)."""
    return isinstance(getattr(command, "commands", None), dict)


def _walk(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        yield path, command
        if is_group(command):
            yield from _walk(command, path + " ")


ROOT_COMMAND = typer.main.get_command(app)
COMMANDS = dict(_walk(ROOT_COMMAND))
LEAVES = {path: c for path, c in COMMANDS.items() if not is_group(c)}
GROUPS = sorted(path for path, c in COMMANDS.items() if is_group(c))


def cli_sections() -> dict[str, str]:
    """``## releasegate NAME`` heading -> the text up to the next ``## `` heading."""
    text = CLI_DOC.read_text(encoding="utf-8")
    sections: dict[str, str] = {}
    matches = list(HEADING.finditer(text))
    for i, m in enumerate(matches):
        start = m.end()
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        following = re.search(r"^## ", text[start:end], re.MULTILINE)
        if following:
            end = start + following.start()
        sections[m.group(1)] = text[start:end]
    return sections


def test_the_app_has_its_groups() -> None:
    assert {"audit", "db"} <= set(GROUPS)
    assert {"audit log", "audit verify", "db upgrade"} <= set(LEAVES)


@pytest.mark.parametrize("path", sorted(LEAVES))
def test_every_command_has_a_section(path: str) -> None:
    assert path in cli_sections(), f"docs/cli.md has no '## releasegate {path}' heading"


@pytest.mark.parametrize("path", GROUPS)
def test_every_group_is_documented_through_its_commands(path: str) -> None:
    documented = [name for name in cli_sections() if name.startswith(path + " ")]
    assert documented, f"docs/cli.md has no '## releasegate {path} ...' heading"


def test_no_section_documents_a_command_that_does_not_exist() -> None:
    stale = sorted(set(cli_sections()) - set(LEAVES))
    assert not stale, f"docs/cli.md documents commands the CLI does not have: {stale}"


@pytest.mark.parametrize(
    ("path", "option"),
    sorted(
        (path, opt)
        for path, command in LEAVES.items()
        for param in command.params
        for opt in (*param.opts, *param.secondary_opts)
        if opt.startswith("-")  # options; an argument's name has no dash
    ),
)
def test_every_option_appears_in_its_command_section(path: str, option: str) -> None:
    section = cli_sections().get(path, "")
    found = re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", section)
    assert found, f"'{option}' of 'releasegate {path}' is not in its section of docs/cli.md"


# -- links ------------------------------------------------------------------------------------


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def prose(text: str) -> str:
    """Markdown without code blocks and code spans, where link-like text is not a link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = INLINE_CODE.sub(lambda m: m.group(0).strip("`"), heading.strip()).lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in ("L", "N", "M"))
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    found: set[str] = set()
    seen: dict[str, int] = {}
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.MULTILINE):
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in LINK.findall(prose(path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # https:, mailto: ...
        file_part, _, fragment = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading with anchor '#{fragment}'")
    return broken


@pytest.mark.parametrize(
    "path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)) if isinstance(p, Path) else p
)
def test_relative_links_resolve(path: Path) -> None:
    assert path.exists(), f"{path.relative_to(ROOT)} is missing"
    broken = broken_links(path)
    assert not broken, f"{path.relative_to(ROOT)} has broken links: {broken}"


def test_the_docs_the_readme_promises_exist() -> None:
    for name in ("concepts", "workflow-files", "gate", "cli", "storage"):
        assert (DOCS / f"{name}.md").is_file(), f"docs/{name}.md is missing"
