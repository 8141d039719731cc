/* Temperature / top-k / top-p sampling, one block per row of logits. CPU twin:
 * srlm_sample (src/generate/sampler.c), whose rules this follows.
 *
 * The fixed order of the contract is "before" = larger logit, ties by lower id
 * (exp is monotone, so that is descending probability). Every step needs only
 * the element of that order at which a prefix sum crosses a target:
 *   top-k   the k-th element            (prefix count >= k)
 *   top-p   the first element whose inclusive prefix mass reaches top_p * Z
 *   draw    the first element whose inclusive prefix mass exceeds u * Z
 * select() finds it with a radix select on a 32-bit order key of the logit,
 * most significant byte first: a histogram of the counts or masses per digit
 * over the elements still in the bucket, a scan of its 256 bins in descending
 * order to find the bin where the prefix crosses, then the next byte inside
 * that bin. After four bytes only exact ties of the logit are left, resolved
 * by ascending id with one ordered scan. Nothing is sorted, and the path is the
 * same with top-k and top-p off (top_k = 0, top_p = 1: the kept set is every
 * finite logit and the draw runs over all of them in the same order).
 *
 * Masses are summed as 64-bit fixed point (weight * 2^S, S chosen so that the
 * whole row fits in 63 bits): integer sums are exact in any order, so shared
 * atomics give the same bits on every run (deterministic) and the order of
 * additions cannot move a crossing. The rounding to fixed point (2^-S of the
 * max weight, 1 here) moves boundaries by about vocab * 2^-S, ~1e-10 relative:
 * a draw within that of a CDF boundary may pick the neighbour of the CPU's
 * token. The probability returned is w / Z in double, as on the CPU. */
#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"
#include "dtype_io.cuh"
#include "sampling.h"

using namespace dtype_io;

namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = 256;
constexpr unsigned kFull = 0xffffffffu;

struct SampleShared {
    unsigned long long hist[kWarps][kBins]; /* one histogram per warp: fewer atomic collisions */
    unsigned long long u64[kWarps];
    double f64[kWarps];
    float f32[kWarps];
    int i32[kWarps];
    unsigned long long sel_acc; /* prefix sum before the chosen bin */
    uint32_t sel_bin;
    int found, last;
};

/* The row being sampled and its weights (workspace). */
struct Row {
    const void *logits;
    int bf16, vocab;
    double *w; /* exp((logit - max) / T) of kept elements, 0 for the others */
    double scale;  /* fixed-point scale 2^S */
};

__device__ __forceinline__ float logit_at(const Row &r, int i) {
    if (r.bf16) return bf16_bits_to_f32(((const uint16_t *)r.logits)[i]);
    return ((const float *)r.logits)[i];
}

/* Larger logit -> larger key; -0 and +0 compare equal on the CPU, so they get
 * one key (ties then go by id, as there). */
__device__ __forceinline__ uint32_t order_key(float x) {
    const uint32_t u = __float_as_uint(x == 0.0f ? 0.0f : x);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

enum { kCount = 0, kMass = 1 };

/* What element i adds to a prefix sum: 1 per finite logit, or its fixed-point
 * mass. 0 = not a candidate. */
__device__ __forceinline__ unsigned long long value_at(const Row &r, int mode, int i, float x) {
    if (mode == kCount) return x != -INFINITY ? 1ull : 0ull;
    return __double2ull_rn(r.w[i] * r.scale);
}

__device__ __forceinline__ bool crosses(unsigned long long s, double target, bool strict) {
    const double d = __ull2double_rn(s);
    return strict ? d > target : d >= target;
}

/* Block reductions: a warp shuffle tree, then the warp results combined in
 * warp order by every thread. All threads get the result. */
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T *scratch) {
    for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_xor_sync(kFull, v, off));
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    v = scratch[0];
    for (int q = 1; q < kWarps; q++) v = op(v, scratch[q]);
    __syncthreads(); /* scratch free again */
    return v;
}

