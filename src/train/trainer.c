/* The trainer: one optimizer step = batch_size examples (SFT) or pairs (DPO),
 * processed as micro-batches whose gradients add up to exactly the gradient of
 * the whole batch, then clipping and AdamW on the flat parameter buffer.
 *
 * Everything that decides a step's result is a function of (config, step): the
 * example order (a permutation per epoch keyed by the run seed), the dropout
 * masks (keyed by step and micro-batch) and the optimizer state saved with each
 * checkpoint. So k steps, a stop, a resume and N - k more steps give the same
 * bits as N steps in one go. */
#include "train/trainer_internal.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/factory.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/watchdog.h"
#include "core/rng.h"
#include "io/checkpoint.h"
#include "io/fsutil.h"
#include "io/tokenizer.h"
#include "model/llama_save.h"
#include "model/llama_train.h"
#include "train/ckpt_manifest.h"
#include "train/dataset.h"
#include "train/dpo_loss.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/train_state.h"
#include "dist/topology.h"

static double now_s(void);

static volatile sig_atomic_t g_stop_requested = 0;
void srlm_train_request_stop(void) { g_stop_requested = 1; }

/* ---- data order ---- */

static int example_at(trainer *t, long sample) {
    long epoch = sample / t->n_examples;
    if (epoch != t->perm_epoch) {
        uint64_t key = srlm_rng_key(srlm_rng_key((uint64_t)t->cfg->run.seed, 0x6f72646572ull), (uint64_t)epoch);
        for (int i = 0; i < t->n_examples; i++) t->perm[i] = i;
        for (int i = t->n_examples - 1; i > 0; i--) { /* Fisher-Yates */
            int j = (int)(srlm_rng_u64(key, (uint64_t)i) % (uint64_t)(i + 1));
            int tmp = t->perm[i]; t->perm[i] = t->perm[j]; t->perm[j] = tmp;
        }
        t->perm_epoch = epoch;
    }
    return t->perm[sample % t->n_examples];
}

/* ---- checkpoints ---- */

static void step_dir(char *buf, size_t cap, const char *out, long step) {
    snprintf(buf, cap, "%s/train/step-%08ld", out, step);
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* The steps of the complete trainer checkpoints under OUT/train (a checkpoint is
 * complete when its state file exists), ascending; *steps is malloc'd. Stale
 * temporary folders of an interrupted save (step-N.tmp) are removed. */
static srlm_status list_checkpoints(const char *out, long **steps, int *n) {
    char dir[1100], path[1400], state[1500];
    snprintf(dir, sizeof dir, "%s/train", out);
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return SRLM_OK;
    long *found = NULL, *stale = NULL;
    int n_found = 0, n_stale = 0, cap = 0;
    srlm_status st = SRLM_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        long step;
        char extra[8];
        int k = sscanf(e->d_name, "step-%ld%7s", &step, extra);
        if (k < 1) continue;
        if (n_found + n_stale == cap) {
            cap = cap ? 2 * cap : 16;
            long *g1 = realloc(found, sizeof(long) * (size_t)cap), *g2 = g1 ? realloc(stale, sizeof(long) * (size_t)cap) : NULL;
            if (g1) found = g1;
            if (g2) stale = g2;
            if (!g1 || !g2) { st = SRLM_ERR(SRLM_FAILED, "out of memory listing %s", dir); break; }
        }
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (k == 2) stale[n_stale++] = step; /* step-N.tmp */
        else if (srlm_train_state_path(state, sizeof state, path, 0) == SRLM_OK && srlm_path_exists(state))
            found[n_found++] = step;
    }
    closedir(d);
    /* removed after the listing: a folder is not changed while it is being read */
    for (int i = 0; i < n_stale && st == SRLM_OK; i++) {
        char sd[1100];
        step_dir(sd, sizeof sd, out, stale[i]);
        snprintf(path, sizeof path, "%s.tmp", sd);
        st = srlm_remove_tree(path);
    }
    free(stale);
    if (st != SRLM_OK) { free(found); return st; }
    qsort(found, (size_t)n_found, sizeof *found, cmp_long);
    *steps = found;
    *n = n_found;
    return SRLM_OK;
}

/* Collective. The newest trainer checkpoint whose files match its manifest, or
 * -1. Rank 0 lists the checkpoints; newest first, all ranks verify one together
 * (each hashes its share of the files: ckpt_manifest.h) and reach the same
 * verdict. A checkpoint that fails is not used: a warning names the file and
 * what differs, rank 0 removes the folder (its steps are redone, and it must not
 * outlive the good ones when keep_last_n prunes), and the next older one is
 * tried; none good: the run starts from the beginning. */
static srlm_status find_latest(trainer *t, long *latest) {
    const char *out = t->job->out_dir;
    long *steps = NULL;
    int n = 0;
    *latest = -1;
    if (t->rank == 0) SRLM_CHECK(list_checkpoints(out, &steps, &n));
    int64_t count = n;
    srlm_status st = srlm_comm_broadcast(t->world, &count, sizeof count, 0);
    int64_t *all = st == SRLM_OK ? calloc((size_t)count + 1, sizeof *all) : NULL;
    if (st == SRLM_OK && !all) st = SRLM_ERR(SRLM_FAILED, "out of memory listing checkpoints");
    for (int i = 0; st == SRLM_OK && t->rank == 0 && i < n; i++) all[i] = steps[i];
    if (st == SRLM_OK) st = srlm_comm_broadcast(t->world, all, sizeof *all * (size_t)count, 0);
    for (int64_t i = count - 1; st == SRLM_OK && i >= 0; i--) {
        char sd[1100], why[2048];
        int ok = 0;
        double bytes = 0, t0 = now_s();
        step_dir(sd, sizeof sd, out, (long)all[i]);
        st = srlm_ckpt_manifest_verify(t->world, sd, &ok, why, sizeof why, &bytes);
        if (st != SRLM_OK) break;
        if (ok) {
            SRLM_INFO("%s: %s verified against its manifest (%.1f MiB hashed in %.2f s)", t->kind_name, sd,
                      bytes / 1048576.0, now_s() - t0);
            *latest = (long)all[i];
            break;
        }
        if (t->rank != 0) continue;
        char failed[1200] = "";
        int err = srlm_remove_tree_quiet(sd, failed, sizeof failed);
        SRLM_WARN("%s: checkpoint %s is not used: %s; %s", t->kind_name, sd, why,
                  err ? "it could not be removed (it is replaced when its step is redone)"
                      : "removed, its steps are redone");
        if (err) SRLM_WARN("%s: cannot remove %s: %s", t->kind_name, failed, strerror(err));
        if (i > 0) SRLM_WARN("%s: trying the next older checkpoint, step %ld", t->kind_name, (long)all[i - 1]);
        else SRLM_WARN("%s: no usable checkpoint left: starting from the beginning", t->kind_name);
    }
    free(all);
    free(steps);
    return st;
}

