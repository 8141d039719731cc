#include "io/config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "io/fsutil.h"

/* Enum fields are written through an int*. */
_Static_assert(sizeof(srlm_dtype) == sizeof(int), "enum size");
_Static_assert(sizeof(srlm_backend_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(srlm_lr_schedule) == sizeof(int), "enum size");
_Static_assert(sizeof(srlm_dpo_loss) == sizeof(int), "enum size");
_Static_assert(sizeof(srlm_truncation) == sizeof(int), "enum size");

/* Same order as the C enums. */
static const char *const DTYPES[]     = {"float32", "bfloat16", "float16", NULL};
/* the same order as srlm_dtype: the index is the value */
static const char *const COMPUTE_DTYPES[] = {"float32", "bfloat16", NULL};
static const char *const BACKENDS[]   = {"cpu", "cuda", "cpu_guarded", NULL};
static const char *const SCHEDULES[]  = {"cosine", "linear", "constant", NULL};
static const char *const DPO_LOSSES[] = {"sigmoid", "ipo", NULL};
static const char *const TRUNCATIONS[] = {"skip", "truncate_prompt", NULL};
static const char *const BAD_TREES[] = {"skip", "fail", NULL};

#define OFF(f)   offsetof(srlm_config, f)
#define NOMAX    SRLM_NO_MAX
#define REQ      SRLM_FIELD_REQUIRED
#define NONEMPTY SRLM_FIELD_NONEMPTY
#define NOHASH   SRLM_FIELD_NO_HASH   /* does not change results */
#define GT       SRLM_FIELD_MIN_OPEN  /* value > min */
#define LT       SRLM_FIELD_MAX_OPEN  /* value < max */

/* One line per field. Defaults are YAML text and go through the same parser
 * as the file (srlm_schema_validate checks them). */
#define INT(key, f, def, lo, hi, flags, help) {key, SRLM_FIELD_INT, OFF(f), #def, lo, hi, NULL, flags, help}
#define DBL(key, f, def, lo, hi, flags, help) {key, SRLM_FIELD_DOUBLE, OFF(f), #def, lo, hi, NULL, flags, help}
#define BOOL(key, f, def, help)               {key, SRLM_FIELD_BOOL, OFF(f), #def, 0, 0, NULL, 0, help}
#define STR(key, f, def, flags, help)         {key, SRLM_FIELD_STRING, OFF(f), def, 0, 0, NULL, flags, help}
#define ENUM(key, f, def, names, help)        {key, SRLM_FIELD_ENUM, OFF(f), def, 0, 0, names, 0, help}

/* The fields both training phases have; only the defaults differ (paper: SFT
 * 5.5e-6 cosine to 1.1e-6; DPO 1e-6 to 1e-7). S is "train.sft" or
 * "train.dpo", M the struct member of the same name. */
#define TRAIN_FIELDS(S, M, LR, LR_MIN, SCHED)                                                              \
    DBL(S ".lr",               M.lr,               LR,     0, NOMAX, GT, "peak learning rate"),              \
    DBL(S ".lr_min",           M.lr_min,           LR_MIN, 0, NOMAX, 0,  "learning rate at the end of the decay"), \
    ENUM(S ".schedule",        M.schedule,         SCHED, SCHEDULES,     "decay from lr to lr_min after the warmup"), \
    INT(S ".warmup_steps",     M.warmup_steps,     0,      0, NOMAX, 0,  "optimizer steps of linear warmup from 0 to lr"), \
    INT(S ".batch_size",       M.batch_size,       16,     1, NOMAX, 0,  "examples per optimizer step over all ranks"), \
    INT(S ".micro_batch_size", M.micro_batch_size, 1,      1, NOMAX, 0,  "examples per forward pass per rank; accumulation makes up the batch"), \
    INT(S ".micro_batch_tokens", M.micro_batch_tokens, 0,  0, NOMAX, 0,  "tokens per forward pass per rank (a DPO pair's two sequences count together): a micro-batch takes the next examples while both this and micro_batch_size hold, and the activations are sized for this many tokens instead of micro_batch_size x max_seq_len; at least max_seq_len (DPO: 2 x max_seq_len), so any example fits alone; 0 = no token cap"), \
    DBL(S ".epochs",           M.epochs,           1,      0, NOMAX, GT, "passes over the data (fractions allowed)"), \
    DBL(S ".weight_decay",     M.weight_decay,     0.0,    0, NOMAX, 0,  "AdamW decoupled weight decay"), \
    DBL(S ".adam_beta1",       M.adam_beta1,       0.9,    0, 1,     LT, "AdamW beta1 (torch.optim.AdamW default)"), \
    DBL(S ".adam_beta2",       M.adam_beta2,       0.999,  0, 1,     LT, "AdamW beta2 (torch.optim.AdamW default)"), \
    DBL(S ".adam_eps",         M.adam_eps,         1e-8,   0, NOMAX, GT, "AdamW epsilon (torch.optim.AdamW default)"), \
    DBL(S ".grad_clip",        M.grad_clip,        1.0,    0, NOMAX, 0,  "clip the global gradient norm to this; 0 = off"), \
    DBL(S ".dropout",          M.dropout,          0.1,    0, 1,     LT, "dropout on attention and MLP outputs before each residual add"), \
    BOOL(S ".recompute",       M.recompute,        false,                "recompute activations in the backward pass to save memory"), \
    INT(S ".logits_chunk",     M.logits_chunk,     0,      0, NOMAX, 0,  "token rows whose logits are held at once: the LM head and the log-probs run in chunks of this many rows, and the backward pass recomputes each chunk's logits (vocab x rows memory instead of vocab x micro-batch tokens); 0 = the whole micro-batch"), \
    INT(S ".max_seq_len",      M.max_seq_len,      2048,   1, NOMAX, 0,  "longest example in tokens; longer ones follow the truncation policy and are counted"), \
    ENUM(S ".truncation",      M.truncation,       "skip", TRUNCATIONS,  "an example above max_seq_len: skip, or truncate_prompt (cut the prompt from the left, keeping BOS; skip if the response alone does not fit)"), \
    INT(S ".checkpoint_every", M.checkpoint_every, 200,    1, NOMAX, 0,  "optimizer steps between trainer checkpoints"), \
    INT(S ".keep_last_n",      M.keep_last_n,      2,      1, NOMAX, 0,  "trainer checkpoints kept on disk"), \
    INT(S ".max_bad_steps",    M.max_bad_steps,    3,      1, NOMAX, 0,  "bad steps (non-finite, or loss spikes) in a row, each skipped, before the run stops"), \
    DBL(S ".loss_spike_factor", M.loss_spike_factor, 0,    0, NOMAX, 0,  "a step whose loss is above this times the mean loss of the last loss_spike_window good steps is skipped like a non-finite one and counts towards max_bad_steps; 0 = off, else above 1"), \
    INT(S ".loss_spike_window", M.loss_spike_window, 20,   1, 1000,  0,  "good steps whose mean loss a spike is measured against; spikes are looked for once this many are done"), \
    STR(S ".data",             M.data,             "",     0,            "JSONL training data of `srlm sft` / `srlm dpo` (the loop writes its own)")

static const srlm_schema_field FIELDS[] = {
    STR("run.name",        run.name,       "srlm", NONEMPTY | NOHASH, "name of the run: its files go to OUT_DIR/NAME"),
    INT("run.seed",        run.seed,       1234, 0, NOMAX, 0,          "seed of every random choice; each work item derives its own from it"),
    STR("run.out_dir",     run.out_dir,    "runs", NONEMPTY | NOHASH, "folder that holds the run folders"),
    DBL("run.watchdog_s",  run.watchdog_s, 1800, 0, NOMAX, NOHASH,     "a rank with no progress for this many seconds exits with 70; 0 = off"),

    STR("model.path",      model.path,      "", REQ,        "Hugging Face checkpoint folder of M0: config.json, *.safetensors"),
    STR("model.tokenizer", model.tokenizer, "", 0,          "SentencePiece model file; empty = MODEL/tokenizer.model"),
    ENUM("model.dtype",    model.dtype,     "bfloat16", DTYPES, "dtype of saved checkpoints"),

    INT("parallel.tp",     parallel.tp,     1, 1, NOMAX, 0,       "tensor-parallel ranks per model replica (consecutive ranks, one node)"),
    INT("parallel.dp",     parallel.dp,     0, 0, NOMAX, NOHASH,  "data-parallel replicas; 0 = world size / tp"),

    ENUM("backend.name",   backend.name,    "cpu", BACKENDS,      "compute backend"),
    INT("backend.threads", backend.threads, 0, 0, NOMAX, NOHASH,  "CPU threads per rank; 0 = all cores"),
    ENUM("backend.dtype",  backend.dtype,   "float32", COMPUTE_DTYPES, "dtype of the weights, activations and KV cache on the backend; bfloat16 trains with fp32 master weights, gradients and AdamW state"),

    DBL("generate.temperature",    generate.temperature,    0.7,  0, 5,     0,  "sampling temperature of candidate responses; 0 = greedy"),
    DBL("generate.top_p",          generate.top_p,          0.9,  0, 1,     GT, "nucleus sampling: smallest token set with this much probability"),
    INT("generate.top_k",          generate.top_k,          0,    0, NOMAX, 0,  "sample among the k most likely tokens; 0 = off"),
    INT("generate.max_new_tokens", generate.max_new_tokens, 512,  1, NOMAX, 0,  "longest candidate response, in tokens"),
    INT("generate.samples",        generate.samples,        4,    1, NOMAX, 0,  "candidate responses per prompt (N)"),
    INT("generate.kv_cache_mb",    generate.kv_cache_mb,    2048, 1, NOMAX, 0,  "KV cache memory per rank, MiB"),

    INT("judge.samples",        judge.samples,        3,    1, NOMAX, 0,  "judgements per candidate, averaged"),
    STR("judge.template",       judge.template_path,  "configs/prompts/judge.txt", NONEMPTY, "LLM-as-a-Judge prompt template (additive 5-point rubric)"),
    DBL("judge.temperature",    judge.temperature,    0.7,  0, 5,     0,  "sampling temperature of judgements"),
    DBL("judge.top_p",          judge.top_p,          0.9,  0, 1,     GT, "nucleus sampling of judgements"),
    INT("judge.max_new_tokens", judge.max_new_tokens, 256,  1, NOMAX, 0,  "longest judgement, in tokens"),

    INT("self_instruct.prompts_per_iteration", self_instruct.prompts_per_iteration, 5000, 1, NOMAX, 0, "new prompts to generate per iteration, before filtering"),
    INT("self_instruct.shots_ift",       self_instruct.shots_ift,       6,   0, NOMAX, 0, "few-shot examples from the IFT seed prompts"),
    INT("self_instruct.shots_generated", self_instruct.shots_generated, 2,   0, NOMAX, 0, "few-shot examples from the previous iteration's prompts (IFT in iteration 1)"),
    DBL("self_instruct.temperature",     self_instruct.temperature,     0.6, 0, 5,     0, "sampling temperature of new prompts"),
    DBL("self_instruct.top_p",           self_instruct.top_p,           0.9, 0, 1,    GT, "nucleus sampling of new prompts"),
    INT("self_instruct.max_new_tokens",  self_instruct.max_new_tokens,  256, 1, NOMAX, 0, "longest new prompt, in tokens"),
    DBL("self_instruct.rouge_l_max",     self_instruct.rouge_l_max,     0.7, 0, 1,     0, "drop a prompt whose ROUGE-L with a known prompt is above this"),
    INT("self_instruct.max_copies",      self_instruct.max_copies,      1,   1, NOMAX, 0, "keep a prompt equal to known ones (case and spaces aside) while fewer than this many are known; 1 drops every exact duplicate"),
    INT("self_instruct.min_words",       self_instruct.min_words,       3,   1, NOMAX, 0, "drop prompts shorter than this, in words"),
    INT("self_instruct.max_words",       self_instruct.max_words,       150, 1, NOMAX, 0, "drop prompts longer than this, in words"),
    STR("self_instruct.prompt_model",    self_instruct.prompt_model,    "", 0, "fixed model that writes new prompts; empty = M0"),
    STR("self_instruct.template",        self_instruct.template_path,   "", 0, "self-instruct prompt template with {examples}; empty = built-in (configs/prompts/self_instruct.txt)"),
    STR("self_instruct.blocklist",       self_instruct.blocklist,       "", 0, "file of keywords (one a line) that disqualify a prompt; empty = built-in list"),

    TRAIN_FIELDS("train.sft", train.sft, 5.5e-6, 1.1e-6, "cosine"),
    TRAIN_FIELDS("train.dpo", train.dpo, 1e-6,   1e-7,   "linear"),
    DBL("train.dpo.beta",            train.dpo.beta,            0.1, 0, NOMAX, GT, "DPO beta: strength of the pull towards the reference model"),
    DBL("train.dpo.label_smoothing", train.dpo.label_smoothing, 0,   0, 0.5,   0,  "conservative DPO: assumed rate of flipped preference labels"),
    ENUM("train.dpo.loss",           train.dpo.loss,            "sigmoid", DPO_LOSSES, "sigmoid (DPO) or ipo (TRL's, on length-averaged log-probs)"),

    INT("loop.iterations",         loop.iterations,        2, 1, NOMAX, NOHASH, "self-rewarding iterations after M1 (2 trains M2 and M3); raise it to extend a finished run"),
    DBL("loop.min_score_gap",      loop.min_score_gap,      0, 0, 10, 0, "a pair needs the best candidate's mean score this far above the worst's (0: any difference, as in the paper)"),
    BOOL("loop.length_control",    loop.length_control,    false, "among tied candidates choose the shortest best and the longest worst"),
    BOOL("loop.sft_on_top_scores", loop.sft_on_top_scores, false, "also SFT on top-scored candidates (the paper's ablation)"),
    BOOL("loop.build_eft",         loop.build_eft,         true,  "build EFT with an SFT baseline; false = use data.eft as given"),
    BOOL("loop.skip_sft",          loop.skip_sft,          false, "model.path is already M1 (SFT on IFT + EFT done elsewhere): start the iterations from it"),
    DBL("loop.dpo_lr_factor",      loop.dpo_lr_factor,     1.0, 0, 1, GT, "iteration t trains with train.dpo.lr and lr_min times this to the power t-1"),
    INT("loop.prompts_per_item",   loop.prompts_per_item,  16, 1, NOMAX, 0, "prompts per work item of generation and judging (an item is one batch)"),

    STR("eval.judge_model", eval.judge_model, "M1", NONEMPTY, "fixed judge of the head-to-head win rate: M0, M1, ... or a checkpoint folder"),
    STR("eval.heldout",     eval.heldout,     "",   0,        "held-out human-ranked set (JSONL) for reward-model metrics; empty = skip"),
    STR("eval.prompts",     eval.prompts,     "",   0,        "prompts (JSONL of {prompt_id, prompt}) answered for the head-to-head; empty = those of eval.heldout"),

    STR("data.ift",   data.ift,   "", 0, "IFT seed data (JSONL); empty = built from data.oasst"),
    STR("data.eft",   data.eft,   "", 0, "EFT data (JSONL); empty = built by the pipeline (loop.build_eft)"),
    STR("data.eft_groups", data.eft_groups, "", 0, "human-ranked reply groups (JSONL) that EFT is built from; empty = from data.oasst"),
    ENUM("data.oasst_bad_trees", data.oasst_bad_trees, "skip", BAD_TREES, "a malformed Open Assistant tree: skip it (reported with its line) or fail the run"),
    STR("data.oasst", data.oasst, "", 0, "Open Assistant messages (JSONL) that IFT and EFT are built from"),

    /* srlm plan's hardware model; published H100 SXM numbers (DESIGN.md "Performance") */
    DBL("cluster.gpu_tflops",            cluster.gpu_tflops,            989,  0, NOMAX, GT | NOHASH, "bf16 dense peak TFLOP/s per GPU (H100 SXM: 989)"),
    DBL("cluster.mfu",                   cluster.mfu,                   0.4,  0, 1,     GT | NOHASH, "model FLOPs utilization assumed for compute-bound work"),
    DBL("cluster.hbm_gbps",              cluster.hbm_gbps,              3350, 0, NOMAX, GT | NOHASH, "GPU memory bandwidth, GB/s (bounds decoding)"),
    DBL("cluster.intra_node_busbw_gbs",  cluster.intra_node_busbw_gbs,  370,  0, NOMAX, GT | NOHASH, "nccl-tests all-reduce bus bandwidth inside a node, GB/s (NVLink, 8 H100: ~370)"),
    DBL("cluster.inter_node_busbw_gbs",  cluster.inter_node_busbw_gbs,  46,   0, NOMAX, GT | NOHASH, "bus bandwidth across nodes per NIC, GB/s (400 Gb/s InfiniBand: ~46)"),
    INT("cluster.nics_per_node",         cluster.nics_per_node,         8,    1, NOMAX, NOHASH,      "network cards per node used by collectives"),
    DBL("cluster.intra_node_latency_us", cluster.intra_node_latency_us, 5,    0, NOMAX, NOHASH,      "fixed cost of one collective inside a node, microseconds"),
    DBL("cluster.inter_node_latency_us", cluster.inter_node_latency_us, 10,   0, NOMAX, NOHASH,      "fixed cost of one collective across nodes, microseconds"),
};

static const srlm_schema SCHEMA = {FIELDS, (int)(sizeof FIELDS / sizeof FIELDS[0])};

const srlm_schema *srlm_config_schema(void) { return &SCHEMA; }

srlm_status srlm_config_defaults(srlm_config *c) {
    memset(c, 0, sizeof *c);
    SRLM_CHECK(srlm_schema_validate(&SCHEMA));
    return srlm_schema_set_defaults(&SCHEMA, c);
}

/* The whole file, NUL-terminated; libyaml wants it in one piece anyway. */
static srlm_status read_file(const char *path, char **text, size_t *len) {
    return srlm_read_file(path, "config", 0, text, len);
}

/* Rules between keys, which the per-key ranges cannot say. */
static srlm_status check_train(const char *where, const char *phase, const srlm_train_config *t) {
    if (t->schedule != SRLM_SCHEDULE_CONSTANT && t->lr_min > t->lr)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: train.%s.lr_min (%g) is above train.%s.lr (%g)", where,
                        phase, t->lr_min, phase, t->lr);
    if (t->loss_spike_factor > 0 && t->loss_spike_factor <= 1)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: train.%s.loss_spike_factor (%g): expected 0 (off) or a number above 1",
                        where, phase, t->loss_spike_factor);
    if (t->micro_batch_size > t->batch_size)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: train.%s.micro_batch_size (%d) is above train.%s.batch_size (%d)",
                        where, phase, t->micro_batch_size, phase, t->batch_size);
    const int dpo = strcmp(phase, "dpo") == 0; /* a pair holds two sequences */
    const long long per_example = (dpo ? 2LL : 1LL) * t->max_seq_len;
    if (t->micro_batch_tokens > 0 && t->micro_batch_tokens < per_example)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: train.%s.micro_batch_tokens (%d) is below %strain.%s.max_seq_len (%d): "
                        "the longest %s would not fit in a micro-batch; raise it to at least %lld or set 0 (no token cap)",
                        where, phase, t->micro_batch_tokens, dpo ? "2 x " : "", phase, t->max_seq_len,
                        dpo ? "pair" : "example", per_example);
    return SRLM_OK;
}

