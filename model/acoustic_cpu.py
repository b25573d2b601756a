"""The acoustic model's inference on the CPU without torch: :class:`model.acoustic.AcousticModel`
from its weights, on numba kernels (:mod:`model.kernels`). What :class:`model.voice.Voice`
asks of a model: the text encoding with its durations and prosody (:meth:`encode`), the
control projection, and the generator offline (:meth:`generate`) or streaming
(:meth:`stream` / :meth:`flush`, the states joined for batched voices by :meth:`join`).

The frames agree with the torch model to float32 rounding (tested); the generator's voices
are the rows of its dense maps (a voice alone by :func:`model.kernels.dense1`, several four
at a time by :func:`model.kernels.dense`: batched, a voice's frames differ from its frames
alone by float rounding), and a stream equals the offline pass to the bit over any chunks.
Models with audio feedback (``audio_encoder`` > 0) are not covered: :func:`supports` says
so and the voice keeps torch.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from model.kernels import ROWS, dense, dense1, in_halves

BN_EPS = 1e-5


def supports(kwargs: dict) -> bool:
    """Whether a model of these constructor kwargs runs here (no audio feedback)."""
    return not kwargs.get("audio_encoder", 0)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _sigmoid(v):  # pragma: no cover
    return 1.0 / (1.0 + math.exp(-v))


@numba.njit(cache=True, nogil=True)
def _lstm(xp, w_hh, reverse, out):  # pragma: no cover
    """One direction of an LSTM over ``xp (N, 4H)`` (the inputs' projection, both biases
    in) -> ``out (N, H)``; torch's gate order i, f, g, o."""
    n, hid = out.shape
    h = np.zeros((1, hid), np.float32)
    c = np.zeros(hid, np.float32)
    gh = np.empty((1, 4 * hid), np.float32)
    zero = np.zeros(4 * hid, np.float32)
    for s in range(n):
        t = n - 1 - s if reverse else s
        dense1(h, w_hh, zero, gh)
        for j in range(hid):
            i_ = _sigmoid(xp[t, j] + gh[0, j])
            f_ = _sigmoid(xp[t, hid + j] + gh[0, hid + j])
            g_ = math.tanh(xp[t, 2 * hid + j] + gh[0, 2 * hid + j])
            o_ = _sigmoid(xp[t, 3 * hid + j] + gh[0, 3 * hid + j])
            c[j] = f_ * c[j] + i_ * g_
            h[0, j] = o_ * math.tanh(c[j])
            out[t, j] = h[0, j]


@numba.njit(cache=True, nogil=True)
def _mm(x, w, b, out):  # pragma: no cover
    """A recurrence's dense map of one row (:func:`dense1`, 2.4x faster alone) or of
    several, four sharing each pass over the weights (:func:`dense`)."""
    if x.shape[0] == 1:
        dense1(x, w, b, out)
    else:
        dense(x, w, b, out)


