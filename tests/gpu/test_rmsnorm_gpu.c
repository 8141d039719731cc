/* GPU RMSNorm vs its CPU twin (the CPU backend's rmsnorm and rmsnorm_backward)
 * on random inputs, with the outputs poisoned (NaN) before the kernels run.
 * Skipped without a GPU. Cases: the raw fp32 entry point (srlm_cuda_rmsnorm_f32);
 * the view-based forward and the backward for F32 and BF16, padded rows, and
 * row counts that give one, several and the capped number (256) of dw row chunks
 * (9000 rows: the last chunks are empty).
 *
 * Tolerances, relative norm-wise:
 *  - F32: 1e-5. Only the order of the sums differs (sum of squares and
 *    sum w dy x per row: per-thread then a tree; dw over rows: chunk partials
 *    then chunks in order, vs the CPU's row-by-row loops); dw's tolerance grows
 *    with sqrt(rows) past 256 rows, as the CPU's own fp32 row sum's error does;
 *  - BF16 activations: 1e-2. Inputs rounded to bf16 for the CPU too, outputs
 *    rounded to bf16 (2^-9 relative each); a BF16 dw is rounded once more after
 *    the fp32 sum. An F32 dw with BF16 activations: 1e-5 (fp32 all along).
 * The backward must also be bit-identical when run twice (no atomics). */
#include "backend/backend.h"
#include "gpu_util.h"
#include "rmsnorm.h"

/* The view API, forward and backward: activations of dtype t with row stride
 * `stride`, dw of dtype wt. */
