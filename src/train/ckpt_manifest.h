/* Integrity manifest of a trainer checkpoint folder (train/step-N/): the byte
 * size and sha256 of every file in it (the model's safetensors, config.json and
 * tokenizer, every rank's trainer-state file), so that a truncated or corrupted
 * checkpoint is detected on resume and not used.
 *
 * File: DIR/manifest.json, written last (atomically) into step-N.tmp before the
 * rename that makes the checkpoint visible:
 *   {"format": "srlm-checkpoint-manifest-1", "files": [
 *    {"path": "model/config.json", "bytes": 664, "sha256": "<64 hex>"}, ...]}
 * Paths are relative to DIR, sorted; names starting with '.' (temporary files)
 * and the manifest itself are not listed.
 *
 * Cost: every file is read and hashed in full once when the checkpoint is saved
 * and once when a run resumes from it (not at every load of the weights). The
 * files are spread over the ranks of the communicator (file i -> rank i % size),
 * so each rank hashes about 1/size of the checkpoint: for Llama-2-70B in fp32
 * (~280 GB of weights + ~560 GB of optimizer state) on 64 ranks, ~13 GB per rank.
 * A full hash is preferred over a partial one (first/last MiB): a flipped byte in
 * the middle of a shard is exactly what it must catch. */
#ifndef SRLM_CKPT_MANIFEST_H
#define SRLM_CKPT_MANIFEST_H

#include <stddef.h>

#include "core/status.h"
#include "dist/comm.h"

#define SRLM_CKPT_MANIFEST_NAME "manifest.json"

/* Collective over `world` (NULL: this process alone). Every rank must have
 * finished writing its files under DIR. Rank 0 lists DIR (recursively), the
 * ranks hash their share, and rank 0 writes DIR/manifest.json atomically. A file
 * that vanishes or cannot be read while being hashed fails the save (the same
 * status on every rank). */
srlm_status srlm_ckpt_manifest_write(srlm_comm *world, const char *dir);

/* Collective over `world`. *ok = 1 when DIR/manifest.json exists, is valid, and
 * every file it lists exists with its size and sha256; otherwise *ok = 0 and
 * `why` says what differs (the first problem, the file named by its path inside
 * DIR, and how many more),
 * the same text on every rank, so every rank decides the same. *bytes (may be
 * NULL) gets the bytes hashed by all ranks together. Returns SRLM_OK in both
 * cases; an error status only when the check itself cannot run (out of memory,
 * a failed collective). */
srlm_status srlm_ckpt_manifest_verify(srlm_comm *world, const char *dir, int *ok, char *why, size_t cap,
                                      double *bytes);

#endif
