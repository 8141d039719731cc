/* GPU sampling (kernels/sampling.cu) vs its CPU twin srlm_sample on random rows of
 * logits: vocab 32000 and 1007 (odd, with a padded row stride), fp32 and bf16 (the
 * CPU gets the bf16 values widened), greedy and several temperature / top-k / top-p
 * settings, rows with ties, signed zeros and -inf entries, u from
 * srlm_sample_uniform. Skipped without a GPU.
 *
 * Tolerances. The token must equal srlm_sample's on every row, except where the
 * draw u lies within 1e-6 of a CDF boundary of the CPU's final distribution, or
 * top_p within 1e-6 of one of the distribution before top-p: there the two sides
 * may round a prefix sum differently (the GPU sums masses in 2^-47 fixed point, the
 * CPU in double in partition order; both errors are ~1e-10) and legitimately pick
 * the neighbour. Those rows are counted and reported, not failed. The probability
 * must be within 1e-9 of the CPU's (w / z in double on both sides; only the order
 * of z's additions differs, ~1e-15). Bad rows (NaN, +inf, all -inf) must give -1.
 * Outputs are poisoned before each run (tokens 0x80808080, which no path writes,
 * since -1 is a legitimate answer; probabilities NaN), and a second run must
 * give the same bits (the kernel is deterministic). */
#include "backend/backend.h"
#include "generate/sampler.h"
#include "gpu_util.h"
#include "sampling.h"

#define ROWS 48

static int boundary_rows = 0, compared_rows = 0;

/* Row r of a test matrix: normal logits at one of three spreads, sometimes
 * rounded to halves (many exact ties), a few -inf, a few signed zeros. */
static void fill_row(float *x, int vocab, uint64_t seed, int r) {
    const double spread = r % 3 == 0 ? 1.0 : r % 3 == 1 ? 3.0 : 10.0;
    for (int i = 0; i < vocab; i++) {
        float v = (float)(srlm_rng_normal(seed * 1000 + (uint64_t)r, (uint64_t)i) * spread);
        if (r % 4 == 1) v = roundf(v * 2.0f) / 2.0f;
        if (i % 97 == 3) v = -INFINITY;
        if (r % 5 == 2 && i % 50 == 0) v = (i / 50) % 2 ? 0.0f : -0.0f;
        x[i] = v;
    }
}

/* Is u within tol of a boundary of the CPU's final CDF, or top_p of one of the
 * CDF before top-p? (Then the GPU may pick the neighbouring token.) */
static int near_boundary(srlm_sampler *s, const float *x, int vocab, const srlm_sampling *cfg, float u,
                         int *ids, double *probs) {
    const double tol = 1e-6;
    int n = 0;
    double c = 0.0;
    if (srlm_sample_distribution(s, x, vocab, cfg, ids, probs, &n) == SRLM_OK)
        for (int j = 0; j < n; j++) {
            c += probs[j];
            if (fabs(c - (double)u) < tol) return 1;
        }
    if (cfg->top_p < 1.0f) {
        srlm_sampling all = *cfg;
        all.top_p = 1.0f;
        c = 0.0;
        if (srlm_sample_distribution(s, x, vocab, &all, ids, probs, &n) == SRLM_OK)
            for (int j = 0; j < n; j++) {
                c += probs[j];
                if (fabs(c - (double)cfg->top_p) < tol) return 1;
            }
    }
    return 0;
}

