"""The daemon live: control-to-sound latency, timing jitter, voices at once, message rate.

    .venv/bin/python bench/bench_daemon.py [--notes 40] [--max-voices 16]

All with the packaged voice and the configured vocoder, on this machine's CPU, in one run:
1. latency: immediate /mnote messages 250 ms apart; the daemon's own measure, message
   received -> first sample handed to the sink, p50 / p99 (and the fixed scheduling latency).
2. jitter: the same notes found in the wav timeline (cross-correlation with the note rendered
   alone): how far each onset's spacing strays from the spacing the messages arrived with.
3. voices: N notes started together, then held 3 s with the null sink: underruns at the
   onsets and while held, render load while held, N = 1, 2, ...
4. message rate: /status round trips at rising rates, p99 at the client.
Run it on an idle machine.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=40)
    ap.add_argument("--max-voices", type=int, default=16)
    ap.add_argument("--vocoder", default=None, help="[daemon] vocoder for this run")
    args = ap.parse_args()
    if args.vocoder:
        VOCODER["daemon.vocoder"] = f"'{args.vocoder}'"
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
