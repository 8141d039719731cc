/* srlm run: the run directory (config, provenance, state) and the order of the
 * stages; every stage is skipped when its outputs are complete, so rerunning the
 * same command resumes where a killed run stopped. */
#include "pipeline/loop.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/sha256.h"
#include "io/fsutil.h"
#include "io/hf_config.h"
#include "io/jsonl.h"
#include "pipeline/loop_internal.h"
#include "pipeline/oasst.h"
#include "train/trainer.h"

void srlm_loop_request_stop(void) {
    srlm_workqueue_request_stop();
    srlm_train_request_stop();
}

srlm_status loop_write_json(const loop_ctx *L, const char *path, const cJSON *obj) {
    (void)L;
    char *text = cJSON_Print(obj);
    if (!text) return SRLM_ERR(SRLM_FAILED, "out of memory");
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (!line) { cJSON_free(text); return SRLM_ERR(SRLM_FAILED, "out of memory"); }
    line[n] = '\n';
    line[n + 1] = 0;
    srlm_status st = srlm_write_file_atomic(path, line, n + 1);
    free(line);
    return st;
}

srlm_status loop_read_json(const char *path, cJSON **obj) {
    *obj = NULL;
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? SRLM_OK : SRLM_ERR(SRLM_FAILED, "%s: cannot open: %s", path, strerror(errno));
    char *text = NULL;
    size_t cap = 0;
    ssize_t got = getdelim(&text, &cap, 0, f);
    fclose(f);
    if (got > 0) *obj = cJSON_Parse(text);
    free(text);
    if (!*obj) return SRLM_ERR(SRLM_BAD_INPUT, "%s: not valid JSON", path);
    return SRLM_OK;
}

srlm_status loop_model_dir(const loop_ctx *L, const char *name, char *dst, size_t cap) {
    if (name[0] == 'M' && name[1] >= '0' && name[1] <= '9') {
        char *end;
        long k = strtol(name + 1, &end, 10);
        if (*end == 0) {
            if (k == 0 || (k == 1 && L->cfg->loop.skip_sft)) { snprintf(dst, cap, "%s", L->cfg->model.path); return SRLM_OK; }
            return loop_path(L, dst, cap, "models/M%ld", k);
        }
    }
    snprintf(dst, cap, "%s", name);
    return SRLM_OK;
}

srlm_status loop_write_state(const loop_ctx *L, const char *stage, int iteration) {
    if (L->rank != 0) return SRLM_OK;
    char path[1200], text[512];
    SRLM_CHECK(loop_path(L, path, sizeof path, "state.json"));
    int n = snprintf(text, sizeof text, "{\"stage\": \"%s\", \"iteration\": %d, \"time\": %ld}\n", stage, iteration,
                     (long)time(NULL));
    return srlm_write_file_atomic(path, text, (size_t)n);
}

/* The resolved config as text, for config.yaml and the change check. */
static srlm_status config_text(const srlm_config *c, char **text) {
    size_t len;
    FILE *f = open_memstream(text, &len);
    if (!f) return SRLM_ERR(SRLM_FAILED, "out of memory");
    srlm_status st = srlm_config_print(c, f);
    if (fclose(f) != 0 && st == SRLM_OK) st = SRLM_ERR(SRLM_FAILED, "out of memory");
    return st;
}

/* The first line that differs between two printed configs, for the message. */
static void first_difference(const char *a, const char *b, char *out, size_t cap) {
    while (*a && *b) {
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
        if (la != lb || memcmp(a, b, la) != 0) {
            snprintf(out, cap, "was '%.*s', now '%.*s'", (int)la, a, (int)lb, b);
            return;
        }
        a += la + (ea != NULL);
        b += lb + (eb != NULL);
    }
    snprintf(out, cap, "(a key was added or removed)");
}

/* Every rank: refuse a changed config (read-only, so every rank gives the same
 * message and none depends on rank 0 printing before an abort). */
