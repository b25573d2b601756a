"""Training a vocoder: `melgand train vocoder --data DIR --run RUNDIR [--resume]`.

Random aligned clips (log-mel frames and their audio) from the feature cache. ``arch =
"magnitude"`` (the default) learns each frame's log STFT magnitude (L1, plus spectral
convergence) and is validated through RTISI-LA, whose settings the checkpoint keeps. ``arch
= "melgan"``: the generator first learns on the multi-resolution STFT loss and the mel L1
alone, then from ``adversarial_start`` the multi-scale discriminator joins (least-squares
GAN, optional feature matching). ``--voice CKPT`` fine-tunes on that acoustic model's own
(teacher-forced) mels instead of the analysed ones. The habits are the acoustic trainer's:
config, seed, device auto + AMP, DDP under torchrun, progress bar, TensorBoard, atomic
checkpoints, exact resume, NaN handling; each validation writes audio, a mel PNG, and
PESQ-WB / STOI.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
import torch.nn.functional as F

import dsp
from dsp.harmonic import SourceFilter
from model import losses
from model.discriminators import MultiScale, d_loss, feature_matching, g_adv_loss
from model.harmonic import HarmonicNet, synthesize
from model.harmonic_vocoder import HarmonicVocoder
from model.layers import SILENCE
from model.losses import LogMel, MultiResolutionSTFTLoss
from model.magnitude import MagnitudeNet, MagnitudeVocoder
from model.melgan import MelGAN
from trainer import dataset, features, fit, plots, runtime


@dataclass
class Clip:
    id: str
    mel: np.ndarray  # (n_mels, T) float32
    audio: np.ndarray  # (T * hop,) float32
    f0: np.ndarray | None = None  # (T,) Hz, 0 = unvoiced (the analysed audio's)


def load_clips(data: Path, conv: dsp.Convention, voice: Path | None = None,
               mix: bool = False) -> list[Clip]:  # fmt: skip
    """Every good item's log-mel (analysed, or ``voice``'s teacher-forced prediction; with
    ``mix`` both, the voice's as ``ID~voice``) and audio at the convention's rate, cut to
    whole frames."""
    prepared = features.prepare(data, conv, progress=False)
    gta = _voice_mels(data, conv, voice) if voice is not None else {}
    clips = []
    for row in prepared.report.good:
        y = dataset.load_audio(data, row, conv.sample_rate, dataset.Report())
        mels = {}
        feats = features.load(prepared.cache, row.id)
        if voice is None or mix:
            mels[row.id] = feats["mel"]
        if row.id in gta:
            mels[f"{row.id}~voice" if mix else row.id] = gta[row.id]
        for name, mel in mels.items():
            t = min(mel.shape[1], len(y) // conv.hop_length, len(feats["f0"]))
            f0 = np.where(feats["voiced"][:t], feats["f0"][:t], 0.0).astype(np.float32)
            clips.append(Clip(name, mel[:, :t].astype(np.float32), y[: t * conv.hop_length], f0))
    return sorted(clips, key=lambda c: c.id)


def _voice_mels(data: Path, conv: dsp.Convention, voice: Path) -> dict[str, np.ndarray]:
    from model.voice import Voice
    from trainer import acoustic

    v = Voice.load(voice, conv)
    items, _ = acoustic.load_items(data, conv, v.header.get("tokens", "segments"))
    stats = v.stats
    out = {}
    model = v.module()  # teacher-forced: the torch module
    with torch.no_grad():
        for it in items:
            tokens, durs, mel, ctrl, *_ = acoustic.make_batch([it], stats)
            pred = model(tokens, durs, ctrl, mel)[0][0]
            out[it.id] = stats.mel(pred).T.numpy()
    return out


def make_batch(clips: list[Clip], rng: random.Random, frames: int, context: int,
               hop: int, margin: int = 0) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Mel ``(B, n_mels, context + frames)`` and audio ``(B, frames * hop + 2 * margin)``:
    the ``context`` frames before each clip warm the causal network up (the loss ignores
    their output); ``margin`` samples each side (zeros beyond the item) let the frames'
    own windows be analysed as the mel was."""
    mels, audios = [], []
    for c in clips:
        t = c.mel.shape[1]
        start = rng.randrange(max(1, t - frames + 1))
        m = c.mel[:, max(0, start - context) : start + frames]
        m = np.pad(m, ((0, 0), (context - min(start, context), 0)), constant_values=SILENCE)
        lo, hi = start * hop - margin, (start + frames) * hop + margin
        a = c.audio[max(0, lo) : hi]
        a = np.pad(a, (max(0, -lo), hi - lo - len(a) - max(0, -lo)))
        if m.shape[1] < context + frames:  # a clip shorter than the segment: silence after it
            m = np.pad(m, ((0, 0), (0, context + frames - m.shape[1])), constant_values=SILENCE)
        mels.append(m)
        audios.append(a)
    return torch.from_numpy(np.stack(mels)), torch.from_numpy(np.stack(audios))


