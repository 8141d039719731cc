/* Times srlm's forward pass (all logits, as a training or scoring step needs)
 * on a Hugging Face checkpoint: B x T random token ids, a warm-up call, then
 * the median of R timed calls. Prints one JSON line. Driven by
 * benchmarks/forward_vs_pytorch.py, which times PyTorch on the same weights. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_util.h"
#include "core/rng.h"
#include "model/llama.h"

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: bench_forward MODEL_DIR BATCH SEQ REPEATS THREADS\n");
        return 2;
    }
    const char *dir = argv[1];
    const char *prog = "bench_forward";
    int B, T, R, threads;
    if (!bench_arg_int(prog, "BATCH", argv[2], 1, 1 << 12, &B) || !bench_arg_int(prog, "SEQ", argv[3], 1, 1 << 18, &T) ||
        !bench_arg_int(prog, "REPEATS", argv[4], 1, 1 << 20, &R) ||
        !bench_arg_int(prog, "THREADS", argv[5], 0, 1024, &threads))
        return 2;
    srlm_checkpoint ck;
    srlm_backend *be;
    srlm_llama m;
    srlm_kv_cache kv;
    srlm_llama_acts a;
    if (srlm_ckpt_open(&ck, dir) || srlm_backend_cpu_new(&be, threads) ||
        srlm_llama_load(&m, &ck, be, NULL) || srlm_kv_cache_new(&kv, &m, B, T) ||
        srlm_llama_acts_new(&a, &m, B * T, B * T)) {
        fprintf(stderr, "bench_forward: %s\n", srlm_last_error());
        return 1;
    }
    int *ids = malloc(sizeof(int) * (size_t)B * T), *slot = malloc(sizeof(int) * (size_t)B);
    int *past = calloc((size_t)B, sizeof(int)), *nnew = malloc(sizeof(int) * (size_t)B);
    for (int i = 0; i < B * T; i++) ids[i] = (int)(srlm_rng_u64(42, (uint64_t)i) % (uint64_t)m.cfg.vocab_size);
    for (int b = 0; b < B; b++) { slot[b] = b; nnew[b] = T; }
    srlm_batch batch = {B, T, ids, slot, past, nnew, 0};
    double *times = malloc(sizeof(double) * (size_t)(R + 1));
    for (int r = 0; r <= R; r++) {
        double t0 = bench_now();
        if (srlm_llama_forward(&m, &kv, &a, &batch)) {
            fprintf(stderr, "bench_forward: %s\n", srlm_last_error());
            return 1;
        }
        times[r] = bench_now() - t0;
    }
    qsort(times + 1, (size_t)R, sizeof(double), bench_cmp_double); /* times[0] is the warm-up */
    double med = times[1 + R / 2];
    printf("{\"impl\": \"srlm\", \"threads\": %d, \"batch\": %d, \"seq\": %d, \"params\": %lld, "
           "\"median_s\": %.6f, \"tokens_per_s\": %.1f}\n",
           be->threads, B, T, (long long)m.n_params_local, med, B * T / med);
    return 0;
}
