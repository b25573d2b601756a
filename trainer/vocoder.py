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
from model import checkpoint, losses
from model.discriminators import MultiScale, d_loss, feature_matching, g_adv_loss
from model.harmonic import HarmonicNet, HarmonicVocoder, synthesize
from model.layers import SILENCE
from model.losses import LogMel, MultiResolutionSTFTLoss
from model.magnitude import MagnitudeNet, MagnitudeVocoder
from model.melgan import MelGAN
from trainer import dataset, features, runtime, train_state
from trainer.acoustic import plot_mels


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
    stats = acoustic.Stats(**v.stats)
    out = {}
    with torch.no_grad():
        for it in items:
            tokens, durs, mel, ctrl, *_ = acoustic.make_batch([it], stats)
            pred = v.model(tokens, durs, ctrl, mel)[0][0]
            out[it.id] = (pred * stats.mel_std + stats.mel_mean).T.numpy()
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
                   source: SourceFilter):  # fmt: skip
    """For :class:`HarmonicNet`: mel ``(B, n_mels, T)`` and f0 ``(B, T)`` of ``T = context +
    frames`` frames, the sources over ``T + 1`` frames (random phase and noise), and the
    audio the loss compares: ``frames * hop`` samples from frame ``context``'s segment
    start (``c_{context - 1}``, half a hop before the frame's own samples)."""
    hop, t_all = source.hop, context + frames
    mels, f0s, hs, ns, audios = [], [], [], [], []
    for c in clips:
        t = c.mel.shape[1]
        s = rng.randrange(max(1, t - t_all + 1))
        m = c.mel[:, s : s + t_all]
        f = c.f0[s : s + t_all + 1]
        m = np.pad(m, ((0, 0), (0, t_all - m.shape[1])), constant_values=SILENCE)
        f = np.pad(f, (0, t_all + 1 - f.size))
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


