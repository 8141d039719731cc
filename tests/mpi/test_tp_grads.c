/* MPI_RANKS: 4 */
/* Gradients under tp = 2 x dp = 2 equal one rank's on the same global batch:
 * the fixture batch of tests/fixtures/train/tiny-gqa (3 right-padded sequences)
 * is split unevenly over the 2 replicas (2 + 1 sequences), the SFT loss is
 * normalised by the GLOBAL target count and a DPO-like per-sequence weighting is
 * checked too; each rank's gradient shard, summed over replicas, must equal the
 * matching slice of the single-rank gradient, per tensor
 * ||g - g_ref|| / ||g_ref|| <= 1e-5 (summation order only). */
#include <cjson/cJSON.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/topology.h"
#include "model/llama_train.h"
#include "test.h"
#include "train_batch.h"


/* Gradients of loss = sum over sequences s in [s0, s1) of w_s * (sum of its
 * response log-probs), into g (zeroed first). */
static void grads_of(srlm_llama *m, const batch_data *bd, int s0, int s1, const double *w, srlm_llama_grads *g) {
    int B = s1 - s0, T = bd->T, N = B * T;
    srlm_train_acts a;
    CHECK_OK(srlm_train_acts_new(&a, m, N, 0));
    float *logp = calloc((size_t)N, sizeof(float)), *dlogp = calloc((size_t)N, sizeof(float));
    srlm_train_batch tb = {B, T, bd->ids + s0 * T, bd->len + s0, 0.0f, 0, NULL};
    CHECK_OK(srlm_llama_train_forward(m, &a, &tb, logp));
    for (int b = 0; b < B; b++)
        for (int t = bd->plen[s0 + b] - 1; t < bd->len[s0 + b] - 1; t++) dlogp[b * T + t] = (float)w[s0 + b];
    CHECK_OK(srlm_llama_grads_zero(g, m));
    CHECK_OK(srlm_llama_train_backward(m, &a, &tb, dlogp, g, 1)); /* added to the zeros */
    free(logp);
    free(dlogp);
    srlm_train_acts_free(&a, m);
}

static double rel_err(const float *got, int64_t ld_got, const float *ref, int64_t ld_ref, int64_t rows,
                      int64_t cols) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            double d = (double)got[i * ld_got + j] - ref[i * ld_ref + j];
            num += d * d;
            den += (double)ref[i * ld_ref + j] * ref[i * ld_ref + j];
        }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

int main(int argc, char **argv) {
    CHECK_OK(srlm_dist_init(&argc, &argv));
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 4) TEST_SKIP("needs 4 ranks, got %d", size);
    const char *fx = test_env("SRLM_FIXTURES", "tests/fixtures");
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/llama/tiny-gqa", fx);
    snprintf(path, sizeof path, "%s/train/tiny-gqa/batch.json", fx);
    batch_data bd = {0};
    if (!load_train_batch(path, &bd)) { fprintf(stderr, "cannot read %s\n", path); return 1; }
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 1));
    srlm_checkpoint ck;
    CHECK_OK(srlm_ckpt_open(&ck, dir));

    /* two losses: SFT (every response token weighs -1/total) and per-sequence weights */
    int total = 0;
    for (int b = 0; b < bd.B; b++) total += bd.len[b] - bd.plen[b];
    double w_sft[8], w_seq[8] = {0.37, -0.61, 0.23};
    for (int b = 0; b < bd.B; b++) w_sft[b] = -1.0 / total;
    const double *weights[2] = {w_sft, w_seq};
    const char *names[2] = {"sft", "per-sequence"};

    srlm_llama ref;
    CHECK_OK(srlm_llama_load(&ref, &ck, be, NULL));
    srlm_llama_grads gref;
    CHECK_OK(srlm_llama_grads_new(&gref, &ref, 0));
    srlm_topology topo;
    CHECK_OK(srlm_topology_new(&topo, 2, 2));
    srlm_llama m;
    CHECK_OK(srlm_llama_load(&m, &ck, be, topo.tp_comm));
    srlm_llama_grads g;
    CHECK_OK(srlm_llama_grads_new(&g, &m, 0));
    for (int k = 0; k < 2; k++) {
        grads_of(&ref, &bd, 0, bd.B, weights[k], &gref);
        /* replica 0 takes sequences 0-1, replica 1 sequence 2 */
        int s0 = topo.dp_rank == 0 ? 0 : 2, s1 = topo.dp_rank == 0 ? 2 : bd.B;
        grads_of(&m, &bd, s0, s1, weights[k], &g);
        CHECK_OK(srlm_comm_allreduce_f32(topo.dp_comm, g.flat.data, (size_t)m.n_params_local, SRLM_REDUCE_SUM));
        CHECK_OK(srlm_llama_grads_reduce_replicas(&m, &g));
        /* slices: rows of column-parallel tensors, columns of row-parallel ones */
        const int r = m.tp_rank, hd = m.head_dim;
        const int64_t qd = (int64_t)m.n_heads_local * hd, kvd = (int64_t)m.n_kv_local * hd, F = m.ffn_local;
        double worst = 0;
#define CMP(got, ref_view, row0, col0)                                                                   \
    do {                                                                                                 \
        const srlm_view *gv = &(got), *rv = &(ref_view);                                                 \
        double e = rel_err(gv->data, gv->stride, (const float *)rv->data + (row0) * rv->stride + (col0), \
                           rv->stride, gv->rows, gv->cols);                                              \
        if (!(e <= worst)) worst = e;                                                                    \
    } while (0)
        /* vocab shards: only the rows of real tokens (the rest is padding) */
        srlm_view ge = srlm_view_rows(g.embed, 0, m.cfg.vocab_size - m.vocab_start < m.vocab_local
                                                     ? m.cfg.vocab_size - m.vocab_start : m.vocab_local);
        srlm_view gl = srlm_view_rows(g.lm_head, 0, ge.rows);
        CMP(ge, gref.embed, (int64_t)m.vocab_start, 0);
        for (int l = 0; l < m.n_layers; l++) {
            const srlm_llama_layer *a = &g.layers[l], *b = &gref.layers[l];
            CMP(a->attn_norm, b->attn_norm, 0, 0);
            CMP(a->wq, b->wq, r * qd, 0);
            CMP(a->wk, b->wk, r * kvd, 0);
            CMP(a->wv, b->wv, r * kvd, 0);
            CMP(a->wo, b->wo, 0, r * qd);
            CMP(a->mlp_norm, b->mlp_norm, 0, 0);
            CMP(a->w_gate, b->w_gate, r * F, 0);
            CMP(a->w_up, b->w_up, r * F, 0);
            CMP(a->w_down, b->w_down, 0, r * F);
        }
        CMP(g.final_norm, gref.final_norm, 0, 0);
        CMP(gl, gref.lm_head, (int64_t)m.vocab_start, 0);
#undef CMP
        CHECK_MSG(worst <= 1e-5, "rank %d %s: worst tensor relative error %.3g", rank, names[k], worst);
        printf("rank %d (tp %d, dp %d) %s gradients: worst tensor relative error %.2e\n", rank, topo.tp_rank,
               topo.dp_rank, names[k], worst);
    }
    srlm_llama_grads_free(&g, &m);
    srlm_llama_free(&m);
    srlm_topology_free(&topo);
    srlm_llama_grads_free(&gref, &ref);
    srlm_llama_free(&ref);
    srlm_ckpt_close(&ck);
    srlm_backend_free(be);
    free_train_batch(&bd);
    int failed = test_failures;
    MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    srlm_dist_finalize();
    return failed ? 1 : 0;
}
