/* srlm generate: one --prompt, or every line of --input, through the generation
 * engine (continuous batching, shared prefixes, per-sample reproducible
 * sampling). Output lines follow DESIGN.md's candidates format. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "backend/factory.h"
#include "model/model_session.h"
#include "core/log.h"
#include "core/rng.h"
#include "generate/engine.h"
#include "io/chat.h"
#include "io/config.h"
#include "io/jsonl.h"

typedef struct {
    char  *id;           /* prompt_id: from the input line, or the line number */
    char  *text;         /* prompt text, or NULL when given as ids */
    int   *ids;
    int    n_ids;
} prompt_rec;

typedef struct {
    FILE                   *out;
    const prompt_rec       *prompts;
    const srlm_gen_request *reqs;
    int                     n_reqs, samples, print_ids, single;
    long                    done, total, tokens;
    double                  t0, last_print;
    char                  **pending;      /* finished lines not yet written, [request * samples + sample] */
    long                    next_write;
} writer;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Each finished sample becomes one line; lines are written in (request, sample)
 * order, whatever order they finish in. */
static srlm_status on_output(const srlm_gen_output *o, void *ctx) {
    writer *w = ctx;
    if (w->single) {
        fwrite(o->text, 1, o->text_len, w->out);
        fputc('\n', w->out);
        if (w->print_ids) {
            for (int i = 0; i < o->n_ids; i++) fprintf(w->out, "%s%d", i ? " " : "", o->ids[i]);
            fputc('\n', w->out);
        }
    } else {
        const prompt_rec *p = &w->prompts[o->request];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "prompt_id", p->id);
        if (p->text) cJSON_AddStringToObject(j, "prompt", p->text);
        cJSON_AddItemToObject(j, "prompt_ids", cJSON_CreateIntArray(p->ids, p->n_ids));
        cJSON_AddNumberToObject(j, "sample", o->sample);
        char *resp = malloc(o->text_len + 1);
        if (!resp) { cJSON_Delete(j); return SRLM_ERR(SRLM_FAILED, "out of memory"); }
        memcpy(resp, o->text, o->text_len);
        resp[o->text_len] = '\0';
        cJSON_AddStringToObject(j, "response", resp);
        free(resp);
        cJSON_AddItemToObject(j, "response_ids", cJSON_CreateIntArray(o->ids, o->n_ids));
        cJSON_AddStringToObject(j, "finish_reason", o->finish_reason);
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)w->reqs[o->request].seed);
        cJSON_AddItemToObject(j, "seed", cJSON_CreateRaw(seed)); /* exact 64-bit integer */
        w->pending[(long)o->request * w->samples + o->sample] = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        while (w->next_write < w->total && w->pending[w->next_write]) {
            fprintf(w->out, "%s\n", w->pending[w->next_write]);
            free(w->pending[w->next_write]);
            w->pending[w->next_write++] = NULL;
        }
    }
    w->done++;
    w->tokens += o->n_ids;
    double t = now_s() - w->t0;
    if (!w->single && (t - w->last_print > 2.0 || w->done == w->total)) {
        double eta = w->done ? t / w->done * (w->total - w->done) : 0;
        SRLM_INFO("generate: %ld/%ld samples | %.0f tokens/s | ETA %.0fs", w->done, w->total,
                  t > 0 ? w->tokens / t : 0.0, eta);
        w->last_print = t;
    }
    return ferror(w->out) ? SRLM_ERR(SRLM_FAILED, "write failed") : SRLM_OK;
}

