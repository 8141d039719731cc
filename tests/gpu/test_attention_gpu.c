/* GPU attention forward and backward (kernels/attention.h) vs their CPU twins
 * (the CPU backend's attention and attention_backward) on random inputs, with
 * every output poisoned (NaN) before the kernel runs and the cache rows that
 * must never be read filled with NaN. Shapes: B > 1 with different n_past /
 * n_new, padding rows and padding sequences (n_new 0), slots in a permuted
 * order, GQA and MHA, T 1 .. 300, padded row strides, max_seq not a multiple
 * of the tile. bf16 with head_dim 64 or 128 and rows of a multiple of 8
 * elements runs the tensor-core forward and backward (wgmma on an sm_90
 * device, where they run again without ping-pong and the mma.sync kernels are
 * checked by forcing them); fp32,
 * head_dim 80 / 32 / 200 and the bf16 case with a stride of 4 extra elements
 * run the scalar path.
 * Packed sequences (training's layout: B 1, n_seg sequences one after another,
 * each attending within itself) on both paths: boundaries inside a tile and
 * on tile edges, a one-row sequence (also the last one, and without GQA),
 * padding rows after the packed ones. The tensor-core backward's GQA split
 * (a group's query heads over several dk/dv blocks, fp32 partials added after)
 * at the split these shapes get (one block per head), none, and two blocks a
 * group of four heads.
 * The argument checks run first, on the host; the rest is skipped without a
 * GPU.
 *
 * Tolerances, relative error in the 2-norm over a whole tensor:
 *   fp32 1e-5 (2e-5 for gradients): the same math in fp32 on both sides; only
 *     the summation order (online softmax with rescaling, tiled dot products)
 *     and exp2f vs expf differ, each ~1e-7 relative per operation, grown by
 *     sums of a few hundred terms to ~1e-6. Gradients go through one more
 *     dependent step (dS = P (dP - D), D from rowsum(dO O) here but from
 *     sum P dP on the CPU), hence the factor 2.
 *   bf16 1e-2: inputs are bf16 on both sides (the CPU reference runs in fp32
 *     on the bf16-rounded values), so the difference is the GPU's rounding:
 *     outputs rounded to bf16 (8-bit mantissa: relative error <= 2^-9 = 2e-3
 *     per element, ~1e-3 in the norm) plus, on the tensor cores, P (and in
 *     the backward dS) rounded to bf16 before the products that use them
 *     (another ~2^-9 per weight, averaging out over keys).
 *     A wrong fragment layout or mask gives errors of order 1.
 *   lse: max absolute error 1e-4 (fp32) / 1e-3 (bf16) against a double
 *     precision host computation on the same inputs.
 *   Per row, for out, dq, dk and dv: the largest row error relative to the
 *     RMS row norm (row_err_max), 2e-4 (fp32) / 1e-1 (bf16), ten times the
 *     whole-tensor bounds as a maximum over hundreds of rows is; it catches
 *     a mistake confined to a few rows or keys (a mask off at one sequence
 *     boundary), which the whole-tensor error dilutes, at order-1 size. */
#include "attention.h"
#include "backend/backend.h"
#include "gpu_util.h"

typedef struct {
    const char *name;
    srlm_dtype  dt;
    int         B, T, nh, nkv, hd, max_seq, slots, pad; /* pad: extra elements per row (stride) */
    int         slot[4], n_past[4], n_new[4];
    int         n_seg, seg_off[8]; /* packed sequences (B 1, n_past 0), or n_seg 0 */
} attn_case;

