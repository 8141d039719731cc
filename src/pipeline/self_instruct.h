/* Self-instruct helpers (DESIGN.md "The algorithm", step 1, and "Contracts /
 * Determinism"): which few-shot examples an item shows, the prompt that asks
 * the prompt model for a new task, how the new task is read from its reply,
 * and the filter that runs once, in item order, after all items finish.
 * Pure functions: no model, no MPI.
 *
 * Flow of one iteration: for item i, srlm_si_pick_shots -> the shot texts ->
 * srlm_si_render -> the USER turn of a one-turn chat (the caller wraps it) ->
 * the prompt model's reply -> srlm_si_extract -> candidate i. When every item
 * is done: srlm_si_filter(IFT prompts + earlier accepted prompts, candidates
 * in item order) -> the accepted prompts of this iteration. */
#ifndef SRLM_SELF_INSTRUCT_H
#define SRLM_SELF_INSTRUCT_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* ------------------------------------------------------------ few-shot choice */

typedef struct {
    int from_prev; /* 1: index into the previous iteration's accepted prompts; 0: IFT */
    int index;
} srlm_si_shot;

/* The few-shot examples of work item `item`, a pure function of
 * (n_ift, n_prev, shots_ift, shots_gen, seed, item).
 *
 * `seed` is the key of the phase (e.g. srlm_rng_key(srlm_rng_key(run seed,
 * iteration), phase)); the draws use counter-based keys derived from it and
 * `item` (core/rng.h), so an item's shots do not depend on which group ran it.
 *
 * Counts: g = min(shots_gen, n_prev) shots come from the previous prompts; the
 * shots_gen - g missing ones are taken from the IFT pool instead (iteration 1
 * has no previous prompts: all shots_ift + shots_gen come from IFT), so
 * min(shots_ift + shots_gen - g, n_ift) come from IFT. A pool that is too small
 * gives all it has and nothing else fills in (a short IFT pool is not topped
 * up from the previous prompts). Within a pool the indexes are distinct,
 * uniformly chosen (Floyd's algorithm; O(k^2) for k shots; the integer draws
 * have a bias below range / 2^32, immaterial for pools of thousands).
 *
 * Order: the chosen shots of both pools are then shuffled together (Fisher-
 * Yates), so the previous prompts are not always last.
 *
 * out needs room for shots_ift + shots_gen entries; *n_out gets the number
 * written (0 when both pools are empty). SRLM_BAD_INPUT for a negative count
 * or a NULL output. */
srlm_status srlm_si_pick_shots(int n_ift, int n_prev, int shots_ift, int shots_gen, uint64_t seed,
                               uint64_t item, srlm_si_shot *out, int *n_out);

/* ------------------------------------------------------------------ template */

#define SRLM_SI_PH_EXAMPLES "{examples}"

/* Template file format (configs/prompts/self_instruct.txt; the same rules as
 * configs/prompts/judge.txt):
 *   - a line whose first character is '#' is a comment, dropped with its line
 *     break; CRLF becomes LF; white space at both ends of the rest is removed;
 *   - {examples} must occur exactly once; it is replaced verbatim, in one pass;
 *     nothing else is special. */
typedef struct {
    char *text; /* the template, comments stripped (owned) */
} srlm_si_template;

/* Load a template; path NULL or "" gives the built-in copy of
 * configs/prompts/self_instruct.txt. Errors (SRLM_BAD_INPUT) name the file:
 * unreadable ("cannot read"), a NUL byte, over 1 MiB, no {examples} or more
 * than one (with the line). On failure t->text is NULL. */
srlm_status srlm_si_template_load(srlm_si_template *t, const char *path);
void srlm_si_template_free(srlm_si_template *t);

/* Fill {examples} with the shots as a numbered list, "1. <shot 1>\n2. <shot 2>"
 * (no line break after the last). Each shot is flattened to one line: every
 * run of ASCII white space (line breaks included) becomes one space and both
 * ends are trimmed, so a multi-line IFT prompt cannot break the numbering and
 * the examples look like the one-line tasks srlm_si_extract keeps. n == 0
 * gives an empty list. *out is malloc'd (the caller frees it). SRLM_BAD_INPUT
 * for an unloaded template, a NULL shot or n < 0. */
srlm_status srlm_si_render(const srlm_si_template *t, const char *const *shots, int n, char **out);

/* ---------------------------------------------------------------- extraction */

/* The new task in the prompt model's reply (`len` bytes, read up to the first
 * NUL if there is one). Lines are tried in order; for each:
 *   1. blanks at both ends are trimmed (space, tab, CR, FF, VT, no-break space);
 *   2. list markers and labels at its start are removed, repeatedly, in any
 *      mix: bullets "-", "*", "+", "•", "#"/"##"..., ">" followed by a blank;
 *      a bold opener "**" or "__"; numbers of 1 to 3 digits "9." "9)" "9:"
 *      "(9)" followed by a blank or the end of the line ("9.5 kg" and "-5"
 *      stay); labels (any case) "Task", "Instruction",
 *      "Prompt", "Question", each optionally preceded by "New " and followed
 *      by a number ("Task 9", "Task #9"), then an optional "**" and ':'
 *      ("Instruction: ...", "**Task 9:** ...", "New task:");
 *   3. when a bold opener was removed, a closing "**"/"__" at the end goes too;
 *      a pair of quotes ("..." or “...”) around the whole rest is removed;
 *   4. trimmed again. The first line that is then non-empty and does not end
 *      with ':' is the task; a line ending with ':' is a lead-in ("Here is a
 *      new task:") and is skipped.
 * Only that one line is kept. *out is malloc'd, or NULL when no line qualifies.
 * SRLM_FAILED only when memory runs out. */
