"""The daemon live: control-to-sound latency, timing jitter, voices at once, message rate.

    .venv/bin/python bench/bench_daemon.py [--notes 40] [--max-voices 16]
    .venv/bin/python bench/bench_daemon.py --onsets 500 [--sink sounddevice|wav] [--seed S]

All with the packaged voice and the configured vocoder, on this machine's CPU, in one run:
1. latency: immediate /mnote messages 250 ms apart; the daemon's own measure, message
   received -> first sample handed to the sink, p50 / p99 (and the fixed scheduling latency).
2. jitter: the same notes found in the wav timeline (cross-correlation with the note rendered
   alone): how far each onset's spacing strays from the spacing the messages arrived with.
3. voices: N notes started together, then held 3 s with the null sink: underruns at the
   onsets and while held, render load while held, N = 1, 2, ...
4. message rate: /status round trips at rising rates, p99 at the client.
Run it on an idle machine.

``--onsets N`` runs only this: `melgand serve` on a real PulseAudio null sink (started here,
private), N immediate /mnote note-ons 0.15 s long, 0.3-0.5 s apart with jitter, from a UDP
client in this process; the null sink's monitor recorded with parecord (or, ``--sink wav``,
the daemon's own timeline); each onset found (level, then cross-correlation with the first
note) and the spacing of the onsets compared with the spacing the messages were sent with:
mean / max deviation and slips (a gap more than 3 ms off: a block is 11.6 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from daemon import config
from daemon.serve import Daemon
from daemon.synth import Note

OVERRIDES: dict[str, str] = {}  # the daemon's config: --vocoder and every --set


class Live:
    def __init__(self, sink: str, **sets):
        sets = {"daemon.greeting": "''", "osc.port": "0", **OVERRIDES, **sets}
        self.cfg = config.load(None, [config.parse_override(f"{k}={v}") for k, v in sets.items()])
        ready = threading.Event()
        self.d = Daemon(self.cfg, sink=sink, mqtt="off", ready=lambda d: ready.set())
        self.t = threading.Thread(target=lambda: asyncio.run(self.d.run()))
        self.t.start()
        ready.wait(60)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(10)

    def send(self, address, *args):
        b = OscMessageBuilder(address)
        for a in args:
            b.add_arg(a)
        self.sock.sendto(b.build().dgram, self.d.osc_addr)

    def recv(self, address):
        while True:
            m = OscMessage(self.sock.recvfrom(65536)[0])
            if m.address == address:
                return m.params

    def stop(self):
        self.d.stop()
        self.t.join(30)


def locate(y: np.ndarray, ref: np.ndarray, near: int, span: int) -> int:
    best, where = -1.0, near
    for s in range(max(0, near - span), min(len(y) - len(ref), near + span)):
        seg = y[s : s + len(ref)]
        c = float(seg @ ref) / (np.linalg.norm(seg) * np.linalg.norm(ref) + 1e-9)
        if c > best:
            best, where = c, s
    return where


# ---- --onsets N: immediate note-ons through a real PulseAudio null sink ------------------
ONSET_SLIP = 0.003  # s: a gap that strays more than this from the sending gap is a slip


def send_notes(sock, dest, n: int, seed: int = 0, dur: float = 0.15,
               gaps: tuple[float, float] = (0.3, 0.5)):  # fmt: skip
    """``n`` immediate /mnote note-ons (released after ``dur``), ``gaps`` s apart with
    jitter. Returns the monotonic times they were sent (the middle of the clock readings
    before and after ``sendto``) and how long each ``sendto`` took by them: on a busy CPU
    the sender may be preempted there, and then its time says less of the arrival."""
    rng = np.random.default_rng(seed)
    sent, took = [], []
    for i in range(n):
        on, off = _osc("/mnote", 64.0, 100.0, i + 1), _osc("/mnote/rel", 64.0, i + 1)
        t0 = time.monotonic()
        sock.sendto(on, dest)
        t1 = time.monotonic()
        sent.append((t0 + t1) / 2)
        took.append(t1 - t0)
        time.sleep(max(0.0, dur - (time.monotonic() - t0)))
        sock.sendto(off, dest)
        time.sleep(max(0.0, rng.uniform(*gaps) - (time.monotonic() - t0)))
    return np.asarray(sent), np.asarray(took)


def answers(sock, dest, proc, seconds: float) -> bool:
    """Whether the daemon ``proc`` at ``dest`` answers ``/version`` within ``seconds`` (False
    as soon as it has exited)."""
    deadline = time.monotonic() + seconds
    while True:
        sock.sendto(_osc("/version"), dest)
        sock.settimeout(0.5)
        try:
            if OscMessage(sock.recvfrom(4096)[0]).address == "/version.reply":
                return True
        except TimeoutError:
            if proc.poll() is not None or time.monotonic() > deadline:
                return False


def _osc(address: str, *args) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def find_onsets(y: np.ndarray, rate: int, quiet: float = 0.1, thr: float = 0.02) -> np.ndarray:
    """Each note's onset in a recording of notes with silence between them, in samples
    (fractional): where the level first passes ``thr`` after ``quiet`` s below it, refined
    by cross-correlating each onset's level with the first one's (the notes are alike; the
    level, |y| over 0.5 ms, and not the waveform, which a note's own phase and vibrato move by
    a pitch period)."""
    loud = np.flatnonzero(np.abs(y) > thr)
    if not len(loud):
        return np.zeros(0)
    starts = loud[np.concatenate(([True], np.diff(loud) > quiet * rate))]
    pre, post, span = int(0.005 * rate), int(0.04 * rate), int(0.004 * rate)
    starts = starts[(starts >= pre + span) & (starts + post + span < len(y))]
    if not len(starts):
        return np.zeros(0)
    level = np.convolve(np.abs(y), np.ones(int(0.0005 * rate) + 1), "same")
    ref = level[starts[0] - pre : starts[0] + post]
    out = []
    for s in starts:
        seg = level[s - pre - span : s + post + span]
        c = np.correlate(seg, ref, "valid")  # lag k: ref at s - span + k
        k = int(np.argmax(c))
        frac = 0.0
        if 0 < k < len(c) - 1:  # parabolic peak: sub-sample
            a, b, d = c[k - 1], c[k], c[k + 1]
            den = a - 2 * b + d
            frac = 0.5 * (a - d) / den if den != 0 else 0.0
        out.append(s - span + k + frac)
    return np.asarray(out)


def run_onsets(n: int, sink: str, seed: int) -> None:
    """Send ``n`` note-ons to `melgand serve` on the PulseAudio null sink (``sink`` =
    sounddevice, recorded from the monitor) or ``wav`` (the daemon's own timeline), and
    compare the recorded onset spacing with the sending spacing."""
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from tests.conftest import start_pulse

    tmp = Path(tempfile.mkdtemp())
    (tmp / "pulse").mkdir()
    pulse, env, plog = start_pulse(tmp / "pulse")
    rate = 22050
    rec = tmp / "monitor.wav"
    wav = tmp / "timeline.wav"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    parec = None
    if sink == "sounddevice":
        parec = subprocess.Popen(["parecord", "--device=melgand_test.monitor", "--channels=1",
                                  f"--rate={rate}", "--file-format=wav", str(rec)],
                                 env=env)  # fmt: skip
    spec = "sounddevice" if sink == "sounddevice" else f"wav:{wav}"
    sets = ["daemon.greeting=''", *[f"{k}={v}" for k, v in OVERRIDES.items()]]
    cmd = [sys.executable, "-m", "daemon.cli", "serve", "--sink", spec, "--osc",
           f"127.0.0.1:{port}", "--mqtt", "off"]  # fmt: skip
    cmd += [a for s in sets for a in ("--set", s)]
    log = tmp / "daemon.log"
    with log.open("w") as f:
        p = subprocess.Popen(cmd, stderr=f, env={**env, "PYTHONPATH": str(root)}, cwd=root)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest = ("127.0.0.1", port)
    try:
        if not answers(sock, dest, p, 90.0):
            raise SystemExit(f"the daemon did not start:\n{log.read_text()[-3000:]}")
        time.sleep(3.0)  # past the stall of a newly opened PulseAudio stream
        sent, took = send_notes(sock, dest, n + 1, seed)  # a lead-in note, then n
        time.sleep(1.0)
        np.save(tmp / "sent.npy", np.stack([sent, took]))
        status = None
        for _ in range(3):  # past the /done replies of the notes
            sock.sendto(_osc("/status"), dest)
            sock.settimeout(2)
            try:
                while status is None:
                    m = OscMessage(sock.recvfrom(4096)[0])
                    status = m.params if m.address == "/status.reply" else None
                break
            except TimeoutError:
                continue
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
        if parec is not None:
            parec.send_signal(signal.SIGINT)
            parec.wait(10)
        sock.close()
        pulse.terminate()
        pulse.wait(10)
        plog.close()
    print(f"# {n} immediate note-ons, 0.3-0.5 s apart, on {spec.split(':')[0]} "
          f"({'the null sink monitor' if parec else 'the timeline'}), seed {seed}; files in "
          f"{tmp}\n")  # fmt: skip
    report(rec if sink == "sounddevice" else wav, sent, took, log.read_text(), status)


def analyse(y: np.ndarray, rate: int, sent, took) -> dict:
    """The recorded onsets against the sending times, the first note a lead-in: each gap's
    error (s; NaN where a note was not found), which notes a device stall cut (their first
    100 ms hold exact silence: not found reliably), which sends were held up in ``sendto``
    (more than 0.5 ms: the sender's clock says less of the arrival), the gaps of neither
    (``good``) and the device clock's drift against the system's. A note that begins as a
    stall's silence ends was cut too."""
    sent, took = np.asarray(sent), np.asarray(took)
    # the first note has no syllable sung before it (co-articulation): it starts otherwise
    # than the others and leads in; the ones after it are compared
    err, onset = spacing_errors(find_onsets(y, rate), sent, rate)
    err, onset, sent, took = err[1:], onset[1:], sent[1:], took[1:]
    found = ~np.isnan(onset)
    cut = np.zeros(len(sent), bool)
    for i in np.flatnonzero(found):
        s = int(onset[i] * rate)
        zero = (np.abs(y[s : s + rate // 10]) == 0).astype(float)
        cut[i] = len(zero) >= 44 and np.convolve(zero, np.ones(44), "valid").max() >= 44
    # and a note that starts as a stall's silence (a second or more, exact) ends
    z = np.concatenate(([0], (y == 0).astype(np.int8), [0]))
    edges = np.diff(z)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    stall_ends = ends[ends - starts >= rate] / rate
    for i in np.flatnonzero(found):
        cut[i] |= bool(np.any((onset[i] - stall_ends >= -0.05) & (onset[i] - stall_ends < 0.1)))
    unsure = took > 0.0005
    bad = cut | unsure
    ok = ~np.isnan(err)
    good = ok & ~bad[1:] & ~bad[:-1]
    m = found & ~bad
    slope = np.polyfit(sent[m] - sent[0], onset[m] - sent[m], 1)[0] if m.sum() > 2 else 0.0
    return dict(err=err, ok=ok, good=good, found=found, cut=cut, unsure=unsure, slope=slope,
                drift_free=err[good] - slope * np.diff(sent)[good])  # fmt: skip


def report(recording: Path, sent, took, text: str, status) -> None:
    """The onset table: ``recording`` against the sending times (a lead-in note first)."""
    y, rate = sf.read(recording, dtype="float32")
    r = analyse(y, rate, sent, took)
    err, ok, good, cut, unsure = r["err"], r["ok"], r["good"], r["cut"], r["unsure"]
    n = len(sent) - 1
    late, stalls = text.count("late by"), text.count("the audio device stalled")
    print("| measure | figure |\n|---|---:|")
    print(f"| onsets found / sent (after the lead-in note) | {int(r['found'].sum())} / {n} |")
    print(f"| underruns (/status) | {status[3] if status else '?'} |")
    print(f"| late (log) / device stalls (log) | {late} / {stalls} |")
    print(f"| notes cut by a stall / sends held up > 0.5 ms | {int(cut.sum())} / "
          f"{int(unsure.sum())} |")  # fmt: skip
    if not good.any():
        print("\nno two consecutive notes found")
        return
    a, g = np.abs(err[ok]) * 1000, np.abs(err[good]) * 1000
    d = np.abs(r["drift_free"]) * 1000
    slip = ONSET_SLIP * 1000
    print(f"| gaps compared (both notes found) | {int(ok.sum())} of {n - 1} |")
    print(f"| slips (gap off by > {slip:.0f} ms), all of them | {int((a > slip).sum())} |")
    print(f"| gaps of neither a cut note nor a held-up send | {int(good.sum())} |")
    p50, p99 = np.percentile(g, [50, 99])
    print(f"| their onset gap - sending gap, mean / p50 / p99 / max abs | {g.mean():.2f} / "
          f"{p50:.2f} / {p99:.2f} / {g.max():.2f} ms |")  # fmt: skip
    print(f"| **their slips (> {slip:.0f} ms)** | **{int((g > slip).sum())}** |")
    print(f"| device clock against the system clock | {r['slope'] * 1e6:+.0f} ppm |")
    print(f"| the same gaps, drift removed: mean / max abs | {d.mean():.2f} / {d.max():.2f} ms |")
    idx = np.flatnonzero(ok)[np.argsort(-a)[:5]]
    why = lambda i: "".join(f" ({w})" for w, x in (("cut", cut), ("held up", unsure))  # noqa: E731
                            if x[i] or x[i + 1])  # fmt: skip
    print("\nworst gaps (notes: ms):",
          ", ".join(f"{i + 1}-{i + 2}: {1000 * err[i]:+.2f}{why(i)}" for i in idx))  # fmt: skip


def spacing_errors(found: np.ndarray, sent: np.ndarray, rate: int, tol: float = 0.02,
                   wide: float = 0.14):  # fmt: skip
    """Each sent note's onset among ``found`` (samples), and for each pair of consecutive
    notes both found, onset gap - sending gap (s; NaN where a note was not found: a device
    stall drops the sound in it). The offset from sending to sound is followed from note to
    note (the device's clock may drift against the system's by a few hundred ppm) by the
    onsets within ``tol`` of it; an onset up to ``wide`` s off it (less than half the least
    gap) is that note's, however late; where the offset starts is the one that matches the
    most of the first notes within ``tol``."""
    onset = np.full(len(sent), np.nan)
    if not len(found):
        return np.diff(onset), onset
    t = found / rate
    offsets = [f - s for f in t[:8] for s in sent[:8]]
    off = max(offsets, key=lambda o: int((np.abs(t[:16, None] - (sent[:16] + o)) < tol).sum()))
    for i, s in enumerate(sent):
        k = int(np.abs(t - (s + off)).argmin())
        if abs(t[k] - (s + off)) < wide:  # found, however far off (a slip of any size)
            onset[i] = t[k]
            if abs(t[k] - (s + off)) < tol:  # followed only by the ones near it
                off = t[k] - s
    return np.diff(onset) - np.diff(sent), onset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=40)
    ap.add_argument("--max-voices", type=int, default=16)
    ap.add_argument("--vocoder", default=None, help="[daemon] vocoder for this run")
    ap.add_argument("--onsets", type=int, default=0, metavar="N",
                    help="only this: N immediate note-ons on a PulseAudio null sink, their "
                    "recorded spacing against the sending spacing")  # fmt: skip
    ap.add_argument("--sink", choices=["sounddevice", "wav"], default="sounddevice",
                    help="--onsets: the null sink through PortAudio, recorded from its "
                    "monitor, or the daemon's wav timeline")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0, help="--onsets: the gaps' jitter")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for the daemon, e.g. daemon.block=256",
    )
    args = ap.parse_args()
    if args.vocoder:
        OVERRIDES["daemon.vocoder"] = f"'{args.vocoder}'"
    OVERRIDES.update(kv.split("=", 1) for kv in args.set)
    if args.onsets:
        run_onsets(args.onsets, args.sink, args.seed)
        return
    tmp = Path(tempfile.mkdtemp())
    wav = tmp / "timeline.wav"

    live = Live(f"wav:{wav}")
    sent = []
    for i in range(args.notes):
        sent.append(time.monotonic())
        live.send("/mnote", 64.0, 100.0, i + 1)
        time.sleep(0.08)
        live.send("/mnote/rel", 64.0, i + 1)
        time.sleep(max(0.0, 0.25 - (time.monotonic() - sent[-1])))
    time.sleep(0.5)
    live.send("/status")
    live.recv("/status.reply")
    st = live.d.scheduler.status()
    t0, rate = live.d.scheduler.sink.t0, live.d.renderer.rate
    r, sched = live.d.renderer, live.d.scheduler
    # each note as the daemon sang it: the first alone, the rest after a "la" (< 1 s before)
    first = Note(r, 64.0, 100.0, "la").render(2048)
    later = Note(r, 64.0, 100.0, "la", sched.params, (tuple(r.phones_of("la")), ())).render(2048)
    latency = sched.latency  # samples, as raised for the sink
    live.stop()
    lat = live.cfg.daemon.latency_ms
    print(f"# daemon on this CPU: {args.notes} immediate notes 250 ms apart\n")
    print("| measure | figure |")
    print("|---|---:|")
    print(
        f"| control-to-sound (received -> handed to the sink), p50 | "
        f"{st['latency_p50_ms']:.1f} ms |"
    )
    print(f"| control-to-sound, p99 | {st['latency_p99_ms']:.1f} ms |")
    print(f"| scheduled latency (arrival + fixed: [daemon] latency_ms {lat:.0f}, or the least "
          f"the sink allows) | {1000 * latency / rate:.1f} ms |")  # fmt: skip
    print(f"| underruns | {st['underruns']} |")
    y, _ = sf.read(wav, dtype="float32")
    onsets = [locate(y, later if i else first, round((t - t0) * rate) + latency, 1500)
              for i, t in enumerate(sent)]  # fmt: skip
    err = np.abs(np.diff(onsets) / rate - np.diff(sent)) * 1000
    print(
        f"| onset spacing error vs arrival spacing, mean / p99 / max | "
        f"{err.mean():.2f} / {np.percentile(err, 99):.2f} / {err.max():.2f} ms |"
    )

    print(
        "\n| voices (null sink) | underruns at the onsets | underruns held 3 s | "
        "render load avg % | peak % |"
    )
    print("|---:|---:|---:|---:|---:|")
    for n in range(1, args.max_voices + 1):
        live = Live("null", **{"daemon.max_voices": str(n)})
        time.sleep(0.3)
        u0 = live.d.scheduler.status()["underruns"]
        for i in range(n):
            live.send("/mnote", 52.0 + 3 * i % 36, 90.0, i + 1)  # MIDI 52-85: all sounded
        time.sleep(0.5)
        assert live.d.scheduler.status()["active_voices"] == n, "a voice was refused"
        u1 = live.d.scheduler.status()["underruns"]
        live.d.scheduler.loads.clear()
        live.d.scheduler.peak_load = 0.0
        time.sleep(3.0)
        s = live.d.scheduler.status()
        live.send("/allsoundoff")
        live.stop()
        print(
            f"| {n} | {u1 - u0} | {s['underruns'] - u1} | {s['avg_load']:.0f} | "
            f"{s['peak_load']:.0f} |"
        )
        if s["underruns"] - u1 > 5 and n >= 2:
            break

    live = Live("null")
    print("\n| /status messages a second | replies | round trip p50 | p99 |")
    print("|---:|---:|---:|---:|")
    for rate_hz in (100, 500, 1000, 2000):
        rtts = []
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            t = time.monotonic()
            live.send("/status")
            try:
                live.recv("/status.reply")
                rtts.append(time.monotonic() - t)
            except TimeoutError:
                pass
            time.sleep(max(0.0, 1 / rate_hz - (time.monotonic() - t)))
        r = np.array(rtts) * 1000
        print(
            f"| {rate_hz} (sent) | {len(r) / 2:.0f}/s | {np.percentile(r, 50):.2f} ms | "
            f"{np.percentile(r, 99):.2f} ms |"
        )
    live.stop()


if __name__ == "__main__":
    main()
