"""LLM backends: an OpenAI-compatible client (vLLM or llama.cpp), the embedded
llama.cpp server with the bundled SmolLM2 model, and compact GBNF grammars.

Every failure raises :class:`harness.errors.LLMError`.
"""

from harness.llm.client import DEFAULT_URL, Completion, LLMClient, build_request
from harness.llm.embedded import EmbeddedServer, default_model_path, default_threads
from harness.llm.grammar import schema_to_gbnf

__all__ = [
    "DEFAULT_URL",
    "Completion",
    "EmbeddedServer",
    "LLMClient",
    "build_request",
    "default_model_path",
    "default_threads",
    "schema_to_gbnf",
]
