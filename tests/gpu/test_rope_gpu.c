/* GPU RoPE (kernels/rope.h) vs the CPU backend's rope and rope_backward on
 * random rows at random positions (0 .. 4095, 0 and 4095 included), Llama-2
 * (theta 1e4) and Llama-3 (5e5) frequencies, F32 and BF16, a row stride with
 * padding and a view wider than its heads (the extra columns and the padding
 * must stay as they were). The input buffer is freshly random, so an element
 * the kernel skips keeps a wrong value.
 *
 * Tolerances, relative norm-wise:
 *  - F32: 1e-5 + maxpos * 2.4e-7. Both sides form the same fp32 inv_freq and
 *    angle; the transcendentals differ by under an ulp (the GPU evaluates them in
 *    double and rounds, glibc's powf is within 0.82 ulp), but a 1-ulp difference
 *    in inv_freq moves the angle by pos * 2^-24 rad: ~2.4e-7 per unit position
 *    (4 ulps at 4095), the twin's own accuracy there;
 *  - BF16: 1e-2 on top (inputs rounded for both sides, outputs rounded to bf16:
 *    2^-9 relative per element);
 *  - forward then backward on the GPU returns the input: 1e-6 (F32, cos^2 +
 *    sin^2 = 1 up to rounding). */
#include "backend/backend.h"
#include "gpu_util.h"
#include "rope.h"

typedef struct {
    int        rows, n_heads, head_dim, cols, stride;
    float      theta;
    srlm_dtype dtype;
} rope_case;

static void run_case(srlm_backend *be, const rope_case *c, uint64_t seed) {
    const int rows = c->rows, hc = c->n_heads * c->head_dim, cols = c->cols, stride = c->stride;
    const size_t n = (size_t)rows * stride;
    const char *dn = srlm_dtype_name(c->dtype);
    float *x = random_f32(n, seed, 0.0f, 1.0f, c->dtype), *ref = malloc(n * 4), *got = malloc(n * 4);
    int *pos = malloc(sizeof(int) * rows);
    int maxpos = 0;
    for (int i = 0; i < rows; i++) {
        pos[i] = i == 0 ? 0 : i == 1 ? 4095 : (int)(srlm_rng_u64(seed + 1, (uint64_t)i) % 4096);
        maxpos = pos[i] > maxpos ? pos[i] : maxpos;
    }
    int *dpos = gpu_from_host(pos, sizeof(int) * rows);
    const double tol = (c->dtype == SRLM_F32 ? 1e-5 : 1e-2) + maxpos * 2.4e-7;
    for (int dir = 0; dir < 2; dir++) { /* forward (+1), then the backward (-1) */
        memcpy(ref, x, n * 4);
        srlm_view rv = {ref, SRLM_F32, rows, cols, stride};
        if (dir == 0) CHECK_OK(be->ops->rope(be, &rv, pos, c->n_heads, c->head_dim, c->theta));
        else CHECK_OK(be->ops->rope_backward(be, &rv, pos, c->n_heads, c->head_dim, c->theta));
        void *dx = gpu_from_f32(x, n, c->dtype);
        srlm_view dv = {dx, c->dtype, rows, cols, stride};
        CHECK_OK(srlm_cuda_rope(&dv, dpos, c->n_heads, c->head_dim, c->theta, dir ? -1.0f : 1.0f, NULL));
        CHECK(cudaDeviceSynchronize() == cudaSuccess);
        gpu_to_f32(got, dx, n, c->dtype);
        /* the heads' columns against the CPU; the other columns (hc .. stride) as they were */
        double e = rel_err(got, ref, rows, hc, stride);
        int outside = count_bit_diffs(got + hc, x + hc, rows, stride - hc, stride);
        CHECK_MSG(e <= tol, "%s %s %d heads x %d, theta %g: relative error %.3g (tolerance %.2g)", dn,
                  dir ? "backward" : "forward", c->n_heads, c->head_dim, c->theta, e, tol);
        CHECK_MSG(outside == 0, "%s: %d elements outside the heads changed", dn, outside);
        printf("rope %-4s %-8s %3d rows, %2d heads x %3d, theta %6g, max pos %4d: relative error %.2e\n",
               dn, dir ? "backward" : "forward", rows, c->n_heads, c->head_dim, c->theta, maxpos, e);
        if (dir == 0 && c->dtype == SRLM_F32) { /* rotate back on the GPU: the input again */
            CHECK_OK(srlm_cuda_rope(&dv, dpos, c->n_heads, c->head_dim, c->theta, -1.0f, NULL));
            CHECK(cudaDeviceSynchronize() == cudaSuccess);
            gpu_to_f32(got, dx, n, c->dtype);
            e = rel_err(got, x, rows, hc, stride);
            CHECK_MSG(e <= 1e-6, "%s: forward then backward, relative error %.3g", dn, e);
        }
        cudaFree(dx);
    }
    cudaFree(dpos);
    free(x); free(ref); free(got); free(pos);
}

int main(void) {
    gpu_skip_without_device("");
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    const rope_case cases[] = {
        {9, 32, 128, 32 * 128, 32 * 128, 10000.0f, SRLM_F32},          /* Llama-2 7B q */
        {9, 8, 128, 8 * 128, 8 * 128 + 8, 500000.0f, SRLM_F32},        /* padded rows */
        {6, 3, 64, 3 * 64 + 10, 3 * 64 + 16, 10000.0f, SRLM_F32},     /* wider than its heads */
        {9, 32, 128, 32 * 128, 32 * 128, 10000.0f, SRLM_BF16},
        {5, 5, 96, 5 * 96, 5 * 96 + 2, 10000.0f, SRLM_BF16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(be, &cases[i], 300 + 10 * i);

    /* argument checks */
    float *d = gpu_from_host((float[4]){0}, 16);
    srlm_view v = {d, SRLM_F32, 1, 4, 4};
    CHECK(srlm_cuda_rope(&v, (const int *)d, 1, 3, 10000.0f, 1.0f, NULL) == SRLM_BAD_INPUT); /* odd */
    CHECK(srlm_cuda_rope(&v, (const int *)d, 2, 4, 10000.0f, 1.0f, NULL) == SRLM_BAD_INPUT); /* too wide */
    v.dtype = SRLM_F16;
    CHECK(srlm_cuda_rope(&v, (const int *)d, 1, 4, 10000.0f, 1.0f, NULL) == SRLM_BAD_INPUT);
    cudaFree(d);
    srlm_backend_free(be);
    TEST_DONE();
}
