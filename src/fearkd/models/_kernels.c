/* fearkd.models._kernels: the fast CNN blocks' passes and the fused LSTM and GRU, compiled.
 *
 * _kernels_body.h: each pass that layers_cnn.py otherwise runs as 4-10 PyTorch element-wise
 * operations (each a read and often a write of the whole chunk, plus a Python call) is one
 * loop here. _chan_body.h: the per-channel work between those passes (BatchNorm's statistics
 * and gradient terms, the conv weights' layout), one short serial loop each instead of 5-20
 * PyTorch operations on vectors of 64-128 values. _rnn_body.h: a whole LSTM or GRU layer's
 * forward or backward pass through every step (layers_rnn.py has the same in PyTorch
 * operations), each thread running its own slice of the batch. The Python side (the layers
 * and fearkd.models._fused) checks every array's dtype, device and layout and hands over raw
 * data pointers, so this file trusts them.
 *
 * Work is split by samples over OpenMP threads. Built with -fopenmp, this module needs
 * libgomp.so.1, which is the library PyTorch's CPU build has loaded already (fearkd imports
 * torch first), so these loops run on the same spinning thread pool as PyTorch's own
 * operations. Each thread sums into its own accumulators, added up afterwards in thread
 * order, so results are the same from run to run for a given thread count.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

/* One build runs the widest vector code the CPU has (chosen once, at load time). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 11
#define FEARKD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FEARKD_CLONES
#endif

/* The BLAS GEMMs PyTorch's CPU build carries (Fortran interface, 32-bit integers), set by
 * set_gemm; the whole-block passes need them. Inside an OpenMP parallel region, MKL runs each
 * call on the calling thread alone. */
typedef void (*gemm_f_t)(const char *, const char *, const int *, const int *, const int *,
                         const float *, const float *, const int *, const float *, const int *,
                         const float *, float *, const int *);
typedef void (*gemm_d_t)(const char *, const char *, const int *, const int *, const int *,
                         const double *, const double *, const int *, const double *,
                         const int *, const double *, double *, const int *);
static gemm_f_t gemm_fn_f;
static gemm_d_t gemm_fn_d;

/* Channels per block of the first block's loops: one 64-byte vector of floats. */
#define CB 16

#define REAL float
#define NAME(x) x##_f
#include "_kernels_body.h"
#include "_chan_body.h"
#include "_rnn_body.h"
#undef REAL
#undef NAME
#define REAL double
#define NAME(x) x##_d
#include "_kernels_body.h"
#include "_chan_body.h"
#include "_rnn_body.h"
#undef REAL
#undef NAME

#define MAX_ARGS 24

/* The arguments of one call: integers, pointers among them (data_ptr() values). */
typedef struct {
    Py_ssize_t v[MAX_ARGS];
} Args;

#define P(i, T) ((T *)(void *)a->v[i])

/* One kernel's work on samples [s0, s1), summing into acc; share numbers the thread's part
 * (0 .. threads - 1), for scratch memory of its own. */
typedef void (*RangeFn)(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share);

static void r_block_fwd(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share)
{
    /* dtype, y, rows, chans, length, edge0, edge2, bias, sign, picked, pstride */
    Py_ssize_t chans = a->v[3];
    if (a->v[0] == 4)
        block_fwd_f(P(1, float), s0, s1, a->v[2], chans, a->v[4], P(5, float), P(6, float),
                    P(7, float), P(8, float), acc, (float *)acc + chans, P(9, float),
                    a->v[10]);
    else
        block_fwd_d(P(1, double), s0, s1, a->v[2], chans, a->v[4], P(5, double),
                    P(6, double), P(7, double), P(8, double), acc, (double *)acc + chans,
                    P(9, double), a->v[10]);
}

static void r_block_bwd(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share)
{
    /* dtype, y, g, gstride, rows, chans, length, scale, sign, coef, cnst, dy */
    Py_ssize_t chans = a->v[5];
    if (a->v[0] == 4)
        block_bwd_f(P(1, float), P(2, float), a->v[3], s0, s1, a->v[4], chans, a->v[6],
                    P(7, float), P(8, float), P(9, float), P(10, float), P(11, float), acc,
                    (float *)acc + chans);
    else
        block_bwd_d(P(1, double), P(2, double), a->v[3], s0, s1, a->v[4], chans, a->v[6],
                    P(7, double), P(8, double), P(9, double), P(10, double), P(11, double),
                    acc, (double *)acc + chans);
}

