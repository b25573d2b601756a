"""Vocoders side by side: copy-synthesis quality and pitch on held-out teacher audio, and speed.

    .venv/bin/python bench/bench_vocoder.py [--vocoder NAME=CHECKPOINT ...] [--sentences N]
                                            [--quick] [--skip-quality] [--skip-pitch]
                                            [--skip-speed]

Quality: the bench_voice sentences (in no training corpus) rendered by Festival, resampled to
the convention's rate, analysed to log-mel and frame f0 (``dsp.yin``, aligned to the mel) and
resynthesized; PESQ-WB and STOI against the original and DNSMOS OVRL/SIG of the result, for
Griffin-Lim (32 iterations), RTISI-LA (the streaming DSP vocoder), the packaged neural and
harmonic vocoders (``model.registry``) and every checkpoint given; beside the teacher audio
itself (DNSMOS only) and WORLD analysis-synthesis (pyworld harvest/cheaptrick/d4c, the true
features: a ceiling for a source-filter vocoder).

Pitch: sung audio made with WORLD from teacher speech (two Festival sentences; f0 replaced by
six held notes across MIDI 55-72 with 5.5 Hz / 30-cent vibrato on the voiced frames; unvoiced
frames stay unvoiced), then copy-synthesized by each vocoder; f0 of the output (``dsp.yin``)
over each note's middle 50 % (frames voiced in the sung input): median absolute error in cents
against the ideal contour (vibrato included) and against the nominal note, and the % of those
frames the output leaves unvoiced, and against the input's own f0 by the same tracker (what
the vocoder changed: WORLD's sung input is itself 7 cents off its ideal by YIN, 9 by
harvest + stonemask, so no copy of it is measured much closer to the ideal). The sung input
itself is the pitch tracker's floor.

Speed (random weights suffice: the cost does not depend on them): offline real-time factor on
10 s of mel and streaming cost per chunk at the daemon's chunk size, for the paper's MelGAN,
the multi-band MelGAN, the configured magnitude vocoder and the DSP vocoder, plus the
registry's vocoders loaded above, in one run.
Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import soxr
import torch
from bench_voice import SENTENCES, festival
from judges import dnsmos

import dsp
from daemon import config
from model import registry
from model.harmonic import TorchHarmonicNet
from model.harmonic_vocoder import HarmonicVocoder
from model.magnitude import MagnitudeNet, MagnitudeVocoder
from model.melgan import MelGAN, MelGANVocoder

# The sung probe: (MIDI note, seconds), vibrato rate (Hz) and depth (cents, peak).
NOTES = ((55, 0.8), (62, 0.6), (59, 1.0), (67, 0.7), (64, 0.9), (72, 0.75))
VIBRATO_HZ, VIBRATO_CENTS = 5.5, 30.0
SUNG_SENTENCES = (2, 7)  # indices into SENTENCES, concatenated


def best_of(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


# ----------------------------------------------------------------------------- vocoders


def synth(voc, mel: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """Offline ``voc(log_mel, f0=f0)`` (vocoders that take no pitch ignore the f0)."""
    return np.asarray(voc(mel, f0=f0), np.float32).reshape(-1)


def stream(voc, mel: np.ndarray, state, f0: np.ndarray):
    return voc.stream(mel, state, f0=f0)


def load_vocoders(conv, specs: list[str], settings: list) -> dict:
    """The rows: Griffin-Lim 32, RTISI-LA, neural, harmonic (from ``model.registry``), then
    ``--vocoder NAME=CHECKPOINT`` (magnitude checkpoints once per ``--rtisi`` setting)."""
    vocoders = {
        "Griffin-Lim 32": dsp.DspVocoder(conv, "griffin_lim", griffin_lim_iters=32),
        "RTISI-LA (DSP, streaming)": dsp.DspVocoder(conv, "rtisi"),
    }
    for name in ("neural", "harmonic"):
        try:
            vocoders[name] = registry.load(name, conv)
        except Exception as e:
            print(f"> note: skipping {name}: registry.load raised {type(e).__name__}: {e}\n")
    for spec in specs:
        name, _, path = spec.partition("=")
        path = path or name
        voc = registry.load(path, conv)
        if isinstance(voc, MagnitudeVocoder) and settings:
            for la, it in settings:
                vocoders[f"{name} (RTISI-LA {la}/{it}, mel refine {voc.mel_refine})"] = (
                    MagnitudeVocoder(voc.net, conv, voc.header, la, it, voc.mel_refine)
                )
        else:
            vocoders[name] = voc
    return vocoders


# ----------------------------------------------------------------------------- WORLD


def _pyworld():
    import warnings

    with warnings.catch_warnings():  # pyworld imports pkg_resources, deprecated
        warnings.simplefilter("ignore")
        import pyworld

    return pyworld


def _world_analyse(y: np.ndarray, conv):
    pw = _pyworld()

    x = y.astype(np.float64)
    fp = 1000.0 * conv.hop_length / conv.sample_rate
    f0, t = pw.harvest(x, conv.sample_rate, f0_floor=60.0, f0_ceil=1000.0, frame_period=fp)
    sp = pw.cheaptrick(x, f0, t, conv.sample_rate)
    ap = pw.d4c(x, f0, t, conv.sample_rate)
    return f0, sp, ap, fp


def _world_synth(f0, sp, ap, fp, conv, n: int) -> np.ndarray:
    pw = _pyworld()

    y = pw.synthesize(f0, sp, ap, conv.sample_rate, fp).astype(np.float32)
    y = np.pad(y, (0, max(0, n - len(y))))[:n]
    return np.clip(y, -1.0, 1.0)


def world_resynth(y: np.ndarray, conv) -> np.ndarray:
    """WORLD analysis-synthesis with the true features."""
    return _world_synth(*_world_analyse(y, conv), conv, len(y))


def note_contour(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At times ``t`` (s, from the first note's start): ``(ideal Hz, nominal Hz, note index)``,
    0 Hz and index -1 outside the notes."""
    ideal, nominal, idx = np.zeros_like(t), np.zeros_like(t), np.full(t.shape, -1)
    start = 0.0
    for j, (m, d) in enumerate(NOTES):
        sel = (t >= start) & (t < start + d)
        hz = 440.0 * 2.0 ** ((m - 69) / 12)
        cents = VIBRATO_CENTS * np.sin(2 * np.pi * VIBRATO_HZ * (t[sel] - start))
        ideal[sel], nominal[sel], idx[sel] = hz * 2.0 ** (cents / 1200), hz, j
        start += d
    return ideal, nominal, idx


