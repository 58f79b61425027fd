"""``ani llm``: run the embedded model server, check a model server."""

from __future__ import annotations

import signal
import threading

import click

from harness.errors import AniError
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


@llm.command()
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="TCP port (default: a free one, printed at start).")
@click.option("--model", "model_path", type=click.Path(dir_okay=False),
              help="GGUF file to serve (default: the bundled SmolLM2-135M-Instruct).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Listen address. The server has no API key: keep it on loopback.")
@click.option("--threads", type=click.IntRange(1), default=None, help="Compute threads (default: all CPUs).")
def serve(port: int | None, model_path: str | None, host: str, threads: int | None) -> None:
    """Serve a model with llama.cpp's OpenAI-compatible server until Ctrl-C."""
    try:
        with EmbeddedServer(model_path=model_path, port=port, host=host, threads=threads) as srv:
            click.echo(f"serving {srv.model} at {srv.url}  (started in {srv.startup_s:.1f} s; Ctrl-C stops)")
            click.echo(f"use it with: --llm-url {srv.url}")
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
def ping(llm_url: str, model: str | None, timeout_s: float) -> None:
    """Say whether a model server answers and which models it has."""
    try:
        with LLMClient(llm_url, timeout_s=timeout_s, retries=0) as client:
            names = client.models()
    except AniError as exc:
        _fail(exc)
    click.echo(f"{client.base_url} answers; models: {', '.join(names) or '(none)'}")
    if model is not None and model not in names:
        _fail(AniError(f"model {model!r} is not offered by {client.base_url} (it has: {', '.join(names)})"))