/* Keep the newest keep_last_n trainer checkpoints. */
static srlm_status prune_checkpoints(trainer *t) {
    long *steps;
    int n;
    SRLM_CHECK(list_checkpoints(t->job->out_dir, &steps, &n));
    srlm_status st = SRLM_OK;
    for (int i = 0; i + t->tc->keep_last_n < n && st == SRLM_OK; i++) {
        char dir[1100];
        step_dir(dir, sizeof dir, t->job->out_dir, steps[i]);
        st = srlm_remove_tree(dir);
    }
    free(steps);
    return st;
}

/* Collective. Rank 0 makes step-N.tmp; the replicas of dp group 0 write the model
 * (gathered over tp to its rank 0); every rank writes its optimizer shard; the
 * ranks hash every file and rank 0 writes manifest.json (ckpt_manifest.h); then
 * rank 0 renames the folder into place: it exists complete or not at all, and a
 * later change to any of its files is found when a run resumes from it. */
static srlm_status save_checkpoint(trainer *t) {
    char dir[1100], tmp[1200], model_dir[1300];
    srlm_watchdog_progress("saving a checkpoint");
    step_dir(dir, sizeof dir, t->job->out_dir, t->st.step);
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    snprintf(model_dir, sizeof model_dir, "%s/model", tmp);
    srlm_status st = SRLM_OK;
    if (t->rank == 0) {
        SRLM_CHECK_GOTO(srlm_remove_tree(tmp), st, fail);
        SRLM_CHECK_GOTO(srlm_mkdir_p(tmp), st, fail);
    }
    SRLM_CHECK_GOTO(srlm_comm_barrier(t->world), st, fail);
    /* fp32 whatever model.dtype says: resuming must continue from the exact bits */
    SRLM_CHECK_GOTO(zero1_master_lent(t), st, fail);
    if (t->dp_rank == 0) st = srlm_llama_save(&t->m, model_dir, SRLM_F32, t->tok_path, 0);
    zero1_master_lent_end(t);
    SRLM_CHECK_GOTO(st, st, fail);
    SRLM_CHECK_GOTO(zero1_sync_moments(t, 1), st, fail);
    SRLM_CHECK_GOTO(srlm_train_state_save(tmp, &t->st, t->adam_m, t->adam_v, (size_t)t->n_shard), st, fail);
    /* tests: a failure or kill -9 while the checkpoint is half written (no manifest, no rename) */
    SRLM_CHECK_GOTO(srlm_fault_point(t->kind_name, t->st.step, t->rank, "checkpoint"), st, fail);
    SRLM_CHECK_GOTO(srlm_comm_barrier(t->world), st, fail);
    /* every file is read back and hashed once here (spread over the ranks) */
    SRLM_CHECK_GOTO(srlm_ckpt_manifest_write(t->world, tmp), st, fail);
    if (t->rank == 0) {
        SRLM_CHECK_GOTO(srlm_remove_tree(dir), st, fail);
        if (rename(tmp, dir) != 0) {
            st = SRLM_ERR(SRLM_FAILED, "cannot rename %s to %s: %s", tmp, dir, strerror(errno));
            goto fail;
        }
        char parent[1100];
        snprintf(parent, sizeof parent, "%s/train", t->job->out_dir);
        SRLM_CHECK(srlm_fsync_dir(parent));
        SRLM_CHECK(prune_checkpoints(t));
    }
    return srlm_comm_barrier(t->world);
fail:
    /* a half-written step-N.tmp is never used (no rename); removing it now gives
     * its space back on a full disk, so the older checkpoints stay the newest */
    if (t->rank == 0) {
        char ignored[2048];
        (void)srlm_remove_tree_quiet(tmp, ignored, sizeof ignored);
    }
    return st;
}

/* ---- one micro-batch ---- */

/* SFT sequences of examples: right-padded rows of the id matrix; returns T. */
static int sft_sequences(trainer *t, const int *ex, int n) {
    int T = 1;
    for (int i = 0; i < n; i++) {
        const srlm_sft_example *e = &t->sft.ex[ex[i]];
        if (e->n_prompt + e->n_response > T) T = e->n_prompt + e->n_response;
    }
    for (int i = 0; i < n; i++) {
        const srlm_sft_example *e = &t->sft.ex[ex[i]];
        int len = e->n_prompt + e->n_response, *row = t->ids + (size_t)i * T;
        memcpy(row, e->ids, sizeof(int) * (size_t)len);
        memset(row + len, 0, sizeof(int) * (size_t)(T - len));
        t->len[i] = len;
        t->first[i] = e->n_prompt - 1; /* the prompt's rows predict no response token */
    }
    return T;
}

/* Sum of the response tokens' log-probs of sequence b: rows n_prompt-1 .. len-2. */
static double response_logp(const trainer *t, int b, int T, int n_prompt) {
    double s = 0;
    for (int r = n_prompt - 1; r < t->len[b] - 1; r++) s += t->logp[(size_t)b * T + r];
    return s;
}

static void set_response_grad(trainer *t, int b, int T, int n_prompt, float value) {
    for (int r = n_prompt - 1; r < t->len[b] - 1; r++) t->dlogp[(size_t)b * T + r] = value;
}