static srlm_status check_saved_config(loop_ctx *L, const srlm_loop_options *o) {
    char path[1200];
    SRLM_CHECK(loop_path(L, path, sizeof path, "config.yaml"));
    if (!srlm_path_exists(path)) return SRLM_OK;
    char *now = NULL;
    SRLM_CHECK(config_text(L->cfg, &now));
    srlm_config old;
    srlm_status st = srlm_config_load(&old, path, 0, NULL);
    if (st != SRLM_OK) {
        free(now);
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: the run's saved config does not load (%s); move the run folder "
                        "away or repair the file", path, srlm_last_error());
    }
    if (srlm_config_hash(&old) != srlm_config_hash(L->cfg) && !o->allow_config_change) {
        char *before = NULL, diff[600];
        if (config_text(&old, &before) == SRLM_OK) first_difference(before, now, diff, sizeof diff);
        else snprintf(diff, sizeof diff, "(could not print the saved config)");
        free(before);
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: this run was started with a different config (first difference: "
                      "%s); keys that change results may not change in a running run: use another run.name, "
                      "or pass --allow-config-change to continue with the new one", path, diff);
    } else if (srlm_config_hash(&old) != srlm_config_hash(L->cfg) && L->rank == 0) {
        SRLM_WARN("%s: the config changed; continuing with the new one (--allow-config-change)", path);
    }
    srlm_config_free(&old);
    free(now);
    return st;
}

/* Rank 0, after every rank accepted the folder and before anything of this job
 * writes there: a killed run's temporary files go (so a rerun ends with the
 * files of an uninterrupted run), then config.yaml and provenance.json. */
static srlm_status open_run_dir(loop_ctx *L) {
    char path[1200];
    SRLM_CHECK(srlm_mkdir_p(L->dir));
    srlm_remove_atomic_leftovers(L->dir);
    SRLM_CHECK(loop_path(L, path, sizeof path, "config.yaml"));
    char *now = NULL;
    SRLM_CHECK(config_text(L->cfg, &now));
    srlm_status st;
    st = srlm_write_file_atomic(path, now, strlen(now));
    free(now);
    SRLM_CHECK(st);
    SRLM_CHECK(loop_path(L, path, sizeof path, "provenance.json"));
    if (!srlm_path_exists(path)) {
        cJSON *p = cJSON_CreateObject();
        char hash[32];
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)srlm_config_hash(L->cfg));
        cJSON_AddStringToObject(p, "srlm_version", SRLM_VERSION);
        cJSON_AddStringToObject(p, "git_sha", SRLM_GIT_SHA);
        cJSON_AddStringToObject(p, "config_hash", hash);
        cJSON_AddStringToObject(p, "tokenizer", L->tok_path);
        cJSON_AddStringToObject(p, "tokenizer_sha256", L->tok_sha256);
        cJSON_AddNumberToObject(p, "formats", 1);
        cJSON_AddNumberToObject(p, "world_size", L->topo ? L->topo->world_size : 1);
        cJSON_AddNumberToObject(p, "tp", L->topo ? L->topo->tp : 1);
        cJSON_AddNumberToObject(p, "dp", L->topo ? L->topo->dp : 1);
        /* the CPU kernels OpenBLAS picked: a run's bits depend on them */
        cJSON_AddStringToObject(p, "blas", openblas_get_config());
        cJSON_AddNumberToObject(p, "started", (double)time(NULL));
        st = loop_write_json(L, path, p);
        cJSON_Delete(p);
    }
    return st;
}

static srlm_status file_sha256(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return SRLM_ERR(SRLM_BAD_INPUT, "%s: cannot open: %s", path, strerror(errno));
    srlm_sha256 s;
    srlm_sha256_init(&s);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) srlm_sha256_update(&s, buf, n);
    int err = ferror(f);
    fclose(f);
    if (err) return SRLM_ERR(SRLM_FAILED, "%s: read error", path);
    uint8_t d[32];
    srlm_sha256_final(&s, d);
    srlm_sha256_digest_hex(d, hex);
    return SRLM_OK;
}

/* Concatenate JSONL files into one artifact (rank 0). */
static srlm_status concat_files(const char *out, const char *const *in, int n) {
    srlm_text t = {0};
    for (int i = 0; i < n; i++) {
        if (!in[i] || !*in[i]) continue;
        FILE *f = fopen(in[i], "rb");
        if (!f) { srlm_text_free(&t); return SRLM_ERR(SRLM_BAD_INPUT, "%s: cannot open: %s", in[i], strerror(errno)); }
        char buf[1 << 16];
        size_t k;
        while ((k = fread(buf, 1, sizeof buf, f)) > 0) srlm_text_add(&t, buf, k);
        fclose(f);
        if (t.len > 0 && t.s[t.len - 1] != '\n') srlm_text_add(&t, "\n", 1);
    }
    srlm_status st = srlm_text_status(&t);
    if (st == SRLM_OK) st = srlm_artifact_write(out, t.s ? t.s : "", t.len, -1);
    srlm_text_free(&t);
    return st;
}

