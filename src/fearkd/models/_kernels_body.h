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
 * NULL), the bias (zeros when the GEMMs added it), ReLU, junk rows zeroed, BatchNorm sums
 * (tot, tsq) and the pooled pick. y holds (s1 - s0) samples of `rows` rows from its start;
 * picked[s] starts at picked + s * pstride. */
FEARKD_CLONES static void NAME(block_fwd)(
    REAL *restrict y, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t rows, Py_ssize_t chans,
    Py_ssize_t length, const REAL *edge0, const REAL *edge2, const REAL *bias,
    const REAL *sign, REAL *restrict tot, REAL *restrict tsq, REAL *restrict picked,
    Py_ssize_t pstride)
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
                REAL ea = RELU(a[c] + bias[c]), eb = RELU(b[c] + bias[c]);
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
                REAL ea = RELU(a[c] + bias[c]);
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

/* BatchNorm's scale gamma decides which element of a pair pooling picks: its sign. */
static inline REAL NAME(sign_of)(REAL gamma)
{
    return gamma > 0 ? (REAL)1 : (gamma < 0 ? (REAL)-1 : (REAL)0);
}

/* The first block's conv output at one position and channel, after ReLU. The forward and
 * backward passes both compute it with this one expression, so that they agree to the bit. */
#define FIRST_Y(w0, w1, w2, bias, xa, xb, xc) \
    RELU((w0) * (xa) + (w1) * (xb) + (w2) * (xc) + (bias))

/* The value pooling after BatchNorm picks from a pair, as pick. With every scale of the
 * channel block positive (all_pos, a constant in each copy the compiler makes), it is the
 * larger one: the general three-way choice made the forward loop's vector code spend its
 * time on per-lane mask work. */
#define FIRST_PICK(ya, yb, sg) (all_pos ? ((ya) > (yb) ? (ya) : (yb)) : NAME(pick)(ya, yb, sg))

static inline int NAME(all_positive)(const REAL *gamma, int n)
{
    int all = 1;
    for (int j = 0; j < n; j++)
        all &= gamma[j] > 0;
    return all;
}

/* The first block's weights on channels [c0, c0 + cb): taps, bias and the sign of gamma. */
#define FIRST_WEIGHTS                                        \
    REAL w0[CB], w1[CB], w2[CB], bias[CB], sg[CB];           \
    for (int j = 0; j < cb; j++) {                           \
        w0[j] = weight[3 * (c0 + j)];                        \
        w1[j] = weight[3 * (c0 + j) + 1];                    \
        w2[j] = weight[3 * (c0 + j) + 2];                    \
        bias[j] = b[c0 + j];                                 \
        sg[j] = NAME(sign_of)(gamma[c0 + j]);                \
    }

/* First block forward on channels [c0, c0 + cb) of sample s (cb <= CB): sums kept in local
 * arrays of CB lanes, which the compiler holds in vector registers across all positions when
 * cb is the constant CB (the caller passes it so for every full block of channels). */
