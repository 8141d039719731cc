/* GPU tensor ops (kernels/tensor_ops.h) vs the CPU backend's kv_store,
 * copy_rows, copy, add, fill, fill_cols and dropout, and vs core/dtype.h's
 * conversions for copies between F32 and BF16. Every op here is exact, so every
 * comparison is bit for bit:
 *  - kv_store, copy_rows, copy, fill, fill_cols: data movement; BF16 values are
 *    the CPU's fp32 values rounded to bf16 (they were bf16 to begin with);
 *  - copy F32 -> BF16: srlm_f32_to_bf16 (round to nearest even, ties, NaN, inf,
 *    subnormals), BF16 -> F32 exact;
 *  - add: one fp32 addition on both sides (then one rounding for BF16);
 *  - dropout: the same counter-based mask (core/rng.h on both sides) and one
 *    fp32 multiply by the same 1 / (1 - p).
 * Elements the op must not touch (other cache rows, columns before c0, row
 * padding) are compared too, so a stray write shows. */
#include "backend/backend.h"
#include "gpu_util.h"
#include "tensor_ops.h"

static void test_kv_store(srlm_backend *be, srlm_dtype t) {
    enum { B = 3, T = 5, MAX_SEQ = 16, SLOTS = 4, COLS = 96, KSTRIDE = 100 };
    const int slot[B] = {2, 0, 3}, n_past[B] = {0, 7, 11}, n_new[B] = {5, 3, 0};
    const size_t cn = (size_t)SLOTS * MAX_SEQ * COLS, kn = (size_t)B * T * KSTRIDE;
    float *cache = random_f32(cn, 900, 0.0f, 1.0f, t), *kv = random_f32(kn, 901, 0.0f, 1.0f, t);
    float *got = malloc(cn * 4);
    void *dcache = gpu_from_f32(cache, cn, t), *dkv = gpu_from_f32(kv, kn, t);
    int *dslot = gpu_from_host(slot, sizeof slot), *dpast = gpu_from_host(n_past, sizeof n_past);
    int *dnew = gpu_from_host(n_new, sizeof n_new);
    srlm_view hc = {cache, SRLM_F32, SLOTS * MAX_SEQ, COLS, COLS}, hk = {kv, SRLM_F32, B * T, COLS, KSTRIDE};
    srlm_attn_shape s = {.B = B, .T = T, .n_heads = 1, .n_kv_heads = 1, .head_dim = COLS,
                         .max_seq = MAX_SEQ, .slot = slot, .n_past = n_past, .n_new = n_new};
    CHECK_OK(be->ops->kv_store(be, &hc, &hk, &s));
    srlm_view vc = {dcache, t, SLOTS * MAX_SEQ, COLS, COLS}, vk = {dkv, t, B * T, COLS, KSTRIDE};
    CHECK_OK(srlm_cuda_kv_store(&vc, &vk, B, T, MAX_SEQ, dslot, dpast, dnew, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    gpu_to_f32(got, dcache, cn, t);
    int bad = count_bit_diffs(got, cache, 1, cn, cn);
    CHECK_MSG(bad == 0, "kv_store %s: %d cache elements differ", srlm_dtype_name(t), bad);
    printf("kv_store  %-4s: %d elements differ\n", srlm_dtype_name(t), bad);
    cudaFree(dcache); cudaFree(dkv); cudaFree(dslot); cudaFree(dpast); cudaFree(dnew);
    free(cache); free(kv); free(got);
}

static void test_copy_rows(srlm_backend *be, srlm_dtype t) {
    enum { SR = 20, COLS = 77, SSTRIDE = 80, N = 6 };
    const int idx[N] = {3, 3, 19, 0, 7, 12};
    const size_t sn = (size_t)SR * SSTRIDE, dn = (size_t)N * COLS;
    float *src = random_f32(sn, 910, 0.0f, 1.0f, t), *ref = malloc(dn * 4), *got = malloc(dn * 4);
    srlm_view hs = {src, SRLM_F32, SR, COLS, SSTRIDE}, hd = {ref, SRLM_F32, N, COLS, COLS};
    CHECK_OK(be->ops->copy_rows(be, &hd, &hs, idx, N));
    void *dsrc = gpu_from_f32(src, sn, t), *ddst = gpu_poisoned(dn * srlm_dtype_size(t));
    int *didx = gpu_from_host(idx, sizeof idx);
    srlm_view vs = {dsrc, t, SR, COLS, SSTRIDE}, vd = {ddst, t, N, COLS, COLS};
    CHECK_OK(srlm_cuda_copy_rows(&vd, &vs, didx, N, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    gpu_to_f32(got, ddst, dn, t);
    int bad = count_bit_diffs(got, ref, 1, dn, dn);
    CHECK_MSG(bad == 0, "copy_rows %s: %d elements differ", srlm_dtype_name(t), bad);
    printf("copy_rows %-4s: %d elements differ\n", srlm_dtype_name(t), bad);
    cudaFree(dsrc); cudaFree(ddst); cudaFree(didx);
    free(src); free(ref); free(got);
}

/* copy between any pair of dtypes, compared as raw bits with core/dtype.h's
 * conversion of the source (special values in the first row); `rows` rows of 301
 * with the given strides (padded: the row-wise kernel; contiguous or one row:
 * the flat one) */
static void test_copy(srlm_dtype dt, srlm_dtype st, int rows, int sstride, int dstride) {
    enum { COLS = 301 };
    const size_t sn = (size_t)rows * sstride, dn = (size_t)rows * dstride;
    float *src = random_f32(sn, 920, 0.0f, 1.0f, st);
    const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1.0f + 0x1p-8f /* tie: down */,
                             1.0f + 0x3p-8f /* tie: up */, 1.0f + 0x1p-8f + 0x1p-20f, 0x1p-130f /* subnormal */,
                             3.4e38f /* rounds to inf */, -1.0000001f};
    for (size_t k = 0; k < sizeof special / sizeof special[0]; k++) src[k] = special[k];
    round_to_dtype(src, sn, st);
    size_t sb = sn * srlm_dtype_size(st), db = dn * srlm_dtype_size(dt);
    void *hsrc = malloc(sb), *want = malloc(db), *gotb = malloc(db);
    srlm_convert_from_f32(hsrc, st, src, sn);
    void *dsrc = gpu_from_host(hsrc, sb), *ddst = gpu_poisoned(db);
    /* the expected bits: poison (0xff) in the padding, the converted source in the rows */
    memset(want, 0xff, db);
    for (int i = 0; i < rows; i++)
        srlm_convert_from_f32((char *)want + (size_t)i * dstride * srlm_dtype_size(dt), dt,
                              src + (size_t)i * sstride, COLS);
    srlm_view vs = {dsrc, st, rows, COLS, sstride}, vd = {ddst, dt, rows, COLS, dstride};
    CHECK_OK(srlm_cuda_copy(&vd, &vs, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    CHECK(cudaMemcpy(gotb, ddst, db, cudaMemcpyDeviceToHost) == cudaSuccess);
    size_t es = srlm_dtype_size(dt);
    int bad = 0;
    for (size_t k = 0; k < dn; k++) bad += memcmp((char *)gotb + k * es, (char *)want + k * es, es) != 0;
    CHECK_MSG(bad == 0, "copy %s -> %s, %d rows, strides %d -> %d: %d elements differ", srlm_dtype_name(st),
              srlm_dtype_name(dt), rows, sstride, dstride, bad);
    printf("copy      %-4s -> %-4s, %d rows, strides %d -> %d: %d elements differ\n", srlm_dtype_name(st),
           srlm_dtype_name(dt), rows, sstride, dstride, bad);
    cudaFree(dsrc); cudaFree(ddst);
    free(src); free(hsrc); free(want); free(gotb);
}

static void test_add(srlm_backend *be, srlm_dtype t) {
    enum { R = 13, COLS = 4096, YSTRIDE = 4100, XSTRIDE = 4096 };
    const size_t yn = (size_t)R * YSTRIDE, xn = (size_t)R * XSTRIDE;
    float *y = random_f32(yn, 930, 0.0f, 1.0f, t), *x = random_f32(xn, 931, 0.0f, 1.0f, t);
    float *got = malloc(yn * 4);
    void *dy = gpu_from_f32(y, yn, t), *dx = gpu_from_f32(x, xn, t);
    srlm_view hy = {y, SRLM_F32, R, COLS, YSTRIDE}, hx = {x, SRLM_F32, R, COLS, XSTRIDE};
    CHECK_OK(be->ops->add(be, &hy, &hx));
    round_to_dtype(y, yn, t);
    srlm_view vy = {dy, t, R, COLS, YSTRIDE}, vx = {dx, t, R, COLS, XSTRIDE};
    CHECK_OK(srlm_cuda_add(&vy, &vx, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    gpu_to_f32(got, dy, yn, t);
    int bad = count_bit_diffs(got, y, 1, yn, yn);
    CHECK_MSG(bad == 0, "add %s: %d elements differ", srlm_dtype_name(t), bad);
    printf("add       %-4s: %d elements differ\n", srlm_dtype_name(t), bad);
    cudaFree(dy); cudaFree(dx);
    free(y); free(x); free(got);
}

static void test_fill(srlm_backend *be, srlm_dtype t) {
    enum { R = 11, COLS = 1003, STRIDE = 1008, C0 = 1000 - 7 };
    const size_t n = (size_t)R * STRIDE;
    float *v = random_f32(n, 940, 0.0f, 1.0f, t), *got = malloc(n * 4);
    void *dv = gpu_from_f32(v, n, t);
    srlm_view hv = {v, SRLM_F32, R, COLS, STRIDE}, vv = {dv, t, R, COLS, STRIDE};
    /* fill_cols: the padded-vocab mask; columns before C0 untouched */
    CHECK_OK(be->ops->fill_cols(be, &hv, C0, -INFINITY));
    CHECK_OK(srlm_cuda_fill_cols(&vv, C0, -INFINITY, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    gpu_to_f32(got, dv, n, t);
    int bad_cols = count_bit_diffs(got, v, 1, n, n);
    CHECK_OK(srlm_cuda_fill_cols(&vv, COLS, 5.0f, NULL)); /* an empty range: nothing */
    /* fill: 0.3 is not a bf16 value, so BF16 checks the rounding too */
    CHECK_OK(be->ops->fill(be, &hv, 0.3f));
    round_to_dtype(v, n, t);
    CHECK_OK(srlm_cuda_fill(&vv, 0.3f, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    gpu_to_f32(got, dv, n, t);
    int bad_fill = count_bit_diffs(got, v, 1, n, n);
    CHECK_MSG(bad_cols == 0, "fill_cols %s: %d elements differ", srlm_dtype_name(t), bad_cols);
    CHECK_MSG(bad_fill == 0, "fill %s: %d elements differ", srlm_dtype_name(t), bad_fill);
    printf("fill_cols %-4s: %d, fill: %d elements differ\n", srlm_dtype_name(t), bad_cols, bad_fill);
    cudaFree(dv);
    free(v); free(got);
}

static void test_dropout(srlm_backend *be, srlm_dtype t) {
    enum { R = 37, COLS = 4096, STRIDE = 4104 };
    const size_t n = (size_t)R * STRIDE;
    const float p = 0.1f;
    const uint64_t key = srlm_rng_key(12345, 6);
    float *x = random_f32(n, 950, 0.0f, 1.0f, t), *got = malloc(n * 4);
    void *dx = gpu_from_f32(x, n, t);
    srlm_view hx = {x, SRLM_F32, R, COLS, STRIDE}, vx = {dx, t, R, COLS, STRIDE};
    CHECK_OK(srlm_cuda_dropout(&vx, 0.0f, key, NULL)); /* p = 0: untouched */
    CHECK_OK(be->ops->dropout(be, &hx, p, key));
    round_to_dtype(x, n, t);
    CHECK_OK(srlm_cuda_dropout(&vx, p, key, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    gpu_to_f32(got, dx, n, t);
    int bad = count_bit_diffs(got, x, 1, n, n), dropped = 0, mask_bad = 0;
    for (int i = 0; i < R; i++)
        for (int j = 0; j < COLS; j++) {
            size_t k = (size_t)i * STRIDE + j;
            dropped += x[k] == 0.0f;
            mask_bad += (got[k] == 0.0f) != (x[k] == 0.0f);
        }
    CHECK_MSG(mask_bad == 0, "dropout %s: %d mask positions differ", srlm_dtype_name(t), mask_bad);
    CHECK_MSG(bad == 0, "dropout %s: %d elements differ", srlm_dtype_name(t), bad);
    double frac = (double)dropped / ((double)R * COLS);
    CHECK_MSG(fabs(frac - p) < 0.01, "dropout %s: dropped %.4f, expected about %.2f", srlm_dtype_name(t), frac, p);
    printf("dropout   %-4s: dropped %.4f (p %.2f), %d mask positions and %d elements differ\n",
           srlm_dtype_name(t), frac, p, mask_bad, bad);
    cudaFree(dx);
    free(x); free(got);
}

/* A model's flat (1, n_params) views past 2^31 columns (7B at tp 1 holds
 * 6.7e9): fill, the fp32 master copied into the bf16 weights (what each
 * optimizer step's refresh does), add; the last elements checked, which an int
 * index would never reach. 12.9 GB of device memory. */
static void test_flat_billions(void) {
    const int64_t n = ((int64_t)1 << 31) + 1001;
    float *master = gpu_alloc((size_t)n * 4);
    uint16_t *w = gpu_alloc((size_t)n * 2);
    srlm_view vm = {master, SRLM_F32, 1, n, n}, vw = {w, SRLM_BF16, 1, n, n};
    CHECK_OK(srlm_cuda_fill(&vm, 1.5f, NULL));
    CHECK_OK(srlm_cuda_fill(&vw, NAN, NULL));
    CHECK_OK(srlm_cuda_copy(&vw, &vm, NULL));  /* 1.5 -> bf16 0x3fc0 */
    CHECK_OK(srlm_cuda_add(&vw, &vw, NULL));   /* 3.0 -> 0x4040 */
    uint16_t tail[4];
    CHECK(cudaMemcpy(tail, w + n - 4, sizeof tail, cudaMemcpyDeviceToHost) == cudaSuccess);
    int bad = 0;
    for (int i = 0; i < 4; i++) bad += tail[i] != 0x4040;
    printf("flat view of %lld elements: fill, copy F32 -> BF16, add reach the end (%d of 4 tail values wrong)\n",
           (long long)n, bad);
    CHECK_MSG(bad == 0, "flat (1, %lld) view: tail values 0x%04x .. 0x%04x, expected 0x4040", (long long)n,
              tail[0], tail[3]);
    cudaFree(master);
    cudaFree(w);
}

int main(void) {
    gpu_skip_without_device("");
    test_flat_billions();
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    const srlm_dtype ts[2] = {SRLM_F32, SRLM_BF16};
    for (int k = 0; k < 2; k++) {
        test_kv_store(be, ts[k]);
        test_copy_rows(be, ts[k]);
        test_add(be, ts[k]);
        test_fill(be, ts[k]);
        test_dropout(be, ts[k]);
        for (int m = 0; m < 2; m++) {
            test_copy(ts[k], ts[m], 9, 304, 305); /* padded rows */
            test_copy(ts[k], ts[m], 9, 301, 301); /* contiguous */
            test_copy(ts[k], ts[m], 1, 304, 305); /* one row */
        }
    }

    /* argument checks */
    float *p = gpu_poisoned(64);
    srlm_view a = {p, SRLM_F32, 2, 4, 4}, b = {p, SRLM_BF16, 2, 4, 4}, c = {p, SRLM_F32, 2, 3, 4};
    CHECK(srlm_cuda_add(&a, &b, NULL) == SRLM_BAD_INPUT);  /* dtypes */
    CHECK(srlm_cuda_copy(&a, &c, NULL) == SRLM_BAD_INPUT); /* shapes */
    CHECK(srlm_cuda_copy_rows(&a, &b, (const int *)p, 2, NULL) == SRLM_BAD_INPUT);
    CHECK(srlm_cuda_fill_cols(&a, -1, 0.0f, NULL) == SRLM_BAD_INPUT);
    CHECK(srlm_cuda_kv_store(&a, &a, 2, 2, 4, (const int *)p, (const int *)p, (const int *)p, NULL) ==
          SRLM_BAD_INPUT); /* B * T > kv rows */
    cudaFree(p);
    srlm_backend_free(be);
    TEST_DONE();
}
