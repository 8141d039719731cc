#include "train/train_state.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fsutil.h"
#include "io/safetensors.h"

#define STATE_FORMAT "srlm-trainer-state-1"

srlm_status srlm_train_state_path(char *buf, size_t cap, const char *dir, int rank) {
    int k = snprintf(buf, cap, "%s/trainer-state-rank-%d.safetensors", dir, rank);
    if (k < 0 || (size_t)k >= cap) return SRLM_ERR(SRLM_BAD_INPUT, "path too long: %s/trainer-state-rank-%d", dir, rank);
    return SRLM_OK;
}

static int kind_ok(const char *k) { return !strcmp(k, "sft") || !strcmp(k, "dpo"); }

/* ---- saving ---- */

static srlm_status add_u64(cJSON *meta, const char *key, uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return cJSON_AddStringToObject(meta, key, buf) ? SRLM_OK : SRLM_ERR(SRLM_FAILED, "out of memory");
}

static srlm_status add_i64(cJSON *meta, const char *key, long long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    return cJSON_AddStringToObject(meta, key, buf) ? SRLM_OK : SRLM_ERR(SRLM_FAILED, "out of memory");
}

/* "x1,x2,...": the recent good losses, each %.17g so that it reads back exactly. */
static srlm_status add_losses(cJSON *meta, const srlm_train_state *s) {
    if (s->n_recent < 0 || s->n_recent > SRLM_LOSS_WINDOW_MAX)
        return SRLM_ERR(SRLM_FAILED, "trainer state: %d recent losses (at most %d)", s->n_recent, SRLM_LOSS_WINDOW_MAX);
    char *buf = malloc((size_t)s->n_recent * 32 + 1);
    if (!buf) return SRLM_ERR(SRLM_FAILED, "out of memory");
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->n_recent; i++)
        used += (size_t)snprintf(buf + used, 32, "%s%.17g", i ? "," : "", s->recent_loss[i]);
    srlm_status st = cJSON_AddStringToObject(meta, "srlm.recent_losses", buf) ? SRLM_OK
                                                                               : SRLM_ERR(SRLM_FAILED, "out of memory");
    free(buf);
    return st;
}

/* {"dtype":"F32","shape":[n],"data_offsets":[a,b]}; offsets are written as text
 * because cJSON numbers are doubles. */
static srlm_status tensor_entry(char *buf, size_t cap, const char *name, size_t n, size_t begin) {
    int k = snprintf(buf, cap, "\"%s\":{\"dtype\":\"F32\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]}", name,
                     n, begin, begin + n * sizeof(float));
    if (k < 0 || (size_t)k >= cap) return SRLM_ERR(SRLM_FAILED, "trainer state header entry too long");
    return SRLM_OK;
}