/* DPO sequences of pairs [p0, p0 + n): 2i = prompt + chosen, 2i + 1 = prompt + rejected. */
static int dpo_sequences(trainer *t, const int *pairs, int n) {
    int T = 1;
    for (int i = 0; i < n; i++) {
        const srlm_dpo_example *e = &t->dpo.ex[pairs[i]];
        int longest = e->n_prompt + (e->n_chosen > e->n_rejected ? e->n_chosen : e->n_rejected);
        if (longest > T) T = longest;
    }
    for (int i = 0; i < n; i++) {
        const srlm_dpo_example *e = &t->dpo.ex[pairs[i]];
        for (int k = 0; k < 2; k++) {
            int *row = t->ids + (size_t)(2 * i + k) * T, nr = k ? e->n_rejected : e->n_chosen;
            memcpy(row, e->prompt, sizeof(int) * (size_t)e->n_prompt);
            memcpy(row + e->n_prompt, k ? e->rejected : e->chosen, sizeof(int) * (size_t)nr);
            memset(row + e->n_prompt + nr, 0, sizeof(int) * (size_t)(T - e->n_prompt - nr));
            t->len[2 * i + k] = e->n_prompt + nr;
            t->first[2 * i + k] = e->n_prompt - 1;
        }
    }
    return T;
}

/* Tokens example i of the data puts in a micro-batch. */
static int example_tokens(const trainer *t, int i) {
    return t->job->kind == SRLM_TRAIN_SFT ? srlm_sft_example_tokens(&t->sft.ex[i])
                                          : srlm_dpo_example_tokens(&t->dpo.ex[i]);
}

/* ---- reference log-probs (DPO): from the starting weights, once ---- */

static srlm_status reference_logps(trainer *t) {
    int missing = 0;
    for (int i = 0; i < t->dpo.n; i++) missing += !t->dpo.ex[i].has_ref;
    if (!missing) return SRLM_OK;
    char path[1200];
    snprintf(path, sizeof path, "%s/reference_logps.jsonl", t->job->out_dir);
    /* rank 0 decides for everyone: another rank looking for itself could find the
     * file rank 0 writes below in this very run and skip the collectives */
    int32_t exists = t->rank == 0 && srlm_path_exists(path);
    SRLM_CHECK(srlm_comm_broadcast(t->world, &exists, sizeof exists, 0));
    FILE *f = exists ? fopen(path, "r") : NULL;
    if (exists && !f) return SRLM_ERR(SRLM_FAILED, "%s: cannot open: %s", path, strerror(errno));
    if (f) { /* computed by an earlier invocation, before any update */
        int n = 0;
        double c, r;
        while (n < t->dpo.n && fscanf(f, "{\"ref_logp_chosen\": %lf, \"ref_logp_rejected\": %lf}\n", &c, &r) == 2) {
            t->dpo.ex[n].ref_c = c;
            t->dpo.ex[n].ref_r = r;
            t->dpo.ex[n].has_ref = 1;
            n++;
        }
        fclose(f);
        if (n != t->dpo.n)
            return SRLM_ERR(SRLM_BAD_INPUT, "%s holds %d reference log-probs, the data has %d pairs: "
                            "remove it (it is recomputed) or the output folder", path, n, t->dpo.n);
        return SRLM_OK;
    }
    if (t->st.step > 0)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s is missing but training already started: the reference "
                        "log-probs cannot be recomputed from trained weights", path);
    SRLM_INFO("%s: computing reference log-probs of %d pairs from the starting weights", t->kind_name, t->dpo.n);
    /* each dp replica computes its share of the pairs [lo, hi) (its tp ranks
     * the same ones); a sum over the replicas, zeros elsewhere, gives everyone
     * all of them */
    const int per = t->micro_seqs / 2, n_pairs = t->dpo.n;
    const int lo = (int)((long)n_pairs * t->dp_rank / t->dp), hi = (int)((long)n_pairs * (t->dp_rank + 1) / t->dp);
    int *pairs = malloc(sizeof(int) * ((size_t)per + (size_t)n_pairs));
    double *ref = calloc(2 * (size_t)n_pairs, sizeof(double));
    if (!pairs || !ref) {
        free(pairs);
        free(ref);
        return SRLM_ERR(SRLM_FAILED, "out of memory for the reference log-probs of %d pairs", n_pairs);
    }
    int *tok = pairs + per;
    for (int i = lo; i < hi; i++) tok[i] = example_tokens(t, i);
    srlm_status st = SRLM_OK;
    for (int p0 = lo, n; p0 < hi && st == SRLM_OK; p0 += n) {
        n = srlm_micro_batch_take(tok + p0, hi - p0, per, t->tc->micro_batch_tokens);
        for (int i = 0; i < n; i++) pairs[i] = p0 + i;
        int T = dpo_sequences(t, pairs, n);
        srlm_train_batch b = {2 * n, T, t->ids, t->len, 0.0f, 0, t->first};
        st = srlm_llama_train_forward(&t->m, &t->acts, &b, t->logp);
        for (int i = 0; i < n && st == SRLM_OK; i++) {
            const int np = t->dpo.ex[p0 + i].n_prompt;
            ref[2 * (p0 + i)] = response_logp(t, 2 * i, T, np);
            ref[2 * (p0 + i) + 1] = response_logp(t, 2 * i + 1, T, np);
        }
    }
    if (st == SRLM_OK) st = srlm_comm_allreduce(t->dp_comm, ref, 2 * (size_t)n_pairs, SRLM_COMM_F64, SRLM_REDUCE_SUM);
    for (int i = 0; i < n_pairs && st == SRLM_OK; i++) {
        srlm_dpo_example *e = &t->dpo.ex[i];
        e->ref_c = ref[2 * i];
        e->ref_r = ref[2 * i + 1];
        e->has_ref = 1;
    }
    free(pairs);
    free(ref);
    SRLM_CHECK(st);
    if (t->rank != 0) return srlm_comm_barrier(t->world);
    /* one text file, written atomically: the truth for every later invocation */
    size_t cap = (size_t)t->dpo.n * 128 + 1, used = 0; /* a line is at most ~90 bytes */
    char *text = malloc(cap);
    if (!text) return SRLM_ERR(SRLM_FAILED, "out of memory");
    for (int i = 0; i < t->dpo.n; i++)
        used += (size_t)snprintf(text + used, cap - used, "{\"ref_logp_chosen\": %.17g, \"ref_logp_rejected\": %.17g}\n",
                                 t->dpo.ex[i].ref_c, t->dpo.ex[i].ref_r);
    st = srlm_write_file_atomic(path, text, used);
    free(text);
    SRLM_CHECK(st);
    return srlm_comm_barrier(t->world);
}

