/* Train-step time under a (tp, dp) layout: run it with mpirun at several layouts
 * on the same machine and compare. Rank 0 writes a random Llama (default: the
 * 24M-parameter benchmark shape) and random SFT data into WORKDIR; then every
 * rank runs STEPS optimizer steps of srlm's trainer (batch 8 sequences of 256
 * tokens, micro-batch 2 per replica, dropout off, no checkpoint until the end)
 * and rank 0 prints the median step time from the trainer's metrics.
 *
 *   mpirun -np 1 build/benchmarks/bench_train_parallel WORKDIR 1 1 [STEPS]
 *   mpirun -np 2 build/benchmarks/bench_train_parallel WORKDIR 2 1
 *   mpirun -np 2 build/benchmarks/bench_train_parallel WORKDIR 1 2 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_util.h"
#include "core/rng.h"
#include "dist/topology.h"
#include "io/fsutil.h"
#include "model/llama_init.h"
#include "train/trainer.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_train_parallel WORKDIR TP DP [STEPS]\n");
        return 2;
    }
    const char *work = argv[1];
    const char *prog = "bench_train_parallel";
    int tp, dp, steps = 6;
    if (!bench_arg_int(prog, "TP", argv[2], 1, 1024, &tp) || !bench_arg_int(prog, "DP", argv[3], 1, 1024, &dp) ||
        (argc > 4 && !bench_arg_int(prog, "STEPS", argv[4], 1, 1 << 20, &steps)))
        return 2;
    if (srlm_dist_init(&argc, &argv) != SRLM_OK) { fprintf(stderr, "%s\n", srlm_last_error()); return 1; }
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    char model[1100], data[1100], tok[1200];
    snprintf(model, sizeof model, "%s/model", work);
    snprintf(data, sizeof data, "%s/data.jsonl", work);
    snprintf(tok, sizeof tok, "%s/tokenizer.model", model);
    if (rank == 0 && !srlm_path_exists(tok)) {
        srlm_hf_config cfg = {.vocab_size = 32000, .hidden_size = 288, .intermediate_size = 768,
                              .num_hidden_layers = 6, .num_attention_heads = 6, .num_key_value_heads = 6,
                              .max_position_embeddings = 1024, .rms_norm_eps = 1e-5, .rope_theta = 10000,
                              .bos_token_id = 1, .eos_token_id = 2, .pad_token_id = -1,
                              .torch_dtype = "float32", .head_dim = 48};
        FILE *f;
        if (srlm_mkdir_p(model) || srlm_llama_write_random(model, &cfg, 1, 0.02) || !(f = fopen(data, "w"))) {
            fprintf(stderr, "setup: %s\n", srlm_last_error());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        /* 64 examples of 128 prompt + 128 response random ids */
        for (int e = 0; e < 64; e++) {
            fprintf(f, "{\"prompt_ids\": [1");
            for (int i = 1; i < 128; i++) fprintf(f, ", %d", (int)(3 + srlm_rng_u64(e, (uint64_t)i) % 31990));
            fprintf(f, "], \"response_ids\": [%d", 5);
            for (int i = 1; i < 128; i++) fprintf(f, ", %d", (int)(3 + srlm_rng_u64(1000 + e, (uint64_t)i) % 31990));
            fprintf(f, "]}\n");
        }
        fclose(f);
        /* the trainer wants a tokenizer file; ids-only data never uses it, so any valid model works */
        if (argc > 5 && srlm_path_exists(argv[5])) {
            char cmd[3000];
            snprintf(cmd, sizeof cmd, "cp '%s' '%s'", argv[5], tok);
            if (system(cmd) != 0) MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
    MPI_Barrier(MPI_COMM_WORLD);
    char yaml[4096], name[64];
    snprintf(name, sizeof name, "tp%d-dp%d", tp, dp);
    snprintf(yaml, sizeof yaml,
             "run: {name: %s, out_dir: %s/runs}\nmodel: {path: %s, dtype: float32}\n"
             "parallel: {tp: %d, dp: %d}\nbackend: {threads: 1}\n"
             "train: {sft: {data: %s, batch_size: 8, micro_batch_size: 2, epochs: %g, dropout: 0.0,"
             " checkpoint_every: 100000, lr: 1e-4, lr_min: 1e-5}}\n",
             name, work, model, tp, dp, data, steps * 8 / 64.0);
    srlm_config cfg;
    srlm_topology topo;
    srlm_status st = srlm_config_load_text(&cfg, "bench", yaml, 0, NULL);
    if (st == SRLM_OK) st = srlm_topology_new(&topo, tp, dp);
    char out[1200];
    snprintf(out, sizeof out, "%s/runs/%s/sft", work, name);
    if (rank == 0) { char cmd[1400]; snprintf(cmd, sizeof cmd, "rm -rf '%s'", out); if (system(cmd)) {} }
    MPI_Barrier(MPI_COMM_WORLD);
    if (st == SRLM_OK) {
        srlm_train_job job = {SRLM_TRAIN_SFT, cfg.train.sft.data, out, 0, 1, &topo};
        st = srlm_train(&cfg, &job);
    }
    if (st != SRLM_OK) {
        fprintf(stderr, "rank %d: %s\n", rank, srlm_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (rank == 0) {
        char path[1300], line[2048];
        snprintf(path, sizeof path, "%s/metrics.jsonl", out);
        FILE *f = fopen(path, "r");
        double prev = 0, dt[256];
        int n = 0;
        while (f && fgets(line, sizeof line, f) && n < 256) {
            const char *p = strstr(line, "\"time_s\": ");
            if (!p) continue;
            double t = strtod(p + 10, NULL);
            dt[n++] = t - prev;
            prev = t;
        }
        if (f) fclose(f);
        qsort(dt + 1, (size_t)(n > 1 ? n - 1 : 0), sizeof(double), bench_cmp_double); /* step 1 is warm-up */
        double med = n > 1 ? dt[1 + (n - 1) / 2] : dt[0];
        printf("{\"tp\": %d, \"dp\": %d, \"ranks\": %d, \"steps\": %d, \"median_step_s\": %.4f, "
               "\"tokens_per_s\": %.1f}\n", tp, dp, tp * dp, n, med, 8 * 256 / med);
    }
    srlm_topology_free(&topo);
    srlm_config_free(&cfg);
    srlm_dist_finalize();
    return 0;
}
