"""The price table: what a model's tokens cost, so every eval and run reports cost per task.

The default source is the maintained ``genai-prices`` database (many providers,
released monthly: ``pip install -U genai-prices`` brings new prices; nothing is
fetched at run time, so pricing never waits on the network). One project table
is laid over it, entry by entry: the file ``RELEASEGATE_PRICES`` names, else
``prices.yaml`` in the project directory (``RELEASEGATE_DIR`` or the current one).
The merged table has a content id, so an eval can record which prices priced it.
A manifest's own ``model.options.price_per_1k_*`` win over any table. A model
nothing knows is priced at nothing and flagged, never an error; one served from
this machine (a loopback ``base_url``) is a local runtime and costs 0.

Looking a model up in genai-prices imports ~1.6 MB of price data (~0.25 s), so
each answer is kept in a small JSON file per genai-prices version in the cache
directory (``RELEASEGATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/releasegate``, else
``~/.cache/releasegate``); a cache that cannot be written is skipped.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn
from urllib.parse import urlsplit

from releasegate.errors import InputError

if TYPE_CHECKING:  # the YAML parser loads only when a project's price table is read
    import yaml

log = logging.getLogger("releasegate.prices")

PRICES_ENV = "RELEASEGATE_PRICES"
CACHE_ENV = "RELEASEGATE_CACHE_DIR"
PROJECT_FILE = "prices.yaml"
MAINTAINED = "genai-prices"
UNIT = "1M tokens"
CURRENCY = "USD"
TOP_KEYS = ("version", "as_of", "currency", "unit", "models")
# a dated snapshot of a model: gpt-4o-2024-08-06, gpt-4-0613, gpt-3.5-turbo-0125
SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{4})$")
LOCAL_PROVIDERS = frozenset({"embedding-router"})  # run on this machine, in-process
SELF_PRICED_PROVIDERS = frozenset({"python"})  # code: it reports its own cost, if any

Source = Literal["manifest", "table", "local", "provider", "unknown"]


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M input (prompt) and output (completion) tokens."""

    input_per_1m: float
    output_per_1m: float

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_per_1m + tokens_out * self.output_per_1m) / 1_000_000


FREE = Price(0.0, 0.0)


@dataclass(frozen=True, slots=True)
class TableFile:
    """One file merged into the table: where, and the version and date it declares."""

    path: str
    version: str
    as_of: str | None


@dataclass(frozen=True, slots=True)
class Pricing:
    """How one model is priced and by what; ``price`` is None when nothing knows it."""

    model: str
    price: Price | None
    source: Source
    entry: str | None = None  # the table entry that matched: gpt-4o for gpt-4o-2024-08-06
    table_id: str = ""
    table_version: str = ""
    priced_from: str | None = None  # "genai-prices 0.2.3", or the override file that matched
    as_of: str | None = None  # the date those prices are from (genai-prices: in force that day)

    @property
    def is_priced(self) -> bool:
        return self.price is not None

    @property
    def warning(self) -> str | None:
        if self.price is not None or self.source != "unknown":
            return None
        return (
            f"no price for model '{self.model}' in price table {self.table_version} "
            f"({self.table_id}): its cost is recorded as 0. Add it to {PROJECT_FILE} in the "
            "project (USD per 1M tokens) or set model.options.price_per_1k_input/output"
        )

    def cost(self, tokens_in: int, tokens_out: int) -> float | None:
        """USD for these tokens; None when the model is unpriced."""
        return None if self.price is None else self.price.cost(tokens_in, tokens_out)

    def as_dict(self) -> dict[str, Any]:
        """The record an eval summary or a run keeps of how its cost was computed."""
        return {
            "model": self.model,
            "source": self.source,
            "entry": self.entry,
            "input_per_1m": None if self.price is None else self.price.input_per_1m,
            "output_per_1m": None if self.price is None else self.price.output_per_1m,
            "table_id": self.table_id,
            "table_version": self.table_version,
            "priced_from": self.priced_from,
            "as_of": self.as_of,
            "warning": self.warning,
        }


