/* One function per `srlm` command; each lives in src/cli/cmd_<name>.c and takes
 * argv with argv[0] = the command name. They return a status; main() prints the
 * message and turns the status into the exit code. */
#ifndef SRLM_COMMANDS_H
#define SRLM_COMMANDS_H

#include "core/status.h"

srlm_status cmd_inspect(int argc, char **argv);
srlm_status cmd_check_config(int argc, char **argv);
srlm_status cmd_tokenize(int argc, char **argv);
srlm_status cmd_detokenize(int argc, char **argv);
srlm_status cmd_score(int argc, char **argv);
srlm_status cmd_generate(int argc, char **argv);
srlm_status cmd_demo(int argc, char **argv);
srlm_status cmd_sft(int argc, char **argv);
srlm_status cmd_dpo(int argc, char **argv);
srlm_status cmd_data(int argc, char **argv);
srlm_status cmd_run(int argc, char **argv);
srlm_status cmd_plan(int argc, char **argv);

#endif
