/* CUDA runtime errors as srlm statuses, with the call and file:line. */
#ifndef SRLM_CUDA_CHECK_H
#define SRLM_CUDA_CHECK_H

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable GPUs; 0 (not an error) when there is no GPU or no driver. */
int srlm_cuda_device_count(void);

#ifdef __cplusplus
}
#endif

#define SRLM_CUDA_TRY(call)                                                              \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess)                                                           \
            return srlm_error_at(__FILE__, __LINE__, SRLM_FAILED, "%s: %s (%s:%d)", #call, \
                                 cudaGetErrorString(e_), __FILE__, __LINE__);            \
    } while (0)

#endif
