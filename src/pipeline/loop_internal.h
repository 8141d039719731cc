/* Shared between the loop's translation units (loop.c: run directory and stage
 * order; loop_gen.c: generation phases over work items; loop_iter.c: one
 * iteration's phases; loop_eval.c: evaluation). Not a public interface. */
#ifndef SRLM_LOOP_INTERNAL_H
#define SRLM_LOOP_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "dist/topology.h"
#include "generate/engine.h"
#include "io/config.h"
#include "io/tokenizer.h"
#include "pipeline/judge.h"
#include "pipeline/parts.h"
#include "pipeline/workqueue.h"

/* Phase numbers in seeds: never reorder (seeds of existing runs depend on them). */
enum {
    LOOP_PHASE_PROMPTS = 1, LOOP_PHASE_CANDIDATES, LOOP_PHASE_JUDGEMENTS, LOOP_PHASE_REF,
    LOOP_PHASE_EVAL_ANSWERS, LOOP_PHASE_EVAL_RM, LOOP_PHASE_EVAL_H2H, LOOP_PHASE_EFT,
};

typedef struct {
    srlm_config         *cfg;
    const srlm_topology *topo;     /* NULL: alone */
    int                  rank;     /* world rank */
    int                  quiet;
    char                 dir[1024];          /* runs/NAME */
    char                 tok_path[1200];
    char                 tok_sha256[65];
    srlm_tokenizer      *tok;                /* the run's tokenizer (every M_t shares it) */
    srlm_judge_template  judge;
    char                 ift_path[1400], eft_groups_path[1400], heldout_path[1400];
    cJSON               *summary;            /* run summary: one object per iteration */
} loop_ctx;

/* Seed of request `index` of a phase: a pure function of the run seed,
 * iteration, phase and index (never of groups or items). */
uint64_t loop_seed(const loop_ctx *L, int iteration, int phase, long index);

/* path = L->dir + "/" + fmt... */
srlm_status loop_path(const loop_ctx *L, char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The folder of model "M<k>" (k >= 0; M0 = model.path) or a named checkpoint. */
srlm_status loop_model_dir(const loop_ctx *L, const char *name, char *dst, size_t cap);

/* Rank 0 decides, everyone learns: broadcast an int from world rank 0. */
srlm_status loop_bcast_int(const loop_ctx *L, int *v);

/* ---- generation phases (loop_gen.c) ---- */

/* One prompt to generate from; the phase owns ids. */
typedef struct {
    int     *ids;
    int      n_ids;
    int      n_samples;
    uint64_t seed;
} loop_request;

/* Adds the fields of one output record for sample `o->sample` of request
 * `request` (o->request is the index within the item). */
typedef srlm_status (*loop_record_fn)(void *ctx, int request, const srlm_gen_output *o, cJSON *rec);

typedef struct {
    const char     *name;          /* "iter-1/candidates": progress and fault points */
    const char     *dir;           /* parts folder */
    const char     *model_dir;
    loop_request   *reqs;
    int             n_reqs;
    int             per_item;      /* requests per work item */
    srlm_sampling   sampling;
    int             max_new_tokens;
    const char     *stop;          /* NULL: none */
    loop_record_fn  record;
    void           *ctx;
} loop_gen_phase;

int         loop_items(int n, int per_item);
/* Runs the phase to completion (a collective over every rank); loads the model
 * only when some item is left. */
srlm_status loop_gen_run(loop_ctx *L, const loop_gen_phase *p, srlm_workqueue_stats *stats);
void        loop_requests_free(loop_request *r, int n);

/* Chat-formatted ids of a one-turn user prompt. */
srlm_status loop_encode_user(const loop_ctx *L, const char *user, int **ids, int *n);

/* JSON helpers: a string/number field, or a bad-input error naming the phase file. */
const char *loop_json_str(const cJSON *o, const char *key);
double      loop_json_num(const cJSON *o, const char *key, double dflt);
cJSON      *loop_json_ids(const int *ids, int n);
/* ids of an int array field, malloc'd; SRLM_BAD_INPUT when missing/bad. */
srlm_status loop_json_get_ids(const cJSON *o, const char *key, const char *where, int **ids, int *n);

/* Complete when every part of the phase exists (rank 0 scans, all learn). */
srlm_status loop_phase_complete(loop_ctx *L, const char *dir, int n_items, int *complete);

/* Every reply of ranked groups (JSONL {prompt_id, prompt, replies: [{text, rank}]})
 * judged judge.samples times by `model` into the parts of dir; rank 0 gets the
 * judgements (reply-major, judge samples in order). */
typedef struct { int group, reply, rank; } loop_reply_ref;
typedef struct {
    cJSON         **groups;
    int             n_groups;
    loop_reply_ref *refs;     /* one per reply, group-major */
    int             n;
    cJSON         **judg;     /* rank 0: n * judge.samples records */
    int             n_judg;
} loop_judged_groups;
srlm_status loop_judge_groups(loop_ctx *L, const char *groups_path, const char *dir, const char *name,
                              const char *model, int phase, loop_judged_groups *out);
void        loop_judged_groups_free(loop_judged_groups *g);

/* ---- stages ---- */
srlm_status loop_write_state(const loop_ctx *L, const char *stage, int iteration); /* loop.c */
srlm_status loop_iteration(loop_ctx *L, int t);                      /* loop_iter.c */
srlm_status loop_eval_model(loop_ctx *L, int k, cJSON **metrics);     /* loop_eval.c */
srlm_status loop_eval_h2h(loop_ctx *L, int t, cJSON **metrics);       /* loop_eval.c */
srlm_status loop_train(loop_ctx *L, int sft, const char *start_model, const char *data,
                       const char *work_dir, const char *result_dir); /* loop.c */
srlm_status loop_write_json(const loop_ctx *L, const char *path, const cJSON *obj); /* rank 0 only */
/* A JSON file written by loop_write_json; *obj NULL when it does not exist. */
srlm_status loop_read_json(const char *path, cJSON **obj);
/* EFT from the judgements of judge_dir's model on the ranked groups (loop_eft.c):
 * writes DIR/eft/eft.jsonl and puts its path in out. */
srlm_status loop_build_eft(loop_ctx *L, const char *judge_dir, char *out, size_t cap);
/* Judge requests: the chat-formatted judge prompt of (instruction, response). */
srlm_status loop_judge_request(const loop_ctx *L, const char *instruction, const char *response,
                               int n_samples, uint64_t seed, loop_request *r);
/* Adds text, score (or null), valid and verdict of a judgement to rec. */
void        loop_judge_fields(const srlm_gen_output *o, cJSON *rec);

#endif
