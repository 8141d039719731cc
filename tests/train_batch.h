/* The training fixture batch (tests/fixtures/train/<case>/batch.json, written
 * by make_train_fixtures.py): right-padded ids, lengths and prompt lengths.
 * Shared by the single-rank and the MPI gradient tests. */
#ifndef SRLM_TEST_TRAIN_BATCH_H
#define SRLM_TEST_TRAIN_BATCH_H

#include <cjson/cJSON.h>
#include <stdlib.h>

#include "test.h"

typedef struct {
    int B, T, *ids, *len, *plen;
} batch_data;

static inline int load_train_batch(const char *path, batch_data *bd) {
    char *text = test_read_file(path, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!j) return 0;
    const cJSON *ids = cJSON_GetObjectItem(j, "ids");
    bd->B = cJSON_GetArraySize(ids);
    bd->T = cJSON_GetArraySize(cJSON_GetArrayItem(ids, 0));
    bd->ids = malloc(sizeof(int) * (size_t)bd->B * bd->T);
    bd->len = malloc(sizeof(int) * (size_t)bd->B);
    bd->plen = malloc(sizeof(int) * (size_t)bd->B);
    for (int b = 0; b < bd->B; b++) {
        for (int t = 0; t < bd->T; t++)
            bd->ids[b * bd->T + t] = cJSON_GetArrayItem(cJSON_GetArrayItem(ids, b), t)->valueint;
        bd->len[b] = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "lengths"), b)->valueint;
        bd->plen[b] = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "prompt_lengths"), b)->valueint;
    }
    cJSON_Delete(j);
    return 1;
}

static inline void free_train_batch(batch_data *bd) {
    free(bd->ids);
    free(bd->len);
    free(bd->plen);
}

#endif
