/* srlm demo: the self-rewarding loop in miniature, on a CPU, with no download
 * (DESIGN.md "Demo"). A verifiable task (demo/task.h: name a word of an invented
 * word list with given first and last letters) gives seed data; a tiny Llama is
 * trained from random weights on it (demo/demo_recipe.h) into M1, which both
 * answers and judges; then the same `srlm run` machinery (pipeline/loop.h) runs
 * self-rewarding iterations from M1. The task's truth is computable, so after
 * the run every model's held-out accuracy and its judge's agreement with the
 * truth are measured from the run's own evaluation files, printed per
 * iteration, and plotted (DIR/demo.svg). Rerunning the same command resumes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/watchdog.h"
#include "demo/demo_data.h"
#include "demo/demo_eval.h"
#include "demo/demo_recipe.h"
#include "demo/task.h"
#include "dist/topology.h"
#include "io/fsutil.h"
#include "io/svg_plot.h"
#include "pipeline/judge.h"
#include "pipeline/loop.h"
#include "pipeline/parts.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
    const char *out;
    long        seed, iterations, threads, eval_prompts, judge_tasks, prompts;
    int         quiet, quick;
} demo_args;

/* Held-out groups for the judge's agreement with the truth: for held-out
 * instructions, candidate answers of the EFT generator's mix, ranked by their
 * true rubric score (rank 0 = best; equal scores tie), in the format of
 * eval.heldout. */
static srlm_status write_judge_groups(const srlm_demo_recipe *r, const srlm_lexicon *lx, const char *path, int n) {
    srlm_task *tasks = calloc((size_t)n, sizeof *tasks);
    if (!tasks) return SRLM_ERR(SRLM_FAILED, "out of memory");
    int got = srlm_demo_tasks(&r->data, lx, r->data.seed + 101, 1, tasks, n);
    srlm_text t = {0};
    for (int i = 0; i < got; i++) {
        char instr[256], id[32];
        srlm_task_instruction(&tasks[i], instr, sizeof instr);
        snprintf(id, sizeof id, "judge-%d", i);
        cJSON *g = cJSON_CreateObject(), *rep = cJSON_CreateArray();
        cJSON_AddStringToObject(g, "prompt_id", id);
        cJSON_AddStringToObject(g, "prompt", instr);
        uint64_t key = srlm_rng_key(r->data.seed, 0x6a756467ull + (uint64_t)i);
        for (int k = 0; k < 5; k++) {
            char cand[128];
            srlm_demo_candidate(lx, &tasks[i], key, (uint64_t)k, cand, sizeof cand);
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "text", cand);
            cJSON_AddNumberToObject(c, "rank", SRLM_JUDGE_MAX_SCORE - srlm_task_score(lx, &tasks[i], cand, NULL));
            cJSON_AddItemToArray(rep, c);
        }
        cJSON_AddItemToObject(g, "replies", rep);
        srlm_text_add_json(&t, g);
        cJSON_Delete(g);
    }
    free(tasks);
    srlm_status st = srlm_text_status(&t);
    if (st == SRLM_OK) st = srlm_write_file_atomic(path, t.s, t.len);
    srlm_text_free(&t);
    return st;
}

/* The first n lines of a JSONL file, as another file (the evaluation prompts). */
static srlm_status head_lines(const char *in, const char *out, int n) {
    FILE *f = fopen(in, "r");
    if (!f) return SRLM_ERR(SRLM_BAD_INPUT, "%s: cannot open", in);
    srlm_text t = {0};
    char *line = NULL;
    size_t cap = 0;
    for (int i = 0; i < n && getline(&line, &cap, f) > 0; i++) srlm_text_add(&t, line, strlen(line));
    free(line);
    fclose(f);
    srlm_status st = srlm_text_status(&t);
    if (st == SRLM_OK) st = srlm_write_file_atomic(out, t.s ? t.s : "", t.len);
    srlm_text_free(&t);
    return st;
}

