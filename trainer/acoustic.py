"""Training the acoustic model: `melgand train acoustic --data DIR --run RUNDIR [--resume]`.

Durations come from a Festival corpus's segment times (``tokens = "segments"``) or from an
aligner run's ``durations/`` (``tokens = "frontend"``, for users' datasets). Checkpoints
(safetensors + JSON header, written atomically) hold the model, and ``train_state.safetensors``
the optimizer, scheduler, step and random state, so that ``--resume`` continues the same run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

import dsp
from model import checkpoint
from model.acoustic import AcousticModel
from model.discriminators import MelDiscriminator, d_loss, feature_matching, g_adv_loss
from model.frontend import Frontend
from model.stats import Stats
from trainer import corpus, dataset, features, fit, plots, runtime

SUNG = "_sung"  # the id suffix of sung items


@dataclass
class Item:
    id: str
    tokens: np.ndarray  # (N,) int64
    durations: np.ndarray  # (N,) int64, summing to T
    mel: np.ndarray  # (n_mels, T)
    controls: np.ndarray  # (T, 3): log f0, voicing, energy (raw)
    sung: bool = False  # a sung copy (`melgand corpus ... --sung`): its durations are the notes'


def segment_durations(segs, n_frames: int, conv: dsp.Convention) -> np.ndarray:
    """Festival's segment end times -> integer frame durations (each >= 1, summing to T)."""
    ends = np.round(np.array([e for _, e, _ in segs]) * conv.sample_rate / conv.hop_length)
    ends = ends.astype(np.int64)
    ends[-1] = n_frames
    n = len(ends)
    for i in range(n):  # at least one frame each, and room left for the ones after
        ends[i] = min(max(ends[i], (ends[i - 1] if i else 0) + 1), n_frames - (n - 1 - i))
    return np.diff(np.concatenate(([0], ends)))


def load_items(data: Path, conv: dsp.Convention, token_source: str,
               aligner_run: Path | None = None) -> tuple[list[Item], Frontend]:  # fmt: skip
    prepared = features.prepare(data, conv, progress=False)
    fe = dataset.frontend_for(token_source, prepared.report.good)
    items = []
    for row in prepared.report.good:
        f = features.load(prepared.cache, row.id)
        n_frames = f["mel"].shape[1]
        if token_source == "segments":
            segs = corpus.read_segments(data / "segments" / f"{row.id}.lab")
            units = [p for *_, p in segs]
            if n_frames < len(units):
                continue
            dur = segment_durations(segs, n_frames, conv)
        else:
            if aligner_run is None:
                raise ValueError(f"{token_source} tokens need durations: pass an aligner run")
            units = dataset.token_units(data, row, token_source, fe)
            path = aligner_run / "durations" / f"{row.id}.npy"
            if not path.exists():
                continue
            dur = np.load(path)
        logf0 = np.where(f["voiced"], np.log(np.maximum(f["f0"], 1.0)), 0.0)
        controls = np.stack([logf0, f["voiced"].astype(np.float64), f["energy"]], 1)
        items.append(Item(row.id, np.array(fe.encode_units(units)), dur, f["mel"],
                          controls.astype(np.float32), row.id.endswith(SUNG)))  # fmt: skip
    return items, fe