struct OpAdd {
    template <typename T>
    __device__ T operator()(T a, T b) const { return a + b; }
};
struct OpMaxF {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct OpMinI {
    __device__ int operator()(int a, int b) const { return a < b ? a : b; }
};
struct OpOrI {
    __device__ int operator()(int a, int b) const { return a | b; }
};

/* Exclusive prefix sum over the block in thread order. */
__device__ unsigned long long block_exclusive_scan(unsigned long long v, unsigned long long *scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    unsigned long long incl = v;
    for (int off = 1; off < 32; off <<= 1) {
        const unsigned long long t = __shfl_up_sync(kFull, incl, off);
        if (lane >= off) incl += t;
    }
    if (lane == 31) scratch[warp] = incl;
    __syncthreads();
    unsigned long long before = 0;
    for (int q = 0; q < warp; q++) before += scratch[q];
    __syncthreads();
    return before + incl - v;
}

/* The element of the fixed order at which the inclusive prefix sum of
 * value_at() first crosses target (> when strict, >= otherwise), or the last
 * candidate when rounding leaves the total short. Writes its key and id. */
__device__ void select(SampleShared &sh, const Row &r, int mode, double target, bool strict,
                       uint32_t *key_out, int *id_out) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    uint32_t prefix = 0;         /* the key bytes chosen so far */
    unsigned long long acc = 0;  /* sum over elements before the current bucket */
    for (int pass = 0; pass < 4; pass++) {
        const int shift = 24 - 8 * pass;
        unsigned long long *flat = &sh.hist[0][0];
        for (int j = tid; j < kWarps * kBins; j += kThreads) flat[j] = 0;
        __syncthreads();
        for (int i = tid; i < r.vocab; i += kThreads) {
            const float x = logit_at(r, i);
            const unsigned long long v = value_at(r, mode, i, x);
            if (!v) continue;
            const uint32_t key = order_key(x);
            if (pass > 0 && (key >> (shift + 8)) != prefix) continue;
            atomicAdd(&sh.hist[warp][(key >> shift) & (kBins - 1)], v);
        }
        __syncthreads();
        if (warp == 0) {
            /* lane l owns bins 255 - 8l .. 248 - 8l, in descending (order) order */
            unsigned long long b[8], lsum = 0;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const int bin = kBins - 1 - (lane * 8 + j);
                unsigned long long s = 0;
                for (int q = 0; q < kWarps; q++) s += sh.hist[q][bin];
                b[j] = s;
                lsum += s;
            }
            unsigned long long incl = lsum;
            for (int off = 1; off < 32; off <<= 1) {
                const unsigned long long t = __shfl_up_sync(kFull, incl, off);
                if (lane >= off) incl += t;
            }
            unsigned long long run = acc + incl - lsum, before_found = 0, before_last = 0;
            int found = -1, last = -1;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                if (!b[j]) continue;
                if (found < 0 && crosses(run + b[j], target, strict)) {
                    found = j;
                    before_found = run;
                }
                last = j;
                before_last = run;
                run += b[j];
            }
            const unsigned fm = __ballot_sync(kFull, found >= 0);
            if (fm) {
                const int l = __ffs(fm) - 1;
                if (lane == l) {
                    sh.sel_bin = (uint32_t)(kBins - 1 - (8 * l + found));
                    sh.sel_acc = before_found;
                }
            } else { /* nothing crosses (rounding): the last non-empty bin */
                const unsigned lm = __ballot_sync(kFull, last >= 0);
                const int l = 31 - __clz(lm);
                if (lane == l) {
                    sh.sel_bin = (uint32_t)(kBins - 1 - (8 * l + last));
                    sh.sel_acc = before_last;
                }
            }
        }
        __syncthreads();
        prefix = (prefix << 8) | sh.sel_bin;
        acc = sh.sel_acc;
        __syncthreads(); /* sel_* read by all before the next pass rewrites them */
    }

    /* Ties of the whole key: ascending id. Thread t scans ids [t*C, (t+1)*C) in
     * order; an exclusive scan of the per-thread sums finds the thread whose
     * range holds the crossing, which rescans its range for the element. */
    const uint32_t key = prefix;
    const int chunk = (r.vocab + kThreads - 1) / kThreads;
    const int lo = min(tid * chunk, r.vocab), hi = min(lo + chunk, r.vocab);
    unsigned long long tot = 0;
    int last = -1;
    for (int i = lo; i < hi; i++) {
        const float x = logit_at(r, i);
        const unsigned long long v = value_at(r, mode, i, x);
        if (v && order_key(x) == key) {
            tot += v;
            last = i;
        }
    }
    if (tid == 0) {
        sh.found = INT_MAX;
        sh.last = -1;
    }
    const unsigned long long before = acc + block_exclusive_scan(tot, sh.u64);  /* syncs */
    if (tot && !crosses(before, target, strict) && crosses(before + tot, target, strict)) {
        unsigned long long run = before;
        for (int i = lo; i < hi; i++) {
            const float x = logit_at(r, i);
            const unsigned long long v = value_at(r, mode, i, x);
            if (!v || order_key(x) != key) continue;
            run += v;
            if (crosses(run, target, strict)) {
                sh.found = i; /* one thread at most: the prefix is monotone */
                break;
            }
        }
    }
    if (last >= 0) atomicMax(&sh.last, last);
    __syncthreads();
    *key_out = key;
    *id_out = sh.found != INT_MAX ? sh.found : sh.last;
    __syncthreads(); /* found / last read by all before anyone reuses them */
}