/* The loop's config for the demo: the recipe's files, small generation lengths. */
static srlm_status demo_config(const demo_args *a, const char *dir, const char *m1, srlm_config *cfg) {
    SRLM_CHECK(srlm_config_defaults(cfg));
    char kv[1400];
    const char *paths[][2] = {
        {"model.path", m1}, {"data.ift", "data/seed_prompts.jsonl"}, {"judge.template", "data/judge.txt"},
        {"self_instruct.template", "data/self_instruct.txt"}, {"eval.prompts", "data/eval_prompts.jsonl"},
        {"eval.heldout", "data/judge_groups.jsonl"},
    };
    srlm_status st = SRLM_OK;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0] && st == SRLM_OK; i++) {
        if (paths[i][1][0] == '/' || i == 0) snprintf(kv, sizeof kv, "%s=%s", paths[i][0], paths[i][1]);
        else snprintf(kv, sizeof kv, "%s=%s/%s", paths[i][0], dir, paths[i][1]);
        st = srlm_config_set(cfg, kv);
    }
    char out_dir[1100], name[1100];
    snprintf(out_dir, sizeof out_dir, "%s", dir);
    char *slash = strrchr(out_dir, '/');
    if (slash) { snprintf(name, sizeof name, "%s", slash + 1); *slash = 0; }
    else { snprintf(name, sizeof name, "%s", out_dir); snprintf(out_dir, sizeof out_dir, "."); }
    /* Why these (benchmarks/demo/RESULTS.md): the task has a few hundred distinct
     * instructions, so a prompt may repeat (max_copies) instead of the paper's
     * exact-duplicate filter, which kept ~50 of 600; the judge samples at T 0.7, so
     * a pair needs a whole point between best and worst (min_score_gap), which
     * drops most right-vs-right pairs that noise alone ordered. */
    const char *set[] = {
        "loop.skip_sft=true", "loop.build_eft=false", "loop.prompts_per_item=64",
        "self_instruct.prompt_model=M1", "self_instruct.shots_ift=4", "self_instruct.shots_generated=0",
        "self_instruct.max_new_tokens=40", "self_instruct.rouge_l_max=1", "self_instruct.max_copies=6",
        "self_instruct.min_words=3", "self_instruct.max_words=40",
        "generate.samples=4", "generate.temperature=0.7", "generate.top_p=0.9", "generate.max_new_tokens=16",
        "generate.kv_cache_mb=512",
        "judge.samples=3", "judge.temperature=0.7", "judge.top_p=0.9", "judge.max_new_tokens=160",
        "eval.judge_model=M1", "loop.min_score_gap=1",
        "train.dpo.lr=1e-4", "train.dpo.lr_min=1e-5", "loop.dpo_lr_factor=0.5", "train.dpo.beta=0.1",
        "train.dpo.epochs=2",
        "train.dpo.batch_size=16", "train.dpo.micro_batch_size=8", "train.dpo.max_seq_len=256",
        "train.dpo.dropout=0", "train.dpo.warmup_steps=0", "train.dpo.checkpoint_every=10",
        "train.dpo.truncation=truncate_prompt", "model.dtype=float32", "run.watchdog_s=0",
    };
    for (size_t i = 0; i < sizeof set / sizeof set[0] && st == SRLM_OK; i++) st = srlm_config_set(cfg, set[i]);
    const struct { const char *key; const char *fmt; long v; } num[] = {
        {"run.seed", "%s=%ld", a->seed}, {"loop.iterations", "%s=%ld", a->iterations},
        {"self_instruct.prompts_per_iteration", "%s=%ld", a->prompts},
        {"backend.threads", "%s=%ld", a->threads},
    };
    for (size_t i = 0; i < sizeof num / sizeof num[0] && st == SRLM_OK; i++) {
        snprintf(kv, sizeof kv, num[i].fmt, num[i].key, num[i].v);
        st = srlm_config_set(cfg, kv);
    }
    if (st == SRLM_OK) { snprintf(kv, sizeof kv, "run.out_dir=%s", out_dir); st = srlm_config_set(cfg, kv); }
    if (st == SRLM_OK) { snprintf(kv, sizeof kv, "run.name=%s", name); st = srlm_config_set(cfg, kv); }
    if (st != SRLM_OK) srlm_config_free(cfg);
    return st;
}