srlm_status loop_train(loop_ctx *L, int sft, const char *start_model, const char *data, const char *work_dir,
                       const char *result_dir) {
    int done = L->rank == 0 && srlm_path_exists(result_dir);
    SRLM_CHECK(loop_bcast_int(L, &done));
    if (done) return SRLM_OK;
    char trained[1200];
    snprintf(trained, sizeof trained, "%s/model", work_dir);
    int have = L->rank == 0 && srlm_path_exists(trained);
    SRLM_CHECK(loop_bcast_int(L, &have));
    if (!have) {
        char *saved = L->cfg->model.path;
        L->cfg->model.path = (char *)start_model;
        srlm_train_job job = {sft ? SRLM_TRAIN_SFT : SRLM_TRAIN_DPO, data, work_dir, 0, L->quiet, L->topo};
        srlm_status st = srlm_train(L->cfg, &job);
        L->cfg->model.path = saved;
        SRLM_CHECK(st);
    }
    if (L->rank == 0) {
        /* the trainer wrote work_dir/model atomically; one rename makes it M_t */
        char parent[1200];
        snprintf(parent, sizeof parent, "%s", result_dir);
        char *slash = strrchr(parent, '/');
        if (slash) *slash = 0;
        SRLM_CHECK(srlm_mkdir_p(parent));
        if (rename(trained, result_dir) != 0)
            return SRLM_ERR(SRLM_FAILED, "cannot move %s to %s: %s", trained, result_dir, strerror(errno));
        SRLM_CHECK(srlm_fsync_dir(parent));
        SRLM_INFO("model written: %s", result_dir);
    }
    return srlm_comm_barrier(L->topo ? L->topo->world : NULL);
}

/* What a seed file's records must hold for the stages that read it: IFT gives
 * self-instruct its example prompts (text) and, when M1 is trained, SFT examples. */
typedef enum { SEED_PROMPTS, SEED_IFT_SFT, SEED_SFT, SEED_GROUPS, SEED_EVAL_PROMPTS } seed_kind;

static const char *json_kind(const cJSON *v) {
    return !v ? "nothing" : cJSON_IsString(v) ? "a string" : cJSON_IsNumber(v) ? "a number"
         : cJSON_IsObject(v) ? "an object" : cJSON_IsBool(v) ? "a boolean" : cJSON_IsNull(v) ? "null" : "an array";
}

/* A seed file named in the config, checked on every rank before anything runs:
 * every record has the fields its stages read, so a bad line is reported in the
 * user's file (not in sft-m1/data.jsonl, the concatenation made from it, nor after
 * hours of training), and an empty file is refused instead of leaving a stage
 * nothing to work with. Read-only, so every rank gives the same message. */
static srlm_status check_seed_file(const char *path, const char *key, seed_kind kind) {
    static const char *const want[] = {
        "{prompt, ...}", "{prompt, response}", "{prompt, response} or {prompt_ids, response_ids}",
        "{prompt_id, prompt, replies: [{text, rank}, ...]}", "{prompt_id, prompt}"};
    srlm_jsonl_reader r;
    srlm_status st = srlm_jsonl_open(&r, path);
    long n = 0;
    while (st == SRLM_OK) {
        cJSON *o = NULL;
        st = srlm_jsonl_next(&r, &o);
        if (st != SRLM_OK || !o) break;
        n++;
        const char *text;
        int has_ids = 0, *ids = NULL, n_ids;
        if (kind == SEED_SFT || kind == SEED_IFT_SFT) {
            st = srlm_json_int_array(&r, o, "prompt_ids", INT_MAX, &ids, &n_ids, &has_ids);
            free(ids);
            ids = NULL;
            if (st == SRLM_OK && has_ids) {
                st = srlm_json_int_array(&r, o, "response_ids", INT_MAX, &ids, &n_ids, NULL);
                free(ids);
            }
        }
        if (st == SRLM_OK && (kind == SEED_GROUPS || kind == SEED_EVAL_PROMPTS))
            st = srlm_json_string(&r, o, "prompt_id", &text, NULL);
        if (st == SRLM_OK && !(kind == SEED_SFT && has_ids)) st = srlm_json_string(&r, o, "prompt", &text, NULL);
        if (st == SRLM_OK && (kind == SEED_SFT || kind == SEED_IFT_SFT) && !has_ids)
            st = srlm_json_string(&r, o, "response", &text, NULL);
        const cJSON *replies = cJSON_GetObjectItemCaseSensitive(o, "replies");
        if (st == SRLM_OK && kind == SEED_GROUPS && !cJSON_IsArray(replies))
            st = SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: key \"replies\": expected an array of {text, rank}, found %s",
                          r.path, r.line, json_kind(replies));
        cJSON_Delete(o);
    }
    srlm_jsonl_close(&r);
    if (st == SRLM_OK && n == 0)
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: no records: expected JSONL of %s, found an empty file", path, want[kind]);
    if (st != SRLM_OK) srlm_error_context("%s", key);
    return st;
}

