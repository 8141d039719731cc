/* Token ids -> text (srlm_tokenizer_decode) with the fixture tokenizer
 * (tests/fixtures/llama/tiny-gqa/tokenizer.model, 320 pieces). The ids are the
 * input's bytes read as little-endian int32s, out-of-range and negative ones
 * included. Invariants: an id outside [0, vocab) is SRLM_BAD_INPUT naming that
 * id; otherwise the text is NUL-terminated at *len; srlm_tokenizer_piece and
 * _is_control answer "" and 0 outside the vocab. The input bytes as text are
 * also encoded: the ids are inside the vocab, and when the text is well-formed
 * UTF-8 without NUL, "▁" or the extra spaces the fixture's normalizer removes,
 * decoding gives it back byte for byte (tokenizer.h). */
#include "fuzz_util.h"

/* Well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF), no NUL. */
static int valid_utf8(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!k || c == 0 || i + k > n) return 0;
        uint32_t cp = k == 1 ? c : k == 2 ? c & 0x1F : k == 3 ? c & 0x0F : c & 0x07;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    srlm_tokenizer *tok = fuzz_tokenizer();
    int vocab = srlm_tokenizer_vocab_size(tok);
    int n = (int)(size / 4);
    int *ids = malloc(sizeof(int) * (size_t)(n ? n : 1));
    if (!ids) abort();
    int bad = -1;
    for (int i = 0; i < n; i++) {
        uint32_t u = (uint32_t)data[4 * i] | (uint32_t)data[4 * i + 1] << 8 | (uint32_t)data[4 * i + 2] << 16 |
                     (uint32_t)data[4 * i + 3] << 24;
        ids[i] = (int)u;
        if (bad < 0 && (ids[i] < 0 || ids[i] >= vocab)) bad = i;
        const char *piece = srlm_tokenizer_piece(tok, ids[i]);
        int ctl = srlm_tokenizer_is_control(tok, ids[i]);
        if (ids[i] < 0 || ids[i] >= vocab) FUZZ_CHECK(!*piece && !ctl, "id %d outside the vocab has a piece", ids[i]);
        else FUZZ_CHECK(*piece || ctl, "id %d has no piece", ids[i]);
    }
    char *text = NULL;
    size_t len = 12345;
    srlm_clear_error();
    srlm_status s = srlm_tokenizer_decode(tok, ids, n, &text, &len);
    if (bad >= 0) {
        FUZZ_CHECK(s == SRLM_BAD_INPUT && text == NULL, "id %d at %d: status %d", ids[bad], bad, (int)s);
        char want[64];
        snprintf(want, sizeof want, "token id %d at position %d", ids[bad], bad);
        fuzz_check_failure(s, want);
    } else {
        FUZZ_CHECK(s == SRLM_OK && text && text[len] == '\0', "decode of valid ids: status %d: %s", (int)s,
                   srlm_last_error());
    }
    free(text);
    free(ids);

    int *enc = NULL, n_enc = 0;
    s = srlm_tokenizer_encode(tok, (const char *)data, size, 1, 1, &enc, &n_enc);
    FUZZ_CHECK(s == SRLM_OK && enc && n_enc >= 2, "encode: status %d: %s", (int)s, srlm_last_error());
    for (int i = 0; i < n_enc; i++) FUZZ_CHECK(enc[i] >= 0 && enc[i] < vocab, "encoded id %d", enc[i]);
    FUZZ_CHECK(srlm_tokenizer_decode(tok, enc, n_enc, &text, &len) == SRLM_OK && text[len] == '\0',
               "decoding encoded text: %s", srlm_last_error());
    /* tokenizer.h: decode(encode(x)) == x byte for byte (BOS/EOS decode to nothing),
     * but for "▁" (U+2581), which comes back as a space. The fixture was trained
     * with SentencePiece's default remove_extra_whitespaces (Llama-2's is off), so
     * leading, trailing and repeated spaces are not kept either. */
    int spaces = size && (data[0] == ' ' || data[size - 1] == ' ');
    for (size_t i = 1; i < size && !spaces; i++) spaces = data[i] == ' ' && data[i - 1] == ' ';
    for (size_t i = 2; i < size && !spaces; i++) spaces = data[i - 2] == 0xE2 && data[i - 1] == 0x96 && data[i] == 0x81;
    if (valid_utf8(data, size) && !spaces)
        FUZZ_CHECK(len == size && !memcmp(text, data, size), "decode(encode(x)) != x: %zu bytes back from %zu", len,
                   size);
    free(text);
    free(enc);
    return 0;
}