def harmonic_audio(model, mel, f0, harm_src, noise_src, context: int, hop: int):
    """The network's filters over the batch, synthesized; the samples the loss compares."""
    harm, noise = model(mel, f0)
    y = synthesize(harm_src, noise_src, harm, noise, hop)
    frames = mel.shape[-1] - context
    return y[:, context * hop : (context + frames) * hop]


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
          lookahead: int) -> MelGAN | MagnitudeNet | HarmonicNet:  # fmt: skip
    """The network ``[vocoder] arch`` names: "harmonic" (the f0-driven source-filter
    vocoder's filter network, ``blocks`` at the frame rate), "magnitude" (``blocks`` at the
    frame rate, the phase by RTISI-LA) or "melgan" (``bands``, ``ratios``)."""
    if arch == "harmonic":
        return HarmonicNet(conv.n_mels, conv.n_bins, channels, blocks, n_fft=conv.n_fft,
                           sample_rate=conv.sample_rate, fmax=conv.fmax)  # fmt: skip
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
          voice_mix: bool = False,
          adversarial_start: int = 20000, adversarial_weight: float = 2.5,
          feature_match_weight: float = 0.0, mel_weight: float = 1.0, disc_width: int = 16,
          voice: Path | None = None, held_out: float = 0.02, save_every: int = 1000,
          device: str = "auto", amp: bool = True, resume: bool = False, progress: bool = True,
          command: str = "", log_every: int = 50, val_items: int = 4) -> dict:  # fmt: skip
    rt = runtime.Runtime.start(device, amp)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    run.mkdir(parents=True, exist_ok=True)
    with rt.main_first():
        clips = load_clips(data, conv, voice, voice_mix)
    n_val = max(1, round(len(clips) * held_out))
    val, tr = clips[-n_val:][:val_items], clips[:-n_val]
    net = build(arch, conv, channels=channels, ratios=ratios, bands=bands, blocks=blocks,
                lookahead=lookahead)  # fmt: skip
    spectral = isinstance(net, MagnitudeNet)
    harmonic = isinstance(net, HarmonicNet)
    source = SourceFilter(conv)
    rtisi = {"rtisi_lookahead": rtisi_lookahead, "rtisi_iters": rtisi_iters}
    disc_net = MultiScale(width=disc_width)
    betas = (0.9, 0.99) if spectral or harmonic else (0.5, 0.9)  # a regression, or a GAN
    opts = {"opt": torch.optim.Adam(net.parameters(), lr, betas=betas),
            "opt_d": torch.optim.Adam(disc_net.parameters(), lr, betas=(0.5, 0.9))}  # fmt: skip
    scheds = {name: torch.optim.lr_scheduler.StepLR(o, lr_step, lr_gamma)
              for name, o in (("sched", opts["opt"]), ("sched_d", opts["opt_d"]))}  # fmt: skip
    net.to(rt.device)
    disc_net.to(rt.device)
    ckpt, state_path = run / "vocoder.safetensors", run / "train_state.safetensors"
    step = 0
    if resume:
        tensors, _ = checkpoint.load(ckpt, kind="vocoder")
        net.load_state_dict(tensors, strict=True)
        step = train_state.load(state_path, rng, opts, scheds, {"disc": disc_net})
    model, disc = rt.wrap(net), rt.wrap(disc_net)
    stft_loss = MultiResolutionSTFTLoss().to(rt.device)
    log_mel = LogMel(conv).to(rt.device)
    scaler = rt.scaler()
    hop, ctx = conv.hop_length, context_frames
    margin = conv.pad if spectral else 0
    window = torch.hann_window(conv.win_length).to(rt.device)

    def waveform_losses(y: torch.Tensor, audio: torch.Tensor, out: dict, adversarial: bool):
        """MelGAN's terms: multi-resolution STFT, mel L1, and from ``adversarial_start`` the
        multi-scale discriminator (its loss left in ``out["disc"]``)."""
        out["sc"], out["mag"] = stft_loss(y, audio)
        out["mel"] = F.l1_loss(log_mel(y), log_mel(audio))
        total = out["sc"] + out["mag"] + mel_weight * out["mel"]
        if adversarial:
            judged = disc(torch.cat([audio, y.detach()]))
            d_losses = [d_loss(*lg.float().chunk(2)) for lg, _ in judged]
            out["disc"] = sum(d_losses) / len(d_losses)
            fake = disc_net(y)
            out["adv"] = sum(g_adv_loss(lg.float()) for lg, _ in fake) / len(fake)
            total = total + adversarial_weight * out["adv"]
            if feature_match_weight > 0:
                with torch.no_grad():
                    real = disc_net(audio)
                out["feature_match"] = sum(
                    feature_matching(r[1], f[1]) for r, f in zip(real, fake, strict=True)
                ) / len(fake)
                total = total + feature_match_weight * out["feature_match"]
        return total

    def save(metrics: dict) -> None:
        header = {"kind": "vocoder", "kwargs": net.kwargs, "convention": conv.to_dict(),
                  "provenance": {"command": command, "data": str(data), "step": step,
                                 "voice": str(voice) if voice else None},
                  "metrics": metrics}  # fmt: skip
        if spectral:  # the phase reconstruction it was validated with
            header["rtisi"], header["mel_refine"] = rtisi, mel_refine
        checkpoint.save(ckpt, net.state_dict(), header)
        train_state.save(state_path, step, rng, opts, scheds, {"disc": disc_net})

    record = runtime.Record(run, rt, steps, step, "vocoder", progress)
    tb = record.tb

    def validate() -> dict:
        """Whole held-out items: audio, a mel PNG, mel L1, PESQ-WB and STOI (harmonic: also
        DNSMOS OVRL where speechmos is installed, and the pitch heard against the f0 given)."""
        net.eval()
        scores: dict[str, list[float]] = {"mel_l1": [], "pesq_wb": [], "stoi": []}
        voc = MagnitudeVocoder(net, conv, {}, **rtisi, mel_refine=mel_refine) if spectral else None
        voc = HarmonicVocoder(net, conv, {}) if harmonic else voc
        for i, c in enumerate(val):
            with torch.no_grad():
                if voc is not None:
                    y = torch.from_numpy(voc(c.mel, f0=c.f0))
                else:
                    y = net(torch.from_numpy(c.mel)[None].to(rt.device))[0].float()
                m = log_mel(y[None].to(rt.device))[0].cpu().numpy()
            y = y.cpu().numpy()
            scores["mel_l1"].append(float(np.abs(m - c.mel[:, : m.shape[1]]).mean()))
            for k, v in quality(c.audio, y, conv.sample_rate).items():
                scores[k].append(v)
            if harmonic:
                cents, lost = pitch_error(c.f0, y, conv)
                scores.setdefault("pitch_cents", []).append(cents)
                scores.setdefault("voicing_lost", []).append(lost)
                mos = dnsmos(y, conv.sample_rate)
                if mos is not None:
                    scores.setdefault("dnsmos", []).append(mos)
            if i == 0:
                name = run / f"val_{step:07d}"
                sf.write(f"{name}.wav", y, conv.sample_rate)
                plot_mels(Path(f"{name}.png"), c.mel.T / 3 + 2, m.T / 3 + 2,
                          f"{c.id}, step {step}")  # fmt: skip
                tb.add_audio("val/audio", torch.from_numpy(y)[None], step, conv.sample_rate)
        net.train()
        out = {f"val_{k}": float(np.mean(v)) for k, v in scores.items()}
        for k, v in out.items():
            tb.add_scalar(k.replace("val_", "val/"), v, step)
        return {"step": step, **out}

    with runtime.Interrupt() as interrupt:
        try:
            model.train()
            while step < steps and not rt.any(interrupt.set)[0]:
                picks = [rng.randrange(len(tr)) for _ in range(batch_size * rt.world)]
                chosen = [tr[i] for i in picks[rt.rank * batch_size : (rt.rank + 1) * batch_size]]
                # every process draws the same salt, then cuts its own clips
                clip_rng = random.Random(rng.getrandbits(32) * 1009 + rt.rank)
                if harmonic:
                    hb = harmonic_batch(chosen, clip_rng, segment_frames, ctx, source)
                    mel, f0, h_src, n_src, audio = (t.to(rt.device) for t in hb)
                else:
                    batch = make_batch(chosen, clip_rng, segment_frames, ctx, hop, margin)
                    mel, padded = (t.to(rt.device) for t in batch)
                    audio = padded[:, margin : padded.shape[-1] - margin]
                adversarial = step >= adversarial_start and not (spectral or harmonic)
                out: dict[str, torch.Tensor] = {}
                with rt.autocast():
                    if harmonic:
                        y = harmonic_audio(model, mel, f0, h_src, n_src, ctx, hop).float()
                        total = waveform_losses(y, audio, out, False)
                    elif spectral:  # the frames' own magnitudes are the targets
                        pred = model(mel)[..., ctx:].float()
                        true = losses.frame_log_magnitude(padded, conv, window)
                        out["spectral"] = F.l1_loss(pred, true)
                        diff = torch.linalg.norm(pred.exp() - true.exp())
                        out["sc"] = diff / torch.linalg.norm(true.exp())
                        total = out["spectral"] + out["sc"]
                    else:
                        y = model(mel)[:, ctx * hop :].float()
                        total = waveform_losses(y, audio, out, adversarial)
                    out["total"] = total
                runtime.check_finite(rt, out, step, [c.id for c in chosen], ckpt)
                runtime.optimize(scaler, opts["opt"], out["total"], model.parameters(), 10.0)
                if adversarial:
                    runtime.optimize(scaler, opts["opt_d"], out["disc"], disc.parameters(), 10.0)
                    scheds["sched_d"].step()
                scaler.update()
                scheds["sched"].step()
                step += 1
                record.step(step, out, log_every)
                if step % save_every == 0 and rt.main:
                    save(validate())
            return record.finish(net, validate, save)
        finally:
            record.close()
            rt.close()
