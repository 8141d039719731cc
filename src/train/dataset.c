#include "train/dataset.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/chat.h"
#include "io/config.h"
#include "io/jsonl.h"

/* ---- pieces shared by SFT and DPO ---- */

/* The first response token is predicted from the prompt's last token: a
 * prompt needs one at least (text prompts always start with BOS). */
static srlm_status want_prompt(const srlm_jsonl_reader *r, int np) {
    if (np > 0) return SRLM_OK;
    return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: prompt_ids is empty: expected at least one token (BOS), from which "
                    "the first response token is predicted", r->path, r->line);
}

/* How an example of n_prompt + n_resp tokens fits into max_seq_len. */
typedef enum { FIT_AS_IS, FIT_TRUNCATED, FIT_NO } fit_kind;

/* *keep: prompt tokens kept when truncated (the first one plus the last keep-1). */
static fit_kind fit(int n_prompt, int n_resp, int max_seq_len, int truncation, int *keep) {
    *keep = n_prompt;
    if ((long)n_prompt + n_resp <= max_seq_len) return FIT_AS_IS;
    if (truncation != SRLM_TRUNC_PROMPT || n_prompt == 0) return FIT_NO;
    int k = max_seq_len - n_resp;
    if (k < 1) return FIT_NO; /* the response does not fit even after BOS alone */
    *keep = k;
    return FIT_TRUNCATED;
}

/* Copy prompt p (n tokens) into dst keeping `keep` of them: p[0], then its end. */
static void copy_prompt(int *dst, const int *p, int n, int keep) {
    if (keep == n) {
        memcpy(dst, p, sizeof(int) * (size_t)n);
        return;
    }
    dst[0] = p[0];
    memcpy(dst + 1, p + (n - (keep - 1)), sizeof(int) * (size_t)(keep - 1));
}

/* An empty response: nothing, or EOS alone (the empty answer text encodes to that). */
static int is_empty(const int *ids, int n, int eos) { return n == 0 || (n == 1 && ids[0] == eos); }

/* Tokenizer ids must also fit the model's vocab (a tokenizer may be larger). */
static srlm_status check_ids(const srlm_jsonl_reader *r, const char *what, const int *ids, int n,
                             int vocab_size) {
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab_size)
            return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: %s token %d: id %d is outside the model's vocab [0, %d)",
                            r->path, r->line, what, i, ids[i], vocab_size);
    return SRLM_OK;
}

/* Tokenize (user, answer) with the chat formatter; errors get FILE:LINE. */
static srlm_status encode_text(const srlm_jsonl_reader *r, const srlm_tokenizer *tok, const char *system,
                               const char *user, const char *answer, const char *answer_key,
                               int vocab_size, int **p, int *np, int **a, int *na) {
    if (!tok)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: text examples need a tokenizer (or give the *_ids keys)",
                        r->path, r->line);
    srlm_status st = srlm_chat_encode_pair(tok, system, user, answer, p, np, a, na);
    if (st != SRLM_OK) {
        srlm_error_context("%s:%ld", r->path, r->line);
        return st;
    }
    st = check_ids(r, "prompt", *p, *np, vocab_size);
    if (st == SRLM_OK) st = check_ids(r, answer_key, *a, *na, vocab_size);
    if (st != SRLM_OK) {
        free(*p);
        free(*a);
        *p = *a = NULL;
    }
    return st;
}

/* Room for one more example: the (possibly moved) array, or NULL when out of memory. */
static void *grow(void *arr, int n, int *cap, size_t elem) {
    if (n < *cap) return arr;
    int c = *cap ? 2 * *cap : 64;
    void *q = realloc(arr, (size_t)c * elem);
    if (q) *cap = c;
    return q;
}

static srlm_status no_examples(const char *path, const srlm_data_counts *c, int dpo) {
    char eq[64] = "";
    if (dpo) snprintf(eq, sizeof eq, ", %ld with chosen == rejected", c->skipped_equal);
    return SRLM_ERR(SRLM_BAD_INPUT,
                    "%s: no usable examples (read %ld, skipped %ld longer than max_seq_len, "
                    "%ld with an empty response%s)", path, c->read, c->skipped_too_long,
                    c->skipped_empty, eq);
}

static srlm_status check_args(const char *path, int vocab_size, int max_seq_len) {
    if (vocab_size < 1 || max_seq_len < 1)
        return SRLM_ERR(SRLM_FAILED, "%s: loading data with vocab_size %d, max_seq_len %d (both must be >= 1)",
                        path, vocab_size, max_seq_len);
    return SRLM_OK;
}

/* ---- SFT ---- */