srlm_status srlm_train_state_save(const char *dir, const srlm_train_state *s, const float *m,
                                  const float *v, size_t n) {
    char path[1200];
    if (!kind_ok(s->kind))
        return SRLM_ERR(SRLM_FAILED, "trainer state kind '%.8s': expected \"sft\" or \"dpo\"", s->kind);
    if (s->tp < 1 || s->dp < 1 || s->rank < 0 || s->rank >= s->tp * s->dp)
        return SRLM_ERR(SRLM_FAILED, "trainer state layout tp=%d dp=%d rank=%d is not valid", s->tp, s->dp,
                        s->rank);
    SRLM_CHECK(srlm_train_state_path(path, sizeof path, dir, s->rank));
    SRLM_CHECK(srlm_mkdir_p(dir));

    srlm_status st = SRLM_OK;
    char *meta_text = NULL, *header = NULL;
    srlm_atomic_file f = {.fd = -1};
    cJSON *meta = cJSON_CreateObject();
    if (!meta) return SRLM_ERR(SRLM_FAILED, "out of memory writing %s", path);
    if (!cJSON_AddStringToObject(meta, "format", "pt") ||
        !cJSON_AddStringToObject(meta, "srlm.format", STATE_FORMAT) ||
        !cJSON_AddStringToObject(meta, "srlm.kind", s->kind)) {
        st = SRLM_ERR(SRLM_FAILED, "out of memory writing %s", path);
        goto done;
    }
    SRLM_CHECK_GOTO(add_i64(meta, "srlm.step", s->step), st, done);
    SRLM_CHECK_GOTO(add_i64(meta, "srlm.total_steps", s->total_steps), st, done);
    SRLM_CHECK_GOTO(add_i64(meta, "srlm.data_epoch", s->data_epoch), st, done);
    SRLM_CHECK_GOTO(add_i64(meta, "srlm.data_pos", s->data_pos), st, done);
    SRLM_CHECK_GOTO(add_u64(meta, "srlm.rng_key", s->rng_key), st, done);
    SRLM_CHECK_GOTO(add_u64(meta, "srlm.rng_counter", s->rng_counter), st, done);
    SRLM_CHECK_GOTO(add_u64(meta, "srlm.config_hash", s->config_hash), st, done);
    SRLM_CHECK_GOTO(add_i64(meta, "srlm.tp", s->tp), st, done);
    SRLM_CHECK_GOTO(add_i64(meta, "srlm.dp", s->dp), st, done);
    SRLM_CHECK_GOTO(add_i64(meta, "srlm.rank", s->rank), st, done);
    SRLM_CHECK_GOTO(add_i64(meta, "srlm.bad_in_row", s->bad_in_row), st, done);
    SRLM_CHECK_GOTO(add_losses(meta, s), st, done);
    meta_text = cJSON_PrintUnformatted(meta);
    if (!meta_text) {
        st = SRLM_ERR(SRLM_FAILED, "out of memory writing %s", path);
        goto done;
    }

    char em[160], ev[160];
    SRLM_CHECK_GOTO(tensor_entry(em, sizeof em, "adam.m", n, 0), st, done);
    SRLM_CHECK_GOTO(tensor_entry(ev, sizeof ev, "adam.v", n, n * sizeof(float)), st, done);
    size_t cap = strlen(meta_text) + strlen(em) + strlen(ev) + 64;
    header = malloc(cap);
    if (!header) {
        st = SRLM_ERR(SRLM_FAILED, "out of memory writing %s", path);
        goto done;
    }
    size_t hlen = (size_t)snprintf(header, cap, "{\"__metadata__\":%s,%s,%s}", meta_text, em, ev);
    while (hlen % 8) header[hlen++] = ' '; /* the data area starts 8-aligned */

    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    SRLM_CHECK_GOTO(srlm_atomic_open(&f, path), st, done);
    SRLM_CHECK_GOTO(srlm_atomic_write(&f, len8, 8), st, done);
    SRLM_CHECK_GOTO(srlm_atomic_write(&f, header, hlen), st, done);
    /* raw fp32, little-endian as safetensors requires (every host srlm targets is) */
    SRLM_CHECK_GOTO(srlm_atomic_write(&f, m, n * sizeof(float)), st, done);
    SRLM_CHECK_GOTO(srlm_atomic_write(&f, v, n * sizeof(float)), st, done);
    SRLM_CHECK_GOTO(srlm_atomic_commit(&f), st, done);
done:
    if (st != SRLM_OK) srlm_atomic_abort(&f);
    free(header);
    free(meta_text);
    cJSON_Delete(meta);
    return st;
}

/* ---- loading ---- */

static srlm_status meta_string(const char *path, const cJSON *meta, const char *key, const char **out) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(meta, key);
    if (!cJSON_IsString(e))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: __metadata__ has no string \"%s\" (not an srlm trainer state, or corrupt)",
                        path, key);
    *out = e->valuestring;
    return SRLM_OK;
}

/* A decimal string; all of it must be digits (and a leading '-' when signed). */
static srlm_status meta_u64(const char *path, const cJSON *meta, const char *key, uint64_t *out) {
    const char *s = "";
    SRLM_CHECK(meta_string(path, meta, key, &s));
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end || errno == ERANGE)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: __metadata__ \"%s\": expected an unsigned 64-bit integer, found \"%s\"",
                        path, key, s);
    *out = (uint64_t)v;
    return SRLM_OK;
}

