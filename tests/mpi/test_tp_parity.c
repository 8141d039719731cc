/* MPI_RANKS: 4 */
/* Tensor-parallel forward equals tp = 1: for every fixture model and tp = 2, 4
 * (dp = 4 / tp), each rank's vocab shard of the logits equals the matching
 * columns of the single-rank logits, padded vocab columns are -inf, the
 * vocab-parallel log-probs (max, sum of exp and target combined by allreduce;
 * logits never gathered) and greedy argmax match. Tolerance, norm-wise as
 * DESIGN.md's contract says: ||a - b|| / ||b|| <= 1e-5 (the row-parallel sums
 * change order only: measured ~1e-7; the fixtures' logits reach |30|, so the
 * largest absolute differences are ~3e-5, also printed). tiny-gqa at tp = 4 and tiny-bf16 at tp = 2, 4
 * have fewer KV heads than ranks: the replicated-KV-head path. Prints the
 * per-rank share of the weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "dist/topology.h"
#include "model/llama.h"
#include "test.h"

enum { B = 3, T = 11 };

static void run_case(const char *fx, const char *name, srlm_backend *be, int world_rank) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/llama/%s", fx, name);
    srlm_checkpoint ck;
    CHECK_OK(srlm_ckpt_open(&ck, dir));
    srlm_llama ref;
    CHECK_OK(srlm_llama_load(&ref, &ck, be, NULL));
    const int V = ref.cfg.vocab_size, N = B * T;
    int ids[B * T], slot[B], past[B], len[B], targets[B * T];
    for (int b = 0; b < B; b++) { slot[b] = b; past[b] = 0; len[b] = T - 3 * b; }
    for (int i = 0; i < N; i++) ids[i] = (int)(srlm_rng_u64(5, (uint64_t)i) % (uint64_t)V);
    for (int i = 0; i < N; i++) targets[i] = ids[(i + 1) % N];
    srlm_batch batch = {B, T, ids, slot, past, len, 0};

    srlm_kv_cache kv;
    srlm_llama_acts a;
    CHECK_OK(srlm_kv_cache_new(&kv, &ref, B, T));
    CHECK_OK(srlm_llama_acts_new(&a, &ref, N, N));
    CHECK_OK(srlm_llama_forward(&ref, &kv, &a, &batch));
    float *full = malloc(sizeof(float) * (size_t)N * ref.vocab_local), ref_lp[B * T];
    int ref_arg[B * T];
    CHECK_OK(be->ops->download(be, full, &a.logits));
    CHECK_OK(srlm_llama_logprobs(&ref, &a, targets, N, ref_lp));
    CHECK_OK(srlm_llama_argmax(&ref, &a, N, ref_arg));
    const int64_t full_cols = ref.vocab_local, full_params = ref.n_params_local;
    srlm_llama_acts_free(&a, be);
    srlm_kv_cache_free(&kv, be);
    srlm_llama_free(&ref);

    for (int tp = 2; tp <= 4; tp *= 2) {
        srlm_topology topo;
        CHECK_OK(srlm_topology_new(&topo, tp, 0));
        srlm_llama m;
        CHECK_OK(srlm_llama_load(&m, &ck, be, topo.tp_comm));
        CHECK_OK(srlm_kv_cache_new(&kv, &m, B, T));
        CHECK_OK(srlm_llama_acts_new(&a, &m, N, N));
        CHECK_OK(srlm_llama_forward(&m, &kv, &a, &batch));
        float *part = malloc(sizeof(float) * (size_t)N * m.vocab_local), lp[B * T];
        int arg[B * T];
        CHECK_OK(be->ops->download(be, part, &a.logits));
        double worst = 0, num = 0, den = 0;
        int pad_ok = 1;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < len[b]; t++) {
                int r = b * T + t;
                for (int j = 0; j < m.vocab_local; j++) {
                    int g = m.vocab_start + j;
                    float got = part[(size_t)r * m.vocab_local + j];
                    if (g >= V) { pad_ok &= isinf(got) && got < 0; continue; }
                    double want = full[(size_t)r * full_cols + g], d = fabs(got - want);
                    if (!(d <= worst)) worst = d;
                    num += d * d;
                    den += want * want;
                }
            }
        CHECK_OK(srlm_llama_logprobs(&m, &a, targets, N, lp));
        CHECK_OK(srlm_llama_argmax(&m, &a, N, arg));
        double worst_lp = 0, num_lp = 0, den_lp = 0;
        int same_arg = 1;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < len[b]; t++) {
                int r = b * T + t;
                double d = fabs(lp[r] - ref_lp[r]);
                if (!(d <= worst_lp)) worst_lp = d;
                num_lp += d * d;
                den_lp += (double)ref_lp[r] * ref_lp[r];
                same_arg &= arg[r] == ref_arg[r];
            }
        double rel = den > 0 ? sqrt(num / den) : sqrt(num), rel_lp = sqrt(num_lp / den_lp);
        CHECK_MSG(rel <= 1e-5, "%s tp=%d rank %d: logits relative error %.3g", name, tp, world_rank, rel);
        CHECK_MSG(rel_lp <= 1e-5, "%s tp=%d rank %d: log-prob relative error %.3g", name, tp, world_rank, rel_lp);
        CHECK_MSG(pad_ok, "%s tp=%d rank %d: padded vocab columns are not -inf", name, tp, world_rank);
        CHECK_MSG(same_arg, "%s tp=%d rank %d: greedy argmax differs", name, tp, world_rank);
        if (world_rank < tp)
            printf("%s tp=%d rank %d: vocab [%d, %d) of %d, %lld of %lld weights here (%.2f), max |dlogit| %.1e, "
                   "max |dlogp| %.1e, relative %.1e / %.1e\n", name, tp, world_rank, m.vocab_start,
                   m.vocab_start + m.vocab_local, V, (long long)m.n_params_local, (long long)full_params,
                   (double)m.n_params_local / (double)full_params, worst, worst_lp, rel, rel_lp);
        free(part);
        srlm_llama_acts_free(&a, be);
        srlm_kv_cache_free(&kv, be);
        srlm_llama_free(&m);
        srlm_topology_free(&topo);
    }
    free(full);
    srlm_ckpt_close(&ck);
}

int main(int argc, char **argv) {
    CHECK_OK(srlm_dist_init(&argc, &argv));
    int rank = 0;
    srlm_topology world;
    CHECK_OK(srlm_topology_new(&world, 1, 0));
    rank = world.world_rank;
    srlm_topology_free(&world);
    const char *fx = test_env("SRLM_FIXTURES", "tests/fixtures");
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 1));
    const char *cases[] = {"tiny-gqa", "tiny-rope", "tiny-bf16"};
    for (int i = 0; i < 3; i++) run_case(fx, cases[i], be, rank);
    srlm_backend_free(be);
    int failed = test_failures;
    srlm_dist_finalize();
    if (failed) fprintf(stderr, "rank %d: %d check(s) failed\n", rank, failed);
    return failed ? 1 : 0;
}
