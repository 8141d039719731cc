/* Run-directory artifacts that become complete atomically (DESIGN.md
 * "Contracts / Files"): a file F is complete iff its sidecar F.done exists; the
 * sidecar holds {"count": records, "sha256": of F}. The writer renames F into
 * place (fsynced, unique temporary name in the same folder), then writes the
 * sidecar the same way, so a crash at any moment leaves either no sidecar (the
 * item is redone) or a complete pair. A phase's work item i writes
 * DIR/part-0000i.jsonl. */
#ifndef SRLM_PARTS_H
#define SRLM_PARTS_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "core/status.h"

/* DIR/part-NNNNN.jsonl */
srlm_status srlm_part_path(char *dst, size_t cap, const char *dir, int item);

/* Write `data` (len bytes, `count` records) as the complete artifact `path`. */
srlm_status srlm_artifact_write(const char *path, const void *data, size_t len, long count);

/* 1 when path's sidecar exists (the artifact is complete as far as the files say). */
int srlm_artifact_done(const char *path);

/* Check the artifact against its sidecar: SRLM_OK and *count (may be NULL) when
 * the bytes hash to the recorded sha256; SRLM_BAD_INPUT naming the file when the
 * sidecar is missing, unreadable or does not match (a truncated or corrupted
 * part). */
srlm_status srlm_artifact_verify(const char *path, long *count);

/* Remove an artifact and its sidecar (sidecar first, so it is never complete
 * while half removed). */
srlm_status srlm_artifact_remove(const char *path);

/* The JSON objects of the complete parts 0 .. n_items-1 of DIR, in item and line
 * order; *recs is malloc'd (free with srlm_records_free). A missing part or a
 * malformed line is SRLM_BAD_INPUT naming the file and line. */
srlm_status srlm_parts_load(const char *dir, int n_items, cJSON ***recs, int *n);
/* One complete artifact's records (same rules). Both check each file against
 * its sidecar first (srlm_artifact_verify) and its record count after. */
srlm_status srlm_records_load(const char *path, cJSON ***recs, int *n);
/* Any JSONL file's records (seed data: no sidecar needed). */
srlm_status srlm_jsonl_load_all(const char *path, cJSON ***recs, int *n);
void        srlm_records_free(cJSON **recs, int n);

/* A growing text buffer for JSONL output. */
typedef struct {
    char  *s;
    size_t len, cap;
    long   count;     /* lines appended */
    int    failed;    /* out of memory: every later append is ignored */
} srlm_text;

/* Append one record as a compact JSON line (the object is not freed). */
void        srlm_text_add_json(srlm_text *t, const cJSON *obj);
void        srlm_text_add(srlm_text *t, const char *s, size_t len);
srlm_status srlm_text_status(const srlm_text *t);
void        srlm_text_free(srlm_text *t);

#endif