static srlm_status check_seed_files(const srlm_config *c) {
    if (*c->data.ift)
        SRLM_CHECK(check_seed_file(c->data.ift, "data.ift", c->loop.skip_sft ? SEED_PROMPTS : SEED_IFT_SFT));
    if (*c->data.eft && !c->loop.skip_sft) SRLM_CHECK(check_seed_file(c->data.eft, "data.eft", SEED_SFT));
    if (*c->data.eft_groups && c->loop.build_eft && !c->loop.skip_sft && !*c->data.eft)
        SRLM_CHECK(check_seed_file(c->data.eft_groups, "data.eft_groups", SEED_GROUPS));
    if (*c->eval.heldout) SRLM_CHECK(check_seed_file(c->eval.heldout, "eval.heldout", SEED_GROUPS));
    if (*c->eval.prompts) SRLM_CHECK(check_seed_file(c->eval.prompts, "eval.prompts", SEED_EVAL_PROMPTS));
    return SRLM_OK;
}

/* A model with a sliding window (Mistral) bounds the training sequences:
 * refused now rather than when the first trainer starts, after hours of
 * generation. A missing config.json is left to the phase that loads it. */
static srlm_status check_model_window(const srlm_config *c) {
    char path[1100];
    SRLM_CHECK(srlm_path_join(path, sizeof path, c->model.path, "config.json"));
    if (!srlm_path_exists(path)) return SRLM_OK;
    srlm_hf_config hf;
    SRLM_CHECK(srlm_hf_config_load(path, &hf));
    if (!c->loop.skip_sft) SRLM_CHECK(srlm_hf_check_seq_len(&hf, c->train.sft.max_seq_len, 1, "train.sft.max_seq_len"));
    return srlm_hf_check_seq_len(&hf, c->train.dpo.max_seq_len, 1, "train.dpo.max_seq_len");
}

static void report_bad_tree(void *ctx, const char *message) {
    (void)ctx;
    SRLM_WARN("data: skipped %s", message);
}

/* data.oasst -> DIR/data/{ift,eft_groups,heldout}.jsonl, once. */
static srlm_status prepare_data(loop_ctx *L) {
    srlm_config *c = L->cfg;
    char data_dir[1100];
    SRLM_CHECK(loop_path(L, data_dir, sizeof data_dir, "data"));
    if (*c->data.oasst) {
        char heldout[1200];
        snprintf(heldout, sizeof heldout, "%s/heldout.jsonl", data_dir);
        if (L->rank == 0 && !srlm_path_exists(heldout)) {
            srlm_oasst_options oo;
            srlm_oasst_default_options(&oo);
            oo.seed = (uint64_t)c->run.seed;
            oo.fail_on_bad_tree = c->data.oasst_bad_trees == 1;
            oo.on_bad_tree = report_bad_tree;
            srlm_oasst_stats s;
            SRLM_CHECK(srlm_oasst_convert(c->data.oasst, data_dir, &oo, &s));
            SRLM_INFO("data: %s: %ld trees, %ld IFT pairs, %ld EFT groups, %ld held out", c->data.oasst, s.trees_read,
                      s.ift_pairs, s.eft_groups, s.heldout_groups);
        }
        snprintf(L->ift_path, sizeof L->ift_path, "%s/ift.jsonl", data_dir);
        snprintf(L->eft_groups_path, sizeof L->eft_groups_path, "%s/eft_groups.jsonl", data_dir);
        snprintf(L->heldout_path, sizeof L->heldout_path, "%s", heldout);
    }
    if (*c->data.ift) snprintf(L->ift_path, sizeof L->ift_path, "%s", c->data.ift);
    if (*c->data.eft_groups) snprintf(L->eft_groups_path, sizeof L->eft_groups_path, "%s", c->data.eft_groups);
    if (*c->eval.heldout) snprintf(L->heldout_path, sizeof L->heldout_path, "%s", c->eval.heldout);
    if (!*L->ift_path)
        return SRLM_ERR(SRLM_BAD_INPUT, "no seed data: set data.ift (JSONL of {prompt, response}) or data.oasst "
                        "(Open Assistant trees)");
    return srlm_comm_barrier(L->topo ? L->topo->world : NULL);
}

