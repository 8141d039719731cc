/* GPU decode attention (srlm_cuda_attention_decode, T == 1, keys split into
 * chunks and combined in chunk order) vs the CPU backend's attention on random
 * inputs, output poisoned (NaN) before the kernel and cache rows that must not
 * be read filled with NaN. Shapes: contexts from 1 to 20000 keys (one chunk,
 * many chunks, over 128 chunks, chunks forced by the 2048-key cap), B > 1
 * with slots permuted, a padding sequence (n_new = 0 -> zero row; all of them
 * in one call), GQA and
 * MHA, head_dim 36, 64, 80, 128 and 256, padded row strides. Both partial
 * kernels run: the 16-byte vector path (rows of whole 16-byte vectors on
 * 16-byte boundaries: every case without "scalar" in its name) and the scalar
 * fallback ("scalar": an odd stride, or bf16 head_dim 36 = 72 bytes). The
 * argument checks run first, on the host; the rest is skipped without a GPU.
 *
 * Tolerances, relative error in the 2-norm over the output:
 *   fp32 1e-5: the same fp32 math; only the summation order (per-chunk sums,
 *     warp-tree dot products, the rescaled combine) and exp2f vs expf differ.
 *   bf16 1e-2: both sides see the same bf16 inputs (the CPU reference runs in
 *     fp32 on the rounded values) and the GPU math is fp32, so the difference
 *     is the output's rounding to bf16: <= 2^-9 relative per element (8-bit
 *     mantissa), ~1e-3 in the norm. A chunking or combine bug gives order 1. */
#include "attention.h"
#include "backend/backend.h"
#include "gpu_util.h"

typedef struct {
    const char *name;
    srlm_dtype  dt;
    int         B, nh, nkv, hd, max_seq, slots, pad; /* pad: extra elements per row (stride) */
    int         slot[8], n_past[8], n_new[8];
} dec_case;

static const dec_case cases[] = {
    {"gqa 8/2 hd128 long", SRLM_F32, 3, 8, 2, 128, 4096, 4, 0, {3, 0, 2}, {4000, 1, 700}, {1, 1, 0}},
    {"mha 4/4 hd64 len 64", SRLM_F32, 1, 4, 4, 64, 128, 1, 0, {0}, {63}, {1}},
    {"gqa 6/3 hd80", SRLM_F32, 2, 6, 3, 80, 2048, 2, 0, {1, 0}, {0, 2047}, {1, 1}},
    {"gqa 2/1 hd256", SRLM_F32, 2, 2, 1, 256, 6000, 3, 0, {2, 0}, {300, 5000}, {1, 1}},
    {"mha 2/2 hd128 20k", SRLM_F32, 1, 2, 2, 128, 20000, 1, 0, {0}, {19999}, {1}},
    {"gqa 4/2 hd36 pad 4", SRLM_F32, 2, 4, 2, 36, 600, 2, 4, {1, 0}, {511, 70}, {1, 1}},
    {"one chunk 320/8 hd64", SRLM_F32, 8, 320, 8, 64, 1600, 8, 0, {7, 6, 5, 4, 3, 2, 1, 0},
     {1500, 3, 800, 0, 1499, 64, 65, 1000}, {1, 1, 1, 1, 1, 1, 1, 0}},
    {"2048 cap 320/8 hd64", SRLM_F32, 8, 320, 8, 64, 3100, 8, 0, {1, 0, 3, 2, 5, 4, 7, 6},
     {3000, 2047, 2048, 10, 3099, 1, 2500, 7}, {1, 1, 1, 1, 1, 1, 1, 1}},
    {"scalar gqa 6/3 hd80 pad 1", SRLM_F32, 2, 6, 3, 80, 2048, 2, 1, {1, 0}, {0, 2047}, {1, 1}},
    {"scalar gqa 2/1 hd256 pad 3", SRLM_F32, 2, 2, 1, 256, 3000, 3, 3, {2, 0}, {300, 2900}, {1, 0}},
    {"gqa 8/2 hd128 long", SRLM_BF16, 3, 8, 2, 128, 4096, 4, 0, {3, 0, 2}, {4000, 1, 700}, {1, 1, 0}},
    {"mha 4/4 hd64 len 64", SRLM_BF16, 1, 4, 4, 64, 128, 1, 0, {0}, {63}, {1}},
    {"gqa 6/3 hd80", SRLM_BF16, 2, 6, 3, 80, 2048, 2, 0, {1, 0}, {0, 2047}, {1, 1}},
    {"gqa 2/1 hd256", SRLM_BF16, 2, 2, 1, 256, 6000, 3, 0, {2, 0}, {300, 5000}, {1, 1}},
    {"mha 2/2 hd128 20k", SRLM_BF16, 1, 2, 2, 128, 20000, 1, 0, {0}, {19999}, {1}},
    {"gqa 8/2 hd128 pad 8", SRLM_BF16, 2, 8, 2, 128, 3000, 2, 8, {1, 0}, {2999, 1234}, {1, 1}},
    {"2048 cap 320/8 hd64", SRLM_BF16, 8, 320, 8, 64, 3100, 8, 0, {1, 0, 3, 2, 5, 4, 7, 6},
     {3000, 2047, 2048, 10, 3099, 1, 2500, 7}, {1, 1, 1, 1, 1, 1, 1, 1}},
    {"scalar gqa 6/3 hd80 pad 1", SRLM_BF16, 2, 6, 3, 80, 2048, 2, 1, {1, 0}, {0, 2047}, {1, 1}},
    {"scalar gqa 4/2 hd36", SRLM_BF16, 2, 4, 2, 36, 600, 2, 0, {1, 0}, {511, 70}, {1, 1}},
    /* every sequence padding: zero rows, every chunk empty */
    {"all padding gqa 4/2 hd64", SRLM_F32, 2, 4, 2, 64, 256, 2, 0, {1, 0}, {10, 200}, {0, 0}},
    {"all padding gqa 4/2 hd64", SRLM_BF16, 2, 4, 2, 64, 256, 2, 0, {1, 0}, {10, 200}, {0, 0}},
};

