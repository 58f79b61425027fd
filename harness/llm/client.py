"""One client for OpenAI-compatible chat servers: vLLM in production, the embedded
llama.cpp server (:mod:`harness.llm.embedded`) by default.

Structured output is requested with the field both servers document,
``response_format: {"type": "json_schema", "json_schema": {name, schema, strict}}``.
vLLM's older ``guided_json`` is *silently ignored* from vLLM 0.12 on (HTTP 200,
unconstrained text), so it is never sent. llama.cpp additionally takes a GBNF
``grammar`` field (see :mod:`harness.llm.grammar`); vLLM does not know it.

Every failure (server down, timeout, 4xx/5xx, non-JSON reply, no choices)
becomes an :class:`~harness.errors.LLMError` whose message names the URL and
says what to do; no httpx exception escapes. Connection errors, timeouts and
5xx replies are retried with exponential backoff.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import httpx

from harness.errors import LLMError

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8080/v1"


@dataclass(frozen=True)
class Completion:
    """One chat completion: the text and what it cost."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    latency_s: float


def build_request(messages: list[dict], *, model: str | None = None, schema: dict | None = None,
                  schema_name: str = "event", grammar: str | None = None, temperature: float = 0.7,
                  seed: int | None = None, max_tokens: int = 256) -> dict:
    """The JSON body of a ``POST /v1/chat/completions`` request (pure function).

    With ``schema``, adds vLLM's documented structured-output field
    ``response_format = {"type": "json_schema", "json_schema": {"name": schema_name,
    "schema": schema, "strict": True}}``; the schema is passed unchanged (set
    ``additionalProperties: false`` in it yourself). With ``grammar`` (GBNF, llama.cpp
    only), adds ``grammar`` instead. Both at once is refused: they would conflict.

    Raises
    ------
    LLMError
        Empty ``messages``, or both ``schema`` and ``grammar``.
    """
    if not messages:
        raise LLMError("no messages to send to the model")
    if schema is not None and grammar is not None:
        raise LLMError("pass either schema (response_format) or grammar (llama.cpp GBNF), not both")
    body: dict = {
        "messages": [dict(m) for m in messages],
        "temperature": temperature,
        "max_tokens": max_tokens,
        "stream": False,
    }
    if model is not None:
        body["model"] = model
    if seed is not None:
        body["seed"] = seed
    if schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "schema": schema, "strict": True},
        }
    if grammar is not None:
        body["grammar"] = grammar
    return body


