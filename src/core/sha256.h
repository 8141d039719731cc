/* SHA-256 (FIPS 180-4), for the checksums of run-directory parts and the
 * tokenizer fingerprint in pairs files. Streaming: init, update*, final. */
#ifndef SRLM_SHA256_H
#define SRLM_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t n_bytes;
    uint8_t  block[64];
    size_t   used;
} srlm_sha256;

void srlm_sha256_init(srlm_sha256 *s);
void srlm_sha256_update(srlm_sha256 *s, const void *data, size_t n);
void srlm_sha256_final(srlm_sha256 *s, uint8_t digest[32]);

/* One-shot digest as 64 lowercase hex characters plus NUL. */
void srlm_sha256_hex(const void *data, size_t n, char hex[65]);
void srlm_sha256_digest_hex(const uint8_t digest[32], char hex[65]);

#endif