def sung_probe(conv) -> tuple[np.ndarray, np.ndarray, float]:
    """``(audio, voiced mask per WORLD frame, first note's start in s)``: teacher speech with
    its f0 replaced by :data:`NOTES` on its voiced frames."""
    parts = []
    for i in SUNG_SENTENCES:
        y, sr = festival(SENTENCES[i])
        parts.append(soxr.resample(y, sr, conv.sample_rate).astype(np.float32))
    y = np.concatenate(parts)
    f0, sp, ap, fp = _world_analyse(y, conv)
    t = np.arange(len(f0)) * fp / 1000.0
    t0 = float(t[np.argmax(f0 > 0)])
    total = sum(d for _, d in NOTES)
    ideal, _, idx = note_contour(t - t0)
    voiced = (f0 > 0) & (idx >= 0)
    f0s = np.where(voiced, ideal, 0.0)
    end = int(np.ceil((t0 + total + 0.3) * 1000.0 / fp))
    n = min(end, len(f0))
    n_samples = n * conv.hop_length
    out = _world_synth(f0s[:n].copy(), sp[:n].copy(), ap[:n].copy(), fp, conv, n_samples)
    return out, voiced[:n], t0


def pitch_errors(y: np.ndarray, conv, voiced_in: np.ndarray, t0: float,
                 heard_in: np.ndarray | None = None) -> tuple[float, ...]:  # fmt: skip
    """(median |cents| vs ideal, vs nominal, % unvoiced, vs ``heard_in``: the input's own f0
    by the same tracker) over the notes' middle 50 %."""
    f0, v = dsp.yin(y, conv)
    t = (np.arange(len(f0)) + 0.5) * conv.hop_length / conv.sample_rate  # frame centres
    ideal, nominal, idx = note_contour(t - t0)
    rel = t - t0
    mid = np.zeros(len(f0), bool)
    start = 0.0
    for _, d in NOTES:
        mid |= (rel >= start + 0.25 * d) & (rel <= start + 0.75 * d)
        start += d
    # only frames voiced in the sung input (WORLD frame k is at k * hop; take the nearest)
    k = np.clip(np.rint(t * conv.sample_rate / conv.hop_length).astype(int), 0, len(voiced_in) - 1)
    sel = mid & voiced_in[k] & (idx >= 0)
    ok = sel & v & (f0 > 0)
    if not sel.any():
        return float("nan"), float("nan"), float("nan")
    unv = 100.0 * (1 - ok.sum() / sel.sum())
    if not ok.any():
        return float("nan"), float("nan"), unv
    e_ideal = np.median(np.abs(1200 * np.log2(f0[ok] / ideal[ok])))
    e_nom = np.median(np.abs(1200 * np.log2(f0[ok] / nominal[ok])))
    e_in = float("nan")
    if heard_in is not None:
        n = min(len(heard_in), len(f0))
        both = ok[:n] & (heard_in[:n] > 0)
        e_in = float(np.median(np.abs(1200 * np.log2(f0[:n][both] / heard_in[:n][both]))))
    return float(e_ideal), float(e_nom), float(unv), e_in


