/* config.json in front of real weights: the fixture checkpoint
 * tests/fixtures/llama/tiny-gqa/model.safetensors (linked into a scratch
 * folder once) with the input as its config.json, loaded the way every command
 * loads a model (srlm_model_session_open: srlm_ckpt_open, then srlm_llama_load
 * on the CPU backend). A config whose sizes lie about the weights must be
 * refused as SRLM_BAD_INPUT naming the folder or a tensor, never with a crash,
 * undefined behaviour or a huge allocation (libFuzzer's -malloc_limit_mb). */
#include "fuzz_util.h"
#include "model/model_session.h"

static char g_dir[600], g_config[700];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_dir[0]) {
        char weights[1024], link[800];
        const char *fx = getenv("SRLM_FIXTURES");
        fuzz_path(g_dir, sizeof g_dir, "model");
        if (mkdir(g_dir, 0755) != 0 && access(g_dir, W_OK) != 0) abort();
        snprintf(weights, sizeof weights, "%s/llama/tiny-gqa/model.safetensors", fx && *fx ? fx : SRLM_FUZZ_FIXTURES);
        snprintf(link, sizeof link, "%s/model.safetensors", g_dir);
        unlink(link);
        if (symlink(weights, link) != 0) abort();
        snprintf(g_config, sizeof g_config, "%s/config.json", g_dir);
    }
    fuzz_write_file(g_config, data, size);
    srlm_model_session s;
    srlm_clear_error();
    srlm_status st = srlm_model_session_open(&s, g_dir, NULL, 0, 1);
    if (st != SRLM_OK) {
        fuzz_check_failure(st, NULL);
        FUZZ_CHECK(st == SRLM_BAD_INPUT, "a lying config gave status %d: %s", (int)st, srlm_last_error());
        return 0;
    }
    const srlm_hf_config *c = &s.model.cfg;
    /* The shapes pin these down, and the layer count (a tensor no layer reads is refused),
     * not the head split. */
    FUZZ_CHECK(c->vocab_size == 320 && c->hidden_size == 64 && c->intermediate_size == 172 &&
                   c->num_hidden_layers == 2,
               "loaded with sizes that differ from the weights: vocab %d hidden %d ffn %d layers %d", c->vocab_size,
               c->hidden_size, c->intermediate_size, c->num_hidden_layers);
    srlm_model_session_close(&s);
    return 0;
}