srlm_status srlm_sft_data_load(srlm_sft_data *d, const char *path, const srlm_tokenizer *tok,
                               int vocab_size, int max_seq_len, int truncation, const char *system) {
    memset(d, 0, sizeof *d);
    SRLM_CHECK(check_args(path, vocab_size, max_seq_len));
    srlm_status st = SRLM_OK;
    srlm_jsonl_reader r;
    cJSON *obj = NULL;
    int *p = NULL, *a = NULL, np = 0, na = 0, cap = 0;
    const int eos = tok ? srlm_tokenizer_eos(tok) : -1;
    SRLM_CHECK(srlm_jsonl_open(&r, path));
    for (;;) {
        SRLM_CHECK_GOTO(srlm_jsonl_next(&r, &obj), st, done);
        if (!obj) break;
        d->counts.read++;
        int has_ids = 0;
        SRLM_CHECK_GOTO(srlm_json_int_array(&r, obj, "prompt_ids", vocab_size, &p, &np, &has_ids), st, done);
        if (has_ids) {
            SRLM_CHECK_GOTO(srlm_json_int_array(&r, obj, "response_ids", vocab_size, &a, &na, NULL), st, done);
        } else {
            const char *user = NULL, *answer = NULL;
            SRLM_CHECK_GOTO(srlm_json_string(&r, obj, "prompt", &user, NULL), st, done);
            SRLM_CHECK_GOTO(srlm_json_string(&r, obj, "response", &answer, NULL), st, done);
            SRLM_CHECK_GOTO(encode_text(&r, tok, system, user, answer, "response", vocab_size, &p, &np,
                                        &a, &na), st, done);
        }
        SRLM_CHECK_GOTO(want_prompt(&r, np), st, done);
        int keep;
        fit_kind f = fit(np, na, max_seq_len, truncation, &keep);
        if (is_empty(a, na, eos)) {
            d->counts.skipped_empty++;
        } else if (f == FIT_NO) {
            d->counts.skipped_too_long++;
        } else {
            void *grown = grow(d->ex, d->n, &cap, sizeof *d->ex);
            if (!grown) {
                st = SRLM_ERR(SRLM_FAILED, "%s: out of memory after %d examples", path, d->n);
                goto done;
            }
            d->ex = grown;
            srlm_sft_example *e = &d->ex[d->n];
            e->ids = malloc(sizeof(int) * (size_t)(keep + na));
            if (!e->ids) {
                st = SRLM_ERR(SRLM_FAILED, "%s:%ld: out of memory", r.path, r.line);
                goto done;
            }
            copy_prompt(e->ids, p, np, keep);
            memcpy(e->ids + keep, a, sizeof(int) * (size_t)na);
            e->n_prompt = keep;
            e->n_response = na;
            d->n++;
            d->counts.kept++;
            if (f == FIT_TRUNCATED) d->counts.truncated++;
        }
        free(p);
        free(a);
        p = a = NULL;
        cJSON_Delete(obj);
        obj = NULL;
    }
    if (d->n == 0) st = no_examples(path, &d->counts, 0);
done:
    free(p);
    free(a);
    cJSON_Delete(obj);
    srlm_jsonl_close(&r);
    if (st != SRLM_OK) srlm_sft_data_free(d);
    return st;
}

void srlm_sft_data_free(srlm_sft_data *d) {
    for (int i = 0; i < d->n; i++) free(d->ex[i].ids);
    free(d->ex);
    memset(d, 0, sizeof *d);
}

/* ---- DPO ---- */

/* An optional finite number; null counts as absent. */
static srlm_status get_number(const srlm_jsonl_reader *r, const cJSON *obj, const char *key,
                              double *out, int *present) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *present = v && !cJSON_IsNull(v);
    if (!*present) return SRLM_OK;
    if (!cJSON_IsNumber(v))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: key \"%s\": expected a number", r->path, r->line, key);
    if (!isfinite(v->valuedouble))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: key \"%s\": expected a finite number, found %g", r->path,
                        r->line, key, v->valuedouble);
    *out = v->valuedouble;
    return SRLM_OK;
}

static srlm_status get_refs(const srlm_jsonl_reader *r, const cJSON *obj, srlm_dpo_example *e) {
    int has_c = 0, has_r = 0;
    SRLM_CHECK(get_number(r, obj, "ref_logp_chosen", &e->ref_c, &has_c));
    SRLM_CHECK(get_number(r, obj, "ref_logp_rejected", &e->ref_r, &has_r));
    if (has_c != has_r)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: \"%s\" is given without \"%s\": expected both or neither",
                        r->path, r->line, has_c ? "ref_logp_chosen" : "ref_logp_rejected",
                        has_c ? "ref_logp_rejected" : "ref_logp_chosen");
    e->has_ref = has_c;
    return SRLM_OK;
}