/* kept = in the order, at or before the element (key, id) */
__device__ __forceinline__ bool at_or_before(uint32_t key, int i, uint32_t k, int id) {
    return key > k || (key == k && i <= id);
}

/* 64 registers (sm_80 spills 8 bytes): two blocks fit an SM when rows are many */
__global__ void __launch_bounds__(kThreads)
    sample_kernel(const char *logits, int bf16, size_t row_bytes, int vocab, float temperature, float top_p,
                  int top_k, const float *u, int *token, double *prob, double *workspace) {
    __shared__ SampleShared sh;
    const int row = blockIdx.x, tid = threadIdx.x;
    Row r;
    r.logits = logits + (size_t)row * row_bytes;
    r.bf16 = bf16;
    r.vocab = vocab;
    r.w = workspace + (size_t)row * vocab;
    /* 2^S * vocab < 2^63: the fixed-point row total fits */
    r.scale = __longlong_as_double((long long)(1023 + 62 - (32 - __clz(vocab))) << 52); /* 2^S, exact */

    /* Validate, the max and its first id, the finite count. */
    float mx = -INFINITY;
    int best = INT_MAX, nfin = 0, bad = 0;
    for (int i = tid; i < vocab; i += kThreads) {
        const float x = logit_at(r, i);
        if (x == -INFINITY) continue;
        if (!isfinite(x)) {
            bad = 1;
            continue;
        }
        nfin++;
        if (x > mx) { /* ascending i per thread: the first of equal maxima */
            mx = x;
            best = i;
        }
    }
    const float gmx = block_reduce(mx, OpMaxF(), sh.f32);
    best = block_reduce(mx == gmx ? best : INT_MAX, OpMinI(), sh.i32);
    nfin = block_reduce(nfin, OpAdd(), sh.i32);
    bad = block_reduce(bad, OpOrI(), sh.i32);
    const float ui = temperature == 0.0f ? 0.0f : u[row];
    if (bad || nfin == 0 || !(ui >= 0.0f && ui < 1.0f)) {
        if (tid == 0) {
            token[row] = -1;
            if (prob) prob[row] = 0.0;
        }
        return;
    }
    if (temperature == 0.0f) {
        if (tid == 0) {
            token[row] = best;
            if (prob) prob[row] = 1.0;
        }
        return;
    }

    /* top-k: the k-th element by count; kept = at or before it. */
    const bool use_k = top_k > 0 && top_k < nfin;
    uint32_t kkey = 0;
    int kid = INT_MAX;
    if (use_k) select(sh, r, kCount, (double)top_k, false, &kkey, &kid);

    /* Weights of the kept elements, in double as the CPU (scaling in double keeps
     * distinct logits distinct; the max has weight 1). */
    const double inv_t = 1.0 / (double)temperature, dmx = (double)gmx;
    double z = 0.0;
    unsigned long long zf = 0;
    for (int i = tid; i < vocab; i += kThreads) {
        const float x = logit_at(r, i);
        double wi = 0.0;
        if (x != -INFINITY && (!use_k || at_or_before(order_key(x), i, kkey, kid)))
            wi = exp(((double)x - dmx) * inv_t);
        r.w[i] = wi;
        z += wi;
        zf += __double2ull_rn(wi * r.scale);
    }
    z = block_reduce(z, OpAdd(), sh.f64); /* syncs: the weights are visible to the block */
    zf = block_reduce(zf, OpAdd(), sh.u64);

    /* top-p: keep through the first element whose inclusive mass reaches top_p * Z. */
    if (top_p < 1.0f) {
        uint32_t pkey;
        int pid;
        select(sh, r, kMass, (double)top_p * __ull2double_rn(zf), false, &pkey, &pid);
        z = 0.0;
        zf = 0;
        for (int i = tid; i < vocab; i += kThreads) {
            const double wi = r.w[i];
            if (wi == 0.0) continue;
            if (!at_or_before(order_key(logit_at(r, i)), i, pkey, pid)) {
                r.w[i] = 0.0;
                continue;
            }
            z += wi;
            zf += __double2ull_rn(wi * r.scale);
        }
        z = block_reduce(z, OpAdd(), sh.f64);
        zf = block_reduce(zf, OpAdd(), sh.u64);
    }

    /* Inverse CDF: the first element whose inclusive mass exceeds u * Z. */
    uint32_t dkey;
    int did;
    select(sh, r, kMass, (double)ui * __ull2double_rn(zf), true, &dkey, &did);
    if (tid == 0) {
        token[row] = did;
        if (prob) prob[row] = r.w[did] / z;
    }
}

}  // namespace

