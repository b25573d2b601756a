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

VOCODER: dict[str, str] = {}  # "daemon.vocoder" when --vocoder is given


class Live:
    def __init__(self, sink: str, **sets):
        sets = {"daemon.greeting": "''", "osc.port": "0", **VOCODER, **sets}
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
               gaps: tuple[float, float] = (0.3, 0.5)) -> list[float]:  # fmt: skip
    """``n`` immediate /mnote note-ons (released after ``dur``), ``gaps`` s apart with
    jitter; the monotonic times they were sent."""
    rng = np.random.default_rng(seed)
    sent = []
    for i in range(n):
        sent.append(time.monotonic())
        sock.sendto(_osc("/mnote", 64.0, 100.0, i + 1), dest)
        time.sleep(max(0.0, dur - (time.monotonic() - sent[-1])))
        sock.sendto(_osc("/mnote/rel", 64.0, i + 1), dest)
        time.sleep(max(0.0, rng.uniform(*gaps) - (time.monotonic() - sent[-1])))
    return sent


def _osc(address: str, *args) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def find_onsets(y: np.ndarray, rate: int, quiet: float = 0.1, thr: float = 0.02) -> np.ndarray:
    """Each note's onset in a recording of notes with silence between them, in samples
    (fractional): where the level first passes ``thr`` after ``quiet`` s below it, refined
    by cross-correlating each onset with the first one (the notes are alike)."""
    loud = np.flatnonzero(np.abs(y) > thr)
    if not len(loud):
        return np.zeros(0)
    starts = loud[np.concatenate(([True], np.diff(loud) > quiet * rate))]
    pre, post, span = int(0.005 * rate), int(0.04 * rate), int(0.004 * rate)
    starts = starts[(starts >= pre + span) & (starts + post + span < len(y))]
    if not len(starts):
        return np.zeros(0)
    ref = y[starts[0] - pre : starts[0] + post]
    out = []
    for s in starts:
        seg = y[s - pre - span : s + post + span]
        c = np.correlate(seg, ref, "valid")  # lag k: ref at s - span + k
        k = int(np.argmax(c))
        frac = 0.0
        if 0 < k < len(c) - 1:  # parabolic peak: sub-sample
            a, b, d = c[k - 1], c[k], c[k + 1]
            den = a - 2 * b + d
            frac = 0.5 * (a - d) / den if den != 0 else 0.0
        out.append(s - span + k + frac)
    return np.asarray(out)


def run_onsets(n: int, sink: str, seed: int, sets: list[str]) -> None:
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
    sets = ["daemon.greeting=''", *[f"{k}={v}" for k, v in VOCODER.items()], *sets]
    cmd = [sys.executable, "-m", "daemon.cli", "serve", "--sink", spec, "--osc",
           f"127.0.0.1:{port}", "--mqtt", "off"]  # fmt: skip
    cmd += [a for s in sets for a in ("--set", s)]
    log = tmp / "daemon.log"
    with log.open("w") as f:
        p = subprocess.Popen(cmd, stderr=f, env={**env, "PYTHONPATH": str(root)}, cwd=root)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest = ("127.0.0.1", port)
    try:
        deadline = time.monotonic() + 90
        while True:
            sock.sendto(_osc("/version"), dest)
            sock.settimeout(0.5)
            try:
                if OscMessage(sock.recvfrom(4096)[0]).address == "/version.reply":
                    break
            except TimeoutError:
                if p.poll() is not None or time.monotonic() > deadline:
                    why = log.read_text()[-3000:]
                    raise SystemExit(f"the daemon did not start:\n{why}") from None
        time.sleep(3.0)  # past the stall of a newly opened PulseAudio stream
        sent = send_notes(sock, dest, n, seed)
        time.sleep(1.0)
        sock.sendto(_osc("/status"), dest)
        sock.settimeout(5)
        status = None
        while status is None:
            m = OscMessage(sock.recvfrom(4096)[0])
            status = m.params if m.address == "/status.reply" else None
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
    y, sr = sf.read(rec if sink == "sounddevice" else wav, dtype="float32")
    assert sr == rate
    text = log.read_text()
    late, stalls = text.count("late by"), text.count("the audio device stalled")
    where = "the null sink monitor" if parec else "the timeline"
    print(f"# {n} immediate note-ons, 0.3-0.5 s apart, on {spec.split(':')[0]} ({where}), "
          f"seed {seed}\n")  # fmt: skip
    print("| measure | figure |\n|---|---:|")
    err, found = spacing_errors(find_onsets(y, rate), np.asarray(sent), rate)
    print(f"| onsets found / sent | {found} / {n} |")
    print(f"| underruns (/status) | {status[3]} |")
    print(f"| late (log) / device stalls (log) | {late} / {stalls} |")
    a = np.abs(err) * 1000
    if not len(a):
        print(f"\nno two consecutive notes found: see {tmp}")
        return
    print(f"| gaps compared (both notes found) | {len(a)} of {n - 1} |")
    print(f"| onset spacing - sending spacing, mean / max abs | {a.mean():.2f} / "
          f"{a.max():.2f} ms |")  # fmt: skip
    print(f"| p50 / p99 abs | {np.percentile(a, 50):.2f} / {np.percentile(a, 99):.2f} ms |")
    print(f"| slips (> {ONSET_SLIP * 1000:.0f} ms) | {int((a > ONSET_SLIP * 1000).sum())} |")
    worst = np.argsort(-a)[:5]
    print("\nworst gaps (index: ms):", ", ".join(f"{i}: {1000 * err[i]:+.2f}" for i in worst))
    np.save(tmp / "err.npy", err)
    np.save(tmp / "sent.npy", np.asarray(sent))
    print(f"files: {tmp}")


def spacing_errors(found: np.ndarray, sent: np.ndarray, rate: int, tol: float = 0.03):
    """Each sent note's onset among ``found`` (samples): the common offset that matches the
    most of them within ``tol`` s, then the nearest onset to each; returns (for each pair of
    consecutive notes both found: onset gap - sending gap, in s) and how many were found.
    A note lost (a device stall drops the sound in it) takes out its two gaps only."""
    if not len(found):
        return np.zeros(0), 0
    t = found / rate
    offsets = [f - s for f in t[:8] for s in sent[:8]]
    best = max(offsets, key=lambda o: int((np.abs(t[:, None] - (sent + o)) < tol).sum()))
    idx = np.abs(t[:, None] - (sent + best)).argmin(axis=0)
    ok = np.abs(t[idx] - (sent + best)) < tol
    onset = np.where(ok, t[idx], np.nan)
    err = np.diff(onset) - np.diff(sent)
    return err[~np.isnan(err)], int(ok.sum())


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
        help="--onsets: a config override for the daemon, e.g. daemon.latency_ms=40",
    )
    args = ap.parse_args()
    if args.vocoder:
        VOCODER["daemon.vocoder"] = f"'{args.vocoder}'"
    if args.onsets:
        run_onsets(args.onsets, args.sink, args.seed, args.set)
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
    ref = Note(live.d.renderer, 64.0, 100.0, "la").render(2048)
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
    print(f"| scheduled latency (arrival + fixed, [daemon] latency_ms) | {lat:.0f} ms |")
    print(f"| underruns | {st['underruns']} |")
    y, _ = sf.read(wav, dtype="float32")
    onsets = [locate(y, ref, round((t - t0) * rate + lat / 1000 * rate), 1500) for t in sent]
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
            live.send("/mnote", 52.0 + 3 * i, 90.0, i + 1)
        time.sleep(0.5)
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
