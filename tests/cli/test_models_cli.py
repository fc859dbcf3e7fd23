"""`releasegate models check` as a user runs it: a subprocess against a loopback Ollama,
with exact exit codes (0 ready, 1 a workflow's model missing or unblessed, 2 bad input)."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import rg
from tests.providers.ollama_server import FakeOllamaServer

GGUF = b"GGUF\x03\x00\x00\x00 a tiny model"
GGUF_DIGEST = "sha256:" + hashlib.sha256(GGUF).hexdigest()


@pytest.fixture
def ollama() -> Iterator[FakeOllamaServer]:
    with FakeOllamaServer() as server:
        yield server


def workflow(root: Path, name: str, model: dict[str, Any], **policy: Any) -> Path:
    doc: dict[str, Any] = {"workflow": name, "model": model}
    if policy:
        doc["policy"] = {"production": policy}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_installed_models_are_listed_against_the_blessed_list(
    ollama: FakeOllamaServer, tmp_path: Path
) -> None:
    llama = ollama.pull("llama3.2", b"llama")
    qwen = ollama.pull("qwen2.5:7b", b"qwen")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.gguf").write_bytes(GGUF)
    (tmp_path / "models" / "notes.txt").write_text("not a model")
    blessed = [
        {"runtime": "ollama", "name": "llama3.2", "digest": llama},
        {"runtime": "gguf", "digest": GGUF_DIGEST},
    ]
    (tmp_path / "blessed.yaml").write_text(yaml.safe_dump({"models": blessed}))
    local = {"provider": "openai", "runtime": "ollama", "name": "llama3.2"}
    workflow(tmp_path, "chat", {**local, "base_url": ollama.openai_base_url})
    gguf = {"provider": "openai", "runtime": "gguf", "name": "tiny", "file": "models/tiny.gguf"}
    gguf["base_url"] = "http://127.0.0.1:8080/v1"  # a llama.cpp server
    workflow(tmp_path, "tiny", gguf, blessed_models={"file": "blessed.yaml"})
    result = rg(
        tmp_path,
        "models", "check", "--ollama-host", ollama.host, "--gguf-dir", "models",
        "--blessed", "blessed.yaml", "--workflow", "chat.yaml", "--workflow", "tiny.yaml", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["problems"] == []
    assert report["ollama"] == {"host": ollama.host, "reachable": True, "error": None}
    assert [b["label"] for b in report["blessed_lists"]] == [
        "blessed.yaml",
        "tiny.yaml policy.production",
    ]
    assert [
        (i["runtime"], i["name"], i["digest"], i["blessed_by"]) for i in report["installed"]
    ] == [
        ("ollama", "llama3.2:latest", llama, ["blessed.yaml", "tiny.yaml policy.production"]),
        ("ollama", "qwen2.5:7b", qwen, []),
        ("gguf", "tiny.gguf", GGUF_DIGEST, ["blessed.yaml", "tiny.yaml policy.production"]),
    ]
    assert report["installed"][2]["path"] == "models/tiny.gguf"
    assert [
        (w["workflow"], w["runtime"], w["digest"], w["status"], w["blessed"])
        for w in report["workflows"]
    ] == [
        ("chat", "ollama", llama, "installed", {"blessed.yaml": True}),
        (
            "tiny",
            "gguf",
            GGUF_DIGEST,
            "installed",
            {"blessed.yaml": True, "tiny.yaml policy.production": True},
        ),
    ]

    table = rg(tmp_path, "models", "check", "--ollama-host", ollama.host, "--gguf-dir", "models",
               "--blessed", "blessed.yaml", "--workflow", "chat.yaml")  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "every workflow's model is installed, pinned and blessed" in table.stdout
    assert "qwen2.5:7b" in table.stdout and "NO" in table.stdout  # qwen is not blessed


def test_a_missing_changed_or_unblessed_model_exits_1_naming_each(
    ollama: FakeOllamaServer, tmp_path: Path
) -> None:
    llama = ollama.pull("llama3.2", b"llama v2")
    (tmp_path / "tiny.gguf").write_bytes(GGUF)
    base = {"provider": "openai", "runtime": "ollama", "base_url": ollama.openai_base_url}
    blessed = {"blessed_models": [{"runtime": "ollama", "digest": "sha256:" + "0" * 64}]}
    workflow(tmp_path, "unblessed", {**base, "name": "llama3.2"}, **blessed)
    workflow(tmp_path, "missing", {**base, "name": "mistral:7b"})
    stale = "sha256:" + "1" * 64
    gguf = {"provider": "openai", "runtime": "gguf", "name": "t", "file": "tiny.gguf"}
    workflow(tmp_path, "changed", {**gguf, "digest": stale})
    files = ("unblessed.yaml", "missing.yaml", "changed.yaml")
    args = [a for f in files for a in ("--workflow", f)]
    result = rg(tmp_path, "models", "check", *args, "--json", env={"OLLAMA_HOST": ollama.host})
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert [(w["workflow"], w["status"], w["ok"]) for w in report["workflows"]] == [
        ("unblessed", "installed", False),
        ("missing", "missing", False),
        ("changed", "changed", False),
    ]
    assert report["problems"] == [
        f"unblessed (unblessed.yaml): ollama llama3.2 @ {llama[:19]} is not blessed by "
        "unblessed.yaml policy.production",
        f"missing (missing.yaml): ollama mistral:7b is missing: not installed in Ollama at "
        f"{ollama.host}: `ollama pull mistral:7b`",
        f"changed (changed.yaml): gguf t @ {stale[:19]} is changed: 'tiny.gguf' now has "
        f"{GGUF_DIGEST}",
    ]


def test_bad_input_and_an_unreachable_runtime_exit_2(tmp_path: Path) -> None:
    port = closed_port()
    result = rg(tmp_path, "models", "check", "--gguf-dir", "nope", env={"OLLAMA_HOST": f":{port}"})
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: nope: field '--gguf-dir': not a directory\n"
        "  hint: name a folder of .gguf files\n"
        "  nothing was written\n"
    )
    host = f"http://127.0.0.1:{port}"
    result = rg(tmp_path, "models", "check", "--ollama-host", host, "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: Ollama is not reachable at {host} (")


def test_no_ollama_and_no_workflows_is_not_a_failure(tmp_path: Path) -> None:
    host = f"http://127.0.0.1:{closed_port()}"
    result = rg(tmp_path, "models", "check", "--json", env={"OLLAMA_HOST": host})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ollama"]["reachable"] is False
    assert report["ollama"]["error"].startswith(f"Ollama is not reachable at {host}")
    assert (report["ok"], report["installed"], report["workflows"]) == (True, [], [])


def test_the_table_shouts_a_model_that_is_not_installed(
    ollama: FakeOllamaServer, tmp_path: Path
) -> None:
    base = {"provider": "openai", "runtime": "ollama", "base_url": ollama.openai_base_url}
    workflow(tmp_path, "missing", {**base, "name": "mistral:7b"})
    env = {"OLLAMA_HOST": ollama.host}
    result = rg(tmp_path, "models", "check", "--workflow", "missing.yaml", env=env)
    assert result.returncode == 1, result.stderr
    assert "MISSING" in result.stdout
    assert "problem: missing (missing.yaml): ollama mistral:7b is missing" in result.stdout


def test_a_blessed_digest_under_another_name_is_not_blessed(
    ollama: FakeOllamaServer, tmp_path: Path
) -> None:
    """The installed list blesses by the gate's rule: an entry naming a model blesses
    only that name, even when another tag holds the very same weights."""
    digest = ollama.pull("llama3.2", b"shared weights")
    assert ollama.pull("qwen2.5:7b", b"shared weights") == digest
    entry = {"runtime": "ollama", "name": "llama3.2", "digest": digest}
    (tmp_path / "blessed.yaml").write_text(yaml.safe_dump({"models": [entry]}))
    base = {"provider": "openai", "runtime": "ollama", "base_url": ollama.openai_base_url}
    workflow(tmp_path, "qwen", {**base, "name": "qwen2.5:7b"})
    result = rg(
        tmp_path,
        "models", "check", "--ollama-host", ollama.host, "--blessed", "blessed.yaml",
        "--workflow", "qwen.yaml", "--json",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert [
        (i["name"], i["digest"], i["blessed"], i["blessed_by"]) for i in report["installed"]
    ] == [
        ("llama3.2:latest", digest, True, ["blessed.yaml"]),
        ("qwen2.5:7b", digest, False, []),
    ]
    # the same answer as the gate gives the workflow that runs qwen
    assert [(w["workflow"], w["blessed"]) for w in report["workflows"]] == [
        ("qwen", {"blessed.yaml": False})
    ]