static srlm_status meta_long(const char *path, const cJSON *meta, const char *key, long lo, long hi, long *out) {
    const char *s = "";
    SRLM_CHECK(meta_string(path, meta, key, &s));
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno == ERANGE || v < lo || v > hi)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: __metadata__ \"%s\": expected an integer in [%ld, %ld], found \"%s\"",
                        path, key, lo, hi, s);
    *out = (long)v;
    return SRLM_OK;
}

/* The optional loss-spike keys (absent: 0 and no losses). */
static srlm_status meta_spike_state(const char *path, const cJSON *meta, srlm_train_state *s) {
    if (cJSON_GetObjectItemCaseSensitive(meta, "srlm.bad_in_row"))
        SRLM_CHECK(meta_long(path, meta, "srlm.bad_in_row", 0, LONG_MAX, &s->bad_in_row));
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(meta, "srlm.recent_losses");
    if (!e) return SRLM_OK;
    if (!cJSON_IsString(e))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: __metadata__ \"srlm.recent_losses\" is not a string", path);
    const char *p = e->valuestring;
    while (*p) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || !isfinite(x) || (*end && *end != ',') || s->n_recent == SRLM_LOSS_WINDOW_MAX)
            return SRLM_ERR(SRLM_BAD_INPUT, "%s: __metadata__ \"srlm.recent_losses\": expected at most %d finite "
                            "numbers separated by commas, found \"%.60s\"", path, SRLM_LOSS_WINDOW_MAX, e->valuestring);
        s->recent_loss[s->n_recent++] = x;
        p = *end ? end + 1 : end;
    }
    return SRLM_OK;
}

/* The __metadata__ object of an opened (already validated) file. */
static srlm_status read_meta(const srlm_safetensors *f, srlm_train_state *s) {
    srlm_status st = SRLM_OK;
    const unsigned char *b = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    cJSON *root = cJSON_ParseWithLength((const char *)b + 8, (size_t)hlen);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    if (!cJSON_IsObject(meta)) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: no __metadata__ object: not an srlm trainer state", f->path);
        goto done;
    }
    const char *fmt = "", *kind = "";
    SRLM_CHECK_GOTO(meta_string(f->path, meta, "srlm.format", &fmt), st, done);
    if (strcmp(fmt, STATE_FORMAT)) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: trainer state format \"%s\", expected \"%s\"", f->path, fmt, STATE_FORMAT);
        goto done;
    }
    SRLM_CHECK_GOTO(meta_string(f->path, meta, "srlm.kind", &kind), st, done);
    if (!kind_ok(kind)) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: trainer state kind \"%s\", expected \"sft\" or \"dpo\"", f->path, kind);
        goto done;
    }
    memset(s, 0, sizeof *s);
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    long tp, dp, rank;
    SRLM_CHECK_GOTO(meta_long(f->path, meta, "srlm.step", 0, LONG_MAX, &s->step), st, done);
    SRLM_CHECK_GOTO(meta_long(f->path, meta, "srlm.total_steps", 0, LONG_MAX, &s->total_steps), st, done);
    SRLM_CHECK_GOTO(meta_long(f->path, meta, "srlm.data_epoch", 0, LONG_MAX, &s->data_epoch), st, done);
    SRLM_CHECK_GOTO(meta_long(f->path, meta, "srlm.data_pos", 0, LONG_MAX, &s->data_pos), st, done);
    SRLM_CHECK_GOTO(meta_u64(f->path, meta, "srlm.rng_key", &s->rng_key), st, done);
    SRLM_CHECK_GOTO(meta_u64(f->path, meta, "srlm.rng_counter", &s->rng_counter), st, done);
    SRLM_CHECK_GOTO(meta_u64(f->path, meta, "srlm.config_hash", &s->config_hash), st, done);
    SRLM_CHECK_GOTO(meta_long(f->path, meta, "srlm.tp", 1, INT_MAX, &tp), st, done);
    SRLM_CHECK_GOTO(meta_long(f->path, meta, "srlm.dp", 1, INT_MAX, &dp), st, done);
    SRLM_CHECK_GOTO(meta_long(f->path, meta, "srlm.rank", 0, INT_MAX, &rank), st, done);
    SRLM_CHECK_GOTO(meta_spike_state(f->path, meta, s), st, done);
    s->tp = (int)tp;
    s->dp = (int)dp;
    s->rank = (int)rank;
