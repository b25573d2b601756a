"""The aligner: text-to-mel soft attention trained with a forward-sum (CTC) loss, read out
as hard durations by monotonic alignment search (after Badlani et al., "One TTS Alignment
to Rule Them All", 2021)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import dsp


class AlignerNet(nn.Module):
    """Tokens ``(B, N)`` and log-mel ``(B, n_mels, T)`` -> log attention ``(B, T, N)``."""

    def __init__(
        self,
        n_symbols: int,
        n_mels: int = 80,
        channels: int = 256,
        attn_channels: int = 80,
        temperature: float = 0.0005,
    ):
        super().__init__()
        self.kwargs = {
            "n_symbols": n_symbols,
            "n_mels": n_mels,
            "channels": channels,
            "attn_channels": attn_channels,
            "temperature": temperature,
        }
        self.temperature = temperature
        self.embed = nn.Embedding(n_symbols, channels, padding_idx=0)
        self.keys = nn.Sequential(
            nn.Conv1d(channels, channels * 2, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels * 2, attn_channels, 1),
        )
        self.queries = nn.Sequential(
            nn.Conv1d(n_mels, n_mels * 2, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(n_mels * 2, n_mels, 1),
            nn.ReLU(),
            nn.Conv1d(n_mels, attn_channels, 1),
        )

    def forward(
        self,
        tokens: torch.Tensor,
        token_lens: torch.Tensor,
        mel: torch.Tensor,
        prior: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Log attention over tokens for each frame, ``(B, T, N)``; padded tokens get -inf.

        ``prior``: optional ``(B, T, N)`` probabilities (the beta-binomial alignment prior).
        """
        k = self.keys(self.embed(tokens).transpose(1, 2))  # (B, C, N)
        q = self.queries(mel)  # (B, C, T)
        dist = (
            q.pow(2).sum(1)[:, :, None]
            + k.pow(2).sum(1)[:, None, :]
            - 2 * torch.bmm(q.transpose(1, 2), k)
        )
        logits = -self.temperature * dist
        if prior is not None:
            logits = F.log_softmax(logits, dim=-1) + torch.log(prior + 1e-8)
        n = tokens.shape[1]
        pad = torch.arange(n, device=tokens.device)[None, :] >= token_lens[:, None]
        return F.log_softmax(logits.masked_fill(pad[:, None, :], -1e9), dim=-1)


def forward_sum_loss(
    logp: torch.Tensor,
    token_lens: torch.Tensor,
    frame_lens: torch.Tensor,
    blank_logprob: float = -1.0,
) -> torch.Tensor:
    """CTC over frames with the tokens, in order, as the target: the log-likelihood of all
    monotonic alignments. ``logp`` ``(B, T, N)`` from :class:`AlignerNet`."""
    b, _, n = logp.shape
    padded = F.pad(logp, (1, 0), value=blank_logprob)  # blank at index 0
    pad = torch.arange(n + 1, device=logp.device)[None, :] > token_lens[:, None]
    padded = padded.masked_fill(pad[:, None, :], -1e9)
    log_probs = F.log_softmax(padded, dim=-1).transpose(0, 1)  # (T, B, N + 1)
    targets = torch.arange(1, n + 1, device=logp.device)[None, :].expand(b, n)
    return F.ctc_loss(
        log_probs, targets, frame_lens, token_lens, blank=0, reduction="mean", zero_infinity=True
    )


def beta_binomial_prior(n_tokens: int, n_frames: int, scale: float = 1.0) -> np.ndarray:
    """``(n_frames, n_tokens)`` prior that favours the diagonal (RAD-TTS's)."""
    from scipy.stats import betabinom

    k = np.arange(n_tokens)
    t = np.arange(1, n_frames + 1)[:, None]
    return betabinom.pmf(k[None, :], n_tokens - 1, scale * t, scale * (n_frames + 1 - t))


def durations(logp: torch.Tensor, n_tokens: int, n_frames: int) -> np.ndarray:
    """Hard durations for one item from its ``(T, N)`` log attention (MAS)."""
    x = logp[:n_frames, :n_tokens].detach().cpu().double().numpy().T
    return dsp.monotonic_alignment(x)
