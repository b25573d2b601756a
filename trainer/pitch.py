"""The acoustic model's pitch head: `melgand train pitch --voice CKPT --data DIR --run RUNDIR`.

The harmonic vocoder sounds the f0 it is given, so a voice must say which f0 each frame has.
The generator is conditioned on per-token pitch means; a step function per phone would
sound robotic. The pitch head (:class:`model.acoustic.Generator`'s ``pitch``) reads the
GRU's state frame by frame and predicts the normalized log f0 and the voicing of each frame,
learnt from the analysed f0 (:func:`dsp.yin`) of the voice's own corpus.

The rest of the voice is frozen (its mel is unchanged, bit for bit): the GRU outputs of the
teacher-forced pass (what the voice computes when it speaks, its generator having no audio
feedback or being teacher-forced like in its own training) are computed once, and the head
alone trains on them, a few minutes on a CPU. The checkpoint written is the whole voice with
the head, its provenance and the scores it reached beside the per-token step function.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import dsp
from model import checkpoint
from model.acoustic import AcousticModel
from trainer import acoustic


def _states(model: AcousticModel, items: list, stats: acoustic.Stats, batch: int = 16):
    """Per item: GRU outputs ``(G, H)``, target normalized log f0 and voicing ``(G * r, 2)``,
    and the step-function baseline (the token means the generator is given)."""
    gen = model.generator
    out = []
    with torch.no_grad():
        for i in range(0, len(items), batch):
            chunk = items[i : i + batch]
            tokens, durs, mel, ctrl, *_, sung = acoustic.make_batch(chunk, stats)
            x = model.frame_inputs(model.encoder(tokens), durs, ctrl, sung)
            hidden = gen.gru_outputs(x, mel)
            for j, it in enumerate(chunk):
                t = it.mel.shape[1]
                g = -(-t // gen.r)
                c = stats.controls(it.controls)[:, :2]
                out.append((hidden[j, :g], torch.from_numpy(c).float(), ctrl[j, :t, :2]))
    return out


def _scores(head, data: list, r: int, f0_std: float) -> dict:
    """Held-out: median |cents| on frames voiced in both, voicing agreement; the same for
    the step-function baseline."""
    cents, base_cents, agree, base_agree, n = [], [], 0, 0, 0
    with torch.no_grad():
        for h, target, steps in data:
            t = target.shape[0]
            pred = head(h).reshape(-1, 2)[:t]
            voiced = target[:, 1] > 0.5
            pv, bv = pred[:, 1] > 0, steps[:, 1] > 0.5
            agree += int((pv == voiced).sum())
            base_agree += int((bv == voiced).sum())
            n += t
            both = voiced & pv
            cents.append((1200 / np.log(2) * f0_std * (pred[both, 0] - target[both, 0])).abs())
            both = voiced & bv
            base_cents.append(
                (1200 / np.log(2) * f0_std * (steps[both, 0] - target[both, 0])).abs()
            )
    return {
        "f0_cents_median": float(torch.cat(cents).median()),
        "voicing_agreement": agree / n,
        "step_function_cents_median": float(torch.cat(base_cents).median()),
        "step_function_voicing_agreement": base_agree / n,
    }


def train(voice: Path, data: Path, run: Path, conv: dsp.Convention, *, steps: int = 4000,
          batch_size: int = 32, lr: float = 1e-3, seed: int = 0, held_out: float = 0.02,
          progress: bool = True, command: str = "") -> dict:  # fmt: skip
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tensors, header = checkpoint.load(voice, kind="acoustic")
    checkpoint.convention(header, conv, voice, "voice")
    model = AcousticModel(**(header["kwargs"] | {"f0_head": True})).eval()
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or any(not k.startswith("generator.pitch.") for k in missing):
        raise checkpoint.CheckpointError(f"{voice}: not a voice this head fits ({unexpected})")
    stats = acoustic.Stats(**header["stats"])
    items, _ = acoustic.load_items(data, conv, header.get("tokens", "segments"))
    items.sort(key=lambda i: i.id)
    n_val = max(1, round(len(items) * held_out))
    r = model.generator.r
    val, tr = _states(model, items[-n_val:], stats), _states(model, items[:-n_val], stats)
    head = model.generator.pitch
    opt = torch.optim.Adam(head.parameters(), lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    bar = tqdm(range(steps), desc="pitch head", disable=not progress)
    for _ in bar:
        picks = [tr[rng.randrange(len(tr))] for _ in range(batch_size)]
        loss = 0.0
        for h, target, _ in picks:
            t = target.shape[0]
            pred = head(h).reshape(-1, 2)[:t]
            voiced = target[:, 1]
            f0_l1 = ((pred[:, 0] - target[:, 0]).abs() * voiced).sum() / voiced.sum().clamp(min=1)
            loss = loss + f0_l1 + F.binary_cross_entropy_with_logits(pred[:, 1], voiced)
        loss = loss / batch_size
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{float(loss):.3f}")
    metrics = _scores(head, val, r, stats.f0_std)
    header = dict(header)
    header["kwargs"] = model.kwargs
    header["provenance"] = dict(header.get("provenance", {})) | {
        "pitch_head": {"command": command, "data": str(data), "steps": steps}
    }
    header["metrics"] = dict(header.get("metrics", {})) | {"pitch_head": metrics}
    run.mkdir(parents=True, exist_ok=True)
    checkpoint.save(run / "acoustic.safetensors", model.state_dict(), header)
    return metrics