static void r_bn_sums(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share)
{
    /* dtype, g, gstride, picked, pstride, pooled, chans */
    Py_ssize_t chans = a->v[6];
    if (a->v[0] == 4)
        bn_sums_f(P(1, float), a->v[2], P(3, float), a->v[4], s0, s1, a->v[5], chans, acc,
                  (float *)acc + chans);
    else
        bn_sums_d(P(1, double), a->v[2], P(3, double), a->v[4], s0, s1, a->v[5], chans, acc,
                  (double *)acc + chans);
}

static void r_first_fwd(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share)
{
    /* dtype, x, xpad, length, chans, weight, bias, gamma, picked, pstride, pad */
    if (a->v[0] == 4)
        first_fwd_f(P(1, float), P(2, float), s0, s1, a->v[3], a->v[4], P(5, float),
                    P(6, float), P(7, float), acc, P(8, float), a->v[9], (int)a->v[10]);
    else
        first_fwd_d(P(1, double), P(2, double), s0, s1, a->v[3], a->v[4], P(5, double),
                    P(6, double), P(7, double), acc, P(8, double), a->v[9], (int)a->v[10]);
}

static void r_first_bwd(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share)
{
    /* dtype, xpad, g, gstride, length, chans, weight, bias, gamma, scale */
    if (a->v[0] == 4)
        first_bwd_f(P(1, float), P(2, float), a->v[3], s0, s1, a->v[4], a->v[5], P(6, float),
                    P(7, float), P(8, float), P(9, float), acc);
    else
        first_bwd_d(P(1, double), P(2, double), a->v[3], s0, s1, a->v[4], a->v[5],
                    P(6, double), P(7, double), P(8, double), P(9, double), acc);
}

static void r_block_fwd_full(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share)
{
    /* dtype, xf, y, w, bias, step, rows, c_in, chans, length, edge0, edge2, sign, picked,
     * pstride, pad */
    Py_ssize_t chans = a->v[8];
    if (a->v[0] == 4)
        block_fwd_full_f(P(1, float), P(2, float), P(3, float), P(4, float), s0, s1, a->v[5],
                         a->v[6], a->v[7], chans, a->v[9], P(10, float), P(11, float),
                         P(12, float), acc, (float *)acc + chans, P(13, float), a->v[14],
                         (int)a->v[15]);
    else
        block_fwd_full_d(P(1, double), P(2, double), P(3, double), P(4, double), s0, s1,
                         a->v[5], a->v[6], a->v[7], chans, a->v[9], P(10, double),
                         P(11, double), P(12, double), acc, (double *)acc + chans,
                         P(13, double), a->v[14], (int)a->v[15]);
}

static void r_block_bwd_full(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share)
{
    /* dtype, xf, y, g, gstride, w, step, rows, c_in, chans, length, scale, sign, coef, cnst,
     * need_w, dx, scratch (step * rows x chans per share), then the first block's xpad (0:
     * none), length, weight, bias, gamma and scale; acc: dbias, ends (3 x chans), dw
     * (3 x c_in x chans), then the first block's sums (6 x c_in) */
    Py_ssize_t step = a->v[6], rows = a->v[7], c_in = a->v[8], chans = a->v[9];
    size_t el = a->v[0] == 4 ? sizeof(float) : sizeof(double);
    void *dy = (char *)(void *)a->v[17] + (size_t)share * (size_t)(step * rows * chans) * el;
    Py_ssize_t first_at = 3 * chans + 3 * c_in * chans;
    if (a->v[0] == 4) {
        first_args_f first = {P(18, float), P(20, float), P(21, float), P(22, float),
                              P(23, float), a->v[19]};
        block_bwd_full_f(P(1, float), P(2, float), P(3, float), a->v[4], P(5, float), s0, s1,
                         step, rows, c_in, chans, a->v[10], P(11, float), P(12, float),
                         P(13, float), P(14, float), dy, acc,
                         a->v[15] ? (float *)acc + 3 * chans : NULL, P(16, float), first,
                         (float *)acc + first_at);
    } else {
        first_args_d first = {P(18, double), P(20, double), P(21, double), P(22, double),
                              P(23, double), a->v[19]};
        block_bwd_full_d(P(1, double), P(2, double), P(3, double), a->v[4], P(5, double), s0,
                         s1, step, rows, c_in, chans, a->v[10], P(11, double), P(12, double),
                         P(13, double), P(14, double), dy, acc,
                         a->v[15] ? (double *)acc + 3 * chans : NULL, P(16, double), first,
                         (double *)acc + first_at);
    }
}