# ----------------------------------------------------------------------------- sections


def resynth(voc, y: np.ndarray, conv) -> np.ndarray:
    """``y`` itself (``voc`` None), WORLD's analysis-synthesis ("world"), or copied by a
    vocoder (analysed to log-mel and f0, then synthesized)."""
    if voc is None:
        return y
    if voc == "world":
        return world_resynth(y, conv)
    return synth(voc, *dsp.vocoder_inputs(y, conv))


def quality_section(vocoders: dict, conv, n_sentences: int) -> None:
    from trainer.vocoder import quality

    clips = []
    for s in SENTENCES[:n_sentences]:
        y, sr = festival(s)
        y = soxr.resample(y, sr, conv.sample_rate).astype(np.float32)
        clips.append(y[: len(y) // conv.hop_length * conv.hop_length])
    sr = conv.sample_rate
    print(f"# copy-synthesis: {len(clips)} held-out Festival sentences, {sr} Hz\n")
    print("| vocoder | DNSMOS OVRL | DNSMOS SIG | PESQ-WB | STOI |")
    print("|---|---:|---:|---:|---:|")
    rows = {"teacher audio itself (Festival cmu_us_slt_arctic_hts)": None,
            "WORLD analysis-synthesis (harvest/cheaptrick/d4c, true features)": "world",
            **vocoders}  # fmt: skip
    for name, voc in rows.items():
        q, m = [], []
        try:
            for y in clips:
                out = resynth(voc, y, conv)
                m.append(dnsmos(out, sr))
                if voc is not None:
                    q.append(quality(y, out, sr))
        except Exception as e:
            print(f"| {name} | failed: {type(e).__name__}: {e} | | | |")
            continue
        ovrl, sig = (np.mean([x[k] for x in m]) for k in ("ovrl", "sig"))
        if q:
            p, st = (np.mean([x[k] for x in q]) for k in ("pesq_wb", "stoi"))
            print(f"| {name} | {ovrl:.2f} | {sig:.2f} | {p:.2f} | {st:.3f} |")
        else:
            print(f"| {name} | {ovrl:.2f} | {sig:.2f} | — | — |")


def pitch_section(vocoders: dict, conv) -> None:
    y, voiced, t0 = sung_probe(conv)
    notes = ", ".join(f"{m}" for m, _ in NOTES)
    print(f"\n# pitch: WORLD-sung teacher speech ({len(y) / conv.sample_rate:.1f} s), notes MIDI "
          f"{notes} ({sum(d for _, d in NOTES):.2f} s), vibrato {VIBRATO_HZ} Hz / "
          f"{VIBRATO_CENTS:.0f} cents; f0 by dsp.yin over note middles (50 %)\n")  # fmt: skip
    print("| vocoder | median abs error vs ideal (cents) | vs nominal note (cents) "
          "| unvoiced % | vs the input's own pitch (cents) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    heard, _ = dsp.yin(y, conv)
    rows = {"sung input itself (tracker floor)": None,
            "WORLD analysis-synthesis (true features)": "world", **vocoders}  # fmt: skip
    for name, voc in rows.items():
        try:
            out = resynth(voc, y, conv)
            e_i, e_n, unv, e_in = pitch_errors(out, conv, voiced, t0, heard)
        except Exception as e:
            print(f"| {name} | failed: {type(e).__name__}: {e} | | | |")
            continue
        print(f"| {name} | {e_i:.1f} | {e_n:.1f} | {unv:.1f} | {e_in:.1f} |")


def _speed_models(cfg, conv, settings) -> dict:
    """The configured architectures with random weights."""
    v = cfg.vocoder
    timed = {}
    mb = MelGAN(conv.n_mels, conv.hop_length, 256, (4, 4, 4), bands=4, lookahead=1)
    paper = MelGAN(conv.n_mels, conv.hop_length, 512, (8, 8, 2, 2))
    timed["MelGAN, paper config"] = MelGANVocoder(paper.remove_weight_norm(), conv, {})
    timed["multi-band MelGAN (4 bands, 256 ch)"] = MelGANVocoder(mb.remove_weight_norm(), conv, {})
    mag = MagnitudeNet(conv.n_mels, conv.n_bins, v.channels, v.blocks, v.lookahead)
    mag.remove_weight_norm()
    for la, it in settings:
        name = (f"magnitude net ({v.channels} ch x {v.blocks}) + mel refine {v.mel_refine} "
                f"+ RTISI-LA {la}/{it}")  # fmt: skip
        timed[name] = MagnitudeVocoder(mag, conv, {}, la, it, v.mel_refine)
    timed["RTISI-LA (DSP: NNLS + RTISI-LA 2/4)"] = dsp.DspVocoder(conv, "rtisi")
    return timed


def _parameters(voc) -> int:
    """A network vocoder's weights: a torch module's parameters, or the CPU engine's."""
    net = voc.net
    if hasattr(net, "tensors"):  # model.harmonic_cpu: the state dict it was built from
        return sum(int(np.prod(np.shape(v))) for k, v in net.tensors.items()
                   if "original0" not in k)  # fmt: skip
    net = getattr(net, "net", net)  # model.harmonic.TorchHarmonicNet wraps the module
    return sum(p.numel() for p in net.parameters())


def speed_section(timed: dict, conv, chunk: int) -> None:
    seconds = 10.0
    frames = int(seconds * conv.sample_rate / conv.hop_length)
    rng = np.random.default_rng(0)
    mel = rng.normal(-5, 2, (conv.n_mels, frames)).astype(np.float32)
    f0 = np.where(rng.random(frames) < 0.7, 220.0, 0.0).astype(np.float32)
    print(f"\n# speed: {seconds:.0f} s of audio, {torch.get_num_threads()} threads\n")
    print("| vocoder | parameters | offline x real time | stream ms per chunk | chunk audio ms "
          "| delay ms |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    chunk_ms = chunk * conv.hop_length / conv.sample_rate * 1000
    for name, voc in timed.items():
        n = f"{_parameters(voc) / 1e6:.2f}M" if getattr(voc, "net", None) is not None else "0"
        delay = f"{1000 * getattr(voc, 'delay', 0) / conv.sample_rate:.1f}"
        try:
            t = best_of(lambda voc=voc: synth(voc, mel, f0), 3)
        except Exception as e:
            print(f"| {name} | {n} | failed: {type(e).__name__}: {e} | | | {delay} |")
            continue
        per = "—"
        if getattr(voc, "method", "rtisi") == "rtisi":  # Griffin-Lim cannot stream
            st = None
            for i in range(0, 40, chunk):  # warm
                _, st = stream(voc, mel[:, i : i + chunk], st, f0[i : i + chunk])
            t0 = time.perf_counter()
            k = 0
            for i in range(40, 400, chunk):
                _, st = stream(voc, mel[:, i : i + chunk], st, f0[i : i + chunk])
                k += 1
            per = f"{(time.perf_counter() - t0) / k * 1000:.2f}"
        print(f"| {name} | {n} | {seconds / t:.1f} | {per} | {chunk_ms:.1f} | {delay} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocoder", action="append", default=[], metavar="NAME=CHECKPOINT")
    ap.add_argument("--sentences", type=int, default=len(SENTENCES))
    ap.add_argument("--quick", action="store_true", help="3 sentences: a smoke test")
    ap.add_argument("--chunk", type=int, default=2, help="frames a streaming chunk")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-pitch", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--rtisi", nargs="+", default=[], metavar="LOOKAHEAD/ITERS",
                    help="RTISI-LA settings to try magnitude vocoders with (default: each "
                    "checkpoint's own; the speed rows: [vocoder] config)")  # fmt: skip
    args = ap.parse_args()
    if args.quick:
        args.sentences = min(args.sentences, 3)
    settings = [tuple(int(x) for x in r.split("/")) for r in args.rtisi]
    torch.set_num_threads(2)
    cfg = config.load()
    conv = cfg.audio
    vocoders = load_vocoders(conv, args.vocoder, settings)

    if not args.skip_quality:
        quality_section(vocoders, conv, args.sentences)
    if not args.skip_pitch:
        pitch_section(vocoders, conv)
    if not args.skip_speed:
        v = cfg.vocoder
        timed = _speed_models(cfg, conv, settings or [(v.rtisi_lookahead, v.rtisi_iters)])
        for name, voc in vocoders.items():
            if name not in ("Griffin-Lim 32", "RTISI-LA (DSP, streaming)"):
                timed[f"{name} (loaded)"] = voc
        if isinstance(vocoders.get("harmonic"), HarmonicVocoder):  # its network in torch too
            h = vocoders["harmonic"]
            net = TorchHarmonicNet.of(h.net.tensors, h.net.kwargs, "cpu")
            timed["harmonic, the network in torch (before)"] = HarmonicVocoder(
                net, conv, h.header, noise_gate=h.noise_gate
            )
        speed_section(timed, conv, args.chunk)


if __name__ == "__main__":
    main()
