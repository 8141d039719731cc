/* MPI_RANKS: 2 */
/* The generation engine at tp = 2 gives each sample the same tokens as at
 * tp = 1 (every rank of the tp group samples from the gathered last-position
 * logits with the same per-sample draws), for the three fixture models. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "dist/topology.h"
#include "generate/engine.h"
#include "test.h"

enum { NREQ = 4, NS = 3, MAXNEW = 10 };

typedef struct { int ids[NREQ][NS][MAXNEW], n[NREQ][NS]; } collected;

static srlm_status collect(const srlm_gen_output *o, void *ctx) {
    collected *c = ctx;
    c->n[o->request][o->sample] = o->n_ids;
    memcpy(c->ids[o->request][o->sample], o->ids, sizeof(int) * (size_t)o->n_ids);
    return SRLM_OK;
}

int main(int argc, char **argv) {
    CHECK_OK(srlm_dist_init(&argc, &argv));
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const char *fx = test_env("SRLM_FIXTURES", "tests/fixtures");
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 1));
    srlm_topology topo;
    CHECK_OK(srlm_topology_new(&topo, 2, 0));
    const char *cases[] = {"tiny-gqa", "tiny-rope", "tiny-bf16"};
    for (int c = 0; c < 3; c++) {
        char dir[1024], path[1100];
        snprintf(dir, sizeof dir, "%s/llama/%s", fx, cases[c]);
        snprintf(path, sizeof path, "%s/tokenizer.model", dir);
        srlm_checkpoint ck;
        srlm_tokenizer *tok;
        CHECK_OK(srlm_ckpt_open(&ck, dir));
        CHECK_OK(srlm_tokenizer_load(&tok, path));
        int prompts[NREQ][24];
        srlm_gen_request reqs[NREQ];
        for (int r = 0; r < NREQ; r++) {
            for (int i = 0; i < 24; i++) prompts[r][i] = 3 + (int)(srlm_rng_u64(7 + r, (uint64_t)i) % 300);
            reqs[r] = (srlm_gen_request){prompts[r], 16 + 2 * r, NS, {0.8f, 0.9f, 0}, MAXNEW, 2, NULL, 0,
                                         srlm_rng_key(3, (uint64_t)r)};
        }
        srlm_gen_config gc = {5, 24 + MAXNEW, 1, 0, NULL, NULL, 0, 0};
        static collected one, two;
        memset(&one, 0, sizeof one);
        memset(&two, 0, sizeof two);
        srlm_llama m1, m2;
        CHECK_OK(srlm_llama_load(&m1, &ck, be, NULL));
        CHECK_OK(srlm_generate(&m1, tok, &gc, reqs, NREQ, collect, &one, NULL));
        CHECK_OK(srlm_llama_load(&m2, &ck, be, topo.tp_comm));
        CHECK_OK(srlm_generate(&m2, tok, &gc, reqs, NREQ, collect, &two, NULL));
        int same = !memcmp(&one, &two, sizeof one);
        CHECK_MSG(same, "%s rank %d: tokens at tp = 2 differ from tp = 1", cases[c], rank);
        if (rank == 0) printf("%s: %d requests x %d samples, tp = 2 %s tp = 1\n", cases[c], NREQ, NS,
                              same ? "identical to" : "DIFFERS from");
        srlm_llama_free(&m2);
        srlm_llama_free(&m1);
        srlm_tokenizer_free(tok);
        srlm_ckpt_close(&ck);
    }
    srlm_topology_free(&topo);
    srlm_backend_free(be);
    int failed = test_failures;
    MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    srlm_dist_finalize();
    return failed ? 1 : 0;
}
