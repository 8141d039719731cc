#!/usr/bin/env python3
"""Generation throughput: srlm's engine vs transformers' generate, same weights and threads.

The 24M-parameter Llama of the other benchmarks (vocab 32000) with the Llama-2 tokenizer
(../shared/data/llama2/tokenizer.model, or --tokenizer). Work: P prompts of 64 random token
ids, N = 4 samples each, 64 new tokens per sample (EOS ignored), temperature 0.7, top-p 0.9.
  (a) srlm generate, all prompts in one call: continuous batching (batch 32), each prompt
      prefilled once for its 4 samples;
  (b) srlm generate, one sequence at a time (--batch 1 --no-share-prefix);
  (c) transformers' generate, one prompt at a time with num_return_sequences = 4 (KV cache,
      default SDPA attention);
  (d) srlm generate the way (c) works: one prompt's 4 samples as one batch (--batch 4).
Prints generated tokens/s of each and the ratios, one run, same machine and thread count.

    /tmp/ref/bin/python benchmarks/generate_vs_transformers.py [--threads N] [--prompts P]
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "..", "shared", "data", "llama2", "tokenizer.model"))
    ap.add_argument("--srlm", default=os.path.join(ROOT, "build", "srlm"))
    a = ap.parse_args()
    if not os.path.exists(a.tokenizer):
        raise SystemExit(f"needs a 32000-piece tokenizer: {a.tokenizer} not found (--tokenizer)")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32000, hidden_size=288, intermediate_size=768, num_hidden_layers=6,
                      num_attention_heads=6, num_key_value_heads=6, max_position_embeddings=1024,
                      tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).eval()
    g = torch.Generator().manual_seed(1)
    prompts = [[1] + torch.randint(3, 32000, (63,), generator=g).tolist() for _ in range(a.prompts)]
    N, new = 4, a.new
    total = a.prompts * N * new
    res = {}
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d, safe_serialization=True)
        shutil.copy(a.tokenizer, os.path.join(d, "tokenizer.model"))
        inp = os.path.join(d, "prompts.jsonl")
        with open(inp, "w") as f:
            for p in prompts:
                f.write(json.dumps({"prompt_ids": p}) + "\n")
        common = [a.srlm, "generate", "--model", d, "--input", inp, "--output", os.path.join(d, "out.jsonl"),
                  "--samples", str(N), "--temperature", "0.7", "--top-p", "0.9", "--max-new-tokens", str(new),
                  "--ignore-eos", "--threads", str(a.threads)]
        for name, extra in [("a", ["--batch", "32"]), ("b", ["--batch", "1", "--no-share-prefix"]),
                            ("d", ["--batch", "4"])]:
            t0 = time.perf_counter()
            subprocess.run(common + extra, check=True, capture_output=True)
            res[name] = total / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    with torch.no_grad():
        for p in prompts:
            model.generate(torch.tensor([p]), do_sample=True, temperature=0.7, top_p=0.9, top_k=0,
                           max_new_tokens=new, min_new_tokens=new, num_return_sequences=N, pad_token_id=0)
    res["c"] = total / (time.perf_counter() - t0)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; threads {a.threads}; "
          f"torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"work: {a.prompts} prompts x {N} samples x {new} new tokens (prompt 64 tokens), 24M-parameter model")
    print(f"(a) srlm batched, shared prefixes: {res['a']:8.0f} tokens/s")
    print(f"(b) srlm one sequence at a time:   {res['b']:8.0f} tokens/s")
    print(f"(c) transformers generate:          {res['c']:8.0f} tokens/s")
    print(f"(d) srlm 4 samples of a prompt:     {res['d']:8.0f} tokens/s")
    print(f"ratios: a/c {res['a'] / res['c']:.2f}, b/c {res['b'] / res['c']:.2f}, d/c {res['d'] / res['c']:.2f}, "
          f"a/b {res['a'] / res['b']:.2f}")


if __name__ == "__main__":
    main()
