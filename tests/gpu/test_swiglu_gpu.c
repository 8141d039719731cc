/* GPU SwiGLU (kernels/swiglu.h) forward and backward vs the CPU backend's swiglu
 * and swiglu_backward on random gate (sd 3: both saturated ends of the sigmoid),
 * up and dout, F32 and BF16, a Llama-2 7B MLP width and an odd width with padded
 * rows. Outputs are poisoned with NaN first.
 *
 * Tolerances, relative norm-wise: F32 1e-5 (elementwise, the same expressions;
 * only expf's last ulps and FMA contraction differ, a few 1e-7); BF16 1e-2
 * (inputs rounded to bf16 for the CPU too, outputs rounded to bf16: 2^-9
 * relative per element). */
#include <cuda_runtime.h>
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "core/rng.h"
#include "cuda_check.h"
#include "swiglu.h"
#include "test.h"

static void *dev_poisoned(size_t bytes) {
    void *p = NULL;
    CHECK(cudaMalloc(&p, bytes ? bytes : 1) == cudaSuccess);
    CHECK(cudaMemset(p, 0xff, bytes ? bytes : 1) == cudaSuccess); /* NaN */
    return p;
}

static void *dev_from_f32(const float *h, size_t n, srlm_dtype t) {
    size_t bytes = n * srlm_dtype_size(t);
    void *tmp = malloc(bytes);
    srlm_convert_from_f32(tmp, t, h, n);
    void *d = dev_poisoned(bytes);
    CHECK(cudaMemcpy(d, tmp, bytes, cudaMemcpyHostToDevice) == cudaSuccess);
    free(tmp);
    return d;
}

static void f32_from_dev(float *h, const void *d, size_t n, srlm_dtype t) {
    size_t bytes = n * srlm_dtype_size(t);
    void *tmp = malloc(bytes);
    CHECK(cudaMemcpy(tmp, d, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
    srlm_convert_to_f32(h, tmp, t, n);
    free(tmp);
}

static float *random_f32(size_t n, uint64_t key, float scale, srlm_dtype t) {
    float *x = malloc(n * 4);
    for (size_t i = 0; i < n; i++) {
        x[i] = scale * (float)srlm_rng_normal(key, i);
        if (t == SRLM_BF16) x[i] = srlm_bf16_to_f32(srlm_f32_to_bf16(x[i]));
    }
    return x;
}

static double rel_err(const float *got, const float *ref, int rows, int cols, int stride) {
    double num = 0, den = 0;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            size_t k = (size_t)i * stride + j;
            double d = (double)got[k] - ref[k];
            num += d * d;
            den += (double)ref[k] * ref[k];
        }
    return sqrt(num / den);
}

static void run_case(srlm_backend *be, int rows, int cols, int stride, srlm_dtype t, uint64_t seed) {
    const size_t n = (size_t)rows * stride;
    const char *dn = srlm_dtype_name(t);
    const double tol = t == SRLM_F32 ? 1e-5 : 1e-2;
    float *g = random_f32(n, seed, 3.0f, t), *u = random_f32(n, seed + 1, 1.0f, t);
    float *d = random_f32(n, seed + 2, 1.0f, t);
    float *ro = malloc(n * 4), *rdg = malloc(n * 4), *rdu = malloc(n * 4), *got = malloc(n * 4);
    srlm_view hg = {g, SRLM_F32, rows, cols, stride}, hu = {u, SRLM_F32, rows, cols, stride};
    srlm_view hd = {d, SRLM_F32, rows, cols, stride}, ho = {ro, SRLM_F32, rows, cols, stride};
    srlm_view hdg = {rdg, SRLM_F32, rows, cols, stride}, hdu = {rdu, SRLM_F32, rows, cols, stride};
    CHECK_OK(be->ops->swiglu(be, &ho, &hg, &hu));
    CHECK_OK(be->ops->swiglu_backward(be, &hdg, &hdu, &hd, &hg, &hu));

    void *dg = dev_from_f32(g, n, t), *du = dev_from_f32(u, n, t), *dd = dev_from_f32(d, n, t);
    size_t bytes = n * srlm_dtype_size(t);
    void *dout = dev_poisoned(bytes), *ddg = dev_poisoned(bytes), *ddu = dev_poisoned(bytes);
    srlm_view vg = {dg, t, rows, cols, stride}, vu = {du, t, rows, cols, stride};
    srlm_view vd = {dd, t, rows, cols, stride}, vo = {dout, t, rows, cols, stride};
    srlm_view vdg = {ddg, t, rows, cols, stride}, vdu = {ddu, t, rows, cols, stride};
    CHECK_OK(srlm_cuda_swiglu(&vo, &vg, &vu, NULL));
    CHECK_OK(srlm_cuda_swiglu_backward(&vdg, &vdu, &vd, &vg, &vu, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);

    f32_from_dev(got, dout, n, t);
    double e_out = rel_err(got, ro, rows, cols, stride);
    f32_from_dev(got, ddg, n, t);
    double e_dg = rel_err(got, rdg, rows, cols, stride);
    f32_from_dev(got, ddu, n, t);
    double e_du = rel_err(got, rdu, rows, cols, stride);
    CHECK_MSG(e_out <= tol, "%s %dx%d: swiglu relative error %.3g", dn, rows, cols, e_out);
    CHECK_MSG(e_dg <= tol, "%s %dx%d: dgate relative error %.3g", dn, rows, cols, e_dg);
    CHECK_MSG(e_du <= tol, "%s %dx%d: dup relative error %.3g", dn, rows, cols, e_du);
    printf("swiglu %-4s %2d x %5d (stride %5d): out %.2e, dgate %.2e, dup %.2e (tolerance %.0e)\n", dn,
           rows, cols, stride, e_out, e_dg, e_du, tol);
    cudaFree(dg); cudaFree(du); cudaFree(dd); cudaFree(dout); cudaFree(ddg); cudaFree(ddu);
    free(g); free(u); free(d); free(ro); free(rdg); free(rdu); free(got);
}

int main(void) {
    if (srlm_cuda_device_count() == 0) TEST_SKIP("no GPU on this machine");
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    run_case(be, 7, 11008, 11008, SRLM_F32, 500);
    run_case(be, 3, 1001, 1003, SRLM_F32, 510);
    run_case(be, 7, 11008, 11008, SRLM_BF16, 520);
    run_case(be, 3, 1001, 1004, SRLM_BF16, 530);

    /* argument checks: a dtype or shape mismatch is refused before any launch */
    float *p = dev_poisoned(64);
    srlm_view a = {p, SRLM_F32, 2, 4, 4}, b = {p, SRLM_BF16, 2, 4, 4}, c = {p, SRLM_F32, 2, 3, 4};
    CHECK(srlm_cuda_swiglu(&a, &a, &b, NULL) == SRLM_BAD_INPUT);
    CHECK(srlm_cuda_swiglu(&a, &c, &a, NULL) == SRLM_BAD_INPUT);
    CHECK(srlm_cuda_swiglu_backward(&a, &a, &a, &a, &b, NULL) == SRLM_BAD_INPUT);
    cudaFree(p);
    srlm_backend_free(be);
    TEST_DONE();
}
