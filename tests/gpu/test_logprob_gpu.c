/* The GPU log-prob kernels (kernels/logprob.h) vs the CPU backend's
 * row_logsumexp_target, row_argmax and logprob_backward, on random logits of a
 * realistic scale (sd 3, plus a peak per row), F32 and BF16 logits, a Llama-2
 * vocab (32000) and an odd one (1000 + 7) with a row stride that breaks 16-byte
 * alignment, and a vocab-parallel shard (vocab_start > 0, targets outside it).
 * Outputs are poisoned with NaN first; a skipped row or column shows up.
 *
 * Tolerances (the same inputs reach both sides: BF16 logits are rounded to bf16
 * for the CPU too, and all math is fp32):
 *  - row max, target logit, argmax index and value: exact (no arithmetic);
 *  - sum of exp: 1e-5 relative per row. The CPU adds fp32 terms in double
 *    after finding the max, the GPU in fp32 per thread (~63 terms) with an
 *    online max (partials rescaled by exp(m_old - m_new)) and then a 9-level
 *    tree: a few 1e-7; the log-prob tl - mx - log(se): 1e-4 absolute;
 *  - backward: max over a row of |gpu - cpu| / |dlogp|. Every output is
 *    dlogp * (softmax - onehot), so |dlogp| is its scale; a norm relative to the
 *    output would not do: with a confident peak, the target's softmax - 1 cancels
 *    to ~1e-5 and one ulp of expf in the peak's probability (the GPU's expf and
 *    glibc's differ by up to 2 ulps) is then a 1e-2 relative change (seen on an
 *    H100 with 3 columns). F32: 1e-6 (a few ulps of a probability <= 1); BF16:
 *    4e-3, the outputs are rounded to bf16 (2^-9 relative each, |output| <=
 *    |dlogp|). A wrong kernel (a missing -1 at the target, a wrong max or sum)
 *    errs by order 1. Rows with dlogp == 0 exactly 0; padding columns (stride >
 *    cols) untouched.
 * Then one vocabulary split over 2 and 4 shards (run_sharded): the shards'
 * results, merged as srlm_llama_logprobs_view does at tp > 1, against the
 * one-shard CPU result. */
#include "backend/backend.h"
#include "gpu_util.h"
#include "logprob.h"

typedef struct {
    int         rows, cols, stride;
    int64_t     vocab_start;
    srlm_dtype  dtype;
} lp_case;

