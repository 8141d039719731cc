#include "cli/flags.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const srlm_flag *find_flag(const srlm_command_spec *spec, const char *name, size_t len) {
    for (int i = 0; i < spec->n_flags; i++)
        if (strlen(spec->flags[i].name) == len && strncmp(spec->flags[i].name, name, len) == 0)
            return &spec->flags[i];
    return NULL;
}

static srlm_status set_value(const srlm_command_spec *spec, const srlm_flag *f, const char *v) {
    char *end = NULL;
    errno = 0;
    switch (f->type) {
    case FLAG_STRING:
        *(const char **)f->dest = v;
        return SRLM_OK;
    case FLAG_INT: {
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end)
            return SRLM_ERR(SRLM_BAD_INPUT, "srlm %s: --%s expects an integer, found '%s'",
                            spec->name, f->name, v);
        *(long *)f->dest = x;
        return SRLM_OK;
    }
    case FLAG_DOUBLE: {
        double x = strtod(v, &end);
        if (errno || end == v || *end)
            return SRLM_ERR(SRLM_BAD_INPUT, "srlm %s: --%s expects a number, found '%s'",
                            spec->name, f->name, v);
        /* strtod takes "nan" and "inf"; no flag means either, and NaN would pass range checks */
        if (!isfinite(x))
            return SRLM_ERR(SRLM_BAD_INPUT, "srlm %s: --%s expects a finite number, found '%s'",
                            spec->name, f->name, v);
        *(double *)f->dest = x;
        return SRLM_OK;
    }
    case FLAG_BOOL:
        if (!strcmp(v, "1") || !strcmp(v, "true")) { *(int *)f->dest = 1; return SRLM_OK; }
        if (!strcmp(v, "0") || !strcmp(v, "false")) { *(int *)f->dest = 0; return SRLM_OK; }
        return SRLM_ERR(SRLM_BAD_INPUT, "srlm %s: --%s expects true or false, found '%s'",
                        spec->name, f->name, v);
    }
    return SRLM_ERR(SRLM_FAILED, "unknown flag type");
}

srlm_status srlm_parse_flags(const srlm_command_spec *spec, int argc, char **argv,
                             srlm_parsed_args *out) {
    memset(out, 0, sizeof *out);
    out->positional = calloc((size_t)argc + 1, sizeof(char *));
    if (!out->positional) return SRLM_ERR(SRLM_FAILED, "out of memory parsing arguments");
    char seen[64] = {0};
    int only_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_positional || strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (!only_positional && !strcmp(a, "--")) { only_positional = 1; continue; }
            if (spec->max_positional >= 0 && out->n_positional >= spec->max_positional) {
                srlm_parsed_args_free(out);
                return SRLM_ERR(SRLM_BAD_INPUT, "srlm %s: unexpected argument '%s' (see srlm %s --help)",
                                spec->name, a, spec->name);
            }
            out->positional[out->n_positional++] = argv[i];
            continue;
        }
        const char *name = a + 2;
        if (!strcmp(name, "help")) {
            srlm_print_command_help(spec, stdout);
            out->help_shown = 1;
            return SRLM_OK;
        }
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const srlm_flag *f = find_flag(spec, name, len);
        if (!f) {
            srlm_parsed_args_free(out);
            return SRLM_ERR(SRLM_BAD_INPUT, "srlm %s: unknown flag '%s' (see srlm %s --help)",
                            spec->name, a, spec->name);
        }
        const char *value;
        if (eq) value = eq + 1;
        else if (f->type == FLAG_BOOL) value = "true";
        else if (i + 1 < argc) value = argv[++i];
        else {
            srlm_parsed_args_free(out);
            return SRLM_ERR(SRLM_BAD_INPUT, "srlm %s: --%s needs a value (%s)", spec->name, f->name,
                            f->metavar ? f->metavar : "value");
        }
        srlm_status st = set_value(spec, f, value);
        if (st != SRLM_OK) { srlm_parsed_args_free(out); return st; }
        int idx = (int)(f - spec->flags);
        if (idx < (int)sizeof seen) seen[idx] = 1;
    }
    for (int i = 0; i < spec->n_flags && i < (int)sizeof seen; i++) {
        if (spec->flags[i].required && !seen[i]) {
            srlm_parsed_args_free(out);
            return SRLM_ERR(SRLM_BAD_INPUT, "srlm %s: --%s %s is required (see srlm %s --help)",
                            spec->name, spec->flags[i].name,
                            spec->flags[i].metavar ? spec->flags[i].metavar : "", spec->name);
        }
    }
    return SRLM_OK;
}

void srlm_parsed_args_free(srlm_parsed_args *a) {
    free(a->positional);
    a->positional = NULL;
    a->n_positional = 0;
}

void srlm_print_command_help(const srlm_command_spec *spec, FILE *out) {
    fprintf(out, "usage: srlm %s%s%s%s\n\n%s\n", spec->name, spec->n_flags ? " [flags]" : "",
            spec->args ? " " : "", spec->args ? spec->args : "", spec->summary);
    fprintf(out, "\nflags:\n");
    for (int i = 0; i < spec->n_flags; i++) {
        const srlm_flag *f = &spec->flags[i];
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", f->name, f->metavar ? " " : "",
                 f->metavar ? f->metavar : "");
        fprintf(out, "  %-26s %s%s\n", left, f->help, f->required ? " (required)" : "");
    }
    fprintf(out, "  %-26s %s\n", "--help", "show this text");
}
