#include "cli/commands.h"

srlm_status cmd_tokenize(int argc, char **argv) { (void)argc; (void)argv; return SRLM_ERR(SRLM_FAILED, "not implemented yet"); }
srlm_status cmd_detokenize(int argc, char **argv) { (void)argc; (void)argv; return SRLM_ERR(SRLM_FAILED, "not implemented yet"); }
