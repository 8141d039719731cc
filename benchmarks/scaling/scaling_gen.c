/* Scaling of the generation phase over worker groups: the loop's path, work
 * items pulled from rank 0 through srlm_workqueue_run (src/pipeline/workqueue.h),
 * each item decoded by the engine (src/generate/engine.h) as its own batch,
 * exactly as src/pipeline/loop_gen.c runs the candidates phase; each item's
 * part is written (fsync'd, with its .done sidecar) like the loop's.
 *
 *   mpirun -np N build/benchmarks/scaling_gen WORK TOKENIZER MODE PROMPTS SAMPLES NEW_TOKENS PER_ITEM THREADS \
 *                                             [PROMPT_LEN]
 *
 * PROMPTS random prompts of PROMPT_LEN ids (default 32), SAMPLES samples each
 * at temperature 0.7 / top-p 0.9, every sample exactly NEW_TOKENS long (no EOS,
 * no stop string: the work is fixed), PER_ITEM prompts per work item, one
 * worker group per rank (tp 1), THREADS threads per rank. The model is loaded
 * before the clock starts. Per rank: the time inside its items (compute), the
 * items and tokens it did, the engine's prefill / decode / sampling time, the
 * time writing parts (write: srlm_artifact_write, wrapped at link time, see
 * benchmarks/CMakeLists.txt), and the rest of the phase (idle: asking for work,
 * waiting for the last group). The phase time is the slowest rank's. Rank 0
 * prints one JSON line. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "dist/topology.h"
#include "generate/engine.h"
#include "io/fsutil.h"
#include "model/model_session.h"
#include "pipeline/parts.h"
#include "pipeline/workqueue.h"
#include "../bench_util.h"
#include "scaling_common.h"

typedef struct {
    srlm_model_session *s;
    int               **prompts;
    int                 n_prompts, prompt_len, samples, new_tokens, per_item;
    srlm_gen_request   *greqs;
    /* this rank's totals */
    double items_s, prefill_s, decode_s, sample_s;
    long   items, tokens, forwards;
} gen_ctx;

typedef struct {
    srlm_text *out;
    int        first;
} out_ctx;

static srlm_status on_output(const srlm_gen_output *o, void *ctx) {
    out_ctx *c = ctx;
    char line[160];
    int n = snprintf(line, sizeof line,
                     "{\"prompt_id\": %d, \"sample\": %d, \"n_ids\": %d, \"finish_reason\": \"%s\"}\n",
                     c->first + o->request, o->sample, o->n_ids, o->finish_reason);
    srlm_text_add(c->out, line, (size_t)n);
    c->out->count++;
    return SRLM_OK;
}

static srlm_status run_item(void *ctx, int item, srlm_text *out, long *work) {
    gen_ctx *g = ctx;
    double t0 = scaling_now();
    int first = item * g->per_item, n = g->n_prompts - first < g->per_item ? g->n_prompts - first : g->per_item;
    srlm_sampling samp = {0.7f, 0.9f, 0};
    for (int i = 0; i < n; i++)
        g->greqs[i] = (srlm_gen_request){g->prompts[first + i], g->prompt_len, g->samples, samp, g->new_tokens, -1,
                                         NULL, 0, srlm_rng_key(0x5ca1e, (uint64_t)(first + i))};
    int total = n * g->samples;
    /* the loop's engine settings (loop_gen.c run_item) */
    srlm_gen_config gc = {total < 64 ? total : 64, g->prompt_len + g->new_tokens, 1, 16, srlm_workqueue_poll, NULL, 0, 0};
    srlm_gen_stats st;
    out_ctx oc = {out, first};
    SRLM_CHECK(srlm_generate(&g->s->model, g->s->tok, &gc, g->greqs, n, on_output, &oc, &st));
    *work = st.generated_tokens;
    g->items++;
    g->tokens += st.generated_tokens;
    g->forwards += st.forwards;
    g->prefill_s += st.prefill_s;
    g->decode_s += st.decode_s;
    g->sample_s += st.sample_s;
    g->items_s += scaling_now() - t0;
    return SRLM_OK;
}

/* srlm_artifact_write, timed (linked with -Wl,--wrap=srlm_artifact_write) */
static double g_write_s = 0;
srlm_status __real_srlm_artifact_write(const char *path, const void *data, size_t len, long count);
srlm_status __wrap_srlm_artifact_write(const char *path, const void *data, size_t len, long count);
srlm_status __wrap_srlm_artifact_write(const char *path, const void *data, size_t len, long count) {
    double t0 = scaling_now();
    srlm_status st = __real_srlm_artifact_write(path, data, len, count);
    g_write_s += scaling_now() - t0;
    return st;
}

static void die(int rank, const char *what) {
    fprintf(stderr, "scaling_gen: rank %d: %s: %s\n", rank, what, srlm_last_error());
    srlm_dist_abort(1);
}

enum { F_WALL, F_COMPUTE, F_WRITE, F_IDLE, F_PREFILL, F_DECODE, F_SAMPLE, F_ITEMS, F_TOKENS, F_FORWARDS, N_FIELDS };
static const char *FIELD_NAMES[N_FIELDS] = {"wall_s",   "compute_s", "write_s", "idle_s", "prefill_s", "decode_s",
                                            "sample_s", "items",     "tokens",  "forwards"};