static void view_case(srlm_backend *be, int rows, int cols, int stride, srlm_dtype t, srlm_dtype wt,
                      uint64_t seed) {
    const size_t n = (size_t)rows * stride;
    const char *tn = srlm_dtype_name(t), *wn = srlm_dtype_name(wt);
    /* dw: the CPU adds the rows one by one in fp32, an error growing like
     * sqrt(rows) * 2^-24 relative (~2e-6 at 9000 rows): 1e-5 up to 256 rows, then
     * scaled by sqrt(rows / 256) */
    const double tol = t == SRLM_F32 ? 1e-5 : 1e-2;
    const double tol_dw = wt == SRLM_F32 ? 1e-5 * fmax(1.0, sqrt(rows / 256.0)) : 1e-2;
    const float eps = 1e-5f;
    float *x = random_f32(n, seed, 0.0f, 1.0f, t), *dy = random_f32(n, seed + 1, 0.0f, 1.0f, t);
    float *w = random_f32((size_t)cols, seed + 2, 1.0f, 0.1f, t);
    float *dw0 = random_f32((size_t)cols, seed + 3, 0.0f, 0.01f, wt); /* dw accumulates (+=) */
    float *ry = malloc(n * 4), *rdx = malloc(n * 4), *rdw = malloc((size_t)cols * 4);
    float *got = malloc(n * 4), *got2 = malloc(n * 4), *gdw = malloc((size_t)cols * 4);
    float *gdw2 = malloc((size_t)cols * 4);
    memcpy(rdw, dw0, (size_t)cols * 4);
    srlm_view hx = {x, SRLM_F32, rows, cols, stride}, hdy = {dy, SRLM_F32, rows, cols, stride};
    srlm_view hw = {w, SRLM_F32, 1, cols, cols}, hy = {ry, SRLM_F32, rows, cols, stride};
    srlm_view hdx = {rdx, SRLM_F32, rows, cols, stride}, hdw = {rdw, SRLM_F32, 1, cols, cols};
    CHECK_OK(be->ops->rmsnorm(be, &hy, &hx, &hw, eps));
    CHECK_OK(be->ops->rmsnorm_backward(be, &hdx, &hdw, &hdy, &hx, &hw, eps, 1));
    round_to_dtype(rdw, (size_t)cols, wt);

    void *dx = gpu_from_f32(x, n, t), *ddy = gpu_from_f32(dy, n, t), *dw = gpu_from_f32(w, (size_t)cols, t);
    void *dy_out = gpu_poisoned(n * srlm_dtype_size(t)), *ddx = gpu_poisoned(n * srlm_dtype_size(t));
    void *ddw = gpu_from_f32(dw0, (size_t)cols, wt);
    size_t wsb = srlm_cuda_rmsnorm_backward_workspace(rows, cols);
    void *ws = gpu_poisoned(wsb);
    srlm_view vx = {dx, t, rows, cols, stride}, vdy = {ddy, t, rows, cols, stride};
    srlm_view vw = {dw, t, 1, cols, cols}, vy = {dy_out, t, rows, cols, stride};
    srlm_view vdx = {ddx, t, rows, cols, stride}, vdw = {ddw, wt, 1, cols, cols};
    CHECK_OK(srlm_cuda_rmsnorm(&vy, &vx, &vw, eps, NULL));
    CHECK_OK(srlm_cuda_rmsnorm_backward(&vdx, &vdw, &vdy, &vx, &vw, eps, 1, ws, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    gpu_to_f32(got, dy_out, n, t);
    double e_y = rel_err(got, ry, rows, cols, stride);
    gpu_to_f32(got, ddx, n, t);
    double e_dx = rel_err(got, rdx, rows, cols, stride);
    gpu_to_f32(gdw, ddw, (size_t)cols, wt);
    double e_dw = rel_err(gdw, rdw, 1, cols, cols);
    CHECK_MSG(e_y <= tol, "rmsnorm %s %dx%d: y relative error %.3g", tn, rows, cols, e_y);
    CHECK_MSG(e_dx <= tol, "rmsnorm %s %dx%d: dx relative error %.3g", tn, rows, cols, e_dx);
    CHECK_MSG(e_dw <= tol_dw, "rmsnorm %s %dx%d: dw (%s) relative error %.3g", tn, rows, cols, wn, e_dw);

    /* again, from the same dw: the same bits */
    srlm_convert_from_f32(got2, wt, dw0, (size_t)cols); /* got2 as a staging buffer */
    CHECK(cudaMemcpy(ddw, got2, (size_t)cols * srlm_dtype_size(wt), cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemset(ddx, 0xff, n * srlm_dtype_size(t)) == cudaSuccess);
    CHECK_OK(srlm_cuda_rmsnorm_backward(&vdx, &vdw, &vdy, &vx, &vw, eps, 1, ws, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    gpu_to_f32(got2, ddx, n, t);
    gpu_to_f32(gdw2, ddw, (size_t)cols, wt);
    int same = 1;
    for (int i = 0; i < rows; i++)
        same &= !memcmp(got + (size_t)i * stride, got2 + (size_t)i * stride, (size_t)cols * 4);
    same &= !memcmp(gdw, gdw2, (size_t)cols * 4);
    CHECK_MSG(same, "rmsnorm_backward %s %dx%d: a second run gave other bits", tn, rows, cols);

    /* dw written (a step's first micro-batch), over NaN: the CPU's written dw */
    float *wdw = malloc((size_t)cols * 4);
    srlm_view hwdw = {wdw, SRLM_F32, 1, cols, cols};
    CHECK_OK(be->ops->rmsnorm_backward(be, &hdx, &hwdw, &hdy, &hx, &hw, eps, 0));
    round_to_dtype(wdw, (size_t)cols, wt);
    CHECK(cudaMemset(ddw, 0xff, (size_t)cols * srlm_dtype_size(wt)) == cudaSuccess);
    CHECK_OK(srlm_cuda_rmsnorm_backward(&vdx, &vdw, &vdy, &vx, &vw, eps, 0, ws, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    gpu_to_f32(gdw2, ddw, (size_t)cols, wt);
    const double e_w = rel_err(gdw2, wdw, 1, cols, cols);
    CHECK_MSG(e_w <= tol_dw, "rmsnorm %s %dx%d: dw written over NaN, relative error %.3g", tn, rows, cols, e_w);
    free(wdw);
    printf("rmsnorm %-4s %5d x %5d (stride %5d), dw %-4s: y %.2e, dx %.2e, dw %.2e, rerun %s\n", tn,
           rows, cols, stride, wn, e_y, e_dx, e_dw, same ? "identical" : "DIFFERS");
    cudaFree(dx); cudaFree(ddy); cudaFree(dw); cudaFree(dy_out); cudaFree(ddx); cudaFree(ddw); cudaFree(ws);
    free(x); free(dy); free(w); free(dw0); free(ry); free(rdx); free(rdw); free(got); free(got2);
    free(gdw); free(gdw2);
}

int main(void) {
    gpu_skip_without_device("");
    const int shapes[][2] = {{1, 64}, {7, 4096}, {33, 5120}, {3, 8192}, {5, 100}};
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        int rows = shapes[c][0], cols = shapes[c][1];
        size_t n = (size_t)rows * cols;
        float *x = random_f32(n, 7 + c, 0.0f, 1.0f, SRLM_F32);
        float *w = random_f32((size_t)cols, 99 + c, 1.0f, 0.1f, SRLM_F32);
        float *ref = malloc(n * 4), *got = malloc(n * 4);
        srlm_view vx = {x, SRLM_F32, rows, cols, cols}, vy = {ref, SRLM_F32, rows, cols, cols};
        srlm_view vw = {w, SRLM_F32, 1, cols, cols};
        CHECK_OK(be->ops->rmsnorm(be, &vy, &vx, &vw, 1e-5f));
        float *dx = gpu_from_host(x, n * 4), *dw = gpu_from_host(w, (size_t)cols * 4), *dy = gpu_poisoned(n * 4);
        CHECK_OK(srlm_cuda_rmsnorm_f32(dy, dx, dw, rows, cols, 1e-5f, NULL));
        CHECK(cudaMemcpy(got, dy, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
        double rel = rel_err(got, ref, rows, cols, cols);
        CHECK_MSG(rel <= 1e-5, "rmsnorm %dx%d: relative error %.3g", rows, cols, rel);
        printf("rmsnorm %5d x %5d: relative error %.2e\n", rows, cols, rel);
        cudaFree(dx); cudaFree(dy); cudaFree(dw);
        free(x); free(w); free(ref); free(got);
    }
    /* the view API: rows x cols, stride, activation dtype, dw dtype */
    view_case(be, 7, 4096, 4096, SRLM_F32, SRLM_F32, 40);
    view_case(be, 5, 100, 104, SRLM_F32, SRLM_F32, 41);
    view_case(be, 300, 5120, 5120, SRLM_F32, SRLM_F32, 42);   /* 10 dw chunks */
    view_case(be, 9000, 64, 72, SRLM_F32, SRLM_F32, 43);      /* 256 chunks, the last empty */
    view_case(be, 7, 4096, 4096, SRLM_BF16, SRLM_BF16, 44);
    view_case(be, 33, 5120, 5128, SRLM_BF16, SRLM_F32, 45);   /* fp32 gradients of a bf16 model */
    view_case(be, 1, 64, 64, SRLM_BF16, SRLM_BF16, 46);

    /* argument checks: refused before any launch */
    float *p = gpu_poisoned(64);
    srlm_view a = {p, SRLM_F32, 2, 4, 4}, b = {p, SRLM_BF16, 2, 4, 4}, w1 = {p, SRLM_F32, 1, 3, 3};
    CHECK(srlm_cuda_rmsnorm(&a, &b, &a, 1e-5f, NULL) == SRLM_BAD_INPUT);  /* dtypes */
    CHECK(srlm_cuda_rmsnorm(&a, &a, &w1, 1e-5f, NULL) == SRLM_BAD_INPUT); /* w's width */
    CHECK(srlm_cuda_rmsnorm_backward(&a, &w1, &a, &a, &a, 1e-5f, 1, p, NULL) == SRLM_BAD_INPUT);
    cudaFree(p);
    srlm_backend_free(be);
    TEST_DONE();
}