def harmonic_batch(clips: list[Clip], rng: random.Random, frames: int, context: int,
                   source: SourceFilter, repitch_mix: float = 0.0):  # fmt: skip
    """For :class:`HarmonicNet`: mel ``(B, n_mels, T)`` and f0 ``(B, T)`` of ``T = context +
    frames`` frames, the sources over ``T + 1`` frames (random phase and noise), and the
    audio the loss compares: ``frames * hop`` samples from frame ``context``'s segment
    start (``c_{context - 1}``, half a hop before the frame's own samples). A fraction
    ``repitch_mix`` of the mels get the ripple of a pitch up to an octave from the f0
    (:func:`dsp.mel.repitch`), their envelope kept: the f0 alone says where the harmonics
    are."""
    hop, t_all = source.hop, context + frames
    mels, f0s, hs, ns, audios = [], [], [], [], []
    for c in clips:
        t = c.mel.shape[1]
        s = rng.randrange(max(1, t - t_all + 1))
        m = c.mel[:, s : s + t_all]
        f = c.f0[s : s + t_all + 1]
        m = np.pad(m, ((0, 0), (0, t_all - m.shape[1])), constant_values=SILENCE)
        f = np.pad(f, (0, t_all + 1 - f.size))
        if repitch_mix > 0 and rng.random() < repitch_mix:
            m = dsp.repitch(m, f[:t_all] * 2.0 ** (rng.uniform(-1.0, 1.0)), source.conv)
        h, n, _ = source.source(f, rng.uniform(0, 2 * np.pi), rng.getrandbits(24))
        lo = (s + context) * hop - hop // 2
        a = c.audio[max(0, lo) : lo + frames * hop]
        a = np.pad(a, (max(0, -lo), frames * hop - a.size - max(0, -lo)))
        mels.append(m)
        f0s.append(f[:t_all])
        hs.append(h)
        ns.append(n)
        audios.append(a)
    out = (np.stack(mels), np.stack(f0s), np.stack(hs), np.stack(ns), np.stack(audios))
    return tuple(torch.from_numpy(np.asarray(x, np.float32)) for x in out)


