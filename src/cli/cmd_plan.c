/* srlm plan CONFIG [key=value ...] --nodes N --gpus-per-node G --gpu-mem GiB:
 * will the config fit the cluster, and how long will an iteration take?
 * The numbers come from pipeline/plan.h; this file only gathers the inputs. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "io/config.h"
#include "io/fsutil.h"
#include "io/hf_config.h"
#include "pipeline/plan.h"
#include "pipeline/plan_report.h"

static srlm_status to_int(const char *flag, long v, long lo, int *out) {
    if (v < lo || v > INT_MAX)
        return SRLM_ERR(SRLM_BAD_INPUT, "--%s %ld: expected an integer >= %ld", flag, v, lo);
    *out = (int)v;
    return SRLM_OK;
}

/* The shapes: model.path/config.json when it exists, else the built-in table. */
static srlm_status load_arch(const srlm_config *cfg, const char *arch, srlm_plan_arch *a, char *src, size_t cap) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", cfg->model.path);
    if (srlm_path_exists(path)) {
        srlm_hf_config hf;
        SRLM_CHECK(srlm_hf_config_load(path, &hf));
        srlm_plan_arch_from_hf(&hf, a);
        snprintf(src, cap, "%s%s", path, arch ? " (--arch ignored)" : "");
        return SRLM_OK;
    }
    if (!arch)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s does not exist: give --arch 7b, 13b or 70b for a built-in "
                        "Llama-2 shape (or point model.path at a Hugging Face folder)", path);
    SRLM_CHECK(srlm_plan_arch_builtin(arch, a));
    snprintf(src, cap, "built-in Llama-2 %s (--arch)", arch);
    return SRLM_OK;
}

srlm_status cmd_plan(int argc, char **argv) {
    long nodes = 1, gpus = 8, gen_batch = 0, prompt_tokens, template_tokens;
    double gpu_mem = 80, pair_rate;
    const char *arch = NULL;
    int json = 0;
    srlm_plan_opts o;
    srlm_plan_opts_defaults(&o);
    prompt_tokens = o.prompt_tokens;
    template_tokens = o.template_tokens;
    pair_rate = o.pair_rate;
    const srlm_flag flags[] = {
        {"nodes",           FLAG_INT,    &nodes,           "N",    "nodes (default 1)", 0},
        {"gpus-per-node",   FLAG_INT,    &gpus,            "G",    "GPUs per node, one rank each (default 8)", 0},
        {"gpu-mem",         FLAG_DOUBLE, &gpu_mem,         "GiB",  "memory of one GPU (default 80)", 0},
        {"arch",            FLAG_STRING, &arch,            "NAME",
         "7b, 13b or 70b: Llama-2 shapes when model.path/config.json does not exist", 0},
        {"json",            FLAG_BOOL,   &json,            NULL,   "print the plan as JSON (same numbers, formulas)", 0},
        {"gen-batch",       FLAG_INT,    &gen_batch,       "B",
         "size the KV cache for B sequences instead of generate.kv_cache_mb", 0},
        {"prompt-tokens",   FLAG_INT,    &prompt_tokens,   "N",    "assumed mean user prompt, tokens (default 128)", 0},
        {"template-tokens", FLAG_INT,    &template_tokens, "N",
         "assumed judge / self-instruct instructions, tokens (default 512)", 0},
        {"pair-rate",       FLAG_DOUBLE, &pair_rate,       "R",    "assumed DPO pairs per prompt (default 0.8)", 0},
    };
    const srlm_command_spec spec = {
        "plan", "CONFIG [key.sub=value ...]",
        "Plan a config on a cluster, one rank per GPU: the parameter count, every term of the\n"
        "memory per rank with its formula (weights, gradients, ZeRO-1 optimizer state, activations\n"
        "with and without recomputation, KV cache, reserve), training step and iteration times from\n"
        "FLOPs, HBM bandwidth and an alpha-beta model of the collectives (cluster.* keys), and every\n"
        "assumption. A config that does not fit exits with 2, naming the term that is too large and\n"
        "what would fit (tp, nodes, recomputation, micro-batch, KV cache).",
        flags, SRLM_COUNT(flags), -1,
    };
    srlm_parsed_args args;
    srlm_config cfg = {0};
    srlm_plan p;
    srlm_status st = SRLM_OK;
    char src[4200], title[4600];
    SRLM_CHECK(srlm_parse_flags(&spec, argc, argv, &args));
    if (args.help_shown) goto done;
    if (args.n_positional < 1) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "srlm plan needs a CONFIG file (see srlm plan --help)");
        goto done;
    }
    for (int i = 1; i < args.n_positional; i++)
        if (!strchr(args.positional[i], '=')) {
            st = SRLM_ERR(SRLM_BAD_INPUT, "expected key.sub=value, found '%s' (only one config file "
                          "may be given)", args.positional[i]);
            goto done;
        }
    SRLM_CHECK_GOTO(to_int("nodes", nodes, 1, &o.nodes), st, done);
    SRLM_CHECK_GOTO(to_int("gpus-per-node", gpus, 1, &o.gpus_per_node), st, done);
    SRLM_CHECK_GOTO(to_int("gen-batch", gen_batch, 0, &o.gen_batch), st, done);
    SRLM_CHECK_GOTO(to_int("prompt-tokens", prompt_tokens, 1, &o.prompt_tokens), st, done);
    SRLM_CHECK_GOTO(to_int("template-tokens", template_tokens, 0, &o.template_tokens), st, done);
    o.gpu_mem_gib = gpu_mem;
    o.pair_rate = pair_rate;

    SRLM_CHECK_GOTO(srlm_config_from_args(&cfg, args.n_positional, args.positional), st, done);
    srlm_plan_arch a;
    SRLM_CHECK_GOTO(load_arch(&cfg, arch, &a, src, sizeof src), st, done);
    SRLM_CHECK_GOTO(srlm_plan_compute(&cfg, &a, &o, &p), st, done);
    snprintf(title, sizeof title, "%s on %d node(s) x %d GPUs x %g GiB; shapes: %s",
             strchr(args.positional[0], '=') ? "(no config file)" : args.positional[0], o.nodes,
             o.gpus_per_node, o.gpu_mem_gib, src);
    /* the plan is printed either way: a refusal's numbers are what the user needs */
    if (json) SRLM_CHECK_GOTO(srlm_plan_print_json(&p, title, stdout), st, done);
    else srlm_plan_print_table(&p, title, stdout);
    fflush(stdout);
    st = srlm_plan_check_fit(&p);
done:
    srlm_config_free(&cfg);
    srlm_parsed_args_free(&args);
    return st;
}
