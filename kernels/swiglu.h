/* The SiLU-gated MLP activation on the GPU. CPU twins: cpu_swiglu and
 * cpu_swiglu_backward in src/backend/cpu/ (ops table: swiglu, swiglu_backward). */
#ifndef SRLM_KERNEL_SWIGLU_H
#define SRLM_KERNEL_SWIGLU_H

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out = silu(gate) * up, elementwise; views of one dtype, F32 or BF16. */
srlm_status srlm_cuda_swiglu(srlm_view *out, const srlm_view *gate, const srlm_view *up, void *stream);

/* dgate, dup (=) given dout; they may not alias the inputs. */
srlm_status srlm_cuda_swiglu_backward(srlm_view *dgate, srlm_view *dup, const srlm_view *dout,
                                      const srlm_view *gate, const srlm_view *up, void *stream);

#ifdef __cplusplus
}
#endif

#endif