/* ---- one optimizer step ---- */

typedef struct {
    double loss, grad_norm, lr, tokens;
    srlm_dpo_metrics dpo;
    int    skipped;            /* non-finite loss or gradient, or a loss spike: no update */
    int    spike;              /* skipped as a loss spike */
    double spike_mean;         /* the running mean it was measured against */
} step_result;

/* ---- loss spikes (train.X.loss_spike_factor > 0) ----
 * A step whose loss is above factor x the mean loss of the last loss_spike_window
 * good (not skipped) steps is treated like a non-finite one: no update, counted
 * towards max_bad_steps. Checking starts once the window is full. The window is
 * part of the trainer state (srlm.recent_losses, exact), so a resumed run
 * measures against the same numbers as an uninterrupted one. */

static int spike_window(const trainer *t) {
    int w = t->tc->loss_spike_window;
    return w < 1 ? 1 : w > SRLM_LOSS_WINDOW_MAX ? SRLM_LOSS_WINDOW_MAX : w;
}

/* 1 when `loss` is a spike; *mean = the running mean (0 while warming up). */
static int is_loss_spike(const trainer *t, double loss, double *mean) {
    const int w = spike_window(t);
    *mean = 0;
    if (t->tc->loss_spike_factor <= 0 || t->st.n_recent < w) return 0;
    double sum = 0;
    for (int i = t->st.n_recent - w; i < t->st.n_recent; i++) sum += t->st.recent_loss[i];
    *mean = sum / w;
    return *mean > 0 && loss > t->tc->loss_spike_factor * *mean;
}

/* A good step's loss joins the window (the oldest leaves when it is full). */
static void record_good_loss(trainer *t, double loss) {
    const int w = spike_window(t);
    while (t->st.n_recent >= w) {
        memmove(t->st.recent_loss, t->st.recent_loss + 1, sizeof(double) * (size_t)(t->st.n_recent - 1));
        t->st.n_recent--;
    }
    t->st.recent_loss[t->st.n_recent++] = loss;
}

static srlm_status train_step(trainer *t, step_result *res) {
    const srlm_train_config *tc = t->tc;
    const int bs = tc->batch_size, per = t->job->kind == SRLM_TRAIN_SFT ? t->micro_seqs : t->micro_seqs / 2;
    const long step = t->st.step;
    const uint64_t step_key = srlm_rng_key(srlm_rng_key((uint64_t)t->cfg->run.seed, 0x64726f70ull), (uint64_t)step);
    int ex[4096], tok[4096]; /* the batch's examples and their token counts */
    if (bs > (int)(sizeof ex / sizeof ex[0]))
        return SRLM_ERR(SRLM_BAD_INPUT, "batch_size %d: at most %d", bs, (int)(sizeof ex / sizeof ex[0]));
    for (int i = 0; i < bs; i++) {
        ex[i] = example_at(t, step * (long)bs + i);
        tok[i] = example_tokens(t, ex[i]);
    }
    memset(res, 0, sizeof *res);

    /* SFT: the loss is the sum over the GLOBAL batch's target tokens divided by their
     * count; every rank knows the whole batch, so no communication is needed for it */
    long n_targets = 0;
    if (t->job->kind == SRLM_TRAIN_SFT)
        for (int i = 0; i < bs; i++) n_targets += t->sft.ex[ex[i]].n_response;

    /* this dp replica's share of the batch: examples [lo, hi) */
    const int lo = (int)((long)bs * t->dp_rank / t->dp), hi = (int)((long)bs * (t->dp_rank + 1) / t->dp);
    double part[7] = {0}; /* loss, 4 DPO metrics, tokens, skipped: summed over replicas */
    int wrote = 0;        /* the first backward writes the gradients, the later ones add */
    for (int i0 = lo, n; i0 < hi; i0 += n) {
        n = srlm_micro_batch_take(tok + i0, hi - i0, per, tc->micro_batch_tokens);
        int T, B;
        if (t->job->kind == SRLM_TRAIN_SFT) { T = sft_sequences(t, ex + i0, n); B = n; }
        else { T = dpo_sequences(t, ex + i0, n); B = 2 * n; }
        /* masks keyed by the batch position of the micro-batch's first example */
        srlm_train_batch b = {B, T, t->ids, t->len, (float)tc->dropout, srlm_rng_key(step_key, (uint64_t)i0),
                              t->first};
        SRLM_CHECK(srlm_llama_train_forward(&t->m, &t->acts, &b, t->logp));
        memset(t->dlogp, 0, sizeof(float) * (size_t)B * T);
        for (int k = 0; k < B; k++) part[5] += t->len[k];
        if (t->job->kind == SRLM_TRAIN_SFT) {
            for (int k = 0; k < n; k++) {
                int np = t->sft.ex[ex[i0 + k]].n_prompt;
                part[0] -= response_logp(t, k, T, np) / (double)n_targets;
                set_response_grad(t, k, T, np, -1.0f / (float)n_targets);
            }
        } else {
            double pc[64], pr[64], rc[64], rr[64], dc[64], dr[64];
            int nc[64], nrj[64];
            for (int k = 0; k < n; k++) {
                const srlm_dpo_example *e = &t->dpo.ex[ex[i0 + k]];
                pc[k] = response_logp(t, 2 * k, T, e->n_prompt);
                pr[k] = response_logp(t, 2 * k + 1, T, e->n_prompt);
                rc[k] = e->ref_c;
                rr[k] = e->ref_r;
                nc[k] = e->n_chosen;
                nrj[k] = e->n_rejected;
            }
            srlm_dpo_params dp = {tc->loss == SRLM_DPO_IPO ? SRLM_DPO_KIND_IPO : SRLM_DPO_KIND_SIGMOID,
                                  tc->beta, tc->label_smoothing};
            srlm_dpo_metrics mt;
            srlm_status st = srlm_dpo_compute(&dp, n, pc, pr, rc, rr, nc, nrj, &mt, dc, dr);
            if (st == SRLM_BAD_INPUT) { part[6] = 1; continue; } /* non-finite log-probs */
            SRLM_CHECK(st);
            double w = (double)n / bs; /* micro-batch mean -> global batch mean */
            part[0] += w * mt.loss;
            part[1] += w * mt.reward_chosen;
            part[2] += w * mt.reward_rejected;
            part[3] += w * mt.reward_margin;
            part[4] += w * mt.reward_accuracy;
            for (int k = 0; k < n; k++) {
                int np = t->dpo.ex[ex[i0 + k]].n_prompt;
                set_response_grad(t, 2 * k, T, np, (float)(w * dc[k]));
                set_response_grad(t, 2 * k + 1, T, np, (float)(w * dr[k]));
            }
        }
        SRLM_CHECK(srlm_llama_train_backward(&t->m, &t->acts, &b, t->dlogp, &t->g, wrote));
        wrote = 1;
    }
    /* nothing ran here (more replicas than examples, or every micro-batch skipped) */
    if (!wrote) SRLM_CHECK(srlm_llama_grads_zero(&t->g, &t->m));
    /* tp ranks of a replica computed the same numbers: sum over replicas only */
    SRLM_CHECK(srlm_comm_allreduce(t->dp_comm, part, 7, SRLM_COMM_F64, SRLM_REDUCE_SUM));
    res->loss = part[0];
    res->dpo = (srlm_dpo_metrics){part[0], part[1], part[2], part[3], part[4]};
    res->tokens = part[5];
    res->skipped = part[6] > 0;

    /* ZeRO-1: sum the replicas' gradients, each rank keeping its 1/dp shard */
    SRLM_CHECK(srlm_llama_grads_reduce_replicas(&t->m, &t->g));
    SRLM_CHECK(zero1_reduce_scatter(t));
    double sq;
    SRLM_CHECK(zero1_sum_squares(t, &sq));
    SRLM_CHECK(srlm_comm_allreduce(t->world, &sq, 1, SRLM_COMM_F64, SRLM_REDUCE_SUM));
    res->grad_norm = sqrt(sq);
    res->lr = srlm_lr_at(tc, step, t->total_steps);
    if (res->skipped || !isfinite(res->loss) || !isfinite(res->grad_norm)) {
        res->skipped = 1; /* every rank sees the same global numbers: all skip */
        return SRLM_OK;
    }
    if (tc->loss_spike_factor > 0) {
        /* the loss is global already; the verdict is reduced too, so that no
         * rounding difference between ranks can split them */
        int32_t spike = is_loss_spike(t, res->loss, &res->spike_mean);
        SRLM_CHECK(srlm_comm_allreduce(t->world, &spike, 1, SRLM_COMM_I32, SRLM_REDUCE_MAX));
        if (spike) {
            res->skipped = res->spike = 1; /* before any change to the weights or moments */
            return SRLM_OK;
        }
    }
    double clip = srlm_clip_factor(res->grad_norm, tc->grad_clip);
    if (clip < 1.0) SRLM_CHECK(t->be->ops->scale(t->be, &t->gshard_v, (float)clip));
    srlm_adamw_hparams h = srlm_adamw_hparams_make(tc, res->lr);
    SRLM_CHECK(zero1_adamw(t, &h, step));
    return zero1_allgather_params(t);
}