static srlm_status check_relations(const srlm_config *c, const char *name) {
    const char *where = name ? name : "config";
    SRLM_CHECK(check_train(where, "sft", &c->train.sft));
    SRLM_CHECK(check_train(where, "dpo", &c->train.dpo));
    if (c->self_instruct.min_words > c->self_instruct.max_words)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: self_instruct.min_words (%d) is above self_instruct.max_words (%d)",
                        where, c->self_instruct.min_words, c->self_instruct.max_words);
    return SRLM_OK;
}

/* Defaults, then the text (when given), then the overrides, then the check of
 * required keys and of the rules between keys. */
static srlm_status load(srlm_config *c, const char *name, const char *text, size_t len,
                        int n_overrides, char *const *overrides) {
    srlm_status st = SRLM_OK;
    if (text && !name) name = "<config>";
    unsigned char *given = calloc((size_t)SCHEMA.n_fields, 1);
    if (!given) return SRLM_ERR(SRLM_FAILED, "out of memory loading config");
    SRLM_CHECK_GOTO(srlm_config_defaults(c), st, done);
    if (text) SRLM_CHECK_GOTO(srlm_schema_load_yaml(&SCHEMA, c, name, text, len, given), st, done);
    for (int i = 0; i < n_overrides; i++)
        SRLM_CHECK_GOTO(srlm_schema_apply_override(&SCHEMA, c, overrides[i], given), st, done);
    SRLM_CHECK_GOTO(srlm_schema_check_required(&SCHEMA, name, given), st, done);
    SRLM_CHECK_GOTO(check_relations(c, name), st, done);
done:
    if (st != SRLM_OK) srlm_config_free(c);
    free(given);
    return st;
}