def make_batch(items: list[Item], stats: Stats):
    b, n, t = len(items), max(len(i.tokens) for i in items), max(i.mel.shape[1] for i in items)
    tokens = torch.zeros(b, n, dtype=torch.long)
    durs = torch.zeros(b, n, dtype=torch.long)
    mel = torch.zeros(b, t, items[0].mel.shape[0])
    ctrl = torch.zeros(b, t, 3)
    frame_mask = torch.zeros(b, t, dtype=torch.bool)
    tok_mask = torch.zeros(b, n, dtype=torch.bool)
    prosody = torch.zeros(b, n, 3)
    sung = torch.tensor([float(it.sung) for it in items])
    for j, it in enumerate(items):
        k, T = len(it.tokens), it.mel.shape[1]
        tokens[j, :k] = torch.from_numpy(it.tokens)
        durs[j, :k] = torch.from_numpy(it.durations)
        mel[j, :T] = torch.from_numpy((it.mel.T - stats.mel_mean) / stats.mel_std)
        c = torch.from_numpy(stats.controls(it.controls))
        frame_mask[j, :T] = True
        tok_mask[j, :k] = True
        idx = torch.repeat_interleave(torch.arange(k), torch.from_numpy(it.durations))
        sums = torch.zeros(k, 3).index_add_(0, idx, c)
        prosody[j, :k] = sums / torch.from_numpy(it.durations).clamp(min=1)[:, None].float()
        # the generator sees each token's mean controls, as it will when they are predicted
        ctrl[j, :T] = prosody[j, idx]
    return tokens, durs, mel, ctrl, frame_mask, tok_mask, prosody, sung


