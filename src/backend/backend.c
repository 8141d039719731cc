/* The backend factory and srlm_backend_free, shared by every backend. */
#include "backend/factory.h"

const char *srlm_backend_kind_name(srlm_backend_kind kind) {
    switch (kind) {
    case SRLM_BACKEND_CPU: return "cpu";
    case SRLM_BACKEND_CUDA: return "cuda";
    }
    return "?";
}

srlm_status srlm_backend_new(srlm_backend_kind kind, int threads, int device, srlm_backend **be) {
    *be = NULL;
    switch (kind) {
    case SRLM_BACKEND_CPU: {
        srlm_status st = srlm_backend_cpu_new(be, threads);
        if (st != SRLM_OK) srlm_error_context("backend.name: cpu");
        return st;
    }
    case SRLM_BACKEND_CUDA: {
#ifdef SRLM_HAVE_CUDA
        srlm_status st = srlm_backend_cuda_new(be, device);
        if (st != SRLM_OK) srlm_error_context("backend.name: cuda");
        return st;
#else
        (void)device;
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "backend.name: cuda: this srlm was built without the CUDA backend (CMake found no "
                        "CUDA compiler); rebuild with -DSRLM_CUDA=ON where the CUDA toolkit is installed");
#endif
    }
    }
    return SRLM_ERR(SRLM_BAD_INPUT, "backend.name: unknown backend kind %d", (int)kind);
}

srlm_status srlm_backend_require_host_memory(const srlm_backend *be) {
    if (be->ops->host_memory) return SRLM_OK;
    return SRLM_ERR(SRLM_BAD_INPUT,
                    "backend.name: %s: the trainer / generation engine do not run on device memory yet: they "
                    "still update weights and read logits in host memory (issue 8, step 7)", be->ops->name);
}

void srlm_backend_free(srlm_backend *be) {
    if (be) be->ops->destroy(be);
}