static inline __attribute__((always_inline)) void NAME(first_fwd_cols)(
    const REAL *xs, Py_ssize_t pooled, Py_ssize_t length, Py_ssize_t chans,
    const REAL *weight, const REAL *b, const REAL *gamma, REAL *restrict acc,
    REAL *restrict ps, Py_ssize_t c0, int cb, int all_pos)
{
    FIRST_WEIGHTS
    REAL a[9][CB];
    for (int i = 0; i < 9; i++)
        for (int j = 0; j < cb; j++)
            a[i][j] = 0;
    for (Py_ssize_t p = 0; p < pooled; p++) {
        REAL x0 = xs[2 * p], x1 = xs[2 * p + 1], x2 = xs[2 * p + 2], x3 = xs[2 * p + 3];
        REAL *restrict out = ps + p * chans + c0;
        for (int j = 0; j < cb; j++) {
            REAL ya = FIRST_Y(w0[j], w1[j], w2[j], bias[j], x0, x1, x2);
            REAL yb = FIRST_Y(w0[j], w1[j], w2[j], bias[j], x1, x2, x3);
            REAL ma = ya > 0 ? (REAL)1 : (REAL)0, mb = yb > 0 ? (REAL)1 : (REAL)0;
            a[0][j] += ya * x0 + yb * x1;
            a[1][j] += ya * x1 + yb * x2;
            a[2][j] += ya * x2 + yb * x3;
            a[3][j] += ya + yb;
            a[4][j] += ma * x0 + mb * x1;
            a[5][j] += ma * x1 + mb * x2;
            a[6][j] += ma * x2 + mb * x3;
            a[7][j] += ma + mb;
            a[8][j] += ya * ya + yb * yb;
            out[j] = FIRST_PICK(ya, yb, sg[j]);
        }
    }
    if (length % 2) {  /* the last, unpooled position */
        REAL x0 = xs[length - 1], x1 = xs[length], x2 = xs[length + 1];
        for (int j = 0; j < cb; j++) {
            REAL ya = FIRST_Y(w0[j], w1[j], w2[j], bias[j], x0, x1, x2);
            REAL ma = ya > 0 ? (REAL)1 : (REAL)0;
            a[0][j] += ya * x0;
            a[1][j] += ya * x1;
            a[2][j] += ya * x2;
            a[3][j] += ya;
            a[4][j] += ma * x0;
            a[5][j] += ma * x1;
            a[6][j] += ma * x2;
            a[7][j] += ma;
            a[8][j] += ya * ya;
        }
    }
    for (int i = 0; i < 9; i++)
        for (int j = 0; j < cb; j++)
            acc[i * chans + c0 + j] += a[i][j];
}

/* First block forward: the input x (length per sample) copied to xpad with a zero at each
 * end ('same' padding, length + 2 per sample), its one-channel convolution (weight
 * (chans x 3) and bias as nn.Conv1d holds them), ReLU and the pooled pick for BatchNorm's
 * scale gamma (picked[s] at picked + s * pstride; with pad, the rows just before and after
 * each sample's are zeroed). acc (9 x chans) gets in rows 0-3 the sums of y times each
 * unfolded column (three taps, then ones), in rows 4-7 those of the ReLU mask and in row 8
 * the sum of y**2. */
FEARKD_CLONES static void NAME(first_fwd)(
    const REAL *x, REAL *xpad, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t length,
    Py_ssize_t chans, const REAL *weight, const REAL *bias, const REAL *gamma,
    REAL *restrict acc, REAL *restrict picked, Py_ssize_t pstride, int pad)
{
    Py_ssize_t pooled = length / 2;
    for (Py_ssize_t s = s0; s < s1; s++) {
        REAL *xs = xpad + s * (length + 2);
        xs[0] = xs[length + 1] = 0;
        memcpy(xs + 1, x + s * length, (size_t)length * sizeof(REAL));
        REAL *ps = picked + s * pstride;
        Py_ssize_t c0 = 0;
        for (; c0 + CB <= chans; c0 += CB) {
            if (NAME(all_positive)(gamma + c0, CB))
                NAME(first_fwd_cols)(xs, pooled, length, chans, weight, bias, gamma, acc, ps,
                                     c0, CB, 1);
            else
                NAME(first_fwd_cols)(xs, pooled, length, chans, weight, bias, gamma, acc, ps,
                                     c0, CB, 0);
        }
        if (c0 < chans)
            NAME(first_fwd_cols)(xs, pooled, length, chans, weight, bias, gamma, acc, ps, c0,
                                 (int)(chans - c0), 0);
        if (pad) {
            memset(ps - chans, 0, (size_t)chans * sizeof(REAL));
            memset(ps + pooled * chans, 0, (size_t)chans * sizeof(REAL));
        }
    }
}

/* First block backward on channels [c0, c0 + cb) of one sample (see first_fwd_cols). The
 * pooled value of each pair, and which element it is, are computed again from the input:
 * six multiply-adds cost less than reading two more full-size arrays from memory. */
