/* Per-channel work between the fast CNN blocks' passes, for one floating-point type.
 *
 * Included twice by _kernels.c, as _kernels_body.h is. Each function here is a few short loops
 * over channels or weights that layers_cnn.py otherwise spells as 5-20 PyTorch operations on
 * vectors of 64-128 values, where every operation's call costs more than its arithmetic:
 * BatchNorm's statistics and its gradient terms, and the conv weights' layout, with the
 * previous block's BatchNorm folded in. They run on the calling thread. The formulas and
 * their order follow the PyTorch code in _cnn_parts.py (_bn_affine, _bn_grad_terms,
 * _fold_affine), which remains the fallback.
 */

/* The conv weights as the block passes read them, from weight (c_out x c_in x 3, as
 * nn.Conv1d holds it) and bias (c_out). par gets, one after the other:
 *   wk (3 x c_in x c_out): the taps;
 *   wf (3 x c_in x c_out), bf (c_out), edge0, edge2 (c_out each): with the previous block's
 *     BatchNorm folded in (scale, shift: c_in each; see _fold_affine), wf = diag(scale) wk,
 *     bf = bias + sum over taps of shift @ wk, edge = shift @ wk of taps 0 and 2; without
 *     folding (scale NULL), bf = bias, and wf and the edges are left alone;
 *   sign (c_out): the sign of gamma, BatchNorm's scale (ones without BatchNorm: gamma NULL);
 *   ones, zeros (c_out each): the per-channel arguments of a pass without BatchNorm. */
static void NAME(conv_weights)(const REAL *weight, const REAL *bias, const REAL *scale,
                               const REAL *shift, const REAL *gamma, Py_ssize_t c_in,
                               Py_ssize_t c_out, REAL *restrict par)
{
    Py_ssize_t nw = 3 * c_in * c_out;
    REAL *wk = par, *wf = par + nw, *bf = wf + nw, *e0 = bf + c_out, *e2 = e0 + c_out;
    REAL *sg = e2 + c_out, *ones = sg + c_out, *zeros = ones + c_out;
    /* A transpose, CB outputs at a time: CB rows of weight are read front to back together,
     * and each write fills CB consecutive values of a row of wk. */
    for (Py_ssize_t o0 = 0; o0 < c_out; o0 += CB) {
        Py_ssize_t o1 = o0 + CB < c_out ? o0 + CB : c_out;
        for (Py_ssize_t i = 0; i < c_in; i++)
            for (Py_ssize_t k = 0; k < 3; k++) {
                REAL *restrict row = wk + (k * c_in + i) * c_out;
                for (Py_ssize_t o = o0; o < o1; o++)
                    row[o] = weight[(o * c_in + i) * 3 + k];
            }
    }
    if (scale) {
        for (Py_ssize_t o = 0; o < c_out; o++)
            e0[o] = e2[o] = bf[o] = 0;  /* bf holds tap 1's edge until the end */
        for (Py_ssize_t k = 0; k < 3; k++) {
            REAL *restrict edge = k == 0 ? e0 : (k == 1 ? bf : e2);
            for (Py_ssize_t i = 0; i < c_in; i++) {
                const REAL *restrict row = wk + (k * c_in + i) * c_out;
                REAL *restrict out = wf + (k * c_in + i) * c_out;
                REAL sc = scale[i], sh = shift[i];
                for (Py_ssize_t o = 0; o < c_out; o++) {
                    out[o] = row[o] * sc;
                    edge[o] += sh * row[o];
                }
            }
        }
        for (Py_ssize_t o = 0; o < c_out; o++)
            bf[o] = bias[o] + (e0[o] + bf[o] + e2[o]);
    } else {
        memcpy(bf, bias, (size_t)c_out * sizeof(REAL));
    }
    for (Py_ssize_t o = 0; o < c_out; o++) {
        sg[o] = gamma ? NAME(sign_of)(gamma[o]) : (REAL)1;
        ones[o] = 1;
        zeros[o] = 0;
    }
}

/* BatchNorm's mean, invstd, scale and shift (rows of out, chans each; scale * y + shift is
 * the normalised output) from the sums tot and tsq of y and y**2 over count positions (batch
 * statistics, which also update running_mean and running_var unless NULL), or from the
 * running statistics (training 0). See _bn_affine. */
static void NAME(bn_affine)(const REAL *tot, const REAL *tsq, Py_ssize_t count,
                            const REAL *gamma, const REAL *beta, REAL *running_mean,
                            REAL *running_var, int training, double momentum, double eps,
                            Py_ssize_t chans, REAL *restrict out)
{
    REAL *mean = out, *invstd = out + chans, *scale = out + 2 * chans;
    REAL *shift = out + 3 * chans;
    REAL keep = (REAL)(1 - momentum), take = (REAL)momentum;
    REAL unbias = (REAL)((double)count / (double)(count > 1 ? count - 1 : 1));
    for (Py_ssize_t c = 0; c < chans; c++) {
        REAL m, var;
        if (training) {
            m = tot[c] / (REAL)count;
            var = tsq[c] / (REAL)count - m * m;
            var = var < 0 ? (REAL)0 : var;  /* NaN stays NaN, as with clamp_ */
            if (running_mean) {
                running_mean[c] = running_mean[c] * keep + take * m;
                running_var[c] = running_var[c] * keep + take * (var * unbias);
            }
        } else {
            m = running_mean[c];
            var = running_var[c];
        }
        mean[c] = m;
        invstd[c] = (REAL)(1 / sqrt((double)(var + (REAL)eps)));
        scale[c] = gamma[c] * invstd[c];
        shift[c] = beta[c] - m * scale[c];
    }
}

