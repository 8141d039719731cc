/* A table-driven YAML loader: one table of fields (dotted key, type, offset into
 * a struct, default, range, help) drives the defaults, the parser, the checks,
 * the --help style reference and the printer, so they cannot disagree.
 *
 * YAML is read with libyaml's document API. Every problem is reported as
 * "FILE:LINE:COLUMN: key 'a.b': expected X, found Y" (1-based, from libyaml's
 * marks), or "override 'a.b=v': expected X, found Y" for command-line overrides.
 *
 * Struct field types: SRLM_FIELD_INT -> int, DOUBLE -> double, BOOL -> bool,
 * STRING -> char * (owned, never NULL after defaults), ENUM -> an int-sized enum
 * whose value is the index into `choices`. */
#ifndef SRLM_YAML_SCHEMA_H
#define SRLM_YAML_SCHEMA_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

typedef enum {
    SRLM_FIELD_INT,
    SRLM_FIELD_DOUBLE,
    SRLM_FIELD_BOOL,
    SRLM_FIELD_STRING,
    SRLM_FIELD_ENUM,
} srlm_field_type;

/* Bits of srlm_schema_field.flags. */
enum {
    SRLM_FIELD_REQUIRED = 1 << 0, /* must be given (strings: and non-empty) */
    SRLM_FIELD_NONEMPTY = 1 << 1, /* strings: "" is refused */
    SRLM_FIELD_MIN_OPEN = 1 << 2, /* value > min instead of >= min */
    SRLM_FIELD_MAX_OPEN = 1 << 3, /* value < max instead of <= max */
    SRLM_FIELD_NO_HASH  = 1 << 4, /* does not change results: left out of the hash */
};

#define SRLM_NO_MIN (-HUGE_VAL)
#define SRLM_NO_MAX HUGE_VAL

typedef struct {
    const char         *key;     /* dotted path: "train.dpo.beta" */
    srlm_field_type     type;
    size_t              offset;  /* offsetof(the struct, field) */
    const char         *def;     /* default, written as YAML scalar text: "0.1", "true", "cosine" */
    double              min;     /* inclusive range for ints and doubles (see the _OPEN flags) */
    double              max;
    const char *const  *choices; /* enums: NULL-terminated list of names */
    unsigned            flags;   /* SRLM_FIELD_* bits */
    const char         *help;    /* one line */
} srlm_schema_field;

typedef struct {
    const srlm_schema_field *fields;
    int                      n_fields;
} srlm_schema;

/* Programmer checks: unique keys, contiguous sections (the printer relies on
 * it), no key that is also a section, valid defaults. */
srlm_status srlm_schema_validate(const srlm_schema *s);

/* Set every field of `obj` to its default. On failure the strings set so far
 * are freed. */
srlm_status srlm_schema_set_defaults(const srlm_schema *s, void *obj);

/* Apply the YAML text (`name` is the file name used in messages) on top of obj.
 * `given` (n_fields entries, may be NULL) gets a 1 for every field set. */
srlm_status srlm_schema_load_yaml(const srlm_schema *s, void *obj, const char *name,
                                  const char *text, size_t len, unsigned char *given);

/* Apply one Hydra-style override "key.sub=value"; the value is parsed as a YAML
 * scalar with the same checks as the file. */
srlm_status srlm_schema_apply_override(const srlm_schema *s, void *obj, const char *kv,
                                       unsigned char *given);

/* SRLM_BAD_INPUT naming the first required field with given[i] == 0. `name` is
 * the config file (NULL when there is none). */
srlm_status srlm_schema_check_required(const srlm_schema *s, const char *name,
                                       const unsigned char *given);

/* Print obj as nested YAML, every field, in table order; with_help adds each
 * field's help as a comment line above it. Loading the output gives back an
 * equal struct. */
srlm_status srlm_schema_print(const srlm_schema *s, const void *obj, FILE *out, int with_help);

/* One line per field: key, type and range, default, help. */
void srlm_schema_print_reference(const srlm_schema *s, FILE *out);

/* FNV-1a (64-bit) over "key=value\n" of every field without SRLM_FIELD_NO_HASH
 * whose value is not its default: a key added later, at its default, leaves
 * the hashes of existing configs as they were. */
uint64_t srlm_schema_hash(const srlm_schema *s, const void *obj);

int  srlm_schema_equal(const srlm_schema *s, const void *a, const void *b);
void srlm_schema_free(const srlm_schema *s, void *obj); /* frees the strings */

const srlm_schema_field *srlm_schema_find(const srlm_schema *s, const char *key);

#endif
