"""The neural half of the default vocoder: log-mel frames -> the STFT magnitude of the same
frames, by a small causal network at the frame rate; RTISI-LA (:mod:`dsp.phase`) makes the
phase and the audio.

Why this split: on held-out teacher audio RTISI-LA scores PESQ-WB 4.05 from the true
magnitudes but 3.52 from the least-squares inversion of the mel (:func:`dsp.mel_to_magnitude`),
which smears the harmonics that 80 mel bands blur. Predicting the magnitude is a regression
a network learns in minutes on a CPU; predicting a phase that overlap-adds cleanly is what
costs a GAN vocoder its million steps.

:class:`MagnitudeNet` is ConvNeXt blocks (causal depthwise convolution, layer norm, pointwise
MLP) over the frames; each output frame sees ``lookahead`` mel frames past its own, so
``delay = lookahead`` frames, and ``stream`` over any chunks equals ``forward``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dsp.mel import refine_to_mel
from dsp.phase import Rtisi
from model.layers import (
    SILENCE,
    Block,
    CachedConv,
    TorchVocoder,
    bake_weight_norm,
    frame_conv,
    linear,
)


class MagnitudeNet(nn.Module):
    def __init__(self, n_mels: int = 80, bins: int = 513, channels: int = 256, blocks: int = 6,
                 lookahead: int = 1):  # fmt: skip
        super().__init__()
        self.kwargs = {"arch": "magnitude", "n_mels": n_mels, "bins": bins,
                       "channels": channels, "blocks": blocks, "lookahead": lookahead}  # fmt: skip
        self.lookahead = self.delay = lookahead
        self.pre = CachedConv(n_mels, channels, 7)
        self.blocks = nn.ModuleList(Block(channels) for _ in range(blocks))
        self.norm = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, bins)
        self.skip = nn.Linear(n_mels, bins)  # the mel's own linear map, refined by the blocks

    def _head(self, x: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        head, skip = self.head, self.skip
        h = linear(self.norm(x.transpose(1, 2)), head.weight, head.bias)
        h = h + linear(mel.transpose(1, 2), skip.weight, skip.bias)
        return h.transpose(1, 2).clamp(-12.0, 8.0)

    def _causal(self, mel: torch.Tensor) -> torch.Tensor:
        x = frame_conv(self.pre, mel)[0]
        for b in self.blocks:
            x = b(x)
        return x

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, T)`` log-mel -> ``(B, bins, T)`` natural-log magnitude."""
        t = mel.shape[-1]
        mel = F.pad(mel, (0, self.lookahead), value=SILENCE)
        x = self._causal(mel)[..., self.lookahead :]
        return self._head(x, mel[..., :t])

    def initial_state(self, batch: int = 1, device=None) -> dict:
        return {
            "pre": self.pre.init_cache(batch, device),
            "blocks": [b.dw.init_cache(batch, device) for b in self.blocks],
            "mel": self.pre.init_cache(batch, device)[..., :0],
            "skip": torch.tensor(self.lookahead),  # frames still to drop
        }

    def stream(self, mel: torch.Tensor, state: dict | None = None) -> tuple[torch.Tensor, dict]:
        """A chunk ``(B, n_mels, k)`` -> the magnitude frames now final (``lookahead`` fewer
        at the start of a stream; :meth:`flush` gives them)."""
        return self.step(mel, state)[:2]

    def step(self, mel: torch.Tensor, state: dict | None = None):
        """:meth:`stream`, plus the input frames ``(B, n_mels, n)`` its ``n`` output frames
        belong to (those held back for the look-ahead, then this chunk's)."""
        st = state if state is not None else self.initial_state(mel.shape[0], mel.device)
        x, pre = frame_conv(self.pre, mel, st["pre"])
        caches = []
        for b, c in zip(self.blocks, st["blocks"], strict=True):
            x, c = b.stream(x, c)
            caches.append(c)
        skip = int(st["skip"])
        x = x[..., skip:]
        pending = torch.cat([st["mel"], mel], -1)  # mel frames whose output is not out yet
        n = x.shape[-1]
        out = self._head(x, pending[..., :n])
        new = {"pre": pre, "blocks": caches, "mel": pending[..., n:],
               "skip": torch.tensor(max(0, skip - mel.shape[-1]))}  # fmt: skip
        return out, new, pending[..., :n]

    def remove_weight_norm(self) -> MagnitudeNet:
        return bake_weight_norm(self)

    def flush(self, state: dict) -> torch.Tensor:
        return self.flush_step(state)[0]

    def flush_step(self, state: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The held-back frames' output and input frames, as :meth:`step` gives them."""
        b = state["pre"].shape[0]
        if not self.lookahead:
            return state["pre"].new_zeros(b, self.head.out_features, 0), state["mel"]
        pad = state["pre"].new_full((b, self.pre.conv.in_channels, self.lookahead), SILENCE)
        out, _, mel = self.step(pad, state)
        return out, mel


class MagnitudeVocoder(TorchVocoder):
    """:class:`MagnitudeNet` then RTISI-LA, behind the vocoder interface:
    ``(n_mels, T)`` numpy log-mel in, float32 audio out; ``stream`` / ``flush``; ``delay`` in
    samples.

    The network computes every frame to the same bits however frames are chunked
    (:func:`linear`, :func:`conv`), which RTISI-LA needs: it is chaotic, and magnitudes one
    part in 1e15 apart give samples O(1) apart a second later.

    ``mel_refine``: Lee-Seung steps that pull the network's magnitude toward its input mel
    (:func:`dsp.mel.refine_to_mel`) before RTISI-LA. The network keeps the fine structure, the
    mel the envelope: on an acoustic model's mels, smoother than the analysed ones it was
    trained on, the network alone strays from the envelope and the words blur."""

    def __init__(self, net: MagnitudeNet, conv, header: dict, rtisi_lookahead: int = 2,
                 rtisi_iters: int = 4, mel_refine: int = 0):  # fmt: skip
        self.rtisi = Rtisi(conv, rtisi_lookahead, rtisi_iters)
        super().__init__(net, conv, header, net.delay * conv.hop_length + self.rtisi.delay)
        self.mel_refine = mel_refine

    def _mag(self, logmag: torch.Tensor, mel: torch.Tensor) -> np.ndarray:
        """The network's ``(1, bins, n)`` log magnitude, refined toward ``mel`` ``(1, n_mels,
        n)`` (the input frames it belongs to), as float64 numpy."""
        mag = np.exp(logmag[0].float().cpu().numpy().astype(np.float64))
        if not self.mel_refine:
            return mag
        m = np.exp(mel[0].float().cpu().numpy().astype(np.float64))
        return refine_to_mel(mag, m, self.conv, self.mel_refine)

    @torch.no_grad()
    def magnitude(self, log_mel) -> np.ndarray:
        x = self._in(log_mel)
        return self._mag(self.net(x), x)

    def __call__(self, log_mel, f0=None) -> np.ndarray:
        return self.rtisi.offline(self.magnitude(log_mel))

    @torch.no_grad()
    def stream(self, log_mel, state: tuple | None = None, f0=None) -> tuple[np.ndarray, tuple]:
        ns, rs = state if state is not None else (None, None)
        m, ns, mel = self.net.step(self._in(log_mel), ns)
        y, rs = self.rtisi.stream(self._mag(m, mel), rs)
        return y, (ns, rs)

    @torch.no_grad()
    def stream_many(
        self, mels: list, states: list, pool=None, f0s=None
    ) -> list[tuple[np.ndarray, tuple]]:
        """:meth:`stream` for several voices' chunks of one length: the network runs once on
        all those past their first chunk (its cost is per call more than per voice), RTISI-LA
        per voice (on ``pool``'s threads if given: the numba kernel releases the GIL)."""
        nets: list = [None] * len(mels)
        ready = [i for i, s in enumerate(states) if s is not None and not int(s[0]["skip"])]
        if len(ready) > 1:
            st = [states[i][0] for i in ready]
            blocks = zip(*(s["blocks"] for s in st), strict=True)
            joined = {"pre": torch.cat([s["pre"] for s in st]),
                      "blocks": [torch.cat(c) for c in blocks],
                      "mel": torch.cat([s["mel"] for s in st]), "skip": st[0]["skip"]}  # fmt: skip
            x = torch.cat([self._in(mels[i]) for i in ready])
            m, new, pending = self.net.step(x, joined)
            for j, i in enumerate(ready):
                part = {"pre": new["pre"][j : j + 1], "mel": new["mel"][j : j + 1],
                        "blocks": [c[j : j + 1] for c in new["blocks"]],
                        "skip": new["skip"]}  # fmt: skip
                nets[i] = (m[j : j + 1], pending[j : j + 1], part)

        def one(i: int) -> tuple[np.ndarray, tuple]:
            if nets[i] is None:
                return self.stream(mels[i], states[i])
            m, mel, ns = nets[i]
            y, rs = self.rtisi.stream(self._mag(m, mel), states[i][1])
            return y, (ns, rs)

        return list(pool.map(one, range(len(mels)))) if pool else [one(i) for i in range(len(mels))]

    @torch.no_grad()
    def flush(self, state: tuple) -> np.ndarray:
        ns, rs = state
        m, mel = self.net.flush_step(ns)
        y, rs = self.rtisi.stream(self._mag(m, mel), rs) if m.shape[-1] else (np.zeros(0), rs)
        return np.concatenate([y, self.rtisi.flush(rs)]).astype(np.float32)
