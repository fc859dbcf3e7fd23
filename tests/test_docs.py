"""The docs match the code: every command and option has its place in docs/cli.md, every
``releasegate ...`` line the README and docs/ show names a command and options that exist,
the pre-commit hook in docs/ci.md passes with several files, storage.md lists the
migrations the package ships, and every relative link points at a file (and heading)
that exists.

Commands are read from the Typer app itself (``releasegate.cli.app.app`` with its
``audit`` and ``db`` groups), so a new command or option fails here until it is documented.
"""

from __future__ import annotations

import ast
import re
import shlex
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from releasegate.cli.app import app
from tests.helpers import Project, rg

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


# -- every documented command line exists -----------------------------------------------------

SHELL_FENCE = re.compile(
    r"^(`{3,}|~{3,})[ \t]*(sh|bash|shell|console|yaml|yml)?[^\n]*\n(.*?)^\1[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
SHELLS = ("sh", "bash", "shell", "console")
NOT_BUILT = {"serve"}  # named in docs/production.md "Not built yet"
COMMAND = re.compile(r"(?<![\w./$-])releasegate((?:[ \t]+[^\s|;&#`)]+)+)")


def documented_command_lines(path: Path) -> list[str]:
    """Every ``releasegate ...`` command line in ``path``: in shell and YAML code blocks
    (``entry:``/``run:`` values included), in untyped code blocks when a line starts with
    it, and in code spans that start with it. Prose that merely names releasegate is not
    a command."""
    text = path.read_text(encoding="utf-8")
    lines: list[str] = []
    for fence in SHELL_FENCE.finditer(text):
        for line in fence.group(3).splitlines():
            if fence.group(2) in ("yaml", "yml"):  # a step's `run:` or a hook's `entry:`
                line = re.sub(r"^\s*(-\s+)?(run|entry):\s*", "", line)
            if fence.group(2) not in SHELLS and not line.lstrip("$ ").startswith("releasegate "):
                continue
            lines += [m.group(0) for m in COMMAND.finditer(line)]
    for span in INLINE_CODE.findall(FENCE.sub("", text)):
        code = span.strip("`").strip()
        if code.startswith("releasegate "):
            lines += [m.group(0) for m in COMMAND.finditer(code)][:1]
    return lines


def unknown_parts(line: str) -> list[str]:
    """What in a documented command line the CLI does not have: a command, a subcommand
    or an option. ``a|b`` alternatives are each checked; placeholders are arguments."""
    tokens = line.split()[1:]
    command: Any = ROOT_COMMAND
    path = "releasegate"
    while is_group(command) and tokens:
        word = tokens.pop(0)
        group_options = {o: p for p in command.params for o in p.opts}
        if word in group_options and tokens:  # `releasegate --token TOKEN COMMAND ...`
            if not group_options[word].is_flag:
                tokens.pop(0)
            continue
        if word.startswith("-"):
            return [f"{path} {word}"] if word not in ("--help", "--version") else []
        names = [w for w in word.strip("[]{}").split("|") if w]
        missing = [n for n in names if n not in command.commands]
        if missing and command is ROOT_COMMAND and set(missing) <= NOT_BUILT:
            return []
        if missing:
            return [f"{path} {n}" for n in missing]
        if len(names) > 1:  # `audit log|verify|head`: options are not checked per command
            return []
        command = command.commands[names[0]]
        path = f"{path} {names[0]}"
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}
    unknown = []
    for token in tokens:
        for option in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", token.split("=")[0]):
            if option not in known and not token.startswith(("'", '"')):
                unknown.append(f"{path} {option}")
    return unknown


@pytest.mark.parametrize(
    "path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)) if isinstance(p, Path) else p
)
def test_every_documented_command_and_option_exists(path: Path) -> None:
    lines = documented_command_lines(path)
    wrong = sorted({part for line in lines for part in unknown_parts(line)})
    assert not wrong, f"{path.relative_to(ROOT)} documents what the CLI does not have: {wrong}"


def test_the_command_extractor_finds_commands_and_catches_a_made_up_option() -> None:
    assert unknown_parts("releasegate gate abc --env staging --junit j.xml") == []
    assert unknown_parts("releasegate audit log|verify|head") == []
    assert unknown_parts("releasegate gate abc --envv staging") == ["releasegate gate --envv"]
    assert unknown_parts("releasegate deploy abc") == ["releasegate deploy"]
    assert unknown_parts("releasegate audit frobnicate") == ["releasegate audit frobnicate"]
    found = documented_command_lines(DOCS / "ci.md")
    assert "releasegate register --check" in found
    assert any(line.startswith("releasegate promote") for line in found)


# -- the pre-commit hook in docs/ci.md works as pre-commit runs it ----------------------------


def test_the_documented_pre_commit_hook_checks_every_file_it_is_given(tmp_path: Path) -> None:
    """pre-commit runs ``entry`` with every changed file appended: with two good files the
    hook passes and names both, with a bad one among them it fails naming that file."""
    text = (DOCS / "ci.md").read_text(encoding="utf-8")
    block = next(m.group(3) for m in SHELL_FENCE.finditer(text) if "pre-commit" in m.group(3))
    hook = yaml.safe_load(block)["repos"][0]["hooks"][0]
    program, *args = shlex.split(hook["entry"])
    assert program == "releasegate"
    project = Project(root=tmp_path)
    (tmp_path / "workflows").mkdir()
    first = project.workflow("workflows/triage")
    second = project.workflow("workflows/drafter", mode="other")
    files = [str(p.relative_to(tmp_path)) for p in (first, second)]
    assert all(re.search(hook["files"], f) for f in files)  # the hook's filter takes them

    passed = rg(tmp_path, *args, *files)
    assert passed.returncode == 0, passed.stderr
    assert [line.split(":")[0] for line in passed.stdout.splitlines()] == files
    assert not (tmp_path / ".releasegate").exists()  # a check writes nothing

    (tmp_path / "workflows" / "broken.yaml").write_text("workflow: router\nmodel: [\n")
    failed = rg(tmp_path, *args, files[0], "workflows/broken.yaml")
    assert failed.returncode == 2 and "workflows/broken.yaml" in failed.stderr


# -- the migrations storage.md lists are the ones the package ships ---------------------------


def test_storage_lists_every_migration_the_package_ships() -> None:
    from releasegate.store.engine import SCHEMA_HEAD
    from releasegate.store.migrate import MIGRATIONS

    shipped = []
    for path in sorted((MIGRATIONS / "versions").glob("[0-9]*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        shipped.append((path.name[:4], path.name, doc.splitlines()[0] if doc else ""))
    text = (DOCS / "storage.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| (\d{4}) \| `([^`]+)` \| (.+?) \|$", text, re.MULTILINE)
    assert listed == shipped, "docs/storage.md's table of migrations differs from the package"
    assert f"releasegate needs {SCHEMA_HEAD}" in text  # the refusal quotes the current head
