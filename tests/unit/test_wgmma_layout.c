/* The Hopper attention kernels' shared-memory tiles and wgmma descriptors
 * (kernels/attention_sm90_layout.h) against the PTX ISA's canonical layouts
 * for the 128-byte swizzle, on the CPU: for every operand the kernels hand to
 * wgmma, each element the instruction reads (start, leading and stride
 * offsets decoded from the descriptor as the hardware reads them, the swizzle
 * applied to the absolute address) must be the element the tile loader put
 * there. The kernels' operands (attention_sm90.cu, attention_bwd_sm90.cu):
 *   K-major, 64 rows from row 0 or 64 of a 128-row tile: Q and dO as A (the
 *     forward and dq, one warpgroup each half);
 *   K-major, 64 rows of a 64-row tile: K and V as B (forward, dq), K and V as
 *     A and Q and dO as B (dkdv);
 *   N-major, 64 rows (K) by head_dim (N): V (forward), dO and Q (dkdv), K (dq).
 * Canonical layouts (K-major: 8 rows of 128 bytes per 1024-byte group, groups
 * at the stride offset, 16 K elements = 32 bytes of a row; N-major: 64 N
 * elements contiguous, N blocks of 64 at the leading offset, 8 K rows of 128
 * bytes per group, groups at the stride offset), in bytes:
 *   K-major  (m, k): start + (m % 8) 128 + (m / 8) SBO + 2 k
 *   N-major  (k, n): start + 2 (n % 64) + (n / 64) LBO + (k % 8) 128 + (k / 8) SBO
 * then the swizzle: address bits 4-6 XOR bits 7-9. This checks our arithmetic
 * against that reading of the ISA; whether the hardware reads it so is
 * test_attention_gpu's question, on an H100. */
#include <string.h>

#include "attention_sm90_layout.h"
#include "test.h"

static uint32_t swizzle(uint32_t a) { return a ^ (((a >> 7) & 7u) << 4); }

typedef struct {
    uint32_t start, lead, stride;
} desc_fields;

static desc_fields decode(uint64_t d) {
    CHECK((d >> 62) == 1);              /* 128-byte swizzle */
    CHECK(((d >> 49) & 7u) == 0);       /* base offset 0: bases 1024-aligned */
    desc_fields f = {(uint32_t)(d & 0x3FFFu) << 4, (uint32_t)((d >> 16) & 0x3FFFu) << 4,
                     (uint32_t)((d >> 32) & 0x3FFFu) << 4};
    return f;
}

/* where the loader put element (r, col) of a tile */
static uint32_t placed(uint32_t tile, int rows, int r, int col) {
    return tile + srlm_sw128_offset(rows, r, col / 8) + (uint32_t)(col % 8) * 2;
}

/* A K-major operand of 64 rows from row0 of a `rows`-row tile, every step. */
static int check_k_major(uint32_t tile, int rows, int row0, int hd) {
    int bad = 0;
    for (int kk = 0; kk < hd / 16; kk++) {
        desc_fields f = decode(srlm_sw128_desc_k_major(tile, rows, row0, kk));
        for (int m = 0; m < 64; m++)
            for (int k = 0; k < 16; k++) {
                uint32_t read = swizzle(f.start + (uint32_t)(m % 8) * 128 + (uint32_t)(m / 8) * f.stride + 2u * k);
                bad += read != placed(tile, rows, row0 + m, 16 * kk + k);
            }
    }
    return bad;
}

/* An N-major B: K = 16 rows a step of a `rows`-row tile, N = hd columns. */
static int check_n_major(uint32_t tile, int rows, int hd) {
    int bad = 0;
    for (int kk = 0; kk < rows / 16; kk++) {
        desc_fields f = decode(srlm_sw128_desc_n_major(tile, rows, kk));
        for (int k = 0; k < 16; k++)
            for (int n = 0; n < hd; n++) {
                uint32_t read = swizzle(f.start + 2u * (n % 64) + (uint32_t)(n / 64) * f.lead +
                                        (uint32_t)(k % 8) * 128 + (uint32_t)(k / 8) * f.stride);
                bad += read != placed(tile, rows, 16 * kk + k, n);
            }
    }
    return bad;
}

int main(void) {
    const uint32_t base = 3 * 1024; /* any 1024-byte aligned tile base */
    for (int hd = 64; hd <= 128; hd += 64) {
        const int failures_before = test_failures;
        /* the loader fills each tile exactly: a bijection onto rows * hd * 2 bytes */
        for (int rows = 64; rows <= 128; rows += 64) {
            const size_t bytes = (size_t)rows * hd * 2;
            unsigned char *seen = calloc(bytes, 1);
            int dup = 0, out = 0;
            for (int r = 0; r < rows; r++)
                for (int col = 0; col < hd; col++) {
                    uint32_t o = placed(0, rows, r, col);
                    if (o + 2 > bytes) { out++; continue; }
                    dup += seen[o] || seen[o + 1];
                    seen[o] = seen[o + 1] = 1;
                }
            CHECK_MSG(dup == 0 && out == 0, "hd %d rows %d: %d overlapping, %d outside", hd, rows, dup, out);
            free(seen);
        }
        int bad;
        for (int row0 = 0; row0 <= 64; row0 += 64) {
            bad = check_k_major(base, 128, row0, hd);
            CHECK_MSG(bad == 0, "K-major A, 128-row tile from row %d, hd %d: %d elements read from elsewhere", row0,
                      hd, bad);
        }
        bad = check_k_major(base, 64, 0, hd);
        CHECK_MSG(bad == 0, "K-major, 64-row tile, hd %d: %d elements read from elsewhere", hd, bad);
        bad = check_n_major(base, 64, hd);
        CHECK_MSG(bad == 0, "N-major B, 64-row tile, hd %d: %d elements read from elsewhere", hd, bad);
        if (test_failures == failures_before)
            printf("hd %d: the loader's tiles and every descriptor agree with the canonical layouts\n", hd);
    }
    /* the descriptor's fields land where the ISA puts them */
    const uint64_t d = srlm_sw128_desc(0x12340, 0x800, 0x400);
    CHECK((d & 0x3FFFu) == 0x1234 && ((d >> 16) & 0x3FFFu) == 0x80 && ((d >> 32) & 0x3FFFu) == 0x40 && (d >> 62) == 1);
    TEST_DONE();
}