static srlm_status read_prompts(const char *path, srlm_model_session *s, int chat, const char *system,
                                prompt_rec **out, int *n_out) {
    srlm_jsonl_reader r;
    SRLM_CHECK(srlm_jsonl_open(&r, path));
    prompt_rec *p = NULL;
    int n = 0, cap = 0;
    srlm_status st = SRLM_OK;
    for (;;) {
        cJSON *rec;
        SRLM_CHECK_GOTO(srlm_jsonl_next(&r, &rec), st, done);
        if (!rec) break;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            prompt_rec *grown = realloc(p, sizeof *p * (size_t)cap);
            if (!grown) { cJSON_Delete(rec); st = SRLM_ERR(SRLM_FAILED, "out of memory"); goto done; }
            p = grown;
        }
        prompt_rec *q = &p[n];
        memset(q, 0, sizeof *q);
        int has_ids = 0;
        const char *text = NULL;
        st = srlm_json_int_array(&r, rec, "prompt_ids", s->model.cfg.vocab_size, &q->ids, &q->n_ids, &has_ids);
        if (st == SRLM_OK && !has_ids) st = srlm_json_string(&r, rec, "prompt", &text, NULL);
        if (st == SRLM_OK && text) {
            q->text = strdup(text);
            if (chat) {
                srlm_chat_turn turn = {text, NULL};
                st = srlm_chat_encode(s->tok, system, &turn, 1, &q->ids, &q->n_ids);
            } else {
                st = srlm_tokenizer_encode(s->tok, text, strlen(text), 1, 0, &q->ids, &q->n_ids);
            }
        }
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "prompt_id");
        char buf[32];
        snprintf(buf, sizeof buf, "%d", n);
        q->id = strdup(cJSON_IsString(id) ? id->valuestring : buf);
        cJSON_Delete(rec);
        n++;
        if (st != SRLM_OK) goto done;
    }
done:
    srlm_jsonl_close(&r);
    *out = p;
    *n_out = n;
    return st;
}

typedef struct {
    const char *model, *prompt, *input, *output, *tokenizer, *system, *stop, *backend, *dtype;
    long        max_new, threads, samples, top_k, batch, seed, min_shared, prefill_tokens, min_admit;
    double      temperature, top_p, kv_mb;
    int         chat, print_ids, ignore_eos, no_share;
} gen_args;

#define UNSET LONG_MIN

static srlm_status run_generate(const gen_args *a);