static const attn_case cases[] = {
    {"gqa 8/2 hd64 B3 pad", SRLM_F32, 3, 37, 8, 2, 64, 128, 4, 8, {2, 0, 3}, {0, 20, 5}, {37, 10, 1}, 0, {0}},
    {"mha 4/4 hd128 B2", SRLM_F32, 2, 130, 4, 4, 128, 256, 2, 0, {1, 0}, {0, 7}, {130, 100}, 0, {0}},
    {"gqa 6/3 hd80 B2", SRLM_F32, 2, 50, 6, 3, 80, 64, 3, 4, {2, 1}, {3, 0}, {50, 17}, 0, {0}},
    {"gqa 4/2 hd32 T1 B4", SRLM_F32, 4, 1, 4, 2, 32, 96, 4, 0, {3, 1, 0, 2}, {0, 40, 95, 10}, {1, 1, 1, 0}, 0, {0}},
    {"gqa 8/2 hd128 T300", SRLM_F32, 1, 300, 8, 2, 128, 320, 1, 0, {0}, {0}, {300}, 0, {0}},
    {"gqa 8/2 hd64 B3 pad", SRLM_BF16, 3, 37, 8, 2, 64, 128, 4, 8, {2, 0, 3}, {0, 20, 5}, {37, 10, 1}, 0, {0}},
    {"mha 4/4 hd128 B2", SRLM_BF16, 2, 130, 4, 4, 128, 256, 2, 0, {1, 0}, {0, 7}, {130, 100}, 0, {0}},
    {"gqa 6/3 hd80 B2", SRLM_BF16, 2, 50, 6, 3, 80, 64, 3, 4, {2, 1}, {3, 0}, {50, 17}, 0, {0}},
    {"gqa 4/2 hd32 T1 B4", SRLM_BF16, 4, 1, 4, 2, 32, 96, 4, 0, {3, 1, 0, 2}, {0, 40, 95, 10}, {1, 1, 1, 0}, 0, {0}},
    {"gqa 8/2 hd128 T300", SRLM_BF16, 1, 300, 8, 2, 128, 320, 1, 0, {0}, {0}, {300}, 0, {0}},
    {"gqa 8/2 hd128 B2 n_past", SRLM_BF16, 2, 70, 8, 2, 128, 200, 3, 8, {2, 0}, {65, 0}, {70, 3}, 0, {0}},
    {"gqa 4/1 hd64 B3 n_new 0", SRLM_BF16, 3, 20, 4, 1, 64, 150, 4, 0, {3, 1, 0}, {100, 7, 0}, {20, 0, 13}, 0, {0}},
    {"gqa 8/2 hd128 pad4 scalar", SRLM_BF16, 2, 40, 8, 2, 128, 64, 2, 4, {1, 0}, {10, 0}, {30, 40}, 0, {0}},
    {"hd200 B2 (wide heads)", SRLM_F32, 2, 20, 2, 1, 200, 48, 2, 0, {1, 0}, {10, 0}, {20, 5}, 0, {0}},
    {"packed 4 seqs hd128", SRLM_BF16, 1, 300, 8, 2, 128, 300, 1, 0, {0}, {0}, {300}, 4, {0, 70, 71, 200, 300}},
    {"packed tile edges hd64", SRLM_BF16, 1, 256, 4, 2, 64, 256, 1, 8, {0}, {0}, {256}, 3, {0, 64, 128, 256}},
    {"packed + padding pad4 scalar", SRLM_BF16, 1, 150, 8, 2, 128, 160, 1, 4, {0}, {0}, {140}, 3, {0, 33, 97, 140}},
    {"packed 5 seqs hd64", SRLM_F32, 1, 200, 6, 3, 64, 200, 1, 0, {0}, {0}, {200}, 5, {0, 1, 40, 41, 130, 200}},
    {"packed + padding hd64 mma", SRLM_BF16, 1, 300, 4, 2, 64, 300, 1, 0, {0}, {0}, {280}, 3, {0, 100, 101, 280}},
    {"packed 16/32 edges scalar", SRLM_F32, 1, 128, 4, 2, 64, 128, 1, 0, {0}, {0}, {128}, 4, {0, 16, 32, 64, 128}},
    /* no GQA (one query head a KV head), a one-row sequence last: alone in its
     * query tile (row 128) and at the end of a tile (row 199) */
    {"packed mha 4/4 hd64 one row last", SRLM_BF16, 1, 129, 4, 4, 64, 129, 1, 0, {0}, {0}, {129}, 2, {0, 128, 129}},
    {"packed mha 4/4 hd128 one row last", SRLM_BF16, 1, 200, 4, 4, 128, 200, 1, 0, {0}, {0}, {200}, 3, {0, 130, 199, 200}},
};

