/* GPU RMSNorm vs its CPU twin (the CPU backend's rmsnorm) on random inputs, with
 * the output poisoned (NaN) before the kernel runs. Skipped without a GPU.
 * Tolerance: 1e-5 relative norm-wise (fp32 both sides; only the order of the
 * sum of squares differs). */
#include <cuda_runtime.h>
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "core/rng.h"
#include "cuda_check.h"
#include "rmsnorm.h"
#include "test.h"

int main(void) {
    if (srlm_cuda_device_count() == 0) TEST_SKIP("no GPU on this machine");
    const int shapes[][2] = {{1, 64}, {7, 4096}, {33, 5120}, {3, 8192}, {5, 100}};
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        int rows = shapes[c][0], cols = shapes[c][1];
        size_t n = (size_t)rows * cols;
        float *x = malloc(n * 4), *w = malloc((size_t)cols * 4), *ref = malloc(n * 4), *got = malloc(n * 4);
        for (size_t i = 0; i < n; i++) x[i] = (float)srlm_rng_normal(7 + c, i);
        for (int j = 0; j < cols; j++) w[j] = 1.0f + 0.1f * (float)srlm_rng_normal(99 + c, (uint64_t)j);
        srlm_view vx = {x, SRLM_F32, rows, cols, cols}, vy = {ref, SRLM_F32, rows, cols, cols};
        srlm_view vw = {w, SRLM_F32, 1, cols, cols};
        CHECK_OK(be->ops->rmsnorm(be, &vy, &vx, &vw, 1e-5f));
        float *dx, *dw, *dy;
        cudaMalloc((void **)&dx, n * 4);
        cudaMalloc((void **)&dy, n * 4);
        cudaMalloc((void **)&dw, (size_t)cols * 4);
        cudaMemcpy(dx, x, n * 4, cudaMemcpyHostToDevice);
        cudaMemcpy(dw, w, (size_t)cols * 4, cudaMemcpyHostToDevice);
        cudaMemset(dy, 0xff, n * 4); /* NaN poison */
        CHECK_OK(srlm_cuda_rmsnorm_f32(dy, dx, dw, rows, cols, 1e-5f, NULL));
        CHECK(cudaMemcpy(got, dy, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
        double num = 0, den = 0;
        for (size_t i = 0; i < n; i++) {
            num += ((double)got[i] - ref[i]) * ((double)got[i] - ref[i]);
            den += (double)ref[i] * ref[i];
        }
        double rel = sqrt(num / den);
        CHECK_MSG(rel <= 1e-5, "rmsnorm %dx%d: relative error %.3g", rows, cols, rel);
        printf("rmsnorm %5d x %5d: relative error %.2e\n", rows, cols, rel);
        cudaFree(dx); cudaFree(dy); cudaFree(dw);
        free(x); free(w); free(ref); free(got);
    }
    srlm_backend_free(be);
    TEST_DONE();
}