static void run_case(int vocab, int stride, srlm_dtype dt, const srlm_sampling *cfg, uint64_t seed) {
    const size_t esz = srlm_dtype_size(dt);
    float *x = malloc((size_t)ROWS * stride * 4);
    uint16_t *xb = malloc((size_t)ROWS * stride * 2);
    float u[ROWS];
    for (int r = 0; r < ROWS; r++) {
        float *row = x + (size_t)r * stride;
        fill_row(row, vocab, seed, r);
        for (int i = vocab; i < stride; i++) row[i] = NAN; /* padding: must never be read */
        if (dt == SRLM_BF16)  /* the CPU sees exactly the bf16 values */
            for (int i = 0; i < stride; i++) {
                xb[(size_t)r * stride + i] = srlm_f32_to_bf16(row[i]);
                row[i] = srlm_bf16_to_f32(xb[(size_t)r * stride + i]);
            }
        u[r] = srlm_sample_uniform(seed, (uint64_t)r, 7);
    }
    /* Three rows the kernel must refuse: a NaN, a +inf, nothing finite. */
    const int bad_nan = 5, bad_inf = 17, bad_empty = ROWS - 1;
    x[(size_t)bad_nan * stride + vocab / 2] = NAN;
    x[(size_t)bad_inf * stride + vocab - 1] = INFINITY;
    for (int i = 0; i < vocab; i++) x[(size_t)bad_empty * stride + i] = -INFINITY;
    if (dt == SRLM_BF16)
        for (int r = 0; r < ROWS; r++)
            for (int i = 0; i < vocab; i++) xb[(size_t)r * stride + i] = srlm_f32_to_bf16(x[(size_t)r * stride + i]);

    const size_t wsb = srlm_cuda_sample_workspace(ROWS, vocab);
    void *dx = gpu_from_host(dt == SRLM_BF16 ? (void *)xb : (void *)x, (size_t)ROWS * stride * esz);
    void *dws = gpu_alloc(wsb);
    float *du = gpu_from_host(u, sizeof u);
    int *dtok = gpu_alloc(ROWS * sizeof(int));
    double *dprob = gpu_alloc(ROWS * sizeof(double));
    srlm_view v = {dx, dt, ROWS, vocab, stride};

    int tok[2][ROWS];
    double prob[2][ROWS];
    for (int run = 0; run < 2; run++) {
        CHECK(cudaMemset(dtok, 0x80, ROWS * sizeof(int)) == cudaSuccess);
        CHECK(cudaMemset(dprob, 0xff, ROWS * sizeof(double)) == cudaSuccess);
        CHECK(cudaMemset(dws, 0xff, wsb) == cudaSuccess); /* stale workspace must not matter */
        CHECK_OK(srlm_cuda_sample(&v, cfg, du, dtok, dprob, dws, NULL));
        CHECK(cudaDeviceSynchronize() == cudaSuccess);
        CHECK(cudaMemcpy(tok[run], dtok, sizeof tok[run], cudaMemcpyDeviceToHost) == cudaSuccess);
        CHECK(cudaMemcpy(prob[run], dprob, sizeof prob[run], cudaMemcpyDeviceToHost) == cudaSuccess);
    }
    CHECK_MSG(memcmp(tok[0], tok[1], sizeof tok[0]) == 0 && memcmp(prob[0], prob[1], sizeof prob[0]) == 0,
              "vocab %d: two runs differ", vocab);

    srlm_sampler *s = NULL;
    CHECK_OK(srlm_sampler_new(&s, vocab));
    int *ids = malloc((size_t)vocab * sizeof(int));
    double *probs = malloc((size_t)vocab * sizeof(double));
    int boundary = 0, failed = 0;
    for (int r = 0; r < ROWS; r++) {
        const float *row = x + (size_t)r * stride;
        int t = -1;
        double p = 0.0;
        srlm_status st = srlm_sample(s, row, vocab, cfg, u[r], &t, &p);
        if (r == bad_nan || r == bad_inf || r == bad_empty) {
            CHECK_MSG(st != SRLM_OK, "row %d: the CPU accepted a bad row", r);
            CHECK_MSG(tok[0][r] == -1 && prob[0][r] == 0.0, "vocab %d row %d (bad): gpu token %d prob %g",
                      vocab, r, tok[0][r], prob[0][r]);
            continue;
        }
        CHECK_OK(st);
        compared_rows++;
        if (tok[0][r] == t && fabs(prob[0][r] - p) <= 1e-9) continue;
        if (near_boundary(s, row, vocab, cfg, u[r], ids, probs)) {
            boundary++;
            continue;
        }
        failed++;
        CHECK_MSG(0, "vocab %d %s T %g top_p %g top_k %d row %d u %.9g: gpu %d (p %.12g) cpu %d (p %.12g)",
                  vocab, srlm_dtype_name(dt), (double)cfg->temperature, (double)cfg->top_p, cfg->top_k, r,
                  (double)u[r], tok[0][r], prob[0][r], t, p);
    }
    boundary_rows += boundary;
    printf("vocab %5d stride %5d %-4s T %-4g top_p %-5g top_k %-5d: %d rows, %d failed, %d near a boundary\n",
           vocab, stride, srlm_dtype_name(dt), (double)cfg->temperature, (double)cfg->top_p, cfg->top_k,
           ROWS - 3, failed, boundary);
    srlm_sampler_free(s);
    free(ids); free(probs); free(x); free(xb);
    cudaFree(dx); cudaFree(dws); cudaFree(du); cudaFree(dtok); cudaFree(dprob);
}

int main(void) {
    gpu_skip_without_device("");
    const srlm_sampling cfgs[] = {
        {0.0f, 1.0f, 0},    /* greedy */
        {1.0f, 1.0f, 0},    /* everything kept: the inverse CDF over the whole row */
        {0.7f, 0.9f, 0},    /* top-p alone */
        {1.0f, 1.0f, 50},   /* top-k alone */
        {1.3f, 0.95f, 40},  /* both */
        {0.5f, 0.5f, 0},
        {2.0f, 1.0f, 1},    /* top-k 1: the argmax */
        {1.0f, 0.999f, 0},  /* top-p keeping almost everything */
        {1.0f, 1.0f, 999},  /* top-k near the vocab size */
    };
    const int vocabs[][2] = {{32000, 32000}, {1007, 1024}};
    for (int vi = 0; vi < 2; vi++)
        for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++)
            for (int d = 0; d < 2; d++)
                run_case(vocabs[vi][0], vocabs[vi][1], d ? SRLM_BF16 : SRLM_F32, &cfgs[c],
                         100 + 10 * (uint64_t)vi + c);

    /* settings the CPU's validation refuses are refused here too */
    srlm_view v = {NULL, SRLM_F32, 1, 10, 10};
    const srlm_sampling bad[] = {{-1.0f, 1.0f, 0}, {1.0f, 0.0f, 0}, {1.0f, 1.5f, 0}, {1.0f, 1.0f, -2}};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++)
        CHECK(srlm_cuda_sample(&v, &bad[b], NULL, (int *)1, NULL, NULL, NULL) == SRLM_BAD_INPUT);
    printf("%d rows compared, %d within 1e-6 of a CDF boundary (not compared)\n", compared_rows, boundary_rows);
    TEST_DONE();
}
