"""The PNGs a validation writes: mels, token boundaries, alignments (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_mels(path: Path, target: np.ndarray, pred: np.ndarray, title: str) -> None:
    """Target above, prediction below; ``(T, n_mels)`` normalized log-mels."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    for ax, m, name in ((axes[0], target, "target"), (axes[1], pred, "predicted")):
        ax.imshow(m.T, origin="lower", aspect="auto", interpolation="none", vmin=-3, vmax=3)
        ax.set_ylabel(name)
    axes[0].set_title(title)
    axes[1].set_xlabel("frame")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def plot_durations(path: Path, target: np.ndarray, durations: np.ndarray,
                   predicted: np.ndarray, title: str) -> None:  # fmt: skip
    """The target mel ``(T, n_mels)`` with the token boundaries used in training (white) and
    those the duration predictor gives (red, dashed)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.imshow(target.T, origin="lower", aspect="auto", interpolation="none", vmin=-3, vmax=3)
    for x in np.cumsum(durations)[:-1]:
        ax.axvline(x - 0.5, color="white", lw=0.6)
    for x in np.cumsum(predicted)[:-1]:
        ax.axvline(x - 0.5, color="red", lw=0.6, ls="--")
    ax.set_title(title)
    ax.set_xlabel("frame")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def plot_alignment(path: Path, logp: np.ndarray, dur: np.ndarray, title: str) -> None:
    """The aligner's token probabilities ``(T, N)`` (log) and the durations' path (white)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.imshow(np.exp(logp).T, origin="lower", aspect="auto", interpolation="none")
    edges = np.concatenate(([0], np.cumsum(dur)))
    ax.step(edges, np.arange(len(edges)) - 0.5, where="post", color="w", lw=0.8)
    ax.set_xlabel("mel frame")
    ax.set_ylabel("token")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
