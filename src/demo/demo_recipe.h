/* The demo's M1 recipe: how `srlm demo` turns the task (demo/task.h) into a
 * tiny Llama that both answers and judges, from nothing, on a CPU in minutes:
 * seed data (demo/demo_data.h), a character-level SentencePiece tokenizer, a
 * randomly initialised model M0, and SFT on IFT + EFT -> M1. Every number that
 * shapes M1 is here, measured by benchmarks/demo (see its README). */
#ifndef SRLM_DEMO_RECIPE_H
#define SRLM_DEMO_RECIPE_H

#include "demo/demo_data.h"
#include "io/config.h"

typedef struct {
    srlm_demo_data_config data;
    /* model */
    int    dim, layers, heads, kv_heads, ffn;
    double init_std;
    uint64_t model_seed;
    /* SFT of M0 on ift.jsonl + eft.jsonl */
    double lr, lr_min;
    int    warmup_steps, batch_size, micro_batch_size, max_seq_len;
    double epochs, weight_decay, dropout;
} srlm_demo_recipe;

void srlm_demo_recipe_default(srlm_demo_recipe *r);

/* SentencePiece options of the demo tokenizer into buf: one piece per
 * character, byte fallback for anything else, each fixed phrase of the prompts
 * and judgements as ONE piece ("▁Name▁a▁word▁from▁the▁word▁list▁that▁starts▁with▁'",
 * "[/INST]", "in▁the▁list:"), and each syllable of the lexicon (task.c) as one
 * piece. The char model matches user-defined pieces on the normalised text,
 * longest first, where a space is "▁", so a phrase that begins with "▁" or
 * with a capital or punctuation never matches inside a lexicon word. Phrases
 * make an instruction 7 pieces instead of 72 and a judge example ~3x shorter
 * (training ~3x faster, what the judge must look at is near); syllables let
 * the judge recognise a word as a few pieces it has seen together (with one
 * piece per letter, M1's judge said "in the list: yes" to almost any
 * pronounceable non-word). Letters stay visible: first and last letters are a
 * word's first and last piece's. */
srlm_status srlm_demo_tokenizer_options(char *buf, size_t cap);

typedef struct { double data_s, tokenizer_s, sft_s; } srlm_demo_m1_times;

/* The SFT config of the recipe on top of `base` (NULL: defaults): model.path,
 * train.sft.* and backend.threads are set; the caller frees *cfg. */
srlm_status srlm_demo_sft_config(const srlm_demo_recipe *r, const char *model_dir, const char *data,
                                 int threads, srlm_config *cfg);

/* Builds DIR/data (seed data, templates), DIR/M0 (tokenizer + random model) and
 * trains DIR/sft: M1 is DIR/sft/model (with its tokenizer.model). lx is the
 * lexicon (made by the caller with srlm_lexicon_make(n_words, seed)). A
 * finished SFT is not redone (the trainer resumes). quiet: no progress lines. */
srlm_status srlm_demo_build_m1(const srlm_demo_recipe *r, const srlm_lexicon *lx, const char *dir, int threads,
                               int quiet, srlm_demo_m1_times *times);

#endif
