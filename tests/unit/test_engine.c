/* The generation engine on the fixture models:
 *  - greedy output equals transformers' greedy generate (reference.json);
 *  - a sample's tokens are identical for batch sizes 1, 7 and 32, with the
 *    prompt's KV shared among its samples or prefilled per sample, and with the
 *    previous prompt's prefix reused or not (these fixtures' logits are well
 *    separated, so float rounding of different GEMM shapes cannot flip a token);
 *  - stop strings cut the text exactly; EOS and length finish reasons;
 *  - bad requests get a clear error;
 *  - recorded decode steps (the guarded backend's tape) give the same tokens,
 *    and a backend whose recordings fail falls back to running op by op. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "generate/engine.h"
#include "test.h"

enum { NREQ = 6, NS = 4, MAXNEW = 12 };

typedef struct {
    int   ids[NREQ][NS][MAXNEW], n[NREQ][NS];
    char  text[NREQ][NS][256];
    char  reason[NREQ][NS][8];
    int   calls;
} collected;

static srlm_status collect(const srlm_gen_output *o, void *ctx) {
    collected *c = ctx;
    c->calls++;
    c->n[o->request][o->sample] = o->n_ids;
    memcpy(c->ids[o->request][o->sample], o->ids, sizeof(int) * (size_t)o->n_ids);
    snprintf(c->text[o->request][o->sample], 256, "%.*s", (int)o->text_len, o->text);
    snprintf(c->reason[o->request][o->sample], 8, "%s", o->finish_reason);
    return SRLM_OK;
}

static int same(const collected *a, const collected *b, int nreq) {
    for (int r = 0; r < nreq; r++)
        for (int s = 0; s < NS; s++)
            if (a->n[r][s] != b->n[r][s] || memcmp(a->ids[r][s], b->ids[r][s], sizeof(int) * (size_t)a->n[r][s]))
                return 0;
    return 1;
}

/* A backend whose recordings never keep (test 5): it counts the tries. */
static srlm_status (*real_begin)(srlm_backend *, uint64_t);
static srlm_status (*real_end)(srlm_backend *, int);
static int begins;
static srlm_status counting_begin(srlm_backend *be, uint64_t key) {
    begins++;
    return real_begin(be, key);
}
static srlm_status refusing_end(srlm_backend *be, int keep) {
    (void)keep;
    SRLM_CHECK(real_end(be, 0));
    return SRLM_ERR(SRLM_FAILED, "test: this backend keeps no recording");
}

