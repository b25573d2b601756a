"""Network layers for inference on the CPU without torch: numba kernels (callable from
other kernels) over rows of float32 frames ``(rows, channels)``, written into ``out``, each
row computed by the same arithmetic however many rows come at once (a chunk of 2 frames or
a whole file), so streamed frames equal offline frames to the bit, and fast on the few rows
of a live chunk, where a framework's per-call overhead is most of the cost.

:func:`dense` sums each output over its inputs by one fixed vectorised pattern (not BLAS,
whose blocking changes with the matrix's size and the thread count); :func:`layer_norm`
(torch's ``nn.LayerNorm``, sums in float64) and :func:`gelu` (the exact GELU, torch's
default; erf to 1e-7) are row-wise.
:func:`bake_weight_norm` turns a weight-normed layer's stored ``(g, v)`` into its weight.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from dsp.harmonic import helper  # the engines' second thread, shared with the synthesis

ROWS = 4  # dense() takes its rows four at a time: pad a chunk's rows to a multiple
PARALLEL_STREAMS = 4  # from this many streams (voices) a batched step takes two threads


def in_halves(fn, n: int) -> None:
    """``fn(a, b)`` over streams ``[0, n)``: from :data:`PARALLEL_STREAMS` streams on two
    threads, ``[0, mid)`` here and ``[mid, n)`` on :func:`helper`'s (``mid`` a multiple of
    :data:`ROWS`, so every stream's rows are computed as they would be alone)."""
    mid = -(-(n // 2) // ROWS) * ROWS
    if n < PARALLEL_STREAMS or mid >= n:
        fn(0, n)
        return
    fut = helper().submit(fn, mid, n)
    fn(0, mid)
    fut.result()


@numba.njit(cache=True, nogil=True, fastmath=True)
def dense(x, w, b, out):  # pragma: no cover
    """``out = x @ w.T + b``: ``x (n, k)`` with ``n`` a multiple of :data:`ROWS`, ``w (m,
    k)`` (torch's layout), ``b (m,)``, ``out (n, m)``. Four rows share each pass over a
    weight row; every row goes through the same four-row code (the reason for the padding),
    so its sums are the same bits wherever it sits."""
    n, k = x.shape
    m = w.shape[0]
    for i0 in range(0, n, 4):
        x0, x1, x2, x3 = x[i0], x[i0 + 1], x[i0 + 2], x[i0 + 3]
        for j in range(m):
            wj = w[j]
            a0 = a1 = a2 = a3 = np.float32(0.0)
            for q in range(k):
                v = wj[q]
                a0 += x0[q] * v
                a1 += x1[q] * v
                a2 += x2[q] * v
                a3 += x3[q] * v
            out[i0, j] = a0 + b[j]
            out[i0 + 1, j] = a1 + b[j]
            out[i0 + 2, j] = a2 + b[j]
            out[i0 + 3, j] = a3 + b[j]


@numba.njit(cache=True, nogil=True, fastmath=True)
def dense1(x, w, b, out):  # pragma: no cover
    """:func:`dense` a row at a time (any number of rows, none wasted on padding: the
    recurrences' few rows a step); every row by the same code, so also the same bits for
    any number of rows (not the same bits as :func:`dense`)."""
    n, k = x.shape
    m = w.shape[0]
    for i in range(n):
        xi = x[i]
        for j in range(m):
            wj = w[j]
            a = np.float32(0.0)
            for q in range(k):
                a += xi[q] * wj[q]
            out[i, j] = a + b[j]


@numba.njit(cache=True, nogil=True)
def layer_norm(x, g, b, eps, out):  # pragma: no cover
    n, c = x.shape
    for i in range(n):
        mean = 0.0
        for j in range(c):
            mean += x[i, j]
        mean /= c
        var = 0.0
        for j in range(c):
            d = x[i, j] - mean
            var += d * d
        inv = 1.0 / math.sqrt(var / c + eps)
        for j in range(c):
            out[i, j] = (x[i, j] - mean) * inv * g[j] + b[j]


# erf(x) = x P(x^2) / Q(x^2) for x clamped to [-4, 4] (Eigen's fast float erf; within 7e-8
# of erf): multiplications and one division, so the loop vectorises (libm's erf, or an
# exp, would not)
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
          -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
          -1.60960333262415e-02)  # fmt: skip
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
          -7.37332916720468e-03, -1.42647390514189e-02)  # fmt: skip


@numba.njit(cache=True, nogil=True, fastmath=True)
def gelu(x, out):  # pragma: no cover
    p0, p1, p2, p3, p4, p5, p6 = _ERF_P
    q0, q1, q2, q3, q4 = _ERF_Q
    n, c = x.shape
    for i in range(n):
        for j in range(c):
            v = x[i, j]
            z = min(max(v * np.float32(0.7071067811865476), np.float32(-4.0)), np.float32(4.0))
            z2 = z * z
            p = (((((p0 * z2 + p1) * z2 + p2) * z2 + p3) * z2 + p4) * z2 + p5) * z2 + p6
            q = (((q0 * z2 + q1) * z2 + q2) * z2 + q3) * z2 + q4
            out[i, j] = np.float32(0.5) * v * (np.float32(1.0) + np.float32(z * p / q))


def bake_weight_norm(tensors: dict, prefix: str) -> np.ndarray:
    """The weight of the weight-normed layer ``prefix`` (torch's parametrization, ``dim=0``:
    ``g * v / |v|`` per output channel), or its plain weight if it has none."""
    if f"{prefix}.weight" in tensors:
        return np.asarray(tensors[f"{prefix}.weight"], np.float32)
    g = tensors[f"{prefix}.parametrizations.weight.original0"].astype(np.float32)
    v = tensors[f"{prefix}.parametrizations.weight.original1"].astype(np.float32)
    norm = np.sqrt((v.reshape(v.shape[0], -1) ** 2).sum(1))
    return (v * (g.reshape(-1) / norm).reshape(-1, *([1] * (v.ndim - 1)))).astype(np.float32)
