/* RMSNorm on the GPU, forward and backward. CPU twins: cpu_rmsnorm and
 * cpu_rmsnorm_backward in src/backend/cpu/ (ops table: rmsnorm,
 * rmsnorm_backward). */
#ifndef SRLM_KERNEL_RMSNORM_H
#define SRLM_KERNEL_RMSNORM_H

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[i] = x[i] / sqrt(mean(x[i]^2) + eps) * w, for each of `rows` rows of `cols`
 * fp32 values (device pointers, contiguous rows). One block per row; the sum of
 * squares is reduced in a fixed order, so results are deterministic. */
srlm_status srlm_cuda_rmsnorm_f32(float *y, const float *x, const float *w, int rows, int cols,
                                  float eps, void *stream);

/* The same on views: x, y of dtype SRLM_F32 or SRLM_BF16 (the same), w (1, cols)
 * of that dtype; fp32 math. */
srlm_status srlm_cuda_rmsnorm(srlm_view *y, const srlm_view *x, const srlm_view *w, float eps,
                              void *stream);

/* x += r, then y = rmsnorm(x) with w, in one pass over the row (one block
 * per row): the bits of srlm_cuda_add followed by srlm_cuda_rmsnorm, since
 * each element is rounded to x's dtype when stored and the norm reads the
 * stored values in the same order and tree. y must not overlap x or r. CPU
 * twin: the ops table's add then rmsnorm (add_rmsnorm). */
srlm_status srlm_cuda_add_rmsnorm(srlm_view *x, srlm_view *y, const srlm_view *r, const srlm_view *w,
                                  float eps, void *stream);

/* dx = d/dx given dy (=, not accumulated); dw (1, cols) = sum over rows of
 * dy * x_normalised (accumulate: +=), summed in a fixed order (per-block
 * partials over row ranges, then the blocks in order): deterministic, no
 * atomics. workspace: srlm_cuda_rmsnorm_backward_workspace(rows, cols) bytes
 * of device memory. */
size_t srlm_cuda_rmsnorm_backward_workspace(int64_t rows, int64_t cols);
srlm_status srlm_cuda_rmsnorm_backward(srlm_view *dx, srlm_view *dw, const srlm_view *dy,
                                       const srlm_view *x, const srlm_view *w, float eps, int accumulate,
                                       void *workspace, void *stream);

#ifdef __cplusplus
}
#endif

#endif
