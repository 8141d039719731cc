#include "cli/commands.h"

srlm_status cmd_demo(int argc, char **argv) {
    (void)argc; (void)argv;
    return SRLM_ERR(SRLM_FAILED, "not implemented yet");
}