static inline __attribute__((always_inline)) void NAME(first_bwd_cols)(
    const REAL *xs, const REAL *gs, Py_ssize_t pooled, Py_ssize_t chans, const REAL *weight,
    const REAL *b, const REAL *gamma, const REAL *scale, REAL *restrict acc, Py_ssize_t c0,
    int cb)
{
    FIRST_WEIGHTS
    REAL sc[CB], a[6][CB];
    for (int j = 0; j < cb; j++) {
        sc[j] = scale[c0 + j];
        for (int i = 0; i < 6; i++)
            a[i][j] = 0;
    }
    for (Py_ssize_t p = 0; p < pooled; p++) {
        REAL x0 = xs[2 * p], x1 = xs[2 * p + 1], x2 = xs[2 * p + 2], x3 = xs[2 * p + 3];
        const REAL *gp = gs + p * chans + c0;
        for (int j = 0; j < cb; j++) {
            REAL ya = FIRST_Y(w0[j], w1[j], w2[j], bias[j], x0, x1, x2);
            REAL yb = FIRST_Y(w0[j], w1[j], w2[j], bias[j], x1, x2, x3);
            REAL pv = NAME(pick)(ya, yb, sg[j]), gv = gp[j];
            a[0][j] += gv;
            a[1][j] += gv * pv;
            REAL gsc = gv * sc[j], gm = pv > 0 ? gsc : (REAL)0;
            REAL go = (yb - ya) * sg[j] > 0 ? gm : (REAL)0;
            REAL ge = gm - go;
            a[2][j] += x0 * ge + x1 * go;
            a[3][j] += x1 * ge + x2 * go;
            a[4][j] += x2 * ge + x3 * go;
            a[5][j] += gm;
        }
    }
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < cb; j++)
            acc[i * chans + c0 + j] += a[i][j];
}

/* First block backward (no input gradient), from xpad as first_fwd left it, the same weight,
 * bias and gamma, and BatchNorm's scale: acc (6 x chans) gets dbeta = sum(g), dgp =
 * sum(g * picked) and the four rows of cols^T @ (pooled part of dy), where the pooled
 * gradient reaches the chosen element of each pair, through scale and the ReLU mask. */
FEARKD_CLONES static void NAME(first_bwd)(
    const REAL *x, const REAL *g, Py_ssize_t gstride, Py_ssize_t s0, Py_ssize_t s1,
    Py_ssize_t length, Py_ssize_t chans, const REAL *weight, const REAL *bias,
    const REAL *gamma, const REAL *scale, REAL *restrict acc)
{
    Py_ssize_t pooled = length / 2;
    for (Py_ssize_t s = s0; s < s1; s++) {
        const REAL *xs = x + s * (length + 2), *gs = g + s * gstride;
        Py_ssize_t c0 = 0;
        for (; c0 + CB <= chans; c0 += CB)
            NAME(first_bwd_cols)(xs, gs, pooled, chans, weight, bias, gamma, scale, acc, c0,
                                 CB);
        if (c0 < chans)
            NAME(first_bwd_cols)(xs, gs, pooled, chans, weight, bias, gamma, scale, acc, c0,
                                 (int)(chans - c0));
    }
}

#undef FIRST_Y
#undef FIRST_PICK
#undef FIRST_WEIGHTS

/* Row-major C (m x n, ldc) = op(P) (m x k) @ op(Q) (k x n) + beta * C through the
 * column-major BLAS GEMM (C^T = op(Q)^T op(P)^T). tp / tq: P / Q stored transposed. */
static void NAME(gemm)(int tp, int tq, int m, int n, int k, const REAL *pm, int ldp,
                       const REAL *qm, int ldq, REAL beta, REAL *cm, int ldc)
{
    /* Sizes as 64-bit integers: a BLAS with 32-bit integers reads their low halves (the
     * same values on a little-endian CPU), one with 64-bit integers reads them whole. */
    long long d[6] = {n, m, k, ldq, ldp, ldc};
    REAL one = 1;
    NAME(gemm_fn)(tq ? "T" : "N", tp ? "T" : "N", (const int *)&d[0], (const int *)&d[1],
                  (const int *)&d[2], &one, qm, (const int *)&d[3], pm, (const int *)&d[4],
                  &beta, cm, (const int *)&d[5]);
}