int main(void) {
    const char *fx = test_env("SRLM_FIXTURES", "tests/fixtures");
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/llama/tiny-gqa", fx);
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    srlm_checkpoint ck;
    srlm_llama m;
    srlm_tokenizer *tok;
    CHECK_OK(srlm_ckpt_open(&ck, dir));
    CHECK_OK(srlm_llama_load(&m, &ck, be, NULL));
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    CHECK_OK(srlm_tokenizer_load(&tok, path));
    static collected a, b;

    /* 1. greedy == transformers' generate */
    snprintf(path, sizeof path, "%s/reference.json", dir);
    char *text = test_read_file(path, NULL);
    cJSON *ref = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK(ref != NULL);
    const cJSON *gen = cJSON_GetObjectItem(ref, "generate");
    int pids[64], np = cJSON_GetArraySize(cJSON_GetObjectItem(gen, "prompt_ids"));
    for (int i = 0; i < np; i++) pids[i] = cJSON_GetArrayItem(cJSON_GetObjectItem(gen, "prompt_ids"), i)->valueint;
    srlm_gen_request g = {pids, np, 1, {0, 1, 0}, MAXNEW, -1, NULL, 0, 7};
    srlm_gen_config gc = {4, np + MAXNEW, 1, 0, NULL, NULL, 0, 0};
    memset(&a, 0, sizeof a);
    CHECK_OK(srlm_generate(&m, tok, &gc, &g, 1, collect, &a, NULL));
    int ok = a.n[0][0] == MAXNEW;
    for (int i = 0; ok && i < MAXNEW; i++) ok = a.ids[0][0][i] == cJSON_GetArrayItem(cJSON_GetObjectItem(gen, "new_ids"), i)->valueint;
    CHECK_MSG(ok, "engine greedy output differs from transformers' generate");
    CHECK(!strcmp(a.reason[0][0], "length"));
    cJSON_Delete(ref);

    /* 2. sampling: the same tokens whatever the batch, sharing or prefix reuse */
    int prompts[NREQ][40], lens[NREQ];
    for (int r = 0; r < NREQ; r++) {
        lens[r] = 20 + 3 * r;
        for (int i = 0; i < lens[r]; i++)
            prompts[r][i] = i < 18 ? 3 + (int)(srlm_rng_u64(1, (uint64_t)i) % 300)   /* a shared 18-token preamble */
                                   : 3 + (int)(srlm_rng_u64(100 + r, (uint64_t)i) % 300);
    }
    srlm_gen_request reqs[NREQ];
    for (int r = 0; r < NREQ; r++)
        reqs[r] = (srlm_gen_request){prompts[r], lens[r], NS, {0.8f, 0.9f, 0}, MAXNEW, 2, NULL, 0,
                                     srlm_rng_key(42, (uint64_t)r)};
    const srlm_gen_config variants[] = {
        {32, 40 + MAXNEW, 1, 0, NULL, NULL, 0, 0}, {1, 40 + MAXNEW, 1, 0, NULL, NULL, 0, 0}, {7, 40 + MAXNEW, 1, 0, NULL, NULL, 0, 0},
        {7, 40 + MAXNEW, 0, 0, NULL, NULL, 0, 0}, {32, 40 + MAXNEW, 0, 0, NULL, NULL, 0, 0}, {7, 40 + MAXNEW, 1, 16, NULL, NULL, 0, 0}, {3, 40 + MAXNEW, 1, 16, NULL, NULL, 0, 0},
        {32, 40 + MAXNEW, 0, 0, NULL, NULL, 1, 0}, {32, 40 + MAXNEW, 1, 16, NULL, NULL, 0, 0},
        {7, 40 + MAXNEW, 0, 0, NULL, NULL, 0, 4},
    };
    const char *names[] = {"batch 32, shared", "batch 1", "batch 7", "batch 7, no sharing", "batch 32, no sharing",
                           "batch 7, prefix reuse", "batch 3, prefix reuse", "batch 32, one prompt a forward",
                           "batch 32, prefix reuse", "batch 7, no sharing, admit by 4"};
    enum { NV = sizeof variants / sizeof variants[0] };
    srlm_gen_stats stv[NV];
    memset(&a, 0, sizeof a);
    srlm_gen_stats st0;
    CHECK_OK(srlm_generate(&m, tok, &variants[0], reqs, NREQ, collect, &a, &st0));
    CHECK(a.calls == NREQ * NS);
    int distinct = 0;
    for (int r = 0; r < NREQ; r++)
        for (int s = 1; s < NS; s++) distinct += a.n[r][s] != a.n[r][0] || memcmp(a.ids[r][s], a.ids[r][0], sizeof(int) * (size_t)a.n[r][0]);
    CHECK_MSG(distinct > NREQ, "the samples of a prompt should differ at temperature 0.8 (%d differ)", distinct);
    for (int v = 1; v < NV; v++) {
        memset(&b, 0, sizeof b);
        CHECK_OK(srlm_generate(&m, tok, &variants[v], reqs, NREQ, collect, &b, &stv[v]));
        CHECK_MSG(same(&a, &b, NREQ), "%s: tokens differ from batch 32 with sharing", names[v]);
        printf("%-30s identical; prefilled %4ld prompt tokens in %2ld forwards, reused %4ld; %ld forwards\n",
               names[v], stv[v].prefilled_tokens, stv[v].prefills, stv[v].reused_tokens, stv[v].forwards);
    }
    /* batched prefill: the 24 prompts of "no sharing" (20..35 tokens) in one
     * forward; one by one when the budget holds one prompt; with prefix reuse,
     * the first prompt alone, then the other five on its 18-token preamble */
    CHECK_MSG(stv[4].prefills == 1, "batch 32, no sharing: %ld prefill forwards", stv[4].prefills);
    CHECK_MSG(stv[7].prefills == NREQ * NS && stv[7].prefilled_tokens == stv[4].prefilled_tokens,
              "one prompt a forward: %ld prefill forwards, %ld tokens", stv[7].prefills, stv[7].prefilled_tokens);
    /* admissions that wait for 4 free slots share fewer prefill forwards */
    CHECK_MSG(stv[9].prefills < stv[3].prefills && stv[9].prefilled_tokens == stv[3].prefilled_tokens,
              "admit by 4: %ld prefill forwards (one at a time: %ld)", stv[9].prefills, stv[3].prefills);
    CHECK_MSG(stv[8].prefills == 2 && stv[8].prefilled_tokens < st0.prefilled_tokens &&
                  stv[8].reused_tokens > st0.reused_tokens,
              "batch 32, prefix reuse: %ld prefill forwards (expected 2), %ld tokens reused (sharing alone: %ld)",
              stv[8].prefills, stv[8].reused_tokens, st0.reused_tokens);
    printf("%-24s prefilled %4ld prompt tokens, reused %4ld\n", names[0], st0.prefilled_tokens, st0.reused_tokens);

    /* 2b. prefix reuse from any prompt: judge-like prompts (a 16-token template,
     * an 8-token instruction A or B, a 4..8-token answer) A1 A2 B1 B2 A3, two
     * samples each. A1 runs first; A2 and A3 reuse its template + A (24 rows),
     * B1 its template (16), B2 then B1's template + B (24): three stages, 88 rows
     * reused, and each second sample copies its prompt (150 rows). The tokens
     * are those of the same prompts prefilled in full. */
    {
        enum { NJ = 5 };
        int jp[NJ][32], jl[NJ];
        const int instr[NJ] = {0, 0, 1, 1, 0};
        srlm_gen_request jr[NJ];
        for (int r = 0; r < NJ; r++) {
            jl[r] = 24 + 4 + r;
            for (int i = 0; i < jl[r]; i++)
                jp[r][i] = i < 16 ? 3 + (int)(srlm_rng_u64(5, (uint64_t)i) % 290)
                         : i < 24 ? 3 + (int)(srlm_rng_u64(6 + instr[r], (uint64_t)i) % 290)
                                  : 3 + (int)(srlm_rng_u64(20 + r, (uint64_t)i) % 290);
            jr[r] = (srlm_gen_request){jp[r], jl[r], 2, {0.8f, 0.9f, 0}, MAXNEW, 2, NULL, 0, srlm_rng_key(9, (uint64_t)r)};
        }
        static collected full, reuse;
        const srlm_gen_config no_reuse = {32, 40 + MAXNEW, 1, 0, NULL, NULL, 0, 0};
        const srlm_gen_config with_reuse = {32, 40 + MAXNEW, 1, 16, NULL, NULL, 0, 0};
        const srlm_gen_config small = {3, 40 + MAXNEW, 1, 16, NULL, NULL, 0, 0};
        srlm_gen_stats sf, sr, ss;
        memset(&full, 0, sizeof full);
        memset(&reuse, 0, sizeof reuse);
        CHECK_OK(srlm_generate(&m, tok, &no_reuse, jr, NJ, collect, &full, &sf));
        CHECK_OK(srlm_generate(&m, tok, &with_reuse, jr, NJ, collect, &reuse, &sr));
        CHECK_MSG(same(&full, &reuse, NJ), "judge-like prompts: tokens with prefix reuse differ from full prefills");
        CHECK_MSG(sr.reused_tokens == 88 + 150 && sr.prefilled_tokens == 150 - 88 && sr.prefills == 3,
                  "judge-like prompts: %ld rows reused, %ld prefilled in %ld forwards (expected 238, 62, 3)",
                  sr.reused_tokens, sr.prefilled_tokens, sr.prefills);
        memset(&reuse, 0, sizeof reuse);
        CHECK_OK(srlm_generate(&m, tok, &small, jr, NJ, collect, &reuse, &ss));
        CHECK_MSG(same(&full, &reuse, NJ), "judge-like prompts, batch 3: tokens with prefix reuse differ");
        printf("judge-like prompts         identical; reuse from any prompt: %ld rows reused, %ld prefilled in %ld "
               "forwards (batch 3: %ld, %ld in %ld)\n", sr.reused_tokens, sr.prefilled_tokens, sr.prefills,
               ss.reused_tokens, ss.prefilled_tokens, ss.prefills);
    }

    /* 3. stop strings: cut exactly before the first occurrence */
    const char *t0 = a.text[1][2];
    size_t L = strlen(t0);
    CHECK_MSG(L >= 6, "sample text too short for a stop test: '%s'", t0);
    char stop[8];
    snprintf(stop, sizeof stop, "%.3s", t0 + L / 2);
    const char *stops[1] = {stop};
    srlm_gen_request rs = reqs[1];
    rs.stop = stops;
    rs.n_stop = 1;
    memset(&b, 0, sizeof b);
    srlm_gen_config one = {4, 40 + MAXNEW, 1, 0, NULL, NULL, 0, 0};
    CHECK_OK(srlm_generate(&m, tok, &one, &rs, 1, collect, &b, NULL));
    const char *at = strstr(t0, stop);
    CHECK_MSG(at && strlen(b.text[0][2]) == (size_t)(at - t0) && !strncmp(b.text[0][2], t0, (size_t)(at - t0)),
              "stop '%s': got '%s' from '%s'", stop, b.text[0][2], t0);
    CHECK_MSG(!strcmp(b.reason[0][2], "stop"), "finish reason %s", b.reason[0][2]);
    CHECK(b.n[0][2] <= a.n[1][2] && !memcmp(b.ids[0][2], a.ids[1][2], sizeof(int) * (size_t)b.n[0][2]));

    /* 4. EOS ends a sample and is its last id; bad requests are refused */
    for (int r = 0; r < NREQ; r++)
        for (int s = 0; s < NS; s++)
            if (!strcmp(a.reason[r][s], "eos")) CHECK(a.ids[r][s][a.n[r][s] - 1] == 2);
    srlm_gen_config tiny = {4, 10, 1, 0, NULL, NULL, 0, 0};
    srlm_status bad = srlm_generate(&m, tok, &tiny, reqs, 1, collect, &b, NULL);
    CHECK_MSG(bad == SRLM_BAD_INPUT && strstr(srlm_last_error(), "do not fit"), "%s", srlm_last_error());
    int bad_ids[2] = {1, 99999};
    srlm_gen_request br = {bad_ids, 2, 1, {0, 1, 0}, 4, -1, NULL, 0, 1};
    bad = srlm_generate(&m, tok, &one, &br, 1, collect, &b, NULL);
    CHECK_MSG(bad == SRLM_BAD_INPUT && strstr(srlm_last_error(), "outside the vocabulary"), "%s", srlm_last_error());

    /* 5. recorded decode steps (backend.h): the guarded backend keeps a tape
     * of the ops it would run, as the CUDA backend keeps a CUDA graph.
     * Replayed steps give the CPU's tokens bit for bit; a backend whose
     * recordings all fail gives them too, op by op, and stops trying after 3. */
    srlm_backend *bg;
    srlm_llama mg;
    CHECK_OK(srlm_backend_cpu_guarded_new(&bg, 0));
    CHECK_OK(srlm_llama_load(&mg, &ck, bg, NULL));
    for (int v = 0; v < 3; v += 2) {
        memset(&b, 0, sizeof b);
        srlm_gen_stats sg;
        CHECK_OK(srlm_generate(&mg, tok, &variants[v], reqs, NREQ, collect, &b, &sg));
        CHECK_MSG(same(&a, &b, NREQ), "%s: recorded decode steps give other tokens than the CPU's", names[v]);
        CHECK_MSG(sg.steps_replayed > 0 && sg.steps_recorded > 0 && sg.steps_replayed > sg.steps_recorded,
                  "%s: %ld decode steps replayed of %ld recordings", names[v], sg.steps_replayed, sg.steps_recorded);
        printf("%-24s identical with recorded steps: %ld replayed, %ld recordings, %ld forwards, %ld padding rows\n",
               names[v], sg.steps_replayed, sg.steps_recorded, sg.forwards, sg.decode_padding);
    }
    /* a batch that shrinks by one every two steps (6 requests, 2 + 2r new
     * tokens, no EOS): its 6 .. 1 running sequences are padded to 6, 4, 2 or 1
     * rows, so 4 recordings serve all 11 decode steps (7 replayed); unpadded,
     * each size would run once op by op and be recorded at its second step */
    {
        srlm_gen_request sr8[NREQ];
        for (int r = 0; r < NREQ; r++) {
            sr8[r] = reqs[r];
            sr8[r].n_samples = 1;
            sr8[r].eos_id = -1;
            sr8[r].max_new_tokens = 2 + 2 * r;
        }
        const srlm_gen_config g8 = {NREQ, 40 + MAXNEW, 1, 0, NULL, NULL, 0, 0};
        static collected c8, g8c;
        memset(&c8, 0, sizeof c8);
        memset(&g8c, 0, sizeof g8c);
        srlm_gen_stats s8, sg8;
        CHECK_OK(srlm_generate(&m, tok, &g8, sr8, NREQ, collect, &c8, &s8));
        CHECK_OK(srlm_generate(&mg, tok, &g8, sr8, NREQ, collect, &g8c, &sg8));
        const long steps = sg8.forwards - sg8.prefills;
        CHECK_MSG(same(&c8, &g8c, NREQ) && c8.calls == NREQ, "shrinking batch: recorded steps with padded batches "
                  "give other tokens than the CPU's");
        CHECK_MSG(steps == 11 && sg8.steps_recorded == 4 && sg8.steps_replayed == 7 && sg8.decode_padding > 0,
                  "shrinking batch: %ld decode steps, %ld recordings, %ld replayed, %ld padding rows (expected 11, 4, "
                  "7, > 0)", steps, sg8.steps_recorded, sg8.steps_replayed, sg8.decode_padding);
        printf("%-24s identical with recorded steps: %ld decode steps, %ld recordings, %ld replayed, %ld padding rows\n",
               "shrinking batch of 6", steps, sg8.steps_recorded, sg8.steps_replayed, sg8.decode_padding);
    }
    static srlm_backend_ops refusing;
    const srlm_backend_ops *guarded_ops = bg->ops;
    refusing = *guarded_ops;
    refusing.step_begin = counting_begin;
    refusing.step_end = refusing_end;
    real_begin = guarded_ops->step_begin;
    real_end = guarded_ops->step_end;
    bg->ops = &refusing;
    memset(&b, 0, sizeof b);
    srlm_gen_stats sr;
    CHECK_OK(srlm_generate(&mg, tok, &variants[0], reqs, NREQ, collect, &b, &sr));
    CHECK_MSG(same(&a, &b, NREQ), "failed recordings: tokens differ from the CPU's");
    CHECK_MSG(sr.steps_replayed == 0 && sr.steps_recorded == 0 && begins == 3,
              "failed recordings: %ld replayed, %ld recorded, %d recordings tried (expected 0, 0, 3)", sr.steps_replayed,
              sr.steps_recorded, begins);
    bg->ops = guarded_ops;
    srlm_llama_free(&mg);
    srlm_backend_free(bg);

    srlm_tokenizer_free(tok);
    srlm_llama_free(&m);
    srlm_ckpt_close(&ck);
    srlm_backend_free(be);
    TEST_DONE();
}
