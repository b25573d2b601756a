"""The harmonic vocoder's network on the CPU without torch: :class:`model.harmonic.HarmonicNet`'s
inference (``stream_log``) from its weights, in one numba kernel (:func:`_forward`) built
on :mod:`model.kernels`.

Every frame is computed by the same arithmetic whatever the chunk (dense maps summed in
order, row-wise norms, the causal convolutions' taps in order), so a stream equals the
offline pass to the bit; the frames agree with the torch network to float32 rounding
(tested), and a live 2-frame chunk costs no framework overhead (torch's made it 2.4 ms).
The state is numpy: the last input frames of each causal convolution, time-major.
"""

from __future__ import annotations

import numba
import numpy as np

from model.kernels import ROWS, bake_weight_norm, dense, gelu, helper, in_halves, layer_norm

F0_REF = 200.0  # Hz: log f0 is fed as octaves from this (both engines)
DEFAULTS = {"n_mels": 80, "bins": 513, "blocks": 3, "kernel": 3, "n_fft": 1024,
            "phase_taps": 0}  # fmt: skip
BLOCK_KERNEL = 7  # model.layers.Block's depthwise kernel
PARALLEL_FRAMES = 128  # from this many frames of one stream, two threads share them


@numba.njit(cache=True, nogil=True)
def _window(x, cache, rows, k):  # pragma: no cover
    """``x (T, C)`` after ``cache (k - 1, C)`` -> the causal windows ``rows (T, k * C)``
    (tap-major) and the next cache (in place)."""
    t, c = x.shape
    for i in range(t):
        for j in range(k):
            src = i + j - (k - 1)
            for f in range(c):
                rows[i, j * c + f] = cache[k - 1 + src, f] if src < 0 else x[src, f]
    _roll(x, cache)


@numba.njit(cache=True, nogil=True)
def _roll(x, cache):  # pragma: no cover
    """``cache`` becomes the last ``len(cache)`` frames of ``cache`` then ``x``."""
    n, t = cache.shape[0], x.shape[0]
    keep = cache.copy()
    for s in range(n):
        idx = t + s  # in the concatenation of the old cache and x
        cache[s, :] = keep[idx, :] if idx < n else x[idx - n, :]


@numba.njit(cache=True, nogil=True)
def _forward(feat, mel_t, log_f0, pre_cache, caches, pre_w, pre_b, dw, dw_b, norm_g, norm_b,
             up_w, up_b, down_w, down_b, scale, fin_g, fin_b, out_w, out_b,
             out):  # pragma: no cover  # fmt: skip
    """``B`` streams' chunks of ``T`` frames: inputs ``feat (B, T, n_mels + 2)``, ``mel_t
    (B, T, n_mels)``, the log f0 ``(B, T)``; the caches (updated in place) ``pre_cache (B, k
    - 1, n_mels + 2)`` and ``caches (B, blocks, 6, C)``; the blocks' weights stacked on
    their first axis -> ``out (B, T, 2 * bins)``: the log harmonic and noise filters,
    clamped to [-20, 6]. Every stream's frames are rows of the same dense maps (padded to a
    multiple of :data:`model.kernels.ROWS`), each computed alike wherever it sits."""
    b, t, n_in = feat.shape
    n = b * t
    n4 = -(-n // ROWS) * ROWS
    k = pre_cache.shape[1] + 1
    c = pre_b.shape[0]
    rows = np.zeros((n4, k * n_in), np.float32)
    for s in range(b):
        _window(feat[s], pre_cache[s], rows[s * t : (s + 1) * t], k)
    x = np.empty((n4, c), np.float32)
    dense(rows, pre_w, pre_b, x)
    h = np.zeros((n4, c), np.float32)
    hn = np.empty((n4, c), np.float32)
    up = np.empty((n4, up_w.shape[1]), np.float32)
    act = np.empty_like(up)
    down = np.empty((n4, c), np.float32)
    kd = dw.shape[1]
    xe = np.empty((t + kd - 1, c), np.float32)  # a stream's block input after its cache
    for blk in range(dw.shape[0]):
        for s in range(b):
            cache = caches[s, blk]
            xs = x[s * t : (s + 1) * t]
            xe[: kd - 1] = cache
            xe[kd - 1 :] = xs
            for i in range(t):
                r = s * t + i
                h[r, :] = dw_b[blk]
                for j in range(kd):  # the taps in order
                    for f in range(c):
                        h[r, f] += xe[i + j, f] * dw[blk, j, f]
            _roll(xs, cache)
        layer_norm(h, norm_g[blk], norm_b[blk], 1e-5, hn)
        dense(hn, up_w[blk], up_b[blk], up)
        gelu(up, act)
        dense(act, down_w[blk], down_b[blk], down)
        for i in range(n):
            for f in range(c):
                x[i, f] += scale[blk, f] * down[i, f]
    n_mels = mel_t.shape[2]
    last = np.zeros((n4, c + n_mels), np.float32)
    layer_norm(x, fin_g, fin_b, 1e-5, hn)
    for s in range(b):
        last[s * t : (s + 1) * t, :c] = hn[s * t : (s + 1) * t]
        last[s * t : (s + 1) * t, c:] = mel_t[s]
    res = np.empty((n4, out.shape[2]), np.float32)
    dense(last, out_w, out_b, res)
    bins = out.shape[2] // 2
    for s in range(b):
        for i in range(t):
            for j in range(2 * bins):
                v = res[s * t + i, j] + (log_f0[s, i] if j < bins else np.float32(0.0))
                out[s, i, j] = min(max(v, np.float32(-20.0)), np.float32(6.0))


def _c(a) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32)


