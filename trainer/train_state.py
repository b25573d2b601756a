"""A run's training state beside its model checkpoint: ``train_state.safetensors``.

Optimizers (their tensors under ``<name>.<param id>.<key>``, their param groups in the
header), schedulers, the step, Python's and torch's random states, and the weights of modules
that are not part of the exported model (discriminators) under ``<name>.``, so that
``--resume`` continues the same run. A module added to a run that had none starts fresh.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from model import checkpoint


def _groups_key(name: str) -> str:
    return "param_groups" if name == "opt" else f"param_groups_{name}"


def save(path: Path, step: int, rng: random.Random, opts: dict, scheds: dict,
         modules: dict) -> None:  # fmt: skip
    tensors: dict[str, torch.Tensor] = {}
    meta: dict = {"step": step, "py_random": rng.getstate()[1]}
    meta.update({name: s.state_dict() for name, s in scheds.items()})
    for name, opt in opts.items():
        sd = opt.state_dict()
        meta[_groups_key(name)] = sd["param_groups"]
        for pid, st in sd["state"].items():
            for k, v in st.items():
                tensors[f"{name}.{pid}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    for name, module in modules.items():
        if module is not None:
            tensors.update({f"{name}.{k}": v for k, v in module.state_dict().items()})
    tensors["torch_rng"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["cuda_rng"] = torch.cuda.get_rng_state()
    checkpoint.save(path, tensors, {"kind": "train_state", "meta": meta})


def load(path: Path, rng: random.Random, opts: dict, scheds: dict, modules: dict) -> int:
    """Restore what :func:`save` wrote into the given objects; returns the step."""
    tensors, header = checkpoint.load(path, kind="train_state")
    meta = header["meta"]
    for name, opt in opts.items():
        groups = meta.get(_groups_key(name))
        if groups is None:
            continue
        device = opt.param_groups[0]["params"][0].device
        state: dict[int, dict] = {}
        for key, v in tensors.items():
            head, _, rest = key.partition(".")
            if head == name:
                pid, k = rest.split(".", 1)
                state.setdefault(int(pid), {})[k] = v.to(device)
        opt.load_state_dict({"state": state, "param_groups": groups})
    for name, module in modules.items():
        saved = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")}
        if module is not None and saved:
            module.load_state_dict(saved, strict=True)
    for name, s in scheds.items():
        if name in meta:
            s.load_state_dict(meta[name])
    rng.setstate((3, tuple(meta["py_random"]), None))
    torch.set_rng_state(tensors["torch_rng"])
    if "cuda_rng" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda_rng"])
    return int(meta["step"])