class LLMClient:
    """Client of an OpenAI-compatible server at ``base_url`` (ending in ``/v1``).

    Parameters
    ----------
    base_url : str
        e.g. ``http://127.0.0.1:8080/v1`` (a trailing ``/v1`` is added if missing).
    model : str, optional
        Model name sent with each request; if None, the first one ``GET /v1/models``
        lists (asked once, on the first :meth:`complete`).
    timeout_s : float
        Per-request timeout.
    retries : int
        Extra attempts after a connection error, timeout or 5xx (0 = no retry).
    backoff_s : float
        First wait between attempts; doubles each time.
    transport : httpx.BaseTransport, optional
        Test seam (e.g. ``httpx.MockTransport``).
    """

    def __init__(self, base_url: str = DEFAULT_URL, model: str | None = None, timeout_s: float = 60,
                 retries: int = 3, backoff_s: float = 0.5, transport: httpx.BaseTransport | None = None):
        url = base_url.rstrip("/")
        if not url.endswith("/v1"):
            url += "/v1"
        self.base_url = url
        self.model = model
        self.timeout_s = timeout_s
        self.retries = max(0, int(retries))
        self.backoff_s = backoff_s
        self.attempts = 0  # HTTP attempts made (for tests and logs)
        self._http = httpx.Client(timeout=timeout_s, transport=transport)

    # -- lifecycle -----------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "LLMClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------
    def _request(self, method: str, path: str, *, json_body: dict | None = None,
                 retries: int | None = None) -> dict:
        url = self.base_url + path
        tries = 1 + (self.retries if retries is None else retries)
        last = ""
        for attempt in range(tries):
            if attempt:
                wait = self.backoff_s * 2 ** (attempt - 1)
                log.debug("retrying %s %s in %.2f s (%s)", method, url, wait, last)
                time.sleep(wait)
            self.attempts += 1
            try:
                resp = self._http.request(method, url, json=json_body)
            except httpx.ConnectError:
                last = (f"cannot connect to the model server at {self.base_url} (connection refused or host "
                        f"unreachable). Start one with `ani llm serve` or point --llm-url at a running server")
                continue
            except httpx.TimeoutException:
                last = (f"the model server at {self.base_url} did not answer {method} {path} within "
                        f"{self.timeout_s:g} s. Raise the timeout, lower max_tokens, or check the server's load")
                continue
            except httpx.HTTPError as exc:
                last = f"HTTP error talking to the model server at {self.base_url}: {exc}"
                continue
            if resp.status_code >= 500:
                last = (f"the model server at {self.base_url} answered {method} {path} with HTTP "
                        f"{resp.status_code}: {_snippet(resp.text)}")
                continue
            if resp.status_code == 404 and json_body is not None and json_body.get("model"):
                raise LLMError(f"the model server at {self.base_url} answered HTTP 404 for model "
                               f"{json_body['model']!r}: {_snippet(resp.text)}. Check the name with "
                               f"`ani llm ping --llm-url {self.base_url}`")
            if resp.status_code >= 400:
                model = f" (model {json_body['model']!r})" if json_body and json_body.get("model") else ""
                raise LLMError(f"the model server at {self.base_url} refused {method} {path}{model} with HTTP "
                               f"{resp.status_code}: {_snippet(resp.text)}")
            try:
                data = resp.json()
            except (json.JSONDecodeError, ValueError):
                raise LLMError(f"the model server at {self.base_url} sent a reply to {method} {path} that is not "
                               f"JSON: {_snippet(resp.text)}. Is --llm-url pointing at an OpenAI-compatible "
                               f"server?") from None
            if not isinstance(data, dict):
                raise LLMError(f"the model server at {self.base_url} sent unexpected JSON for {method} {path}: "
                               f"{_snippet(resp.text)}")
            return data
        raise LLMError(last + (f" (after {tries} attempts)" if tries > 1 else ""))

    # -- API -----------------------------------------------------------------------
    def is_available(self) -> bool:
        """True if ``GET /v1/models`` answers (one attempt, no retries)."""
        try:
            self._request("GET", "/models", retries=0)
        except LLMError:
            return False
        return True

    def models(self) -> list[str]:
        """Model names the server offers (``GET /v1/models``)."""
        data = self._request("GET", "/models")
        items = data.get("data")
        if not isinstance(items, list):
            raise LLMError(f"the model server at {self.base_url} sent no model list ('data') for GET /models")
        return [str(m.get("id")) for m in items if isinstance(m, dict) and m.get("id")]

    def complete(self, messages: list[dict], *, schema: dict | None = None, schema_name: str = "event",
                 grammar: str | None = None, temperature: float = 0.7, seed: int | None = None,
                 max_tokens: int = 256) -> Completion:
        """One chat completion. See :func:`build_request` for ``schema`` / ``grammar``.

        The text is returned as the model wrote it: parse and validate it yourself
        (model output is untrusted input).

        Raises
        ------
        LLMError
            Server down, timeout, HTTP error, non-JSON reply or no choices.
        """
        if self.model is None:
            names = self.models()
            if not names:
                raise LLMError(f"the model server at {self.base_url} lists no models; pass a model name")
            self.model = names[0]
        body = build_request(messages, model=self.model, schema=schema, schema_name=schema_name,
                             grammar=grammar, temperature=temperature, seed=seed, max_tokens=max_tokens)
        start = time.monotonic()
        data = self._request("POST", "/chat/completions", json_body=body)
        latency = time.monotonic() - start
        choices = data.get("choices")
        if not choices or not isinstance(choices, list):
            raise LLMError(f"the model server at {self.base_url} returned no choices: {_snippet(json.dumps(data))}")
        choice = choices[0] if isinstance(choices[0], dict) else {}
        message = choice.get("message") or {}
        text = message.get("content")
        if not isinstance(text, str):
            raise LLMError(f"the model server at {self.base_url} returned a choice without text: "
                           f"{_snippet(json.dumps(choice))}")
        usage = data.get("usage") or {}
        return Completion(
            text=text,
            model=str(data.get("model") or self.model or ""),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason=str(choice.get("finish_reason") or ""),
            latency_s=latency,
        )


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"