srlm_status srlm_si_extract(const char *reply, size_t len, char **out);

/* ----------------------------------------------------------------- blocklist */

/* Keywords that disqualify a prompt (tasks a text model cannot do). File: one
 * keyword or phrase a line; a line whose first non-blank character is '#' is a
 * comment; blank lines are ignored; each entry is lowercased (ASCII), trimmed,
 * and its inner white space runs become one space. An empty list is allowed. */
typedef struct {
    char **words;
    int n;
} srlm_si_blocklist;

/* path NULL or "" gives the built-in list, the same as
 * configs/prompts/blocklist.txt. Unreadable -> SRLM_BAD_INPUT naming the file. */
srlm_status srlm_si_blocklist_load(srlm_si_blocklist *b, const char *path);
void srlm_si_blocklist_free(srlm_si_blocklist *b);

/* Index of the first keyword (in list order) that occurs in `text`, or -1.
 * Matching ignores ASCII case; a single space in a keyword matches any run of
 * ASCII white space; a keyword that starts (ends) with a word character
 * (ASCII letter, digit, '_') must not be preceded (followed) by one in the
 * text: "map" matches "a map." and "Map" but not "mapping" or "roadmap". */
int srlm_si_blocked(const srlm_si_blocklist *b, const char *text);

/* -------------------------------------------------------------------- filter */

/* Verdicts, in the order the checks run (the first failing check wins). */
typedef enum {
    SRLM_SI_KEEP,
    SRLM_SI_EMPTY,     /* NULL, or nothing but white space */
    SRLM_SI_TOO_SHORT, /* fewer than min_words words */
    SRLM_SI_TOO_LONG,  /* more than max_words words */
    SRLM_SI_NOT_TEXT,  /* starts with ASCII punctuation, or under half letters */
    SRLM_SI_BLOCKED,   /* contains a blocklist keyword (srlm_si_blocked) */
    SRLM_SI_DUPLICATE, /* equals max_copies known prompts after normalisation */
    SRLM_SI_SIMILAR,   /* ROUGE-L with a known prompt above rouge_l_max */
    SRLM_SI_N_VERDICTS
} srlm_si_verdict;

/* "keep", "empty", "too_short", "too_long", "not_text", "blocked",
 * "duplicate", "similar"; "?" for anything else. */
const char *srlm_si_verdict_name(srlm_si_verdict v);

typedef struct {
    double rouge_l_max;                 /* SIMILAR when the best ROUGE-L is > this */
    int max_copies;                     /* DUPLICATE when this many equal prompts are known
                                           (1: any exact duplicate; < 1 counts as 1) */
    int min_words, max_words;           /* inclusive bounds */
    const srlm_si_blocklist *blocklist; /* NULL: nothing is blocked */
} srlm_si_filter_opts;

typedef struct {
    srlm_si_verdict verdict;
    double rouge; /* best ROUGE-L against the known prompts; -1 when not computed */
    int match;    /* DUPLICATE / SIMILAR: the known prompt it matched, as an index
                     into pool (< n_pool) or n_pool + index of an earlier candidate;
                     BLOCKED: the keyword's index; otherwise -1 */
} srlm_si_check;

/* Judge the candidates in order. The known prompts start as pool[0..n_pool-1]
 * (IFT prompts and earlier accepted ones); each KEEP joins them, so it counts
 * against every later candidate: the order of the candidates matters, and the
 * caller passes them in item order. Rules:
 *   - words: runs of non-white-space (ASCII white space) characters;
 *   - NOT_TEXT: the first non-blank character is ASCII punctuation (as in
 *     Self-Instruct), or fewer than half of the non-blank characters are
 *     letters (ASCII letters; every non-ASCII UTF-8 character counts as a
 *     letter, so other scripts pass);
 *   - DUPLICATE: equal to max_copies known prompts after ASCII lowercasing,
 *     white-space runs -> one space, both ends trimmed (hash set, O(copies)
 *     per candidate). A text equal to fewer known prompts is a permitted copy
 *     (for tasks whose prompts repeat by design, like the demo's): it is kept
 *     without the ROUGE-L check, which it would fail against its own twin;
 *   - SIMILAR: srlm_rouge_l_max against all known prompts > rouge_l_max
 *     (O(total tokens^2) per candidate; not computed when rouge_l_max >= 1,
 *     since no score exceeds 1).
 * The strings are not copied: pool and cands must outlive the call only.
 * checks[0..n_cands-1] gets one entry per candidate; counts (may be NULL) gets
 * the number of each verdict. SRLM_BAD_INPUT for NULL arrays with n > 0, a
 * NULL pool entry, negative counts or min_words > max_words; SRLM_FAILED when
 * memory runs out. */
srlm_status srlm_si_filter(const srlm_si_filter_opts *o, const char *const *pool, int n_pool,
                           const char *const *cands, int n_cands, srlm_si_check *checks,
                           int counts[SRLM_SI_N_VERDICTS]);

#endif