srlm_status srlm_dpo_data_load(srlm_dpo_data *d, const char *path, const srlm_tokenizer *tok,
                               int vocab_size, int max_seq_len, int truncation, const char *system) {
    memset(d, 0, sizeof *d);
    SRLM_CHECK(check_args(path, vocab_size, max_seq_len));
    srlm_status st = SRLM_OK;
    srlm_jsonl_reader r;
    cJSON *obj = NULL;
    int *p = NULL, *c = NULL, *rj = NULL, *p2 = NULL;
    int np = 0, nc = 0, nr = 0, np2 = 0, cap = 0;
    const int eos = tok ? srlm_tokenizer_eos(tok) : -1;
    SRLM_CHECK(srlm_jsonl_open(&r, path));
    for (;;) {
        SRLM_CHECK_GOTO(srlm_jsonl_next(&r, &obj), st, done);
        if (!obj) break;
        d->counts.read++;
        srlm_dpo_example e = {0};
        SRLM_CHECK_GOTO(get_refs(&r, obj, &e), st, done);
        int has_ids = 0;
        SRLM_CHECK_GOTO(srlm_json_int_array(&r, obj, "prompt_ids", vocab_size, &p, &np, &has_ids), st, done);
        if (has_ids) {
            SRLM_CHECK_GOTO(srlm_json_int_array(&r, obj, "chosen_ids", vocab_size, &c, &nc, NULL), st, done);
            SRLM_CHECK_GOTO(srlm_json_int_array(&r, obj, "rejected_ids", vocab_size, &rj, &nr, NULL), st, done);
        } else {
            const char *user = NULL, *chosen = NULL, *rejected = NULL;
            SRLM_CHECK_GOTO(srlm_json_string(&r, obj, "prompt", &user, NULL), st, done);
            SRLM_CHECK_GOTO(srlm_json_string(&r, obj, "chosen", &chosen, NULL), st, done);
            SRLM_CHECK_GOTO(srlm_json_string(&r, obj, "rejected", &rejected, NULL), st, done);
            SRLM_CHECK_GOTO(encode_text(&r, tok, system, user, chosen, "chosen", vocab_size, &p, &np, &c,
                                        &nc), st, done);
            /* the same prompt again: only the rejected answer's ids are new */
            SRLM_CHECK_GOTO(encode_text(&r, tok, system, user, rejected, "rejected", vocab_size, &p2, &np2,
                                        &rj, &nr), st, done);
        }
        SRLM_CHECK_GOTO(want_prompt(&r, np), st, done);
        int keep;
        fit_kind f = fit(np, nc > nr ? nc : nr, max_seq_len, truncation, &keep);
        if (is_empty(c, nc, eos) || is_empty(rj, nr, eos)) {
            d->counts.skipped_empty++;
        } else if (nc == nr && !memcmp(c, rj, sizeof(int) * (size_t)nc)) {
            d->counts.skipped_equal++;
        } else if (f == FIT_NO) {
            d->counts.skipped_too_long++;
        } else {
            void *grown = grow(d->ex, d->n, &cap, sizeof *d->ex);
            if (!grown) {
                st = SRLM_ERR(SRLM_FAILED, "%s: out of memory after %d examples", path, d->n);
                goto done;
            }
            d->ex = grown;
            e.prompt = malloc(sizeof(int) * ((size_t)keep + (size_t)nc + (size_t)nr));
            if (!e.prompt) {
                st = SRLM_ERR(SRLM_FAILED, "%s:%ld: out of memory", r.path, r.line);
                goto done;
            }
            e.chosen = e.prompt + keep;
            e.rejected = e.chosen + nc;
            copy_prompt(e.prompt, p, np, keep);
            memcpy(e.chosen, c, sizeof(int) * (size_t)nc);
            memcpy(e.rejected, rj, sizeof(int) * (size_t)nr);
            e.n_prompt = keep;
            e.n_chosen = nc;
            e.n_rejected = nr;
            d->ex[d->n++] = e;
            d->counts.kept++;
            if (f == FIT_TRUNCATED) d->counts.truncated++;
        }
        free(p);
        free(c);
        free(rj);
        free(p2);
        p = c = rj = p2 = NULL;
        cJSON_Delete(obj);
        obj = NULL;
    }
    if (d->n == 0) st = no_examples(path, &d->counts, 1);
done:
    free(p);
    free(c);
    free(rj);
    free(p2);
    cJSON_Delete(obj);
    srlm_jsonl_close(&r);
    if (st != SRLM_OK) srlm_dpo_data_free(d);
    return st;
}

void srlm_dpo_data_free(srlm_dpo_data *d) {
    for (int i = 0; i < d->n; i++) free(d->ex[i].prompt);
    free(d->ex);
    memset(d, 0, sizeof *d);
}

int srlm_micro_batch_take(const int *tokens, int n, int max_examples, long long max_tokens) {
    long long sum = tokens[0];
    int k = 1;
    while (k < n && k < max_examples && (max_tokens <= 0 || sum + tokens[k] <= max_tokens)) sum += tokens[k++];
    return k;
}
