/* Element-wise passes of the fast CNN blocks, for one floating-point type.
 *
 * Included twice by _kernels.c, with REAL (float, double) and NAME(x) (x ## _f, x ## _d)
 * defined. Every function works on samples [s0, s1) of channels-last arrays: within a
 * sample, row r and channel c sit at r * chans + c. Each adds its sums to the accumulators
 * it is given, so that threads never share one. Every per-channel argument is present (a
 * missing BatchNorm or sign is passed as ones, missing gradient terms as zeros): a branch per
 * element would keep the compiler from vectorising the loops.
 * The operations and their order per element follow the PyTorch code they replace in
 * layers_cnn.py (which is also the fallback); only the summation order differs.
 */

#define RELU(v) ((v) > 0 ? (v) : (REAL)0)
/* Iterations over channels are independent; the compiler cannot prove it where one array
 * holds several rows of sums (acc + k * chans), and would then not vectorise. */
#define IVDEP _Pragma("GCC ivdep")

/* The element of each pair that max-pooling after BatchNorm picks, pre-BatchNorm. */
static inline REAL NAME(pick)(REAL a, REAL b, REAL sign)
{
    REAL hi = a > b ? a : b, lo = a > b ? b : a;
    return sign > 0 ? hi : (sign < 0 ? lo : a);
}

/* Block forward, after the chunk's GEMMs: padding-tap corrections (edge0 and edge2, or
 * NULL), ReLU, junk rows zeroed, BatchNorm sums (tot, tsq) and the pooled pick. y holds (s1 - s0) samples of `rows` rows from its start; picked[s] starts at
 * picked + s * pstride. */
FEARKD_CLONES static void NAME(block_fwd)(
    REAL *restrict y, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t rows, Py_ssize_t chans,
    Py_ssize_t length, const REAL *edge0, const REAL *edge2, const REAL *sign,
    REAL *restrict tot, REAL *restrict tsq, REAL *restrict picked, Py_ssize_t pstride)
{
    Py_ssize_t pooled = length / 2;
    for (Py_ssize_t s = s0; s < s1; s++) {
        REAL *ys = y + s * rows * chans;
        REAL *ps = picked + s * pstride;
        if (edge0) {
            REAL *first = ys, *last = ys + (length - 1) * chans;
            IVDEP
            for (Py_ssize_t c = 0; c < chans; c++)
                first[c] -= edge0[c];
            IVDEP
            for (Py_ssize_t c = 0; c < chans; c++)
                last[c] -= edge2[c];
        }
        for (Py_ssize_t p = 0; p < pooled; p++) {
            REAL *restrict a = ys + 2 * p * chans, *restrict b = a + chans;
            REAL *restrict out = ps + p * chans;
            IVDEP
            for (Py_ssize_t c = 0; c < chans; c++) {
                REAL ea = RELU(a[c]), eb = RELU(b[c]);
                a[c] = ea;
                b[c] = eb;
                tot[c] += ea + eb;
                tsq[c] += ea * ea + eb * eb;
                out[c] = NAME(pick)(ea, eb, sign[c]);
            }
        }
        for (Py_ssize_t r = 2 * pooled; r < length; r++) {  /* odd length: unpooled row */
            REAL *a = ys + r * chans;
            IVDEP
            for (Py_ssize_t c = 0; c < chans; c++) {
                REAL ea = RELU(a[c]);
                a[c] = ea;
                tot[c] += ea;
                tsq[c] += ea * ea;
            }
        }
        memset(ys + length * chans, 0, (size_t)((rows - length) * chans) * sizeof(REAL));
    }
}

/* Block backward: the gradient dy of the conv output from the pooled gradient g (g[s] at
 * g + s * gstride), through pooling, BatchNorm (scale; coef and cnst with batch statistics,
 * see _bn_grad_terms) and ReLU; dbias gets its column sums, ends those of each sample's
 * first (ends[0..chans)) and last (ends[chans..]) position. */