class CpuHarmonicNet:
    """``stream_log(mel (B, n_mels, T), f0 (B, T), state)`` -> ``((log_h, log_n) (B, T,
    bins) float32, voiced (B, T)), state``, as :meth:`model.harmonic.HarmonicNet.stream_log`
    gives them. ``tensors``: the network's state dict (weight norm baked here)."""

    def __init__(self, tensors: dict, kwargs: dict):
        k = {**DEFAULTS, **{n: v for n, v in kwargs.items() if n != "arch"}}
        self.kwargs, self.tensors = dict(kwargs), tensors
        self.n_mels, self.bins, self.phase_taps = k["n_mels"], k["bins"], k["phase_taps"]
        self.kernel, n = k["kernel"], k["blocks"]
        f = {n: np.asarray(v, np.float32) for n, v in tensors.items()
             if "parametrizations" not in n}  # fmt: skip
        pre = bake_weight_norm(tensors, "pre.conv")  # (C, n_mels + 2, kernel)
        self.channels = pre.shape[0]  # the taps as rows, tap-major, as _window lays them out
        self.pre = (_c(pre.transpose(0, 2, 1).reshape(pre.shape[0], -1)), f["pre.conv.bias"])

        def stack(name, fn=lambda a: a):
            return np.ascontiguousarray(np.stack([fn(f[f"blocks.{i}.{name}"]) for i in range(n)]))

        dw = [bake_weight_norm(tensors, f"blocks.{i}.dw.conv")[:, 0, :] for i in range(n)]
        self.blocks = (
            np.ascontiguousarray(np.stack([w.T for w in dw])), stack("dw.conv.bias"),
            stack("norm.weight"), stack("norm.bias"), stack("up.weight"), stack("up.bias"),
            stack("down.weight"), stack("down.bias"), stack("scale"),
        )  # fmt: skip
        # the head (of the normed trunk) and the skip (of the mel) as one dense map
        out_w = np.concatenate([f["head.weight"], f["skip.weight"]], 1)
        self.final = (f["norm.weight"], f["norm.bias"], np.ascontiguousarray(out_w),
                      f["head.bias"] + f["skip.bias"])  # fmt: skip

    def initial_state(self, batch: int = 1) -> dict:
        return {
            "pre": np.zeros((batch, self.kernel - 1, self.n_mels + 2), np.float32),
            "blocks": np.zeros(
                (batch, len(self.blocks[0]), BLOCK_KERNEL - 1, self.channels), np.float32
            ),
        }

    @staticmethod
    def join(states: list[dict]) -> dict:
        """One state for several streams, in order."""
        return {k: np.concatenate([s[k] for s in states]) for k in ("pre", "blocks")}

    @staticmethod
    def part(state: dict) -> list[dict]:
        """One state per stream, as :meth:`join` joined them."""
        return [{"pre": state["pre"][i : i + 1], "blocks": state["blocks"][i : i + 1]}
                for i in range(state["pre"].shape[0])]  # fmt: skip

    def _run(self, feat, mel_t, log_f0, pre, blocks, out):
        """:func:`_forward` of ``B`` streams ``(B, T, ...)``, the caches updated in place."""
        _forward(feat, mel_t, log_f0, pre, blocks, *self.pre, *self.blocks, *self.final, out)

    def stream_log(self, mel: np.ndarray, f0: np.ndarray, state: dict | None = None):
        mel = np.asarray(mel, np.float32)
        b, _, t = mel.shape
        st = state if state is not None else self.initial_state(b)
        pre, blocks = st["pre"].copy(), st["blocks"].copy()  # the caller's state stays as it was
        f0 = np.asarray(f0, np.float32)
        voiced = f0 > 0
        lf0 = np.log2(np.maximum(f0, np.float32(1.0)) / np.float32(F0_REF)) * voiced
        mel_t = np.ascontiguousarray(mel.transpose(0, 2, 1))
        feat = np.concatenate([mel_t, lf0[..., None], voiced[..., None]], -1, dtype=np.float32)
        log_f0 = np.log(np.maximum(f0, np.float32(1.0)))
        out = np.empty((b, t, 2 * self.bins), np.float32)
        if b == 1 and t >= max(PARALLEL_FRAMES, 2 * self.reach):  # a long stream: 2 threads
            self._halves(feat, mel_t, log_f0, pre, blocks, out)
        else:  # many voices: on two threads

            def part(a: int, z: int) -> None:
                ps, bs = pre[a:z].copy(), blocks[a:z].copy()
                self._run(feat[a:z], mel_t[a:z], log_f0[a:z], ps, bs, out[a:z])
                pre[a:z], blocks[a:z] = ps, bs

            in_halves(part, b)
        filters = (out[..., : self.bins], out[..., self.bins :], voiced)
        return filters, {"pre": pre, "blocks": blocks}

    def _halves(self, feat, mel_t, log_f0, pre, blocks, out):
        """One long stream ``(1, T, ...)`` on two threads. The network is causal and
        reaches back :attr:`reach` frames, so the second half starts from the state a
        warm-up over the ``reach`` frames before it leaves (the same bits: every value in
        that state depends on those frames alone); its end state is the stream's."""
        t = feat.shape[1]
        mid, reach = t // 2, self.reach
        st2 = self.initial_state(1)
        pre2, blocks2 = st2["pre"], st2["blocks"]
        warm, part = slice(mid - reach, mid), slice(mid, t)

        def second():
            scratch = np.empty((1, reach, out.shape[2]), np.float32)
            self._run(feat[:, warm], mel_t[:, warm], log_f0[:, warm], pre2, blocks2, scratch)
            self._run(feat[:, part], mel_t[:, part], log_f0[:, part], pre2, blocks2,
                      out[:, part])  # fmt: skip

        fut = helper().submit(second)
        first = slice(0, mid)
        self._run(feat[:, first], mel_t[:, first], log_f0[:, first], pre, blocks, out[:, first])
        fut.result()
        pre[:], blocks[:] = pre2, blocks2

    @property
    def reach(self) -> int:
        """Frames before a frame that its filters depend on (the convolutions' contexts)."""
        return self.kernel - 1 + len(self.blocks[0]) * (BLOCK_KERNEL - 1)
