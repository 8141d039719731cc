#!/usr/bin/env python3
"""Forward-pass throughput of srlm vs PyTorch on the same weights and threads.

Builds a ~24M-parameter Llama with transformers (dim 288, 6 layers, 6 heads,
MLP 768, vocab 32000, fp32), saves it as a Hugging Face checkpoint, then times
a forward pass over batch x sequence = 4 x 256 tokens (all logits) in srlm
(build/benchmarks/bench_forward) and in PyTorch (LlamaForCausalLM, default
SDPA attention, torch.no_grad), both with the same thread count, one after
the other in this run. Prints tokens/s of each and the ratio srlm / PyTorch.

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch==2.5.1 transformers==4.46.3
    /tmp/ref/bin/python benchmarks/forward_vs_pytorch.py [--threads N] [--repeats R]
"""
import argparse
import json
import os
import platform
import statistics
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
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "benchmarks", "bench_forward"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32000, hidden_size=288, intermediate_size=768,
                      num_hidden_layers=6, num_attention_heads=6, num_key_value_heads=6,
                      max_position_embeddings=1024, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).eval()
    n_params = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d, safe_serialization=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        out = subprocess.run([args.bench, d, str(args.batch), str(args.seq), str(args.repeats),
                              str(args.threads)], check=True, capture_output=True, text=True, env=env)
        ours = json.loads(out.stdout.strip().splitlines()[-1])

    ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq))
    times = []
    with torch.no_grad():
        for r in range(args.repeats + 1):
            t0 = time.perf_counter()
            model(ids)
            if r:
                times.append(time.perf_counter() - t0)
    torch_tps = args.batch * args.seq / statistics.median(times)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"threads {args.threads}; torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"model: {n_params / 1e6:.1f}M parameters, fp32; batch x seq = {args.batch} x {args.seq}")
    print(f"srlm:    {ours['tokens_per_s']:9.0f} tokens/s  (median of {args.repeats})")
    print(f"pytorch: {torch_tps:9.0f} tokens/s  (median of {args.repeats})")
    print(f"ratio srlm / pytorch: {ours['tokens_per_s'] / torch_tps:.2f}")


if __name__ == "__main__":
    main()