srlm_status srlm_config_load_text(srlm_config *c, const char *name, const char *text,
                                  int n_overrides, char *const *overrides) {
    return load(c, name, text, text ? strlen(text) : 0, n_overrides, overrides);
}

srlm_status srlm_config_load(srlm_config *c, const char *path, int n_overrides,
                             char *const *overrides) {
    char *text = NULL;
    size_t len = 0;
    if (path) {
        memset(c, 0, sizeof *c); /* freeable even when the file cannot be read */
        SRLM_CHECK(read_file(path, &text, &len));
    }
    srlm_status st = load(c, path, text, len, n_overrides, overrides);
    free(text);
    return st;
}

srlm_status srlm_config_from_args(srlm_config *c, int n_args, char *const *args) {
    const char *path = NULL;
    if (n_args > 0 && !strchr(args[0], '=')) {
        path = args[0];
        args++;
        n_args--;
    }
    return srlm_config_load(c, path, n_args, args);
}

srlm_status srlm_config_set(srlm_config *c, const char *key_eq_value) {
    return srlm_schema_apply_override(&SCHEMA, c, key_eq_value, NULL);
}

void srlm_config_free(srlm_config *c) {
    srlm_schema_free(&SCHEMA, c);
    memset(c, 0, sizeof *c);
}

srlm_status srlm_config_print(const srlm_config *c, FILE *out) {
    return srlm_schema_print(&SCHEMA, c, out, 0);
}

uint64_t srlm_config_hash(const srlm_config *c) { return srlm_schema_hash(&SCHEMA, c); }

int srlm_config_equal(const srlm_config *a, const srlm_config *b) {
    return srlm_schema_equal(&SCHEMA, a, b);
}