@dataclass(frozen=True)
class PriceTable:
    """The maintained database with the project's entries merged over it."""

    prices: Mapping[str, Price]  # the override's, by model name or pattern, in file order
    files: tuple[TableFile, ...]  # the override files (none, or one)
    table_id: str  # "sha256:" + the hash of the override's prices and the database's version
    base: Maintained

    @property
    def version(self) -> str:
        return "+".join([self.base.version, *(f.version for f in self.files)])

    @property
    def as_of(self) -> str | None:
        return (self.files[-1].as_of if self.files else None) or self.base.as_of

    def info(self) -> dict[str, Any]:
        """Which table this is: what an eval summary records beside its cost."""
        return {
            "table_id": self.table_id,
            "version": self.version,
            "as_of": self.as_of,
            "currency": CURRENCY,
            "unit": UNIT,
            "files": [{"path": f.path, "version": f.version, "as_of": f.as_of} for f in self.files],
        }

    def find(
        self, model: str, *, provider: str | None = None, base_url: str | None = None
    ) -> tuple[str, Price] | None:
        """The entry for ``model``: the override's (exact, undated name, longest pattern),
        else the maintained database's, for the provider the base URL or name points at."""
        found = self._find_override(model)
        if found is not None:
            return found
        return self.base.find(model, provider=provider, base_url=base_url)

    def _find_override(self, model: str) -> tuple[str, Price] | None:
        for name in (model, SNAPSHOT.sub("", model)):
            found = self.prices.get(name)
            if found is not None:
                return name, found
        patterns = sorted((k for k in self.prices if "*" in k), key=len, reverse=True)
        for pattern in patterns:
            if fnmatch.fnmatchcase(model, pattern):
                return pattern, self.prices[pattern]
        return None

    def lookup(self, model: str, *, base_url: str | None = None) -> Pricing:
        """How ``model`` is priced; never raises for a model the table does not know."""
        override = self._find_override(model)
        if override is not None:
            return self._pricing(model, override[1], "table", override[0], self.files[-1])
        found = self.base.find(model, base_url=base_url)
        if found is not None:
            return self._pricing(model, found[1], "table", found[0], self.base)
        if base_url is not None and is_local(base_url):
            return self._pricing(model, FREE, "local")
        return self._pricing(model, None, "unknown")

    def _pricing(
        self,
        model: str,
        price: Price | None,
        source: Source,
        entry: str | None = None,
        origin: TableFile | Maintained | None = None,
    ) -> Pricing:
        if isinstance(origin, TableFile):
            frm, as_of = origin.path, origin.as_of
        elif origin is not None:
            frm, as_of = origin.label, origin.as_of
        else:
            frm, as_of = None, None
        return Pricing(model, price, source, entry, self.table_id, self.version, frm, as_of)


def is_local(base_url: str) -> bool:
    """True for a server on this machine: localhost, 127.0.0.0/8, ::1."""
    host = (urlsplit(base_url).hostname or "").lower()
    return host in ("localhost", "::1", "0.0.0.0") or host.startswith("127.")


