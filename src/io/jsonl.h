/* Reading JSON Lines files record by record, with errors that name the file and
 * line, and typed field getters that say what was expected and what was found. */
#ifndef SRLM_JSONL_H
#define SRLM_JSONL_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "core/status.h"

typedef struct {
    FILE  *f;
    int    owns_file;
    char   path[1024];
    long   line;       /* line number of the record last returned (1-based) */
    char  *buf;
    size_t cap;
} srlm_jsonl_reader;

/* path "-" reads stdin. */
srlm_status srlm_jsonl_open(srlm_jsonl_reader *r, const char *path);
/* Next record (a JSON object); *obj = NULL at end of file. Blank lines are skipped.
 * The caller frees *obj with cJSON_Delete. */
srlm_status srlm_jsonl_next(srlm_jsonl_reader *r, cJSON **obj);
void        srlm_jsonl_close(srlm_jsonl_reader *r);

/* Field getters for the record last read by r. `required`: absence is an error;
 * otherwise absence leaves the output untouched and sets *present = 0. */
srlm_status srlm_json_string(const srlm_jsonl_reader *r, const cJSON *obj, const char *key,
                             const char **out, int *present);
/* An array of integers in [0, limit); *out malloc'd. */
srlm_status srlm_json_int_array(const srlm_jsonl_reader *r, const cJSON *obj, const char *key,
                                int limit, int **out, int *n, int *present);

/* Checks every reader of outside JSON makes after cJSON parsed it (records,
 * config.json, the safetensors header):
 *
 * A key twice in one object: cJSON keeps both as siblings and every lookup
 * returns the first, so the second value would be dropped silently. Returns the
 * first repeated key in document order (nested objects included), NULL when
 * there is none; *parent (may be NULL) gets the object holding it (its ->string
 * is that object's own key, NULL at the top level or in an array) and *nth (may
 * be NULL) how many keys of that name, in any object, come before it in the
 * document (for srlm_json_key_line). */
const cJSON *srlm_json_duplicate_key(const cJSON *root, const cJSON **parent, int *nth);
/* 1-based line of the (nth + 1)-th key named `key` in JSON text (keys written
 * with escapes are not recognised); 0 when not found. */
int srlm_json_key_line(const char *text, size_t len, const char *key, int nth);
/* Byte offset of the first \u0000 escape in JSON text that cJSON accepted, -1
 * when none. cJSON ends the decoded string there (C strings), so "a\u0000b"
 * would be read as "a": readers refuse such text instead. */
long srlm_json_nul_escape(const char *text, size_t len);

#endif
