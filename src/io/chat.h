/* The one chat formatter (DESIGN.md "Contracts / Files"): every prompt that SFT,
 * DPO, generation and judging show the model goes through here.
 *
 * Format: Llama-2 chat, exactly as Meta's reference tokenizes it
 * (meta-llama/llama, llama/generation.py, Llama.chat_completion; the Hugging
 * Face Llama-2-chat template produces the same ids):
 *
 *   B_INST, E_INST = "[INST]", "[/INST]"
 *   B_SYS,  E_SYS  = "<<SYS>>\n", "\n<</SYS>>\n\n"
 *   a system prompt is folded into the first user message:
 *       content_0 = B_SYS + system + E_SYS + user_0
 *   each answered turn:  encode(f"{B_INST} {content.strip()} {E_INST} {answer.strip()} ",
 *                               bos=True, eos=True)
 *   the last, open turn: encode(f"{B_INST} {content.strip()} {E_INST}", bos=True, eos=False)
 *
 * Each turn is encoded as its own piece of text, with BOS/EOS added as ids
 * (never as text). strip() is Python's str.strip(): Unicode whitespace at both
 * ends. Note that with a system prompt the strip applies to the whole folded
 * content, so the system text itself is not stripped (as in Meta's code).
 * Meta's check that user text contains no "[INST]"/"<<SYS>>" tags is not done
 * here; such text is simply encoded as text. */
#ifndef SRLM_CHAT_H
#define SRLM_CHAT_H

#include "core/status.h"
#include "io/tokenizer.h"

#define SRLM_CHAT_B_INST "[INST]"
#define SRLM_CHAT_E_INST "[/INST]"
#define SRLM_CHAT_B_SYS  "<<SYS>>\n"
#define SRLM_CHAT_E_SYS  "\n<</SYS>>\n\n"

typedef struct {
    const char *user;      /* required */
    const char *assistant; /* the answer; NULL for the last, open turn only */
} srlm_chat_turn;

/* Token ids of a dialog. `system` may be NULL (no <<SYS>> block; "" gives an
 * empty block, as in Meta's code). Every turn but the last must have an answer;
 * when the last has one too, the ids end with EOS (a closed dialog). *ids is
 * malloc'd; the caller frees it. */
srlm_status srlm_chat_encode(const srlm_tokenizer *tok, const char *system,
                             const srlm_chat_turn *turns, int n_turns, int **ids, int *n_ids);

/* One (prompt, answer) example for SFT/DPO, split so the trainer can mask the
 * prompt:
 *   prompt_ids   = srlm_chat_encode(system, {user, NULL})  -- BOS ... "[/INST]"
 *   response_ids = encode(answer.strip()) + [EOS]
 * which is how TRL/HF-style SFT and DPO tokenize a Llama-2 prompt and its
 * completion separately. Because SentencePiece starts every encoded text with
 * "▁", the answer's first piece carries the space Meta writes after "[/INST]",
 * so prompt ++ response equals Meta's closed turn
 *   encode(f"[INST] {user} [/INST] {answer}") + [EOS]
 * token for token, EXCEPT for the trailing space Meta writes before EOS: Meta's
 * closed turn (and srlm_chat_encode of a closed dialog) has one extra "▁" piece
 * (id 29871 in Llama-2) just before EOS; the response here does not, so the
 * model learns to stop right after the answer's last word. Both arrays are
 * malloc'd; the caller frees them. */
srlm_status srlm_chat_encode_pair(const srlm_tokenizer *tok, const char *system,
                                  const char *user, const char *answer, int **prompt_ids,
                                  int *n_prompt, int **response_ids, int *n_response);

/* Python str.strip() on UTF-8: sets [*begin, *end) to `s` (len bytes) without
 * leading and trailing Unicode whitespace. Exposed for callers that store the
 * stripped text next to the ids. */
void srlm_chat_strip(const char *s, size_t len, size_t *begin, size_t *end);

#endif
