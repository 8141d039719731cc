/* MPI_RANKS: 4 */
/* Distributed training equals one rank: 5 SFT steps and 5 DPO steps of the
 * tiny-gqa fixture at (tp, dp) = (2, 2), (1, 4) and (4, 1) (tp = 4 > 2 KV heads:
 * replicated KV heads) against the same runs on rank 0 alone. ZeRO-1 shards the
 * optimizer over dp with the flat buffer padded (the parameter count is not a
 * multiple of 4), clipping and weight decay are on.
 * Tolerance: the runs differ only in summation order (row-parallel and dp
 * reductions; the gradients themselves agree to ~1e-6, see test_tp_grads.c),
 * but Adam's first steps move every element by ~lr whatever its gradient's
 * size, so an element whose gradient is ~0 can move by up to ~2 lr differently
 * (DESIGN.md: compare weight deltas relative to the learning rate). Per tensor:
 * the RMS of w - w_ref <= 0.05 lr (a wrong shard, a missed update or a misplaced
 * slice moves a whole tensor by ~lr) and every element within 2 lr; the final
 * loss within 1e-3 relative. Measured: SFT RMS <= 0.002 lr; DPO at tp > 1 up to
 * 0.03 lr in one tensor (its first step moves every element by lr while many
 * gradients there are ~1e-9: the update's sign follows rounding).
 * Also: the tp = 2 x dp = 2 checkpoint reloads at tp = 1 and at tp = 2 with the
 * same log-probs (<= 1e-5); (tp, dp) = (2, 2) with micro-batches capped by
 * tokens (micro_batch_tokens: one example or pair of these at a time instead
 * of 2; the replicas' counts of micro-batches may differ, as nothing crosses
 * replicas inside the loop over them) trains the same model within the same
 * tolerance. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "dist/topology.h"
#include "model/llama.h"
#include "test.h"
#include "train/trainer.h"
#include "weights_check.h"

#define LR 0.002

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) { fputs(text, f); fclose(f); }
}

/* capped: micro_batch_tokens at max_seq_len (SFT) and 2 x max_seq_len (DPO,
 * 2 pairs a micro-batch but for the cap), max_seq_len 64 (above every example
 * here: 56 tokens at most, a pair 92) */
static char *const k_capped[] = {"train.sft.max_seq_len=64", "train.sft.micro_batch_tokens=64",
                                 "train.dpo.max_seq_len=64", "train.dpo.micro_batch_tokens=128",
                                 "train.dpo.micro_batch_size=2"};

static void load_config(srlm_config *c, const char *tmp, const char *model, const char *name, int tp, int dp,
                        int capped) {
    char yaml[4096];
    snprintf(yaml, sizeof yaml,
             "run: {name: %s, out_dir: %s/runs, seed: 5}\n"
             "model: {path: %s, dtype: float32}\n"
             "parallel: {tp: %d, dp: %d}\n"
             "backend: {threads: 1}\n"
             "train:\n"
             "  sft: {data: %s/sft.jsonl, lr: %g, lr_min: 0.0002, batch_size: 6, micro_batch_size: 2, epochs: 5,\n"
             "        dropout: 0.0, grad_clip: 1.0, weight_decay: 0.1, warmup_steps: 1}\n"
             "  dpo: {data: %s/pairs.jsonl, lr: %g, lr_min: 0.0002, batch_size: 4, micro_batch_size: 1, epochs: 5,\n"
             "        dropout: 0.0, grad_clip: 1.0, beta: 0.1}\n",
             name, tmp, model, tp, dp, tmp, LR, tmp, LR);
    CHECK_OK(srlm_config_load_text(c, "test config", yaml, capped ? 5 : 0, capped ? k_capped : NULL));
}

