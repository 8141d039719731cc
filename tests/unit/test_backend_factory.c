/* The backend factory (backend/factory.h): backend.name cpu gives a working CPU
 * backend; cpu_guarded the same ops on memory the host cannot touch (a host
 * read of a view faults, in a child process here); cuda gives either
 * a CUDA backend (views in device memory) or, without one, a clear error naming
 * backend.name and why: a build without the CUDA backend, or no GPU. Runs
 * without a GPU. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/factory.h"
#include "generate/sampler.h"
#include "test.h"

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* A small matmul through the ops; returns y's view (freed by the caller) in *keep. */
static void check_matmul(srlm_backend *be, srlm_view *keep) {
    /* y (2, 3) = x (2, 2) W^T, W (3, 2) */
    const float x[4] = {1, 2, 3, 4}, w[6] = {1, 0, 0, 1, 1, 1};
    float y[6];
    srlm_view vx, vw, vy = {0};
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
    *keep = vy;
}

static void test_cpu(void) {
    srlm_backend *be = NULL;
    CHECK_OK(srlm_backend_new(SRLM_BACKEND_CPU, 1, 0, &be));
    if (!be) return;
    CHECK(strcmp(be->ops->name, "cpu") == 0);
    CHECK(be->ops->host_memory == 1 && be->ops->destroy != NULL);
    srlm_view y;
    check_matmul(be, &y);
    CHECK(((const float *)y.data)[5] == 7.0f); /* host memory: readable */
    be->ops->free(be, &y);
    srlm_backend_free(be);
}

static void test_cpu_guarded(void) {
    srlm_backend *be = NULL;
    CHECK_OK(srlm_backend_new(SRLM_BACKEND_CPU_GUARDED, 1, 0, &be));
    if (!be) return;
    CHECK(strcmp(be->ops->name, "cpu_guarded") == 0 && be->ops->host_memory == 0);
    srlm_view y;
    check_matmul(be, &y);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { /* the child reads a view on the host: it must not get past the read */
        volatile float v = ((const float *)y.data)[0];
        (void)v;
        _exit(0);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    /* SIGSEGV; under ASan or valgrind their report, then a non-zero exit or the signal */
    CHECK_MSG(WIFSIGNALED(status) ? WTERMSIG(status) == SIGSEGV : WEXITSTATUS(status) != 0,
              "child status %d: expected the host read to fault", status);
    /* sampling where the logits are: greedy reads no draws (u may be NULL, as
     * the ops table says); sampling at a temperature without draws is refused.
     * y = {1 2 3; 3 4 7}: the argmax of each row is its last column. */
    srlm_sampling greedy = {0}, warm = {0};
    warm.temperature = 1.0f;
    greedy.top_p = warm.top_p = 1.0f;
    int tok[2] = {-1, -1};
    CHECK_OK(be->ops->sample(be, &y, &greedy, NULL, tok));
    CHECK_MSG(tok[0] == 2 && tok[1] == 2, "greedy tokens %d %d, expected 2 2", tok[0], tok[1]);
    CHECK(be->ops->sample(be, &y, &warm, NULL, tok) == SRLM_BAD_INPUT);
    CHECK_MSG(strstr(srlm_last_error(), "no uniform draws"), "message: %s", srlm_last_error());
    be->ops->free(be, &y);
    srlm_backend_free(be);
}

static void test_kind_names(void) {
    srlm_backend_kind k = SRLM_BACKEND_CPU;
    CHECK_OK(srlm_backend_kind_parse("cpu_guarded", &k));
    CHECK(k == SRLM_BACKEND_CPU_GUARDED);
    CHECK_OK(srlm_backend_kind_parse("cuda", &k));
    CHECK(k == SRLM_BACKEND_CUDA);
    CHECK(srlm_backend_kind_parse("gpu", &k) == SRLM_BAD_INPUT);
    CHECK_MSG(strstr(srlm_last_error(), "\"gpu\": expected cpu, cuda or cpu_guarded"), "message: %s",
              srlm_last_error());
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
    test_cpu_guarded();
    test_kind_names();
    test_cuda();
    CHECK(strcmp(srlm_backend_kind_name(SRLM_BACKEND_CPU), "cpu") == 0);
    CHECK(strcmp(srlm_backend_kind_name(SRLM_BACKEND_CUDA), "cuda") == 0);
    srlm_backend_free(NULL); /* allowed, like free(NULL) */
    TEST_DONE();
}
