"""A bounded soak: the daemon (its own process, null sink) under steady mixed load.

    .venv/bin/python bench/bench_soak.py [--seconds 90] [--rate 300]

``rate`` messages a second for ``seconds``: /status queries, notes on and off (four voices
sounding most of the time), a /say every 5 s and a hostile datagram every 50 messages.
Reports /status round trips (p50 / p99, early and late), underruns, and the daemon's RSS at
start and end. ``tests/test_soak.py`` (slow) asserts on the same run, shorter.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder


def msg(address: str, *args) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def soak(seconds: float, rate: int) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(tempfile.mkdtemp()) / "serve.log"
    with log.open("w") as f:
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daemon.cli",
                "serve",
                "--sink",
                "null",
                "--osc",
                f"127.0.0.1:{port}",
                "--mqtt",
                "off",
                "--set",
                "daemon.greeting=''",
            ],
            stderr=f,
        )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest = ("127.0.0.1", port)
    sent: dict[int, float] = {}
    rtts: list[tuple[float, float]] = []
    status: list = []
    stop = threading.Event()

    def read():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                m = OscMessage(sock.recvfrom(65536)[0])
            except (TimeoutError, OSError):
                continue
            if m.address == "/status.reply":
                status.append(m.params)
                if sent:
                    k = min(sent)
                    rtts.append((sent.pop(k), time.monotonic() - k))

    try:
        deadline = time.monotonic() + 60
        while True:
            sock.sendto(msg("/version"), dest)
            sock.settimeout(0.5)
            try:
                sock.recvfrom(4096)
                break
            except TimeoutError:
                if time.monotonic() > deadline or p.poll() is not None:
                    raise RuntimeError(log.read_text()[-2000:]) from None
        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(1.0)
        rss0 = rss_kb(p.pid)
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < seconds:
            now = time.monotonic()
            if i % 10 == 0:
                sent[now] = now - t0
                sock.sendto(msg("/status"), dest)
            elif i % 50 == 1:
                sock.sendto(b"\x00junk" + bytes([i % 256]), dest)
            elif i % 5 == 0:
                voice = (i // 5) % 4
                sock.sendto(msg("/mnote/rel", 0.0, voice + 1), dest)
                sock.sendto(msg("/mnote", 55.0 + 2 * voice + (i // 20) % 5, 90.0, voice + 1), dest)
            if i % (5 * rate) == 0:
                sock.sendto(msg("/say", "Still here and singing.", 1000 + i), dest)
            i += 1
            time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        time.sleep(1.0)
        rss1 = rss_kb(p.pid)
        stop.set()
        reader.join()
    finally:
        p.terminate()
        p.wait(15)
        sock.close()
    early = [r for t, r in rtts if t < seconds / 2]
    late = [r for t, r in rtts if t >= seconds / 2]
    return {
        "messages": i,
        "seconds": seconds,
        "rss_start_kb": rss0,
        "rss_end_kb": rss1,
        "underruns": int(status[-1][3]) if status else -1,
        "rtt_early_ms": (1000 * np.percentile(early, 50), 1000 * np.percentile(early, 99)),
        "rtt_late_ms": (1000 * np.percentile(late, 50), 1000 * np.percentile(late, 99)),
        "replies": len(rtts),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--rate", type=int, default=300)
    args = ap.parse_args()
    r = soak(args.seconds, args.rate)
    print(
        f"# soak: {r['messages']} messages in {r['seconds']:.0f} s ({args.rate}/s), "
        f"4 voices, a /say every 5 s\n"
    )
    print("| measure | figure |")
    print("|---|---:|")
    print(
        f"| /status round trip p50 / p99, first half | {r['rtt_early_ms'][0]:.2f} / "
        f"{r['rtt_early_ms'][1]:.2f} ms |"
    )
    print(
        f"| /status round trip p50 / p99, second half | {r['rtt_late_ms'][0]:.2f} / "
        f"{r['rtt_late_ms'][1]:.2f} ms |"
    )
    print(f"| underruns | {r['underruns']} |")
    print(
        f"| daemon RSS start / end | {r['rss_start_kb'] / 1024:.0f} / "
        f"{r['rss_end_kb'] / 1024:.0f} MB |"
    )


if __name__ == "__main__":
    main()