/* ---- progress and metrics ---- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void format_eta(char *buf, size_t cap, double s) {
    if (!(s >= 0) || s > 1e8) { snprintf(buf, cap, "?"); return; }
    long x = (long)s;
    snprintf(buf, cap, "%ld:%02ld:%02ld", x / 3600, x / 60 % 60, x % 60);
}

/* Keep only the metrics lines of steps already done (a resumed run rewrites the rest). */
static srlm_status open_metrics(trainer *t, FILE **out) {
    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", t->job->out_dir);
    FILE *f = fopen(path, "r");
    char *kept = NULL;
    size_t kept_n = 0, cap = 0;
    if (f) {
        char *line = NULL;
        size_t lcap = 0;
        ssize_t n;
        while ((n = getline(&line, &lcap, f)) > 0) {
            const char *p = strstr(line, "\"step\": ");
            long s = p ? strtol(p + 8, NULL, 10) : -1;
            if (s < 1 || s > t->st.step || line[n - 1] != '\n') continue;
            if (kept_n + (size_t)n + 1 > cap) {
                cap = (kept_n + (size_t)n + 1) * 2;
                char *grown = realloc(kept, cap);
                if (!grown) { free(kept); free(line); fclose(f); return SRLM_ERR(SRLM_FAILED, "out of memory"); }
                kept = grown;
            }
            memcpy(kept + kept_n, line, (size_t)n);
            kept_n += (size_t)n;
        }
        free(line);
        fclose(f);
    }
    srlm_status st = srlm_write_file_atomic(path, kept ? kept : "", kept_n);
    free(kept);
    SRLM_CHECK(st);
    *out = fopen(path, "a");
    if (!*out) return SRLM_ERR(SRLM_FAILED, "%s: cannot open for appending: %s", path, strerror(errno));
    return SRLM_OK;
}

/* A JSON number, or null for NaN and infinities (which JSON cannot hold). */
static const char *json_num(char *buf, size_t cap, double x) {
    if (isfinite(x)) snprintf(buf, cap, "%.9g", x);
    else snprintf(buf, cap, "null");
    return buf;
}

/* A line that could not be written (a full disk) stops the run: metrics.jsonl
 * must not silently miss steps. A resumed run rewrites the lines after its step. */