/* M1 = SFT(M0) on IFT + EFT. */
static srlm_status build_m1(loop_ctx *L) {
    char m1[1200], eft[1200], data[1200], work[1200];
    if (L->cfg->loop.skip_sft) return SRLM_OK; /* M1 is model.path */
    SRLM_CHECK(loop_path(L, m1, sizeof m1, "models/M1"));
    int done = L->rank == 0 && srlm_path_exists(m1);
    SRLM_CHECK(loop_bcast_int(L, &done));
    if (done) return SRLM_OK;
    eft[0] = 0;
    if (*L->cfg->data.eft) {
        snprintf(eft, sizeof eft, "%s", L->cfg->data.eft);
    } else if (L->cfg->loop.build_eft) {
        if (!*L->eft_groups_path)
            return SRLM_ERR(SRLM_BAD_INPUT, "loop.build_eft is true but there are no ranked groups to build EFT from: "
                            "set data.oasst or data.eft_groups, or give data.eft, or set loop.build_eft: false");
        SRLM_CHECK(loop_write_state(L, "sft-baseline", 0));
        char base[1200], base_work[1200];
        SRLM_CHECK(loop_path(L, base, sizeof base, "models/SFT-baseline"));
        SRLM_CHECK(loop_path(L, base_work, sizeof base_work, "sft-baseline"));
        SRLM_CHECK(loop_train(L, 1, L->cfg->model.path, L->ift_path, base_work, base));
        SRLM_CHECK(loop_write_state(L, "eft", 0));
        SRLM_CHECK(loop_build_eft(L, base, eft, sizeof eft));
    }
    SRLM_CHECK(loop_write_state(L, "sft-m1", 0));
    SRLM_CHECK(loop_path(L, work, sizeof work, "sft-m1"));
    SRLM_CHECK(loop_path(L, data, sizeof data, "sft-m1/data.jsonl"));
    if (L->rank == 0 && !srlm_artifact_done(data)) {
        SRLM_CHECK(srlm_mkdir_p(work));
        const char *in[2] = {L->ift_path, eft};
        SRLM_CHECK(concat_files(data, in, 2));
    }
    SRLM_CHECK(srlm_comm_barrier(L->topo ? L->topo->world : NULL));
    return loop_train(L, 1, L->cfg->model.path, data, work, m1);
}

static void print_table(const loop_ctx *L) {
    if (L->rank != 0 || L->quiet) return;
    const cJSON *iters = cJSON_GetObjectItemCaseSensitive(L->summary, "iterations"), *it;
    fprintf(stderr, "\n%-5s %8s %6s %10s %8s %6s %6s %9s %6s %9s\n", "iter", "prompts", "kept", "candidates",
            "invalid", "pairs", "score", "resp.len", "win", "pairwise");
    cJSON_ArrayForEach(it, iters) {
        fprintf(stderr, "%-5d %8.0f %6.0f %10.0f %8.0f %6.0f %6.2f %9.1f %6.3f %9.3f\n",
                (int)loop_json_num(it, "iteration", 0), loop_json_num(it, "prompts_generated", NAN),
                loop_json_num(it, "prompts_kept", NAN), loop_json_num(it, "candidates", NAN),
                loop_json_num(it, "judgements_invalid", NAN), loop_json_num(it, "pairs", NAN),
                loop_json_num(it, "mean_score", NAN), loop_json_num(it, "mean_response_tokens", NAN),
                loop_json_num(it, "win_rate", NAN), loop_json_num(it, "pairwise_accuracy", NAN));
    }
    /* seconds spent by this invocation (a resumed phase counts only what was left) */
    const char *names[6] = {"prompts", "candidates", "judgements", "pairs", "train", "eval"};
    fprintf(stderr, "\n%-5s", "iter");
    for (int i = 0; i < 6; i++) fprintf(stderr, " %10s", names[i]);
    fprintf(stderr, " %10s   (seconds)\n", "total");
    cJSON_ArrayForEach(it, iters) {
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(it, "seconds_by_phase");
        fprintf(stderr, "%-5d", (int)loop_json_num(it, "iteration", 0));
        for (int i = 0; i < 6; i++) fprintf(stderr, " %10.1f", loop_json_num(ph, names[i], NAN));
        fprintf(stderr, " %10.1f\n", loop_json_num(it, "seconds", NAN));
    }
    fprintf(stderr, "\n");
}

