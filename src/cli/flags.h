/* Command-line flags from one table per command: the parser and the --help text
 * read the same table, so the help cannot drift from what is accepted. */
#ifndef SRLM_FLAGS_H
#define SRLM_FLAGS_H

#include <stdio.h>

#include "core/status.h"

typedef enum { FLAG_STRING, FLAG_INT, FLAG_DOUBLE, FLAG_BOOL } srlm_flag_type;

typedef struct {
    const char    *name;     /* without the leading "--" */
    srlm_flag_type type;
    void          *dest;     /* const char **, long *, double *, int * (bool) */
    const char    *metavar;  /* "DIR", "N"; NULL for bools */
    const char    *help;
    int            required;
} srlm_flag;

typedef struct {
    const char      *name;       /* "inspect" */
    const char      *args;       /* positional part of the usage line, e.g. "[CONFIG] [key=value ...]" */
    const char      *summary;    /* one line */
    const srlm_flag *flags;
    int              n_flags;
    int              max_positional; /* -1: any number */
} srlm_command_spec;

typedef struct {
    int    help_shown;      /* --help was given: the caller returns SRLM_OK at once */
    int    n_positional;
    char **positional;      /* points into argv; owned by the caller's argv */
} srlm_parsed_args;

/* argv[0] is the command name. Unknown flags, missing values, bad numbers and
 * missing required flags give SRLM_BAD_INPUT with a message naming the flag.
 * `out->positional` is malloc'd; free it with srlm_parsed_args_free. */
srlm_status srlm_parse_flags(const srlm_command_spec *spec, int argc, char **argv,
                             srlm_parsed_args *out);
void srlm_parsed_args_free(srlm_parsed_args *a);
void srlm_print_command_help(const srlm_command_spec *spec, FILE *out);

#define SRLM_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

#endif
