from __future__ import annotations

import importlib.metadata
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from releasegate.errors import InputError
from releasegate.providers import prices
from releasegate.providers.prices import PRICES_ENV, Price, load_table, lookup

PROJECT_TABLE = """\
version: acme-3
as_of: 2026-11-01
models:
  gpt-4o: {input: 2.0, output: 8.0}        # our negotiated price
  acme-router-v2: {input: 0.5, output: 1.5}
  "llama*": {input: 0, output: 0}
"""


@pytest.fixture(autouse=True)
def no_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test starts from the maintained database alone, whatever the caller's environment."""
    monkeypatch.delenv(PRICES_ENV, raising=False)
    monkeypatch.setenv("RELEASEGATE_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv(prices.CACHE_ENV, str(tmp_path / "cache"))
    prices.maintained.cache_clear()
    prices._load.cache_clear()


def project(tmp_path: Path, text: str = PROJECT_TABLE) -> Path:
    (tmp_path / "prices.yaml").write_text(text)
    return tmp_path


def test_the_default_source_is_genai_prices_versioned_dated_and_identified() -> None:
    table = load_table()
    installed = importlib.metadata.version("genai-prices")
    assert table.files == () and table.version == f"genai-prices-{installed}"
    assert table.as_of == datetime.now(UTC).date().isoformat()  # prices in force today
    assert table.table_id.startswith("sha256:")
    info = table.info()
    assert info["currency"] == "USD" and info["unit"] == "1M tokens"
    assert info["table_id"] == table.table_id
    record = table.lookup("gpt-4o-mini").as_dict()
    assert (record["priced_from"], record["as_of"]) == (f"genai-prices {installed}", table.as_of)


def test_genai_prices_knows_more_than_openai() -> None:
    claude = prices.run_pricer()("claude-3-5-sonnet-latest", "anthropic", 1_000_000, 0)
    assert claude is not None and claude > 0
    assert prices.run_pricer()("claude-3-5-sonnet-latest", "no-such-cloud", 1000, 0) is None


def test_answers_are_kept_in_the_cache_dir_and_read_back(tmp_path: Path) -> None:
    first = load_table().lookup("gpt-4o")
    cached = json.loads(prices.maintained().cache_file.read_text())
    assert prices.maintained().cache_file.parent == tmp_path / "cache"
    assert ["gpt-4o", first.price.input_per_1m, first.price.output_per_1m] in cached.values()  # type: ignore[union-attr]
    key = next(k for k, v in cached.items() if v is not None and v[0] == "gpt-4o")
    cached[key] = ["gpt-4o", 7.0, 9.0]  # a later process reads the cache, not the package
    prices.maintained().cache_file.write_text(json.dumps(cached))
    prices.maintained.cache_clear()
    prices._load.cache_clear()
    assert load_table().lookup("gpt-4o").price == Price(7.0, 9.0)


def test_a_cache_dir_that_cannot_be_written_still_prices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(prices.CACHE_ENV, str(blocker / "cache"))  # under a file: unwritable
    assert load_table().lookup("gpt-4o-mini").is_priced


def test_a_known_model_and_its_dated_snapshots_are_priced_per_million_tokens() -> None:
    table = load_table()
    base = table.lookup("gpt-4o-mini")
    assert base.source == "table" and base.entry == "gpt-4o-mini"
    assert base.price is not None
    assert base.cost(1_000_000, 0) == pytest.approx(base.price.input_per_1m)
    assert base.cost(1_000, 2_000) == pytest.approx(
        (1_000 * base.price.input_per_1m + 2_000 * base.price.output_per_1m) / 1e6
    )
    for snapshot in ("gpt-4o-mini-2024-07-18", "gpt-4o-mini-0718"):
        assert table.lookup(snapshot).entry == "gpt-4o-mini"
    # a different model that merely starts with a known name is priced as itself
    assert table.lookup("gpt-4o-audio-preview").entry == "gpt-4o-audio-preview"


def test_an_unknown_model_costs_nothing_known_and_says_so() -> None:
    pricing = lookup("mystery-model-9", base_url="https://llm.example.com/v1")
    assert pricing.price is None and not pricing.is_priced
    assert pricing.cost(100, 100) is None
    assert pricing.warning is not None
    assert "mystery-model-9" in pricing.warning and "prices.yaml" in pricing.warning
    assert pricing.as_dict()["warning"] == pricing.warning


@pytest.mark.parametrize(
    "base_url", ["http://localhost:11434/v1", "http://127.0.0.1:8000/v1", "http://[::1]:1234/v1"]
)
def test_a_model_served_from_this_machine_is_a_free_local_runtime(base_url: str) -> None:
    pricing = lookup("llama3.1:8b", base_url=base_url)
    assert (pricing.source, pricing.cost(1000, 1000), pricing.warning) == ("local", 0.0, None)


def test_a_known_model_behind_a_local_proxy_keeps_its_price() -> None:
    pricing = lookup("gpt-4o", base_url="http://127.0.0.1:4000/v1")  # e.g. a LiteLLM proxy
    assert pricing.source == "table" and pricing.cost(1000, 0)


def test_the_project_table_is_merged_over_the_default(tmp_path: Path) -> None:
    default = load_table()
    merged = load_table(project(tmp_path))
    assert merged.version == f"{default.version}+acme-3"
    assert merged.as_of == "2026-11-01"
    assert merged.table_id != default.table_id
    assert [f.path for f in merged.files] == [str((tmp_path / "prices.yaml").resolve())]
    assert merged.lookup("gpt-4o").price == Price(2.0, 8.0)  # replaced
    assert merged.lookup("gpt-4o-mini").price == default.lookup("gpt-4o-mini").price  # kept
    assert merged.lookup("acme-router-v2").source == "table"  # added
    pattern = merged.lookup("llama3.3-70b", base_url="https://gpu.example.com/v1")
    assert (pattern.source, pattern.entry, pattern.cost(10, 10)) == ("table", "llama*", 0.0)


def test_the_project_directory_comes_from_releasegate_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELEASEGATE_DIR", str(project(tmp_path)))
    assert load_table().lookup("acme-router-v2").is_priced


def test_releasegate_prices_names_the_override_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = tmp_path / "team-prices.yaml"
    named.write_text("version: 7\nmodels:\n  acme-router-v2: {input: 1, output: 1}\n")
    monkeypatch.setenv(PRICES_ENV, str(named))
    table = load_table(project(tmp_path))  # the project file is there, and not read
    assert table.version.endswith("+7")
    assert table.lookup("acme-router-v2").price == Price(1.0, 1.0)  # not the project file's


def test_a_missing_releasegate_prices_file_is_an_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PRICES_ENV, str(tmp_path / "nope.yaml"))
    with pytest.raises(InputError) as caught:
        load_table()
    assert caught.value.field == PRICES_ENV
    assert "nope.yaml" in str(caught.value)