static srlm_status write_metrics(trainer *t, FILE *f, const step_result *r, double elapsed) {
    char a[32], b[32];
    fprintf(f, "{\"phase\": \"%s\", \"step\": %ld, \"loss\": %s, \"lr\": %.9g, \"grad_norm\": %s, "
            "\"tokens\": %.0f, \"skipped\": %s, \"time_s\": %.3f",
            t->kind_name, t->st.step, json_num(a, sizeof a, r->loss), r->lr,
            json_num(b, sizeof b, r->grad_norm), r->tokens, r->skipped ? "true" : "false", elapsed);
    if (r->spike) fprintf(f, ", \"loss_spike\": true");
    if (t->job->kind == SRLM_TRAIN_DPO)
        fprintf(f, ", \"rewards/chosen\": %.9g, \"rewards/rejected\": %.9g, \"rewards/margins\": %.9g, "
                "\"rewards/accuracies\": %.9g", r->dpo.reward_chosen, r->dpo.reward_rejected,
                r->dpo.reward_margin, r->dpo.reward_accuracy);
    fprintf(f, "}\n");
    if (fflush(f) != 0 || ferror(f))
        return SRLM_ERR(SRLM_FAILED, "cannot write %s/metrics.jsonl: %s", t->job->out_dir, strerror(errno));
    return SRLM_OK;
}

/* ---- setup and the loop ---- */

static void trainer_close(trainer *t) {
    srlm_sft_data_free(&t->sft);
    srlm_dpo_data_free(&t->dpo);
    /* the device communicators first (before the backend, whose stream they
     * use, and before any device free, which waits for that stream) */
    srlm_comm_free(t->dp_dev);
    t->dp_dev = NULL;
    if (t->opened & 2) srlm_llama_free_device_comms(&t->m);
    if (t->opened & 8) srlm_train_acts_free(&t->acts, &t->m);
    if (t->opened & 4) srlm_llama_grads_free(&t->g, &t->m);
    if (t->own_views) {
        if (t->m_v.data) t->be->ops->free(t->be, &t->m_v);
        if (t->v_v.data) t->be->ops->free(t->be, &t->v_v);
        if (t->dp > 1 && t->gshard_v.data) t->be->ops->free(t->be, &t->gshard_v);
    }
    if (t->master_v.data) t->be->ops->free(t->be, &t->master_v);
    if (t->opened & 2) srlm_llama_free(&t->m);
    if (t->opened & 1) srlm_ckpt_close(&t->ck);
    srlm_tokenizer_free(t->tok);
    if (t->be) srlm_backend_free(t->be);
    free(t->adam_m);
    free(t->gshard);
    free(t->host_flat);
    free(t->segs);
    free(t->perm);
    free(t->ids);
    free(t->logp);
}

