/* Scaling of srlm's training step over data-parallel ranks, with each step's
 * time split per rank into compute and collectives.
 *
 *   mpirun -np N build/benchmarks/scaling_train WORK TOKENIZER MODE BATCH STEPS THREADS [sft|dpo]
 *
 * Rank 0 writes the benchmark model (scaling_common.h) and STEPS x BATCH
 * examples of random ids into WORK (once per size); then every rank runs
 * srlm_train (src/train/trainer.h) for STEPS optimizer steps of the global batch
 * BATCH (sequences of 128 prompt + 128 response tokens; DPO: pairs, each side
 * 256 tokens; micro-batch 2 per replica, dropout off, tp 1, dp = N, THREADS
 * BLAS/OpenMP threads per rank). MODE ("strong", "weak", ...) is a label only.
 *
 * The trainer's calls into the model, AdamW and the collectives are timed
 * (scaling_wrap.c). A step runs, per rank: forward + backward of its
 * micro-batches, the allreduce of 7 loss metrics (the first collective after
 * the compute: it waits for the slowest rank), the ZeRO-1 reduce-scatter of the
 * gradients, an allreduce of the squared norm, AdamW on the shard, the
 * allgather of the updated shards, and the allreduce of the stop flag (one
 * int32, MAX), which ends the step. From the log, per step: step = from one
 * stop flag's return to the next; fwd, bwd, adamw = the time inside those
 * calls; wait = the metrics allreduce; reduce_scatter, allgather; other_coll =
 * the other collectives; collective = their sum; compute = step - collective;
 * other_compute = compute - fwd - bwd - adamw (loss, norms, copies). Step 1
 * (warm-up) is dropped; per rank the median over the other steps; the JSON
 * line gives each field's max and mean over ranks and every rank's values. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "dist/topology.h"
#include "io/fsutil.h"
#include "../bench_util.h"
#include "scaling_common.h"
#include "train/trainer.h"

enum { PROMPT = 128, RESPONSE = 128, MICRO = 2 };
enum { F_STEP, F_FWD, F_BWD, F_ADAMW, F_OTHER_COMPUTE, F_WAIT, F_RS, F_AG, F_OTHER_COLL, F_COMPUTE, F_COLL,
       N_FIELDS };
static const char *FIELD_NAMES[N_FIELDS] = {"step_s",      "fwd_s",     "bwd_s",
                                            "adamw_s",     "other_compute_s", "wait_s",
                                            "reduce_scatter_s", "allgather_s", "other_coll_s",
                                            "compute_s",   "collective_s"};

static void die(int rank, const char *what) {
    fprintf(stderr, "scaling_train: rank %d: %s: %s\n", rank, what, srlm_last_error());
    srlm_dist_abort(1);
}

static srlm_status write_data(const char *path, int n_examples, int vocab, int dpo) {
    if (srlm_path_exists(path)) return SRLM_OK;
    size_t cap = (size_t)n_examples * (PROMPT + 2 * RESPONSE) * 8 + 4096, n = 0;
    char *text = malloc(cap);
    if (!text) return SRLM_ERR(SRLM_FAILED, "out of memory");
    const char *keys[3] = {"prompt_ids", dpo ? "chosen_ids" : "response_ids", "rejected_ids"};
    const int lens[3] = {PROMPT, RESPONSE, RESPONSE};
    for (int e = 0; e < n_examples; e++) {
        n += (size_t)snprintf(text + n, cap - n, "{");
        for (int k = 0; k < (dpo ? 3 : 2); k++) {
            n += (size_t)snprintf(text + n, cap - n, "%s\"%s\": [", k ? ", " : "", keys[k]);
            for (int i = 0; i < lens[k]; i++) { /* ids 3.. skip unk, bos and eos */
                uint64_t r = srlm_rng_u64((uint64_t)(e * 4 + k), (uint64_t)i) % (uint64_t)(vocab - 3);
                n += (size_t)snprintf(text + n, cap - n, "%s%d", i ? ", " : "", (int)(3 + r));
            }
            n += (size_t)snprintf(text + n, cap - n, "]");
        }
        n += (size_t)snprintf(text + n, cap - n, "}\n");
    }
    srlm_status st = srlm_write_file_atomic(path, text, n);
    free(text);
    return st;
}

