#include "demo/demo_recipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/fsutil.h"
#include "io/hf_config.h"
#include "io/tokenizer.h"
#include "model/llama_init.h"
#include "train/trainer.h"

void srlm_demo_recipe_default(srlm_demo_recipe *r) {
    /* measured in benchmarks/demo/RESULTS.md; the comments give the reason */
    memset(r, 0, sizeof *r);
    r->data = (srlm_demo_data_config){
        .n_words = 300, .seed = 1234,
        .n_ift = 4000,              /* answered instructions, train pairs only (4000: 97-100% right) */
        .n_eft = 16000,             /* judgements: the judge needs the most examples (12000: worse loop pairs) */
        .n_eval = 200,
        /* share of letter pairs answered: at 0.5 M1 answered 67-88% of held-out tasks and
         * the loop gained +0.05 on average (-0.07 .. +0.19); at 0.3, over 12 seeds, M1
         * answers 38-66% and every seed gains (M3 - M1 +0.095 .. +0.305) */
        .train_pair_share = 0.3,
        .lesson_copies = 30,        /* lessons are the model's memory of the list */
        /* copies of per-pair lessons: measured with syllable pieces and half the pairs
         * answered, 0 copies let M1 answer 56-71% of held-out tasks, 1 copy 83%, 8 copies
         * 83-91% (no room left for the loop) */
        .pair_lessons = 0,
        .n_self_instruct = 1500,    /* fewer: more self-written instructions with no answer */
    };
    r->dim = 128;
    r->layers = 4;
    r->heads = 4;
    r->kv_heads = 4;
    r->ffn = 344;
    r->init_std = 0.02;
    r->model_seed = 1;
    r->lr = 2e-3;
    r->lr_min = 2e-4;
    r->warmup_steps = 50;
    r->batch_size = 16;
    r->micro_batch_size = 8;        /* two a step; 16 measured no faster with packed batches */
    r->max_seq_len = 512;
    r->epochs = 1;
    r->weight_decay = 0.0;
    r->dropout = 0.0;
}

/* "▁" (U+2581) is SentencePiece's space; pieces hold no ASCII space (the
 * option string is split on spaces). Keep in step with the phrases of
 * demo_data.c and task.c; a phrase missing here only costs length. */
#define SP "\xe2\x96\x81"
static const char DEMO_PHRASES[] =
    "[INST],[/INST],"
    SP "Name" SP "a" SP "word" SP "from" SP "the" SP "word" SP "list" SP "that" SP "starts" SP "with" SP "',"
    "'" SP "and" SP "ends" SP "with" SP "',"
    SP "List" SP "the" SP "words" SP "that" SP "start" SP "with" SP "',"
    SP "List" SP "the" SP "words" SP "that" SP "end" SP "with" SP "',"
    "'" SP "and" SP "end" SP "with" SP "',"
    SP "Judge" SP "this" SP "answer.,Question:,Answer:,"
    "recall:,letters" SP "only:,in" SP "the" SP "list:,starts" SP "with" SP "',ends" SP "with" SP "',nothing" SP "else:,"
    SP "yes,Score:,"
    SP "Here" SP "are" SP "some" SP "tasks:,Write" SP "one" SP "more" SP "task" SP "like" SP "these.";