/* Per-channel work (_chan_body.h): called with one thread and one sample, it runs once on
 * the calling thread. Real-valued parameters come as the bits of a double. */
static double real_arg(const Args *a, int i)
{
    double d;
    memcpy(&d, &a->v[i], sizeof d);
    return d;
}

static void r_conv_weights(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share)
{
    /* dtype, weight, bias, scale, shift, gamma, c_in, c_out, par */
    if (a->v[0] == 4)
        conv_weights_f(P(1, float), P(2, float), P(3, float), P(4, float), P(5, float),
                       a->v[6], a->v[7], P(8, float));
    else
        conv_weights_d(P(1, double), P(2, double), P(3, double), P(4, double), P(5, double),
                       a->v[6], a->v[7], P(8, double));
}

static void r_bn_affine(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share)
{
    /* dtype, tot, tsq, count, gamma, beta, running_mean, running_var, training, momentum,
     * eps, chans, out */
    double momentum = real_arg(a, 9), eps = real_arg(a, 10);
    if (a->v[0] == 4)
        bn_affine_f(P(1, float), P(2, float), a->v[3], P(4, float), P(5, float), P(6, float),
                    P(7, float), (int)a->v[8], momentum, eps, a->v[11], P(12, float));
    else
        bn_affine_d(P(1, double), P(2, double), a->v[3], P(4, double), P(5, double),
                    P(6, double), P(7, double), (int)a->v[8], momentum, eps, a->v[11],
                    P(12, double));
}

static void r_bn_terms(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share)
{
    /* dtype, dbeta, dgp, affine, count, training, chans, out */
    if (a->v[0] == 4)
        bn_terms_f(P(1, float), P(2, float), P(3, float), a->v[4], (int)a->v[5], a->v[6],
                   P(7, float));
    else
        bn_terms_d(P(1, double), P(2, double), P(3, double), a->v[4], (int)a->v[5], a->v[6],
                   P(7, double));
}

static void r_conv_grad(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share)
{
    /* dtype, dwk, sums, scale, shift, c_in, c_out, dweight */
    if (a->v[0] == 4)
        conv_grad_f(P(1, float), P(2, float), P(3, float), P(4, float), a->v[5], a->v[6],
                    P(7, float));
    else
        conv_grad_d(P(1, double), P(2, double), P(3, double), P(4, double), a->v[5], a->v[6],
                    P(7, double));
}

static void r_first_grad(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share)
{
    /* dtype, bsums, fsums, affine, count, training, chans, out */
    if (a->v[0] == 4)
        first_grad_f(P(1, float), P(2, float), P(3, float), a->v[4], (int)a->v[5], a->v[6],
                     P(7, float));
    else
        first_grad_d(P(1, double), P(2, double), P(3, double), a->v[4], (int)a->v[5],
                     a->v[6], P(7, double));
}

/* The recurrent passes: samples are the batch; each share's scratch starts `stride`
 * elements after the previous one's. */
#define SCRATCH(i, T) (P(i, T) + (size_t)share * (size_t)a->v[(i) + 1])

static void r_lstm_fwd(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share)
{
    /* dtype, xs, w, gates, cs, h_last, steps, batch, hid, n_in, scratch, stride */
    if (a->v[0] == 4)
        lstm_fwd_f(P(1, float), P(2, float), P(3, float), P(4, float), P(5, float), s0, s1,
                   a->v[6], a->v[7], a->v[8], a->v[9], SCRATCH(10, float));
    else
        lstm_fwd_d(P(1, double), P(2, double), P(3, double), P(4, double), P(5, double), s0,
                   s1, a->v[6], a->v[7], a->v[8], a->v[9], SCRATCH(10, double));
}

static void r_lstm_bwd(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share)
{
    /* dtype, xs, w_aug, gates, cs, dh_last, dx, steps, batch, hid, n_in, chunk, scratch,
     * stride; acc: dw (K x 4H), or NULL without weight gradients */
    if (a->v[0] == 4)
        lstm_bwd_f(P(1, float), P(2, float), P(3, float), P(4, float), P(5, float),
                   P(6, float), acc, s0, s1, a->v[7], a->v[8], a->v[9], a->v[10], a->v[11],
                   SCRATCH(12, float));
    else
        lstm_bwd_d(P(1, double), P(2, double), P(3, double), P(4, double), P(5, double),
                   P(6, double), acc, s0, s1, a->v[7], a->v[8], a->v[9], a->v[10], a->v[11],
                   SCRATCH(12, double));
}

