/* Times srlm's training step without the optimizer (forward + backward of the
 * SFT loss over every token, gradients accumulated into the flat buffer) on a
 * Hugging Face checkpoint: B x T random ids, a warm-up, then the median of R.
 * FILL below 1: a right-padded batch whose real tokens are that share of B x T
 * (bench_fill_lengths), which training packs; tokens/s counts real tokens.
 * Prints one JSON line with tokens/s and the process's peak resident memory.
 * Driven by benchmarks/train_vs_pytorch.py. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_util.h"
#include "core/rng.h"
#include "model/llama_train.h"

/* Peak resident memory of this process in MB: VmHWM belongs to this address
 * space (ru_maxrss would include a parent's peak from before exec). */
static double peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lf kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb / 1024.0;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: bench_train_step MODEL_DIR BATCH SEQ REPEATS THREADS RECOMPUTE [FILL]\n");
        return 2;
    }
    const char *prog = "bench_train_step";
    int B, T, R, threads, recompute;
    if (!bench_arg_int(prog, "BATCH", argv[2], 1, 1 << 12, &B) || !bench_arg_int(prog, "SEQ", argv[3], 1, 1 << 18, &T) ||
        !bench_arg_int(prog, "REPEATS", argv[4], 1, 1 << 20, &R) ||
        !bench_arg_int(prog, "THREADS", argv[5], 0, 1024, &threads) ||
        !bench_arg_int(prog, "RECOMPUTE", argv[6], 0, 1, &recompute))
        return 2;
    double fill = 1.0;
    if (argc > 7 && !bench_arg_double(prog, "FILL", argv[7], 0.5, 1.0, &fill)) return 2;
    srlm_checkpoint ck;
    srlm_backend *be;
    srlm_llama m;
    srlm_llama_grads g;
    srlm_train_acts a;
    if (srlm_ckpt_open(&ck, argv[1]) || srlm_backend_cpu_new(&be, threads) ||
        srlm_llama_load(&m, &ck, be, NULL) || srlm_llama_grads_new(&g, &m, 0) ||
        srlm_train_acts_new(&a, &m, B * T, recompute)) {
        fprintf(stderr, "bench_train_step: %s\n", srlm_last_error());
        return 1;
    }
    int N = B * T, *ids = malloc(sizeof(int) * (size_t)N), *len = malloc(sizeof(int) * (size_t)B);
    float *logp = malloc(sizeof(float) * (size_t)N), *dlogp = malloc(sizeof(float) * (size_t)N);
    for (int i = 0; i < N; i++) ids[i] = (int)(srlm_rng_u64(42, (uint64_t)i) % (uint64_t)m.cfg.vocab_size);
    bench_fill_lengths(B, T, fill, len);
    /* mean cross-entropy over every predicted token, like transformers' loss with labels = ids
     * (-100 on the padding) */
    int real = 0;
    for (int b = 0; b < B; b++) real += len[b];
    for (int i = 0; i < N; i++) dlogp[i] = i % T < len[i / T] - 1 ? -1.0f / (float)(real - B) : 0.0f;
    srlm_train_batch batch = {B, T, ids, len, 0.0f, 0, NULL};
    double *times = malloc(sizeof(double) * (size_t)(R + 1));
    for (int r = 0; r <= R; r++) {
        double t0 = bench_now();
        if (srlm_llama_train_forward(&m, &a, &batch, logp) ||
            srlm_llama_train_backward(&m, &a, &batch, dlogp, &g, 0)) { /* writes g, as a step's first */
            fprintf(stderr, "bench_train_step: %s\n", srlm_last_error());
            return 1;
        }
        times[r] = bench_now() - t0;
    }
    qsort(times + 1, (size_t)R, sizeof(double), bench_cmp_double);
    double med = times[1 + R / 2];
    printf("{\"impl\": \"srlm\", \"threads\": %d, \"batch\": %d, \"seq\": %d, \"recompute\": %d, "
           "\"real_tokens\": %d, \"median_s\": %.6f, \"tokens_per_s\": %.1f, \"peak_rss_mb\": %.1f}\n",
           be->threads, B, T, recompute, real, med, real / med, peak_rss_mb());
    return 0;
}
