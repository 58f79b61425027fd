"""LLM backends: an OpenAI-compatible client (vLLM or llama.cpp), the embedded
llama.cpp server with the bundled SmolLM2 model, compact GBNF grammars, and a real vLLM
server in a subprocess (:mod:`harness.llm.vllm`; set up by :mod:`harness.llm.vllm_setup`).

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
