#!/usr/bin/env python3
"""Training-step throughput and peak memory: srlm vs PyTorch, same weights and threads.

The ~24M-parameter Llama of forward_vs_pytorch.py (dim 288, 6 layers, vocab 32000,
fp32); one step = forward + backward of the mean token cross-entropy over
batch x sequence = 4 x 256 (no optimizer). srlm runs build/benchmarks/bench_train_step
(with and without activation recomputation); PyTorch runs LlamaForCausalLM in eager
mode (attn_implementation="eager", labels = input ids) in a subprocess of its own so
that its peak resident memory is its own. Median of R steps after a warm-up.

--fill F (0.5 .. 1): a right-padded batch whose real tokens are F of batch x sequence,
lengths falling evenly from the sequence length (bench_fill_lengths in bench_util.h).
PyTorch gets the attention mask and labels -100 on the padding, as transformers trains
a padded batch; srlm packs it. Tokens/s counts real tokens on both sides.

    /tmp/ref/bin/python benchmarks/train_vs_pytorch.py [--threads N] [--repeats R] [--fill F]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_model(path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32000, hidden_size=288, intermediate_size=768,
                      num_hidden_layers=6, num_attention_heads=6, num_key_value_heads=6,
                      max_position_embeddings=1024, tie_word_embeddings=False)
    LlamaForCausalLM(cfg).save_pretrained(path, safe_serialization=True)


def fill_lengths(batch, seq, fill):
    """bench_fill_lengths (benchmarks/bench_util.h), the same numbers."""
    out = []
    for b in range(batch):
        share = 1.0 - 2.0 * (1.0 - fill) * b / (batch - 1) if batch > 1 else fill
        out.append(max(2, int(seq * share + 0.5)))
    return out


def torch_step(path, batch, seq, repeats, threads, fill):
    import torch
    from transformers import LlamaForCausalLM
    torch.set_num_threads(threads)
    model = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32,
                                             attn_implementation="eager")
    model.train()
    ids = torch.randint(0, model.config.vocab_size, (batch, seq))
    lens = fill_lengths(batch, seq, fill)
    mask = torch.tensor([[1 if t < n else 0 for t in range(seq)] for n in lens])
    labels = ids.masked_fill(mask == 0, -100)
    times = []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        model.zero_grad(set_to_none=False)
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        if r:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    # VmHWM is this address space's own peak (ru_maxrss would include the parent's)
    peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
    print(json.dumps({"impl": "pytorch", "median_s": med, "tokens_per_s": sum(lens) / med,
                      "peak_rss_mb": peak}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--fill", type=float, default=1.0)
    ap.add_argument("--torch-child", default=None)
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "benchmarks", "bench_train_step"))
    a = ap.parse_args()
    if not 0.5 <= a.fill <= 1.0:
        ap.error("--fill: expected a share of real tokens in [0.5, 1]")
    if a.torch_child:
        return torch_step(a.torch_child, a.batch, a.seq, a.repeats, a.threads, a.fill)
    import torch
    import transformers
    with tempfile.TemporaryDirectory() as d:
        make_model(d)
        env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
        ours = {}
        for rc in (0, 1):
            out = subprocess.run([a.bench, d, str(a.batch), str(a.seq), str(a.repeats), str(a.threads), str(rc),
                                  str(a.fill)],
                                 check=True, capture_output=True, text=True, env=env)
            ours[rc] = json.loads(out.stdout.strip().splitlines()[-1])
        out = subprocess.run([sys.executable, __file__, "--torch-child", d, "--threads", str(a.threads),
                              "--repeats", str(a.repeats), "--batch", str(a.batch), "--seq", str(a.seq),
                              "--fill", str(a.fill)],
                             check=True, capture_output=True, text=True, env=env)
        theirs = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; threads {a.threads}; "
          f"torch {torch.__version__}, transformers {transformers.__version__}")
    lens = fill_lengths(a.batch, a.seq, a.fill)
    padded = f" ({sum(lens)} real: lengths {', '.join(map(str, lens))}; srlm packs, PyTorch pads)" if a.fill < 1 else ""
    print(f"model: 24.4M parameters, fp32; forward + backward over {a.batch} x {a.seq} tokens{padded}")
    for rc in (0, 1):
        print(f"srlm (recompute {'on ' if rc else 'off'}): {ours[rc]['tokens_per_s']:7.0f} tokens/s, "
              f"peak RSS {ours[rc]['peak_rss_mb']:6.0f} MB")
    print(f"pytorch (eager):        {theirs['tokens_per_s']:7.0f} tokens/s, peak RSS {theirs['peak_rss_mb']:6.0f} MB")
    print(f"ratio srlm / pytorch (tokens/s, recompute off): {ours[0]['tokens_per_s'] / theirs['tokens_per_s']:.2f}")


if __name__ == "__main__":
    main()
