/* Recorded steps (backend.h) on the GPU: CUDA graphs. A decode step issues
 * ~15 ops a layer, each a cuBLAS call or a kernel launch plus the host work
 * around it; measured on an H100, batch-1 decode of a 1.1B model took ~4 ms
 * a token against 0.73 ms of weight reads, the same at batch 32: the host,
 * not the GPU, set the pace. Recorded once as a graph, a step is one launch.
 *
 * Recording is stream capture of the ops as the caller issues them, with
 * three differences from running them:
 *   - the first node copies the step area (pinned host memory the caller
 *     fills before each replay) to its device copy, and an op's host array
 *     in that area is read from the device copy instead of being staged
 *     through the ring (cuda_stage asks cuda_step_array), so a replay sees
 *     the area's current contents;
 *   - anything a graph cannot hold makes the recording fail with the reason
 *     (cuda_step_refuse): a host array outside the area, results brought
 *     back to the host, a workspace that must grow first (grown when the
 *     capture has ended, so the next recording fits), any wait or
 *     allocation. Capture runs in thread-local mode, so CUDA itself refuses
 *     what is unsafe in a capture, and the recording is dropped;
 *   - nothing runs: the caller replays the step once it is kept.
 * A graph holds the addresses it was recorded with: any free, and any move of
 * a workspace or the area, bumps the epoch and drops every kept graph. */
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"

srlm_status cuda_steps_init(cuda_impl *c) {
    SRLM_CUDA_TRY(cudaEventCreateWithFlags(&c->steps.read, cudaEventDisableTiming));
    return SRLM_OK;
}

static void drop(cuda_step *s) {
    if (s->exec) cudaGraphExecDestroy(s->exec); /* one still running is freed when it ends */
    *s = (cuda_step){0};
}

void cuda_steps_close_capture(cuda_impl *c) {
    cuda_steps *st = &c->steps;
    if (!st->recording) return;
    cudaGraph_t g = NULL;
    cudaStreamEndCapture(c->stream, &g);
    if (g) cudaGraphDestroy(g);
    st->recording = 0;
    cudaGetLastError();
}

/* The memory freed during the recording that just ended: the stream is done
 * with it once it has drained (cannot report an error: as cuda_free). */
static void release_freed(cuda_impl *c) {
    cuda_steps *st = &c->steps;
    if (!st->n_freed) return;
    cudaStreamSynchronize(c->stream);
    for (int i = 0; i < st->n_freed; i++) cudaFree(st->freed[i]);
    st->n_freed = 0;
    cudaGetLastError();
}

void cuda_steps_free(cuda_impl *c, void *p) {
    cuda_steps *st = &c->steps;
    cuda_steps_moved(c); /* a recorded step may hold its address */
    if (st->recording) {
        cuda_step_refuse(c, "freeing memory");
        if (st->n_freed == st->cap_freed) {
            const int cap = st->cap_freed ? 2 * st->cap_freed : 8;
            void **grown = realloc(st->freed, sizeof *grown * (size_t)cap);
            if (!grown) return; /* leaked rather than freed under a capture */
            st->freed = grown;
            st->cap_freed = cap;
        }
        st->freed[st->n_freed++] = p;
        return;
    }
    cudaStreamSynchronize(c->stream); /* the stream may still use it */
    cudaFree(p);
    cudaGetLastError();
}

void cuda_steps_destroy(cuda_impl *c) {
    cuda_steps *st = &c->steps;
    cuda_steps_close_capture(c);
    release_freed(c);
    free(st->freed);
    for (int i = 0; i < CUDA_STEPS_KEPT; i++) drop(&st->kept[i]);
    if (st->host) cudaFreeHost(st->host);
    cudaFree(st->dev);
    if (st->read) cudaEventDestroy(st->read);
    cudaGetLastError();
}

srlm_status cuda_step_refuse(cuda_impl *c, const char *fmt, ...) {
    char msg[sizeof c->steps.why];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!c->steps.why[0]) snprintf(c->steps.why, sizeof c->steps.why, "%s", msg);
    return SRLM_ERR(SRLM_FAILED, "cuda backend: recording a step: %s", msg);
}

void *cuda_step_array(cuda_impl *c, const void *src, size_t bytes) {
    const cuda_steps *st = &c->steps;
    const char *p = src;
    if (!st->host || p < st->host || p + bytes > st->host + st->bytes) return NULL;
    const size_t off = (size_t)(p - st->host);
    return off % SRLM_STAGE_ALIGN ? NULL : st->dev + off;
}