static void run(const char *tmp, const char *model, const char *name, int tp, int dp, int capped,
                const srlm_topology *topo) {
    srlm_config c;
    load_config(&c, tmp, model, name, tp, dp, capped);
    for (int k = 0; k < 2; k++) {
        char out[1200];
        snprintf(out, sizeof out, "%s/runs/%s/%s", tmp, name, k ? "dpo" : "sft");
        srlm_train_job job = {k ? SRLM_TRAIN_DPO : SRLM_TRAIN_SFT, k ? c.train.dpo.data : c.train.sft.data, out,
                              0, 1, topo};
        CHECK_OK(srlm_train(&c, &job));
    }
    srlm_config_free(&c);
}

static double last_loss(const char *metrics) {
    FILE *f = fopen(metrics, "r");
    char line[1024];
    double loss = NAN;
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"loss\": ");
        if (p) loss = strtod(p + 8, NULL);
    }
    if (f) fclose(f);
    return loss;
}

/* Log-probs of fixed ids under a checkpoint loaded with this tp communicator. */
static void logprobs_of(const char *dir, srlm_comm *tp, srlm_backend *be, float *lp, int n) {
    srlm_checkpoint ck;
    srlm_llama m;
    srlm_kv_cache kv;
    srlm_llama_acts a;
    CHECK_OK(srlm_ckpt_open(&ck, dir));
    CHECK_OK(srlm_llama_load(&m, &ck, be, tp));
    int *ids = malloc(sizeof(int) * (size_t)n), slot = 0, past = 0;
    for (int i = 0; i < n; i++) ids[i] = (int)(srlm_rng_u64(9, (uint64_t)i) % (uint64_t)m.cfg.vocab_size);
    CHECK_OK(srlm_kv_cache_new(&kv, &m, 1, n));
    CHECK_OK(srlm_llama_acts_new(&a, &m, n, n));
    srlm_batch b = {1, n, ids, &slot, &past, &n, 0};
    CHECK_OK(srlm_llama_forward(&m, &kv, &a, &b));
    int *targets = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) targets[i] = ids[(i + 1) % n];
    CHECK_OK(srlm_llama_logprobs(&m, &a, targets, n, lp));
    free(ids);
    free(targets);
    srlm_llama_acts_free(&a, be);
    srlm_kv_cache_free(&kv, be);
    srlm_llama_free(&m);
    srlm_ckpt_close(&ck);
}

