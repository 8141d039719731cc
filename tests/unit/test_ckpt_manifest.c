/* Checkpoint manifests (train/ckpt_manifest.h), on one rank: the manifest of a
 * folder with a subfolder lists every file with its size and sha256 (checked
 * against the one-shot digest), skips dot-files and itself; verification passes
 * on the untouched folder and names the file and what differs for a changed
 * byte, a truncated file, a missing file, a missing, malformed or escaping
 * manifest, and counts further problems. */
#include <string.h>
#include <unistd.h>

#include "core/sha256.h"
#include "io/fsutil.h"
#include "train/ckpt_manifest.h"
#include "test.h"

static char g_dir[900];

static void put(const char *rel, const void *data, size_t n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", g_dir, rel);
    CHECK_OK(srlm_write_file_atomic(path, data, n));
}

/* *ok and why after verifying g_dir. */
static int verify(char *why, size_t cap) {
    int ok = -1;
    double bytes = -1;
    CHECK_OK(srlm_ckpt_manifest_verify(NULL, g_dir, &ok, why, cap, &bytes));
    CHECK(ok == 0 || ok == 1);
    CHECK(bytes >= 0);
    return ok;
}

#define CHECK_BAD(want)                                                                          \
    do {                                                                                         \
        char why_[2048];                                                                         \
        int ok_ = verify(why_, sizeof why_);                                                     \
        CHECK_MSG(!ok_ && strstr(why_, (want)), "ok %d, why '%s', wanted '%s'", ok_, why_, want); \
    } while (0)

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/test_ckpt_manifest/step-00000007", test_env("SRLM_TMP", "/tmp"));
    CHECK_OK(srlm_remove_tree(g_dir));
    char sub[1000];
    snprintf(sub, sizeof sub, "%s/model", g_dir);
    CHECK_OK(srlm_mkdir_p(sub));

    enum { BIG = (4 << 20) + 12345 }; /* more than one read chunk (4 MiB) */
    unsigned char *big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++) big[i] = (unsigned char)(i * 2654435761u >> 13);
    put("model/model.safetensors", big, BIG);
    put("model/config.json", "{}\n", 3);
    put("trainer-state-rank-0.safetensors", "", 0); /* an empty file is a file */
    put(".hidden.tmp-abc", "x", 1);                 /* a temporary file: not listed */

    CHECK_OK(srlm_ckpt_manifest_write(NULL, g_dir));
    char mpath[1200];
    snprintf(mpath, sizeof mpath, "%s/manifest.json", g_dir);
    size_t mlen = 0;
    char *m = test_read_file(mpath, &mlen);
    CHECK(m != NULL);
    if (m) {
        char hex[65], want[300];
        srlm_sha256_hex(big, BIG, hex);
        snprintf(want, sizeof want, "{\"path\": \"model/model.safetensors\", \"bytes\": %d, \"sha256\": \"%s\"}",
                 (int)BIG, hex);
        CHECK_MSG(strstr(m, want) != NULL, "manifest lacks %s:\n%s", want, m);
        srlm_sha256_hex("", 0, hex);
        snprintf(want, sizeof want, "{\"path\": \"trainer-state-rank-0.safetensors\", \"bytes\": 0, \"sha256\": \"%s\"}",
                 hex);
        CHECK_MSG(strstr(m, want) != NULL, "manifest lacks %s:\n%s", want, m);
        CHECK(!strstr(m, "hidden") && !strstr(m, "\"manifest.json\""));
        /* sorted: model/config.json, model/model.safetensors, trainer-state-... */
        char *a = strstr(m, "model/config.json"), *b = strstr(m, "model/model.safetensors"),
             *c = strstr(m, "trainer-state-rank-0");
        CHECK(a && b && c && a < b && b < c);
    }
    char why[2048];
    CHECK(verify(why, sizeof why) == 1);
    /* a second write gives the same manifest (the old one is not listed) */
    CHECK_OK(srlm_ckpt_manifest_write(NULL, g_dir));
    size_t mlen2 = 0;
    char *m2 = test_read_file(mpath, &mlen2);
    CHECK(m && m2 && mlen == mlen2 && !memcmp(m, m2, mlen));
    free(m2);

    /* one byte changed in the middle: same size, another digest */
    big[BIG / 2] ^= 0x01;
    put("model/model.safetensors", big, BIG);
    CHECK_BAD("model/model.safetensors: sha256 ");
    CHECK_BAD("differs from the manifest's");
    big[BIG / 2] ^= 0x01;
    put("model/model.safetensors", big, BIG);
    CHECK(verify(why, sizeof why) == 1);

    /* truncated */
    put("model/model.safetensors", big, BIG - 1);
    char want[200];
    snprintf(want, sizeof want, "model/model.safetensors has %d bytes, the manifest says %d", BIG - 1, BIG);
    CHECK_BAD(want);
    /* ... and a second problem is counted */
    put("trainer-state-rank-0.safetensors", "y", 1);
    CHECK_BAD("; and 1 more file(s) differ");
    put("model/model.safetensors", big, BIG);
    put("trainer-state-rank-0.safetensors", "", 0);
    CHECK(verify(why, sizeof why) == 1);

    /* a listed file missing; an extra file is fine */
    char path[1200];
    snprintf(path, sizeof path, "%s/model/config.json", g_dir);
    CHECK(unlink(path) == 0);
    CHECK_BAD("model/config.json is missing (the manifest lists it with 3 bytes)");
    put("model/config.json", "{}\n", 3);
    put("extra.txt", "not listed", 10);
    CHECK(verify(why, sizeof why) == 1);

    /* the manifest itself: missing, malformed, escaping the folder */
    CHECK(m != NULL);
    CHECK(unlink(mpath) == 0);
    CHECK_BAD("manifest.json is missing (it is written last");
    put("manifest.json", "{\"format\": \"srlm-checkpoint-manifest-1\", \"files\": [", 51);
    CHECK_BAD("manifest.json is not a valid checkpoint manifest");
    put("manifest.json", "{\"format\": \"srlm-checkpoint-manifest-1\", \"files\": []}", 53);
    CHECK_BAD("manifest.json is not a valid checkpoint manifest");
    const char *escaping = "{\"format\": \"srlm-checkpoint-manifest-1\", \"files\": [{\"path\": \"model/../../x\", "
                           "\"bytes\": 1, \"sha256\": \"0000000000000000000000000000000000000000000000000000000000000000\"}]}";
    put("manifest.json", escaping, strlen(escaping));
    CHECK_BAD("manifest.json: entry 1 of \"files\" is not {\"path\": relative path");
    const char *neg = "{\"format\": \"srlm-checkpoint-manifest-1\", \"files\": [{\"path\": \"extra.txt\", "
                      "\"bytes\": -1, \"sha256\": \"0000000000000000000000000000000000000000000000000000000000000000\"}]}";
    put("manifest.json", neg, strlen(neg));
    CHECK_BAD("manifest.json: entry 1 of \"files\"");
    if (m) put("manifest.json", m, mlen);
    CHECK(verify(why, sizeof why) == 1);

    free(m);
    free(big);
    CHECK_OK(srlm_remove_tree(g_dir));
    TEST_DONE();
}