def table_paths(project_dir: Path | None = None) -> list[Path]:
    """The override file laid over the maintained database: none, or one."""
    paths: list[Path] = []
    named = os.environ.get(PRICES_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise InputError(
                f"names '{named}', which is not a file",
                field=PRICES_ENV,
                hint="point it at a price table (see docs/workflow-files.md), or unset it",
            )
        paths.append(path)
        return paths
    base = project_dir if project_dir is not None else Path(os.environ.get("RELEASEGATE_DIR", "."))
    project = base / PROJECT_FILE
    if project.is_file():
        paths.append(project)
    return paths


def load_table(project_dir: Path | None = None) -> PriceTable:
    """The merged table; re-read only when one of its files changed."""
    key = []
    for path in table_paths(project_dir):
        stat = path.stat()
        key.append((str(path.resolve()), stat.st_mtime_ns, stat.st_size))
    return _load(tuple(key))


RUNTIME_PROVIDERS = LOCAL_PROVIDERS | {"ollama", "llama.cpp", "lm_studio", "lmstudio"}
"""Providers a production run may name (``gen_ai.system``) that run on the user's box."""
RunPricer = Callable[[str, str | None, int, int], float | None]


def run_pricer(project_dir: Path | None = None) -> RunPricer:
    """Prices runs that reported no cost: (model, provider, tokens in, tokens out) -> USD.

    Built once per batch, so the table is read once and each model looked up once. A
    table that cannot be read prices nothing (with a warning): losing the runs
    themselves over a price file would be worse than a missing cost."""
    try:
        table = load_table(project_dir)
    except InputError as exc:
        log.warning("runs are not priced: %s", exc)
        return lambda model, provider, tokens_in, tokens_out: None
    found: dict[tuple[str | None, str], tuple[float, float] | None] = {}

    def price(model: str, provider: str | None, tokens_in: int, tokens_out: int) -> float | None:
        # called for every run that lands without a cost: one dict lookup on a tuple key
        # and ``Price.cost`` inlined (an f-string key and a method call were a third of it)
        key = (provider, model)
        try:
            rates = found[key]
        except KeyError:
            rates = found[key] = _rates(table, model, provider)
        if rates is None:
            return None
        return (tokens_in * rates[0] + tokens_out * rates[1]) / 1_000_000

    return price


def _rates(table: PriceTable, model: str, provider: str | None) -> tuple[float, float] | None:
    """A model's (input, output) USD per 1M tokens for ``run_pricer``; None if unpriced."""
    if provider in RUNTIME_PROVIDERS:
        return (FREE.input_per_1m, FREE.output_per_1m)
    entry = table.find(model, provider=provider)
    return None if entry is None else (entry[1].input_per_1m, entry[1].output_per_1m)


def lookup(model: str, *, base_url: str | None = None, project_dir: Path | None = None) -> Pricing:
    """``load_table(project_dir).lookup(model, base_url=base_url)``."""
    return load_table(project_dir).lookup(model, base_url=base_url)


def for_manifest(
    manifest: Mapping[str, Any],
    *,
    table: PriceTable | None = None,
    project_dir: Path | None = None,
) -> Pricing:
    """How a version's model is priced: its own options, else the table, else local/unknown."""
    model = manifest.get("model")
    model = model if isinstance(model, Mapping) else {}
    name = str(model.get("name") or "")
    provider = model.get("provider")
    base_url = model.get("base_url") if isinstance(model.get("base_url"), str) else None
    raw_options = model.get("options")
    options: Mapping[str, Any] = raw_options if isinstance(raw_options, Mapping) else {}
    table = table if table is not None else load_table(project_dir)
    per_1k = [options.get("price_per_1k_input"), options.get("price_per_1k_output")]
    if any(_is_number(v) for v in per_1k):
        price = Price(*(float(v) * 1000.0 if _is_number(v) else 0.0 for v in per_1k))  # type: ignore[arg-type]
        return table._pricing(name, price, "manifest")
    if provider in LOCAL_PROVIDERS or provider in SELF_PRICED_PROVIDERS:
        # no price database knows these: only the project's own table may price them
        override = table._find_override(name)
        if override is not None:
            return table._pricing(name, override[1], "table", override[0], table.files[-1])
        if provider in LOCAL_PROVIDERS:
            return table._pricing(name, FREE, "local")
        return table._pricing(name, None, "provider")
    return table.lookup(name, base_url=base_url)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- reading the files ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _load(key: tuple[tuple[str, int, int], ...]) -> PriceTable:
    prices: dict[str, Price] = {}
    files = []
    for path, _, _ in key:
        version, as_of, models = _read(Path(path))
        prices.update(models)
        files.append(TableFile(path, version, as_of))
    base = maintained()
    canonical = {k: [v.input_per_1m, v.output_per_1m] for k, v in prices.items()}
    text = json.dumps([base.version, canonical], sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return PriceTable(prices, tuple(files), f"sha256:{digest[:16]}", base)


# -- the maintained database ---------------------------------------------------------------------


def cache_dir() -> Path:
    """Where releasegate keeps what it can rebuild: ``RELEASEGATE_CACHE_DIR``, else XDG's."""
    named = os.environ.get(CACHE_ENV)
    if named:
        return Path(named)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "releasegate"


class Maintained:
    """genai-prices, asked per (model, provider) and remembered in the cache directory.

    Prices are those in force on the day of the lookup, for 1,000 input or output
    tokens scaled to 1M (so a long-context tier never applies). A model behind an
    endpoint genai-prices does not know (a proxy, a local server) is looked up among
    OpenAI's models, the protocol's home; a run's provider name picks its provider.
    """

    def __init__(self) -> None:
        import importlib.metadata  # ~10 ms: only once a price is needed

        try:
            self.package_version: str | None = importlib.metadata.version(MAINTAINED)
        except importlib.metadata.PackageNotFoundError:
            self.package_version = None
        self.as_of = dt.datetime.now(dt.UTC).date().isoformat()
        self._answers: dict[str, list[Any] | None] | None = None

    @property
    def label(self) -> str:
        return f"{MAINTAINED} {self.package_version or '(not installed)'}"

    @property
    def version(self) -> str:
        return f"{MAINTAINED}-{self.package_version or 'missing'}"

    @property
    def cache_file(self) -> Path:
        return cache_dir() / f"prices-{self.version}.json"

    def find(
        self, model: str, *, provider: str | None = None, base_url: str | None = None
    ) -> tuple[str, Price] | None:
        if self.package_version is None or not model:
            return None
        answers = self._cached()
        key = f"{provider or ''}\t{base_url or ''}\t{model}"
        if key not in answers:
            answers[key] = self._ask(model, provider, base_url)
            self._save(answers)
        hit = answers[key]
        return None if hit is None else (str(hit[0]), Price(float(hit[1]), float(hit[2])))

    def _ask(self, model: str, provider: str | None, base_url: str | None) -> list[Any] | None:
        from genai_prices import Usage, calc_price, data_snapshot

        snapshot = data_snapshot.get_snapshot()
        provider_id = "openai"
        for by_id, by_url in ((provider, None), (None, base_url)):
            if by_id is None and by_url is None:
                continue
            try:
                provider_id = snapshot.find_provider(None, by_id, by_url).id
                break
            except LookupError:
                continue
        else:
            if provider is not None:  # a run's provider genai-prices does not know
                return None
        for name in dict.fromkeys((model, SNAPSHOT.sub("", model))):
            try:
                one_in = calc_price(Usage(input_tokens=1000), name, provider_id=provider_id)
                one_out = calc_price(Usage(output_tokens=1000), name, provider_id=provider_id)
            except LookupError:
                continue
            per_1m = [float(one_in.total_price) * 1000.0, float(one_out.total_price) * 1000.0]
            return [one_in.model.id, *per_1m]
        return None

    def _cached(self) -> dict[str, list[Any] | None]:
        if self._answers is None:
            try:
                loaded = json.loads(self.cache_file.read_text(encoding="utf-8"))
                self._answers = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._answers = {}
        return self._answers

    def _save(self, answers: dict[str, list[Any] | None]) -> None:
        path = self.cache_file
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            partial.write_text(json.dumps(answers, sort_keys=True), encoding="utf-8")
            os.replace(partial, path)
        except OSError as exc:  # a read-only home: price on, without remembering
            log.debug("price cache not written: %s", exc)


@functools.lru_cache(maxsize=1)
def maintained() -> Maintained:
    return Maintained()


def _read(path: Path) -> tuple[str, str | None, dict[str, Price]]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the price table: {exc.strerror}", source=source) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason})", source=source) from None
    import yaml

    from releasegate.domain.untrusted import compose_yaml

    root = compose_yaml(text, source)

    def fail(
        node: yaml.Node | None, field: str | None, message: str, hint: str | None = None
    ) -> NoReturn:
        line = node.start_mark.line + 1 if node is not None else None
        raise InputError(message, source=source, line=line, field=field, hint=hint)

    if not isinstance(root, yaml.MappingNode):
        fail(root, None, "expected a mapping with version and models")
    top = _entries(root, source)
    for key, (key_node, _) in top.items():
        if key not in TOP_KEYS:
            fail(key_node, key, f"unknown field '{key}'", f"allowed here: {', '.join(TOP_KEYS)}")
    if "version" not in top:
        fail(root, "version", "missing: every price table says which version it is")
    version = _scalar(top["version"][1])
    if not isinstance(version, str | int | float) or isinstance(version, bool) or version == "":
        fail(top["version"][1], "version", 'expected a version string, like "2025.08"')
    as_of = _scalar(top["as_of"][1]) if "as_of" in top else None
    if as_of is not None and not isinstance(as_of, str | dt.date):
        fail(top["as_of"][1], "as_of", "expected a date, like 2025-08-07")
    for key, expected in (("currency", CURRENCY), ("unit", UNIT)):
        if key in top and _scalar(top[key][1]) != expected:
            fail(top[key][1], key, f"only '{expected}' is supported")
    if "models" not in top:
        fail(root, "models", "missing: a mapping of model name to {input, output}")
    models_node = top["models"][1]
    if not isinstance(models_node, yaml.MappingNode):
        fail(models_node, "models", "expected a mapping of model name to {input, output}")
    models: dict[str, Price] = {}
    for name, (name_node, entry) in _entries(models_node, source).items():
        field = f"models.{name}"
        if not isinstance(entry, yaml.MappingNode):
            fail(entry, field, "expected {input: USD per 1M tokens, output: USD per 1M tokens}")
        values = _entries(entry, source)
        for key, (key_node, _) in values.items():
            if key not in ("input", "output"):
                fail(key_node, f"{field}.{key}", f"unknown field '{key}'", "allowed: input, output")
        amounts = []
        for key in ("input", "output"):
            if key not in values:
                fail(name_node, f"{field}.{key}", "missing (USD per 1M tokens; 0 if free)")
            value = _scalar(values[key][1])
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                got = "a mapping or list" if isinstance(value, yaml.Node) else repr(value)
                fail(values[key][1], f"{field}.{key}", f"expected a number, 0 or more, got {got}")
            amounts.append(float(value))
        models[name] = Price(amounts[0], amounts[1])
    as_of_text = as_of.isoformat() if isinstance(as_of, dt.date) else as_of
    return str(version), as_of_text, models


def _entries(node: yaml.MappingNode, source: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key in out:
            line = key_node.start_mark.line + 1
            raise InputError(f"duplicate key '{key}'", source=source, line=line, field=key)
        out[key] = (key_node, value_node)
    return out


def _scalar(node: yaml.Node) -> Any:
    import yaml

    from releasegate.domain.untrusted import construct_scalar

    if not isinstance(node, yaml.ScalarNode):
        return node  # a mapping or list where a value belongs: the caller says so
    return construct_scalar(node)