FEARKD_CLONES static void NAME(block_bwd)(
    const REAL *y, const REAL *g, Py_ssize_t gstride, Py_ssize_t s0, Py_ssize_t s1,
    Py_ssize_t rows, Py_ssize_t chans, Py_ssize_t length, const REAL *scale,
    const REAL *sign, const REAL *coef, const REAL *cnst, REAL *restrict dy, REAL *restrict dbias,
    REAL *restrict ends)
{
    Py_ssize_t pooled = length / 2;
    for (Py_ssize_t s = s0; s < s1; s++) {
        const REAL *ys = y + s * rows * chans, *gs = g + s * gstride;
        REAL *ds = dy + s * rows * chans;
        for (Py_ssize_t p = 0; p < pooled; p++) {
            const REAL *a = ys + 2 * p * chans, *b = a + chans, *gp = gs + p * chans;
            REAL *da = ds + 2 * p * chans, *db = da + chans;
            IVDEP
            for (Py_ssize_t c = 0; c < chans; c++) {
                REAL ea = a[c], eb = b[c], diff = (eb - ea) * sign[c], gv = gp[c] * scale[c];
                REAL godd = diff > 0 ? gv : (REAL)0;
                REAL de = (cnst[c] + ea * coef[c]) + (gv - godd);
                REAL dod = (cnst[c] + eb * coef[c]) + godd;
                de = ea > 0 ? de : (REAL)0;
                dod = eb > 0 ? dod : (REAL)0;
                da[c] = de;
                db[c] = dod;
                dbias[c] += de + dod;
            }
        }
        for (Py_ssize_t r = 2 * pooled; r < rows; r++) {  /* unpooled and junk rows */
            const REAL *a = ys + r * chans;
            REAL *da = ds + r * chans;
            IVDEP
            for (Py_ssize_t c = 0; c < chans; c++) {
                REAL d = a[c] > 0 ? cnst[c] + a[c] * coef[c] : (REAL)0;
                da[c] = d;
                dbias[c] += d;
            }
        }
        const REAL *first = ds, *last = ds + (length - 1) * chans;
        IVDEP
        for (Py_ssize_t c = 0; c < chans; c++) {
            ends[c] += first[c];
            ends[chans + c] += last[c];
        }
    }
}

/* BatchNorm's dbeta = sum(g) and dgp = sum(g * picked) over the pooled positions. */
FEARKD_CLONES static void NAME(bn_sums)(
    const REAL *g, Py_ssize_t gstride, const REAL *picked, Py_ssize_t pstride,
    Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t pooled, Py_ssize_t chans, REAL *restrict dbeta,
    REAL *restrict dgp)
{
    for (Py_ssize_t s = s0; s < s1; s++) {
        for (Py_ssize_t p = 0; p < pooled; p++) {
            const REAL *gp = g + s * gstride + p * chans;
            const REAL *pp = picked + s * pstride + p * chans;
            IVDEP
            for (Py_ssize_t c = 0; c < chans; c++) {
                dbeta[c] += gp[c];
                dgp[c] += gp[c] * pp[c];
            }
        }
    }
}

/* First block forward: the one-channel convolution (w: 3 taps then the bias, 4 x chans) of
 * the zero-padded input x (length + 2 per sample), ReLU, the pooled pick (picked[s] at
 * picked + s * pstride) and which element of each pair it is (chosen, > 0 for the second).
 * acc (9 x chans) gets in rows 0-3 the sums of y times each unfolded column (three taps,
 * then ones), in rows 4-7 those of the ReLU mask and in row 8 the sum of y**2. */
