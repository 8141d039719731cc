/* srlm data: seed-data converters. One so far:
 *   srlm data oasst TREES.jsonl --out DIR   Open Assistant trees -> IFT, EFT groups, held out
 * The rules and the output formats are in src/pipeline/oasst.h. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "pipeline/oasst.h"

/* Skipped trees are reported one line each, up to this many; then only counted. */
#define MAX_REPORTED 20

typedef struct {
    long reported, suppressed;
} report_state;

static void report_bad_tree(void *ctx, const char *message) {
    report_state *rs = ctx;
    if (rs->reported < MAX_REPORTED) {
        fprintf(stderr, "srlm data oasst: warning: %s (tree skipped)\n", message);
        rs->reported++;
    } else {
        rs->suppressed++;
    }
}

static void print_stats(const char *input, const char *dir, const char *lang, const srlm_oasst_stats *s) {
    fprintf(stderr, "srlm data oasst: %s: %ld trees read, %ld skipped as malformed "
            "(%ld bad JSON, %ld bad structure, %ld bad rank, %ld too deep, %ld duplicate prompt_id)\n",
            input, s->trees_read, s->trees_skipped, s->bad_json, s->bad_structure, s->bad_rank,
            s->too_deep, s->duplicate_id);
    fprintf(stderr, "  root prompts: %ld used; excluded %ld deleted, %ld synthetic, %ld not '%s'\n",
            s->prompts_used, s->prompts_deleted, s->prompts_synthetic, s->prompts_lang, lang);
    fprintf(stderr, "  first-turn replies: %ld seen; excluded %ld deleted, %ld synthetic, %ld not '%s', "
            "%ld unranked\n", s->replies_seen, s->replies_deleted, s->replies_synthetic, s->replies_lang,
            lang, s->replies_unranked);
    fprintf(stderr, "  IFT pairs: %ld -> %s/ift.jsonl (+%ld rank-0 pairs held out with their groups; "
            "%ld prompts without a usable rank-0 reply)\n",
            s->ift_pairs, dir, s->ift_heldout, s->prompts_no_rank0);
    fprintf(stderr, "  ranked groups: %ld: %ld -> %s/eft_groups.jsonl, %ld held out -> %s/heldout.jsonl\n",
            s->ranked_groups, s->eft_groups, dir, s->heldout_groups, dir);
}

static srlm_status data_oasst(int argc, char **argv) {
    srlm_oasst_options o;
    srlm_oasst_default_options(&o);
    const char *out = NULL, *on_bad = "skip";
    long seed = 0;
    const srlm_flag flags[] = {
        {"out", FLAG_STRING, &out, "DIR", "output folder (created): ift.jsonl, eft_groups.jsonl, heldout.jsonl", 1},
        {"heldout-fraction", FLAG_DOUBLE, &o.heldout_fraction, "F",
         "share of the ranked groups held out for reward-model evaluation, in [0, 1] (default 0.1)", 0},
        {"seed", FLAG_INT, &seed, "S", "seed of the held-out choice (a hash of seed and prompt_id; default 0)", 0},
        {"lang", FLAG_STRING, &o.lang, "CODE", "language of the messages kept (default en)", 0},
        {"on-bad-tree", FLAG_STRING, &on_bad, "skip|fail",
         "a malformed tree is reported with FILE:LINE and skipped, or refused with exit 2 (default skip)", 0},
    };
    const srlm_command_spec spec = {"data oasst", "TREES.jsonl",
        "Converts Open Assistant oasst1 trees (one tree per line) into DIR/ift.jsonl "
        "{\"prompt_id\", \"prompt\", \"response\"}: the first-turn human rank-0 replies; "
        "DIR/eft_groups.jsonl {\"prompt_id\", \"prompt\", \"replies\": [{\"text\", \"rank\"}, ...]}: "
        "prompts with >= 2 ranked replies, sorted by rank; and DIR/heldout.jsonl (same format): "
        "the held-out groups, which are in neither of the other files. Deleted, synthetic "
        "(synthetic or model_name set), other-language and unranked messages are excluded. "
        "Counts go to stderr.",
        flags, SRLM_COUNT(flags), 1};
    srlm_parsed_args pa;
    SRLM_CHECK(srlm_parse_flags(&spec, argc, argv, &pa));
    const char *input = pa.n_positional == 1 ? pa.positional[0] : NULL;
    srlm_parsed_args_free(&pa);
    if (pa.help_shown) return SRLM_OK;
    if (!input)
        return SRLM_ERR(SRLM_BAD_INPUT, "srlm data oasst: the trees file is missing (see srlm data oasst --help)");
    if (!strcmp(on_bad, "fail")) o.fail_on_bad_tree = 1;
    else if (strcmp(on_bad, "skip") != 0)
        return SRLM_ERR(SRLM_BAD_INPUT, "srlm data oasst: --on-bad-tree expects skip or fail, found '%s'", on_bad);
    if (!(o.heldout_fraction >= 0 && o.heldout_fraction <= 1))
        return SRLM_ERR(SRLM_BAD_INPUT, "srlm data oasst: --heldout-fraction expects a number in [0, 1], found %g",
                        o.heldout_fraction);
    o.seed = (uint64_t)seed;

    report_state rs = {0, 0};
    o.on_bad_tree = report_bad_tree;
    o.ctx = &rs;
    srlm_oasst_stats s;
    srlm_status st = srlm_oasst_convert(input, out, &o, &s);
    if (rs.suppressed)
        fprintf(stderr, "srlm data oasst: warning: %ld more malformed trees skipped (not listed)\n", rs.suppressed);
    if (st != SRLM_OK) {
        if (st == SRLM_BAD_INPUT && o.fail_on_bad_tree && s.trees_skipped > 0) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", srlm_last_error());
            return SRLM_ERR(st, "%s (refused: --on-bad-tree fail; nothing written)", msg);
        }
        return st;
    }
    print_stats(input, out, o.lang, &s);
    return SRLM_OK;
}

static void data_usage(FILE *f) {
    fprintf(f, "usage: srlm data SOURCE [args] (srlm data SOURCE --help for each)\n\n"
               "Converts seed data into the files the pipeline starts from.\n\nsources:\n"
               "  oasst          Open Assistant oasst1 trees -> IFT pairs, EFT groups, held-out groups\n");
}

srlm_status cmd_data(int argc, char **argv) {
    if (argc < 2)
        return SRLM_ERR(SRLM_BAD_INPUT, "srlm data: which source? (srlm data --help lists them)");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        data_usage(stdout);
        return SRLM_OK;
    }
    if (!strcmp(argv[1], "oasst")) return data_oasst(argc - 1, argv + 1);
    return SRLM_ERR(SRLM_BAD_INPUT, "srlm data: unknown source '%s' (srlm data --help lists them)", argv[1]);
}
