/* LLM-as-a-Judge: the prompt template and the parser of the judge's score
 * (DESIGN.md "The algorithm", step 3; the default template is
 * configs/prompts/judge.txt, the additive 5-point rubric).
 *
 * Template file format:
 *   - a line whose first character is '#' is a comment, dropped with its line
 *     break; CRLF becomes LF; white space at both ends of the rest is removed;
 *   - the placeholders {instruction} and {response} must each occur exactly
 *     once; they are replaced verbatim, in one pass, so text that itself
 *     contains "{instruction}" or other braces is never substituted again;
 *   - nothing else is special: other braces are sent as written.
 *
 * A judge answer with no usable score is not an error (DESIGN.md "Bad input"):
 * the parser returns a verdict, the caller counts and drops it. */
#ifndef SRLM_JUDGE_H
#define SRLM_JUDGE_H

#include <stddef.h>

#include "core/status.h"

#define SRLM_JUDGE_PH_INSTRUCTION "{instruction}"
#define SRLM_JUDGE_PH_RESPONSE    "{response}"
#define SRLM_JUDGE_MAX_SCORE      5

typedef struct {
    char *text; /* the template, comments stripped (owned) */
} srlm_judge_template;

/* Read and check a template file. Errors (SRLM_BAD_INPUT) name the file, and
 * the line for a duplicated placeholder. On failure t->text is NULL. */
srlm_status srlm_judge_template_load(srlm_judge_template *t, const char *path);
void srlm_judge_template_free(srlm_judge_template *t);

/* Fill the template: *out is malloc'd (the caller frees it); the placeholders
 * are replaced verbatim, no other substitution. */
srlm_status srlm_judge_render(const srlm_judge_template *t, const char *instruction,
                              const char *response, char **out);

/* Byte offset of the first placeholder in t->text ({instruction} in the
 * shipped template): the rendered text up to there is the same for every
 * judge request, so the engine can share that prefix's KV. It is a BYTE
 * prefix: the tokenizer may merge the last bytes of the prefix with the first
 * bytes of the instruction, so compare token ids to find the shared tokens.
 * 0 for an unloaded template. */
size_t srlm_judge_shared_prefix_len(const srlm_judge_template *t);

typedef enum {
    SRLM_SCORE_OK,
    SRLM_SCORE_MISSING,      /* no score marker, or the last one has no number */
    SRLM_SCORE_AMBIGUOUS,    /* the decisive line holds numbers that disagree */
    SRLM_SCORE_OUT_OF_RANGE, /* a number, but not a whole number in 0..5 out of 5 */
} srlm_score_verdict;

/* Parse a judge's output (`len` bytes; need not be NUL-terminated). *score
 * (may be NULL) gets 0..5 on SRLM_SCORE_OK and -1 otherwise. Never guesses.
 *
 * MARKER: the word "score" in any case, not preceded by an ASCII letter or
 * digit and not followed by a letter ("scores", "scored" are not markers),
 * then optional blanks and markdown marks (* _ `), then a separator:
 * ':' (or the full-width '：'), '=', or a dash ('-', en dash, em dash)
 * followed by a blank. So "Score: 4", "score:4", "SCORE = 4", "Score - 4",
 * "**Score:** 4", "**Score**: 4", "Final score: 4", "## Score: 4" are markers;
 * "Score 4", "Score -1", "Score (0-5): 4", "| Score | 4 |" are not.
 *
 * VALUE: after the separator, optional blanks, markdown marks, '(' or '[',
 * then a number: optional sign, digits, optional '.' and digits. Optionally a
 * denominator follows: "/ D" or "out of D" (blanks and markdown marks allowed
 * around '/'). Anything else after the value is free text ("points", ".",
 * "**", ")", emoji, ...). Blanks are space, tab, CR and the no-break space,
 * never a line break: the number must be on the marker's line.
 *
 * RULES, in order:
 *   1. The LAST marker in the text decides (judges restate the rubric's
 *      "Score: 0-5" earlier). No marker -> MISSING.
 *   2. The last marker has no number after it ("Score:", "Score: N/A",
 *      "Score: four", "Score: <0-5>") -> MISSING, even if an earlier marker
 *      had one.
 *   3. On the decisive line, every number from the separator of the FIRST
 *      marker on that line to the end of the line must agree with the
 *      decisive value (same numerator; denominators, where both have one,
 *      equal); otherwise AMBIGUOUS: "Score: 3 or 4", "Score: 0-5",
 *      "Score: 3. Final score: 4", "Score: 4,5", and also (conservatively)
 *      "Score: 4 (criteria 1-4)" and "Score: 4/5 (80%)". Numbers on the line
 *      before its first marker do not count.
 *   4. A denominator other than 5 ("10/10", "4/10") -> OUT_OF_RANGE: another
 *      scale is never rescaled.
 *   5. A non-integer ("3.5"; the paper averages whole scores, halves are not a
 *      rubric outcome) -> OUT_OF_RANGE; "4.0" is 4.
 *   6. Outside 0..5 ("6", "-1", "6/5") -> OUT_OF_RANGE. */
srlm_score_verdict srlm_judge_parse_score(const char *text, size_t len, int *score);

/* "ok", "missing", "ambiguous", "out_of_range". */
const char *srlm_score_verdict_name(srlm_score_verdict v);

#endif
