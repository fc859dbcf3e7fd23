"""An eval of an OpenAI-protocol workflow end to end: the loopback server answers, the
price table prices the tokens, and the summary says which table did it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from releasegate.providers import prices
from releasegate.release.evaluate import evaluate
from releasegate.release.register import register
from releasegate.store.engine import Store
from tests.helpers import rg
from tests.providers.openai_server import FakeOpenAIServer

KEY_ENV = "RG_TEST_EVAL_KEY"
LABELS = ["card_lost", "transfer_late", "refund"]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeOpenAIServer]:
    monkeypatch.setenv(KEY_ENV, "sk-test-eval")
    monkeypatch.delenv(prices.PRICES_ENV, raising=False)
    with FakeOpenAIServer() as running:
        yield running


def files(root: Path, server: FakeOpenAIServer, model: str, **options: Any) -> tuple[Path, Path]:
    workflow = {
        "workflow": "router",
        "stakes": "low",
        "owners": {"change": "alice", "approvers": ["bob"]},
        "model": {
            "provider": "openai",
            "name": model,
            "base_url": server.base_url,
            "api_key_env": KEY_ENV,
            "options": {"timeout_s": 5, **options},
        },
        "prompts": {"system": "Route it.", "templates": {"user": "{input}"}},
        "generation": {"temperature": 0},
    }
    (root / "router.yaml").write_text(yaml.safe_dump(workflow, sort_keys=False))
    rows = [{"input": f"case {i} #{label}", "expected": label} for i, label in enumerate(LABELS)]
    (root / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = {
        "suite": "router-core",
        "workflow": "router",
        "cases": "cases.jsonl",
        "scorers": [{"type": "equals", "name": "accuracy"}],
    }
    (root / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    return root / "router.yaml", root / "suite.yaml"


def test_an_eval_costs_its_tokens_at_the_table_price_and_names_the_table(
    store: Store, tmp_path: Path, server: FakeOpenAIServer
) -> None:
    workflow, suite = files(tmp_path, server, "gpt-4o-mini-2024-07-18")
    out = evaluate(store, register(store, workflow).version_id, suite)
    s = out.summary
    assert s["metrics"]["accuracy"]["estimate"] == 1.0
    table = prices.load_table()
    entry = table.find("gpt-4o-mini")
    assert entry is not None
    usage = [r.usage for r in server.requests]
    expected = sum(entry[1].cost(u["prompt_tokens"], u["completion_tokens"]) for u in usage)
    assert s["cost_usd"]["total"] == pytest.approx(expected, abs=1e-6)
    assert s["cost_usd"]["total"] > 0
    priced = s["cost_usd"]["priced_by"]
    assert (priced["source"], priced["entry"]) == ("table", "gpt-4o-mini")
    assert (priced["table_id"], priced["table_version"]) == (table.table_id, table.version)
    assert priced["warning"] is None


def test_the_cli_says_which_table_priced_the_eval(tmp_path: Path, server: FakeOpenAIServer) -> None:
    env = {KEY_ENV: "sk-test-eval"}

    def eval_of(model: str) -> str:
        workflow, suite = files(tmp_path, server, model)
        registered = rg(tmp_path, "register", str(workflow), "--json")
        assert registered.returncode == 0, registered.stderr
        vid = json.loads(registered.stdout)["version_id"]
        done = rg(tmp_path, "eval", vid, "--suite", str(suite), env=env)
        assert done.returncode == 0, done.stderr
        return " ".join(done.stdout.split())

    shown = eval_of("gpt-4o-mini")
    assert "priced by table" in shown and "(gpt-4o-mini: $0.15/$0.6 per 1M tokens" in shown
    local = eval_of("acme-private-model")  # served from 127.0.0.1: a local runtime, free
    assert "cost $0.0000" in local
    assert "priced by table" not in local and "no price" not in local
