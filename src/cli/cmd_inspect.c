/* srlm inspect DIR: a checkpoint's config, tensors and parameter count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "io/checkpoint.h"
#include "model/llama.h"

static const srlm_command_spec SPEC = {
    .name = "inspect",
    .args = "DIR",
    .summary = "Print a Hugging Face checkpoint folder's config, every tensor (name, dtype, shape,\n"
               "file, sorted by name) and the total parameter count. The whole folder is validated, and the\n"
               "tensors must be exactly those config.json describes (exit 2 naming the first that is not).",
    .flags = NULL,
    .n_flags = 0,
    .max_positional = 1,
};

static int cmp_tensor_ptr(const void *a, const void *b) {
    return strcmp((*(const srlm_st_tensor *const *)a)->name, (*(const srlm_st_tensor *const *)b)->name);
}

/* 6738415616 -> "6,738,415,616" */
static void with_commas(unsigned long long v, char *buf, size_t cap) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", v);
    size_t k = 0;
    for (int i = 0; i < n && k + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0) buf[k++] = ',';
        buf[k++] = digits[i];
    }
    buf[k] = '\0';
}

static void print_config(const srlm_hf_config *c) {
    printf("config:\n");
    printf("  model_type: %s\n", c->model_type[0] ? c->model_type : "llama");
    if (c->sliding_window > 0) printf("  sliding_window: %d\n", c->sliding_window);
    printf("  vocab_size: %d\n", c->vocab_size);
    printf("  hidden_size: %d\n", c->hidden_size);
    printf("  intermediate_size: %d\n", c->intermediate_size);
    printf("  num_hidden_layers: %d\n", c->num_hidden_layers);
    printf("  num_attention_heads: %d\n", c->num_attention_heads);
    printf("  num_key_value_heads: %d\n", c->num_key_value_heads);
    printf("  head_dim: %d\n", c->head_dim);
    printf("  max_position_embeddings: %d\n", c->max_position_embeddings);
    printf("  rms_norm_eps: %g\n", c->rms_norm_eps);
    printf("  rope_theta: %g\n", c->rope_theta);
    printf("  tie_word_embeddings: %s\n", c->tie_word_embeddings ? "true" : "false");
    printf("  bos_token_id: %d\n", c->bos_token_id);
    printf("  eos_token_id: %d\n", c->eos_token_id);
    printf("  pad_token_id: %d\n", c->pad_token_id);
    printf("  torch_dtype: %s\n", c->torch_dtype);
}

srlm_status cmd_inspect(int argc, char **argv) {
    srlm_status s = SRLM_OK;
    srlm_parsed_args args;
    srlm_checkpoint ck;
    const srlm_st_tensor **all = NULL;
    memset(&ck, 0, sizeof ck);
    SRLM_CHECK(srlm_parse_flags(&SPEC, argc, argv, &args));
    if (args.help_shown) goto done;
    if (args.n_positional != 1) {
        s = SRLM_ERR(SRLM_BAD_INPUT, "srlm inspect: expected a checkpoint folder DIR (see srlm inspect --help)");
        goto done;
    }
    SRLM_CHECK_GOTO(srlm_ckpt_open(&ck, args.positional[0]), s, done);

    int total = 0;
    for (int i = 0; i < ck.n_files; i++) total += ck.files[i].n_tensors;
    all = malloc((total ? (size_t)total : 1) * sizeof *all);
    if (!all) {
        s = SRLM_ERR(SRLM_FAILED, "out of memory listing %d tensors", total);
        goto done;
    }
    int k = 0;
    size_t name_w = 4;
    unsigned long long params = 0;
    for (int i = 0; i < ck.n_files; i++)
        for (int j = 0; j < ck.files[i].n_tensors; j++) {
            const srlm_st_tensor *t = &ck.files[i].tensors[j];
            all[k++] = t;
            if (strlen(t->name) > name_w) name_w = strlen(t->name);
            params += (unsigned long long)srlm_st_numel(t);
        }
    qsort(all, (size_t)total, sizeof *all, cmp_tensor_ptr);

    printf("checkpoint: %s\n", ck.dir);
    print_config(&ck.config);
    printf("tensors: %d in %d file%s\n", total, ck.n_files, ck.n_files == 1 ? "" : "s");
    for (int i = 0; i < total; i++) {
        char shape[96];
        const char *file = srlm_ckpt_tensor_file(&ck, all[i]);
        const char *slash = strrchr(file, '/');
        srlm_st_shape_str(all[i]->ndim, all[i]->shape, shape, sizeof shape);
        printf("  %-*s  %-4s  %-16s  %s\n", (int)name_w, all[i]->name, srlm_dtype_name(all[i]->dtype), shape,
               slash ? slash + 1 : file);
    }
    /* A tied lm_head shares the embedding's storage: it is counted once, as
     * transformers' num_parameters() does. */
    const srlm_st_tensor *head = srlm_ckpt_find(&ck, "lm_head.weight");
    if (head && strcmp(head->name, "lm_head.weight") != 0)
        printf("  %-*s  (tied to %s, not stored)\n", (int)name_w, "lm_head.weight", head->name);
    char num[48];
    with_commas(params, num, sizeof num);
    printf("parameters: %s\n", num);
    /* after the listing, so a checkpoint that does not match its config can still be looked at */
    fflush(stdout);
    SRLM_CHECK_GOTO(srlm_llama_check_checkpoint(&ck), s, done);
done:
    free(all);
    srlm_ckpt_close(&ck);
    srlm_parsed_args_free(&args);
    return s;
}