static void run_case(srlm_backend *be, const attn_case *c, uint64_t seed) {
    const int B = c->B, T = c->T, hd = c->hd;
    const int64_t qcols = (int64_t)c->nh * hd, kvcols = (int64_t)c->nkv * hd;
    const int64_t qld = qcols + c->pad, kvld = kvcols + c->pad;
    const int64_t qrows = (int64_t)B * T, kvrows = (int64_t)c->slots * c->max_seq;
    const size_t nq = (size_t)(qrows * qld), nkv = (size_t)(kvrows * kvld);
    const int bf = c->dt == SRLM_BF16;
    float *q = random_f32(nq, seed, 0.0f, 1.0f, c->dt), *dout = random_f32(nq, seed + 1, 0.0f, 1.0f, c->dt);
    srlm_attn_shape hs = {B, T, c->nh, c->nkv, hd, c->max_seq, c->slot, c->n_past, c->n_new, c->n_seg,
                          c->n_seg ? c->seg_off : NULL};
    /* cache rows outside [0, n_past + n_new) of a used slot, and unused slots: NaN */
    float *k = malloc(nkv * 4), *v = malloc(nkv * 4);
    const int max_len = random_kv_cache(k, v, nkv, &hs, kvld, seed + 2, seed + 3, c->dt);

    /* CPU reference (fp32) */
    float *ref_out = malloc(nq * 4), *ref_dq = malloc(nq * 4), *ref_dk = malloc(nkv * 4), *ref_dv = malloc(nkv * 4);
    srlm_view hq = {q, SRLM_F32, qrows, qcols, qld}, hdo = {dout, SRLM_F32, qrows, qcols, qld};
    srlm_view hk = {k, SRLM_F32, kvrows, kvcols, kvld}, hv = {v, SRLM_F32, kvrows, kvcols, kvld};
    srlm_view ho = {ref_out, SRLM_F32, qrows, qcols, qld}, hdq = {ref_dq, SRLM_F32, qrows, qcols, qld};
    srlm_view hdk = {ref_dk, SRLM_F32, kvrows, kvcols, kvld}, hdv = {ref_dv, SRLM_F32, kvrows, kvcols, kvld};
    CHECK_OK(be->ops->attention(be, &ho, &hq, &hk, &hv, &hs, NULL));
    CHECK_OK(be->ops->attention_backward(be, &hdq, &hdk, &hdv, &hdo, &hq, &hk, &hv, &hs, NULL, NULL));

    /* GPU */
    const size_t es = srlm_dtype_size(c->dt);
    void *dq_in = gpu_from_f32(q, nq, c->dt), *ddo = gpu_from_f32(dout, nq, c->dt);
    void *dk_in = gpu_from_f32(k, nkv, c->dt), *dv_in = gpu_from_f32(v, nkv, c->dt);
    void *dout_ = gpu_poisoned(nq * es), *ddq = gpu_poisoned(nq * es), *ddk = gpu_poisoned(nkv * es),
         *ddv = gpu_poisoned(nkv * es);
    float *dlse = gpu_poisoned((size_t)qrows * c->nh * sizeof(float));
    const size_t ib = sizeof(int) * (size_t)B;
    int *dslot = gpu_from_host(c->slot, ib), *dpast = gpu_from_host(c->n_past, ib), *dnew = gpu_from_host(c->n_new, ib);
    /* packed sequences as the CUDA backend stages them: per-row bounds */
    int *seg_rows = malloc(sizeof(int) * 2 * (size_t)T), *dseg = NULL;
    const int *row_lo = seg_rows;
    if (c->n_seg) {
        srlm_cuda_attn_seg_bounds(c->seg_off, c->n_seg, T, seg_rows, seg_rows + T);
        dseg = gpu_from_host(seg_rows, sizeof(int) * 2 * (size_t)T);
    }
    srlm_cuda_attn_shape s = {B, T, c->nh, c->nkv, hd, c->max_seq, dslot, dpast, dnew, max_len,
                              dseg, dseg ? dseg + T : NULL};
    srlm_view gq = {dq_in, c->dt, qrows, qcols, qld}, gdo = {ddo, c->dt, qrows, qcols, qld};
    srlm_view gk = {dk_in, c->dt, kvrows, kvcols, kvld}, gv = {dv_in, c->dt, kvrows, kvcols, kvld};
    srlm_view go = {dout_, c->dt, qrows, qcols, qld}, gdq = {ddq, c->dt, qrows, qcols, qld};
    srlm_view gdk = {ddk, c->dt, kvrows, kvcols, kvld}, gdv = {ddv, c->dt, kvrows, kvcols, kvld};
    CHECK_OK(srlm_cuda_attention_fwd(&go, &gq, &gk, &gv, &s, dlse, NULL));
    size_t ws_bytes = srlm_cuda_attention_bwd_workspace(&s);
    void *ws = gpu_poisoned(ws_bytes);
    CHECK_OK(srlm_cuda_attention_bwd(&gdq, &gdk, &gdv, &gdo, &gq, &gk, &gv, &s, NULL, ws, ws_bytes, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);

    float *out = gpu_to_f32_new(dout_, nq, c->dt), *gdq_h = gpu_to_f32_new(ddq, nq, c->dt);
    float *gdk_h = gpu_to_f32_new(ddk, nkv, c->dt), *gdv_h = gpu_to_f32_new(ddv, nkv, c->dt);
    float *lse = gpu_to_f32_new(dlse, (size_t)qrows * c->nh, SRLM_F32);

    /* rows of the used slots (all max_seq of each) for dk, dv */
    int64_t *kv_ids = malloc(sizeof(int64_t) * (size_t)B * c->max_seq);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < c->max_seq; j++) kv_ids[(int64_t)b * c->max_seq + j] = (int64_t)c->slot[b] * c->max_seq + j;
    const double tol_out = bf ? 1e-2 : 1e-5, tol_grad = bf ? 1e-2 : 2e-5;
    double e_out = rel_err(out, ref_out, qrows, qcols, qld);
    double e_dq = rel_err(gdq_h, ref_dq, qrows, qcols, qld);
    double e_dk = rel_err_rows(gdk_h, ref_dk, kv_ids, (int64_t)B * c->max_seq, kvcols, kvld);
    double e_dv = rel_err_rows(gdv_h, ref_dv, kv_ids, (int64_t)B * c->max_seq, kvcols, kvld);
    const double r_out = row_err_max(out, ref_out, NULL, qrows, qcols, qld);
    const double r_dq = row_err_max(gdq_h, ref_dq, NULL, qrows, qcols, qld);
    const double r_dk = row_err_max(gdk_h, ref_dk, kv_ids, (int64_t)B * c->max_seq, kvcols, kvld);
    const double r_dv = row_err_max(gdv_h, ref_dv, kv_ids, (int64_t)B * c->max_seq, kvcols, kvld);
    const double tol_row = bf ? 1e-1 : 2e-4;

    /* lse against a double-precision host computation; padding rows get 0 */
    double e_lse = 0;
    const double scale = 1.0 / sqrt((double)hd);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < c->nh; h++) {
                double want = 0;
                if (t < c->n_new[b]) {
                    int kvh = h / (c->nh / c->nkv), len = c->n_past[b] + t + 1;
                    const int j0 = c->n_seg ? row_lo[t] : 0; /* packed: keys of t's own sequence */
                    const float *qr = q + ((int64_t)b * T + t) * qld + (int64_t)h * hd;
                    double mx = -INFINITY, sum = 0;
                    double *sc = malloc(sizeof(double) * (size_t)len);
                    for (int j = 0; j < j0; j++) sc[j] = -INFINITY;
                    for (int j = j0; j < len; j++) {
                        const float *kr = k + ((int64_t)c->slot[b] * c->max_seq + j) * kvld + (int64_t)kvh * hd;
                        double dot = 0;
                        for (int d = 0; d < hd; d++) dot += (double)qr[d] * kr[d];
                        sc[j] = dot * scale;
                        if (sc[j] > mx) mx = sc[j];
                    }
                    for (int j = j0; j < len; j++) sum += exp(sc[j] - mx);
                    free(sc);
                    want = mx + log(sum);
                }
                double e = fabs((double)lse[((int64_t)b * T + t) * c->nh + h] - want);
                if (!(e <= e_lse)) e_lse = isnan(e) ? INFINITY : e > e_lse ? e : e_lse;
            }
    const double tol_lse = bf ? 1e-3 : 1e-4;

    printf("%-5s %-26s out %.2e  dq %.2e  dk %.2e  dv %.2e  lse(abs) %.2e\n", srlm_dtype_name(c->dt), c->name,
           e_out, e_dq, e_dk, e_dv, e_lse);
    CHECK_MSG(e_out <= tol_out, "%s %s: out relative error %.3g > %.1g", srlm_dtype_name(c->dt), c->name, e_out, tol_out);
    CHECK_MSG(e_dq <= tol_grad, "%s %s: dq relative error %.3g > %.1g", srlm_dtype_name(c->dt), c->name, e_dq, tol_grad);
    CHECK_MSG(e_dk <= tol_grad, "%s %s: dk relative error %.3g > %.1g", srlm_dtype_name(c->dt), c->name, e_dk, tol_grad);
    CHECK_MSG(e_dv <= tol_grad, "%s %s: dv relative error %.3g > %.1g", srlm_dtype_name(c->dt), c->name, e_dv, tol_grad);
    CHECK_MSG(e_lse <= tol_lse, "%s %s: lse abs error %.3g > %.1g", srlm_dtype_name(c->dt), c->name, e_lse, tol_lse);
    printf("%-5s %-26s worst row: out %.2e  dq %.2e  dk %.2e  dv %.2e\n", srlm_dtype_name(c->dt), c->name, r_out,
           r_dq, r_dk, r_dv);
    CHECK_MSG(r_out <= tol_row && r_dq <= tol_row && r_dk <= tol_row && r_dv <= tol_row,
              "%s %s: worst row error relative to the RMS row: out %.3g dq %.3g dk %.3g dv %.3g > %.1g",
              srlm_dtype_name(c->dt), c->name, r_out, r_dq, r_dk, r_dv, tol_row);

    /* padding rows are exact zeros in out and dq */
    int pad_bad = 0;
    for (int b = 0; b < B; b++)
        for (int t = c->n_new[b]; t < T; t++)
            for (int64_t j = 0; j < qcols; j++) {
                int64_t i = ((int64_t)b * T + t) * qld + j;
                if (out[i] != 0.0f || gdq_h[i] != 0.0f) pad_bad++;
            }
    CHECK_MSG(pad_bad == 0, "%s %s: %d padding-row values are not 0", srlm_dtype_name(c->dt), c->name, pad_bad);

    /* deterministic: a second backward gives the same bits */
    void *ddq2 = gpu_poisoned(nq * es);
    srlm_view gdq2 = {ddq2, c->dt, qrows, qcols, qld};
    CHECK_OK(srlm_cuda_attention_bwd(&gdq2, &gdk, &gdv, &gdo, &gq, &gk, &gv, &s, NULL, ws, ws_bytes, NULL));
    float *gdq2_h = gpu_to_f32_new(ddq2, nq, c->dt), *gdk2_h = gpu_to_f32_new(ddk, nkv, c->dt);
    CHECK_MSG(memcmp(gdq2_h, gdq_h, nq * 4) == 0 && memcmp(gdk2_h, gdk_h, nkv * 4) == 0,
              "%s %s: backward is not bit-reproducible", srlm_dtype_name(c->dt), c->name);

    /* the backward from the forward's saved out and lse (the training path's
     * mode): the same tolerances against the same reference; D now comes from
     * the bf16-rounded out, an error well inside the bf16 bound above */
    void *ddq3 = gpu_poisoned(nq * es), *ddk3 = gpu_poisoned(nkv * es), *ddv3 = gpu_poisoned(nkv * es);
    srlm_view gdq3 = {ddq3, c->dt, qrows, qcols, qld};
    srlm_view gdk3 = {ddk3, c->dt, kvrows, kvcols, kvld}, gdv3 = {ddv3, c->dt, kvrows, kvcols, kvld};
    void *ws3 = gpu_poisoned(ws_bytes);
    srlm_cuda_attn_saved saved = {&go, dlse};
    CHECK_OK(srlm_cuda_attention_bwd(&gdq3, &gdk3, &gdv3, &gdo, &gq, &gk, &gv, &s, &saved, ws3, ws_bytes, NULL));
    float *gdq3_h = gpu_to_f32_new(ddq3, nq, c->dt), *gdk3_h = gpu_to_f32_new(ddk3, nkv, c->dt);
    float *gdv3_h = gpu_to_f32_new(ddv3, nkv, c->dt);
    const double s_dq = rel_err(gdq3_h, ref_dq, qrows, qcols, qld);
    const double s_dk = rel_err_rows(gdk3_h, ref_dk, kv_ids, (int64_t)B * c->max_seq, kvcols, kvld);
    const double s_dv = rel_err_rows(gdv3_h, ref_dv, kv_ids, (int64_t)B * c->max_seq, kvcols, kvld);
    printf("%-5s %-26s saved out+lse: dq %.2e  dk %.2e  dv %.2e\n", srlm_dtype_name(c->dt), c->name, s_dq, s_dk, s_dv);
    CHECK_MSG(s_dq <= tol_grad && s_dk <= tol_grad && s_dv <= tol_grad,
              "%s %s: backward from saved out+lse: relative errors dq %.3g dk %.3g dv %.3g > %.1g",
              srlm_dtype_name(c->dt), c->name, s_dq, s_dk, s_dv, tol_grad);
    free(gdq3_h); free(gdk3_h); free(gdv3_h);
    cudaFree(ddq3); cudaFree(ddk3); cudaFree(ddv3); cudaFree(ws3);

    free(gdq2_h); free(gdk2_h); cudaFree(ddq2);
    free(kv_ids); free(out); free(gdq_h); free(gdk_h); free(gdv_h); free(lse);
    cudaFree(dq_in); cudaFree(ddo); cudaFree(dk_in); cudaFree(dv_in); cudaFree(dout_); cudaFree(ddq);
    cudaFree(ddk); cudaFree(ddv); cudaFree(dlse); cudaFree(dslot); cudaFree(dpast); cudaFree(dnew); cudaFree(ws);
    cudaFree(dseg); free(seg_rows);
    free(q); free(dout); free(k); free(v); free(ref_out); free(ref_dq); free(ref_dk); free(ref_dv);
}

