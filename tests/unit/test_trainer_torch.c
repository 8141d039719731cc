/* Whole optimizer steps of the trainer (srlm_train: SFT and DPO on one rank)
 * against torch: tests/fixtures/trainer/<case>, written by
 * tests/fixtures/make_trainer_fixtures.py from transformers' LlamaForCausalLM,
 * TRL's sigmoid DPO formula, clip_grad_norm_, torch.optim.AdamW with a decay
 * and a no-decay parameter group, and transformers' cosine-with-min-lr schedule.
 * Cases: tiny-gqa (SFT, 4 steps; DPO, 3 steps) and tiny-rope (tied embeddings;
 * SFT, 4 steps); tiny-gqa again with the memory savers (recomputation, logits
 * in chunks of 5 rows, micro-batches capped by tokens: one example or pair
 * each). Each batch is accumulated over micro-batches, the first
 * steps are clipped, the first is at lr 0 (warmup), and weight decay is 1.0 so
 * that a norm weight decayed by mistake or a matrix left undecayed moves by
 * about 2 lr over the run.
 *
 * Checked: per step the loss, the gradient norm before clipping and the lr
 * written to metrics.jsonl; after the run every parameter.
 * Tolerances: float32 on both sides, differing in summation order only (the
 * gradients agree to ~1e-6, test_train_grads.c). Loss and gradient norm within
 * 1e-5 relative at the first step, 5e-4 later (the weights' differences below
 * carry over; measured up to 8e-5); lr within 1e-7 relative (%.9g in the
 * metrics). Weights in units of the peak lr, as in
 * test_dist_train.c: Adam moves an element by ~lr whatever its gradient's size,
 * so one whose gradient is ~1e-9 can move differently; per tensor the RMS of
 * w - w_torch <= 0.02 lr and every element within 1 lr. Measured: RMS <= 2e-3
 * lr, elements <= 0.2 lr. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/factory.h"
#include "core/log.h"
#include "io/config.h"
#include "test.h"
#include "train/trainer.h"
#include "weights_check.h"

static const char *fixtures(void) { return test_env("SRLM_FIXTURES", "tests/fixtures"); }

/* obj's number `key`; NAN and a failed check naming `where` when it has none. */
static double num(const cJSON *obj, const char *key, const char *where) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    CHECK_MSG(cJSON_IsNumber(v), "%s: no number \"%s\"", where, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int close_rel(double a, double b, double tol) { return fabs(a - b) <= tol * fabs(b); }

/* metrics.jsonl against the reference's steps. */
static void compare_metrics(const char *path, const cJSON *steps, const char *what) {
    char *text = test_read_file(path, NULL);
    CHECK_MSG(text != NULL, "%s: cannot read %s", what, path);
    if (!text) return;
    int n = 0, want = cJSON_GetArraySize(steps);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), n++) {
        cJSON *m = cJSON_Parse(line);
        const cJSON *r = cJSON_GetArrayItem(steps, n);
        CHECK_MSG(m && r, "%s: metrics line %d: not JSON, or more steps than torch's %d", what, n + 1, want);
        if (m && r) {
            double loss = num(m, "loss", path), norm = num(m, "grad_norm", path), lr = num(m, "lr", path);
            double rloss = num(r, "loss", "reference.json"), rnorm = num(r, "grad_norm", "reference.json"),
                   rlr = num(r, "lr", "reference.json");
            const double tol = n == 0 ? 1e-5 : 5e-4; /* the starting weights, then the weights' differences */
            CHECK_MSG(close_rel(loss, rloss, tol), "%s step %d: loss %.9g, torch %.9g", what, n, loss, rloss);
            CHECK_MSG(close_rel(norm, rnorm, tol), "%s step %d: grad norm %.9g, torch %.9g", what, n, norm, rnorm);
            CHECK_MSG(fabs(lr - rlr) <= 1e-7 * fabs(rlr) + 1e-15, "%s step %d: lr %.9g, torch %.9g", what, n, lr,
                      rlr);
            printf("%s step %d: loss %.7f (torch %.7f), grad norm %.6f (torch %.6f), lr %.5g\n", what, n, loss, rloss,
                   norm, rnorm, lr);
        }
        cJSON_Delete(m);
    }
    CHECK_MSG(n == want, "%s: %d steps in metrics.jsonl, torch took %d", what, n, want);
    free(text);
}

/* SRLM_TEST_BACKEND (default cpu): the backend.name the runs use; the CUDA
 * build's gpu-labelled test_trainer_torch_gpu sets cuda. */
static const char *backend_name(void) { return test_env("SRLM_TEST_BACKEND", "cpu"); }

/* variant: NULL, or a name and the config keys it adds to the phase's (the same
 * steps, computed another way). */
