"""Every vocoder behind one name: the registry the CLI, the daemon, the trainer and the
benches ask, and the :class:`Vocoder` protocol they all meet.

``load(spec, conv)``: ``spec`` is a name from :data:`NAMES` or the path of a trained vocoder
checkpoint (its header's ``kwargs["arch"]`` picks the class). Names:

- ``harmonic``: the f0-driven source-filter vocoder packaged beside the default voice
  (:mod:`model.harmonic`): the pitch heard is the f0 given.
- ``neural``: the packaged magnitude network + RTISI-LA (:mod:`model.magnitude`).
- ``rtisi`` / ``griffin_lim``: the DSP vocoder (:class:`dsp.DspVocoder`), no weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

import dsp
from model import checkpoint

VOICES = Path(__file__).resolve().parent / "voices"
PACKAGED = {
    "neural": VOICES / "default" / "vocoder.safetensors",
    "harmonic": VOICES / "default" / "harmonic.safetensors",
}
DSP = ("rtisi", "griffin_lim")
NAMES = (*PACKAGED, *DSP)


@runtime_checkable
class Vocoder(Protocol):
    """Log-mel ``(n_mels, T)`` (natural log, the convention's) and frame f0 ``(T,)`` (Hz, 0
    where unvoiced; ignored unless ``needs_f0``) -> float32 audio ``(T * hop,)``.

    ``stream`` takes a chunk of frames and returns the samples now final (``delay`` samples
    fewer at the start of a stream, given by ``flush``); concatenated they equal the offline
    call. ``delay`` is in samples."""

    delay: int
    needs_f0: bool

    def __call__(self, log_mel: np.ndarray, f0: np.ndarray | None = None) -> np.ndarray: ...

    def stream(
        self, log_mel: np.ndarray, state: Any = None, f0: np.ndarray | None = None
    ) -> tuple[np.ndarray, Any]: ...

    def flush(self, state: Any) -> np.ndarray: ...


def stream_many(voc: Vocoder, mels: list, states: list, pool=None, f0s: list | None = None):
    """``voc.stream`` for several voices' chunks: one batched call where the vocoder has one
    (networks cost per call more than per voice), else one per voice on ``pool``."""
    f0s = f0s if f0s is not None else [None] * len(mels)
    if hasattr(voc, "stream_many"):
        return voc.stream_many(mels, states, pool, f0s)
    args = list(zip(mels, states, f0s, strict=True))

    def one(a):
        return voc.stream(a[0], a[1], f0=a[2])

    return list(pool.map(one, args)) if pool else [one(a) for a in args]


class RegistryError(ValueError):
    user_error = True


def load_checkpoint(path: Path | str, conv: dsp.Convention | None = None) -> Vocoder:
    """A trained vocoder checkpoint, whatever its architecture (the harmonic one without
    torch: its network runs on :mod:`model.harmonic_cpu`)."""
    arrays, header = checkpoint.load(path, kind="vocoder", framework="np")
    have = checkpoint.convention(header, conv, path, "vocoder")
    kwargs = dict(header["kwargs"])
    arch = kwargs.pop("arch", "melgan")
    if arch == "harmonic":
        from model.harmonic_cpu import CpuHarmonicNet
        from model.harmonic_vocoder import HarmonicVocoder

        net = CpuHarmonicNet(arrays, header["kwargs"])
        try:
            return HarmonicVocoder(net, have, header, noise_gate=header.get("noise_gate"),
                                   mel_fit=header.get("mel_fit", 0.0))  # fmt: skip
        except ValueError as e:
            raise RegistryError(f"{path}: {e} (repackage it with --set mel_fit=0.5)") from None
    if arch not in ("magnitude", "melgan"):
        raise RegistryError(
            f"{path}: unknown vocoder arch {arch!r}; select melgan, magnitude or "
            "harmonic (retrain or update melgand)"
        )
    import torch

    tensors = {k: torch.tensor(v) for k, v in arrays.items()}
    if arch == "magnitude":
        from model.magnitude import MagnitudeNet, MagnitudeVocoder

        net = MagnitudeNet(**kwargs)
        net.load_state_dict(tensors, strict=True)
        return MagnitudeVocoder(
            net.remove_weight_norm(),
            have,
            header,
            **header["rtisi"],
            mel_refine=int(header.get("mel_refine", 0)),
        )
    from model.melgan import MelGAN, MelGANVocoder

    net = MelGAN(**kwargs)
    net.load_state_dict(tensors, strict=True)
    return MelGANVocoder(net.remove_weight_norm(), have, header)


def packaged_path(spec: str, voice: str = "default") -> Path:
    """Where the packaged vocoder ``spec`` lies for the packaged voice ``voice``: the voice's
    own (``model/voices/VOICE/``, trained on its corpus) where it has one, else the default's."""
    own = VOICES / voice / PACKAGED[spec].name
    return own if own.is_file() else PACKAGED[spec]


def load(spec: str, conv: dsp.Convention | None = None, dsp_settings: dict | None = None,
         voice: str = "default"):  # fmt: skip
    """The vocoder ``spec`` names (see the module docstring), a packaged one as the packaged
    voice ``voice`` has it (:func:`packaged_path`); ``dsp_settings``: the DSP vocoder's
    keyword arguments ([dsp_vocoder] of the config, ``method`` aside)."""
    if spec in PACKAGED:
        path = packaged_path(spec, voice)
        if not path.is_file():
            raise RegistryError(
                f"the {spec} vocoder is missing ({path}); reinstall "
                f"melgand from a full checkout or pick one of {list(NAMES)}"
            )
        return load_checkpoint(path, conv)
    if spec in DSP:
        settings = {k: v for k, v in (dsp_settings or {}).items() if k != "method"}
        return dsp.DspVocoder(conv or dsp.DEFAULT, spec, **settings)
    if not Path(spec).is_file():
        raise RegistryError(
            f"vocoder {spec}: neither a name {list(NAMES)} nor a vocoder "
            "checkpoint file (RUNDIR/vocoder.safetensors)"
        )
    return load_checkpoint(spec, conv)