@numba.njit(cache=True, nogil=True)
def _generate(groups, h, pre_w, pre_b, w_ih, b_ih, w_hh, b_hh, head_w, head_b, p1_w, p1_b,
              p2_w, p2_b, r, out):  # pragma: no cover  # fmt: skip
    """The generator over groups of ``r`` frames ``(B, G, D * r)`` from the GRU states ``h
    (layers, B, H)`` (updated in place) -> ``out (B, G * r, n_out)``: the mel frames, and
    with a pitch head (``p1_w`` not empty) two more channels a frame. What does not recur
    (the prenet, each layer's input projection, the heads) runs over all the chunk's groups
    at once by :func:`model.kernels.dense` (rows ``(voice, group)``, each the same bits
    however many); the recurrence a group at a time, a voice alone by
    :func:`model.kernels.dense1`, several by :func:`model.kernels.dense`."""
    b, g_n, dr = groups.shape
    n = b * g_n
    n4 = -(-n // ROWS) * ROWS
    b4 = 1 if b == 1 else -(-b // ROWS) * ROWS
    layers, _, hid = h.shape
    n_mels = head_w.shape[0] // r
    x = np.zeros((n4, dr), np.float32)
    x[:n] = groups.reshape(n, dr)
    a = np.empty((n4, hid), np.float32)  # each layer's input, then its output
    dense(x, pre_w, pre_b, a)
    for i in range(n4):
        for j in range(hid):
            a[i, j] = max(a[i, j], np.float32(0.0))
    gi = np.empty((n4, 3 * hid), np.float32)
    hl = np.zeros((b4, hid), np.float32)
    gh = np.empty((b4, 3 * hid), np.float32)
    for ly in range(layers):
        dense(a, w_ih[ly], b_ih[ly], gi)
        for g in range(g_n):
            hl[:b] = h[ly]
            _mm(hl, w_hh[ly], b_hh[ly], gh)
            for i in range(b):
                row = i * g_n + g
                for j in range(hid):
                    rr = _sigmoid(gi[row, j] + gh[i, j])
                    z = _sigmoid(gi[row, hid + j] + gh[i, hid + j])
                    nn_ = math.tanh(gi[row, 2 * hid + j] + rr * gh[i, 2 * hid + j])
                    h[ly, i, j] = (1.0 - z) * nn_ + z * h[ly, i, j]
                    a[row, j] = h[ly, i, j]
    mel = np.empty((n4, head_w.shape[0]), np.float32)
    dense(a, head_w, head_b, mel)
    pitch = p1_w.shape[0] > 0
    p2 = np.empty((n4, p2_w.shape[0]), np.float32)
    if pitch:
        p1 = np.empty((n4, p1_w.shape[0]), np.float32)
        dense(a, p1_w, p1_b, p1)
        for i in range(n4):
            for j in range(p1.shape[1]):
                p1[i, j] = max(p1[i, j], np.float32(0.0))
        dense(p1, p2_w, p2_b, p2)
    for i in range(b):
        for g in range(g_n):
            row = i * g_n + g
            for k in range(r):
                out[i, g * r + k, :n_mels] = mel[row, k * n_mels : (k + 1) * n_mels]
                if pitch:
                    out[i, g * r + k, n_mels] = p2[row, 2 * k]
                    out[i, g * r + k, n_mels + 1] = p2[row, 2 * k + 1]


class CpuState(NamedTuple):
    hidden: np.ndarray  # (layers, B, H)
    pending: np.ndarray  # (B, k < r, D): inputs waiting for a full group of r frames


def _conv(w: np.ndarray, b: np.ndarray, scale=None, shift=None):
    """A ``Conv1d`` weight ``(C_out, C_in, K)`` as a dense map of tap-major windows, a
    following eval-mode BatchNorm (``x * scale + shift``) folded in."""
    if scale is not None:
        w, b = w * scale[:, None, None], b * scale + shift
    k = w.shape[2]
    flat = w.transpose(0, 2, 1).reshape(w.shape[0], -1)
    return np.ascontiguousarray(flat, np.float32), np.asarray(b, np.float32), k


def _apply_conv(x: np.ndarray, conv, relu: bool) -> np.ndarray:
    """A same-padded convolution of ``x (N, C)`` along N."""
    w, b, k = conv
    pad = k // 2
    xp = np.pad(x, ((pad, k - 1 - pad), (0, 0)))
    rows = np.concatenate([xp[j : j + len(x)] for j in range(k)], 1)
    out = np.empty((len(x), w.shape[0]), np.float32)
    dense1(np.ascontiguousarray(rows, np.float32), w, b, out)
    return np.maximum(out, 0.0) if relu else out


class CpuAcoustic:
    """See the module docstring. ``tensors``: the model's state dict; ``kwargs``: its
    constructor's."""

    def __init__(self, tensors: dict, kwargs: dict):
        if not supports(kwargs):
            raise ValueError("the CPU engine has no audio feedback (audio_encoder > 0)")
        f = {k: np.asarray(v, np.float32) for k, v in tensors.items() if v.dtype != np.int64}
        self.kwargs = dict(kwargs)
        self.r, self.n_mels = kwargs.get("r", 2), kwargs.get("n_mels", 80)
        self.sung_flag = bool(kwargs.get("sung_flag"))
        self.pitch = bool(kwargs.get("f0_head"))
        self.n_out = self.n_mels + (2 if self.pitch else 0)
        self.embed = f["encoder.embed.weight"]
        self.enc_convs = []
        for i in range(3):
            p, bn = f"encoder.convs.{i}.0", f"encoder.convs.{i}.1"
            scale = f[f"{bn}.weight"] / np.sqrt(f[f"{bn}.running_var"] + BN_EPS)
            shift = f[f"{bn}.bias"] - f[f"{bn}.running_mean"] * scale
            self.enc_convs.append(_conv(f[f"{p}.weight"], f[f"{p}.bias"], scale, shift))
        self.lstm = [
            (f[f"encoder.lstm.weight_ih_l0{s}"],
             f[f"encoder.lstm.bias_ih_l0{s}"] + f[f"encoder.lstm.bias_hh_l0{s}"],
             f[f"encoder.lstm.weight_hh_l0{s}"])
            for s in ("", "_reverse")
        ]  # fmt: skip
        self.variance = {
            name: [_conv(f[f"{name}.net.{j}.weight"], f[f"{name}.net.{j}.bias"]) for j in (0, 3, 6)]
            for name in ("duration", "prosody")
        }  # fmt: skip
        self.control = (f["control_proj.weight"], f["control_proj.bias"])
        g = "generator"
        self.layers = kwargs.get("layers", 2)
        self.pre = (f[f"{g}.prenet.0.weight"], f[f"{g}.prenet.0.bias"])
        self.hidden = self.pre[0].shape[0]
        self.in_dim = self.pre[0].shape[1] // self.r

        def stack(name):
            return np.ascontiguousarray(np.stack([f[f"{g}.gru.{name}_l{i}"]
                                                  for i in range(self.layers)]))  # fmt: skip

        empty = (np.zeros((0, self.hidden), np.float32), np.zeros(0, np.float32))
        p1 = (f[f"{g}.pitch.0.weight"], f[f"{g}.pitch.0.bias"]) if self.pitch else empty
        p2 = (f[f"{g}.pitch.2.weight"], f[f"{g}.pitch.2.bias"]) if self.pitch else empty
        head = (f[f"{g}.head.weight"], f[f"{g}.head.bias"])
        grus = (stack("weight_ih"), stack("bias_ih"), stack("weight_hh"), stack("bias_hh"))
        self.gen = (*self.pre, *grus, *head, *p1, *p2)

    # ---------------------------------------------------------------- text

    def _predict(self, name: str, enc: np.ndarray) -> np.ndarray:
        convs = self.variance[name]
        x = _apply_conv(enc, convs[0], True)
        x = _apply_conv(x, convs[1], True)
        return _apply_conv(x, convs[2], False)

    def encode(self, tokens: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token ids -> the encoding ``(N, C)``, log(1 + frames) ``(N,)``, prosody ``(N, 3)``."""
        x = self.embed[np.asarray(tokens, np.int64)]
        for conv in self.enc_convs:
            x = _apply_conv(x, conv, True)
        halves = []
        for w_ih, b, w_hh in self.lstm:
            xp = np.empty((len(x), w_ih.shape[0]), np.float32)
            dense1(np.ascontiguousarray(x), w_ih, b, xp)
            out = np.empty((len(x), w_hh.shape[1]), np.float32)
            _lstm(xp, w_hh, len(halves) == 1, out)
            halves.append(out)
        enc = np.concatenate(halves, 1)
        return enc, self._predict("duration", enc)[:, 0], self._predict("prosody", enc)

    def project_controls(self, controls: np.ndarray, sung: float = 0.0) -> np.ndarray:
        """Frame controls ``(T, 3)`` -> their projection ``(T, C / 4)`` (``sung``: the
        fourth control of a model with the sung flag)."""
        c = np.asarray(controls, np.float32)
        if self.sung_flag:
            c = np.concatenate([c, np.full((len(c), 1), sung, np.float32)], 1)
        out = np.empty((len(c), self.control[0].shape[0]), np.float32)
        dense1(np.ascontiguousarray(c), *self.control, out)
        return out

    # ---------------------------------------------------------------- generator

    def initial_state(self, batch: int = 1) -> CpuState:
        return CpuState(np.zeros((self.layers, batch, self.hidden), np.float32),
                        np.zeros((batch, 0, self.in_dim), np.float32))  # fmt: skip

    @staticmethod
    def join(states: list[CpuState]) -> CpuState:
        return CpuState(np.concatenate([s.hidden for s in states], 1),
                        np.concatenate([s.pending for s in states], 0))  # fmt: skip

    @staticmethod
    def part(state: CpuState) -> list[CpuState]:
        h, p = state.hidden, state.pending
        return [CpuState(h[:, i : i + 1], p[i : i + 1]) for i in range(h.shape[1])]

    def _run(self, groups: np.ndarray, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The generator on ``B`` voices' groups; many voices split over two threads."""
        groups = np.ascontiguousarray(groups, np.float32)
        b = groups.shape[0]
        h = hidden.copy()
        out = np.empty((b, groups.shape[1] * self.r, self.n_out), np.float32)

        def part(a: int, z: int) -> None:
            hs = np.ascontiguousarray(h[:, a:z])
            _generate(groups[a:z], hs, *self.gen, self.r, out[a:z])
            h[:, a:z] = hs

        in_halves(part, b)
        return out, h

    def stream(self, x: np.ndarray, state: CpuState | None = None):
        """Frame inputs ``(B, T, D)`` -> the frames now complete ``(B, T', n_out)`` and the
        state (``r - 1`` frames at most held until their group is complete)."""
        st = state if state is not None else self.initial_state(x.shape[0])
        x = np.concatenate([st.pending, np.asarray(x, np.float32)], 1)
        b, t, d = x.shape
        full = t - t % self.r
        if full == 0:
            return np.zeros((b, 0, self.n_out), np.float32), CpuState(st.hidden, x)
        y, h = self._run(x[:, :full].reshape(b, full // self.r, d * self.r), st.hidden)
        return y, CpuState(h, x[:, full:])

    def flush(self, state: CpuState) -> np.ndarray:
        k = state.pending.shape[1]
        b = state.pending.shape[0]
        if k == 0:
            return np.zeros((b, 0, self.n_out), np.float32)
        x = np.pad(state.pending, ((0, 0), (0, self.r - k), (0, 0)))
        return self._run(x.reshape(b, 1, -1), state.hidden)[0][:, :k]

    def generate(self, x: np.ndarray) -> np.ndarray:
        """Offline: frame inputs ``(B, T, D)`` -> ``(B, T, n_out)``."""
        y, st = self.stream(x)
        return np.concatenate([y, self.flush(st)], 1)
