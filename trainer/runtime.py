"""Where a training run executes: the device, mixed precision and the process group.

``device = "auto"`` takes CUDA when there is one, else the CPU. Mixed precision (``amp``)
applies on CUDA only: bfloat16 where the card has it, else float16 with a gradient scaler.
Under ``torchrun`` (``WORLD_SIZE`` > 1) each process joins the group (NCCL on CUDA, gloo on
CPU), takes its own GPU, and the model is wrapped in DistributedDataParallel; rank 0 alone
writes checkpoints, logs and validation output.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist


class DeviceError(RuntimeError):
    user_error = True


@dataclass
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: full precision
    rank: int = 0
    world: int = 1

    @classmethod
    def start(cls, device: str = "auto", amp: bool = True) -> Runtime:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available()
        if device == "cuda" and not cuda:
            raise DeviceError(
                'device = "cuda" but torch sees no CUDA device here; use "auto" or "cpu"'
            )
        use_cuda = device == "cuda" or (device == "auto" and cuda)
        dev = torch.device(f"cuda:{local}" if use_cuda else "cpu")
        if use_cuda:
            torch.cuda.set_device(dev)
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
        dtype = None
        if amp and use_cuda:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return cls(dev, dtype, rank, world)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def amp_name(self) -> str | None:
        return str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else None

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """A float16 loss scaler; a pass-through for bfloat16 and full precision."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        module.to(self.device)
        if not self.distributed:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)

    @contextlib.contextmanager
    def main_first(self):
        """Rank 0 runs the block before the others do (building a shared cache, say)."""
        if self.distributed and not self.main:
            dist.barrier()
        yield
        if self.distributed and self.main:
            dist.barrier()

    def any(self, *flags: bool) -> list[bool]:
        """Each flag OR-ed over the processes, so that all stop at the same step."""
        if not self.distributed:
            return list(flags)
        t = torch.tensor([float(f) for f in flags], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def check_in_step(self, module: torch.nn.Module) -> None:
        """Raise unless every process holds the same weights (DDP's promise, checked)."""
        if not self.distributed:
            return
        total = torch.stack([p.detach().double().sum() for p in module.parameters()]).sum()
        sums = [torch.zeros_like(total) for _ in range(self.world)]
        dist.all_gather(sums, total)
        if len({round(s.item(), 6) for s in sums}) != 1:
            raise RuntimeError(f"processes hold different weights: {[s.item() for s in sums]}")

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return module.module if hasattr(module, "module") else module


def optimize(scaler, opt, loss: torch.Tensor, params, clip: float) -> None:
    """One optimizer step through the (possibly pass-through) loss scaler, norm-clipped."""
    opt.zero_grad()
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_(params, clip)
    scaler.step(opt)


def check_finite(rt: Runtime, out: dict, step: int, items: list[str], ckpt) -> None:
    """Stop every process together when a loss is NaN or infinite, naming step and items."""
    bad = not all(torch.isfinite(v).item() for v in out.values())
    if rt.any(bad)[0]:
        where = f"items {items}" if bad else "another process"
        raise FloatingPointError(
            f"loss is {out['total'].item()} at step {step} ({where}); "
            f"the last good checkpoint is {ckpt}"
        )


class Interrupt:
    """Ctrl-C sets ``.set`` instead of raising, so that the loop can save and stop."""

    def __enter__(self) -> Interrupt:
        self.set = False
        self._old = signal.signal(signal.SIGINT, self._on)
        return self

    def _on(self, signum, frame) -> None:
        self.set = True

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGINT, self._old)


class Record:
    """What a run writes as it goes (rank 0): ``log.jsonl``, TensorBoard, the progress bar,
    and at the end ``metrics.json``."""

    def __init__(self, run, rt: Runtime, steps: int, step: int, desc: str, progress: bool):
        from tqdm import tqdm

        self.run, self.rt = run, rt
        self.tb = self.log = None
        if rt.main:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run / "tensorboard"))
            self.log = (run / "log.jsonl").open("a")
        self.bar = tqdm(total=steps, initial=step, desc=desc, disable=not (progress and rt.main))
        self.t0 = time.perf_counter()

    def step(self, step: int, out: dict, every: int) -> None:
        self.bar.update(1)
        if step % every or not self.rt.main:
            return
        rec = {"step": step, **{k: round(v.item(), 5) for k, v in out.items()}}
        for k, v in out.items():
            self.tb.add_scalar(f"train/{k}", v.item(), step)
        self.log.write(json.dumps(rec) + "\n")
        self.log.flush()
        self.bar.set_postfix(loss=f"{rec['total' if 'total' in rec else 'mel']:.3f}")

    def finish(self, net, validate, save) -> dict:
        """Check the processes agree, validate, save, write ``metrics.json`` (rank 0)."""
        self.bar.close()
        self.rt.check_in_step(net)
        if not self.rt.main:
            return {}
        metrics = {
            **validate(),
            "train_seconds_this_run": round(time.perf_counter() - self.t0, 1),
            "device": str(self.rt.device),
            "processes": self.rt.world,
            "amp": self.rt.amp_name,
        }
        save(metrics)
        (self.run / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics

    def close(self) -> None:
        self.bar.close()
        if self.log is not None:
            self.log.close()
        if self.tb is not None:
            self.tb.close()