static void run_case(srlm_backend *be, const lp_case *c, uint64_t seed) {
    const int rows = c->rows, cols = c->cols, stride = c->stride;
    const size_t n = (size_t)rows * stride;
    const char *dn = srlm_dtype_name(c->dtype);
    float *x = malloc(n * 4);
    for (size_t i = 0; i < n; i++) x[i] = 3.0f * (float)srlm_rng_normal(seed, i);
    int *tgt = malloc(sizeof(int) * rows);
    float *dlogp = malloc(4 * (size_t)rows);
    const int tail = cols > 14 ? 7 : 0;
    for (int i = 0; i < rows; i++) {
        uint64_t h = srlm_rng_u64(seed + 1, (uint64_t)i);
        int col = (int)(h % (uint64_t)(cols - tail)); /* never in row 0's -inf tail */
        /* every third row's target lies outside this shard (below it, or past it) */
        if (i % 3 == 2)
            tgt[i] = i % 2 ? (int)c->vocab_start + cols + (int)(h % 50) : (int)c->vocab_start - 1 - (int)(h % 5);
        else
            tgt[i] = (int)c->vocab_start + col;
        x[(size_t)i * stride + col] += 12.0f; /* a confident peak, as trained models have */
        dlogp[i] = (i % 4 == 1) ? 0.0f : (float)srlm_rng_normal(seed + 2, (uint64_t)i);
    }
    /* row 0: a padded-vocab tail masked with -inf (what fill_cols does);
     * row 1: the maximum twice, the first must win the argmax */
    for (int j = cols - tail; j < cols; j++) x[j] = -INFINITY;
    if (rows > 1) {
        x[(size_t)stride + cols / 3] = 60.0f;
        x[(size_t)stride + 2 * cols / 3] = 60.0f;
    }
    round_to_dtype(x, n, c->dtype);

    /* CPU reference */
    srlm_view hv = {x, SRLM_F32, rows, cols, stride};
    float *rmx = malloc(4 * (size_t)rows), *rse = malloc(4 * (size_t)rows), *rtl = malloc(4 * (size_t)rows);
    float *rval = malloc(4 * (size_t)rows);
    int *ridx = malloc(sizeof(int) * rows);
    CHECK_OK(be->ops->row_logsumexp_target(be, &hv, tgt, c->vocab_start, rmx, rse, rtl));
    CHECK_OK(be->ops->row_argmax(be, &hv, ridx, rval));

    /* GPU */
    void *dx = gpu_from_f32(x, n, c->dtype);
    srlm_view dv = {dx, c->dtype, rows, cols, stride};
    int *dtgt = gpu_from_host(tgt, sizeof(int) * rows);
    size_t fb = 4 * (size_t)rows;
    float *dmx = gpu_poisoned(fb), *dse = gpu_poisoned(fb), *dtl = gpu_poisoned(fb), *dval = gpu_poisoned(fb);
    int *didx = gpu_poisoned(sizeof(int) * rows);
    CHECK_OK(srlm_cuda_row_logsumexp_target(&dv, dtgt, c->vocab_start, dmx, dse, dtl, NULL));
    CHECK_OK(srlm_cuda_row_argmax(&dv, didx, dval, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    float *gmx = gpu_to_f32_new(dmx, rows, SRLM_F32), *gse = gpu_to_f32_new(dse, rows, SRLM_F32);
    float *gtl = gpu_to_f32_new(dtl, rows, SRLM_F32), *gval = gpu_to_f32_new(dval, rows, SRLM_F32);
    int *gidx = malloc(sizeof(int) * rows);
    CHECK(cudaMemcpy(gidx, didx, sizeof(int) * rows, cudaMemcpyDeviceToHost) == cudaSuccess);

    double se_err = 0, logp_err = 0;
    for (int i = 0; i < rows; i++) {
        CHECK_MSG(gmx[i] == rmx[i], "%s %d cols row %d: max %.9g, cpu %.9g", dn, cols, i, gmx[i], rmx[i]);
        CHECK_MSG(gtl[i] == rtl[i], "%s %d cols row %d: target logit %.9g, cpu %.9g", dn, cols, i, gtl[i], rtl[i]);
        double e = fabs((double)gse[i] - rse[i]) / rse[i];
        se_err = e > se_err || isnan(e) ? e : se_err;
        /* the log-prob a tp = 1 caller forms */
        double lp = (double)gtl[i] - gmx[i] - log((double)gse[i]);
        double rlp = (double)rtl[i] - rmx[i] - log((double)rse[i]);
        e = fabs(lp - rlp);
        logp_err = e > logp_err || isnan(e) ? e : logp_err;
        CHECK_MSG(gidx[i] == ridx[i] && gval[i] == rval[i], "%s row %d: argmax %d (%.9g), cpu %d (%.9g)",
                  dn, i, gidx[i], gval[i], ridx[i], rval[i]);
    }
    if (rows > 1) CHECK_MSG(gidx[1] == cols / 3, "%s: tie went to column %d, expected %d", dn, gidx[1], cols / 3);
    CHECK_MSG(se_err <= 1e-5, "%s %d cols: sum-exp relative error %.3g", dn, cols, se_err);
    CHECK_MSG(logp_err <= 1e-4, "%s %d cols: log-prob abs error %.3g", dn, cols, logp_err);

    /* backward, in place, given the CPU's (i.e. the global) mx and se, so only the
     * backward kernel differs between the two sides */
    float *ref = malloc(n * 4), *got = malloc(n * 4);
    memcpy(ref, x, n * 4);
    srlm_view rv = {ref, SRLM_F32, rows, cols, stride};
    CHECK_OK(be->ops->logprob_backward(be, &rv, rmx, rse, tgt, c->vocab_start, dlogp));
    float *dgmx = gpu_from_host(rmx, fb), *dgse = gpu_from_host(rse, fb), *ddl = gpu_from_host(dlogp, fb);
    CHECK_OK(srlm_cuda_logprob_backward(&dv, dgmx, dgse, dtgt, c->vocab_start, ddl, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    gpu_to_f32(got, dx, n, c->dtype);
    double bw_err = 0;
    int pad_bad = 0, zero_bad = 0;
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
            size_t k = (size_t)i * stride + j;
            if (dlogp[i] == 0.0f) {
                if (got[k] != 0.0f) zero_bad++;
                continue;
            }
            double e = fabs((double)got[k] - ref[k]) / fabs((double)dlogp[i]);
            bw_err = e > bw_err || isnan(e) ? e : bw_err;
        }
        for (int j = cols; j < stride; j++) /* padding: the input, untouched */
            if (memcmp(&got[(size_t)i * stride + j], &x[(size_t)i * stride + j], 4)) pad_bad++;
    }
    const double bw_tol = c->dtype == SRLM_F32 ? 1e-6 : 4e-3;
    CHECK_MSG(bw_err <= bw_tol, "%s %d cols: backward error %.3g of |dlogp| (tolerance %.0e)", dn, cols, bw_err, bw_tol);
    CHECK_MSG(zero_bad == 0, "%s: %d elements of dlogp == 0 rows are not 0", dn, zero_bad);
    CHECK_MSG(pad_bad == 0, "%s: %d padding elements changed", dn, pad_bad);
    printf("%-4s %2d x %5d (stride %5d, vocab_start %6lld): sum-exp %.1e, log-prob %.1e, backward %.1e\n", dn,
           rows, cols, stride, (long long)c->vocab_start, se_err, logp_err, bw_err);

    cudaFree(dx); cudaFree(dtgt); cudaFree(dmx); cudaFree(dse); cudaFree(dtl); cudaFree(dval); cudaFree(didx);
    cudaFree(dgmx); cudaFree(dgse); cudaFree(ddl);
    free(x); free(tgt); free(dlogp); free(rmx); free(rse); free(rtl); free(rval); free(ridx);
    free(gmx); free(gse); free(gtl); free(gval); free(gidx);
    free(ref); free(got);
}

/* One vocabulary split over `shards` tp ranks, as the model calls the kernels:
 * each shard a column range of the same rows (a view at column offset j * w,
 * vocab_start j * w); the two-pass path takes the host max of the shards' maxima,
 * the fused path merges (mx_r, se_r) as se = sum_r se_r exp(mx_r - mx); both
 * must give the one-shard CPU result. Row 0's last shard is all -inf (a rank
 * holding only padding); row 1's targets sit on the shard edges. Backward per
 * shard with the global mx and se must equal the whole row's backward. */
static void run_sharded(srlm_backend *be, srlm_dtype dt, int shards, uint64_t seed) {
    const int rows = 6, w = 4000, cols = shards * w;
    const size_t n = (size_t)rows * cols;
    const char *dn = srlm_dtype_name(dt);
    float *x = malloc(n * 4), *ref = malloc(n * 4), *got = malloc(n * 4);
    int *tgt = malloc(sizeof(int) * rows);
    float *dlogp = malloc(4 * (size_t)rows);
    for (size_t i = 0; i < n; i++) x[i] = 3.0f * (float)srlm_rng_normal(seed, i);
    const int edges[] = {0, w - 1, w, cols - 1};
    for (int i = 0; i < rows; i++) {
        tgt[i] = i < 4 ? edges[i] : (int)(srlm_rng_u64(seed + 1, (uint64_t)i) % (uint64_t)(cols - w));
        x[(size_t)i * cols + tgt[i]] += 12.0f;
        dlogp[i] = (float)srlm_rng_normal(seed + 2, (uint64_t)i);
    }
    tgt[0] = 17; /* row 0's last shard is padding: its target lies elsewhere */
    for (int j = cols - w; j < cols; j++) x[j] = -INFINITY;
    round_to_dtype(x, n, dt);

    srlm_view hv = {x, SRLM_F32, rows, cols, cols};
    float *rmx = malloc(4 * rows), *rse = malloc(4 * rows), *rtl = malloc(4 * rows);
    CHECK_OK(be->ops->row_logsumexp_target(be, &hv, tgt, 0, rmx, rse, rtl));
    memcpy(ref, x, n * 4);
    srlm_view rv = {ref, SRLM_F32, rows, cols, cols};
    CHECK_OK(be->ops->logprob_backward(be, &rv, rmx, rse, tgt, 0, dlogp));

    const size_t es = srlm_dtype_size(dt), fb = 4 * (size_t)rows;
    void *dx = gpu_from_f32(x, n, dt);
    int *dtgt = gpu_from_host(tgt, sizeof(int) * rows);
    float *dmx = gpu_poisoned(fb), *dse = gpu_poisoned(fb), *dtl = gpu_poisoned(fb);
    /* each shard's (mx, se, tl), then merged as the model merges them */
    float *lmx = malloc(fb * shards), *lse = malloc(fb * shards), *ltl = malloc(fb * shards);
    float *mx = malloc(fb), *se = calloc(rows, 4), *tl = calloc(rows, 4);
    for (int r = 0; r < shards; r++) {
        srlm_view sh = {(char *)dx + (size_t)r * w * es, dt, rows, w, cols};
        CHECK_OK(srlm_cuda_row_logsumexp_target(&sh, dtgt, (int64_t)r * w, dmx, dse, dtl, NULL));
        CHECK(cudaDeviceSynchronize() == cudaSuccess);
        CHECK(cudaMemcpy(lmx + r * rows, dmx, fb, cudaMemcpyDeviceToHost) == cudaSuccess);
        CHECK(cudaMemcpy(lse + r * rows, dse, fb, cudaMemcpyDeviceToHost) == cudaSuccess);
        CHECK(cudaMemcpy(ltl + r * rows, dtl, fb, cudaMemcpyDeviceToHost) == cudaSuccess);
    }
    const int pad = (shards - 1) * rows; /* row 0 of the last shard: padding only */
    CHECK_MSG(lmx[pad] == -INFINITY && lse[pad] == 0.0f && ltl[pad] == 0.0f,
              "%s: a padding-only shard gave max %g, sum %g, target %g", dn, lmx[pad], lse[pad], ltl[pad]);
    for (int i = 0; i < rows; i++) {
        mx[i] = -INFINITY;
        for (int r = 0; r < shards; r++) mx[i] = fmaxf(mx[i], lmx[r * rows + i]);
        for (int r = 0; r < shards; r++) {
            const float m = lmx[r * rows + i];
            se[i] += m == -INFINITY ? lse[r * rows + i] : lse[r * rows + i] * expf(m - mx[i]);
            tl[i] += ltl[r * rows + i];
        }
    }
    double se_err = 0;
    for (int i = 0; i < rows; i++) {
        CHECK_MSG(mx[i] == rmx[i], "%s x%d row %d: max %.9g, cpu %.9g", dn, shards, i, mx[i], rmx[i]);
        CHECK_MSG(tl[i] == rtl[i], "%s x%d row %d: target %.9g, cpu %.9g", dn, shards, i, tl[i], rtl[i]);
        double e = fabs((double)se[i] - rse[i]) / rse[i];
        se_err = e > se_err || isnan(e) ? e : se_err;
    }
    CHECK_MSG(se_err <= 1e-5, "%s x%d shards: merged sum-exp relative error %.3g", dn, shards, se_err);

    /* backward shard by shard with the global (CPU) mx and se */
    float *dgmx = gpu_from_host(rmx, fb), *dgse = gpu_from_host(rse, fb), *ddl = gpu_from_host(dlogp, fb);
    for (int r = 0; r < shards; r++) {
        srlm_view sh = {(char *)dx + (size_t)r * w * es, dt, rows, w, cols};
        CHECK_OK(srlm_cuda_logprob_backward(&sh, dgmx, dgse, dtgt, (int64_t)r * w, ddl, NULL));
    }
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    gpu_to_f32(got, dx, n, dt);
    double bw_err = 0;
    for (size_t k = 0; k < n; k++) {
        double e = fabs((double)got[k] - ref[k]) / fabs((double)dlogp[k / cols]);
        bw_err = e > bw_err || isnan(e) ? e : bw_err;
    }
    const double bw_tol = dt == SRLM_F32 ? 1e-6 : 4e-3;
    CHECK_MSG(bw_err <= bw_tol, "%s x%d shards: backward error %.3g of |dlogp|", dn, shards, bw_err);
    printf("%-4s %d x %5d in %d shards: merged sum-exp %.1e, backward %.1e\n", dn, rows, cols, shards, se_err,
           bw_err);
    cudaFree(dx); cudaFree(dtgt); cudaFree(dmx); cudaFree(dse); cudaFree(dtl); cudaFree(dgmx); cudaFree(dgse);
    cudaFree(ddl);
    free(x); free(ref); free(got); free(tgt); free(dlogp); free(rmx); free(rse); free(rtl); free(mx); free(se);
    free(tl); free(lmx); free(lse); free(ltl);
}

int main(void) {
    gpu_skip_without_device("");
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    const lp_case cases[] = {
        {8, 32000, 32000, 0, SRLM_F32},
        {7, 1007, 1010, 0, SRLM_F32},        /* odd vocab, rows not 16-byte aligned */
        {9, 32000, 32000, 64000, SRLM_F32},  /* a vocab-parallel shard (tp rank 2) */
        {8, 32000, 32000, 0, SRLM_BF16},
        {7, 1007, 1011, 5000, SRLM_BF16},    /* odd everything, a shard */
        {1, 3, 3, 0, SRLM_F32},              /* fewer columns than a vector */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(be, &cases[i], 100 + 10 * i);
    run_sharded(be, SRLM_F32, 4, 500);
    run_sharded(be, SRLM_BF16, 2, 510);

    /* argument checks: no launch, an SRLM_BAD_INPUT naming what was expected */
    float *d = gpu_poisoned(64);
    srlm_view bad = {d, SRLM_F16, 2, 4, 4};
    CHECK(srlm_cuda_row_logsumexp_target(&bad, (int *)d, 0, d, d, d, NULL) == SRLM_BAD_INPUT);
    bad.dtype = SRLM_F32;
    bad.stride = 3;
    CHECK(srlm_cuda_row_argmax(&bad, (int *)d, d, NULL) == SRLM_BAD_INPUT);
    srlm_view empty = {d, SRLM_F32, 0, 4, 4};
    CHECK_OK(srlm_cuda_row_logsumexp_target(&empty, (int *)d, 0, d, d, d, NULL));
    cudaFree(d);
    srlm_backend_free(be);
    TEST_DONE();
}
