"""Training the aligner and measuring it against Festival's own phone times.

``melgand train aligner --data DIR --run RUNDIR`` learns, for a dataset without alignments,
how many mel frames each token lasts. Tokens come from the text frontend, or, for a
Festival corpus, from its segment files' phone names (``--tokens segments``: the times are
never shown to the aligner; they are the ground truth of the evaluation).
"""

from __future__ import annotations

import difflib
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import dsp
from model.aligner import AlignerNet, beta_binomial_prior, durations, forward_sum_loss
from model.frontend import Frontend
from trainer import corpus, dataset, features, fit, plots, runtime


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
    task = AlignerTask(data, conv, run, fe, tr, val, batch_size=batch_size, lr=lr,
                       bin_loss_from=bin_loss_from * steps,
                       token_source=token_source, command=command)  # fmt: skip
    rt = runtime.Runtime(torch.device("cpu"), None)  # one process, full precision
    return fit.fit(task, rt, run, rng, steps=steps, progress=progress)


class AlignerTask:
    """The aligner's hooks for :func:`trainer.fit.fit`: the forward-sum loss, and from step
    ``bin_loss_from`` a pull towards the monotonic path; validated once, at the end, where it
    writes every item's durations and scores the held-out ones against Festival's."""

    kind, clip = "aligner", 1.0

    def __init__(self, data: Path, conv: dsp.Convention, run: Path, fe: Frontend,
                 tr: list[Item], val: list[Item], *, batch_size: int, lr: float,
                 bin_loss_from: float, token_source: str, command: str) -> None:  # fmt: skip
        self.data, self.conv, self.run, self.fe, self.tr, self.val = data, conv, run, fe, tr, val
        self.batch_size, self.bin_loss_from = batch_size, bin_loss_from
        self.token_source, self.command = token_source, command
        all_mel = np.concatenate([i.mel for i in tr], axis=1)
        self.mean, self.std = float(all_mel.mean()), float(all_mel.std())
        self.net = AlignerNet(len(fe.symbols), conv.n_mels)
        self.opts = {"opt": torch.optim.AdamW(self.net.parameters(), lr=lr, weight_decay=1e-6)}
        self.scheds: dict = {}
        self.modules: dict = {}
        self.seen: list[float] = []  # the losses so far

    def wrap(self, rt: runtime.Runtime) -> torch.nn.Module:
        self.t0 = time.perf_counter()
        return self.net

    def batch(self, rng: random.Random):
        chosen = rng.sample(self.tr, min(self.batch_size, len(self.tr)))
        return [c.id for c in chosen], batch(chosen, self.mean, self.std)

    def losses(self, b, step: int) -> dict[str, torch.Tensor]:
        tokens, token_lens, mel, frame_lens, prior = b
        logp = self.net(tokens, token_lens, mel, prior)
        loss = forward_sum_loss(logp, token_lens, frame_lens)
        if step >= self.bin_loss_from:  # sharpen towards the MAS path
            hard = torch.zeros_like(logp)
            for j in range(len(tokens)):
                d = durations(logp[j], int(token_lens[j]), int(frame_lens[j]))
                hard[j, np.arange(d.sum()), np.repeat(np.arange(len(d)), d)] = 1.0
            loss = loss - (hard * logp.clamp(min=-1e4)).sum() / hard.sum()
        return {"total": loss}

    def after_step(self, scaler, out: dict, step: int) -> None:
        self.seen.append(out["total"].item())

    def validate(self, step: int, tb) -> dict:
        """Every item's durations into ``durations/``; the held-out boundary errors."""
        train_s = time.perf_counter() - self.t0
        errors = self._write_durations()
        metrics = {
            "steps": step,
            "train_items": len(self.tr),
            "held_out_items": len(self.val),
            "train_seconds": round(train_s, 1),
            "final_loss": float(np.mean(self.seen[-50:])),
        }
        if errors:
            e = np.concatenate(errors)
            metrics.update(
                boundary_mae_ms=float(e.mean()),
                boundary_median_ms=float(np.median(e)),
                boundary_p90_ms=float(np.percentile(e, 90)),
                boundaries=int(e.size),
            )
        return metrics

    def _write_durations(self) -> list[np.ndarray]:
        self.net.eval()
        out_dir = self.run / "durations"
        out_dir.mkdir(exist_ok=True)
        errors, has_truth = [], (self.data / "segments").is_dir()
        with torch.no_grad():
            for k, it in enumerate(self.val + self.tr):
                tokens, token_lens, mel, _, prior = batch([it], self.mean, self.std)
                logp = self.net(tokens, token_lens, mel, prior)[0]
                d = durations(logp, len(it.tokens), it.mel.shape[1])
                assert d.sum() == it.mel.shape[1]
                np.save(out_dir / f"{it.id}.npy", d)
                if k < len(self.val):
                    if has_truth:
                        segs = corpus.read_segments(self.data / "segments" / f"{it.id}.lab")
                        errors.append(boundary_errors_ms(it.units, d, segs, self.conv))
                    if k < 3:
                        plots.plot_alignment(self.run / f"align_{it.id}.png", logp.numpy(), d,
                                             f"{it.id} (held out)")  # fmt: skip
        self.net.train()
        return errors

    def header(self, step: int, metrics: dict) -> dict:
        return {
            "kind": "aligner",
            "kwargs": self.net.kwargs,
            "convention": self.conv.to_dict(),
            "frontend": self.fe.to_dict(),
            "mel_mean": self.mean,
            "mel_std": self.std,
            "tokens": self.token_source,
            "provenance": {"command": self.command, "data": str(self.data)},
            "metrics": metrics,
        }
