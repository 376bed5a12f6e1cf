/* Whole-sequence LSTM and GRU passes, for one floating-point type.
 *
 * Included twice by _kernels.c, after _kernels_body.h, with REAL and NAME(x) defined. Each
 * function runs the samples [s0, s1) of a batch through every step: the threads of one call
 * take a slice of the batch each, and each runs its own small GEMMs (on its own core) and its
 * own element-wise loops, with no synchronisation between steps. Arrays are those of
 * layers_rnn.py's PyTorch path, in the same layouts (time-major, rows of one step contiguous),
 * and the element-wise operations follow that code; scratch is the caller's (`scratch` holds
 * this thread's part).
 */

/* tanh, vectorisable: tanh|x| = e / (e + 2) with e = expm1(2|x|), the sign put back. expm1
 * is 2^k (1 + p(r)) - 1 = (2^k - 1) + 2^k p(r), from 2|x| = k ln 2 + r (|r| <= ln(2) / 2) and
 * p the Taylor polynomial of e^r - 1 to degree 7 (error below 6e-9 relative): no cancellation
 * near 0, a few ulp of float32 everywhere. Beyond |x| = 9, tanh is 1 in float32. NaN stays
 * NaN. For double, libm's tanh. */
static inline __attribute__((always_inline)) float NAME(tanh_f32)(float x)
{
    float ax = x < 0 ? -x : x;
    ax = ax > 9.0f ? 9.0f : ax;
    float y = 2.0f * ax;
    const float shift = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float kf = y * 1.44269504f + shift;
    int32_t kbits, sbits;
    memcpy(&kbits, &kf, 4);
    float k = kf - shift;
    int32_t ki = kbits - 0x4b400000; /* the integer k, from the bits of kf */
    float r = y - k * 0.693145752f;  /* ln 2 in two parts (Cody and Waite) */
    r = r - k * 1.42860677e-6f;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r;
    sbits = (ki + 127) << 23;
    float s;
    memcpy(&s, &sbits, 4);
    float e = (s - 1.0f) + s * p;
    float t = e / (e + 2.0f);
    return x < 0 ? -t : t;
}

#define TANH(v) (sizeof(REAL) == sizeof(float) ? (REAL)NAME(tanh_f32)((float)(v)) : (REAL)tanh(v))
#define IVDEP _Pragma("GCC ivdep")

/* Subnormal floats flushed to zero on this thread while a pass runs (gradients carried back
 * through many steps shrink into that range, where arithmetic is 10-100x slower), and the
 * caller's mode restored after. */
#if defined(__x86_64__) || defined(__i386__)
#define FTZ_ON unsigned int fk_csr = _mm_getcsr(); _mm_setcsr(fk_csr | 0x8040)
#define FTZ_OFF _mm_setcsr(fk_csr)
#else
#define FTZ_ON
#define FTZ_OFF
#endif

/* LSTM forward. xs (steps, batch, n_in); w (K x 4H, K = H + n_in + 1: rows for h, x and the
 * bias; gate column blocks o, i, f, g, the three sigmoid blocks halved); gates (steps, batch,
 * 4H) gets the activations, cs (steps + 1, batch, H; cs[0] zero) the cell states, h_last
 * (batch, H) the last h. scratch: nb * (K + 4H). sigmoid(a) = 0.5 + 0.5 tanh(a / 2). */