static void r_gru_fwd(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share)
{
    /* dtype, hx, w, gates, steps, batch, hid, n_in */
    if (a->v[0] == 4)
        gru_fwd_f(P(1, float), P(2, float), P(3, float), s0, s1, a->v[4], a->v[5], a->v[6],
                  a->v[7]);
    else
        gru_fwd_d(P(1, double), P(2, double), P(3, double), s0, s1, a->v[4], a->v[5],
                  a->v[6], a->v[7]);
}

static void r_gru_bwd(const Args *a, Py_ssize_t s0, Py_ssize_t s1, void *acc, int share)
{
    /* dtype, hx, w_aug, gates, dh_last, dx, steps, batch, hid, n_in, scratch, stride; acc:
     * dw (K x 4H), or NULL without weight gradients */
    if (a->v[0] == 4)
        gru_bwd_f(P(1, float), P(2, float), P(3, float), P(4, float), P(5, float), acc, s0,
                  s1, a->v[6], a->v[7], a->v[8], a->v[9], SCRATCH(10, float));
    else
        gru_bwd_d(P(1, double), P(2, double), P(3, double), P(4, double), P(5, double), acc,
                  s0, s1, a->v[6], a->v[7], a->v[8], a->v[9], SCRATCH(10, double));
}

/* Runs fn over samples [0, n) on up to `threads` threads; adds each thread's n_acc sums
 * into acc (which holds the caller's running totals) in thread order. */
static int run(RangeFn fn, const Args *a, Py_ssize_t n, int threads, void *acc,
               Py_ssize_t n_acc)
{
    size_t el = a->v[0] == 4 ? sizeof(float) : sizeof(double);
    int nt = threads < 1 ? 1 : threads;
    if (nt > n)
        nt = n < 1 ? 1 : (int)n;
    if (nt == 1) {
        fn(a, 0, n, acc, 0);
        return 0;
    }
    char *parts = NULL;
    if (n_acc) {
        parts = calloc((size_t)nt * (size_t)n_acc, el);
        if (!parts)
            return -1;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), got = omp_get_num_threads();
        /* A pool that gives fewer threads than asked: each thread takes several shares. */
        for (int i = t; i < nt; i += got)
            fn(a, n * i / nt, n * (i + 1) / nt, parts ? parts + (size_t)i * n_acc * el : NULL,
               i);
    }
#else
    for (int i = 0; i < nt; i++)
        fn(a, n * i / nt, n * (i + 1) / nt, parts ? parts + (size_t)i * n_acc * el : NULL, i);
#endif
    for (int i = 0; parts && i < nt; i++) {
        if (el == sizeof(float)) {
            float *dst = acc, *src = (float *)parts + (size_t)i * n_acc;
            for (Py_ssize_t j = 0; j < n_acc; j++)
                dst[j] += src[j];
        } else {
            double *dst = acc, *src = (double *)parts + (size_t)i * n_acc;
            for (Py_ssize_t j = 0; j < n_acc; j++)
                dst[j] += src[j];
        }
    }
    free(parts);
    return 0;
}

/* Python calls: fn(threads, n_samples, acc_ptr, n_acc, *kernel arguments), all integers. */
static PyObject *call(RangeFn fn, PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want)
{
    if (nargs != 4 + want) {
        PyErr_Format(PyExc_TypeError, "expected %zd integer arguments, got %zd", 4 + want,
                     nargs);
        return NULL;
    }
    Py_ssize_t head[4];
    Args a;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_ssize_t v = PyLong_AsSsize_t(args[i]);
        if (v == -1 && PyErr_Occurred())
            return NULL;
        if (i < 4)
            head[i] = v;
        else
            a.v[i - 4] = v;
    }
    if (a.v[0] != 4 && a.v[0] != 8) {
        PyErr_SetString(PyExc_ValueError, "dtype code must be 4 (float32) or 8 (float64)");
        return NULL;
    }
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = run(fn, &a, head[1], (int)head[0], (void *)head[2], head[3]);
    Py_END_ALLOW_THREADS
    if (err)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* The same for passes that call the GEMMs of set_gemm. */
