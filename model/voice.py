"""A voice: a trained acoustic model with its frontend and statistics, text -> mel.

``Voice.load(path)`` reads an acoustic checkpoint (safetensors + JSON header) and refuses a
convention other than the caller's. ``voice.mel(text)`` predicts durations and per-token
prosody, then runs the generator (offline; the same weights stream through
``voice.model.generator.stream``). ``packaged()`` is the default voice in
``model/voices/default/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import dsp
from model import checkpoint
from model.acoustic import AcousticModel
from model.frontend import Frontend

PACKAGED = Path(__file__).resolve().parent / "voices" / "default" / "acoustic.safetensors"


class Voice:
    def __init__(self, model: AcousticModel, frontend: Frontend, stats: dict,
                 conv: dsp.Convention, header: dict):  # fmt: skip
        self.model = model.eval()
        self.frontend = frontend
        self.stats = stats
        self.conv = conv
        self.header = header

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device) -> Voice:
        self.model.to(device)
        return self

    @classmethod
    def load(cls, path: Path | str, conv: dsp.Convention | None = None) -> Voice:
        tensors, header = checkpoint.load(path, kind="acoustic")
        have = checkpoint.convention(header, conv, path, "voice")
        model = AcousticModel(**header["kwargs"])
        model.load_state_dict(tensors, strict=True)
        return cls(model, Frontend.from_dict(header["frontend"]), header["stats"], have, header)

    @torch.no_grad()
    def frame_inputs(self, text: str, speed: float = 1.0) -> torch.Tensor:
        """The generator's inputs ``(1, T, D)`` for ``text``: predicted durations and
        per-token prosody, upsampled to frames."""
        tokens = torch.tensor([self.frontend.encode(text)], device=self.device)
        enc = self.model.encoder(tokens)
        log_dur = self.model.duration(enc)[0, :, 0]
        dur = torch.clamp(torch.round((torch.exp(log_dur) - 1) / speed), min=1).long()
        prosody = self.model.prosody(enc)[0]  # (N, 3) normalized per-token controls
        idx = torch.repeat_interleave(torch.arange(len(dur), device=self.device), dur)
        controls = prosody[idx][None]
        return self.model.frame_inputs(enc, dur[None], controls)

    @torch.no_grad()
    def mel(self, text: str, speed: float = 1.0) -> np.ndarray:
        """``(n_mels, frames)`` log-mel for ``text`` under the voice's convention."""
        return self.mel_f0(text, speed)[0]

    @torch.no_grad()
    def mel_f0(self, text: str, speed: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """``(n_mels, frames)`` log-mel and the frame f0 ``(frames,)`` (Hz, 0 = unvoiced) for
        ``text``: the pitch head's where the model has one, else the per-token pitch
        controls it was given (see :meth:`frames`)."""
        x = self.frame_inputs(text, speed)
        return self.frames(self.model.generator(x)[0], x[0])

    def frames(self, y: torch.Tensor, x: torch.Tensor | None = None):
        """Generator output ``(T, n_out)`` -> log-mel ``(n_mels, T)`` and f0 ``(T,)`` Hz. A model
        without a pitch head takes the f0 from the control channels of its inputs ``x``."""
        mel, pitch = self.model.generator.split(y)
        s = self.stats
        log_mel = (mel * s["mel_std"] + s["mel_mean"]).T.cpu().numpy().astype(np.float32)
        if pitch is None:
            if x is None:
                return log_mel, np.zeros(log_mel.shape[1])
            pitch = self.controls_of(x)
            voiced = pitch[:, 1] > 0.5
        else:
            voiced = pitch[:, 1] > 0.0
        hz = torch.exp(pitch[:, 0] * s["f0_std"] + s["f0_mean"])
        return log_mel, torch.where(voiced, hz, torch.zeros_like(hz)).cpu().numpy().astype(
            np.float64
        )

    def controls_of(self, x: torch.Tensor) -> torch.Tensor:
        """The normalized (log f0, voicing) controls behind generator inputs ``(T, D)``: the
        control projection inverted (it is linear, 3 -> channels / 4)."""
        proj = self.model.control_proj
        c = x[:, -proj.out_features :] - proj.bias
        return torch.linalg.lstsq(proj.weight, c.T).solution.T[:, :2]  # (sung flag aside)


def packaged(conv: dsp.Convention | None = None) -> Voice:
    if not PACKAGED.is_file():
        raise checkpoint.CheckpointError(
            f"the default voice is missing ({PACKAGED}); reinstall melgand from a full checkout"
        )
    return Voice.load(PACKAGED, conv)
