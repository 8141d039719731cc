/* RMSNorm on the GPU. CPU twin: cpu_rmsnorm in src/backend/cpu/backend_cpu.c
 * (the ops table's rmsnorm on the CPU backend). */
#ifndef SRLM_KERNEL_RMSNORM_H
#define SRLM_KERNEL_RMSNORM_H

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[i] = x[i] / sqrt(mean(x[i]^2) + eps) * w, for each of `rows` rows of `cols`
 * fp32 values (device pointers, contiguous rows). One block per row; the sum of
 * squares is reduced in a fixed order, so results are deterministic. */
srlm_status srlm_cuda_rmsnorm_f32(float *y, const float *x, const float *w, int rows, int cols,
                                  float eps, void *stream);

#ifdef __cplusplus
}
#endif

#endif