def losses(model, batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Teacher-forced losses and the predicted mel ``(B, T, n_mels)``. Sung items teach the
    generator only: their durations and pitch are the notes', not the voice's speech."""
    tokens, durs, mel, ctrl, fmask, tmask, prosody, sung = batch
    pred, log_dur, pros = model(tokens, durs, ctrl, mel, sung)
    fm = fmask[..., None].float()
    tm = tmask.float() * (1.0 - sung)[:, None]
    tm_sum = tm.sum().clamp(min=1.0)
    out = {
        "mel": (F.l1_loss(pred, mel, reduction="none") * fm).sum() / (fm.sum() * mel.shape[-1]),
        "duration": ((log_dur - torch.log1p(durs.float())) ** 2 * tm).sum() / tm_sum,
        "prosody": (((pros - prosody) ** 2).mean(-1) * tm).sum() / tm_sum,
    }
    out["total"] = out["mel"] + 0.1 * out["duration"] + 0.1 * out["prosody"]
    return out, pred


def train(data: Path, run: Path, conv: dsp.Convention, *, steps: int, batch_size: int = 16,
          lr: float = 1e-3, lr_step: int = 20000, lr_gamma: float = 0.5, seed: int = 0,
          hidden: int = 384, r: int = 2, audio_encoder: int = 0,
          adversarial_weight: float = 0.0, adversarial_start: int = 0,
          token_source: str = "segments", aligner_run: Path | None = None,
          init: Path | None = None,
          held_out: float = 0.02, save_every: int = 500, device: str = "auto",
          amp: bool = True, resume: bool = False, progress: bool = True, command: str = "",
          log_every: int = 50) -> dict:  # fmt: skip
    rt = runtime.Runtime.start(device, amp)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    run.mkdir(parents=True, exist_ok=True)
    with rt.main_first():  # one process builds the feature cache, the others read it
        items, fe = load_items(data, conv, token_source, aligner_run)
    items.sort(key=lambda i: i.id)
    n_val = max(1, round(len(items) * held_out))
    val, tr = items[-n_val:], items[:-n_val]
    stats = Stats.of(tr)
    sung_flag = any(i.sung for i in items)
    net = AcousticModel(len(fe.symbols), conv.n_mels, hidden=hidden, r=r,
                        audio_encoder=audio_encoder, sung_flag=sung_flag)  # fmt: skip
    if init is not None and not resume:
        net, stats = initialised(init, fe, conv, sung_flag)
    task = AcousticTask(rt, conv, run, net, fe, stats, tr, val, batch_size=batch_size, lr=lr,
                        lr_step=lr_step, lr_gamma=lr_gamma, token_source=token_source,
                        adversarial_weight=adversarial_weight,
                        adversarial_start=adversarial_start,
                        provenance={"command": command, "data": str(data)})  # fmt: skip
    return fit.fit(task, rt, run, rng, steps=steps, resume=resume, save_every=save_every,
                   log_every=log_every, progress=progress)  # fmt: skip


class AcousticTask:
    """The acoustic model's hooks for :func:`trainer.fit.fit`: teacher-forced losses on runs
    of neighbours in length order, and with ``adversarial_weight`` a mel discriminator from
    step ``adversarial_start``."""

    kind, clip = "acoustic", 1.0

    def __init__(self, rt: runtime.Runtime, conv: dsp.Convention, run: Path,
                 net: AcousticModel, fe: Frontend, stats: Stats, tr: list[Item],
                 val: list[Item], *, batch_size: int, lr: float, lr_step: int,
                 lr_gamma: float, token_source: str, adversarial_weight: float,
                 adversarial_start: int, provenance: dict) -> None:  # fmt: skip
        self.rt, self.conv, self.run, self.net, self.fe, self.stats = rt, conv, run, net, fe, stats
        self.val, self.batch_size, self.token_source = val, batch_size, token_source
        self.provenance = provenance  # command and data
        self.by_len = sorted(tr, key=lambda i: i.mel.shape[1])
        self.adversarial_weight, self.adversarial_start = adversarial_weight, adversarial_start
        self.disc_net = MelDiscriminator(conv.n_mels) if adversarial_weight > 0 else None
        self.opts = {"opt": torch.optim.AdamW(net.parameters(), lr=lr)}
        if self.disc_net is not None:
            self.opts["opt_d"] = torch.optim.AdamW(self.disc_net.parameters(), lr=lr,
                                                   betas=(0.5, 0.9))  # fmt: skip
        self.scheds = {"sched": torch.optim.lr_scheduler.StepLR(self.opts["opt"], lr_step,
                                                                lr_gamma)}  # fmt: skip
        self.modules = {"disc": self.disc_net}
        net.to(rt.device)
        if self.disc_net is not None:
            self.disc_net.to(rt.device)
        self.vocoder = dsp.DspVocoder(conv, "rtisi")

    def wrap(self, rt: runtime.Runtime) -> torch.nn.Module:
        self.model = rt.wrap(self.net)
        self.disc = rt.wrap(self.disc_net) if self.disc_net is not None else None
        return self.model

    def batch(self, rng: random.Random):
        """A run of neighbours in length order: little padding, still random batches; every
        process draws all the starts and takes its own."""
        rt, by_len, size = self.rt, self.by_len, self.batch_size
        top = max(1, len(by_len) - size + 1)
        starts = [rng.randrange(top) for _ in range(rt.world)]
        chosen = by_len[starts[rt.rank] : starts[rt.rank] + size]
        return [c.id for c in chosen], [t.to(rt.device) for t in make_batch(chosen, self.stats)]

    def losses(self, batch, step: int) -> dict[str, torch.Tensor]:
        out, pred = losses(self.model, batch)
        if self._adversarial(step):
            m = batch[4][..., None].to(pred.dtype)
            real, fake = batch[2] * m, pred * m
            d_real_fake = self.disc(torch.cat([real, fake.detach()]))[0]
            out["disc"] = d_loss(*d_real_fake.float().chunk(2))
            logits, feats = self.disc_net(fake)
            with torch.no_grad():
                real_feats = self.disc_net(real)[1]
            out["adv"] = g_adv_loss(logits.float())
            out["feature_match"] = feature_matching(real_feats, feats)
            out["total"] = out["total"] + self.adversarial_weight * (
                out["adv"] + out["feature_match"]
            )
        return out

    def _adversarial(self, step: int) -> bool:
        return self.disc is not None and step >= self.adversarial_start

    def after_step(self, scaler, out: dict, step: int) -> None:
        if self._adversarial(step):
            runtime.optimize(scaler, self.opts["opt_d"], out["disc"], self.disc.parameters(), 10.0)

    def validate(self, step: int, tb) -> dict:
        """Validation losses (the mel L1 free-running, as the voice speaks), TensorBoard
        scalars, PNGs of the mel and the durations, and the first item as audio."""
        net, conv, stats, val = self.net, self.conv, self.stats, self.val
        net.eval()
        with torch.no_grad():
            vb = [t.to(self.rt.device) for t in make_batch(val, stats)]
            vl, _ = losses(net, vb)
            enc = net.encoder(vb[0])
            free = net.generator(net.frame_inputs(enc, vb[1], vb[3], vb[7]))
            fm = vb[4][..., None].float()
            vl["mel_free"] = ((free - vb[2]).abs() * fm).sum() / (fm.sum() * conv.n_mels)
            log_dur = net.duration(enc)[0, :, 0]
        net.train()
        for k, v in vl.items():
            tb.add_scalar(f"val/{k}", v.item(), step)
        n, k = int(vb[4][0].sum()), int(vb[5][0].sum())
        target, pred = vb[2][0, :n].cpu().numpy(), free[0, :n].cpu().numpy()
        name = f"val_{step:07d}"
        plots.plot_mels(self.run / f"{name}.png", target, pred, f"{val[0].id}, step {step}")
        dur_pred = torch.clamp(torch.exp(log_dur[:k]) - 1, min=0).cpu().numpy()
        plots.plot_durations(self.run / f"{name}_durations.png", target, val[0].durations,
                             dur_pred, f"{val[0].id}, step {step}: token boundaries")  # fmt: skip
        audio = self.vocoder(stats.mel(pred).T.astype(np.float32))
        sf.write(self.run / f"{name}.wav", audio, conv.sample_rate)
        tb.add_audio("val/audio", torch.from_numpy(audio)[None], step, conv.sample_rate)
        return {"step": step, "val_mel_l1": vl["mel_free"].item(),
                "val_mel_l1_teacher_forced": vl["mel"].item(),
                "val_duration_mse": vl["duration"].item()}  # fmt: skip

    def header(self, step: int, metrics: dict) -> dict:
        return {"kind": "acoustic", "kwargs": self.net.kwargs, "convention": self.conv.to_dict(),
                "frontend": self.fe.to_dict(), "stats": self.stats.__dict__,
                "tokens": self.token_source, "provenance": {**self.provenance, "step": step},
                "metrics": metrics}  # fmt: skip


def initialised(init: Path, fe: Frontend, conv: dsp.Convention, sung_flag: bool):
    """A model and statistics taken over from the voice ``init`` (a fine-tune: its phone set
    and normalization kept); a sung-flag control it lacks starts at zero weight."""
    tensors, header = checkpoint.load(init, kind="acoustic")
    checkpoint.convention(header, conv, init, "voice")
    if Frontend.from_dict(header["frontend"]).symbols != fe.symbols:
        raise checkpoint.CheckpointError(f"{init}: another phone set than this dataset's")
    kwargs = {k: v for k, v in header["kwargs"].items() if k != "f0_head"}
    net = AcousticModel(**(kwargs | {"sung_flag": sung_flag}))
    w = tensors["control_proj.weight"]
    if w.shape[1] < net.control_proj.in_features:  # the new control: no effect at first
        pad = w.new_zeros(w.shape[0], net.control_proj.in_features - w.shape[1])
        tensors = dict(tensors) | {"control_proj.weight": torch.cat([w, pad], 1)}
    tensors = {k: v for k, v in tensors.items() if not k.startswith("generator.pitch.")}
    net.load_state_dict(tensors, strict=True)
    return net, Stats(**header["stats"])


def export_voice(src: Path, dst_dir: Path, provenance: dict, metrics: dict) -> Path:
    """Copy a trained acoustic checkpoint for packaging, weights unchanged (float32: a
    float16 copy measured 11.7 % WER against 7.1 %), with the corpus and command that made
    it and its measured scores."""
    from trainer.package import package

    return package("acoustic", src, dst_dir / "acoustic.safetensors", provenance, metrics)
