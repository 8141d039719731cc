#!/usr/bin/env python3
"""PyTorch peers of bench_kernels on the same GPU, in the same TSV format:

    impl kernel dtype shape ms value unit ref ref_value pct_of_ref

attention: torch.nn.functional.scaled_dot_product_attention restricted to the
flash backend (torch.nn.attention.sdpa_kernel(SDPBackend.FLASH_ATTENTION)),
bf16, (B, H, S, D) with B*S = 16384, H = 16, D = 128, and the 1.1B model's
B 4, S 1024, 32 heads of 64 (its 4 KV heads as 32: flash takes no GQA), causal: forward, and
forward + backward (torch.autograd.grad, so no gradient accumulation), with
FlashAttention's causal FLOP count (fwd 4*B*H*S*S*D/2, bwd 2.5x, both 3.5x);
attn_bwd is the difference of the two medians.
log-prob: log_softmax + gather of the target (fp32, and bf16 computed in fp32
via dtype=torch.float32) on 8192 x 32000 logits, forward and forward +
backward; GB/s over the same byte counts as bench_kernels (fwd: the logits
read once; bwd: read + write; both: 3x), against torch's own device copy.

Exits 3 with "peer not measured: ..." on stderr when torch or a GPU is missing.
Timing: CUDA events around each call, warm-up first, the median of the calls.
"""
import sys


def main():
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # ImportError, or a broken install
        print(f"peer not measured: no torch ({e})", file=sys.stderr)
        return 3
    if not torch.cuda.is_available():
        print("peer not measured: torch sees no GPU", file=sys.stderr)
        return 3
    quick = "--quick" in sys.argv
    reps = 5 if quick else 20
    dev = torch.device("cuda")
    print(f"peers.py: torch {torch.__version__} on {torch.cuda.get_device_name(0)}", file=sys.stderr)

    def median_ms(fn, warm=3):
        for _ in range(warm):
            fn()
        torch.cuda.synchronize()
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
        for a, b in ev:
            a.record()
            fn()
            b.record()
        torch.cuda.synchronize()
        ms = sorted(a.elapsed_time(b) for a, b in ev)
        n = len(ms)
        return ms[n // 2] if n % 2 else 0.5 * (ms[n // 2 - 1] + ms[n // 2])

    def row(kernel, dtype, shape, ms, value, unit, ref="-", ref_value=0.0):
        pct = f"{100.0 * value / ref_value:.1f}" if ref_value > 0 else "nan"
        print(f"torch\t{kernel}\t{dtype}\t{shape}\t{ms:.4f}\t{value:.2f}\t{unit}\t{ref}\t{ref_value:.2f}\t{pct}",
              flush=True)

    print("impl\tkernel\tdtype\tshape\tms\tvalue\tunit\tref\tref_value\tpct_of_ref", flush=True)

    # device-to-device copy, bytes read + written
    nbytes = 1 << 30
    src = torch.rand(nbytes // 4, device=dev)
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src))
    copy_gbps = 2.0 * nbytes / (ms * 1e-3) / 1e9
    row("memcpy_d2d", "-", "1GiB", ms, copy_gbps, "GB/s")
    del src, dst

    # attention, flash backend
    from torch.nn.attention import SDPBackend, sdpa_kernel

    # (B, S, H, KV, D): bench_kernels' shapes; the last is the 1.1B model's (GQA,
    # head dim 64), whose K/V the peer gets expanded to H heads before timing
    # (the flash backend takes no GQA; the FLOPs are the same)
    shapes = [(16384 // S, S, 16, 16, 128) for S in (512, 1024, 2048, 4096)] + [(4, 1024, 32, 4, 64)]
    for B, S, H, KV, D in shapes:
        shape = f"B{B}_H{H}_S{S}_D{D}_causal" if KV == H else f"B{B}_H{H}_KV{KV}_S{S}_D{D}_causal"
        q, k, v, do = (torch.randn(B, H, S, D, device=dev, dtype=torch.bfloat16) for _ in range(4))
        for t in (q, k, v):
            t.requires_grad_(True)
        fwd_flop = 4.0 * B * H * S * S * D / 2.0
        try:
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                def fwd():
                    with torch.no_grad():
                        F.scaled_dot_product_attention(q, k, v, is_causal=True)

                def fwd_bwd():
                    o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                    torch.autograd.grad(o, (q, k, v), do)

                f = median_ms(fwd)
                fb = median_ms(fwd_bwd)
        except RuntimeError as e:
            print(f"peers.py: flash attention at {shape} refused: {e}", file=sys.stderr)
            continue
        row("attn_fwd", "bf16", shape, f, fwd_flop / (f * 1e-3) / 1e12, "TFLOP/s")
        b = fb - f
        if b > 0:
            row("attn_bwd", "bf16", shape, b, 2.5 * fwd_flop / (b * 1e-3) / 1e12, "TFLOP/s")
        row("attn_fwd_bwd", "bf16", shape, fb, 3.5 * fwd_flop / (fb * 1e-3) / 1e12, "TFLOP/s")
        del q, k, v, do

    # log-prob: log_softmax + gather
    rows, vocab = 8192, 32000
    tgt = torch.randint(0, vocab, (rows, 1), device=dev)
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x = ((torch.rand(rows, vocab, device=dev) * 2 - 1) * 8).to(dt)
        xg = x.detach().clone().requires_grad_(True)
        dl = torch.full((rows, 1), -1.0 / rows, device=dev)
        esz = x.element_size()
        nb = rows * vocab * esz

        def lp_fwd():
            with torch.no_grad():
                torch.log_softmax(x, dim=-1, dtype=torch.float32).gather(-1, tgt)

        def lp_fwd_bwd():
            lp = torch.log_softmax(xg, dim=-1, dtype=torch.float32).gather(-1, tgt)
            torch.autograd.grad(lp, xg, dl)

        f = median_ms(lp_fwd)
        fb = median_ms(lp_fwd_bwd)
        shape = f"{rows}x{vocab}"
        row("logprob_fwd", name, shape, f, nb / (f * 1e-3) / 1e9, "GB/s", "memcpy_GB/s", copy_gbps)
        if fb > f:
            row("logprob_bwd", name, shape, fb - f, 2 * nb / ((fb - f) * 1e-3) / 1e9, "GB/s", "memcpy_GB/s",
                copy_gbps)
        row("logprob_fwd_bwd", name, shape, fb, 3 * nb / (fb * 1e-3) / 1e9, "GB/s", "memcpy_GB/s", copy_gbps)
        del x, xg
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
