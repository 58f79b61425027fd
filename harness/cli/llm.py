"""``ani llm``: run the embedded model server, check a model server."""

from __future__ import annotations

import signal
import threading

import click

from harness.cli.output import json_option, print_json
from harness.errors import AniError, ConfigError
from harness.llm import DEFAULT_URL, EmbeddedServer, LLMClient


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _fail(exc: AniError) -> None:
    """Print ``error: …`` and exit 1 (also when the group runs outside ``ani``'s main group)."""
    click.echo(f"error: {exc}", err=True)
    raise SystemExit(1)


@click.group()
def llm() -> None:
    """Serve and check language models (llama.cpp embedded, or vLLM)."""


ENGINES = ("embedded", "vllm")


def _server(engine: str, model_path: str | None, port: int | None, host: str, threads: int | None):
    if engine == "embedded":
        return EmbeddedServer(model_path=model_path, port=port, host=host, threads=threads)
    if threads is not None:
        raise ConfigError("--threads is for the embedded engine; vLLM chooses its own CPU threads")
    from harness.llm.vllm import VLLMServer

    return VLLMServer(model_dir=model_path, port=port, host=host)


@llm.command()
@click.option("--engine", type=click.Choice(ENGINES), default="embedded", show_default=True,
              help="embedded: llama.cpp in this process (GGUF). vllm: a vLLM server subprocess "
                   "(`make setup-vllm` installs it).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="TCP port (default: a free one, printed at start).")
@click.option("--model", "model_path", type=click.Path(),
              help="embedded: a GGUF file; vllm: a Hugging Face model folder "
                   "(default: the bundled SmolLM2-135M-Instruct).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Listen address. The server has no API key: keep it on loopback.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="Compute threads, embedded engine only (default: all CPUs but one).")
def serve(engine: str, port: int | None, model_path: str | None, host: str, threads: int | None) -> None:
    """Serve a model with an OpenAI-compatible server until Ctrl-C (or SIGTERM)."""
    try:
        with _server(engine, model_path, port, host, threads) as srv:
            click.echo(f"serving {srv.model} with {engine} at {srv.url}  "
                       f"(started in {srv.startup_s:.1f} s; Ctrl-C stops)")
            click.echo(f"use it with: --llm-url {srv.url} --model {srv.model}")
            previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops as cleanly as Ctrl-C
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                click.echo("stopping", err=True)
            finally:
                signal.signal(signal.SIGTERM, previous)
    except AniError as exc:
        _fail(exc)


@llm.command()
@click.option("--llm-url", default=DEFAULT_URL, show_default=True, help="OpenAI-compatible base URL.")
@click.option("--model", default=None, help="Also check that the server offers this model.")
@click.option("--timeout", "timeout_s", type=float, default=5.0, show_default=True, help="Seconds to wait.")
@json_option("Print the server's URL and models as one JSON document.")
def ping(llm_url: str, model: str | None, timeout_s: float, as_json: bool) -> None:
    """Say whether a model server answers and which models it has."""
    try:
        with LLMClient(llm_url, timeout_s=timeout_s, retries=0) as client:
            names = client.models()
    except AniError as exc:
        _fail(exc)
    if as_json:
        print_json({"url": client.base_url, "answers": True, "models": names,
                    **({} if model is None else {"model_offered": model in names})})
    else:
        click.echo(f"{client.base_url} answers; models: {', '.join(names) or '(none)'}")
    if model is not None and model not in names:
        _fail(AniError(f"model {model!r} is not offered by {client.base_url} (it has: {', '.join(names)})"))