static srlm_status trainer_open(trainer *t, long *resume_step) {
    const srlm_config *c = t->cfg;
    const srlm_train_config *tc = t->tc;
    if (tc->batch_size < 1 || tc->micro_batch_size < 1)
        return SRLM_ERR(SRLM_BAD_INPUT, "batch_size and micro_batch_size must be >= 1");
    /* topology: NULL communicators mean this process alone */
    t->topo = t->job->topo;
    t->world = t->topo ? t->topo->world : NULL;
    t->tp_comm = t->topo ? t->topo->tp_comm : NULL;
    t->dp_comm = t->topo ? t->topo->dp_comm : NULL;
    t->rank = srlm_comm_rank(t->world);
    t->dp = t->topo ? t->topo->dp : 1;
    t->dp_rank = t->topo ? t->topo->dp_rank : 0;
    if (t->rank == 0) { /* before anything of this job writes there: a killed run's temporary files go */
        SRLM_CHECK(srlm_mkdir_p(t->job->out_dir));
        srlm_remove_atomic_leftovers(t->job->out_dir);
    }
    /* everyone resumes from the same verified checkpoint */
    SRLM_CHECK(find_latest(t, resume_step));

    if (c->model.tokenizer && *c->model.tokenizer) snprintf(t->tok_path, sizeof t->tok_path, "%s", c->model.tokenizer);
    else snprintf(t->tok_path, sizeof t->tok_path, "%s/tokenizer.model", c->model.path);
    SRLM_CHECK(srlm_tokenizer_load(&t->tok, t->tok_path));

    /* weights: the newest checkpoint of this run, else the starting model */
    char model_dir[1200];
    if (*resume_step >= 0) {
        char sd[1100];
        step_dir(sd, sizeof sd, t->job->out_dir, *resume_step);
        snprintf(model_dir, sizeof model_dir, "%s/model", sd);
    } else {
        snprintf(model_dir, sizeof model_dir, "%s", c->model.path);
    }
    SRLM_CHECK(srlm_fault_point(t->kind_name, 0, t->rank, "load"));
    SRLM_CHECK(srlm_ckpt_open(&t->ck, model_dir));
    t->opened |= 1;
    /* one GPU per rank: this rank's index on its node picks the device */
    SRLM_CHECK(srlm_backend_new(c->backend.name, c->backend.threads, t->topo ? t->topo->local_rank : 0,
                                &t->be));
    t->be->dtype = c->backend.dtype;
    SRLM_CHECK(srlm_llama_load_for_training(&t->m, &t->ck, t->be, t->tp_comm));
    t->opened |= 2;
    if (srlm_tokenizer_vocab_size(t->tok) > t->m.cfg.vocab_size)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s has %d pieces but the model in %s has only %d embeddings "
                        "(vocab_size): they do not belong together", t->tok_path,
                        srlm_tokenizer_vocab_size(t->tok), model_dir, t->m.cfg.vocab_size);

    /* a sliding window (Mistral) bounds what the model computes as it was trained */
    char key[40];
    snprintf(key, sizeof key, "train.%s.max_seq_len", t->job->kind == SRLM_TRAIN_SFT ? "sft" : "dpo");
    SRLM_CHECK(srlm_hf_check_seq_len(&t->m.cfg, tc->max_seq_len, 1, key));

    /* data */
    const int max_len = tc->max_seq_len;
    if (t->job->kind == SRLM_TRAIN_SFT) {
        SRLM_CHECK(srlm_sft_data_load(&t->sft, t->job->data_path, t->tok, t->m.cfg.vocab_size, max_len,
                                      tc->truncation, NULL));
        t->n_examples = t->sft.n;
        for (int i = 0; i < t->sft.n; i++) {
            int n = t->sft.ex[i].n_prompt + t->sft.ex[i].n_response;
            if (n > t->max_len) t->max_len = n;
        }
        t->micro_seqs = tc->micro_batch_size;
    } else {
        SRLM_CHECK(srlm_dpo_data_load(&t->dpo, t->job->data_path, t->tok, t->m.cfg.vocab_size, max_len,
                                      tc->truncation, NULL));
        t->n_examples = t->dpo.n;
        for (int i = 0; i < t->dpo.n; i++) {
            const srlm_dpo_example *e = &t->dpo.ex[i];
            int n = e->n_prompt + (e->n_chosen > e->n_rejected ? e->n_chosen : e->n_rejected);
            if (n > t->max_len) t->max_len = n;
        }
        t->micro_seqs = 2 * tc->micro_batch_size;
        if (tc->micro_batch_size > 64)
            return SRLM_ERR(SRLM_BAD_INPUT, "train.dpo.micro_batch_size %d: at most 64", tc->micro_batch_size);
    }
    const srlm_data_counts *dc = t->job->kind == SRLM_TRAIN_SFT ? &t->sft.counts : &t->dpo.counts;
    SRLM_INFO("%s: %s: %ld records, %ld kept (%ld truncated), skipped: %ld too long, %ld empty, %ld chosen == rejected",
              t->kind_name, t->job->data_path, dc->read, dc->kept, dc->truncated, dc->skipped_too_long,
              dc->skipped_empty, dc->skipped_equal);
    t->total_steps = (long)ceil(tc->epochs * t->n_examples / tc->batch_size);
    if (t->total_steps < 1) t->total_steps = 1;

    /* buffers; the optimizer state is this rank's shard of the flat layout padded to
     * a multiple of dp, so no tensor size has to divide by anything */
    const size_t N = (size_t)t->micro_seqs * (size_t)t->max_len;
    t->n_shard = (t->m.n_params_local + t->dp - 1) / t->dp;
    t->n_pad = t->n_shard * t->dp;
    t->shard_off = t->n_shard * t->dp_rank;
    /* before the gradients: the load's whole fp32 master gives way to this rank's shard */
    SRLM_CHECK(zero1_master_new(t));
    t->adam_m = calloc(2 * (size_t)t->n_shard, sizeof(float));
    t->perm = malloc(sizeof(int) * (size_t)t->n_examples);
    t->ids = malloc(sizeof(int) * (N + 2 * (size_t)t->micro_seqs));
    t->logp = malloc(sizeof(float) * 2 * N);
    if (!t->adam_m || !t->perm || !t->ids || !t->logp)
        return SRLM_ERR(SRLM_FAILED, "out of memory for optimizer state (%lld parameters in this shard)",
                        (long long)t->n_shard);
    t->adam_v = t->adam_m + t->n_shard;
    t->len = t->ids + N;
    t->first = t->len + t->micro_seqs;
    t->dlogp = t->logp + N;
    t->perm_epoch = -1;
    SRLM_CHECK(srlm_llama_grads_new(&t->g, &t->m, t->n_pad));
    t->opened |= 4;
    SRLM_CHECK(zero1_views_new(t));
    /* the activations hold a micro-batch's real tokens, packed: micro_batch_tokens
     * of them when that caps the micro-batches below their sequences' worst case */
    t->act_tokens = (size_t)srlm_train_micro_tokens(tc, t->job->kind == SRLM_TRAIN_DPO, t->max_len);
    for (int i = 0; i < t->n_examples; i++) /* an example over the cap goes alone (the config check forbids it) */
        if ((size_t)example_tokens(t, i) > t->act_tokens) t->act_tokens = (size_t)example_tokens(t, i);
    SRLM_CHECK(srlm_train_acts_new_chunked(&t->acts, &t->m, (int)t->act_tokens, tc->recompute,
                                           tc->logits_chunk > 0 && (size_t)tc->logits_chunk < t->act_tokens
                                               ? tc->logits_chunk
                                               : (int)t->act_tokens));
    t->opened |= 8;
    SRLM_CHECK(srlm_llama_segments(&t->m, &t->segs, &t->n_segs));

    /* state */
    memset(&t->st, 0, sizeof t->st);
    if (*resume_step >= 0) {
        char sd[1100];
        step_dir(sd, sizeof sd, t->job->out_dir, *resume_step);
        SRLM_CHECK(zero1_load_state(t, sd));
        SRLM_CHECK(zero1_sync_moments(t, 0));
        if (t->st.config_hash != srlm_config_hash(c))
            return SRLM_ERR(SRLM_BAD_INPUT, "%s was written with a different config (hash %016llx, now %016llx): "
                            "use another output folder, or restore the config", sd,
                            (unsigned long long)t->st.config_hash, (unsigned long long)srlm_config_hash(c));
    }
    snprintf(t->st.kind, sizeof t->st.kind, "%s", t->kind_name);
    t->st.total_steps = t->total_steps;
    t->st.config_hash = srlm_config_hash(c);
    t->st.tp = t->m.tp_size;
    t->st.dp = t->dp;
    t->st.rank = t->rank;
    t->st.rng_key = (uint64_t)c->run.seed;
    return SRLM_OK;
}