/* A whole block forward pass on samples [s0, s1), in equal chunks of at most `step` samples
 * (rather than a short last chunk, whose GEMMs would run at a lower rate): the three tap
 * GEMMs of the convolution (w: 3 x c_in x chans, bias) into y, then block_fwd on them.
 * tot / tsq as in block_fwd; with pad, the rows just before and after each sample's picked
 * rows are zeroed. */
static void NAME(block_fwd_full)(
    const REAL *xf, REAL *y, const REAL *w, const REAL *bias, Py_ssize_t s0, Py_ssize_t s1,
    Py_ssize_t step, Py_ssize_t rows, Py_ssize_t c_in, Py_ssize_t chans, Py_ssize_t length,
    const REAL *edge0, const REAL *edge2, const REAL *sign, REAL *tot, REAL *tsq,
    REAL *picked, Py_ssize_t pstride, int pad)
{
    for (Py_ssize_t s = s0; pad && s < s1; s++) {
        memset(picked + s * pstride - chans, 0, (size_t)chans * sizeof(REAL));
        memset(picked + s * pstride + length / 2 * chans, 0, (size_t)chans * sizeof(REAL));
    }
    Py_ssize_t n_chunks = (s1 - s0 + step - 1) / step;
    for (Py_ssize_t c = 0; c < n_chunks; c++) {
        Py_ssize_t a = s0 + (s1 - s0) * c / n_chunks, b = s0 + (s1 - s0) * (c + 1) / n_chunks;
        int m = (int)((b - a) * rows - 2);
        const REAL *xa = xf + a * rows * c_in;
        REAL *ya = y + a * rows * chans;
        for (int tap = 0; tap < 3; tap++)  /* the bias follows in block_fwd */
            NAME(gemm)(0, 0, m, (int)chans, (int)c_in, xa + tap * c_in, (int)c_in,
                       w + tap * c_in * chans, (int)chans, tap ? 1 : 0, ya, (int)chans);
        NAME(block_fwd)(ya, 0, b - a, rows, chans, length, edge0, edge2, bias, sign, tot, tsq,
                        picked + a * pstride, pstride);
    }
}

/* The first block's inputs for block_bwd_full, to run its backward pass (first_bwd) on each
 * chunk's input gradient while that is still in cache: xpad, its input length, and its
 * weight, bias, gamma and BatchNorm scale. xpad NULL: not run. */
typedef struct {
    const REAL *xpad, *weight, *bias, *gamma, *scale;
    Py_ssize_t length;
} NAME(first_args);

/* A whole block backward pass on samples [s0, s1), in chunks as in block_fwd_full:
 * block_bwd into the scratch dy (step * rows x chans), then with dw (3 x c_in x chans, or
 * NULL) the weight gradient GEMMs and with dx (or NULL) the input gradient GEMMs. sums: dbias
 * then ends (3 x chans), as in block_bwd. With first.xpad and dx, the input gradient is
 * that of the first block's output, and first_bwd adds that block's sums to first_acc
 * (6 x c_in) for each chunk right after its GEMMs. */
static void NAME(block_bwd_full)(
    const REAL *xf, const REAL *y, const REAL *g, Py_ssize_t gstride, const REAL *w,
    Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t step, Py_ssize_t rows, Py_ssize_t c_in,
    Py_ssize_t chans, Py_ssize_t length, const REAL *scale, const REAL *sign,
    const REAL *coef, const REAL *cnst, REAL *dy, REAL *sums, REAL *dw, REAL *dx,
    NAME(first_args) first, REAL *first_acc)
{
    Py_ssize_t n_chunks = (s1 - s0 + step - 1) / step;
    for (Py_ssize_t c = 0; c < n_chunks; c++) {
        Py_ssize_t a = s0 + (s1 - s0) * c / n_chunks, b = s0 + (s1 - s0) * (c + 1) / n_chunks;
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
            if (first.xpad)  /* its gradient skips each sample's padding row */
                NAME(first_bwd)(first.xpad, dx + c_in, rows * c_in, a, b, first.length, c_in,
                                first.weight, first.bias, first.gamma, first.scale,
                                first_acc);
        }
    }
}

#undef RELU
#undef IVDEP