srlm_status srlm_loop_run(srlm_config *cfg, const srlm_loop_options *o) {
    loop_ctx L = {.cfg = cfg, .topo = o->topo, .rank = o->topo ? o->topo->world_rank : 0, .quiet = o->quiet};
    SRLM_CHECK(srlm_path_join(L.dir, sizeof L.dir, cfg->run.out_dir, cfg->run.name));
    if (cfg->model.tokenizer && *cfg->model.tokenizer) snprintf(L.tok_path, sizeof L.tok_path, "%s", cfg->model.tokenizer);
    else snprintf(L.tok_path, sizeof L.tok_path, "%s/tokenizer.model", cfg->model.path);
    srlm_status st = SRLM_OK;
    SRLM_CHECK_GOTO(srlm_tokenizer_load(&L.tok, L.tok_path), st, done);
    SRLM_CHECK_GOTO(file_sha256(L.tok_path, L.tok_sha256), st, done);
    SRLM_CHECK_GOTO(srlm_judge_template_load(&L.judge, cfg->judge.template_path), st, done);
    SRLM_CHECK_GOTO(check_seed_files(cfg), st, done); /* before anything is written */
    SRLM_CHECK_GOTO(check_model_window(cfg), st, done);
    SRLM_CHECK_GOTO(check_saved_config(&L, o), st, done);
    SRLM_CHECK_GOTO(srlm_comm_barrier(o->topo ? o->topo->world : NULL), st, done); /* all checked before it is rewritten */
    if (L.rank == 0) st = open_run_dir(&L);
    {   /* every rank learns whether rank 0 could write the run folder */
        int ok = st == SRLM_OK;
        srlm_status bst = loop_bcast_int(&L, &ok);
        if (st != SRLM_OK) goto done;
        SRLM_CHECK_GOTO(bst, st, done);
        if (!ok) { st = SRLM_ERR(SRLM_FAILED, "rank 0 could not write the run folder %s (see its message)", L.dir); goto done; }
    }
    if (L.rank == 0 && !o->quiet)
        SRLM_INFO("run %s: %d iteration(s), %d rank(s) = %d group(s) x tp %d", L.dir, cfg->loop.iterations,
                  o->topo ? o->topo->world_size : 1, o->topo ? o->topo->dp : 1, o->topo ? o->topo->tp : 1);
    SRLM_CHECK_GOTO(prepare_data(&L), st, done);
    SRLM_CHECK_GOTO(build_m1(&L), st, done);
    L.summary = cJSON_CreateObject();
    cJSON *iters = cJSON_AddArrayToObject(L.summary, "iterations");
    cJSON *m1 = NULL;
    SRLM_CHECK_GOTO(loop_write_state(&L, "eval-M1", 0), st, done);
    SRLM_CHECK_GOTO(loop_eval_model(&L, 1, &m1), st, done);
    cJSON_AddItemToObject(L.summary, "M1", m1);
    for (int t = 1; t <= cfg->loop.iterations; t++) {
        SRLM_CHECK_GOTO(loop_iteration(&L, t), st, done);
        char path[1200];
        SRLM_CHECK_GOTO(loop_path(&L, path, sizeof path, "iter-%d/summary.json", t), st, done);
        cJSON *s = NULL;
        if (L.rank == 0) SRLM_CHECK_GOTO(loop_read_json(path, &s), st, done);
        cJSON_AddItemToArray(iters, s ? s : cJSON_CreateNull());
    }
    if (L.rank == 0) {
        char path[1200];
        SRLM_CHECK_GOTO(loop_path(&L, path, sizeof path, "summary.json"), st, done);
        SRLM_CHECK_GOTO(loop_write_json(&L, path, L.summary), st, done);
        print_table(&L);
        SRLM_INFO("run %s: done; models in %s/models, summary in %s", L.dir, L.dir, path);
    }
    SRLM_CHECK_GOTO(loop_write_state(&L, "done", cfg->loop.iterations), st, done);
done:
    cJSON_Delete(L.summary);
    srlm_judge_template_free(&L.judge);
    srlm_tokenizer_free(L.tok);
    return st;
}