/* Per-step fields of this rank from the log; returns the number of steps measured. */
static int analyse(double (*out)[N_FIELDS], int max_steps, int *n_found) {
    int n;
    const scaling_event *ev = scaling_log(&n);
    /* a step's signature: the 7-double metrics allreduce, then the first stop flag after it */
    static int marks[4096], parts[4096];
    int k = 0;
    for (int i = 0; i < n && k < 4096; i++) {
        if (ev[i].kind != EV_ALLREDUCE || ev[i].bytes != 7 * 8) continue;
        int j = i + 1;
        while (j < n && !ev[j].stop_flag) j++;
        if (j == n) break;
        parts[k] = i;
        marks[k++] = j;
        i = j;
    }
    *n_found = k;
    int m = 0;
    for (int s = 1; s < k && m < max_steps; s++, m++) {
        double *f = out[m];
        memset(f, 0, sizeof(double) * N_FIELDS);
        f[F_STEP] = ev[marks[s]].t1 - ev[marks[s - 1]].t1;
        for (int i = marks[s - 1] + 1; i <= marks[s]; i++) {
            double d = ev[i].t1 - ev[i].t0;
            switch (ev[i].kind) {
            case EV_FWD: f[F_FWD] += d; break;
            case EV_BWD: f[F_BWD] += d; break;
            case EV_ADAMW: f[F_ADAMW] += d; break;
            case EV_REDUCE_SCATTER: f[F_RS] += d; break;
            case EV_ALLGATHER: f[F_AG] += d; break;
            default: f[i == parts[s] ? F_WAIT : F_OTHER_COLL] += d;
            }
        }
        f[F_COLL] = f[F_WAIT] + f[F_RS] + f[F_AG] + f[F_OTHER_COLL];
        f[F_COMPUTE] = f[F_STEP] - f[F_COLL];
        f[F_OTHER_COMPUTE] = f[F_COMPUTE] - f[F_FWD] - f[F_BWD] - f[F_ADAMW];
    }
    return m;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: scaling_train WORK TOKENIZER MODE BATCH STEPS THREADS [sft|dpo]\n");
        return 2;
    }
    const char *work = argv[1], *tokenizer = argv[2], *mode = argv[3];
    int batch, steps, threads;
    if (!bench_arg_int("scaling_train", "BATCH", argv[4], 1, 1 << 24, &batch) ||
        !bench_arg_int("scaling_train", "STEPS", argv[5], 2, 1 << 20, &steps) ||
        !bench_arg_int("scaling_train", "THREADS", argv[6], 1, 1024, &threads))
        return 2;
    const int dpo = argc > 7 && !strcmp(argv[7], "dpo");
    if (srlm_dist_init(&argc, &argv) != SRLM_OK) { fprintf(stderr, "%s\n", srlm_last_error()); return 1; }
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (batch < size) { /* known only now: the rank count */
        if (rank == 0) fprintf(stderr, "scaling_train: need BATCH >= ranks (%d < %d)\n", batch, size);
        srlm_dist_finalize();
        return 2;
    }
    scaling_shape shape = SCALING_SHAPE_DEFAULT;
    int vocab;
    if (srlm_mkdir_p(work) != SRLM_OK || scaling_model_setup(work, tokenizer, &shape, &vocab) != SRLM_OK)
        die(rank, "setup");
    char data[1100], model[1100], out[1300], yaml[4096], name[128];
    snprintf(data, sizeof data, "%s/%s-%d.jsonl", work, dpo ? "dpo" : "sft", steps * batch);
    snprintf(model, sizeof model, "%s/model", work);
    snprintf(name, sizeof name, "%s-%s-n%d-b%d-t%d", dpo ? "dpo" : "sft", mode, size, batch, threads);
    snprintf(out, sizeof out, "%s/runs/%s/%s", work, name, dpo ? "dpo" : "sft");
    if (rank == 0) {
        if (write_data(data, steps * batch, vocab, dpo) != SRLM_OK) die(rank, "writing the data");
        if (srlm_remove_tree(out) != SRLM_OK) die(rank, "clearing the output folder"); /* never resume */
    }
    MPI_Barrier(MPI_COMM_WORLD);
    const char *kind = dpo ? "dpo" : "sft";
    snprintf(yaml, sizeof yaml,
             "run: {name: %s, out_dir: %s/runs}\nmodel: {path: %s, dtype: float32}\n"
             "parallel: {tp: 1, dp: %d}\nbackend: {threads: %d}\n"
             "train: {%s: {data: %s, batch_size: %d, micro_batch_size: %d, epochs: 1, dropout: 0.0,"
             " max_seq_len: %d, checkpoint_every: 100000, lr: 1e-4, lr_min: 1e-5}}\n",
             name, work, model, size, threads, kind, data, batch, MICRO, PROMPT + RESPONSE);
    srlm_config cfg;
    srlm_topology topo;
    if (srlm_config_load_text(&cfg, "scaling_train", yaml, 0, NULL) != SRLM_OK) die(rank, "config");
    if (srlm_topology_new(&topo, 1, size) != SRLM_OK) die(rank, "topology");
    srlm_train_job job = {dpo ? SRLM_TRAIN_DPO : SRLM_TRAIN_SFT, data, out, 0, 1, &topo};
    double t0 = scaling_now();
    scaling_log_enable(1);
    if (srlm_train(&cfg, &job) != SRLM_OK) die(rank, "training");
    scaling_log_enable(0);
    double wall = scaling_now() - t0;

    static double per_step[4096][N_FIELDS];
    int found, m = analyse(per_step, 4096, &found);
    double mine[N_FIELDS], col[4096];
    for (int f = 0; f < N_FIELDS; f++) {
        for (int s = 0; s < m; s++) col[s] = per_step[s][f];
        mine[f] = scaling_median(col, m);
    }
    double *all = rank == 0 ? malloc(sizeof(double) * N_FIELDS * (size_t)size) : NULL;
    int counts[2] = {m, found}, *all_counts = rank == 0 ? malloc(sizeof(int) * 2 * (size_t)size) : NULL;
    MPI_Gather(mine, N_FIELDS, MPI_DOUBLE, all, N_FIELDS, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Gather(counts, 2, MPI_INT, all_counts, 2, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        for (int r = 0; r < size; r++)
            if (all_counts[2 * r + 1] != steps)
                fprintf(stderr, "scaling_train: warning: rank %d: found %d steps in the collective log, expected %d "
                        "(has the trainer's collective sequence changed?)\n", r, all_counts[2 * r + 1], steps);
        /* the step is the slowest rank's; compute and collectives per rank, plus their max and mean */
        printf("{\"bench\": \"train\", \"kind\": \"%s\", \"mode\": \"%s\", \"ranks\": %d, \"tp\": 1, \"dp\": %d, "
               "\"threads\": %d, \"batch\": %d, \"micro_batch\": %d, \"seq\": %d, \"steps\": %d, "
               "\"steps_measured\": %d, \"wall_s\": %.4f",
               kind, mode, size, size, threads, batch, MICRO, PROMPT + RESPONSE, steps, m, wall);
        for (int f = 0; f < N_FIELDS; f++) {
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
    free(all_counts);
    srlm_topology_free(&topo);
    srlm_config_free(&cfg);
    srlm_dist_finalize();
    return 0;
}