static PyObject *call_gemm(RangeFn fn, PyObject *const *args, Py_ssize_t nargs,
                           Py_ssize_t want)
{
    if (!gemm_fn_f || !gemm_fn_d) {
        PyErr_SetString(PyExc_RuntimeError, "set_gemm has not been called");
        return NULL;
    }
    return call(fn, args, nargs, want);
}

/* py_<kernel>(threads, n, acc, n_acc, <want> kernel arguments), through call or call_gemm. */
#define ENTRY(kernel, caller, want)                                                       \
    static PyObject *py_##kernel(PyObject *self, PyObject *const *args, Py_ssize_t nargs) \
    {                                                                                     \
        return caller(r_##kernel, args, nargs, want);                                     \
    }

ENTRY(block_fwd, call, 11)
ENTRY(block_bwd, call, 12)
ENTRY(bn_sums, call, 7)
ENTRY(first_fwd, call, 11)
ENTRY(first_bwd, call, 10)
ENTRY(block_fwd_full, call_gemm, 16)
ENTRY(conv_weights, call, 9)
ENTRY(bn_affine, call, 13)
ENTRY(bn_terms, call, 8)
ENTRY(conv_grad, call, 8)
ENTRY(first_grad, call, 8)
ENTRY(block_bwd_full, call_gemm, 24)
ENTRY(lstm_fwd, call_gemm, 12)
ENTRY(lstm_bwd, call_gemm, 14)
ENTRY(gru_fwd, call_gemm, 8)
ENTRY(gru_bwd, call_gemm, 12)

static PyObject *py_set_gemm(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set_gemm(sgemm_address, dgemm_address)");
        return NULL;
    }
    void *f = PyLong_AsVoidPtr(args[0]), *d = PyLong_AsVoidPtr(args[1]);
    if (PyErr_Occurred())
        return NULL;
    gemm_fn_f = (gemm_f_t)f;
    gemm_fn_d = (gemm_d_t)d;
    Py_RETURN_NONE;
}

/* Whether the GEMMs set by set_gemm compute a small known product right, in both types,
 * transposed operands and beta included. */
static PyObject *py_gemm_probe(PyObject *self, PyObject *unused)
{
    if (!gemm_fn_f || !gemm_fn_d)
        Py_RETURN_FALSE;
    /* P (2 x 3), Q^T stored (2 x 3): C = P @ Q = [[14, 32], [32, 77]], plus C's 1s. */
    float pf[6] = {1, 2, 3, 4, 5, 6}, cf[4] = {1, 1, 1, 1};
    double pd[6] = {1, 2, 3, 4, 5, 6}, cd[4] = {1, 1, 1, 1};
    gemm_f(0, 1, 2, 2, 3, pf, 3, pf, 3, 1, cf, 2);
    gemm_d(0, 1, 2, 2, 3, pd, 3, pd, 3, 1, cd, 2);
    const double want[4] = {15, 33, 33, 78};
    for (int i = 0; i < 4; i++)
        if (cf[i] != want[i] || cd[i] != want[i])
            Py_RETURN_FALSE;
    Py_RETURN_TRUE;
}

static PyObject *py_openmp(PyObject *self, PyObject *unused)
{
#ifdef _OPENMP
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

#define FASTCALL(name) {#name, (PyCFunction)(void (*)(void))py_##name, METH_FASTCALL, NULL}

static PyMethodDef methods[] = {
    FASTCALL(block_fwd),
    FASTCALL(block_bwd),
    FASTCALL(bn_sums),
    FASTCALL(first_fwd),
    FASTCALL(first_bwd),
    FASTCALL(block_fwd_full),
    FASTCALL(block_bwd_full),
    FASTCALL(conv_weights),
    FASTCALL(bn_affine),
    FASTCALL(bn_terms),
    FASTCALL(conv_grad),
    FASTCALL(first_grad),
    FASTCALL(lstm_fwd),
    FASTCALL(lstm_bwd),
    FASTCALL(gru_fwd),
    FASTCALL(gru_bwd),
    FASTCALL(set_gemm),
    {"gemm_probe", py_gemm_probe, METH_NOARGS, NULL},
    {"openmp", py_openmp, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "Compiled passes of the fast CNN blocks and recurrent layers (see fearkd.models._fused).",
    -1,
    methods,
};

PyMODINIT_FUNC PyInit__kernels(void)
{
    return PyModule_Create(&module);
}
