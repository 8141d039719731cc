/* GPU token embedding (kernels/embedding.h) vs the CPU backend's embedding and
 * embedding_backward, on a vocab shard (vocab_start > 0) with ids below, inside
 * (repeated) and past it, F32 and BF16 tables, padded rows.
 *
 * Both are exact:
 *  - forward: a row copy (zeros outside the shard), bit for bit;
 *  - backward: both sides add a table row's dx rows in increasing token order,
 *    in fp32, starting from the table's value, so F32 results are bit-identical;
 *    a BF16 dtable is the CPU's fp32 result rounded once to bf16 (the inputs
 *    rounded to bf16 for the CPU too); an F32 dtable with BF16 dx is exact.
 * Table rows no token touches must keep their values (compared too). */
#include "backend/backend.h"
#include "embedding.h"
#include "gpu_util.h"

/* tdt: the table's (and out's) dtype; xdt: dx's dtype in the backward */
static void run_case(srlm_backend *be, int vocab, int cols, int tstride, int n, int64_t vocab_start,
                     srlm_dtype tdt, srlm_dtype xdt, uint64_t seed) {
    const char *tn = srlm_dtype_name(tdt), *xn = srlm_dtype_name(xdt);
    const int xstride = cols + 3;
    const size_t tn_el = (size_t)vocab * tstride, xn_el = (size_t)n * xstride;
    float *table = random_f32(tn_el, seed, 0.0f, 1.0f, tdt), *dx = random_f32(xn_el, seed + 1, 0.0f, 1.0f, xdt);
    /* ids: a quarter outside the shard (either side), the rest from a small set
     * of rows so that many repeat */
    int *ids = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) {
        uint64_t h = srlm_rng_u64(seed + 2, (uint64_t)i);
        if (i % 4 == 3) ids[i] = i % 8 == 3 ? (int)(vocab_start - 1 - (int64_t)(h % 100)) : (int)(vocab_start + vocab + (int64_t)(h % 100));
        else ids[i] = (int)(vocab_start + (int64_t)(h % (uint64_t)(vocab / 4 + 1)));
    }
    ids[0] = (int)vocab_start;             /* the shard's first row */
    ids[1] = (int)(vocab_start + vocab - 1); /* and its last */

    /* forward */
    float *ref = malloc((size_t)n * cols * 4), *got = malloc((size_t)n * cols * 4);
    srlm_view ht = {table, SRLM_F32, vocab, cols, tstride}, ho = {ref, SRLM_F32, n, cols, cols};
    CHECK_OK(be->ops->embedding(be, &ho, &ht, ids, n, vocab_start));
    void *dtab = gpu_from_f32(table, tn_el, tdt), *dout = gpu_poisoned((size_t)n * cols * srlm_dtype_size(tdt));
    int *dids = gpu_from_host(ids, sizeof(int) * n);
    srlm_view vt = {dtab, tdt, vocab, cols, tstride}, vo = {dout, tdt, n, cols, cols};
    CHECK_OK(srlm_cuda_embedding(&vo, &vt, dids, n, vocab_start, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    gpu_to_f32(got, dout, (size_t)n * cols, tdt);
    int bad = count_bit_diffs(got, ref, n, cols, cols);
    CHECK_MSG(bad == 0, "embedding %s: %d elements differ from the CPU", tn, bad);

    /* backward: group the in-shard rows by table row, increasing i within a group
     * (a counting sort, stable) */
    int *count = calloc((size_t)vocab + 1, sizeof(int)), *rows = malloc(sizeof(int) * n);
    int *start = malloc(sizeof(int) * (n + 1)), *trow = malloc(sizeof(int) * n), *fill = malloc(sizeof(int) * vocab);
    int m = 0, n_groups = 0;
    for (int i = 0; i < n; i++) {
        int64_t r = (int64_t)ids[i] - vocab_start;
        if (r >= 0 && r < vocab) count[r + 1]++, m++;
    }
    for (int r = 0; r < vocab; r++) count[r + 1] += count[r];
    memcpy(fill, count, sizeof(int) * vocab);
    for (int i = 0; i < n; i++) {
        int64_t r = (int64_t)ids[i] - vocab_start;
        if (r >= 0 && r < vocab) rows[fill[r]++] = i;
    }
    for (int r = 0; r < vocab; r++)
        if (count[r + 1] > count[r]) start[n_groups] = count[r], trow[n_groups++] = r;
    start[n_groups] = m;

    float *rtab = malloc(tn_el * 4), *gtab = malloc(tn_el * 4);
    memcpy(rtab, table, tn_el * 4);
    srlm_view hrt = {rtab, SRLM_F32, vocab, cols, tstride}, hdx = {dx, SRLM_F32, n, cols, xstride};
    CHECK_OK(be->ops->embedding_backward(be, &hrt, &hdx, ids, n, vocab_start));
    round_to_dtype(rtab, tn_el, tdt); /* one rounding of the fp32 sums */
    void *ddx = gpu_from_f32(dx, xn_el, xdt);
    int *drows = gpu_from_host(rows, sizeof(int) * (m ? m : 1)), *dstart = gpu_from_host(start, sizeof(int) * (n_groups + 1));
    int *dtrow = gpu_from_host(trow, sizeof(int) * (n_groups ? n_groups : 1));
    srlm_view vdx = {ddx, xdt, n, cols, xstride};
    CHECK_OK(srlm_cuda_embedding_backward(&vt, &vdx, drows, dstart, dtrow, n_groups, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    gpu_to_f32(gtab, dtab, tn_el, tdt);
    int bad_bw = count_bit_diffs(gtab, rtab, vocab, cols, tstride);
    CHECK_MSG(bad_bw == 0, "embedding_backward %s table, %s dx: %d elements differ from the CPU", tn, xn, bad_bw);
    printf("embedding %-4s table %4d x %4d, %3d ids (%d in shard, %d table rows): forward %d, "
           "backward (%s dx) %d elements differ\n", tn, vocab, cols, n, m, n_groups, bad, xn, bad_bw);

    cudaFree(dtab); cudaFree(dout); cudaFree(dids); cudaFree(ddx); cudaFree(drows); cudaFree(dstart);
    cudaFree(dtrow);
    free(table); free(dx); free(ids); free(ref); free(got); free(count); free(rows); free(start);
    free(trow); free(fill); free(rtab); free(gtab);
}

int main(void) {
    gpu_skip_without_device("");
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    run_case(be, 500, 256, 256, 200, 1000, SRLM_F32, SRLM_F32, 700);
    run_case(be, 257, 100, 104, 97, 32000, SRLM_F32, SRLM_BF16, 710);
    run_case(be, 500, 4096, 4096, 64, 0, SRLM_BF16, SRLM_BF16, 720);
    run_case(be, 333, 77, 80, 150, 333, SRLM_BF16, SRLM_F32, 730);

    /* argument checks */
    float *p = gpu_poisoned(64);
    srlm_view a = {p, SRLM_F32, 2, 4, 4}, b = {p, SRLM_BF16, 2, 4, 4}, c = {p, SRLM_F32, 2, 3, 4};
    CHECK(srlm_cuda_embedding(&a, &b, (const int *)p, 2, 0, NULL) == SRLM_BAD_INPUT); /* dtypes */
    CHECK(srlm_cuda_embedding(&a, &c, (const int *)p, 2, 0, NULL) == SRLM_BAD_INPUT); /* cols */
    CHECK(srlm_cuda_embedding(&a, &a, (const int *)p, 3, 0, NULL) == SRLM_BAD_INPUT); /* n > rows */
    CHECK(srlm_cuda_embedding_backward(&a, &c, (const int *)p, (const int *)p, (const int *)p, 1, NULL) ==
          SRLM_BAD_INPUT);
    cudaFree(p);
    srlm_backend_free(be);
    TEST_DONE();
}