def harmonic_audio(model, mel, f0, harm_src, noise_src, context: int, hop: int,
                   taps: int = 0):  # fmt: skip
    """The network's filters over the batch, synthesized; the samples the loss compares
    (with linear-phase filters, delayed ``taps / 2``: the last ``taps / 2`` of the clip's
    samples, which would need the frame after it, are left out)."""
    harm, noise = model(mel, f0)
    y = synthesize(harm_src, noise_src, harm, noise, hop)
    frames = mel.shape[-1] - context
    return y[:, context * hop + taps // 2 : (context + frames) * hop]


def compared_f0(f0: torch.Tensor, context: int, conv: dsp.Convention) -> torch.Tensor:
    """The f0 of the frames on which the windows of :func:`model.losses.harmonic_levels`
    (``n_fft`` long, a hop apart) over the compared samples are centred: their sample 0 is
    the centre of frame ``context - 1`` (:func:`harmonic_batch`)."""
    return f0[:, context - 1 + conv.n_fft // (2 * conv.hop_length) :]


def harmonic_loss(y: torch.Tensor, target: torch.Tensor, f0: torch.Tensor, context: int,
                  conv: dsp.Convention) -> torch.Tensor:  # fmt: skip
    """``[vocoder] harmonic_weight``'s term: :func:`model.losses.harmonic_level_loss` on
    the compared samples of a :func:`harmonic_batch`."""
    f0 = compared_f0(f0, context, conv)
    sr = float(conv.sample_rate)
    return losses.harmonic_level_loss(y, target, f0, conv.hop_length, sr, conv.n_fft)


def pitch_error(f0_in: np.ndarray, audio: np.ndarray, conv: dsp.Convention) -> tuple:
    """Median |cents| between the f0 given and the f0 of ``audio`` (YIN) where both are
    voiced, and the fraction of voiced input frames heard unvoiced."""
    f0_out, v_out = dsp.yin(audio, conv)
    n = min(f0_in.size, f0_out.size)
    both = (f0_in[:n] > 0) & v_out[:n]
    cents = 1200 * np.abs(np.log2(f0_out[:n][both] / f0_in[:n][both]))
    lost = 1.0 - both.sum() / max(1, (f0_in[:n] > 0).sum())
    return float(np.median(cents)) if cents.size else float("nan"), float(lost)


def dnsmos(audio: np.ndarray, sr: int) -> float | None:
    """DNSMOS OVRL (the ``speechmos`` package, if installed: the eval extra), else None."""
    try:
        from speechmos import dnsmos as _dnsmos
    except ImportError:
        return None
    x = np.clip(soxr.resample(audio, sr, 16000), -1, 1)
    return float(_dnsmos.run(x, 16000)["ovrl_mos"])


def build(arch: str, conv: dsp.Convention, *, channels: int, ratios, bands: int, blocks: int,
          lookahead: int, phase_taps: int = 0) -> MelGAN | MagnitudeNet | HarmonicNet:  # fmt: skip
    """The network ``[vocoder] arch`` names: "harmonic" (the f0-driven source-filter
    vocoder's filter network, ``blocks`` at the frame rate), "magnitude" (``blocks`` at the
    frame rate, the phase by RTISI-LA) or "melgan" (``bands``, ``ratios``)."""
    if arch == "harmonic":
        return HarmonicNet(conv.n_mels, conv.n_bins, channels, blocks, n_fft=conv.n_fft,
                           sample_rate=conv.sample_rate, fmax=conv.fmax,
                           phase_taps=phase_taps)  # fmt: skip
    if arch == "magnitude":
        return MagnitudeNet(conv.n_mels, conv.n_bins, channels, blocks, lookahead)
    return MelGAN(conv.n_mels, conv.hop_length, channels, tuple(ratios), bands=bands,
                  lookahead=lookahead)  # fmt: skip


def quality(ref: np.ndarray, out: np.ndarray, sr: int) -> dict[str, float]:
    """PESQ-WB and STOI of ``out`` against ``ref`` (both at ``sr``; PESQ at 16 kHz)."""
    from pesq import pesq
    from pystoi import stoi

    n = min(len(ref), len(out))
    r16, o16 = (soxr.resample(x[:n], sr, 16000) for x in (ref, out))
    return {
        "pesq_wb": float(pesq(16000, r16, o16, "wb")),
        "stoi": float(stoi(ref[:n], out[:n], sr)),
    }


def train(data: Path, run: Path, conv: dsp.Convention, *, steps: int, batch_size: int = 16,
          segment_frames: int = 32, context_frames: int = 8, lr: float = 2e-4,
          lr_step: int = 100000, lr_gamma: float = 0.5, seed: int = 0, bands: int = 4,
          channels: int = 256, ratios: tuple[int, ...] = (4, 4, 4), lookahead: int = 1,
          arch: str = "melgan", blocks: int = 6, rtisi_lookahead: int = 2, rtisi_iters: int = 4,
          mel_refine: int = 0,
          voice_mix: bool = False, repitch_mix: float = 0.0, phase_taps: int = 0,
          harmonic_weight: float = 0.0,
          adversarial_start: int = 20000, adversarial_weight: float = 2.5,
          feature_match_weight: float = 0.0, mel_weight: float = 1.0, disc_width: int = 16,
          voice: Path | None = None, held_out: float = 0.02, save_every: int = 1000,
          device: str = "auto", amp: bool = True, resume: bool = False, progress: bool = True,
          command: str = "", log_every: int = 50, val_items: int = 4,
          init: Path | None = None) -> dict:  # fmt: skip
    rt = runtime.Runtime.start(device, amp)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    run.mkdir(parents=True, exist_ok=True)
    with rt.main_first():
        clips = load_clips(data, conv, voice, voice_mix)
    n_val = max(1, round(len(clips) * held_out))
    val, tr = clips[-n_val:][:val_items], clips[:-n_val]
    net = build(arch, conv, channels=channels, ratios=ratios, bands=bands, blocks=blocks,
                lookahead=lookahead, phase_taps=phase_taps)  # fmt: skip
    task = VocoderTask(rt, conv, run, net, tr, val, batch_size=batch_size,
                       segment_frames=segment_frames, context_frames=context_frames, lr=lr,
                       lr_step=lr_step, lr_gamma=lr_gamma, disc_width=disc_width,
                       rtisi={"rtisi_lookahead": rtisi_lookahead, "rtisi_iters": rtisi_iters},
                       mel_refine=mel_refine, adversarial_start=adversarial_start,
                       adversarial_weight=adversarial_weight, mel_weight=mel_weight,
                       feature_match_weight=feature_match_weight, repitch_mix=repitch_mix,
                       harmonic_weight=harmonic_weight,
                       provenance={"command": command, "data": str(data),
                                   **({"init": str(init)} if init else {})},
                       voice=str(voice) if voice else None)  # fmt: skip
    return fit.fit(task, rt, run, rng, steps=steps, resume=resume, save_every=save_every,
                   log_every=log_every, progress=progress, init=init)  # fmt: skip


class VocoderTask:
    """The vocoder's hooks for :func:`trainer.fit.fit`: random aligned clips; the frames' own
    log magnitudes (``MagnitudeNet``), or the waveform losses (MelGAN's, with the multi-scale
    discriminator from ``adversarial_start``; ``HarmonicNet``'s without it)."""

    kind, clip = "vocoder", 10.0

    def __init__(self, rt: runtime.Runtime, conv: dsp.Convention, run: Path,
                 net: MelGAN | MagnitudeNet | HarmonicNet, tr: list[Clip], val: list[Clip], *,
                 batch_size: int, segment_frames: int, context_frames: int, lr: float,
                 lr_step: int, lr_gamma: float, disc_width: int, rtisi: dict, mel_refine: int,
                 adversarial_start: int, adversarial_weight: float, mel_weight: float,
                 feature_match_weight: float, provenance: dict, voice: str | None,
                 repitch_mix: float = 0.0, harmonic_weight: float = 0.0) -> None:  # fmt: skip
        self.rt, self.conv, self.run, self.net, self.tr, self.val = rt, conv, run, net, tr, val
        self.batch_size, self.frames, self.ctx = batch_size, segment_frames, context_frames
        self.rtisi, self.mel_refine = rtisi, mel_refine
        self.adversarial_start, self.adversarial_weight = adversarial_start, adversarial_weight
        self.mel_weight, self.feature_match_weight = mel_weight, feature_match_weight
        self.provenance, self.voice = provenance, voice  # provenance: command and data
        self.repitch_mix, self.harmonic_weight = repitch_mix, harmonic_weight
        self.spectral = isinstance(net, MagnitudeNet)
        self.harmonic = isinstance(net, HarmonicNet)
        self.source = SourceFilter(conv, taps=getattr(net, "phase_taps", 0))
        self.disc_net = MultiScale(width=disc_width)
        regression = self.spectral or self.harmonic
        betas = (0.9, 0.99) if regression else (0.5, 0.9)  # a regression, or a GAN
        self.opts = {"opt": torch.optim.Adam(net.parameters(), lr, betas=betas),
                     "opt_d": torch.optim.Adam(self.disc_net.parameters(), lr,
                                               betas=(0.5, 0.9))}  # fmt: skip
        self.scheds = {name: torch.optim.lr_scheduler.StepLR(self.opts[o], lr_step, lr_gamma)
                       for name, o in (("sched", "opt"), ("sched_d", "opt_d"))}  # fmt: skip
        self.modules = {"disc": self.disc_net}
        net.to(rt.device)
        self.disc_net.to(rt.device)
        self.stft_loss = MultiResolutionSTFTLoss().to(rt.device)
        self.log_mel = LogMel(conv).to(rt.device)
        self.margin = conv.pad if self.spectral else 0
        self.window = torch.hann_window(conv.win_length).to(rt.device)

    def wrap(self, rt: runtime.Runtime) -> torch.nn.Module:
        self.model, self.disc = rt.wrap(self.net), rt.wrap(self.disc_net)
        return self.model

    def batch(self, rng: random.Random):
        rt, size, tr = self.rt, self.batch_size, self.tr
        picks = [rng.randrange(len(tr)) for _ in range(size * rt.world)]
        chosen = [tr[i] for i in picks[rt.rank * size : (rt.rank + 1) * size]]
        # every process draws the same salt, then cuts its own clips
        clip_rng = random.Random(rng.getrandbits(32) * 1009 + rt.rank)
        if self.harmonic:
            b = harmonic_batch(chosen, clip_rng, self.frames, self.ctx, self.source,
                               self.repitch_mix)  # fmt: skip
        else:
            b = make_batch(chosen, clip_rng, self.frames, self.ctx, self.conv.hop_length,
                           self.margin)  # fmt: skip
        return [c.id for c in chosen], tuple(t.to(rt.device) for t in b)

    def _adversarial(self, step: int) -> bool:
        return step >= self.adversarial_start and not (self.spectral or self.harmonic)

    def losses(self, batch, step: int) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        ctx, hop = self.ctx, self.conv.hop_length
        if self.harmonic:
            mel, f0, h_src, n_src, audio = batch
            taps = self.source.taps
            y = harmonic_audio(self.model, mel, f0, h_src, n_src, ctx, hop, taps).float()
            target = audio[:, : y.shape[-1]]
            out["total"] = self._waveform_losses(y, target, out, False)
            if self.harmonic_weight > 0:
                out["harmonics"] = harmonic_loss(y, target, f0, ctx, self.conv)
                out["total"] = out["total"] + self.harmonic_weight * out["harmonics"]
            return out
        mel, padded = batch
        if self.spectral:  # the frames' own magnitudes are the targets
            pred = self.model(mel)[..., ctx:].float()
            true = losses.frame_log_magnitude(padded, self.conv, self.window)
            out["spectral"] = F.l1_loss(pred, true)
            diff = torch.linalg.norm(pred.exp() - true.exp())
            out["sc"] = diff / torch.linalg.norm(true.exp())
            out["total"] = out["spectral"] + out["sc"]
            return out
        audio = padded[:, self.margin : padded.shape[-1] - self.margin]
        y = self.model(mel)[:, ctx * hop :].float()
        out["total"] = self._waveform_losses(y, audio, out, self._adversarial(step))
        return out

    def _waveform_losses(self, y: torch.Tensor, audio: torch.Tensor, out: dict,
                         adversarial: bool) -> torch.Tensor:  # fmt: skip
        """MelGAN's terms: multi-resolution STFT, mel L1, and from ``adversarial_start`` the
        multi-scale discriminator (its loss left in ``out["disc"]``)."""
        out["sc"], out["mag"] = self.stft_loss(y, audio)
        out["mel"] = F.l1_loss(self.log_mel(y), self.log_mel(audio))
        total = out["sc"] + out["mag"] + self.mel_weight * out["mel"]
        if adversarial:
            judged = self.disc(torch.cat([audio, y.detach()]))
            d_losses = [d_loss(*lg.float().chunk(2)) for lg, _ in judged]
            out["disc"] = sum(d_losses) / len(d_losses)
            fake = self.disc_net(y)
            out["adv"] = sum(g_adv_loss(lg.float()) for lg, _ in fake) / len(fake)
            total = total + self.adversarial_weight * out["adv"]
            if self.feature_match_weight > 0:
                with torch.no_grad():
                    real = self.disc_net(audio)
                out["feature_match"] = sum(
                    feature_matching(r[1], f[1]) for r, f in zip(real, fake, strict=True)
                ) / len(fake)
                total = total + self.feature_match_weight * out["feature_match"]
        return total

    def after_step(self, scaler, out: dict, step: int) -> None:
        if self._adversarial(step):
            runtime.optimize(scaler, self.opts["opt_d"], out["disc"], self.disc.parameters(), 10.0)
            self.scheds["sched_d"].step()

    def validate(self, step: int, tb) -> dict:
        """Whole held-out items: audio, a mel PNG, mel L1, PESQ-WB and STOI (harmonic: also
        DNSMOS OVRL where speechmos is installed, and the pitch heard against the f0 given)."""
        net, conv = self.net, self.conv
        net.eval()
        scores: dict[str, list[float]] = {"mel_l1": [], "pesq_wb": [], "stoi": []}
        voc = None
        if self.spectral:
            voc = MagnitudeVocoder(net, conv, {}, **self.rtisi, mel_refine=self.mel_refine)
        elif self.harmonic:
            voc = HarmonicVocoder(net, conv, {})
        for i, c in enumerate(self.val):
            with torch.no_grad():
                if voc is not None:
                    y = torch.from_numpy(voc(c.mel, f0=c.f0))
                else:
                    y = net(torch.from_numpy(c.mel)[None].to(self.rt.device))[0].float()
                m = self.log_mel(y[None].to(self.rt.device))[0].cpu().numpy()
            y = y.cpu().numpy()
            scores["mel_l1"].append(float(np.abs(m - c.mel[:, : m.shape[1]]).mean()))
            for k, v in self._scores(c, y).items():
                scores.setdefault(k, []).append(v)
            if i == 0:
                name = self.run / f"val_{step:07d}"
                sf.write(f"{name}.wav", y, conv.sample_rate)
                plots.plot_mels(Path(f"{name}.png"), c.mel.T / 3 + 2, m.T / 3 + 2,
                                f"{c.id}, step {step}")  # fmt: skip
                tb.add_audio("val/audio", torch.from_numpy(y)[None], step, conv.sample_rate)
        net.train()
        out = {f"val_{k}": float(np.mean(v)) for k, v in scores.items()}
        for k, v in out.items():
            tb.add_scalar(k.replace("val_", "val/"), v, step)
        return {"step": step, **out}

    def _scores(self, c: Clip, y: np.ndarray) -> dict[str, float]:
        """PESQ-WB and STOI of one item; harmonic: its pitch error and DNSMOS too."""
        sr = self.conv.sample_rate
        out = quality(c.audio, y, sr)
        if self.harmonic:
            out["pitch_cents"], out["voicing_lost"] = pitch_error(c.f0, y, self.conv)
            mos = dnsmos(y, sr)
            if mos is not None:
                out["dnsmos"] = mos
        return out

    def header(self, step: int, metrics: dict) -> dict:
        header = {"kind": "vocoder", "kwargs": self.net.kwargs, "convention": self.conv.to_dict(),
                  "provenance": {**self.provenance, "step": step, "voice": self.voice},
                  "metrics": metrics}  # fmt: skip
        if self.spectral:  # the phase reconstruction it was validated with
            header["rtisi"], header["mel_refine"] = self.rtisi, self.mel_refine
        return header
