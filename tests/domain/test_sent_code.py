"""What a document sent to the server may make it run (domain/sent_code), without I/O."""

from __future__ import annotations

from releasegate.domain.sent_code import SentCodePolicy, refusals

NONE = SentCodePolicy()


def fields(doc: object, policy: SentCodePolicy = NONE) -> list[str]:
    return [r.field for r in refusals(doc, policy)]


def test_python_code_is_refused_unless_its_package_is_allowed() -> None:
    doc = {"model": {"provider": "python", "name": "subprocess:getoutput"}}
    assert fields(doc) == ["model.name"]
    assert "subprocess" in refusals(doc, NONE)[0].message
    assert fields(doc, SentCodePolicy(python_modules=("subprocess",))) == []
    assert fields(doc, SentCodePolicy(python_modules=("*",))) == []
    ours = {"model": {"provider": "python", "name": "acme.router.v2:route"}}
    assert fields(ours, SentCodePolicy(python_modules=("acme",))) == []
    assert fields(ours, SentCodePolicy(python_modules=("acme.router",))) == []
    # a prefix is a package, not the start of a name
    assert fields(ours, SentCodePolicy(python_modules=("acm",))) == ["model.name"]


def test_a_python_scorer_is_found_wherever_it_sits_and_a_tools_function_is_not_code() -> None:
    suite = {
        "suite": "s",
        "scorers": [
            {"type": "equals"},
            {"type": "python", "params": {"function": "os:system"}},
        ],
    }
    assert fields(suite) == ["scorers[1].params.function"]
    tools = {"tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]}
    assert fields(tools) == []


def test_a_model_host_and_a_key_variable_must_be_allowed() -> None:
    doc = {
        "model": {
            "provider": "openai",
            "name": "gpt",
            "base_url": "http://attacker.example:8000/v1",
            "api_key_env": "RELEASEGATE_DATABASE_URL",
        }
    }
    assert fields(doc) == ["model.base_url", "model.api_key_env"]
    allowed = SentCodePolicy(model_hosts=("attacker.example",), key_envs=("RELEASEGATE_*",))
    assert fields(doc, allowed) == []
    # the defaults: no host, keys named *_API_KEY
    plain = {"model": {"provider": "openai", "name": "gpt", "api_key_env": "OPENAI_API_KEY"}}
    assert fields(plain) == []
    judge = {"scorers": [{"type": "judge", "params": {"model": {"base_url": "localhost:11434"}}}]}
    assert fields(judge) == ["scorers[0].params.model.base_url"]
    assert fields(judge, SentCodePolicy.parse(hosts="LOCALHOST, 127.0.0.1")) == []


def test_the_option_values_parse_to_the_policy() -> None:
    policy = SentCodePolicy.parse("acme, tests ,", "", "*_API_KEY,HF_TOKEN")
    assert policy == SentCodePolicy(("acme", "tests"), (), ("*_API_KEY", "HF_TOKEN"))
    assert SentCodePolicy.parse() == SentCodePolicy()
