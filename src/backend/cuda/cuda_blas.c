/* cuBLAS opened at run time (core/dynlib.h): the table of the functions the
 * CUDA backend calls. cublas_v2.h maps most names to their _v2 symbols with
 * macros; SYMBOL_NAME expands them before making the string dlsym looks up. */
#include <stdio.h>

#include "backend/cuda/cuda_internal.h"
#include "core/dynlib.h"

#ifndef SRLM_CUDA_LIB_DIR
#define SRLM_CUDA_LIB_DIR ""
#endif

cuda_blas_api cuda_blas;

#define SYMBOL_NAME_(name) #name
#define SYMBOL_NAME(name) SYMBOL_NAME_(name)

srlm_status cuda_blas_load(void) {
    static int loaded;
    if (loaded) return SRLM_OK;
    char soname[64];
    snprintf(soname, sizeof soname, "libcublas.so.%d", CUBLAS_VER_MAJOR);
    void *h;
    SRLM_CHECK(srlm_dynlib_open(soname, SRLM_CUDA_LIB_DIR, "backend.name: cuda (its GEMMs)", &h));
    cuda_blas_api api;
#define LOAD(field, fn) SRLM_CHECK(srlm_dynlib_sym(h, soname, SYMBOL_NAME(fn), (void **)&api.field))
    LOAD(create, cublasCreate);
    LOAD(destroy, cublasDestroy);
    LOAD(set_stream, cublasSetStream);
    LOAD(set_workspace, cublasSetWorkspace);
    LOAD(set_atomics_mode, cublasSetAtomicsMode);
    LOAD(set_pointer_mode, cublasSetPointerMode);
    LOAD(set_math_mode, cublasSetMathMode);
    LOAD(gemm_ex, cublasGemmEx);
    LOAD(status_string, cublasGetStatusString);
#undef LOAD
    cuda_blas = api;
    loaded = 1;
    return SRLM_OK;
}