static void run_case(srlm_backend *be, const dec_case *c, uint64_t seed) {
    const int B = c->B, hd = c->hd, bf = c->dt == SRLM_BF16;
    const int64_t qcols = (int64_t)c->nh * hd, kvcols = (int64_t)c->nkv * hd;
    const int64_t qld = qcols + c->pad, kvld = kvcols + c->pad;
    const int64_t kvrows = (int64_t)c->slots * c->max_seq;
    const size_t nq = (size_t)(B * qld), nkv = (size_t)(kvrows * kvld);
    float *q = random_f32(nq, seed, 0.0f, 1.0f, c->dt), *k = malloc(nkv * 4), *v = malloc(nkv * 4);
    float *ref = malloc(nq * 4);
    srlm_attn_shape hs = {B, 1, c->nh, c->nkv, hd, c->max_seq, c->slot, c->n_past, c->n_new, 0, NULL};
    /* the cache rows past each sequence's length are NaN: never read */
    const int max_len = random_kv_cache(k, v, nkv, &hs, kvld, seed + 1, seed + 2, c->dt);
    srlm_view hq = {q, SRLM_F32, B, qcols, qld}, ho = {ref, SRLM_F32, B, qcols, qld};
    srlm_view hk = {k, SRLM_F32, kvrows, kvcols, kvld}, hv = {v, SRLM_F32, kvrows, kvcols, kvld};
    CHECK_OK(be->ops->attention(be, &ho, &hq, &hk, &hv, &hs, NULL));

    void *gq = gpu_from_f32(q, nq, c->dt), *gk = gpu_from_f32(k, nkv, c->dt), *gv = gpu_from_f32(v, nkv, c->dt);
    void *go = gpu_poisoned(nq * srlm_dtype_size(c->dt));
    const size_t ib = sizeof(int) * (size_t)B;
    int *dslot = gpu_from_host(c->slot, ib), *dpast = gpu_from_host(c->n_past, ib), *dnew = gpu_from_host(c->n_new, ib);
    srlm_cuda_attn_shape s = {B, 1, c->nh, c->nkv, hd, c->max_seq, dslot, dpast, dnew, max_len, NULL, NULL};
    size_t ws_bytes = srlm_cuda_attention_decode_workspace(&s);
    void *ws = gpu_poisoned(ws_bytes);
    srlm_view vq = {gq, c->dt, B, qcols, qld}, vo = {go, c->dt, B, qcols, qld};
    srlm_view vk = {gk, c->dt, kvrows, kvcols, kvld}, vv = {gv, c->dt, kvrows, kvcols, kvld};
    CHECK_OK(srlm_cuda_attention_decode(&vo, &vq, &vk, &vv, &s, ws, ws_bytes, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    float *got = gpu_to_f32_new(go, nq, c->dt);

    double rel = rel_err(got, ref, B, qcols, qld), tol = bf ? 1e-2 : 1e-5;
    int zero_bad = 0; /* n_new == 0: the row is exactly zero */
    for (int b = 0; b < B; b++)
        if (c->n_new[b] == 0)
            for (int64_t j = 0; j < qcols; j++) zero_bad += got[(int64_t)b * qld + j] != 0.0f;
    printf("%-5s %-26s max_len %5d workspace %8zu B: relative error %.2e\n", srlm_dtype_name(c->dt), c->name,
           max_len, ws_bytes, rel);
    CHECK_MSG(rel <= tol, "%s %s: relative error %.3g > %.1g", srlm_dtype_name(c->dt), c->name, rel, tol);
    CHECK_MSG(zero_bad == 0, "%s %s: padding row not zero", srlm_dtype_name(c->dt), c->name);

    /* deterministic: a second run gives the same bits */
    cudaMemset(go, 0xff, nq * srlm_dtype_size(c->dt));
    CHECK_OK(srlm_cuda_attention_decode(&vo, &vq, &vk, &vv, &s, ws, ws_bytes, NULL));
    float *again = gpu_to_f32_new(go, nq, c->dt);
    CHECK_MSG(memcmp(again, got, nq * 4) == 0, "%s %s: not bit-reproducible", srlm_dtype_name(c->dt), c->name);

    free(again); free(got);
    cudaFree(gq); cudaFree(gk); cudaFree(gv); cudaFree(go); cudaFree(ws);
    cudaFree(dslot); cudaFree(dpast); cudaFree(dnew);
    free(q); free(k); free(v); free(ref);
}

/* Host-side checks, before any launch: run without a GPU too. */
static void check_bad_arguments(void) {
    static float dummy[16];
    static int idummy[4];
    srlm_cuda_attn_shape s = {2, 1, 8, 2, 64, 1024, idummy, idummy, idummy, 1000, NULL, NULL};
    srlm_view q = {dummy, SRLM_F32, 2, 512, 512}, o = q;
    srlm_view k = {dummy, SRLM_F32, 2048, 128, 128}, v = k;
    size_t ws = srlm_cuda_attention_decode_workspace(&s);
    CHECK(ws >= sizeof(float) * 2 * 8 * 66); /* at least one chunk of (hd + 2) floats per row */
    CHECK(srlm_cuda_attention_decode(&o, &q, &k, &v, &s, dummy, ws - 4, NULL) == SRLM_BAD_INPUT);
    printf("small workspace: %s\n", srlm_last_error());
    CHECK(srlm_cuda_attention_decode(&o, &q, &k, &v, &s, NULL, ws, NULL) == SRLM_BAD_INPUT);
    srlm_view vb = v;
    vb.dtype = SRLM_BF16;
    CHECK(srlm_cuda_attention_decode(&o, &q, &k, &vb, &s, dummy, ws, NULL) == SRLM_BAD_INPUT);
    printf("dtype mismatch: %s\n", srlm_last_error());
    srlm_cuda_attn_shape s2 = s;
    s2.T = 2;
    srlm_view q2 = {dummy, SRLM_F32, 4, 512, 512};
    CHECK(srlm_cuda_attention_decode(&q2, &q2, &k, &v, &s2, dummy, ws, NULL) == SRLM_BAD_INPUT);
    printf("T = 2: %s\n", srlm_last_error());
    srlm_cuda_attn_shape s3 = s;
    s3.max_len = 2000; /* > max_seq */
    CHECK(srlm_cuda_attention_decode(&o, &q, &k, &v, &s3, dummy, 1 << 20, NULL) == SRLM_BAD_INPUT);
}

int main(void) {
    check_bad_arguments();
    if (test_failures) TEST_DONE();
    gpu_skip_without_device(" (argument checks passed)");
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(be, &cases[i], 5000 + 10 * i);
    srlm_backend_free(be);
    TEST_DONE();
}
