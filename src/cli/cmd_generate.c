/* srlm generate: greedy decoding of one prompt with the KV cache. (Sampling,
 * batching many prompts from a file and continuous batching come with the
 * generation engine.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/model_session.h"
#include "core/log.h"
#include "generate/greedy.h"
#include "io/chat.h"

srlm_status cmd_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *tokenizer = NULL, *system = NULL;
    long max_new = 64, threads = 0;
    int chat = 0, print_ids = 0, ignore_eos = 0;
    const srlm_flag flags[] = {
        {"model", FLAG_STRING, &model, "DIR", "Hugging Face checkpoint folder", 1},
        {"prompt", FLAG_STRING, &prompt, "TEXT", "the prompt", 1},
        {"max-new-tokens", FLAG_INT, &max_new, "N", "tokens to generate at most (default 64)", 0},
        {"chat", FLAG_BOOL, &chat, NULL, "wrap the prompt in the Llama-2 chat format", 0},
        {"system", FLAG_STRING, &system, "TEXT", "system prompt (with --chat)", 0},
        {"tokenizer", FLAG_STRING, &tokenizer, "FILE", "SentencePiece model (default DIR/tokenizer.model)", 0},
        {"ignore-eos", FLAG_BOOL, &ignore_eos, NULL, "keep going after the end-of-sequence token", 0},
        {"print-ids", FLAG_BOOL, &print_ids, NULL, "print the generated token ids on a second line", 0},
        {"threads", FLAG_INT, &threads, "N", "CPU threads (default: all cores)", 0},
    };
    const srlm_command_spec spec = {"generate", NULL,
        "Greedy decoding (temperature 0) of one prompt; prints the continuation.",
        flags, SRLM_COUNT(flags), 0};
    srlm_parsed_args pa;
    SRLM_CHECK(srlm_parse_flags(&spec, argc, argv, &pa));
    srlm_parsed_args_free(&pa);
    if (pa.help_shown) return SRLM_OK;
    if (max_new < 1 || max_new > 1000000)
        return SRLM_ERR(SRLM_BAD_INPUT, "--max-new-tokens: expected 1 .. 1000000, found %ld", max_new);
    if (system && !chat)
        return SRLM_ERR(SRLM_BAD_INPUT, "--system only applies with --chat");

    srlm_model_session s;
    SRLM_CHECK(srlm_model_session_open(&s, model, tokenizer, 1, (int)threads));
    int *ids = NULL, n = 0;
    srlm_status st;
    if (chat) {
        srlm_chat_turn turn = {prompt, NULL};
        SRLM_CHECK_GOTO(srlm_chat_encode(s.tok, system, &turn, 1, &ids, &n), st, done);
    } else {
        SRLM_CHECK_GOTO(srlm_tokenizer_encode(s.tok, prompt, strlen(prompt), 1, 0, &ids, &n), st, done);
    }
    int max_pos = s.model.cfg.max_position_embeddings;
    if (n + max_new > max_pos)
        SRLM_WARN("prompt (%d tokens) + %ld new tokens exceed max_position_embeddings=%d of %s",
                  n, max_new, max_pos, model);
    srlm_greedy_opts opts = {(int)max_new, ignore_eos ? -1 : srlm_tokenizer_eos(s.tok)};
    srlm_greedy_result res;
    const int *prompts[1] = {ids};
    SRLM_CHECK_GOTO(srlm_generate_greedy(&s.model, prompts, &n, 1, &opts, &res), st, done);
    char *text = NULL;
    size_t len = 0;
    st = srlm_tokenizer_decode(s.tok, res.ids, res.n, &text, &len);
    if (st == SRLM_OK) {
        fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
        if (print_ids) {
            for (int i = 0; i < res.n; i++) printf("%s%d", i ? " " : "", res.ids[i]);
            fputc('\n', stdout);
        }
        free(text);
    }
    srlm_greedy_result_free(&res);
done:
    free(ids);
    srlm_model_session_close(&s);
    return st;
}