static void run_case(const char *name, const char *phase, const char *tmp, const char *variant, const char *keys) {
    char dir[1024], path[1400], yaml[4096], out[1200], what[64];
    snprintf(what, sizeof what, "%s %s%s%s (%s)", name, phase, variant ? " " : "", variant ? variant : "",
             backend_name());
    snprintf(dir, sizeof dir, "%s/trainer/%s", fixtures(), name);
    snprintf(path, sizeof path, "%s/reference.json", dir);
    /* committed with the test: a missing file is a failure, not a skip */
    char *text = test_read_file(path, NULL);
    CHECK_MSG(text != NULL, "cannot read %s (tests/fixtures/make_trainer_fixtures.py writes it)", path);
    cJSON *ref = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *hp = cJSON_GetObjectItemCaseSensitive(ref, phase);
    CHECK_MSG(!text || hp != NULL, "%s: no \"%s\"", path, phase);
    if (!hp) { cJSON_Delete(ref); return; }
    const int dpo = strcmp(phase, "dpo") == 0, before = test_failures;
    const double lr = num(hp, "lr", path), lr_min = num(hp, "lr_min", path), warmup = num(hp, "warmup_steps", path),
                 wd = num(hp, "weight_decay", path), epochs = num(hp, "epochs", path),
                 batch = num(hp, "batch_size", path), micro = num(hp, "micro_batch_size", path),
                 clip = num(hp, "grad_clip", path), b1 = num(ref, "adam_beta1", path),
                 b2 = num(ref, "adam_beta2", path), eps = num(ref, "adam_eps", path);
    char beta[64] = "";
    if (dpo) snprintf(beta, sizeof beta, ", beta: %.17g", num(hp, "beta", path));
    if (test_failures != before) { cJSON_Delete(ref); return; } /* no NaN reaches an int */
    snprintf(yaml, sizeof yaml,
             "run: {name: %s-%s%s, out_dir: %s/runs, seed: 3}\n"
             "model: {path: %s/llama/%s, dtype: float32}\n"
             "backend: {name: %s, threads: 1}\n"
             "train:\n"
             "  %s: {data: %s/%s, lr: %.17g, lr_min: %.17g, schedule: cosine, warmup_steps: %d,\n"
             "       weight_decay: %.17g, epochs: %.17g, batch_size: %d, micro_batch_size: %d,\n"
             "       grad_clip: %.17g, adam_beta1: %.17g, adam_beta2: %.17g, adam_eps: %.17g,\n"
             "       dropout: 0.0%s%s}\n",
             name, phase, variant ? variant : "", tmp, fixtures(), name, backend_name(), phase, dir,
             dpo ? "pairs.jsonl" : "sft.jsonl", lr, lr_min, (int)warmup, wd, epochs, (int)batch, (int)micro, clip,
             b1, b2, eps, beta, keys ? keys : ", max_seq_len: 64");
    srlm_config c;
    CHECK_OK(srlm_config_load_text(&c, what, yaml, 0, NULL));
    if (test_failures != before) { cJSON_Delete(ref); return; }
    snprintf(out, sizeof out, "%.1000s/runs/%s-%s%s/%s", tmp, name, phase, variant ? variant : "", phase);
    srlm_train_job job = {dpo ? SRLM_TRAIN_DPO : SRLM_TRAIN_SFT, dpo ? c.train.dpo.data : c.train.sft.data, out, 0,
                          1, NULL};
    CHECK_OK(srlm_train(&c, &job));
    srlm_config_free(&c);
    if (test_failures == before) {
        snprintf(path, sizeof path, "%s/metrics.jsonl", out);
        compare_metrics(path, cJSON_GetObjectItemCaseSensitive(hp, "steps"), what);
        char ours[1300], theirs[1400];
        snprintf(ours, sizeof ours, "%s/model/model.safetensors", out);
        snprintf(theirs, sizeof theirs, "%s/%s_weights.safetensors", dir, phase);
        check_weights(ours, theirs, lr, 0.02, 1.0, what);
    }
    cJSON_Delete(ref);
}

int main(void) {
    srlm_log_set_level(SRLM_LOG_WARN);
    srlm_backend_kind kind;
    srlm_backend *be = NULL;
    if (srlm_backend_kind_parse(backend_name(), &kind) != SRLM_OK || srlm_backend_new(kind, 1, 0, &be) != SRLM_OK)
        TEST_SKIP("SRLM_TEST_BACKEND=%s: %s", backend_name(), srlm_last_error());
    srlm_backend_free(be);
    char tmp[1024], cmd[2100];
    snprintf(tmp, sizeof tmp, "%s/trainer_torch_%s", test_env("SRLM_TMP", "/tmp"), backend_name());
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", tmp, tmp);
    CHECK(system(cmd) == 0);
    run_case("tiny-gqa", "sft", tmp, NULL, NULL);
    run_case("tiny-gqa", "dpo", tmp, NULL, NULL);
    run_case("tiny-rope", "sft", tmp, NULL, NULL);
    /* the memory savers: activations recomputed in the backward pass, logits held
     * 5 rows at a time, and micro-batches capped at 16 tokens (SFT: one example
     * each, four a step; DPO: one pair each, three a step) */
    run_case("tiny-gqa", "sft", tmp, "-savers",
             ", recompute: true, logits_chunk: 5, max_seq_len: 16, micro_batch_tokens: 16");
    run_case("tiny-gqa", "dpo", tmp, "-savers",
             ", recompute: true, logits_chunk: 5, max_seq_len: 11, micro_batch_tokens: 22");
    TEST_DONE();
}