srlm_status cmd_generate(int argc, char **argv) {
    /* UNSET / NAN: not given (the flag parser refuses NaN, and nobody types LONG_MIN), so a
     * negative value given on purpose still reaches the range checks; unset values come from
     * the config when there is one, else the built-in default */
    gen_args a = {.output = "-", .max_new = UNSET, .threads = UNSET, .samples = UNSET, .top_k = UNSET, .batch = 32,
                  .seed = UNSET, .min_shared = 16, .temperature = NAN, .top_p = NAN, .kv_mb = NAN};
    const srlm_flag flags[] = {
        {"model", FLAG_STRING, &a.model, "DIR", "Hugging Face checkpoint folder (default: model.path)", 0},
        {"prompt", FLAG_STRING, &a.prompt, "TEXT", "one prompt; its continuation goes to stdout", 0},
        {"input", FLAG_STRING, &a.input, "FILE", "JSONL of {prompt} or {prompt_ids} (optional prompt_id)", 0},
        {"output", FLAG_STRING, &a.output, "FILE", "JSONL of candidates ('-' = stdout)", 0},
        {"samples", FLAG_INT, &a.samples, "N", "samples per prompt (default 1)", 0},
        {"temperature", FLAG_DOUBLE, &a.temperature, "T", "0 = greedy (default 0)", 0},
        {"top-p", FLAG_DOUBLE, &a.top_p, "P", "nucleus sampling threshold (default 1 = off)", 0},
        {"top-k", FLAG_INT, &a.top_k, "K", "keep the K most likely tokens (default 0 = off)", 0},
        {"max-new-tokens", FLAG_INT, &a.max_new, "N", "tokens to generate at most (default 64)", 0},
        {"seed", FLAG_INT, &a.seed, "S", "seed; each prompt's seed derives from it and its line (default 1234)", 0},
        {"stop", FLAG_STRING, &a.stop, "TEXT", "stop when this text appears (cut before it)", 0},
        {"chat", FLAG_BOOL, &a.chat, NULL, "wrap prompts in the Llama-2 chat format", 0},
        {"system", FLAG_STRING, &a.system, "TEXT", "system prompt (with --chat)", 0},
        {"tokenizer", FLAG_STRING, &a.tokenizer, "FILE", "SentencePiece model (default DIR/tokenizer.model)", 0},
        {"ignore-eos", FLAG_BOOL, &a.ignore_eos, NULL, "keep going after the end-of-sequence token", 0},
        {"print-ids", FLAG_BOOL, &a.print_ids, NULL, "with --prompt: print the generated ids on a second line", 0},
        {"batch", FLAG_INT, &a.batch, "B", "sequences decoded together (default 32)", 0},
        {"kv-cache-mb", FLAG_DOUBLE, &a.kv_mb, "MB", "KV cache memory bound (default 1024)", 0},
        {"no-share-prefix", FLAG_BOOL, &a.no_share, NULL, "prefill every sample's prompt separately", 0},
        {"min-shared-prefix", FLAG_INT, &a.min_shared, "K", "reuse the previous prompt's first K+ tokens (default 16; 0 = off)", 0},
        {"prefill-tokens", FLAG_INT, &a.prefill_tokens, "N",
         "prompts x longest prompt in one prefill forward, at most (default 4096; 1 = one prompt a forward)", 0},
        {"min-admit", FLAG_INT, &a.min_admit, "N",
         "free slots to wait for before admitting queued samples (default 0: an eighth of --batch on a GPU, else 1)", 0},
        {"threads", FLAG_INT, &a.threads, "N", "CPU threads (default: all cores)", 0},
        {"backend", FLAG_STRING, &a.backend, "NAME", "cpu, cuda or cpu_guarded (default: backend.name, else cpu)", 0},
        {"dtype", FLAG_STRING, &a.dtype, "NAME", "float32 or bfloat16 weights and activations (default: backend.dtype, else float32)", 0},
    };
    const srlm_command_spec spec = {"generate", "[CONFIG] [key.sub=value ...]",
        "Generates with the KV cache: greedy at temperature 0, else sampling with top-k/top-p. Each sample's\n"
        "tokens depend only on (seed, prompt line, sample index), not on batching. With a CONFIG, the\n"
        "defaults come from its generate.*, run.seed, backend.* and model.* keys; flags win.",
        flags, SRLM_COUNT(flags), -1};
    srlm_parsed_args pa;
    SRLM_CHECK(srlm_parse_flags(&spec, argc, argv, &pa));
    if (pa.help_shown) { srlm_parsed_args_free(&pa); return SRLM_OK; }
    srlm_config cfg;
    int have_cfg = pa.n_positional > 0;
    if (have_cfg) {
        /* --model stands in for model.path, so a config need not name one */
        char *args[258], model_kv[1100];
        int n_args = 0;
        for (int i = 0; i < pa.n_positional && n_args < 256; i++) args[n_args++] = pa.positional[i];
        if (a.model) { snprintf(model_kv, sizeof model_kv, "model.path=%s", a.model); args[n_args++] = model_kv; }
        srlm_status cst = srlm_config_from_args(&cfg, n_args, args);
        srlm_parsed_args_free(&pa);
        SRLM_CHECK(cst);
        if (!a.model) a.model = cfg.model.path;
        if (!a.tokenizer && cfg.model.tokenizer && *cfg.model.tokenizer) a.tokenizer = cfg.model.tokenizer;
        if (isnan(a.temperature)) a.temperature = cfg.generate.temperature;
        if (isnan(a.top_p)) a.top_p = cfg.generate.top_p;
        if (a.top_k == UNSET) a.top_k = cfg.generate.top_k;
        if (a.max_new == UNSET) a.max_new = cfg.generate.max_new_tokens;
        if (a.samples == UNSET) a.samples = cfg.generate.samples;
        if (isnan(a.kv_mb)) a.kv_mb = cfg.generate.kv_cache_mb;
        if (a.seed == UNSET) a.seed = cfg.run.seed;
        if (a.threads == UNSET) a.threads = cfg.backend.threads;
        if (!a.backend) a.backend = srlm_backend_kind_name(cfg.backend.name);
        if (!a.dtype) a.dtype = cfg.backend.dtype == SRLM_BF16 ? "bfloat16" : "float32";
    } else {
        srlm_parsed_args_free(&pa);
    }
    if (isnan(a.temperature)) a.temperature = 0;
    if (isnan(a.top_p)) a.top_p = 1;
    if (a.top_k == UNSET) a.top_k = 0;
    if (a.max_new == UNSET) a.max_new = 64;
    if (a.samples == UNSET) a.samples = 1;
    if (isnan(a.kv_mb)) a.kv_mb = 1024;
    if (a.seed == UNSET) a.seed = 1234;
    if (a.threads == UNSET) a.threads = 0;
    srlm_status st = run_generate(&a);
    if (have_cfg) srlm_config_free(&cfg);
    return st;
}

