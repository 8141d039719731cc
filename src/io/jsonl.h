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

#endif
