/* Run-directory artifacts: SHA-256 against FIPS 180-4 vectors (and the
 * sha256sum tool where it exists), parts written with checksummed sidecars,
 * corruption and truncation detected, loading in item order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/sha256.h"
#include "io/fsutil.h"
#include "pipeline/parts.h"
#include "test.h"

static void check_vectors(void) {
    const struct { const char *in; const char *hex; } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char hex[65];
        srlm_sha256_hex(v[i].in, strlen(v[i].in), hex);
        CHECK_MSG(!strcmp(hex, v[i].hex), "sha256(\"%s\") = %s", v[i].in, hex);
    }
    /* a million 'a', fed in uneven pieces: the streaming path and the padding
     * at every block offset */
    srlm_sha256 s;
    srlm_sha256_init(&s);
    char a[1000];
    memset(a, 'a', sizeof a);
    size_t fed = 0;
    for (size_t k = 1; fed < 1000000; k = k % 997 + 1) {
        size_t n = 1000000 - fed < k ? 1000000 - fed : k;
        srlm_sha256_update(&s, a, n);
        fed += n;
    }
    uint8_t d[32];
    char hex[65];
    srlm_sha256_final(&s, d);
    srlm_sha256_digest_hex(d, hex);
    CHECK_MSG(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "1e6 x 'a': %s", hex);
}

/* Lengths around the 55/56/64-byte padding edges, against sha256sum. */
static void check_against_tool(const char *tmp) {
    if (system("command -v sha256sum > /dev/null 2>&1") != 0) { printf("sha256sum not found: tool comparison skipped\n"); return; }
    char path[512], cmd[700], buf[200];
    snprintf(path, sizeof path, "%s/sha_in", tmp);
    for (int len = 50; len <= 130; len++) {
        char data[200];
        for (int i = 0; i < len; i++) data[i] = (char)('A' + (i * 7 + len) % 50);
        FILE *f = fopen(path, "wb");
        fwrite(data, 1, (size_t)len, f);
        fclose(f);
        snprintf(cmd, sizeof cmd, "sha256sum %s", path);
        FILE *p = popen(cmd, "r");
        CHECK(p && fgets(buf, sizeof buf, p));
        if (p) pclose(p);
        char hex[65];
        srlm_sha256_hex(data, (size_t)len, hex);
        CHECK_MSG(!strncmp(hex, buf, 64), "length %d: %s vs %.64s", len, hex, buf);
    }
}

static void check_parts(const char *tmp) {
    char dir[512], path[700];
    snprintf(dir, sizeof dir, "%s/parts", tmp);
    CHECK_OK(srlm_remove_tree(dir));
    CHECK_OK(srlm_mkdir_p(dir));
    /* items written out of order load in item order */
    const char *text[3] = {"{\"i\":0}\n{\"i\":1}\n", "{\"i\":2}\n", "{\"i\":3}\n{\"i\":4}\n{\"i\":5}\n"};
    const int order[3] = {2, 0, 1};
    for (int k = 0; k < 3; k++) {
        int i = order[k];
        CHECK_OK(srlm_part_path(path, sizeof path, dir, i));
        CHECK(!srlm_artifact_done(path));
        CHECK_OK(srlm_artifact_write(path, text[i], strlen(text[i]), i == 2 ? 3 : i == 0 ? 2 : 1));
        CHECK(srlm_artifact_done(path));
    }
    cJSON **r;
    int n;
    CHECK_OK(srlm_parts_load(dir, 3, &r, &n));
    CHECK(n == 6);
    for (int i = 0; i < n; i++) CHECK(cJSON_GetObjectItem(r[i], "i")->valueint == i);
    srlm_records_free(r, n);
    long count = -1;
    CHECK_OK(srlm_part_path(path, sizeof path, dir, 2));
    CHECK_OK(srlm_artifact_verify(path, &count));
    CHECK(count == 3);

    /* a changed byte, a truncation, a missing sidecar: never taken as complete */
    FILE *f = fopen(path, "r+b");
    fseek(f, 3, SEEK_SET);
    fputc('7', f);
    fclose(f);
    CHECK(srlm_artifact_verify(path, NULL) == SRLM_BAD_INPUT);
    CHECK(strstr(srlm_last_error(), "does not match its sidecar") != NULL);
    CHECK(strstr(srlm_last_error(), "part-00002.jsonl") != NULL);
    CHECK_OK(srlm_part_path(path, sizeof path, dir, 0));
    CHECK(truncate(path, 5) == 0);
    CHECK(srlm_artifact_verify(path, NULL) == SRLM_BAD_INPUT);
    CHECK_OK(srlm_artifact_remove(path));
    CHECK(!srlm_artifact_done(path) && !srlm_path_exists(path));
    CHECK(srlm_parts_load(dir, 3, &r, &n) == SRLM_BAD_INPUT);
    CHECK(strstr(srlm_last_error(), "not complete") != NULL);
    /* a sidecar that is not ours */
    CHECK_OK(srlm_part_path(path, sizeof path, dir, 1));
    char side[800];
    snprintf(side, sizeof side, "%s.done", path);
    CHECK_OK(srlm_write_file_atomic(side, "{\"count\": 1}\n", 13));
    CHECK(srlm_artifact_verify(path, NULL) == SRLM_BAD_INPUT);
    CHECK(strstr(srlm_last_error(), "expected {\"count\"") != NULL);
    /* a malformed line is reported with the file and line */
    CHECK_OK(srlm_part_path(path, sizeof path, dir, 4));
    CHECK_OK(srlm_artifact_write(path, "{\"i\":1}\n{oops\n", 14, 2));
    CHECK(srlm_records_load(path, &r, &n) == SRLM_BAD_INPUT);
    CHECK(strstr(srlm_last_error(), "part-00004.jsonl:2") != NULL);
    /* loading checks the bytes against the sidecar: one changed byte is named */
    CHECK_OK(srlm_part_path(path, sizeof path, dir, 5));
    CHECK_OK(srlm_artifact_write(path, "{\"i\":1}\n{\"i\":2}\n", 16, 2));
    CHECK_OK(srlm_records_load(path, &r, &n));
    CHECK(n == 2);
    srlm_records_free(r, n);
    FILE *part = fopen(path, "r+");
    CHECK(part != NULL);
    if (part) { fseek(part, 6, SEEK_SET); fputc('7', part); fclose(part); }
    CHECK(srlm_records_load(path, &r, &n) == SRLM_BAD_INPUT);
    CHECK_MSG(strstr(srlm_last_error(), "does not match its sidecar") != NULL, "message: %s", srlm_last_error());
    /* and the record count against the sidecar's */
    CHECK_OK(srlm_artifact_write(path, "{\"i\":1}\n{\"i\":2}\n", 16, 3));
    CHECK(srlm_records_load(path, &r, &n) == SRLM_BAD_INPUT);
    CHECK_MSG(strstr(srlm_last_error(), "2 records, but its sidecar says 3") != NULL, "message: %s", srlm_last_error());
}

