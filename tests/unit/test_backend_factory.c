/* The backend factory (backend/factory.h): backend.name cpu gives a working CPU
 * backend; cuda gives either a CUDA backend that the trainer and engine refuse
 * (views in device memory) or, without one, a clear error naming backend.name
 * and why: a build without the CUDA backend, or no GPU. Runs without a GPU. */
#include <string.h>

#include "backend/factory.h"
#include "test.h"

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static void test_cpu(void) {
    srlm_backend *be = NULL;
    CHECK_OK(srlm_backend_new(SRLM_BACKEND_CPU, 1, 0, &be));
    if (!be) return;
    CHECK(strcmp(be->ops->name, "cpu") == 0);
    CHECK(be->ops->host_memory == 1 && be->ops->destroy != NULL);
    CHECK_OK(srlm_backend_require_host_memory(be));
    /* y (2, 3) = x (2, 2) W^T, W (3, 2) */
    const float x[4] = {1, 2, 3, 4}, w[6] = {1, 0, 0, 1, 1, 1};
    float y[6];
    srlm_view vx, vw, vy;
    CHECK_OK(be->ops->alloc(be, &vx, SRLM_F32, 2, 2, "x"));
    CHECK_OK(be->ops->alloc(be, &vw, SRLM_F32, 3, 2, "w"));
    CHECK_OK(be->ops->alloc(be, &vy, SRLM_F32, 2, 3, "y"));
    CHECK_OK(be->ops->upload(be, &vx, x));
    CHECK_OK(be->ops->upload(be, &vw, w));
    CHECK_OK(be->ops->matmul(be, &vy, &vx, &vw, 0));
    CHECK_OK(be->ops->download(be, y, &vy));
    const float want[6] = {1, 2, 3, 3, 4, 7};
    for (int i = 0; i < 6; i++) CHECK_MSG(y[i] == want[i], "y[%d] = %g, expected %g", i, y[i], want[i]);
    be->ops->free(be, &vx);
    be->ops->free(be, &vw);
    be->ops->free(be, &vy);
    srlm_backend_free(be);
}

static void test_cuda(void) {
    srlm_backend *be = NULL;
    srlm_status st = srlm_backend_new(SRLM_BACKEND_CUDA, 1, 0, &be);
    const char *msg = srlm_last_error();
    printf("backend.name cuda: status %d, %s\n", (int)st, st == SRLM_OK ? "created" : msg);
    if (st == SRLM_OK) { /* a CUDA build on a machine with a GPU */
        CHECK(be != NULL);
        if (!be) return;
        CHECK(strcmp(be->ops->name, "cuda") == 0 && be->ops->host_memory == 0);
        CHECK(srlm_backend_require_host_memory(be) == SRLM_BAD_INPUT);
        CHECK_MSG(starts_with(srlm_last_error(), "backend.name: cuda: the trainer / generation engine do "
                                                 "not run on device memory yet"),
                  "message: %s", srlm_last_error());
        srlm_backend_free(be);
        return;
    }
    CHECK(be == NULL);
    CHECK(st == SRLM_BAD_INPUT);
#ifdef SRLM_HAVE_CUDA
    CHECK_MSG(starts_with(msg, "backend.name: cuda: no CUDA device") && strstr(msg, "cudaGetDeviceCount"),
              "message: %s", msg);
#else
    CHECK_MSG(starts_with(msg, "backend.name: cuda: this srlm was built without the CUDA backend") &&
                  strstr(msg, "-DSRLM_CUDA=ON"),
              "message: %s", msg);
#endif
}

int main(void) {
    test_cpu();
    test_cuda();
    CHECK(strcmp(srlm_backend_kind_name(SRLM_BACKEND_CPU), "cpu") == 0);
    CHECK(strcmp(srlm_backend_kind_name(SRLM_BACKEND_CUDA), "cuda") == 0);
    srlm_backend_free(NULL); /* allowed, like free(NULL) */
    TEST_DONE();
}
