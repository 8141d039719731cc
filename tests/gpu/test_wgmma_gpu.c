/* The wgmma building blocks of the Hopper attention kernels
 * (kernels/wgmma_probe.h) against products on the CPU, on random bf16 inputs,
 * outputs poisoned first: head dim 64 and 128, an A tile of 128 rows (two
 * warpgroups, the second from row 64: the forward's and dq's Q) and of 64
 * rows (one warpgroup: dk/dv's K and V). Skipped without a GPU, and on a GPU
 * that does not run the sm_90a image (anything but compute capability 9.0).
 *
 * What each check isolates (run it before test_attention_gpu when that
 * fails with the wgmma kernels on and passes with them off):
 *  - c = a b^T: the swizzled tile loads, the proxy fence, the K-major
 *    descriptors and the accumulator layout;
 *  - d = bf16(c) v, the reference built from the GPU's own c: the register A
 *    operand (pack_a) and the N-major descriptor, apart from the first check.
 * A wrong element is looked up in the whole reference: "c[5][9] holds
 * ref[5][17]" names a layout mistake where a bare error would not.
 *
 * Tolerance, relative norm-wise, 1e-4 for both: the inputs are bf16, so every
 * product is exact in fp32 and only the fp32 sums of 64 or 128 terms round
 * (a few 1e-7 relative); a layout mistake moves whole elements (error ~1). */
#include "attention.h"
#include "gpu_util.h"
#include "wgmma_probe.h"

/* ref = x y^T (x: n x k, y: m x k), in double, stored fp32 */
static void product_abt(float *ref, const float *x, const float *y, int n, int m, int k) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) {
            double acc = 0;
            for (int t = 0; t < k; t++) acc += (double)x[i * k + t] * y[j * k + t];
            ref[i * m + j] = (float)acc;
        }
}

/* ref = x y (x: n x k, y: k x m) */
static void product_ab(float *ref, const float *x, const float *y, int n, int m, int k) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) {
            double acc = 0;
            for (int t = 0; t < k; t++) acc += (double)x[i * k + t] * y[t * m + j];
            ref[i * m + j] = (float)acc;
        }
}

/* Checks got against ref (rows x cols); on failure, says how many elements
 * are off and where the first of them came from. */
static void compare(const char *what, const float *got, const float *ref, int rows, int cols) {
    const double e = rel_err(got, ref, rows, cols, cols);
    CHECK_MSG(e <= 1e-4, "%s: relative error %.3g (tolerance 1e-4)", what, e);
    if (e <= 1e-4) {
        printf("%s: relative error %.2e\n", what, e);
        return;
    }
    double rms = 0;
    for (int i = 0; i < rows * cols; i++) rms += (double)ref[i] * ref[i];
    const double slack = 1e-3 * sqrt(rms / (rows * cols));
    int off = 0, first = -1;
    for (int i = 0; i < rows * cols; i++)
        if (!(fabs((double)got[i] - ref[i]) <= slack)) {
            off++;
            if (first < 0) first = i;
        }
    printf("  %s: %d of %d elements off", what, off, rows * cols);
    if (first < 0) {
        printf("\n");
        return;
    }
    const int r = first / cols, col = first % cols;
    printf("; [%d][%d] = %g, expected %g", r, col, got[first], ref[first]);
    for (int i = 0; i < rows * cols; i++)
        if (fabs((double)got[first] - ref[i]) <= slack) {
            printf(", which is ref[%d][%d]", i / cols, i % cols);
            break;
        }
    printf("\n");
}

static void run_case(int hd, int a_rows, uint64_t seed) {
    const size_t na = (size_t)a_rows * hd, nb = (size_t)64 * hd;
    float *a = random_f32(na, seed, 0.0f, 1.0f, SRLM_BF16), *b = random_f32(nb, seed + 1, 0.0f, 1.0f, SRLM_BF16),
          *v = random_f32(nb, seed + 2, 0.0f, 1.0f, SRLM_BF16);
    void *da = gpu_from_f32(a, na, SRLM_BF16), *db = gpu_from_f32(b, nb, SRLM_BF16),
         *dv = gpu_from_f32(v, nb, SRLM_BF16);
    float *dc = gpu_poisoned((size_t)a_rows * 64 * 4), *dd = gpu_poisoned(na * 4);
    CHECK_OK(srlm_cuda_wgmma_probe(hd, a_rows, da, db, dv, dc, dd, NULL));
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    float *c = gpu_to_f32_new(dc, (size_t)a_rows * 64, SRLM_F32), *d = gpu_to_f32_new(dd, na, SRLM_F32);
    float *c_ref = malloc((size_t)a_rows * 64 * 4), *d_ref = malloc(na * 4), *p = malloc((size_t)a_rows * 64 * 4);

    char what[96];
    product_abt(c_ref, a, b, a_rows, 64, hd);
    snprintf(what, sizeof what, "hd %3d, A tile %3d rows: c = a b^T (K-major A and B)", hd, a_rows);
    compare(what, c, c_ref, a_rows, 64);

    for (int i = 0; i < a_rows * 64; i++) p[i] = bf16_round(c[i]);
    product_ab(d_ref, p, v, a_rows, hd, 64);
    snprintf(what, sizeof what, "hd %3d, A tile %3d rows: d = bf16(c) v (register A, N-major B)", hd, a_rows);
    compare(what, d, d_ref, a_rows, hd);

    cudaFree(da); cudaFree(db); cudaFree(dv); cudaFree(dc); cudaFree(dd);
    free(a); free(b); free(v); free(c); free(d); free(c_ref); free(d_ref); free(p);
}

int main(void) {
    gpu_skip_without_device("");
    if (!srlm_cuda_attention_sm90_available())
        TEST_SKIP("this GPU does not run the sm_90a image (the wgmma kernels are for compute capability 9.0)");
    uint64_t seed = 0x5eed90a;
    for (int hd = 64; hd <= 128; hd += 64)
        for (int a_rows = 128; a_rows >= 64; a_rows -= 64) run_case(hd, a_rows, seed += 3);
    TEST_DONE();
}