/* Share of model k's greedy evaluation answers that the rubric gives 5. */
static srlm_status accuracy_of(const char *dir, int k, int n_prompts, int per_item, const srlm_lexicon *lx,
                               double *acc) {
    char adir[1200];
    snprintf(adir, sizeof adir, "%s/eval/M%d/answers", dir, k);
    cJSON **r;
    int n;
    SRLM_CHECK(srlm_parts_load(adir, (n_prompts + per_item - 1) / per_item, &r, &n));
    int right = 0, graded = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(r[i], "prompt");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(r[i], "response");
        srlm_task t;
        if (!cJSON_IsString(p) || !cJSON_IsString(a) || !srlm_task_parse(p->valuestring, &t)) continue;
        graded++;
        right += srlm_task_score(lx, &t, a->valuestring, NULL) == SRLM_JUDGE_MAX_SCORE;
    }
    srlm_records_free(r, n);
    *acc = graded ? (double)right / graded : NAN;
    return SRLM_OK;
}

static double json_num_path(const cJSON *o, const char *a, const char *b) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, a), b);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static cJSON *read_json(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char *text = NULL;
    size_t cap = 0;
    ssize_t got = getdelim(&text, &cap, 0, f);
    fclose(f);
    cJSON *o = got > 0 ? cJSON_Parse(text) : NULL;
    free(text);
    return o;
}

/* Rank 0, after the run: the table, the plot and the closing line. */
static srlm_status report(const demo_args *a, const char *dir, const srlm_lexicon *lx, double m1_seconds,
                          double total_seconds) {
    const int K = (int)a->iterations + 1;
    double x[16], acc[16], agree[16];
    printf("\n%-6s %10s %11s %9s %7s %9s %8s %9s\n", "model", "accuracy", "judge agree", "own agree", "pairs",
           "invalid", "win", "time (s)");
    for (int k = 1; k <= K && k <= 16; k++) {
        x[k - 1] = k;
        SRLM_CHECK(accuracy_of(dir, k, (int)a->eval_prompts, 64, lx, &acc[k - 1]));
        char path[1300];
        snprintf(path, sizeof path, "%s/eval/M%d/metrics.json", dir, k);
        cJSON *m = read_json(path);
        agree[k - 1] = json_num_path(m, "reward_model", "pairwise_accuracy");
        cJSON_Delete(m);
        /* M_k judged its own answers in iteration k (the last model judges none) */
        double own = NAN;
        if (k < K) {
            srlm_rm_metrics om;
            SRLM_CHECK(srlm_demo_iteration_judge(dir, k, lx, &om));
            own = om.pairwise_accuracy;
        }
        double pairs = NAN, invalid = NAN, win = NAN, secs = k == 1 ? m1_seconds : NAN;
        if (k > 1) {
            snprintf(path, sizeof path, "%s/iter-%d/summary.json", dir, k - 1);
            cJSON *s = read_json(path);
            const cJSON *v;
            if ((v = cJSON_GetObjectItemCaseSensitive(s, "pairs")) && cJSON_IsNumber(v)) pairs = v->valuedouble;
            if ((v = cJSON_GetObjectItemCaseSensitive(s, "judgements_invalid")) && cJSON_IsNumber(v)) invalid = v->valuedouble;
            if ((v = cJSON_GetObjectItemCaseSensitive(s, "win_rate")) && cJSON_IsNumber(v)) win = v->valuedouble;
            if ((v = cJSON_GetObjectItemCaseSensitive(s, "seconds")) && cJSON_IsNumber(v)) secs = v->valuedouble;
            cJSON_Delete(s);
        }
        printf("M%-5d %10.3f %11.3f %9.3f %7.0f %9.0f %8.3f %9.1f\n", k, acc[k - 1], agree[k - 1], own, pairs,
               invalid, win, secs);
    }
    printf("(accuracy: greedy answers to %ld held-out instructions that the rubric gives 5; judge agree:\n"
           " pairwise agreement of the model's judgements with the true scores on a fixed set of answers;\n"
           " own agree: the same on the model's own answers in the iteration it judged, which its DPO pairs\n"
           " come from (on the seeds measured, a judge near 0.5 here made the next model worse); pairs,\n"
           " invalid judgements, win rate vs the previous model (judged by M1) and time belong to the\n"
           " iteration that made the model; per-phase times: %s/iter-*/summary.json)\n", a->eval_prompts, dir);
    char svg[1300];
    snprintf(svg, sizeof svg, "%s/demo.svg", dir);
    srlm_plot_options po;
    srlm_plot_default_options(&po);
    po.title = "srlm demo: self-rewarding iterations";
    po.x_label = "model M_t";
    po.y_label = "share";
    po.y_fixed = 1;
    po.y_min = 0;
    po.y_max = 1;
    po.x_integer = 1;
    const srlm_plot_series series[2] = {{"held-out accuracy", x, acc, K}, {"judge agreement with the truth", x, agree, K}};
    SRLM_CHECK(srlm_svg_plot_write(svg, &po, series, 2));
    double d = acc[K - 1] - acc[0];
    printf("\nM1 -> M%d: held-out accuracy %.3f -> %.3f (%+.3f), judge agreement %.3f -> %.3f; plot: %s; %.0f s in all.\n",
           K, acc[0], acc[K - 1], d, agree[0], agree[K - 1], svg, total_seconds);
    /* two standard errors of a difference of two accuracies on n held-out
     * instructions: what one run can tell from chance */
    const double n = (double)a->eval_prompts, p1 = acc[0], p2 = acc[K - 1];
    const double noise = 2.0 * sqrt(p1 * (1 - p1) / n + p2 * (1 - p2) / n);
    if (d > noise)
        printf("The model got better at the task by training on its own judgements (%+.3f, beyond the %.3f that "
               "chance alone gives on %ld instructions).\n", d, noise, a->eval_prompts);
    else if (d < -noise)
        printf("This run got worse than M1 (%+.3f, beyond chance's %.3f): see benchmarks/RESULTS.md for the effect "
               "over seeds.\n", d, noise);
    else
        printf("This run's change (%+.3f) is within what chance gives on %ld instructions (%.3f): see "
               "benchmarks/RESULTS.md for the effect over seeds.\n", d, a->eval_prompts, noise);
    return SRLM_OK;
}