int main(int argc, char **argv) {
    if (argc < 9) {
        fprintf(stderr, "usage: scaling_gen WORK TOKENIZER MODE PROMPTS SAMPLES NEW_TOKENS PER_ITEM THREADS "
                        "[PROMPT_LEN]\n");
        return 2;
    }
    const char *work = argv[1], *tokenizer = argv[2], *mode = argv[3];
    gen_ctx g = {0};
    const char *prog = "scaling_gen";
    int threads;
    g.prompt_len = 32;
    if (!bench_arg_int(prog, "PROMPTS", argv[4], 1, 1 << 24, &g.n_prompts) ||
        !bench_arg_int(prog, "SAMPLES", argv[5], 1, 1 << 16, &g.samples) ||
        !bench_arg_int(prog, "NEW_TOKENS", argv[6], 1, 1 << 20, &g.new_tokens) ||
        !bench_arg_int(prog, "PER_ITEM", argv[7], 1, 1 << 24, &g.per_item) ||
        !bench_arg_int(prog, "THREADS", argv[8], 1, 1024, &threads) ||
        (argc > 9 && !bench_arg_int(prog, "PROMPT_LEN", argv[9], 2, 1 << 20, &g.prompt_len)))
        return 2;
    if (srlm_dist_init(&argc, &argv) != SRLM_OK) { fprintf(stderr, "%s\n", srlm_last_error()); return 1; }
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    scaling_shape shape = SCALING_SHAPE_DEFAULT;
    int vocab;
    if (srlm_mkdir_p(work) != SRLM_OK || scaling_model_setup(work, tokenizer, &shape, &vocab) != SRLM_OK)
        die(rank, "setup");
    char model[1100], dir[1300];
    snprintf(model, sizeof model, "%s/model", work);
    snprintf(dir, sizeof dir, "%s/gen/%s-n%d-p%d-t%d", work, mode, size, g.n_prompts, threads);
    if (rank == 0 && srlm_remove_tree(dir) != SRLM_OK) die(rank, "clearing the parts folder"); /* never resume */

    srlm_topology topo;
    srlm_model_session s;
    if (srlm_topology_new(&topo, 1, size) != SRLM_OK) die(rank, "topology");
    if (srlm_model_session_open_tp(&s, model, NULL, 1, threads, topo.tp_comm) != SRLM_OK) die(rank, "loading");
    g.s = &s;
    g.prompts = malloc(sizeof(int *) * (size_t)g.n_prompts);
    g.greqs = calloc((size_t)g.per_item, sizeof *g.greqs);
    if (!g.prompts || !g.greqs) die(rank, "out of memory");
    for (int p = 0; p < g.n_prompts; p++) {
        g.prompts[p] = malloc(sizeof(int) * (size_t)g.prompt_len);
        if (!g.prompts[p]) die(rank, "out of memory");
        g.prompts[p][0] = srlm_tokenizer_bos(s.tok) >= 0 ? srlm_tokenizer_bos(s.tok) : 1;
        for (int i = 1; i < g.prompt_len; i++)
            g.prompts[p][i] = (int)(3 + srlm_rng_u64((uint64_t)p + 77, (uint64_t)i) % (uint64_t)(vocab - 3));
    }
    const int n_items = (g.n_prompts + g.per_item - 1) / g.per_item;
    srlm_workqueue q = {&topo, dir, "scaling-gen", n_items, run_item, &g, 1};
    srlm_workqueue_stats stats;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = scaling_now();
    if (srlm_workqueue_run(&q, &stats) != SRLM_OK) die(rank, "generation");
    double wall = scaling_now() - t0;

    double mine[N_FIELDS] = {wall,        g.items_s,  g_write_s,  wall - g.items_s - g_write_s,
                             g.prefill_s, g.decode_s, g.sample_s,
                             (double)g.items, (double)g.tokens, (double)g.forwards};
    double *all = rank == 0 ? malloc(sizeof(double) * N_FIELDS * (size_t)size) : NULL;
    MPI_Gather(mine, N_FIELDS, MPI_DOUBLE, all, N_FIELDS, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        double tokens = 0, phase = 0;
        for (int r = 0; r < size; r++) {
            tokens += all[r * N_FIELDS + F_TOKENS];
            if (all[r * N_FIELDS + F_WALL] > phase) phase = all[r * N_FIELDS + F_WALL];
        }
        printf("{\"bench\": \"gen\", \"mode\": \"%s\", \"ranks\": %d, \"tp\": 1, \"groups\": %d, \"threads\": %d, "
               "\"prompts\": %d, \"samples\": %d, \"prompt_len\": %d, \"new_tokens\": %d, \"per_item\": %d, "
               "\"n_items\": %d, \"phase_s\": %.6f, \"tokens_total\": %.0f, \"tokens_per_s\": %.1f",
               mode, size, size, threads, g.n_prompts, g.samples, g.prompt_len, g.new_tokens, g.per_item, n_items,
               phase, tokens, tokens / phase);
        for (int f = F_COMPUTE; f < F_ITEMS; f++) {
            double mx = 0, mean = 0;
            for (int r = 0; r < size; r++) {
                double v = all[r * N_FIELDS + f];
                mx = v > mx ? v : mx;
                mean += v / size;
            }
            printf(", \"%s\": %.6f, \"%s_mean\": %.6f", FIELD_NAMES[f], mx, FIELD_NAMES[f], mean);
        }
        printf(", \"per_rank\": [");
        for (int r = 0; r < size; r++) {
            printf("%s{\"rank\": %d", r ? ", " : "", r);
            for (int f = 0; f < N_FIELDS; f++) printf(", \"%s\": %.6f", FIELD_NAMES[f], all[r * N_FIELDS + f]);
            printf("}");
        }
        printf("]}\n");
        fflush(stdout);
    }
    free(all);
    for (int p = 0; p < g.n_prompts; p++) free(g.prompts[p]);
    free(g.prompts);
    free(g.greqs);
    srlm_model_session_close(&s);
    srlm_topology_free(&topo);
    srlm_dist_finalize();
    return 0;
}