/* A killed writer's temporary files go, in every subfolder; nothing else does,
 * not even names that only look alike. */
static void check_leftovers(const char *tmp) {
    char dir[512], path[800];
    snprintf(dir, sizeof dir, "%s/leftovers", tmp);
    CHECK_OK(srlm_remove_tree(dir));
    snprintf(path, sizeof path, "%s/iter-1/prompts", dir);
    CHECK_OK(srlm_mkdir_p(path));
    const char *stale[] = {".state.json.tmp-Ab12Cd", "iter-1/.summary.json.tmp-x0x0x0",
                           "iter-1/prompts/.prompts.jsonl.tmp-Zz99Yy"};
    const char *kept[] = {"state.json", "iter-1/prompts/prompts.jsonl", ".hidden", "notes.tmp-abcdef",
                          ".a.tmp-short", "iter-1/.b.tmp-toolong1"};
    for (size_t i = 0; i < sizeof stale / sizeof *stale; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, stale[i]);
        CHECK_OK(srlm_write_file_atomic(path, "{\"half", 6));
    }
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, kept[i]);
        CHECK_OK(srlm_write_file_atomic(path, "{}\n", 3));
    }
    /* and one made by the writer itself, left open as a killed one would */
    srlm_atomic_file f;
    snprintf(path, sizeof path, "%s/iter-1/prompts/part-00000.jsonl", dir);
    CHECK_OK(srlm_atomic_open(&f, path));
    CHECK_OK(srlm_atomic_write(&f, "{", 1));
    char made[1100];
    snprintf(made, sizeof made, "%s", f.tmp);
    close(f.fd);
    const int removed = srlm_remove_atomic_leftovers(dir);
    CHECK_MSG(removed == 4, "removed %d temporary files, expected 4", removed);
    CHECK_MSG(!srlm_path_exists(made), "%s still there", made);
    for (size_t i = 0; i < sizeof stale / sizeof *stale; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, stale[i]);
        CHECK_MSG(!srlm_path_exists(path), "%s still there", stale[i]);
    }
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, kept[i]);
        CHECK_MSG(srlm_path_exists(path), "%s removed", kept[i]);
    }
    CHECK(srlm_remove_atomic_leftovers(dir) == 0);
    CHECK_OK(srlm_remove_tree(dir));
}

int main(void) {
    const char *tmp = getenv("SRLM_TMP") ? getenv("SRLM_TMP") : "/tmp";
    CHECK_OK(srlm_mkdir_p(tmp));
    check_vectors();
    check_against_tool(tmp);
    check_parts(tmp);
    check_leftovers(tmp);
    TEST_DONE();
}
