/* config.json of a Hugging Face Llama or Mistral (srlm_hf_config_load).
 * Invariants of a config that loaded: it validates; sizes are positive, the
 * head counts divide; torch_dtype is one of the three; token ids are -1 or
 * >= 0; model_type is llama or mistral, a window only mistral's; and
 * srlm_hf_config_save writes a file that loads back to the same config. A
 * failure is SRLM_BAD_INPUT naming the file. */
#include <math.h>

#include "fuzz_util.h"
#include "io/hf_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("config.json", data, size);
    srlm_hf_config c;
    srlm_clear_error();
    srlm_status s = srlm_hf_config_load(path, &c);
    if (s != SRLM_OK) {
        fuzz_check_failure(s, path);
        FUZZ_CHECK(s == SRLM_BAD_INPUT, "a bad config gave status %d: %s", (int)s, srlm_last_error());
        return 0;
    }
    FUZZ_CHECK(srlm_hf_config_validate(&c, path) == SRLM_OK, "loaded but does not validate: %s", srlm_last_error());
    FUZZ_CHECK(c.vocab_size > 0 && c.hidden_size > 0 && c.intermediate_size > 0 && c.num_hidden_layers > 0 &&
                   c.num_attention_heads > 0 && c.num_key_value_heads > 0 && c.max_position_embeddings > 0 &&
                   c.head_dim > 0, "a size is not positive");
    FUZZ_CHECK(c.hidden_size % c.num_attention_heads == 0 && c.num_attention_heads % c.num_key_value_heads == 0,
               "head counts do not divide");
    FUZZ_CHECK(isfinite(c.rms_norm_eps) && c.rms_norm_eps > 0 && isfinite(c.rope_theta) && c.rope_theta > 0,
               "eps %g theta %g", c.rms_norm_eps, c.rope_theta);
    FUZZ_CHECK(c.bos_token_id >= -1 && c.eos_token_id >= -1 && c.pad_token_id >= -1, "token ids");
    FUZZ_CHECK(c.tie_word_embeddings == 0 || c.tie_word_embeddings == 1, "tie %d", c.tie_word_embeddings);
    srlm_dtype dt;
    FUZZ_CHECK(srlm_hf_dtype_from_name(c.torch_dtype, &dt), "torch_dtype '%s'", c.torch_dtype);
    FUZZ_CHECK(!strcmp(c.model_type, "llama") || !strcmp(c.model_type, "mistral"), "model_type '%s'", c.model_type);
    FUZZ_CHECK(c.sliding_window >= 0 && (c.sliding_window == 0 || !strcmp(c.model_type, "mistral")),
               "sliding_window %d of a %s config", c.sliding_window, c.model_type);

    /* Round trip through the writer. */
    static char out[600];
    if (!out[0]) fuzz_path(out, sizeof out, "saved-config.json");
    FUZZ_CHECK(srlm_hf_config_save(out, &c) == SRLM_OK, "saving a loaded config: %s", srlm_last_error());
    srlm_hf_config back;
    FUZZ_CHECK(srlm_hf_config_load(out, &back) == SRLM_OK, "reloading a saved config: %s", srlm_last_error());
    FUZZ_CHECK(back.vocab_size == c.vocab_size && back.hidden_size == c.hidden_size &&
                   back.intermediate_size == c.intermediate_size && back.num_hidden_layers == c.num_hidden_layers &&
                   back.num_attention_heads == c.num_attention_heads &&
                   back.num_key_value_heads == c.num_key_value_heads &&
                   back.max_position_embeddings == c.max_position_embeddings && back.head_dim == c.head_dim &&
                   back.rms_norm_eps == c.rms_norm_eps && back.rope_theta == c.rope_theta &&
                   back.tie_word_embeddings == c.tie_word_embeddings && back.bos_token_id == c.bos_token_id &&
                   back.eos_token_id == c.eos_token_id && back.pad_token_id == c.pad_token_id &&
                   !strcmp(back.torch_dtype, c.torch_dtype) && !strcmp(back.model_type, c.model_type) &&
                   back.sliding_window == c.sliding_window,
               "the saved config reads back different (eps %.17g -> %.17g, theta %.17g -> %.17g)", c.rms_norm_eps,
               back.rms_norm_eps, c.rope_theta, back.rope_theta);
    return 0;
}