def test_an_edited_table_is_read_again(tmp_path: Path) -> None:
    root = project(tmp_path)
    first = load_table(root)
    path = root / "prices.yaml"
    path.write_text(PROJECT_TABLE.replace("input: 2.0", "input: 2.5"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second = load_table(root)
    assert second.table_id != first.table_id
    assert second.lookup("gpt-4o").price == Price(2.5, 8.0)
    assert load_table(root) is second  # unchanged files: the cached table


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("models: {}\n", 1, "version", "missing"),
        ("version: 1\n", 1, "models", "missing"),
        ("version: 1\nmodels: {}\nprice: 3\n", 3, "price", "unknown field"),
        ("version: 1\ncurrency: EUR\nmodels: {}\n", 2, "currency", "only 'USD'"),
        ("version: 1\nmodels:\n  m: {input: 1}\n", 3, "models.m.output", "missing"),
        ("version: 1\nmodels:\n  m: {input: -1, output: 1}\n", 3, "models.m.input", "0 or more"),
        ("version: 1\nmodels:\n  m: {input: free, output: 1}\n", 3, "models.m.input", "'free'"),
        ("version: 1\nmodels:\n  m: {input: 1, output: 1, cached: 1}\n", 3, "models.m.cached", ""),
        ("version: 1\nmodels:\n  m: 3\n", 3, "models.m", "expected {input"),
        (
            "version: 1\nmodels:\n  m: {input: 1, output: 1}\n  m: {input: 1, output: 1}\n",
            4,
            "m",
            "",
        ),
        ("version: 1\nmodels: [a]\n", 2, "models", "expected a mapping"),
    ],
)
def test_a_bad_project_table_names_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, words: str
) -> None:
    with pytest.raises(InputError) as caught:
        load_table(project(tmp_path, text))
    err = caught.value
    assert (err.source, err.line, err.field) == (str(tmp_path / "prices.yaml"), line, field)
    assert words in err.reason
    assert str(err).startswith(f"{tmp_path / 'prices.yaml'}:{line}: field '{field}'")


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load_table(project(tmp_path, "version: 1\nmodels:\n  m: {input: 1\n"))
    assert caught.value.line is not None and "malformed YAML" in str(caught.value)


def test_manifest_options_win_over_the_table() -> None:
    manifest = {
        "model": {
            "provider": "openai",
            "name": "gpt-4o",
            "options": {"price_per_1k_input": 0.5, "price_per_1k_output": 2.0},
        }
    }
    pricing = prices.for_manifest(manifest)
    assert (pricing.source, pricing.price) == ("manifest", Price(500.0, 2000.0))
    assert pricing.cost(1000, 1000) == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("model", "source", "is_priced"),
    [
        ({"provider": "openai", "name": "gpt-4.1-nano-2025-04-14"}, "table", True),
        (
            {"provider": "openai", "name": "qwen3", "base_url": "http://localhost:8000/v1"},
            "local",
            True,
        ),
        (
            {"provider": "openai", "name": "qwen3", "base_url": "https://x.example/v1"},
            "unknown",
            False,
        ),
        ({"provider": "embedding-router", "name": "multilingual-e5-small"}, "local", True),
        ({"provider": "python", "name": "app.flows:route"}, "provider", False),
    ],
)
def test_for_manifest_by_provider(model: dict[str, str], source: str, is_priced: bool) -> None:
    pricing = prices.for_manifest({"model": model})
    assert (pricing.source, pricing.is_priced) == (source, is_priced)
    assert (pricing.warning is not None) == (source == "unknown")
    record = pricing.as_dict()
    assert record["table_id"] == load_table().table_id and record["source"] == source