/* The argument checks happen on the host before any launch, so they run (and
 * must pass) without a GPU too. The device pointers are never dereferenced. */
static void check_bad_arguments(void) {
    static float dummy[16];
    static int idummy[4];
    srlm_cuda_attn_shape s = {2, 4, 8, 2, 64, 16, idummy, idummy, idummy, 8, NULL, NULL};
    srlm_view q = {dummy, SRLM_BF16, 8, 512, 512}, o = q, dq = q, dout = q;
    srlm_view k = {dummy, SRLM_BF16, 32, 128, 128}, v = k, dk = k, dv = k;
    size_t ws = srlm_cuda_attention_bwd_workspace(&s);
    CHECK(ws >= 2 * sizeof(float) * 8 * 8);

    srlm_view k32 = k;
    k32.dtype = SRLM_F32;
    CHECK(srlm_cuda_attention_fwd(&o, &q, &k32, &v, &s, NULL, NULL) == SRLM_BAD_INPUT);
    printf("dtype mismatch: %s\n", srlm_last_error());
    srlm_view q16 = q;
    q16.dtype = SRLM_F16;
    CHECK(srlm_cuda_attention_fwd(&o, &q16, &k, &v, &s, NULL, NULL) == SRLM_BAD_INPUT);

    srlm_cuda_attn_shape big = s;
    big.head_dim = 320;
    big.n_heads = 1;
    big.n_kv_heads = 1;
    srlm_view qb = {dummy, SRLM_BF16, 8, 320, 320}, kb = {dummy, SRLM_BF16, 32, 320, 320};
    CHECK(srlm_cuda_attention_fwd(&qb, &qb, &kb, &kb, &big, NULL, NULL) == SRLM_BAD_INPUT);
    printf("head_dim too big: %s\n", srlm_last_error());

    srlm_cuda_attn_shape grp = s;
    grp.n_kv_heads = 3; /* 8 % 3 != 0 */
    srlm_view k3 = {dummy, SRLM_BF16, 32, 192, 192};
    CHECK(srlm_cuda_attention_fwd(&o, &q, &k3, &k3, &grp, NULL, NULL) == SRLM_BAD_INPUT);
    printf("bad GQA grouping: %s\n", srlm_last_error());

    srlm_view qshort = q;
    qshort.rows = 7;
    CHECK(srlm_cuda_attention_fwd(&o, &qshort, &k, &v, &s, NULL, NULL) == SRLM_BAD_INPUT);

    CHECK(srlm_cuda_attention_bwd(&dq, &dk, &dv, &dout, &q, &k, &v, &s, NULL, dummy, ws - 4, NULL) == SRLM_BAD_INPUT);
    printf("small workspace: %s\n", srlm_last_error());
    srlm_view dv32 = dv;
    dv32.dtype = SRLM_F32;
    CHECK(srlm_cuda_attention_bwd(&dq, &dk, &dv32, &dout, &q, &k, &v, &s, NULL, dummy, ws, NULL) == SRLM_BAD_INPUT);
    srlm_cuda_attn_saved no_lse = {&o, NULL}, short_out = {&dv, (const float *)dummy};
    CHECK(srlm_cuda_attention_bwd(&dq, &dk, &dv, &dout, &q, &k, &v, &s, &no_lse, dummy, ws, NULL) == SRLM_BAD_INPUT);
    printf("saved out without lse: %s\n", srlm_last_error());
    CHECK(srlm_cuda_attention_bwd(&dq, &dk, &dv, &dout, &q, &k, &v, &s, &short_out, dummy, ws, NULL) == SRLM_BAD_INPUT);
    printf("saved out of the wrong shape: %s\n", srlm_last_error());

    /* packed sequences: both bounds, one sequence slot */
    srlm_cuda_attn_shape half = s;
    half.seg_lo = idummy;
    CHECK(srlm_cuda_attention_fwd(&o, &q, &k, &v, &half, NULL, NULL) == SRLM_BAD_INPUT);
    printf("seg_lo without seg_hi: %s\n", srlm_last_error());
    half.seg_hi = idummy; /* B is 2 */
    CHECK(srlm_cuda_attention_fwd(&o, &q, &k, &v, &half, NULL, NULL) == SRLM_BAD_INPUT);
    printf("packed with B 2: %s\n", srlm_last_error());

    /* the per-row bounds of packed sequences, padding rows after them */
    const int off[4] = {0, 2, 3, 6};
    int lo[8], hi[8];
    srlm_cuda_attn_seg_bounds(off, 3, 8, lo, hi);
    const int want_lo[8] = {0, 0, 2, 3, 3, 3, 6, 6}, want_hi[8] = {2, 2, 3, 6, 6, 6, 6, 6};
    CHECK(memcmp(lo, want_lo, sizeof lo) == 0 && memcmp(hi, want_hi, sizeof hi) == 0);

    /* decode wants T == 1 and its own workspace */
    CHECK(srlm_cuda_attention_decode(&o, &q, &k, &v, &s, dummy, 1 << 20, NULL) == SRLM_BAD_INPUT);
    printf("decode with T = 4: %s\n", srlm_last_error());
}