FEARKD_CLONES static void NAME(lstm_fwd)(
    const REAL *xs, const REAL *w, REAL *gates, REAL *cs, REAL *h_last, Py_ssize_t s0,
    Py_ssize_t s1, Py_ssize_t steps, Py_ssize_t batch, Py_ssize_t hid, Py_ssize_t n_in,
    REAL *scratch)
{
    Py_ssize_t nb = s1 - s0, k = hid + n_in + 1, g4 = 4 * hid;
    REAL *row = scratch, *pre = scratch + nb * k;
    const REAL half = (REAL)0.5;
    FTZ_ON;
    for (Py_ssize_t b = 0; b < nb; b++) {
        memset(row + b * k, 0, (size_t)hid * sizeof(REAL));
        row[b * k + k - 1] = 1;
    }
    for (Py_ssize_t t = 0; t < steps; t++) {
        for (Py_ssize_t b = 0; b < nb; b++)
            memcpy(row + b * k + hid, xs + (t * batch + s0 + b) * n_in,
                   (size_t)n_in * sizeof(REAL));
        NAME(gemm)(0, 0, (int)nb, (int)g4, (int)k, row, (int)k, w, (int)g4, 0, pre, (int)g4);
        for (Py_ssize_t b = 0; b < nb; b++) {
            const REAL *p = pre + b * g4;
            REAL *gt = gates + (t * batch + s0 + b) * g4;
            const REAL *cp = cs + (t * batch + s0 + b) * hid;
            REAL *cn = cs + ((t + 1) * batch + s0 + b) * hid;
            REAL *h = row + b * k;
            IVDEP
            for (Py_ssize_t j = 0; j < hid; j++) {
                REAL o = half + half * TANH(p[j]);
                REAL i = half + half * TANH(p[hid + j]);
                REAL f = half + half * TANH(p[2 * hid + j]);
                REAL g = TANH(p[3 * hid + j]);
                gt[j] = o;
                gt[hid + j] = i;
                gt[2 * hid + j] = f;
                gt[3 * hid + j] = g;
                REAL c = f * cp[j] + i * g;
                cn[j] = c;
                h[j] = o * TANH(c);
            }
        }
    }
    for (Py_ssize_t b = 0; b < nb; b++)
        memcpy(h_last + (s0 + b) * hid, row + b * k, (size_t)hid * sizeof(REAL));
    FTZ_OFF;
}

/* LSTM backward from the gradient dh_last (batch, H) of the last h. w_aug (4H x K, the
 * gate rows o, i, f, g, not halved); xs, gates, cs as lstm_fwd left them. dx (steps, batch,
 * n_in) or NULL; dw (K x 4H, this thread's sums) or NULL: every `chunk` steps one GEMM adds
 * [h_{t-1}, x_t, 1]^T @ dgates over those steps, h_{t-1} = o_{t-1} tanh(c_{t-1}) rebuilt.
 * scratch: nb * (chunk * (K + 4H) + (H + n_in) + 4H). */
