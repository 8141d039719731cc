/* GPU AdamW, sum of squares and scale vs their CPU twins (src/train/optimizer.c).
 * Skipped without a GPU.
 *
 * AdamW and scale: bit-identical to srlm_adamw_step / srlm_scale_f32 over several
 * steps on random data, decay on and off, with the fp32 working copy equal to the
 * master and the bf16 one equal to srlm_f32_to_bf16 of it. Exact equality is the
 * contract: the kernel does the same rounded fp32 operations in the same order
 * (explicit _rn intrinsics, no FMA contraction), and every op is correctly rounded.
 * Sum of squares: bit-equal to itself run twice (its order is fixed by n alone), and
 * within n * 2^-53 relative of srlm_sum_squares, which adds in another order: a
 * sum of n positive double terms in any order (tree depth < n) errs by at most
 * depth * 2^-53 relative, so n * 2^-53 bounds both sides' distance from the exact
 * sum (2e-9 at n = 16.8M, where the CPU's 8 running sums of 2M terms each were
 * seen 3.6e-12 apart from the GPU's tree on an H100; an earlier flat 1e-12 was
 * wrong). A missing or doubled large term moves the sum by ~1e-7 relative or more
 * (a fifth of the inputs are 1e5 times the rest), far outside the bound. Outputs
 * are poisoned (NaN) before each kernel. */
#include "adamw.h"
#include "gpu_util.h"
#include "train/optimizer.h"

/* The kernel's constants: srlm_adamw_step's own (srlm_adamw_consts_make), field by field. */
static srlm_cuda_adamw_args args_for(const srlm_adamw_hparams *h, long t, int decay) {
    const srlm_adamw_consts c = srlm_adamw_consts_make(h, t, decay);
    srlm_cuda_adamw_args a = {
        .one_minus_lr_wd = c.decay_mul,
        .one_minus_beta1 = c.w1,
        .one_minus_beta2 = c.w2,
        .beta2 = c.b2,
        .sqrt_bc2 = c.bc2_sqrt,
        .eps = c.eps,
        .neg_step_size = c.neg_step_size,
    };
    return a;
}

/* Index of the first differing float (bitwise), or -1. */
static long first_diff(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4) != 0) return (long)i;
    return -1;
}

