/* Rotary position embedding on the GPU (Hugging Face's rotate-half convention).
 * CPU twin: cpu_rope_rotate in src/backend/cpu/backend_cpu.c (ops table: rope,
 * rope_backward). */
#ifndef SRLM_KERNEL_ROPE_H
#define SRLM_KERNEL_ROPE_H

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* In place on x (rows, n_heads*head_dim), F32 or BF16: row i at position pos[i]
 * (device array of x->rows); frequency j rotates elements j and j + head_dim/2 of
 * every head by angle pos * theta^(-2j/head_dim), computed in fp32 as
 * transformers does. sign = +1 forward, -1 the transpose (backward). */
srlm_status srlm_cuda_rope(srlm_view *x, const int *pos, int n_heads, int head_dim, float theta,
                           float sign, void *stream);

#ifdef __cplusplus
}
#endif

#endif
