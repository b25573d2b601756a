"""Checkpoints: safetensors weights plus a JSON header, never pickle.

The header (stored in the safetensors metadata under ``"melgand"``) carries the format
version, the model kind and constructor kwargs, the audio convention, the symbol set,
provenance (the command and data that made it), metrics and a SHA-256 of the weights,
checked on load (files written before the checksum load without it), so that a checkpoint
loads with nothing else and a damaged one is refused. Weights stored as float16 (a packaged
voice's, ``python -m trainer.package --half``) load as float32: every model computes in
float32. Writes go to a temp file and are renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError

FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and what to do."""

    user_error = True


def digest(tensors: dict) -> str:
    """SHA-256 over the tensors' names, dtypes (torch's names), shapes and bytes, in name
    order; torch tensors or numpy arrays (the same digest for the same weights)."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k]
        if isinstance(t, np.ndarray):
            a = t if t.flags.c_contiguous else t.copy()  # (ascontiguousarray makes 0-d 1-d)
            h.update(f"{k}|torch.{a.dtype}|{tuple(a.shape)}|".encode())
            h.update(a.reshape(-1).view(np.uint8).tobytes())
        else:
            import torch

            t = t.detach().cpu().contiguous()
            h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save(path: Path | str, tensors: dict, header: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    path = Path(path)
    header = {k: v for k, v in header.items() if k != "stored_dtype"}
    if any(str(t.dtype) == "torch.float16" for t in tensors.values()):
        header["stored_dtype"] = "float16"  # says why the file is half size (loads as float32)
    header = {**header, "sha256": digest(tensors)}
    meta = {"melgand": json.dumps({"format_version": FORMAT_VERSION, **header}, sort_keys=True)}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), meta)
    os.replace(tmp, path)


def load(path: Path | str, kind: str | None = None, framework: str = "pt") -> tuple[dict, dict]:
    """``(tensors, header)``; refuses unreadable files, other formats and other kinds.
    ``framework``: ``"pt"`` torch tensors, ``"np"`` numpy arrays (no torch imported)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework) as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({e})") from None
    if "melgand" not in meta:
        raise CheckpointError(f"{path}: no melgand header: not a melgand checkpoint")
    header = json.loads(meta["melgand"])
    if header.get("format_version") not in SUPPORTED_VERSIONS:
        raise CheckpointError(
            f"{path}: checkpoint format {header.get('format_version')} is not supported "
            f"(this melgand reads {SUPPORTED_VERSIONS}); upgrade melgand"
        )
    if "sha256" in header and digest(tensors) != header["sha256"]:
        raise CheckpointError(
            f"{path}: the weights do not match their checksum: the file is corrupted; "
            "use another copy (a run's previous checkpoint, or reinstall the package)"
        )
    if kind is not None and header.get("kind") != kind:
        raise CheckpointError(f"{path}: holds a {header.get('kind')!r}, expected a {kind!r}")
    return {k: _widened(t) for k, t in tensors.items()}, header


def _widened(t):
    """A float16 tensor (torch or numpy) as float32; others as they are."""
    if isinstance(t, np.ndarray):
        return t.astype(np.float32) if t.dtype == np.float16 else t
    import torch

    return t.float() if t.dtype == torch.float16 else t


def convention(header: dict, want, path, what: str):
    """The checkpoint's audio convention, refused (by name) if it is not ``want``."""
    import dsp

    have = dsp.Convention.from_dict(header["convention"])
    if want is not None:
        try:
            want.check_same(have, what=f"{what} {path}")
        except ValueError as e:
            raise CheckpointError(str(e)) from None
    return have