FEARKD_CLONES static void NAME(first_fwd)(
    const REAL *x, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t length, Py_ssize_t chans,
    const REAL *w, const REAL *sign, REAL *restrict acc, REAL *restrict picked,
    Py_ssize_t pstride, REAL *restrict chosen)
{
    Py_ssize_t pooled = length / 2;
    const REAL *w0 = w, *w1 = w + chans, *w2 = w + 2 * chans, *bias = w + 3 * chans;
    for (Py_ssize_t s = s0; s < s1; s++) {
        const REAL *xs = x + s * (length + 2);
        for (Py_ssize_t p = 0; p < pooled; p++) {
            REAL x0 = xs[2 * p], x1 = xs[2 * p + 1], x2 = xs[2 * p + 2], x3 = xs[2 * p + 3];
            REAL *out = picked + s * pstride + p * chans;
            REAL *restrict ch = chosen + (s * pooled + p) * chans;
            IVDEP
            for (Py_ssize_t c = 0; c < chans; c++) {
                REAL ya = w0[c] * x0 + w1[c] * x1 + w2[c] * x2 + bias[c];
                REAL yb = w0[c] * x1 + w1[c] * x2 + w2[c] * x3 + bias[c];
                ya = RELU(ya);
                yb = RELU(yb);
                {
                    REAL ma = ya > 0 ? (REAL)1 : (REAL)0, mb = yb > 0 ? (REAL)1 : (REAL)0;
                    acc[c] += ya * x0 + yb * x1;
                    acc[chans + c] += ya * x1 + yb * x2;
                    acc[2 * chans + c] += ya * x2 + yb * x3;
                    acc[3 * chans + c] += ya + yb;
                    acc[4 * chans + c] += ma * x0 + mb * x1;
                    acc[5 * chans + c] += ma * x1 + mb * x2;
                    acc[6 * chans + c] += ma * x2 + mb * x3;
                    acc[7 * chans + c] += ma + mb;
                    acc[8 * chans + c] += ya * ya + yb * yb;
                }
                out[c] = NAME(pick)(ya, yb, sign[c]);
                ch[c] = (yb - ya) * sign[c];
            }
        }
        if (length % 2) {  /* the last, unpooled position */
            REAL x0 = xs[length - 1], x1 = xs[length], x2 = xs[length + 1];
            IVDEP
            for (Py_ssize_t c = 0; c < chans; c++) {
                REAL ya = RELU(w0[c] * x0 + w1[c] * x1 + w2[c] * x2 + bias[c]);
                REAL ma = ya > 0 ? (REAL)1 : (REAL)0;
                acc[c] += ya * x0;
                acc[chans + c] += ya * x1;
                acc[2 * chans + c] += ya * x2;
                acc[3 * chans + c] += ya;
                acc[4 * chans + c] += ma * x0;
                acc[5 * chans + c] += ma * x1;
                acc[6 * chans + c] += ma * x2;
                acc[7 * chans + c] += ma;
                acc[8 * chans + c] += ya * ya;
            }
        }
    }
}

/* First block backward (no input gradient): acc (6 x chans) gets dbeta = sum(g), dgp =
 * sum(g * picked) and the four rows of cols^T @ (pooled part of dy), where the pooled
 * gradient reaches the chosen element of each pair, through scale and the ReLU mask. */
FEARKD_CLONES static void NAME(first_bwd)(
    const REAL *x, const REAL *g, Py_ssize_t gstride, const REAL *picked, Py_ssize_t pstride,
    const REAL *chosen, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t length, Py_ssize_t chans,
    const REAL *scale, REAL *restrict acc)
{
    Py_ssize_t pooled = length / 2;
    REAL *dbeta = acc, *dgp = acc + chans, *both = acc + 2 * chans;
    for (Py_ssize_t s = s0; s < s1; s++) {
        const REAL *xs = x + s * (length + 2);
        for (Py_ssize_t p = 0; p < pooled; p++) {
            REAL x0 = xs[2 * p], x1 = xs[2 * p + 1], x2 = xs[2 * p + 2], x3 = xs[2 * p + 3];
            const REAL *gp = g + s * gstride + p * chans;
            const REAL *pp = picked + s * pstride + p * chans;
            const REAL *cp = chosen + (s * pooled + p) * chans;
            IVDEP
            for (Py_ssize_t c = 0; c < chans; c++) {
                REAL gv = gp[c], pv = pp[c];
                dbeta[c] += gv;
                dgp[c] += gv * pv;
                REAL gs = gv * scale[c], gm = pv > 0 ? gs : (REAL)0;
                REAL go = cp[c] > 0 ? gm : (REAL)0;
                REAL ge = gm - go;
                both[c] += x0 * ge + x1 * go;
                both[chans + c] += x1 * ge + x2 * go;
                both[2 * chans + c] += x2 * ge + x3 * go;
                both[3 * chans + c] += gm;
            }
        }
    }
}

/* Row-major C (m x n, ldc) = op(P) (m x k) @ op(Q) (k x n) + beta * C through the
 * column-major BLAS GEMM (C^T = op(Q)^T op(P)^T). tp / tq: P / Q stored transposed. */