int main(void) {
    check_bad_arguments();
    if (test_failures) TEST_DONE();
    gpu_skip_without_device(" (argument checks passed)");
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    const int sm90 = srlm_cuda_attention_sm90_available();
    printf("tensor-core kernels: %s\n", sm90 ? "wgmma (sm_90a image on a compute capability 9.0 device)" : "mma.sync");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(be, &cases[i], 1000 + 10 * i);
    if (sm90) { /* the wgmma kernels without ping-pong, the forward and dq that overlap their products (with and
                 * without), then the mma.sync ones (which sm_80 runs), fresh inputs each pass */
        const char *what[4] = {"the wgmma kernels without ping-pong", "the wgmma forward and dq overlapping their products",
                               "the same overlapping kernels without ping-pong", "the mma.sync kernels (forced)"};
        const char *no_overlap = getenv("SRLM_CUDA_ATTN_OVERLAP"); /* "0": run.sh leaves that pass out */
        for (int pass = 0; pass < 4; pass++) {
            if ((pass == 1 || pass == 2) && no_overlap && !strcmp(no_overlap, "0")) {
                printf("-- %s: left out (SRLM_CUDA_ATTN_OVERLAP=0)\n", what[pass]);
                continue;
            }
            if (pass == 0 || pass == 2) srlm_cuda_attention_sm90_pingpong(0);
            if (pass == 1 || pass == 2) srlm_cuda_attention_sm90_overlap(1);
            if (pass == 3) srlm_cuda_attention_force_path(SRLM_CUDA_ATTN_PATH_MMA);
            printf("-- %s\n", what[pass]);
            for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                if (cases[i].dt == SRLM_BF16 && (cases[i].hd == 64 || cases[i].hd == 128) && cases[i].pad % 8 == 0)
                    run_case(be, &cases[i], 3000 + 1000 * (uint64_t)pass + 10 * i);
            srlm_cuda_attention_sm90_pingpong(1);
            srlm_cuda_attention_sm90_overlap(0);
            srlm_cuda_attention_force_path(SRLM_CUDA_ATTN_PATH_AUTO);
        }
    }
    /* The tensor-core backward's GQA split: these small shapes get one dk/dv
     * block per query head (split = group) above. Its GQA cases again with one
     * block per group (no split), and with two blocks per group where that
     * leaves two or more heads a block (the split larger shapes take), fresh
     * inputs each time. */
    const int forced[2] = {1, 2};
    for (int f = 0; f < 2; f++) {
        srlm_cuda_attention_bwd_force_split(forced[f]);
        printf("-- the tensor-core backward with %d dk/dv block(s) per GQA group\n", forced[f]);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const attn_case *c = &cases[i];
            const int group = c->nh / c->nkv, tensor_cores = c->dt == SRLM_BF16 && (c->hd == 64 || c->hd == 128) &&
                                                                 c->pad % 8 == 0;
            if (tensor_cores && group % forced[f] == 0 && group / forced[f] >= 2)
                run_case(be, c, 5000 + 100 * (uint64_t)f + 10 * i);
        }
    }
    srlm_cuda_attention_bwd_force_split(0);
    srlm_backend_free(be);
    TEST_DONE();
}
