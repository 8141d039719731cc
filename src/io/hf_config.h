/* A Hugging Face Llama config.json: the fields srlm's model needs.
 *
 * Mistral checkpoints (model_type "mistral": Llama's layers with a sliding
 * attention window) load too. Their math is Llama's while no sequence is
 * longer than the window (transformers masks keys W or more positions back),
 * so a longer sequence is refused (srlm_hf_check_seq_len) rather than computed
 * with full attention, and generation ends a sequence there; Mistral 7B v0.2
 * and later have no window (null).
 *
 * Loading is strict about what changes the math: keys srlm does not implement
 * (rope_scaling, attention_bias, mlp_bias, hidden_act other than silu,
 * pretraining_tp other than 1) are refused when set to a non-default value;
 * null/false/absent are accepted, since transformers writes them in every Llama
 * config. Unknown keys are ignored. Defaults follow transformers' LlamaConfig,
 * except the token ids, which are -1 when absent or null. */
#ifndef SRLM_HF_CONFIG_H
#define SRLM_HF_CONFIG_H

#include "core/dtype.h"
#include "core/status.h"

#include <stdint.h>

typedef struct {
    int    vocab_size, hidden_size, intermediate_size, num_hidden_layers;
    int    num_attention_heads, num_key_value_heads, max_position_embeddings;
    double rms_norm_eps, rope_theta;
    int    tie_word_embeddings;   /* default 0 as in transformers' LlamaConfig */
    int    bos_token_id, eos_token_id, pad_token_id; /* -1 when absent/null; a list keeps its first id */
    char   torch_dtype[16];       /* "float32", "bfloat16", "float16" (default "float32") */
    int    head_dim;              /* hidden_size / num_attention_heads unless given */
    char   model_type[16];        /* "llama" or "mistral" (written back as read) */
    int    sliding_window;        /* mistral's; 0 = none (null, absent, or llama) */
} srlm_hf_config;

/* SRLM_OK unless a sequence of `len` tokens is more than the model's sliding
 * window allows; then SRLM_BAD_INPUT naming the window and `what` (the
 * sequence, or the setting that allows it). A window of W allows W tokens, or
 * W + 1 when the last one is only a target (training, scoring: its own output
 * is never used, so every output used attends to at most W positions). */
srlm_status srlm_hf_check_seq_len(const srlm_hf_config *cfg, int64_t len, int last_is_target, const char *what);

/* Defaults of transformers' LlamaConfig for the optional fields; the required
 * sizes are left 0. */
void srlm_hf_config_defaults(srlm_hf_config *cfg);

/* Parse and validate. Every problem is SRLM_BAD_INPUT naming the file and key. */
srlm_status srlm_hf_config_load(const char *path, srlm_hf_config *cfg);
/* Check a filled-in config the same way load does (sizes, divisibility, dtype). */
srlm_status srlm_hf_config_validate(const srlm_hf_config *cfg, const char *path);
/* Write (atomically) a config.json that transformers' LlamaForCausalLM loads
 * (model_type "llama", architectures, hidden_act "silu", ...), or for a
 * mistral config MistralForCausalLM (its sliding_window kept). */
srlm_status srlm_hf_config_save(const char *path, const srlm_hf_config *cfg);

/* Parse a small JSON file (config, index) whose top level must be an object; a
 * syntax error names the line and column. A key twice in one object and a NUL
 * (a byte or \u0000) are refused too, naming the key and line. Free with
 * cJSON_Delete. */
struct cJSON;
srlm_status srlm_json_read_file(const char *path, struct cJSON **out);

/* torch_dtype name -> dtype; 0 if not one of the three. */
int srlm_hf_dtype_from_name(const char *torch_dtype, srlm_dtype *out);

#endif