static void NAME(gemm)(int tp, int tq, int m, int n, int k, const REAL *pm, int ldp,
                       const REAL *qm, int ldq, REAL beta, REAL *cm, int ldc)
{
    REAL one = 1;
    NAME(gemm_fn)(tq ? "T" : "N", tp ? "T" : "N", &n, &m, &k, &one, qm, &ldq, pm, &ldp, &beta,
                  cm, &ldc);
}

/* A whole block forward pass on samples [s0, s1), `step` samples at a time: the three tap
 * GEMMs of the convolution (w: 3 x c_in x chans, bias) into y, then block_fwd on them.
 * tot / tsq as in block_fwd. */
static void NAME(block_fwd_full)(
    const REAL *xf, REAL *y, const REAL *w, const REAL *bias, Py_ssize_t s0, Py_ssize_t s1,
    Py_ssize_t step, Py_ssize_t rows, Py_ssize_t c_in, Py_ssize_t chans, Py_ssize_t length,
    const REAL *edge0, const REAL *edge2, const REAL *sign, REAL *tot, REAL *tsq,
    REAL *picked, Py_ssize_t pstride)
{
    for (Py_ssize_t a = s0; a < s1; a += step) {
        Py_ssize_t b = a + step < s1 ? a + step : s1;
        int m = (int)((b - a) * rows - 2);
        const REAL *xa = xf + a * rows * c_in;
        REAL *ya = y + a * rows * chans;
        for (int r = 0; r < m; r++)
            memcpy(ya + (Py_ssize_t)r * chans, bias, (size_t)chans * sizeof(REAL));
        for (int tap = 0; tap < 3; tap++)
            NAME(gemm)(0, 0, m, (int)chans, (int)c_in, xa + tap * c_in, (int)c_in,
                       w + tap * c_in * chans, (int)chans, 1, ya, (int)chans);
        NAME(block_fwd)(ya, 0, b - a, rows, chans, length, edge0, edge2, sign, tot, tsq,
                        picked + a * pstride, pstride);
    }
}

/* A whole block backward pass on samples [s0, s1), `step` samples at a time: block_bwd into
 * the scratch dy (step * rows x chans), then with dw (3 x c_in x chans, or NULL) the weight
 * gradient GEMMs and with dx (or NULL) the input gradient GEMMs. sums: dbias then ends
 * (3 x chans), as in block_bwd. */
static void NAME(block_bwd_full)(
    const REAL *xf, const REAL *y, const REAL *g, Py_ssize_t gstride, const REAL *w,
    Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t step, Py_ssize_t rows, Py_ssize_t c_in,
    Py_ssize_t chans, Py_ssize_t length, const REAL *scale, const REAL *sign,
    const REAL *coef, const REAL *cnst, REAL *dy, REAL *sums, REAL *dw, REAL *dx)
{
    for (Py_ssize_t a = s0; a < s1; a += step) {
        Py_ssize_t b = a + step < s1 ? a + step : s1;
        int m = (int)((b - a) * rows - 2);
        NAME(block_bwd)(y + a * rows * chans, g + a * gstride, gstride, 0, b - a, rows, chans,
                        length, scale, sign, coef, cnst, dy, sums, sums + chans);
        if (dw) {
            const REAL *xa = xf + a * rows * c_in;
            for (int tap = 0; tap < 3; tap++)
                NAME(gemm)(1, 0, (int)c_in, (int)chans, m, xa + tap * c_in, (int)c_in, dy,
                           (int)chans, 1, dw + tap * c_in * chans, (int)chans);
        }
        if (dx) {
            REAL *da = dx + a * rows * c_in;
            memset(da + (Py_ssize_t)m * c_in, 0, (size_t)(2 * c_in) * sizeof(REAL));
            for (int tap = 0; tap < 3; tap++)
                NAME(gemm)(0, 1, m, (int)c_in, (int)chans, dy, (int)chans,
                           w + tap * c_in * chans, (int)chans, tap ? 1 : 0, da + tap * c_in,
                           (int)c_in);
        }
    }
}

#undef RELU
#undef IVDEP
