/* The backend factory and srlm_backend_free, shared by every backend. */
#include "backend/factory.h"

#include <string.h>

const char *srlm_backend_kind_name(srlm_backend_kind kind) {
    switch (kind) {
    case SRLM_BACKEND_CPU: return "cpu";
    case SRLM_BACKEND_CUDA: return "cuda";
    case SRLM_BACKEND_CPU_GUARDED: return "cpu_guarded";
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
    case SRLM_BACKEND_CPU_GUARDED: {
        srlm_status st = srlm_backend_cpu_guarded_new(be, threads);
        if (st != SRLM_OK) srlm_error_context("backend.name: cpu_guarded");
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

srlm_status srlm_backend_kind_parse(const char *name, srlm_backend_kind *kind) {
    const srlm_backend_kind all[] = {SRLM_BACKEND_CPU, SRLM_BACKEND_CUDA, SRLM_BACKEND_CPU_GUARDED};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(name, srlm_backend_kind_name(all[i])) == 0) {
            *kind = all[i];
            return SRLM_OK;
        }
    return SRLM_ERR(SRLM_BAD_INPUT, "backend \"%s\": expected cpu, cuda or cpu_guarded", name);
}

srlm_status srlm_backend_dtype_parse(const char *name, srlm_dtype *dtype) {
    if (!strcmp(name, "float32")) *dtype = SRLM_F32;
    else if (!strcmp(name, "bfloat16")) *dtype = SRLM_BF16;
    else return SRLM_ERR(SRLM_BAD_INPUT, "dtype \"%s\": expected float32 or bfloat16", name);
    return SRLM_OK;
}

int srlm_decode_len_bound(int len, int max_seq) {
    const int step = len <= 4096 ? 256 : 1024;
    int bound = len <= 0 ? step : (len + step - 1) / step * step;
    return bound < max_seq ? bound : max_seq;
}

void srlm_backend_free(srlm_backend *be) {
    if (be) be->ops->destroy(be);
}