FEARKD_CLONES static void NAME(lstm_bwd)(
    const REAL *xs, const REAL *w_aug, const REAL *gates, const REAL *cs, const REAL *dh_last,
    REAL *dx, REAL *dw, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t steps, Py_ssize_t batch,
    Py_ssize_t hid, Py_ssize_t n_in, Py_ssize_t chunk, REAL *scratch)
{
    Py_ssize_t nb = s1 - s0, k = hid + n_in + 1, g4 = 4 * hid, nx = hid + (dx ? n_in : 0);
    REAL *rows = scratch, *dg = rows + chunk * nb * k, *dhx = dg + chunk * nb * g4;
    REAL *dh = dhx + nb * (hid + n_in), *dcf = dh + nb * hid, *q = dcf + nb * hid;
    REAL *tc = q + nb * hid;
    FTZ_ON;
    for (Py_ssize_t b = 0; b < chunk * nb; b++)
        rows[b * k + k - 1] = 1;
    for (Py_ssize_t b = 0; b < nb; b++) {
        const REAL *o = gates + ((steps - 1) * batch + s0 + b) * g4;
        const REAL *c = cs + (steps * batch + s0 + b) * hid;
        memcpy(dh + b * hid, dh_last + (s0 + b) * hid, (size_t)hid * sizeof(REAL));
        for (Py_ssize_t j = 0; j < hid; j++) {
            REAL tcj = TANH(c[j]);
            tc[b * hid + j] = tcj;
            q[b * hid + j] = o[j] - o[j] * tcj * tcj;
            dcf[b * hid + j] = 0;
        }
    }
    for (Py_ssize_t t0 = chunk * ((steps - 1) / chunk); t0 >= 0; t0 -= chunk) {
        Py_ssize_t n = steps - t0 < chunk ? steps - t0 : chunk;
        for (Py_ssize_t t = t0 + n - 1; t >= t0; t--) {
            REAL *dgs = dg + (t - t0) * nb * g4, *rs = rows + (t - t0) * nb * k;
            for (Py_ssize_t b = 0; b < nb; b++) {
                const REAL *gt = gates + (t * batch + s0 + b) * g4;
                const REAL *cp = cs + (t * batch + s0 + b) * hid;
                REAL *d = dgs + b * g4, *dhb = dh + b * hid, *dcfb = dcf + b * hid;
                const REAL *qb = q + b * hid, *tcb = tc + b * hid;
                IVDEP
                for (Py_ssize_t j = 0; j < hid; j++) {
                    REAL o = gt[j], i = gt[hid + j], f = gt[2 * hid + j], g = gt[3 * hid + j];
                    REAL dc = dcfb[j] + dhb[j] * qb[j];
                    d[j] = dhb[j] * tcb[j] * ((1 - o) * o);
                    d[hid + j] = dc * g * ((1 - i) * i);
                    d[2 * hid + j] = dc * cp[j] * ((1 - f) * f);
                    d[3 * hid + j] = dc * i * (1 - g * g);
                    dcfb[j] = dc * f;
                }
                if (dw)
                    memcpy(rs + b * k + hid, xs + (t * batch + s0 + b) * n_in,
                           (size_t)n_in * sizeof(REAL));
            }
            if (t > 0 || dx)
                NAME(gemm)(0, 0, (int)nb, (int)nx, (int)g4, dgs, (int)g4, w_aug, (int)k, 0, dhx,
                           (int)nx);
            for (Py_ssize_t b = 0; dx && b < nb; b++)
                memcpy(dx + (t * batch + s0 + b) * n_in, dhx + b * nx + hid,
                       (size_t)n_in * sizeof(REAL));
            for (Py_ssize_t b = 0; b < nb; b++) {
                REAL *h = rs + b * k, *dhb = dh + b * hid, *qb = q + b * hid, *tcb = tc + b * hid;
                const REAL *dxb = dhx + b * nx;
                if (t == 0) {
                    if (dw)
                        memset(h, 0, (size_t)hid * sizeof(REAL));
                    continue;
                }
                /* h_{t-1} and q for step t - 1, from its o and c_{t-1} */
                const REAL *o = gates + ((t - 1) * batch + s0 + b) * g4;
                const REAL *c = cs + (t * batch + s0 + b) * hid;
                IVDEP
                for (Py_ssize_t j = 0; j < hid; j++) {
                    REAL tcj = TANH(c[j]);
                    REAL hj = o[j] * tcj;
                    if (dw)
                        h[j] = hj;
                    qb[j] = o[j] - hj * tcj;
                    tcb[j] = tcj;
                    dhb[j] = dxb[j];
                }
            }
        }
        if (dw)
            NAME(gemm)(1, 0, (int)k, (int)g4, (int)(n * nb), rows, (int)k, dg, (int)g4, 1, dw,
                       (int)g4);
    }
    FTZ_OFF;
}

/* GRU forward. hx (steps + 1, batch, K): rows [h_{t-1}, x_t, 1], with h_{-1} = 0, x and the
 * ones filled in; this writes h_t into hx[t + 1]. w (K x 4H: column blocks r, z,
 * W_hn h + b_hn, W_in x + b_in); gates (steps, batch, 4H) gets r, z, W_hn h + b_hn, n. */
