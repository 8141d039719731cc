/* Libraries opened at run time (core/dynlib.h): a missing library or function
 * gives one message naming it and what needs it; in a CUDA build, cuBLAS and
 * NCCL open and their functions resolve without a GPU (a call that needs no
 * device, cublasGetStatusString, answers), and srlm itself links neither. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dynlib.h"
#include "test.h"
#ifdef SRLM_HAVE_CUDA
#include "backend/cuda/cuda_internal.h"
#endif
#ifdef SRLM_HAVE_NCCL
#include "dist/comm_nccl.h"
#endif

static void test_errors(void) {
    void *h = NULL;
    CHECK(srlm_dynlib_open("libsrlm-no-such-lib.so.7", "/nonexistent", "a test", &h) == SRLM_FAILED);
    const char *msg = srlm_last_error();
    CHECK_MSG(strstr(msg, "cannot load libsrlm-no-such-lib.so.7, which a test needs") && strstr(msg, "LD_LIBRARY_PATH"),
              "message: %s", msg);
    CHECK(h == NULL);
    CHECK_OK(srlm_dynlib_open("libm.so.6", NULL, "a test", &h));
    void *fn = NULL;
    CHECK_OK(srlm_dynlib_sym(h, "libm.so.6", "cos", &fn));
    CHECK(fn != NULL);
    CHECK(srlm_dynlib_sym(h, "libm.so.6", "srlm_no_such_function", &fn) == SRLM_FAILED);
    CHECK_MSG(strstr(srlm_last_error(), "libm.so.6 has no function srlm_no_such_function"), "message: %s",
              srlm_last_error());
}

int main(void) {
    test_errors();
#ifdef SRLM_HAVE_CUDA
    CHECK_OK(cuda_blas_load());
    CHECK_OK(cuda_blas_load()); /* idempotent */
    const char *s = cuda_blas.status_string ? cuda_blas.status_string(CUBLAS_STATUS_SUCCESS) : NULL;
    printf("cuBLAS opened: cublasGetStatusString(SUCCESS) = %s\n", s ? s : "(null)");
    CHECK(s != NULL && cuda_blas.gemm_ex != NULL);
#else
    printf("SKIPPED part: not a CUDA build, no cuBLAS to open\n");
#endif
#ifdef SRLM_HAVE_NCCL
    CHECK_OK(srlm_comm_nccl_load());
    printf("NCCL opened\n");
#endif
    TEST_DONE();
}
