/* srlm check-config [CONFIG.yaml] [key.sub=value ...]: load a config exactly as
 * the job commands do and print it resolved, or say what is wrong with it. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "io/config.h"

srlm_status cmd_check_config(int argc, char **argv) {
    int comments = 0, keys = 0, hash = 0;
    const srlm_flag flags[] = {
        {"comments", FLAG_BOOL, &comments, NULL, "print each key's help as a comment above it", 0},
        {"keys",     FLAG_BOOL, &keys,     NULL, "list every key with its type, range, default and help, then stop", 0},
        {"hash",     FLAG_BOOL, &hash,     NULL, "print the config hash (keys that change results) after the config, as a comment", 0},
    };
    const srlm_command_spec spec = {
        "check-config", "[CONFIG.yaml] [key.sub=value ...]",
        "Load CONFIG (optional) with the overrides on top of the defaults, check every\n"
        "key, type and range, and print the resolved config as YAML on stdout.\n"
        "Errors name FILE:LINE:COLUMN and exit with 2.",
        flags, SRLM_COUNT(flags), -1,
    };
    srlm_parsed_args args;
    srlm_config cfg = {0};
    srlm_status st = SRLM_OK;
    SRLM_CHECK(srlm_parse_flags(&spec, argc, argv, &args));
    if (args.help_shown) goto done;
    if (keys) {
        srlm_schema_print_reference(srlm_config_schema(), stdout);
        goto done;
    }
    /* A second file name would be silently taken as a broken override otherwise. */
    for (int i = 1; i < args.n_positional; i++) {
        if (!strchr(args.positional[i], '=')) {
            st = SRLM_ERR(SRLM_BAD_INPUT, "expected key.sub=value, found '%s' (only one config file may be given)",
                          args.positional[i]);
            goto done;
        }
    }
    SRLM_CHECK_GOTO(srlm_config_from_args(&cfg, args.n_positional, args.positional), st, done);
    SRLM_CHECK_GOTO(srlm_schema_print(srlm_config_schema(), &cfg, stdout, comments), st, done);
    if (hash) printf("# hash: %016llx\n", (unsigned long long)srlm_config_hash(&cfg));
done:
    srlm_config_free(&cfg);
    srlm_parsed_args_free(&args);
    return st;
}