static srlm_status run_generate(const gen_args *a) {
    const char *model = a->model, *prompt = a->prompt, *input = a->input, *output = a->output;
    const char *tokenizer = a->tokenizer, *system = a->system, *stop = a->stop;
    const long max_new = a->max_new, threads = a->threads, samples = a->samples, top_k = a->top_k;
    const long batch = a->batch, seed = a->seed, min_shared = a->min_shared;
    const double temperature = a->temperature, top_p = a->top_p, kv_mb = a->kv_mb;
    const int chat = a->chat, print_ids = a->print_ids, ignore_eos = a->ignore_eos, no_share = a->no_share;
    if (!model) return SRLM_ERR(SRLM_BAD_INPUT, "no model: give --model DIR or a CONFIG with model.path");
    if (!prompt == !input) return SRLM_ERR(SRLM_BAD_INPUT, "give exactly one of --prompt TEXT and --input FILE");
    if (max_new < 1 || max_new > 1000000)
        return SRLM_ERR(SRLM_BAD_INPUT, "--max-new-tokens: expected 1 .. 1000000, found %ld", max_new);
    if (samples < 1 || samples > 100000) return SRLM_ERR(SRLM_BAD_INPUT, "--samples: expected >= 1, found %ld", samples);
    if (batch < 1 || batch > 65536) return SRLM_ERR(SRLM_BAD_INPUT, "--batch: expected 1 .. 65536, found %ld", batch);
    if (top_k < 0) return SRLM_ERR(SRLM_BAD_INPUT, "--top-k: expected >= 0 (0 = off), found %ld", top_k);
    if (seed < 0) return SRLM_ERR(SRLM_BAD_INPUT, "--seed: expected >= 0, found %ld", seed);
    if (threads < 0) return SRLM_ERR(SRLM_BAD_INPUT, "--threads: expected >= 0 (0 = all cores), found %ld", threads);
    if (min_shared < 0)
        return SRLM_ERR(SRLM_BAD_INPUT, "--min-shared-prefix: expected >= 0 (0 = off), found %ld", min_shared);
    if (a->min_admit < 0 || a->min_admit > 65536)
        return SRLM_ERR(SRLM_BAD_INPUT, "--min-admit: expected 1 .. 65536 (0 = default), found %ld", a->min_admit);
    if (a->prefill_tokens < 0 || a->prefill_tokens > 100000000)
        return SRLM_ERR(SRLM_BAD_INPUT, "--prefill-tokens: expected 1 .. 100000000 (0 = default), found %ld",
                        a->prefill_tokens);
    if (top_k > 1000000000) return SRLM_ERR(SRLM_BAD_INPUT, "--top-k: expected <= 1000000000, found %ld", top_k);
    if (system && !chat) return SRLM_ERR(SRLM_BAD_INPUT, "--system only applies with --chat");
    const srlm_sampling sampling = {(float)temperature, (float)top_p, (int)top_k};
    SRLM_CHECK(srlm_sampling_validate(&sampling));
    srlm_backend_kind backend = SRLM_BACKEND_CPU;
    if (a->backend) SRLM_CHECK(srlm_backend_kind_parse(a->backend, &backend));
    srlm_dtype dtype = SRLM_F32;
    if (a->dtype && srlm_backend_dtype_parse(a->dtype, &dtype) != SRLM_OK) {
        srlm_error_context("--dtype");
        return SRLM_BAD_INPUT;
    }

    srlm_model_session s;
    SRLM_CHECK(srlm_model_session_open_on(&s, model, tokenizer, 1, backend, dtype, (int)threads, 0, NULL));
    prompt_rec *prompts = NULL;
    srlm_gen_request *reqs = NULL;
    int n = 0;
    writer w = {0};
    srlm_status st;
    if (input) {
        SRLM_CHECK_GOTO(read_prompts(input, &s, chat, system, &prompts, &n), st, done);
    } else {
        prompts = calloc(1, sizeof *prompts);
        if (!prompts) { st = SRLM_ERR(SRLM_FAILED, "out of memory"); goto done; }
        n = 1;
        prompts[0].id = strdup("0");
        prompts[0].text = strdup(prompt);
        if (chat) {
            srlm_chat_turn turn = {prompt, NULL};
            SRLM_CHECK_GOTO(srlm_chat_encode(s.tok, system, &turn, 1, &prompts[0].ids, &prompts[0].n_ids), st, done);
        } else {
            SRLM_CHECK_GOTO(srlm_tokenizer_encode(s.tok, prompt, strlen(prompt), 1, 0, &prompts[0].ids,
                                                  &prompts[0].n_ids), st, done);
        }
    }
    reqs = calloc((size_t)(n > 0 ? n : 1), sizeof *reqs);
    if (!reqs) { st = SRLM_ERR(SRLM_FAILED, "out of memory"); goto done; }
    int longest = 1;
    const char *stops[1] = {stop};
    for (int i = 0; i < n; i++) {
        reqs[i] = (srlm_gen_request){prompts[i].ids, prompts[i].n_ids, (int)samples,
                                     sampling, (int)max_new,
                                     ignore_eos ? -1 : srlm_tokenizer_eos(s.tok), stops, stop ? 1 : 0,
                                     srlm_rng_key((uint64_t)seed, (uint64_t)i)};
        if (prompts[i].n_ids > longest) longest = prompts[i].n_ids;
    }
    srlm_gen_config gc = {(int)batch, longest + (int)max_new, !no_share, (int)min_shared, NULL, NULL,
                          (int)a->prefill_tokens, (int)a->min_admit};
    int fit = srlm_gen_slots_for_memory(&s.model, gc.max_seq, kv_mb);
    if (fit < 1) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "--kv-cache-mb %g holds no sequence of %d positions for this model "
                      "(raise it, or lower --max-new-tokens)", kv_mb, gc.max_seq);
        goto done;
    }
    if (fit < gc.max_batch) {
        SRLM_WARN("generate: --kv-cache-mb %g fits %d sequences of %d positions: batch lowered from %d", kv_mb,
                  fit, gc.max_seq, gc.max_batch);
        gc.max_batch = fit;
    }
    w = (writer){.prompts = prompts, .reqs = reqs, .n_reqs = n, .samples = (int)samples,
                 .print_ids = print_ids, .single = prompt != NULL, .total = (long)n * samples, .t0 = now_s()};
    w.out = strcmp(output, "-") ? fopen(output, "w") : stdout;
    w.pending = calloc((size_t)w.total + 1, sizeof(char *));
    if (!w.out || !w.pending) { st = SRLM_ERR(SRLM_BAD_INPUT, "%s: cannot open for writing", output); goto done; }
    srlm_gen_stats stats;
    SRLM_CHECK_GOTO(srlm_generate(&s.model, s.tok, &gc, reqs, n, on_output, &w, &stats), st, done);
    if (!w.single)
        SRLM_INFO("generate: %d prompts x %ld samples: %ld tokens generated; %ld prompt tokens prefilled in %ld "
                  "forwards, %ld reused; %ld decode steps replayed (%ld recordings)", n, samples,
                  stats.generated_tokens, stats.prefilled_tokens, stats.prefills, stats.reused_tokens,
                  stats.steps_replayed, stats.steps_recorded);
    st = fflush(w.out) == 0 ? SRLM_OK : SRLM_ERR(SRLM_FAILED, "%s: write failed", output);
done:
    if (w.out && w.out != stdout && fclose(w.out) != 0 && st == SRLM_OK)
        st = SRLM_ERR(SRLM_FAILED, "%s: write failed", output);
    if (w.pending) for (long i = 0; i < w.total; i++) free(w.pending[i]);
    free(w.pending);
    for (int i = 0; i < n && prompts; i++) { free(prompts[i].id); free(prompts[i].text); free(prompts[i].ids); }
    free(prompts);
    free(reqs);
    srlm_model_session_close(&s);
    return st;
}