/* One channel's BatchNorm gradient terms (see _bn_grad_terms), from db = sum(g) and dgp =
 * sum(g * pooled value): dgamma, and coef and cnst (zero without batch statistics) such that
 * the conv output's gradient is mask * (cnst + coef * y + pooled gradient * scale). */
static inline void NAME(bn_term)(REAL db, REAL dgp, REAL mean, REAL invstd, REAL scale,
                                 Py_ssize_t count, int training, REAL *dgamma, REAL *coef,
                                 REAL *cnst)
{
    REAL dg = invstd * (dgp - mean * db);
    *dgamma = dg;
    *coef = *cnst = 0;
    if (training) {
        REAL cy = -scale * dg * invstd / (REAL)count;
        *coef = cy;
        *cnst = -scale * db / (REAL)count - cy * mean;
    }
}

/* bn_term for every channel: from dbeta and dgp and the rows mean, invstd, scale of
 * bn_affine's out (affine), out gets the rows dgamma, coef and cnst. */
static void NAME(bn_terms)(const REAL *dbeta, const REAL *dgp, const REAL *affine,
                           Py_ssize_t count, int training, Py_ssize_t chans,
                           REAL *restrict out)
{
    for (Py_ssize_t c = 0; c < chans; c++)
        NAME(bn_term)(dbeta[c], dgp[c], affine[c], affine[chans + c], affine[2 * chans + c],
                      count, training, out + c, out + chans + c, out + 2 * chans + c);
}

/* The conv weight's gradient as nn.Conv1d holds it (dweight: c_out x c_in x 3) from the tap
 * gradients dwk (3 x c_in x c_out) of the GEMMs. Those read pre-BatchNorm values v when the
 * previous block's BatchNorm is folded in (scale, shift; NULL otherwise): the layer's input
 * is scale * v + shift except in padding rows, so tap k's gradient is diag(scale) dwk_k +
 * outer(shift, the column sums of dy over the rows where tap k reads no padding row), from
 * sums: dbias (all rows), then those of each sample's first and last position. */
static void NAME(conv_grad)(const REAL *dwk, const REAL *sums, const REAL *scale,
                            const REAL *shift, Py_ssize_t c_in, Py_ssize_t c_out,
                            REAL *restrict dweight)
{
    const REAL *dbias = sums, *first = sums + c_out, *last = sums + 2 * c_out;
    /* A transpose, CB outputs at a time (see conv_weights). */
    for (Py_ssize_t o0 = 0; o0 < c_out; o0 += CB) {
        Py_ssize_t o1 = o0 + CB < c_out ? o0 + CB : c_out;
        for (Py_ssize_t i = 0; i < c_in; i++) {
            REAL sc = scale ? scale[i] : (REAL)1, sh = scale ? shift[i] : (REAL)0;
            for (Py_ssize_t k = 0; k < 3; k++) {
                const REAL *row = dwk + (k * c_in + i) * c_out;
                for (Py_ssize_t o = o0; o < o1; o++) {
                    REAL reach = k == 0 ? dbias[o] - first[o]
                                        : (k == 1 ? dbias[o] : dbias[o] - last[o]);
                    dweight[(o * c_in + i) * 3 + k] = scale ? row[o] * sc + sh * reach : row[o];
                }
            }
        }
    }
}

/* The first block's parameter gradients (see _first_block_grads) from first_bwd's sums
 * (bsums, 6 x chans: dbeta, dgp, then the pooled part of cols^T @ dy for the three taps and
 * the bias) and the forward pass's (fsums: rows 0-3 cols^T @ y, rows 4-7 cols^T @ mask;
 * affine: mean, invstd, scale). out gets dweight (chans x 3), then dbias, dgamma and dbeta
 * (chans each). */
static void NAME(first_grad)(const REAL *bsums, const REAL *fsums, const REAL *affine,
                             Py_ssize_t count, int training, Py_ssize_t chans,
                             REAL *restrict out)
{
    REAL *dbias = out + 3 * chans, *dgamma = dbias + chans, *dbeta = dgamma + chans;
    for (Py_ssize_t c = 0; c < chans; c++) {
        REAL coef, cnst;
        dbeta[c] = bsums[c];
        NAME(bn_term)(bsums[c], bsums[chans + c], affine[c], affine[chans + c],
                      affine[2 * chans + c], count, training, dgamma + c, &coef, &cnst);
        for (Py_ssize_t k = 0; k < 4; k++) {
            REAL both = bsums[(2 + k) * chans + c];
            if (training)
                both = both + fsums[k * chans + c] * coef + fsums[(4 + k) * chans + c] * cnst;
            if (k < 3)
                out[c * 3 + k] = both;
            else
                dbias[c] = both;
        }
    }
}
