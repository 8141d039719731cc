/* GPU SwiGLU (kernels/swiglu.h) forward and backward vs the CPU backend's swiglu
 * and swiglu_backward on random gate (sd 3: both saturated ends of the sigmoid),
 * up and dout, F32 and BF16, a Llama-2 7B MLP width and an odd width with padded
 * rows. Outputs are poisoned with NaN first.
 *
 * Tolerances, relative norm-wise: F32 1e-5 (elementwise, the same expressions;
 * only expf's last ulps and FMA contraction differ, a few 1e-7); BF16 1e-2
 * (inputs rounded to bf16 for the CPU too, outputs rounded to bf16: 2^-9
 * relative per element). */
#include "backend/backend.h"
#include "gpu_util.h"
#include "swiglu.h"

static void run_case(srlm_backend *be, int rows, int cols, int stride, srlm_dtype t, uint64_t seed) {
    const size_t n = (size_t)rows * stride;
    const char *dn = srlm_dtype_name(t);
    const double tol = t == SRLM_F32 ? 1e-5 : 1e-2;
    float *g = random_f32(n, seed, 0.0f, 3.0f, t), *u = random_f32(n, seed + 1, 0.0f, 1.0f, t);
    float *d = random_f32(n, seed + 2, 0.0f, 1.0f, t);
    float *ro = malloc(n * 4), *rdg = malloc(n * 4), *rdu = malloc(n * 4), *got = malloc(n * 4);
    srlm_view hg = {g, SRLM_F32, rows, cols, stride}, hu = {u, SRLM_F32, rows, cols, stride};
    srlm_view hd = {d, SRLM_F32, rows, cols, stride}, ho = {ro, SRLM_F32, rows, cols, stride};
    srlm_view hdg = {rdg, SRLM_F32, rows, cols, stride}, hdu = {rdu, SRLM_F32, rows, cols, stride};
    CHECK_OK(be->ops->swiglu(be, &ho, &hg, &hu));
    CHECK_OK(be->ops->swiglu_backward(be, &hdg, &hdu, &hd, &hg, &hu));

    void *dg = gpu_from_f32(g, n, t), *du = gpu_from_f32(u, n, t), *dd = gpu_from_f32(d, n, t);
    size_t bytes = n * srlm_dtype_size(t);
    void *dout = gpu_poisoned(bytes), *ddg = gpu_poisoned(bytes), *ddu = gpu_poisoned(bytes);
    srlm_view vg = {dg, t, rows, cols, stride}, vu = {du, t, rows, cols, stride};
    srlm_view vd = {dd, t, rows, cols, stride}, vo = {dout, t, rows, cols, stride};
    srlm_view vdg = {ddg, t, rows, cols, stride}, vdu = {ddu, t, rows, cols, stride};
    CHECK_OK(srlm_cuda_swiglu(&vo, &vg, &vu, NULL));
    CHECK_OK(srlm_cuda_swiglu_backward(&vdg, &vdu, &vd, &vg, &vu, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);

    gpu_to_f32(got, dout, n, t);
    double e_out = rel_err(got, ro, rows, cols, stride);
    gpu_to_f32(got, ddg, n, t);
    double e_dg = rel_err(got, rdg, rows, cols, stride);
    gpu_to_f32(got, ddu, n, t);
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
    gpu_skip_without_device("");
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    run_case(be, 7, 11008, 11008, SRLM_F32, 500);
    run_case(be, 3, 1001, 1003, SRLM_F32, 510);
    run_case(be, 7, 11008, 11008, SRLM_BF16, 520);
    run_case(be, 3, 1001, 1004, SRLM_BF16, 530);

    /* argument checks: a dtype or shape mismatch is refused before any launch */
    float *p = gpu_poisoned(64);
    srlm_view a = {p, SRLM_F32, 2, 4, 4}, b = {p, SRLM_BF16, 2, 4, 4}, c = {p, SRLM_F32, 2, 3, 4};
    CHECK(srlm_cuda_swiglu(&a, &a, &b, NULL) == SRLM_BAD_INPUT);
    CHECK(srlm_cuda_swiglu(&a, &c, &a, NULL) == SRLM_BAD_INPUT);
    CHECK(srlm_cuda_swiglu_backward(&a, &a, &a, &a, &b, NULL) == SRLM_BAD_INPUT);
    cudaFree(p);
    srlm_backend_free(be);
    TEST_DONE();
}
