/* The bookkeeping of a ring of host slots that small host arrays (an op's
 * token ids, positions, sequence slots and lengths) pass through on their way
 * to a device, each slot mirrored by one on the device: where the next arrays
 * go, where each array sits in its slot, and whether one of the last few
 * slots already holds exactly these arrays. A decode step stages the same
 * positions and sequence shapes for every layer (5 times a layer); the device
 * copy of the first can serve the others, since everything runs in one stream
 * order: a slot is rewritten only by a copy queued after every op that used it.
 *
 * No device calls here (the CUDA backend makes them: backend_cuda.c), so the
 * rules are tested on any machine (tests/unit/test_stage_ring.c). */
#ifndef SRLM_STAGE_RING_H
#define SRLM_STAGE_RING_H

#include <stddef.h>

enum {
    SRLM_STAGE_SLOTS = 32,    /* the host waits only for the copy made this many fills ago */
    SRLM_STAGE_MAX_IN = 6,    /* arrays per fill */
    SRLM_STAGE_WINDOW = 8,    /* recent slots searched for the same arrays */
    SRLM_STAGE_ALIGN = 256,   /* of every array in a slot: any kernel's vector loads are fine */
};

typedef struct {
    const void *src;
    size_t      bytes;
} srlm_stage_in;

typedef struct {
    char  *host;       /* SRLM_STAGE_SLOTS slots of slot_bytes, owned by the caller */
    size_t slot_bytes;
    int    next;       /* the slot the next fill takes */
    /* what each slot holds: n_in[k] arrays of bytes[k][i]; -1: nothing to share */
    int    n_in[SRLM_STAGE_SLOTS];
    size_t bytes[SRLM_STAGE_SLOTS][SRLM_STAGE_MAX_IN];
} srlm_stage_ring;

/* An empty ring over `host` (may be NULL while slot_bytes is 0). */
void srlm_stage_ring_init(srlm_stage_ring *r, char *host, size_t slot_bytes);
/* Where each of n arrays goes in a slot (off[i], aligned); returns the bytes
 * the slot needs (0 when every array is empty). off holds n entries. */
size_t srlm_stage_layout(const srlm_stage_in *in, int n, size_t *off);
/* The most recent of the last SRLM_STAGE_WINDOW filled slots holding exactly
 * these arrays (the same count, sizes and bytes), or -1. */
int srlm_stage_find(const srlm_stage_ring *r, const srlm_stage_in *in, int n);
/* Copy the arrays into slot r->next at the offsets of srlm_stage_layout,
 * remember them, advance next; returns the slot (-1, and nothing done, for n
 * outside [0, SRLM_STAGE_MAX_IN]). The caller first waits until the device has
 * copied that slot's previous contents, and has made the slots at least
 * srlm_stage_layout bytes. */
int srlm_stage_fill(srlm_stage_ring *r, const srlm_stage_in *in, int n);
/* Slot k holds nothing to share (its copy to the device failed). */
void srlm_stage_forget(srlm_stage_ring *r, int k);

#endif