srlm_status srlm_demo_tokenizer_options(char *buf, size_t cap) {
    int n = snprintf(buf, cap,
                     "--model_type=char --vocab_size=400 --hard_vocab_limit=false --byte_fallback=true "
                     "--character_coverage=1.0 --normalization_rule_name=identity --remove_extra_whitespaces=false "
                     "--num_threads=1 --minloglevel=2 --user_defined_symbols=%s",
                     DEMO_PHRASES);
    const char *const *syl;
    int n_syl = srlm_lexicon_syllables(&syl);
    for (int i = 0; i < n_syl && n > 0 && (size_t)n < cap; i++)
        n += snprintf(buf + n, cap - (size_t)n, ",%s", syl[i]);
    if (n < 0 || (size_t)n >= cap)
        return SRLM_ERR(SRLM_FAILED, "demo tokenizer options: %zu bytes are too few", cap);
    return SRLM_OK;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

srlm_status srlm_demo_sft_config(const srlm_demo_recipe *r, const char *model_dir, const char *data,
                                 int threads, srlm_config *cfg) {
    SRLM_CHECK(srlm_config_defaults(cfg));
    char kv[1300];
    const char *fmt[] = {"model.path=%s", "train.sft.data=%s"};
    const char *val[] = {model_dir, data};
    srlm_status st = SRLM_OK;
    for (int i = 0; i < 2 && st == SRLM_OK; i++) {
        snprintf(kv, sizeof kv, fmt[i], val[i]);
        st = srlm_config_set(cfg, kv);
    }
    struct { const char *key; double v; } num[] = {
        {"train.sft.lr", r->lr}, {"train.sft.lr_min", r->lr_min}, {"train.sft.warmup_steps", r->warmup_steps},
        {"train.sft.batch_size", r->batch_size}, {"train.sft.micro_batch_size", r->micro_batch_size},
        {"train.sft.max_seq_len", r->max_seq_len}, {"train.sft.epochs", r->epochs},
        {"train.sft.weight_decay", r->weight_decay}, {"train.sft.dropout", r->dropout},
        {"train.sft.checkpoint_every", 100000}, {"backend.threads", threads}, {"run.seed", (double)r->model_seed},
        {"run.watchdog_s", 0},
    };
    for (size_t i = 0; i < sizeof num / sizeof num[0] && st == SRLM_OK; i++) {
        snprintf(kv, sizeof kv, "%s=%.10g", num[i].key, num[i].v);
        st = srlm_config_set(cfg, kv);
    }
    if (st == SRLM_OK) st = srlm_config_set(cfg, "train.sft.truncation=truncate_prompt");
    if (st == SRLM_OK) st = srlm_config_set(cfg, "model.dtype=float32");
    if (st != SRLM_OK) srlm_config_free(cfg);
    return st;
}

/* DIR/data/sft.jsonl = ift.jsonl ++ eft.jsonl (the trainer shuffles). */
static srlm_status concat(const char *data_dir) {
    char path[1200];
    snprintf(path, sizeof path, "%s/sft.jsonl", data_dir);
    FILE *out = fopen(path, "w");
    if (!out) return SRLM_ERR(SRLM_FAILED, "%s: cannot create", path);
    const char *parts[] = {"ift.jsonl", "eft.jsonl"};
    srlm_status st = SRLM_OK;
    char buf[1 << 16];
    for (int i = 0; i < 2 && st == SRLM_OK; i++) {
        char in_path[1200];
        snprintf(in_path, sizeof in_path, "%s/%s", data_dir, parts[i]);
        FILE *in = fopen(in_path, "r");
        if (!in) { st = SRLM_ERR(SRLM_FAILED, "%s: cannot read", in_path); break; }
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in)) > 0)
            if (fwrite(buf, 1, n, out) != n) { st = SRLM_ERR(SRLM_FAILED, "%s: write failed", path); break; }
        fclose(in);
    }
    if (fclose(out) != 0 && st == SRLM_OK) st = SRLM_ERR(SRLM_FAILED, "%s: write failed", path);
    return st;
}

srlm_status srlm_demo_build_m1(const srlm_demo_recipe *r, const srlm_lexicon *lx, const char *dir, int threads,
                               int quiet, srlm_demo_m1_times *times) {
    srlm_demo_m1_times tm = {0};
    char data_dir[1100], m0[1100], path[1200], path2[1200], sft_dir[1100];
    snprintf(data_dir, sizeof data_dir, "%s/data", dir);
    snprintf(m0, sizeof m0, "%s/M0", dir);
    snprintf(sft_dir, sizeof sft_dir, "%s/sft", dir);
    double t0 = now_s();
    SRLM_CHECK(srlm_demo_write_data(data_dir, &r->data, lx));
    SRLM_CHECK(concat(data_dir));
    tm.data_s = now_s() - t0;

    t0 = now_s();
    SRLM_CHECK(srlm_mkdir_p(m0));
    snprintf(path, sizeof path, "%s/corpus.txt", data_dir);
    snprintf(path2, sizeof path2, "%s/tokenizer", m0);
    char options[2048];
    SRLM_CHECK(srlm_demo_tokenizer_options(options, sizeof options));
    SRLM_CHECK(srlm_tokenizer_train(path, path2, options));
    srlm_tokenizer *tok;
    snprintf(path, sizeof path, "%s/tokenizer.model", m0);
    SRLM_CHECK(srlm_tokenizer_load(&tok, path));
    int vocab = srlm_tokenizer_vocab_size(tok), bos = srlm_tokenizer_bos(tok), eos = srlm_tokenizer_eos(tok);
    srlm_tokenizer_free(tok);
    tm.tokenizer_s = now_s() - t0;

    srlm_hf_config hc;
    srlm_hf_config_defaults(&hc);
    hc.vocab_size = vocab;
    hc.hidden_size = r->dim;
    hc.intermediate_size = r->ffn;
    hc.num_hidden_layers = r->layers;
    hc.num_attention_heads = r->heads;
    hc.num_key_value_heads = r->kv_heads;
    hc.head_dim = r->dim / r->heads;
    hc.max_position_embeddings = 2048;
    hc.rms_norm_eps = 1e-5;
    hc.bos_token_id = bos;
    hc.eos_token_id = eos;
    hc.pad_token_id = -1;
    snprintf(hc.torch_dtype, sizeof hc.torch_dtype, "float32");
    SRLM_CHECK(srlm_llama_write_random(m0, &hc, r->model_seed, r->init_std));

    t0 = now_s();
    srlm_config cfg;
    snprintf(path, sizeof path, "%s/sft.jsonl", data_dir);
    SRLM_CHECK(srlm_demo_sft_config(r, m0, path, threads, &cfg));
    srlm_train_job job = {SRLM_TRAIN_SFT, path, sft_dir, 0, quiet, NULL};
    srlm_status st = srlm_train(&cfg, &job);
    srlm_config_free(&cfg);
    tm.sft_s = now_s() - t0;
    if (times) *times = tm;
    return st;
}