done:
    cJSON_Delete(root);
    return st;
}

/* Open the file, read its state and find the two moment tensors (F32, 1-D, same n). */
static srlm_status open_state(const char *dir, int rank, srlm_safetensors *f, srlm_train_state *s,
                              const srlm_st_tensor **tm, const srlm_st_tensor **tv, size_t *n) {
    char path[1200];
    memset(f, 0, sizeof *f);
    SRLM_CHECK(srlm_train_state_path(path, sizeof path, dir, rank));
    if (!srlm_path_exists(path))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: trainer state of rank %d is missing", path, rank);
    srlm_status st = srlm_st_open(f, path);
    if (st != SRLM_OK) {
        srlm_error_context("trainer state");
        return st;
    }
    SRLM_CHECK_GOTO(read_meta(f, s), st, fail);
    *tm = srlm_st_find(f, "adam.m");
    *tv = srlm_st_find(f, "adam.v");
    const srlm_st_tensor *t[2] = {*tm, *tv};
    const char *names[2] = {"adam.m", "adam.v"};
    for (int i = 0; i < 2; i++) {
        if (!t[i] || t[i]->dtype != SRLM_F32 || t[i]->ndim != 1) {
            st = SRLM_ERR(SRLM_BAD_INPUT, "%s: expected tensor '%s' (F32, 1-D), found %s", path, names[i],
                          t[i] ? "another dtype or shape" : "none");
            goto fail;
        }
    }
    if ((*tm)->shape[0] != (*tv)->shape[0]) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: adam.m has %lld elements but adam.v %lld", path,
                      (long long)(*tm)->shape[0], (long long)(*tv)->shape[0]);
        goto fail;
    }
    if (s->rank != rank || s->rank >= s->tp * s->dp) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: the file says rank %d of tp=%d x dp=%d; expected rank %d", path,
                      s->rank, s->tp, s->dp, rank);
        goto fail;
    }
    *n = (size_t)(*tm)->shape[0];
    return SRLM_OK;
fail:
    srlm_st_close(f);
    return st;
}

srlm_status srlm_train_state_peek(const char *dir, int rank, srlm_train_state *s, size_t *n) {
    srlm_safetensors f;
    const srlm_st_tensor *tm, *tv;
    SRLM_CHECK(open_state(dir, rank, &f, s, &tm, &tv, n));
    srlm_st_close(&f);
    return SRLM_OK;
}

srlm_status srlm_train_state_load(const char *dir, int rank, const char *kind, srlm_train_state *s,
                                  float *m, float *v, size_t n) {
    srlm_safetensors f;
    const srlm_st_tensor *tm, *tv;
    srlm_train_state got;
    size_t found;
    srlm_status st = SRLM_OK;
    SRLM_CHECK(open_state(dir, rank, &f, &got, &tm, &tv, &found));
    if (strcmp(got.kind, kind)) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: trainer state of a %s run; this run is %s", f.path, got.kind, kind);
        goto done;
    }
    if (got.tp != s->tp) {
        st = SRLM_ERR(SRLM_BAD_INPUT,
                      "%s: trainer state written with tp=%d; this run has tp=%d, and resuming with another "
                      "tp is not supported (rerun with parallel.tp=%d, or start the phase afresh)",
                      f.path, got.tp, s->tp, got.tp);
        goto done;
    }
    if (found != n) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: optimizer shard has %zu elements; expected %zu (written by tp=%d dp=%d)",
                      f.path, found, n, got.tp, got.dp);
        goto done;
    }
    /* the data may be unaligned in the mapping */
    memcpy(m, tm->data, n * sizeof(float));
    memcpy(v, tv->data, n * sizeof(float));
    *s = got;
done:
    srlm_st_close(&f);
    return st;
}
