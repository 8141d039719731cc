#include "backend/stage_ring.h"

#include <string.h>

static size_t align_up(size_t n) { return (n + SRLM_STAGE_ALIGN - 1) / SRLM_STAGE_ALIGN * SRLM_STAGE_ALIGN; }

void srlm_stage_ring_init(srlm_stage_ring *r, char *host, size_t slot_bytes) {
    memset(r, 0, sizeof *r);
    r->host = host;
    r->slot_bytes = slot_bytes;
    for (int k = 0; k < SRLM_STAGE_SLOTS; k++) r->n_in[k] = -1;
}

size_t srlm_stage_layout(const srlm_stage_in *in, int n, size_t *off) {
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        off[i] = total;
        total += align_up(in[i].bytes);
    }
    return total;
}

static int holds(const srlm_stage_ring *r, int k, const srlm_stage_in *in, int n) {
    if (r->n_in[k] != n) return 0;
    for (int i = 0; i < n; i++)
        if (r->bytes[k][i] != in[i].bytes) return 0;
    size_t off[SRLM_STAGE_MAX_IN];
    srlm_stage_layout(in, n, off);
    const char *slot = r->host + (size_t)k * r->slot_bytes;
    for (int i = 0; i < n; i++)
        if (in[i].bytes && memcmp(slot + off[i], in[i].src, in[i].bytes) != 0) return 0;
    return 1;
}

int srlm_stage_find(const srlm_stage_ring *r, const srlm_stage_in *in, int n) {
    if (n < 0 || n > SRLM_STAGE_MAX_IN) return -1;
    for (int w = 1; w <= SRLM_STAGE_WINDOW; w++) {
        const int k = (r->next - w + SRLM_STAGE_SLOTS) % SRLM_STAGE_SLOTS;
        if (holds(r, k, in, n)) return k;
    }
    return -1;
}

int srlm_stage_fill(srlm_stage_ring *r, const srlm_stage_in *in, int n) {
    if (n < 0 || n > SRLM_STAGE_MAX_IN) return -1;
    const int k = r->next;
    size_t off[SRLM_STAGE_MAX_IN];
    srlm_stage_layout(in, n, off);
    char *slot = r->host + (size_t)k * r->slot_bytes;
    for (int i = 0; i < n; i++) {
        if (in[i].bytes) memcpy(slot + off[i], in[i].src, in[i].bytes);
        r->bytes[k][i] = in[i].bytes;
    }
    r->n_in[k] = n;
    r->next = (k + 1) % SRLM_STAGE_SLOTS;
    return k;
}

void srlm_stage_forget(srlm_stage_ring *r, int k) {
    if (k >= 0 && k < SRLM_STAGE_SLOTS) r->n_in[k] = -1;
}