FEARKD_CLONES static void NAME(gru_fwd)(
    REAL *hx, const REAL *w, REAL *gates, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t steps,
    Py_ssize_t batch, Py_ssize_t hid, Py_ssize_t n_in)
{
    Py_ssize_t nb = s1 - s0, k = hid + n_in + 1, g4 = 4 * hid;
    const REAL half = (REAL)0.5;
    FTZ_ON;
    for (Py_ssize_t t = 0; t < steps; t++) {
        REAL *gt0 = gates + (t * batch + s0) * g4;
        NAME(gemm)(0, 0, (int)nb, (int)g4, (int)k, hx + (t * batch + s0) * k, (int)k, w,
                   (int)g4, 0, gt0, (int)g4);
        for (Py_ssize_t b = 0; b < nb; b++) {
            REAL *gt = gt0 + b * g4;
            const REAL *hp = hx + (t * batch + s0 + b) * k;
            REAL *hn = hx + ((t + 1) * batch + s0 + b) * k;
            IVDEP
            for (Py_ssize_t j = 0; j < hid; j++) {
                REAL r = half + half * TANH(half * gt[j]);
                REAL z = half + half * TANH(half * gt[hid + j]);
                REAL n = TANH(gt[3 * hid + j] + r * gt[2 * hid + j]);
                gt[j] = r;
                gt[hid + j] = z;
                gt[3 * hid + j] = n;
                hn[j] = n + z * (hp[j] - n);
            }
        }
    }
    FTZ_OFF;
}

/* GRU backward from dh_last (batch, H). w_aug (4H x K); hx and gates as gru_fwd left them.
 * dx (steps, batch, n_in) or NULL; dw (K x 4H, this thread's sums) or NULL: per step,
 * hx[t]^T @ dgates. scratch: nb * (4H + (H + n_in) + 2H). */
FEARKD_CLONES static void NAME(gru_bwd)(
    const REAL *hx, const REAL *w_aug, const REAL *gates, const REAL *dh_last, REAL *dx,
    REAL *dw, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t steps, Py_ssize_t batch, Py_ssize_t hid,
    Py_ssize_t n_in, REAL *scratch)
{
    Py_ssize_t nb = s1 - s0, k = hid + n_in + 1, g4 = 4 * hid, nx = hid + (dx ? n_in : 0);
    REAL *dg = scratch, *dhx = dg + nb * g4, *dh = dhx + nb * (hid + n_in), *dhz = dh + nb * hid;
    FTZ_ON;
    for (Py_ssize_t b = 0; b < nb; b++)
        memcpy(dh + b * hid, dh_last + (s0 + b) * hid, (size_t)hid * sizeof(REAL));
    for (Py_ssize_t t = steps - 1; t >= 0; t--) {
        for (Py_ssize_t b = 0; b < nb; b++) {
            const REAL *gt = gates + (t * batch + s0 + b) * g4;
            const REAL *hp = hx + (t * batch + s0 + b) * k;
            REAL *d = dg + b * g4, *dhb = dh + b * hid, *dhzb = dhz + b * hid;
            IVDEP
            for (Py_ssize_t j = 0; j < hid; j++) {
                REAL r = gt[j], z = gt[hid + j], hn = gt[2 * hid + j], n = gt[3 * hid + j];
                REAL dz = (hp[j] - n) * dhb[j];
                REAL dhzj = dhb[j] * z;
                REAL dnx = (dhb[j] - dhzj) * (1 - n * n);
                d[j] = dnx * hn * ((1 - r) * r);
                d[hid + j] = dz * ((1 - z) * z);
                d[2 * hid + j] = dnx * r;
                d[3 * hid + j] = dnx;
                dhzb[j] = dhzj;
            }
        }
        if (dw)
            NAME(gemm)(1, 0, (int)k, (int)g4, (int)nb, hx + (t * batch + s0) * k, (int)k, dg,
                       (int)g4, 1, dw, (int)g4);
        if (t == 0 && !dx)
            break;
        NAME(gemm)(0, 0, (int)nb, (int)nx, (int)g4, dg, (int)g4, w_aug, (int)k, 0, dhx, (int)nx);
        for (Py_ssize_t b = 0; b < nb; b++) {
            if (dx)
                memcpy(dx + (t * batch + s0 + b) * n_in, dhx + b * nx + hid,
                       (size_t)n_in * sizeof(REAL));
            REAL *dhb = dh + b * hid;
            const REAL *dhzb = dhz + b * hid, *dxb = dhx + b * nx;
            IVDEP
            for (Py_ssize_t j = 0; j < hid; j++)
                dhb[j] = dhzb[j] + dxb[j];
        }
    }
    FTZ_OFF;
}

#undef TANH
#undef IVDEP
#undef FTZ_ON
#undef FTZ_OFF
