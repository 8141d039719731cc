/* Small data-movement and elementwise ops on the GPU. CPU twins: cpu_kv_store,
 * cpu_copy_rows, cpu_copy, cpu_add, cpu_fill, cpu_fill_cols and cpu_dropout in
 * src/backend/cpu/ (the ops table entries of the same names), and
 * srlm_convert_to_f32 / srlm_convert_from_f32 (core/dtype.h). Views of one call
 * share a dtype (F32 or BF16) unless said otherwise. */
#ifndef SRLM_KERNEL_TENSOR_OPS_H
#define SRLM_KERNEL_TENSOR_OPS_H

#include <stdint.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* cache row slot[b]*max_seq + n_past[b] + t = kv row b*T + t, for t < n_new[b];
 * slot, n_past, n_new: device arrays of B. */
srlm_status srlm_cuda_kv_store(srlm_view *cache, const srlm_view *kv, int B, int T, int max_seq,
                               const int *slot, const int *n_past, const int *n_new, void *stream);

/* dst row i = src row src_rows[i] for i < n (src_rows: device array). */
srlm_status srlm_cuda_copy_rows(srlm_view *dst, const srlm_view *src, const int *src_rows, int n,
                                void *stream);

/* dst = src, any dtypes among F32 / BF16 (a conversion when they differ; to bf16
 * rounds to nearest even as srlm_f32_to_bf16). */
srlm_status srlm_cuda_copy(srlm_view *dst, const srlm_view *src, void *stream);

/* y += x */
srlm_status srlm_cuda_add(srlm_view *y, const srlm_view *x, void *stream);

/* every element = value */
srlm_status srlm_cuda_fill(srlm_view *v, float value, void *stream);

/* columns [c0, cols) of every row = value */
srlm_status srlm_cuda_fill_cols(srlm_view *v, int64_t c0, float value, void *stream);

/* x[i][j] = keep ? x[i][j] / (1 - p) : 0, keep = srlm_rng_uniform(key, i*cols + j) >= p
 * (core/rng.h, the same function on the device: the same mask as the CPU). */
srlm_status srlm_cuda_dropout(srlm_view *x, float p, uint64_t key, void *stream);

#ifdef __cplusplus
}
#endif

#endif
