"""The one training loop: :func:`fit` runs a :class:`Task` (DiffSinger's ``BaseTask``, as hooks).

A task is what differs between the trainers: its networks and optimizers, how it draws a
batch, its losses, the optimizer steps after the network's own (discriminators), its
validation and its checkpoint header. :func:`fit` is what they share: the resume, the DDP
wrap, the step loop (Ctrl-C, a stop on any process, the NaN check, the optimizer and its
scheduler, logging), the periodic save + validation and the last one. A save writes
``<kind>.safetensors`` and ``train_state.safetensors`` (:mod:`trainer.train_state`).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Protocol

import torch

from model import checkpoint
from trainer import runtime, train_state

STATE = "train_state.safetensors"


class Task(Protocol):
    kind: str  # the checkpoint's kind and file (``<kind>.safetensors``), the progress bar's name
    net: torch.nn.Module  # the network the checkpoint holds, on the run's device
    opts: dict[str, torch.optim.Optimizer]  # "opt" steps ``net`` on ``out["total"]``
    scheds: dict[str, Any]  # "sched", if there is one, steps after every step
    modules: dict[str, torch.nn.Module | None]  # kept in the train state (discriminators)
    clip: float  # the gradient norm clip of ``net``

    def wrap(self, rt: runtime.Runtime) -> torch.nn.Module:
        """After a resume: wrap the networks for DDP (``rt.wrap``); returns the wrapped net."""
        ...

    def batch(self, rng: random.Random) -> tuple[list[str], Any]:
        """The next batch (on the device), drawn from ``rng``, and its items' ids."""
        ...

    def losses(self, batch: Any, step: int) -> dict[str, torch.Tensor]:
        """Scalar losses under autocast; ``"total"`` is the one ``net`` descends."""
        ...

    def after_step(self, scaler: torch.amp.GradScaler, out: dict, step: int) -> None:
        """The optimizer steps after ``net``'s (a discriminator's), through ``scaler``."""
        ...

    def validate(self, step: int, tb) -> dict:
        """Held-out scores (rank 0 only), written to TensorBoard ``tb`` and the run."""
        ...

    def header(self, step: int, metrics: dict) -> dict:
        """The checkpoint's JSON header."""
        ...


def fit(task: Task, rt: runtime.Runtime, run: Path, rng: random.Random, *, steps: int,
        resume: bool = False, save_every: int | None = None, log_every: int = 50,
        progress: bool = True, init: Path | None = None) -> dict:  # fmt: skip
    """Train ``task`` to ``steps`` (from its last save with ``resume``; a new run from the
    weights of the checkpoint ``init``, a fine-tune), saving and validating every
    ``save_every`` steps (None: at the end only); returns the last validation's metrics
    (empty on processes other than rank 0)."""
    ckpt = run / f"{task.kind}.safetensors"
    step = _resume(task, ckpt, rng) if resume else 0
    if init is not None and not resume:
        tensors, _ = checkpoint.load(init, kind=task.kind)
        try:
            task.net.load_state_dict(tensors, strict=True)
        except RuntimeError as e:
            raise checkpoint.CheckpointError(
                f"{init}: not this network's weights (set the same [{task.kind}] sizes as it "
                f"was trained with): {str(e).splitlines()[0]}"
            ) from None
    model = task.wrap(rt)
    scaler = rt.scaler()
    record = runtime.Record(run, rt, steps, step, task.kind, progress)
    with runtime.Interrupt() as interrupt:
        try:
            model.train()
            while step < steps and not rt.any(interrupt.set)[0]:
                ids, batch = task.batch(rng)
                with rt.autocast():
                    out = task.losses(batch, step)
                runtime.check_finite(rt, out, step, ids, ckpt)
                runtime.optimize(scaler, task.opts["opt"], out["total"], model.parameters(),
                                 task.clip)  # fmt: skip
                task.after_step(scaler, out, step)
                scaler.update()
                if "sched" in task.scheds:
                    task.scheds["sched"].step()
                step += 1
                record.step(step, out, log_every)
                if save_every and step % save_every == 0 and rt.main:
                    _save(task, ckpt, step, rng, task.validate(step, record.tb))
            return record.finish(task.net, lambda: task.validate(step, record.tb),
                                 lambda metrics: _save(task, ckpt, step, rng, metrics))  # fmt: skip
        finally:
            record.close()
            rt.close()


def _resume(task: Task, ckpt: Path, rng: random.Random) -> int:
    tensors, _ = checkpoint.load(ckpt, kind=task.kind)
    task.net.load_state_dict(tensors, strict=True)
    return train_state.load(ckpt.with_name(STATE), rng, task.opts, task.scheds, task.modules)


def _save(task: Task, ckpt: Path, step: int, rng: random.Random, metrics: dict) -> None:
    checkpoint.save(ckpt, task.net.state_dict(), task.header(step, metrics))
    train_state.save(ckpt.with_name(STATE), step, rng, task.opts, task.scheds, task.modules)