srlm_status cmd_demo(int argc, char **argv) {
    demo_args a = {.out = "runs/demo", .seed = 1234, .iterations = 2, .threads = 0, .eval_prompts = 200,
                   .judge_tasks = 60, .prompts = 600};
    const srlm_flag flags[] = {
        {"out", FLAG_STRING, &a.out, "DIR", "the run folder (default runs/demo); rerunning resumes it", 0},
        {"seed", FLAG_INT, &a.seed, "N", "seed of the word list, the data, the model and the run (default 1234)", 0},
        {"iterations", FLAG_INT, &a.iterations, "N", "self-rewarding iterations after M1 (default 2)", 0},
        {"threads", FLAG_INT, &a.threads, "N", "CPU threads (default: all cores)", 0},
        {"quiet", FLAG_BOOL, &a.quiet, NULL, "no progress lines", 0},
        {"quick", FLAG_BOOL, &a.quick, NULL, "a smaller model and a twentieth of the data: checks the whole "
         "path in a minute or two (the model learns little; for tests)", 0},
    };
    const srlm_command_spec spec = {"demo", "[key=value ...]",
        "The self-rewarding loop in miniature on a CPU, with nothing to download: a verifiable task (name a\n"
        "word of an invented list with given first and last letters), a tiny Llama trained from random\n"
        "weights into M1 (it answers and judges), then self-rewarding iterations through `srlm run`.\n"
        "Prints each model's held-out accuracy and judge agreement, writes DIR/demo.svg. Under mpirun the\n"
        "iterations use every rank (worker groups). key=value pairs change the loop's config (srlm run's\n"
        "keys, e.g. judge.temperature=0.3); a changed config is refused on resume, as by srlm run.",
        flags, SRLM_COUNT(flags), -1};
    srlm_parsed_args pa;
    SRLM_CHECK(srlm_parse_flags(&spec, argc, argv, &pa));
    if (pa.help_shown) {
        srlm_parsed_args_free(&pa);
        return SRLM_OK;
    }
    if (a.iterations < 1 || a.iterations > 15) {
        srlm_parsed_args_free(&pa);
        return SRLM_ERR(SRLM_BAD_INPUT, "--iterations: expected 1 .. 15, found %ld", a.iterations);
    }
    if (a.seed < 0) {
        srlm_parsed_args_free(&pa);
        return SRLM_ERR(SRLM_BAD_INPUT, "--seed: expected >= 0, found %ld", a.seed);
    }
    const double t_start = now_s();
    srlm_demo_recipe r;
    srlm_demo_recipe_default(&r);
    r.data.seed = (uint64_t)a.seed;
    r.model_seed = (uint64_t)a.seed + 1;
    if (a.quick) { /* the whole path, small: for tests, not for results */
        r.dim = 64;
        r.layers = 2;
        r.heads = 2;
        r.kv_heads = 2;
        r.ffn = 172;
        r.data.n_ift /= 20;
        r.data.n_eft /= 20;
        r.data.lesson_copies = 2;
        r.data.pair_lessons = 1;
        r.data.n_self_instruct /= 20;
        a.prompts = 48;
        a.eval_prompts = 24;
        a.judge_tasks = 8;
    }
    srlm_lexicon lx;
    SRLM_CHECK(srlm_lexicon_make(&lx, r.data.n_words, (uint64_t)a.seed));
    srlm_topology topo;
    int have_topo = 0;
    srlm_config cfg;
    int have_cfg = 0;
    srlm_status st;
    char dir[1024], m1[1100], path[1200], path2[1200];
    snprintf(dir, sizeof dir, "%s", a.out);
    snprintf(m1, sizeof m1, "%s/sft/model", dir);
    /* the loop's config first: a bad key=value is refused before minutes of M1 */
    SRLM_CHECK_GOTO(demo_config(&a, dir, m1, &cfg), st, done);
    have_cfg = 1;
    for (int i = 0; i < pa.n_positional; i++) /* the user's changes, checked like srlm run's */
        SRLM_CHECK_GOTO(srlm_config_set(&cfg, pa.positional[i]), st, done);
    if (cfg.loop.iterations > 15) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "loop.iterations: expected 1 .. 15 for srlm demo, found %d", cfg.loop.iterations);
        goto done;
    }
    a.iterations = cfg.loop.iterations; /* loop.iterations=N is --iterations N: the report shows every model */
    SRLM_CHECK_GOTO(srlm_dist_init(NULL, NULL), st, done);
    SRLM_CHECK_GOTO(srlm_topology_new(&topo, 1, 0), st, done);
    have_topo = 1;
    if (topo.world_size > 1) srlm_log_set_rank(topo.world_rank);
    /* M1: data, tokenizer, random M0 and SFT on rank 0 (seconds to minutes); a
     * finished M1 is kept */
    double m1_seconds = 0;
    if (topo.world_rank == 0) {
        SRLM_CHECK_GOTO(srlm_mkdir_p(dir), st, done);
        if (!srlm_path_exists(m1)) {
            if (!a.quiet)
                printf("srlm demo: building M1: seed data for the task, a syllable tokenizer, a random %d-layer "
                       "Llama (dim %d), SFT on IFT + EFT\n", r.layers, r.dim);
            srlm_demo_m1_times tm;
            SRLM_CHECK_GOTO(srlm_demo_build_m1(&r, &lx, dir, (int)a.threads, a.quiet, &tm), st, done);
            m1_seconds = tm.data_s + tm.tokenizer_s + tm.sft_s;
        }
        snprintf(path, sizeof path, "%s/data/judge_groups.jsonl", dir);
        SRLM_CHECK_GOTO(write_judge_groups(&r, &lx, path, (int)a.judge_tasks), st, done);
        snprintf(path, sizeof path, "%s/data/eval.jsonl", dir);
        snprintf(path2, sizeof path2, "%s/data/eval_prompts.jsonl", dir);
        SRLM_CHECK_GOTO(head_lines(path, path2, (int)a.eval_prompts), st, done);
    }
    SRLM_CHECK_GOTO(srlm_comm_barrier(topo.world), st, done);
    if (topo.world_rank == 0 && !a.quiet)
        printf("srlm demo: M1 ready (%s); %ld self-rewarding iteration(s) with srlm run in %s\n", m1, a.iterations, dir);
    srlm_loop_options lo = {&topo, 0, a.quiet};
    SRLM_CHECK_GOTO(srlm_loop_run(&cfg, &lo), st, done);
    if (topo.world_rank == 0) SRLM_CHECK_GOTO(report(&a, dir, &lx, m1_seconds, now_s() - t_start), st, done);
    st = SRLM_OK;
done:
    srlm_parsed_args_free(&pa);
    if (have_cfg) srlm_config_free(&cfg);
    if (have_topo) srlm_topology_free(&topo);
    srlm_lexicon_free(&lx);
    return st;
}
