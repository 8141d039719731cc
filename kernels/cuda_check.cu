#include <cuda_runtime.h>

#include "cuda_check.h"

extern "C" int srlm_cuda_device_count(void) {
    int n = 0;
    /* no driver or no device: the runtime reports an error, which here means "none" */
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}
