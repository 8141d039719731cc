"""The PyTorch peer of bench_model's training step on a GPU.

Hugging Face transformers' LlamaForCausalLM with bench_model's 1b shape
(TinyLlama-1.1B: 22 layers, width 2048, 32 heads, 4 KV heads, MLP 5632, vocab
32000), attention through scaled_dot_product_attention (causal: the flash
backend), a batch of 4 x 1024 random tokens, mean cross-entropy, backward,
fused torch.optim.AdamW; micro-batches 1 and 4 (gradients accumulated, one
optimizer step), as `bench_model --micro-batches 1,4` times srlm.

Two precisions:
  autocast  fp32 parameters and AdamW, bf16 compute under torch.autocast: fp32
            master weights as srlm's backend.dtype bfloat16 keeps (srlm keeps a
            bf16 copy of the weights; autocast casts them in every forward)
  bf16      bf16 parameters and AdamW on them (no master weights): less work
            than srlm does, the fastest eager PyTorch gets here

FLOPs are counted as bench_model counts them (6 x non-embedding parameters
per token + 6 x layers x width x tokens^2 per sequence, PaLM's MFU), so the
TFLOP/s of the two programs divide into a speed ratio. Prints one
"train_step_torch:" line per measurement:

  python3 benchmarks/gpu/peer_model.py [--steps 10] [--micro-batches 1,4] [--peak-tflops 989]
"""
import argparse
import gc
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--micro-batches", default="1,4")
    ap.add_argument("--precisions", default="autocast,bf16")
    ap.add_argument("--peak-tflops", type=float, default=0.0)
    ap.add_argument("--tiny", action="store_true", help="a 2-layer model: checks the program in seconds")
    a = ap.parse_args()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if not torch.cuda.is_available():
        print("peer_model.py: no CUDA device", file=sys.stderr)
        return 2
    shape = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                 num_attention_heads=32, num_key_value_heads=4)
    if a.tiny:
        shape = dict(vocab_size=512, hidden_size=128, intermediate_size=344, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2)
    cfg = LlamaConfig(**shape, max_position_embeddings=4096, rms_norm_eps=1e-5, tie_word_embeddings=False,
                      bos_token_id=1, eos_token_id=2)
    cfg._attn_implementation = "sdpa"
    print(f"peer_model.py: torch {torch.__version__}, transformers "
          f"{__import__('transformers').__version__} on {torch.cuda.get_device_name()}", file=sys.stderr)
    torch.manual_seed(0)
    B, T = a.batch, a.seq
    ids = torch.randint(3, shape["vocab_size"], (B, T), device="cuda")
    for prec in a.precisions.split(","):
        dtype = torch.bfloat16 if prec == "bf16" else torch.float32
        with torch.device("cuda"):
            model = LlamaForCausalLM(cfg).to(dtype)
        model.train()
        n_all = sum(p.numel() for p in model.parameters())
        n_flop = n_all - model.model.embed_tokens.weight.numel()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1,
                                fused=True)

        def step(micro):
            opt.zero_grad(set_to_none=False)
            for _ in range(micro):
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=(prec == "autocast")):
                    loss = model(input_ids=ids, labels=ids).loss / micro
                loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9)  # the norm srlm computes every step
            opt.step()

        for micro in [int(k) for k in a.micro_batches.split(",")]:
            for _ in range(3):
                step(micro)
            torch.cuda.synchronize()
            times = []
            for _ in range(a.steps):
                t0 = time.perf_counter()
                step(micro)
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            mean, best = sum(times) / len(times), min(times)
            tokens = micro * B * T
            flops = 6.0 * n_flop * tokens + 6.0 * cfg.num_hidden_layers * cfg.hidden_size * T * T * B * micro
            line = (f"train_step_torch: batch {B}, seq {T}, micro-batches {micro}, precision {prec}, "
                    f"mean {mean:.4f} s, best {best:.4f} s, {tokens / mean:.0f} tokens/s, "
                    f"{flops / mean / 1e12:.2f} TFLOP/s")
            if a.peak_tflops > 0:
                line += f", MFU {100 * flops / mean / 1e12 / a.peak_tflops:.1f}% of {a.peak_tflops:.0f} TFLOP/s"
            print(line, flush=True)
        del model, opt
        gc.collect()
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