/* copy: also write the working copy of dtype wdtype (else param = NULL). */
static void test_adamw(size_t n, int decay, int copy, srlm_dtype wdtype, uint64_t seed, long steps) {
    const srlm_adamw_hparams h = {.lr = 3e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
    float *p = malloc(n * 4), *g = malloc(n * 4), *m = calloc(n, 4), *v = calloc(n, 4);
    float *gp = malloc(n * 4), *gm = malloc(n * 4), *gv = malloc(n * 4), *wf = malloc(n * 4);
    uint16_t *wb = malloc(n * 2);
    /* weights of mixed scale, a few exact zeros and huge ones */
    for (size_t i = 0; i < n; i++) {
        p[i] = (float)(srlm_rng_normal(seed, i) * (i % 7 == 0 ? 10.0 : 0.02));
        if (i % 101 == 0) p[i] = 0.0f;
    }
    float *dp = gpu_alloc(n * 4), *dg = gpu_alloc(n * 4), *dm = gpu_alloc(n * 4), *dv = gpu_alloc(n * 4);
    void *dw = gpu_alloc(n * 4);
    CHECK(cudaMemcpy(dp, p, n * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemset(dm, 0, n * 4) == cudaSuccess);
    CHECK(cudaMemset(dv, 0, n * 4) == cudaSuccess);
    const size_t wsize = n * srlm_dtype_size(wdtype);
    for (long t = 1; t <= steps; t++) {
        /* fresh gradients every step, spanning many magnitudes, some zero */
        for (size_t i = 0; i < n; i++) {
            double s = i % 3 == 0 ? 1e-6 : i % 3 == 1 ? 1e-2 : 3.0;
            g[i] = (float)(srlm_rng_normal(seed + 1000 + (uint64_t)t, i) * s);
            if (i % 53 == 0) g[i] = 0.0f;
        }
        CHECK(cudaMemcpy(dg, g, n * 4, cudaMemcpyHostToDevice) == cudaSuccess);
        CHECK(cudaMemset(dw, 0xff, wsize) == cudaSuccess); /* NaN poison, fp32 and bf16 */
        srlm_cuda_adamw_args a = args_for(&h, t, decay);
        CHECK_OK(srlm_cuda_adamw_step(dp, dg, dm, dv, n, &a, copy ? dw : NULL, wdtype, NULL));
        CHECK(cudaGetLastError() == cudaSuccess);
        srlm_adamw_step(p, g, m, v, n, &h, t, decay);
        CHECK(cudaMemcpy(gp, dp, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
        CHECK(cudaMemcpy(gm, dm, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
        CHECK(cudaMemcpy(gv, dv, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
        long dpi = first_diff(gp, p, n), dmi = first_diff(gm, m, n), dvi = first_diff(gv, v, n);
        CHECK_MSG(dpi < 0, "n %zu decay %d step %ld: master[%ld] gpu %.9g cpu %.9g", n, decay, t, dpi,
                  dpi < 0 ? 0.0 : (double)gp[dpi], dpi < 0 ? 0.0 : (double)p[dpi]);
        CHECK_MSG(dmi < 0, "n %zu decay %d step %ld: m[%ld] differs", n, decay, t, dmi);
        CHECK_MSG(dvi < 0, "n %zu decay %d step %ld: v[%ld] differs", n, decay, t, dvi);
        long bad = -1;
        if (!copy) {
            /* nothing written: the poison is still there */
            uint16_t first = 0;
            CHECK(cudaMemcpy(&first, dw, 2, cudaMemcpyDeviceToHost) == cudaSuccess);
            CHECK_MSG(first == 0xffff, "n %zu: working copy written although param was NULL", n);
        } else if (wdtype == SRLM_F32) {
            CHECK(cudaMemcpy(wf, dw, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
            bad = first_diff(wf, p, n);
        } else {
            CHECK(cudaMemcpy(wb, dw, n * 2, cudaMemcpyDeviceToHost) == cudaSuccess);
            for (size_t i = 0; i < n && bad < 0; i++)
                if (wb[i] != srlm_f32_to_bf16(p[i])) bad = (long)i;
        }
        CHECK_MSG(bad < 0, "n %zu decay %d step %ld: %s working copy [%ld] differs", n, decay, t,
                  srlm_dtype_name(wdtype), bad);
    }
    printf("adamw n %8zu decay %d copy %-4s: %ld steps bit-identical\n", n, decay,
           copy ? srlm_dtype_name(wdtype) : "none", steps);
    cudaFree(dp); cudaFree(dg); cudaFree(dm); cudaFree(dv); cudaFree(dw);
    free(p); free(g); free(m); free(v); free(gp); free(gm); free(gv); free(wf); free(wb);
}

static void test_sum_squares_and_scale(size_t n, uint64_t seed) {
    float *x = malloc((n ? n : 1) * 4), *y = malloc((n ? n : 1) * 4);
    /* a fifth large, and the last one: a dropped tail element must move the sum */
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(srlm_rng_normal(seed, i) * (i % 5 == 0 || i == n - 1 ? 100.0 : 1e-3));
    float *dx = gpu_alloc(n * 4);
    double *dout = gpu_alloc(2 * sizeof(double));
    void *ws = gpu_alloc(srlm_cuda_sum_squares_workspace(n));
    if (n) CHECK(cudaMemcpy(dx, x, n * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemset(dout, 0xff, 2 * sizeof(double)) == cudaSuccess); /* NaN poison */
    CHECK_OK(srlm_cuda_sum_squares(dx, n, &dout[0], ws, NULL));
    CHECK(cudaMemset(ws, 0xff, srlm_cuda_sum_squares_workspace(n)) == cudaSuccess); /* stale partials */
    CHECK_OK(srlm_cuda_sum_squares(dx, n, &dout[1], ws, NULL));
    double got[2];
    CHECK(cudaMemcpy(got, dout, sizeof got, cudaMemcpyDeviceToHost) == cudaSuccess);
    const double ref = srlm_sum_squares(x, n);
    CHECK_MSG(memcmp(&got[0], &got[1], sizeof(double)) == 0, "sum_squares n %zu: %.17g then %.17g", n,
              got[0], got[1]);
    const double rel = n ? fabs(got[0] - ref) / ref : fabs(got[0]);
    const double tol = (double)(n ? n : 1) * 0x1p-53;
    CHECK_MSG(rel <= tol, "sum_squares n %zu: gpu %.17g cpu %.17g (relative %.3g, bound %.3g)", n, got[0], ref, rel,
              tol);

    /* scale by the clip factor of this norm, as the trainer does */
    const float s = (float)srlm_clip_factor(sqrt(ref), 1.0);
    if (n) {
        CHECK_OK(srlm_cuda_scale_f32(dx, n, s, NULL));
        CHECK(cudaMemcpy(y, dx, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
        srlm_scale_f32(x, n, s);
        long d = first_diff(y, x, n);
        CHECK_MSG(d < 0, "scale n %zu: [%ld] differs", n, d);
    }
    printf("sum_squares n %8zu: %.17g, relative to cpu %.2e, repeat bit-equal; scale by %.6g\n", n, got[0],
           rel, (double)s);
    cudaFree(dx); cudaFree(dout); cudaFree(ws);
    free(x); free(y);
}

int main(void) {
    gpu_skip_without_device("");
    const size_t sizes[] = {1, 1003, (1u << 20) + 17};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        test_adamw(sizes[s], 1, 1, SRLM_BF16, 11 + s, 4);
        test_adamw(sizes[s], 0, 1, SRLM_F32, 21 + s, 4);
    }
    test_adamw(4096, 1, 1, SRLM_F32, 31, 4);
    test_adamw(4096, 0, 1, SRLM_BF16, 32, 4);
    test_adamw(4096, 1, 0, SRLM_F32, 33, 4);
    /* past the largest grid (65536 blocks of 256): the grid-stride loop every
     * 7B weight matrix takes */
    test_adamw((1u << 24) + (1u << 20) + 3, 1, 1, SRLM_BF16, 34, 2);
    /* sum of squares: empty, under one chunk, chunk edges, many chunks */
    const size_t ss[] = {0, 1, 8191, 8192, 8193, 3000017, (1u << 24) + 5};
    for (size_t s = 0; s < sizeof ss / sizeof ss[0]; s++) test_sum_squares_and_scale(ss[s], 41 + s);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    TEST_DONE();
}
