"""Training the aligner and measuring it against Festival's own phone times.

``melgand train aligner --data DIR --run RUNDIR`` learns, for a dataset without alignments,
how many mel frames each token lasts. Tokens come from the text frontend, or, for a
Festival corpus, from its segment files' phone names (``--tokens segments``: the times are
never shown to the aligner; they are the ground truth of the evaluation).
"""

from __future__ import annotations

import difflib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import dsp
from model import checkpoint
from model.aligner import AlignerNet, beta_binomial_prior, durations, forward_sum_loss
from model.frontend import Frontend
from trainer import corpus, dataset, features


@dataclass
class Item:
    id: str
    units: list[str]
    tokens: np.ndarray  # (N,) int64
    mel: np.ndarray  # (80, T) float32
    prior: np.ndarray  # (T, N) float32


def load_items(data: Path, conv: dsp.Convention, token_source: str
               ) -> tuple[list[Item], Frontend]:  # fmt: skip
    prepared = features.prepare(data, conv, progress=False)
    fe = dataset.frontend_for(token_source, prepared.report.good)
    items = []
    for row in prepared.report.good:
        units = dataset.token_units(data, row, token_source, fe)
        mel = features.load(prepared.cache, row.id)["mel"]
        if mel.shape[1] < len(units):
            continue
        tokens = np.array(fe.encode_units(units), dtype=np.int64)
        prior = beta_binomial_prior(len(tokens), mel.shape[1]).astype(np.float32)
        items.append(Item(row.id, units, tokens, mel, prior))
    return items, fe


def batch(items: list[Item], mean: float, std: float):
    b, n, t = len(items), max(len(i.tokens) for i in items), max(i.mel.shape[1] for i in items)
    tokens = torch.zeros(b, n, dtype=torch.long)
    mel = torch.zeros(b, items[0].mel.shape[0], t)
    prior = torch.full((b, t, n), 1e-8)
    for j, it in enumerate(items):
        tokens[j, : len(it.tokens)] = torch.from_numpy(it.tokens)
        mel[j, :, : it.mel.shape[1]] = (torch.from_numpy(it.mel) - mean) / std
        prior[j, : it.mel.shape[1], : len(it.tokens)] = torch.from_numpy(it.prior)
    token_lens = torch.tensor([len(i.tokens) for i in items])
    frame_lens = torch.tensor([i.mel.shape[1] for i in items])
    return tokens, token_lens, mel, frame_lens, prior


def boundary_errors_ms(
    units: list[str],
    dur: np.ndarray,
    segs: list[tuple[float, float, str]],
    conv: dsp.Convention,
) -> np.ndarray:
    """|predicted - Festival| in ms for every phone boundary inside the utterance that both
    sides have: where our tokens differ from Festival's phones (frontend tokens), only the
    boundaries between two phones that match on both sides are scored."""
    ours = np.cumsum(dur)[:-1] * conv.hop_length / conv.sample_rate
    fest = [p for *_, p in segs]
    truth = np.array([end for _, end, _ in segs[:-1]])
    pairs = []
    matcher = difflib.SequenceMatcher(a=units, b=fest, autojunk=False)
    for block in matcher.get_matching_blocks():
        pairs += [(block.a + k, block.b + k) for k in range(block.size - 1)]
    i, j = (np.array(x, dtype=int) for x in zip(*pairs, strict=True)) if pairs else ([], [])
    return np.abs(ours[i] - truth[j]) * 1000.0


def plot_alignment(path: Path, logp: np.ndarray, dur: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def train(
    data: Path,
    run: Path,
    conv: dsp.Convention,
    steps: int = 3000,
    batch_size: int = 16,
    lr: float = 1e-3,
    token_source: str = "frontend",
    seed: int = 0,
    held_out: float = 0.05,
    bin_loss_from: float = 0.5,
    progress: bool = True,
    command: str = "",
) -> dict:
    """Train, evaluate on held-out items, write durations for every item; returns metrics."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    run.mkdir(parents=True, exist_ok=True)
    items, fe = load_items(data, conv, token_source)
    if len(items) < 2:
        raise ValueError(f"{data}: need at least 2 usable items to train an aligner")
    items.sort(key=lambda i: i.id)
    n_val = max(1, round(len(items) * held_out))
    val, tr = items[-n_val:], items[:-n_val]
    all_mel = np.concatenate([i.mel for i in tr], axis=1)
    mean, std = float(all_mel.mean()), float(all_mel.std())
    model = AlignerNet(len(fe.symbols), conv.n_mels)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-6)
    t0 = time.perf_counter()
    bar = tqdm(range(steps), desc="aligner", disable=not progress)
    losses = []
    for step in bar:
        chosen = rng.sample(tr, min(batch_size, len(tr)))
        tokens, token_lens, mel, frame_lens, prior = batch(chosen, mean, std)
        logp = model(tokens, token_lens, mel, prior)
        loss = forward_sum_loss(logp, token_lens, frame_lens)
        if step >= bin_loss_from * steps:  # sharpen towards the MAS path
            hard = torch.zeros_like(logp)
            for j in range(len(chosen)):
                d = durations(logp[j], int(token_lens[j]), int(frame_lens[j]))
                hard[j, np.arange(d.sum()), np.repeat(np.arange(len(d)), d)] = 1.0
            loss = loss - (hard * logp.clamp(min=-1e4)).sum() / hard.sum()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"aligner loss is {loss.item()} at step {step}")
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    train_s = time.perf_counter() - t0

    model.eval()
    out_dir = run / "durations"
    out_dir.mkdir(exist_ok=True)
    errors, has_truth = [], (data / "segments").is_dir()
    with torch.no_grad():
        for k, it in enumerate(val + tr):
            tokens, token_lens, mel, frame_lens, prior = batch([it], mean, std)
            logp = model(tokens, token_lens, mel, prior)[0]
            d = durations(logp, len(it.tokens), it.mel.shape[1])
            assert d.sum() == it.mel.shape[1]
            np.save(out_dir / f"{it.id}.npy", d)
            if k < len(val):
                if has_truth:
                    segs = corpus.read_segments(data / "segments" / f"{it.id}.lab")
                    errors.append(boundary_errors_ms(it.units, d, segs, conv))
                if k < 3:
                    plot_alignment(
                        run / f"align_{it.id}.png", logp.numpy(), d, f"{it.id} (held out)"
                    )
    metrics = {
        "steps": steps,
        "train_items": len(tr),
        "held_out_items": len(val),
        "train_seconds": round(train_s, 1),
        "final_loss": float(np.mean(losses[-50:])),
    }
    if errors:
        e = np.concatenate(errors)
        metrics.update(
            boundary_mae_ms=float(e.mean()),
            boundary_median_ms=float(np.median(e)),
            boundary_p90_ms=float(np.percentile(e, 90)),
            boundaries=int(e.size),
        )
    header = {
        "kind": "aligner",
        "kwargs": model.kwargs,
        "convention": conv.to_dict(),
        "frontend": fe.to_dict(),
        "mel_mean": mean,
        "mel_std": std,
        "tokens": token_source,
        "provenance": {"command": command, "data": str(data)},
        "metrics": metrics,
    }
    checkpoint.save(run / "aligner.safetensors", model.state_dict(), header)
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