void *cuda_step_inputs(srlm_backend *be, size_t bytes) {
    cuda_impl *c = cuda_of(be);
    cuda_steps *st = &c->steps;
    cudaError_t e;
    if (st->recording) {
        SRLM_ERR(SRLM_FAILED, "cuda backend: step_inputs while a step is being recorded");
        return NULL;
    }
    if (bytes > st->cap) {
        /* the old area may still be read by a replay; graphs hold its address */
        if ((e = cudaStreamSynchronize(c->stream)) != cudaSuccess) goto cuda_failed;
        cuda_steps_moved(c);
        /* geometric: a batch growing a row at a time moves it (and drops every
         * recording) a few times, not at each size */
        size_t cap = 2 * st->cap > bytes ? 2 * st->cap : bytes;
        if (cap < 4096) cap = 4096;
        if (st->host) cudaFreeHost(st->host);
        cudaFree(st->dev);
        st->host = st->dev = NULL;
        st->cap = st->bytes = 0;
        if ((e = cudaMallocHost((void **)&st->host, cap)) != cudaSuccess) {
            st->host = NULL;
            goto cuda_failed;
        }
        if ((e = cudaMalloc((void **)&st->dev, cap)) != cudaSuccess) {
            cudaFreeHost(st->host);
            st->host = st->dev = NULL;
            goto cuda_failed;
        }
        st->cap = cap;
    } else if ((e = cudaEventSynchronize(st->read)) != cudaSuccess) { /* the last replay has copied it */
        goto cuda_failed;
    }
    st->bytes = bytes;
    return st->host;
cuda_failed:
    cudaGetLastError();
    SRLM_ERR(SRLM_FAILED, "cuda backend: the step area of %zu bytes: %s", bytes, cudaGetErrorString(e));
    return NULL;
}

srlm_status cuda_step_begin(srlm_backend *be, uint64_t key) {
    cuda_impl *c = cuda_of(be);
    cuda_steps *st = &c->steps;
    if (st->recording) return SRLM_ERR(SRLM_FAILED, "cuda backend: step_begin while a step is being recorded");
    if (!st->bytes) return SRLM_ERR(SRLM_FAILED, "cuda backend: step_begin before step_inputs");
    st->why[0] = '\0';
    st->ws_need = 0;
    SRLM_CUDA_TRY(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    st->recording = 1;
    st->key = key;
    cudaError_t e = cudaMemcpyAsync(st->dev, st->host, st->bytes, cudaMemcpyHostToDevice, c->stream);
    if (e != cudaSuccess) {
        cudaGetLastError();
        cuda_step_end(be, 0);
        return SRLM_ERR(SRLM_FAILED, "cuda backend: recording a step: the area's copy: %s", cudaGetErrorString(e));
    }
    return SRLM_OK;
}

/* The place a new graph goes: the key's own, an empty one, or the least
 * recently replayed. */
static cuda_step *place_for(cuda_steps *st, uint64_t key) {
    cuda_step *best = &st->kept[0];
    for (int i = 0; i < CUDA_STEPS_KEPT; i++) {
        cuda_step *s = &st->kept[i];
        if (s->exec && s->key == key) return s;
        if (!s->exec) best = s;
        else if (best->exec && s->used < best->used) best = s;
    }
    return best;
}

srlm_status cuda_step_end(srlm_backend *be, int keep) {
    cuda_impl *c = cuda_of(be);
    cuda_steps *st = &c->steps;
    if (!st->recording) return SRLM_ERR(SRLM_FAILED, "cuda backend: step_end without step_begin");
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    st->recording = 0;
    cudaGetLastError(); /* a capture's errors are not sticky; the reason is kept below */
    release_freed(c);
    srlm_status grown = SRLM_OK;
    if (st->ws_need) { /* outside the capture now: the next recording finds it */
        void *ws;
        grown = cuda_workspace(be, st->ws_need, &ws);
        st->ws_need = 0;
    }
    if (!keep || e != cudaSuccess || !g || st->why[0] || grown != SRLM_OK) {
        if (g) cudaGraphDestroy(g);
        SRLM_CHECK(grown);
        if (!keep) return SRLM_OK;
        return SRLM_ERR(SRLM_FAILED, "cuda backend: the step could not be recorded: %s",
                        st->why[0] ? st->why : e != cudaSuccess ? cudaGetErrorString(e) : "the capture came back empty");
    }
    cudaGraphExec_t exec = NULL;
    e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return SRLM_ERR(SRLM_FAILED, "cuda backend: cudaGraphInstantiate of a recorded step: %s", cudaGetErrorString(e));
    }
    cuda_step *s = place_for(st, st->key);
    drop(s);
    *s = (cuda_step){st->key, st->epoch, ++st->clock, exec};
    return SRLM_OK;
}

srlm_status cuda_step_replay(srlm_backend *be, uint64_t key, int *ran) {
    cuda_impl *c = cuda_of(be);
    cuda_steps *st = &c->steps;
    *ran = 0;
    if (st->recording) return SRLM_ERR(SRLM_FAILED, "cuda backend: step_replay while a step is being recorded");
    for (int i = 0; i < CUDA_STEPS_KEPT; i++) {
        cuda_step *s = &st->kept[i];
        if (s->exec && s->epoch != st->epoch) drop(s); /* memory it used is gone */
        if (!s->exec || s->key != key) continue;
        SRLM_CUDA_TRY(cudaGraphLaunch(s->exec, c->stream));
        SRLM_CUDA_TRY(cudaEventRecord(st->read, c->stream));
        s->used = ++st->clock;
        *ran = 1;
        return SRLM_OK;
    }
    return SRLM_OK;
}