srlm_status srlm_train(const srlm_config *cfg, const srlm_train_job *job) {
    trainer t;
    memset(&t, 0, sizeof t);
    t.cfg = cfg;
    t.job = job;
    t.tc = job->kind == SRLM_TRAIN_SFT ? &cfg->train.sft : &cfg->train.dpo;
    t.kind_name = job->kind == SRLM_TRAIN_SFT ? "sft" : "dpo";
    g_stop_requested = 0;
    long resume = -1;
    FILE *metrics = NULL;
    srlm_status st;
    SRLM_CHECK_GOTO(trainer_open(&t, &resume), st, done);
    if (job->kind == SRLM_TRAIN_DPO) SRLM_CHECK_GOTO(reference_logps(&t), st, done);
    if (resume >= 0)
        SRLM_INFO("%s: resuming from step %ld of %ld (%s/train/step-%08ld)", t.kind_name, resume, t.total_steps,
                  job->out_dir, resume);
    char micro[96];
    if (t.tc->micro_batch_tokens > 0)
        snprintf(micro, sizeof micro, "up to %d and %d tokens; activations for %zu tokens", t.tc->micro_batch_size,
                 t.tc->micro_batch_tokens, t.act_tokens);
    else snprintf(micro, sizeof micro, "%d; activations for %zu tokens", t.tc->micro_batch_size, t.act_tokens);
    SRLM_INFO("%s: %d examples, %ld steps of %d (micro-batches of %s), %lld parameters, lr %g -> %g",
              t.kind_name, t.n_examples, t.total_steps, t.tc->batch_size, micro, (long long)t.m.n_params_local,
              t.tc->lr, t.tc->lr_min);
    if (t.rank == 0) SRLM_CHECK_GOTO(open_metrics(&t, &metrics), st, done);

    const double t0 = now_s();
    double last_print = 0, tokens = 0;
    long done_here = 0, skipped_total = 0, spikes_total = 0;
    const long every = t.tc->checkpoint_every > 0 ? t.tc->checkpoint_every : t.total_steps;
    while (t.st.step < t.total_steps) {
        step_result r = {0};
        srlm_watchdog_progress("a training step");
        SRLM_CHECK_GOTO(srlm_fault_point(t.kind_name, t.st.step, t.rank, "step"), st, done);
        SRLM_CHECK_GOTO(train_step(&t, &r), st, done);
        t.st.step++;
        t.st.data_pos = t.st.step * (long)t.tc->batch_size;
        t.st.data_epoch = t.st.data_pos / t.n_examples;
        done_here++;
        tokens += r.tokens;
        if (metrics) SRLM_CHECK_GOTO(write_metrics(&t, metrics, &r, now_s() - t0), st, done);
        /* the count of bad steps in a row is trainer state: it survives a resume */
        if (r.skipped) {
            const long bad = ++t.st.bad_in_row;
            skipped_total++;
            if (r.spike) {
                spikes_total++;
                if (t.rank == 0)
                    SRLM_WARN("%s step %ld: loss spike: loss %.6g is above the threshold %.6g (train.%s.loss_spike_factor "
                              "%g x %.6g, the mean loss of the last %d good steps): step skipped, weights unchanged "
                              "(%ld bad in a row, limit %d)", t.kind_name, t.st.step, r.loss,
                              t.tc->loss_spike_factor * r.spike_mean, t.kind_name, t.tc->loss_spike_factor,
                              r.spike_mean, spike_window(&t), bad, t.tc->max_bad_steps);
            } else {
                SRLM_WARN("%s step %ld: non-finite loss or gradient (loss %g, norm %g): step skipped (%ld in a row)",
                          t.kind_name, t.st.step, r.loss, r.grad_norm, bad);
            }
            if (bad >= t.tc->max_bad_steps) {
                st = SRLM_ERR(SRLM_FAILED, "%s: %ld %s steps in a row (limit train.%s.max_bad_steps = %d); "
                              "stopped; the last good checkpoint is the newest under %s/train",
                              t.kind_name, bad, t.tc->loss_spike_factor > 0 ? "bad (non-finite or loss spike)"
                                                                             : "non-finite",
                              t.kind_name, t.tc->max_bad_steps, job->out_dir);
                goto done;
            }
        } else {
            t.st.bad_in_row = 0;
            record_good_loss(&t, r.loss);
        }
        double el = now_s() - t0;
        if (t.rank == 0 && !job->quiet && (el - last_print > 2.0 || t.st.step == t.total_steps || done_here == 1)) {
            char eta[32];
            format_eta(eta, sizeof eta, el / done_here * (double)(t.total_steps - t.st.step));
            fprintf(stderr, "%s step %ld/%ld | loss %.4f | lr %.3g | grad norm %.3g | %.0f tokens/s | ETA %s\n",
                    t.kind_name, t.st.step, t.total_steps, r.loss, r.lr, r.grad_norm, tokens / el, eta);
            last_print = el;
        }
        /* every rank stops at the same step: the request is OR-reduced */
        int32_t stop = g_stop_requested || (job->stop_after > 0 && done_here >= job->stop_after);
        SRLM_CHECK_GOTO(srlm_comm_allreduce(t.world, &stop, 1, SRLM_COMM_I32, SRLM_REDUCE_MAX), st, done);
        /* a skipped step changed nothing: no checkpoint, so the newest stays the last good one */
        if ((!r.skipped && (t.st.step % every == 0 || t.st.step == t.total_steps)) || stop)
            SRLM_CHECK_GOTO(save_checkpoint(&t), st, done);
        if (stop && t.st.step < t.total_steps) {
            SRLM_INFO("%s: stopped after step %ld of %ld; rerun the same command to resume", t.kind_name,
                      t.st.step, t.total_steps);
            st = SRLM_INTERRUPTED;
            srlm_error_at(__FILE__, __LINE__, st, "stopped at step %ld of %ld (resumable)", t.st.step, t.total_steps);
            goto done;
        }
    }
    /* the result: an HF checkpoint in the configured dtype */
    char final_dir[1100];
    snprintf(final_dir, sizeof final_dir, "%s/model", job->out_dir);
    SRLM_CHECK_GOTO(zero1_master_lent(&t), st, done);
    if (t.dp_rank == 0) st = srlm_llama_save(&t.m, final_dir, cfg->model.dtype, t.tok_path, 0);
    zero1_master_lent_end(&t);
    SRLM_CHECK_GOTO(st, st, done);
    SRLM_CHECK_GOTO(srlm_comm_barrier(t.world), st, done);
    if (t.tc->loss_spike_factor > 0)
        SRLM_INFO("%s: done: %ld steps (%ld skipped: %ld non-finite, %ld loss spikes); model written to %s",
                  t.kind_name, t.st.step, skipped_total, skipped_total - spikes_total, spikes_total, final_dir);
    else
        SRLM_INFO("%s: done: %ld steps (%ld skipped as non-finite); model written to %s", t.kind_name, t.st.step,
                  skipped_total, final_dir);
    st = SRLM_OK;
done:
    if (metrics && fclose(metrics) != 0 && st == SRLM_OK)
        st = SRLM_ERR(SRLM_FAILED, "cannot write %s/metrics.jsonl: %s", job->out_dir, strerror(errno));
    trainer_close(&t);
    return st;
}
