"""Prompt (prefill) throughput of the installed llama.cpp build on the local judge's default model
(SmolLM2-135M Q8_0): tokens/s over a ~1,000-token prompt, best of several runs (the machine may
be shared). Run it with each venv's Python to compare builds, e.g. the portable one that
`make install` makes against one built with other LLAMA_CMAKE_ARGS:

    .venv/bin/python bench/llama_prefill.py [--threads 1] [--runs 6] [--model PATH.gguf]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--tokens", type=int, default=1000)
    ap.add_argument("--model", type=Path, help="a GGUF file (default: the local judge's)")
    args = ap.parse_args()

    import llama_cpp

    from judges.local import default_model

    model = args.model or default_model()
    print(f"build: {llama_cpp.llama_print_system_info().decode().strip()}")
    llm = llama_cpp.Llama(
        model_path=str(model),
        n_ctx=2 * args.tokens,
        n_batch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    # ordinary English and code: llama_cpp's own source
    text = Path(llama_cpp.__file__).with_name("llama.py").read_text()[: 30 * args.tokens]
    tokens = llm.tokenize(text.encode())[: args.tokens]
    rates = []
    for _ in range(args.runs):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(tokens)
        rates.append(len(tokens) / (time.perf_counter() - t0))
    print(
        f"{model.name}: {len(tokens)}-token prompt, {args.threads} thread(s), load "
        f"{os.getloadavg()[0]:.1f}: best {max(rates):.0f} tok/s "
        f"(runs: {', '.join(f'{r:.0f}' for r in rates)})"
    )


if __name__ == "__main__":
    main()