int main(int argc, char **argv) {
    CHECK_OK(srlm_dist_init(&argc, &argv));
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    srlm_log_set_rank(rank); /* info lines from rank 0 only */
    if (size != 4) TEST_SKIP("needs 4 ranks, got %d", size);
    char tmp[1024], model[1024], cmd[2200];
    snprintf(tmp, sizeof tmp, "%s/dist_train", test_env("SRLM_TMP", "/tmp"));
    snprintf(model, sizeof model, "%s/llama/tiny-gqa", test_env("SRLM_FIXTURES", "tests/fixtures"));
    if (rank == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", tmp, tmp);
        CHECK(system(cmd) == 0);
        char path[1200];
        snprintf(path, sizeof path, "%s/sft.jsonl", tmp);
        write_file(path,
                   "{\"prompt\": \"Count to three.\", \"response\": \"one two three\"}\n"
                   "{\"prompt\": \"Name a color.\", \"response\": \"blue\"}\n"
                   "{\"prompt\": \"Capital of France?\", \"response\": \"Paris\"}\n"
                   "{\"prompt\": \"What do cats say?\", \"response\": \"meow, mostly at night\"}\n"
                   "{\"prompt\": \"Two plus two?\", \"response\": \"four\"}\n"
                   "{\"prompt\": \"Say the first letters.\", \"response\": \"a b c d\"}\n");
        snprintf(path, sizeof path, "%s/pairs.jsonl", tmp);
        write_file(path,
                   "{\"prompt\": \"Can you help?\", \"chosen\": \"yes, gladly\", \"rejected\": \"no way\"}\n"
                   "{\"prompt\": \"Will you write?\", \"chosen\": \"yes, gladly\", \"rejected\": \"no\"}\n"
                   "{\"prompt\": \"Could you sort?\", \"chosen\": \"yes\", \"rejected\": \"no way at all\"}\n"
                   "{\"prompt\": \"Would you count?\", \"chosen\": \"yes, gladly\", \"rejected\": \"never\"}\n");
        run(tmp, model, "ref", 1, 1, 0, NULL); /* rank 0 alone */
    }
    MPI_Barrier(MPI_COMM_WORLD);

    const int layouts[][3] = {{2, 2, 0}, {1, 4, 0}, {4, 1, 0}, {2, 2, 1}}; /* tp, dp, capped */
    for (int i = 0; i < 4; i++) {
        int tp = layouts[i][0], dp = layouts[i][1], capped = layouts[i][2];
        srlm_topology topo;
        CHECK_OK(srlm_topology_new(&topo, tp, dp));
        char name[32];
        snprintf(name, sizeof name, "tp%d-dp%d%s", tp, dp, capped ? "-capped" : "");
        run(tmp, model, name, tp, dp, capped, &topo);
        srlm_topology_free(&topo);
        if (rank == 0) {
            for (int k = 0; k < 2; k++) {
                char a[1200], b[1200], what[64];
                snprintf(a, sizeof a, "%s/runs/%s/%s/model", tmp, name, k ? "dpo" : "sft");
                snprintf(b, sizeof b, "%s/runs/ref/%s/model", tmp, k ? "dpo" : "sft");
                snprintf(what, sizeof what, "%s %s vs 1 rank", name, k ? "dpo" : "sft");
                char pa[1300], pb[1300];
                snprintf(pa, sizeof pa, "%s/model.safetensors", a);
                snprintf(pb, sizeof pb, "%s/model.safetensors", b);
                check_weights(pa, pb, LR, 0.05, 2.0, what);
                snprintf(a, sizeof a, "%s/runs/%s/%s/metrics.jsonl", tmp, name, k ? "dpo" : "sft");
                snprintf(b, sizeof b, "%s/runs/ref/%s/metrics.jsonl", tmp, k ? "dpo" : "sft");
                double la = last_loss(a), lb = last_loss(b);
                CHECK_MSG(fabs(la - lb) <= 1e-3 * fabs(lb), "%s: final loss %.9g vs %.9g", what, la, lb);
                printf("%s: final loss %.9g vs %.9g\n", what, la, lb);
            }
        }
    }

    /* the tp=2 x dp=2 checkpoint at tp = 1 (rank 0 alone) and at tp = 2 */
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 1));
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/runs/tp2-dp2/sft/model", tmp);
    enum { N = 17 };
    float lp1[N], lp2[N];
    if (rank == 0) logprobs_of(dir, NULL, be, lp1, N);
    MPI_Bcast(lp1, N, MPI_FLOAT, 0, MPI_COMM_WORLD);
    srlm_topology topo;
    CHECK_OK(srlm_topology_new(&topo, 2, 2));
    logprobs_of(dir, topo.tp_comm, be, lp2, N);
    double worst = 0;
    for (int i = 0; i < N; i++) if (!(fabs(lp1[i] - lp2[i]) <= worst)) worst = fabs(lp1[i] - lp2[i]);
    CHECK_MSG(worst <= 1e-5, "rank %d: reloaded checkpoint at tp=2 vs tp=1: max |dlogp| %.3g", rank, worst);
    if (rank == 0) printf("tp2-dp2 checkpoint reloaded at tp=1 and tp=2: max |dlogp| %.2e\n", worst);
    srlm_topology_free(&topo);
    srlm_backend_free(be);

    int failed = test_failures;
    MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    srlm_dist_finalize();
    if (rank == 0) printf(failed ? "%d check(s) failed\n" : "all checks passed\n", failed);
    return failed ? 1 : 0;
}