extern "C" size_t srlm_cuda_sample_workspace(int rows, int vocab) {
    if (rows <= 0 || vocab <= 0) return 0;
    return (size_t)rows * (size_t)vocab * sizeof(double);
}

extern "C" srlm_status srlm_cuda_sample(const srlm_view *logits, const srlm_sampling *cfg, const float *u,
                                        int *token, double *prob, void *workspace, void *stream) {
    if (!logits || !cfg || !token) return SRLM_ERR(SRLM_BAD_INPUT, "cuda sample: no logits, settings or output");
    /* srlm_sampling_validate's rules, checked here so the kernels need nothing of srlmlib but errors */
    if (!(cfg->temperature >= 0.0f) || !isfinite(cfg->temperature))
        return SRLM_ERR(SRLM_BAD_INPUT, "sampling: temperature %g must be finite and >= 0",
                        (double)cfg->temperature);
    if (!(cfg->top_p > 0.0f && cfg->top_p <= 1.0f))
        return SRLM_ERR(SRLM_BAD_INPUT, "sampling: top_p %g must be in (0, 1]", (double)cfg->top_p);
    if (cfg->top_k < 0) return SRLM_ERR(SRLM_BAD_INPUT, "sampling: top_k %d must be >= 0 (0 = off)", cfg->top_k);
    if (logits->dtype != SRLM_F32 && logits->dtype != SRLM_BF16)
        return SRLM_ERR(SRLM_BAD_INPUT, "cuda sample: logits dtype %s (F32 or BF16)", srlm_dtype_name(logits->dtype));
    if (logits->cols <= 0 || logits->cols > (1 << 30) || logits->rows < 0 || logits->rows > INT_MAX ||
        logits->stride < logits->cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "cuda sample: bad logits view %lld x %lld (stride %lld)",
                        (long long)logits->rows, (long long)logits->cols, (long long)logits->stride);
    if (logits->rows == 0) return SRLM_OK;
    if (cfg->temperature != 0.0f && (!u || !workspace))
        return SRLM_ERR(SRLM_BAD_INPUT, "cuda sample: sampling needs the draws u and a workspace");
    const size_t row_bytes = (size_t)logits->stride * srlm_dtype_size(logits->dtype);
    sample_kernel<<<(unsigned)logits->rows, kThreads, 0, (cudaStream_t)stream>>>(
        (const char *)logits->data, logits->dtype == SRLM_BF16, row_bytes, (int)logits->cols, cfg->temperature,
        cfg->top_p, cfg->top_k, u, token, prob, (double *)workspace);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}
