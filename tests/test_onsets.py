"""Immediate note-ons keep their spacing: each is placed at its arrival plus a fixed latency
that lands past what is rendered, on a clock that does not take the callbacks' jitter."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from bench.bench_daemon import ONSET_SLIP, analyse, answers, send_notes
from daemon.jobs import Job
from daemon.protocol import NoteOff
from daemon.scheduler import Scheduler
from daemon.sink import NullSink

RATE = 22050
ROOT = Path(__file__).parents[1]


class _Lead(NullSink):
    lead = 0.03  # like the device sink: played() 30 ms ahead of position_at(now)


def test_the_fixed_latency_lands_past_what_is_rendered():
    """An immediate event arriving when the worker is as far ahead as it goes is not late:
    the fixed latency is raised above buffer_ms + a block + the sink's lead (and said)."""
    sink = _Lead(RATE)
    s = Scheduler(SimpleNamespace(rate=RATE), sink, latency_ms=10.0, buffer_ms=25.0)
    try:
        assert s.latency >= s.ahead + s.block + int(sink.lead * RATE) + int(s.MARGIN * RATE)
        sink.start()
        now = time.monotonic()
        s.pos = sink.played() + int(sink.lead * RATE) + s.ahead + s.block  # the most rendered
        s.submit(Job(NoteOff(64.0, 1), None, "test", now - 0.004))  # 4 ms on its way
        s._drain()
        assert s.late == 0 and s.events[0][0] >= s.pos
    finally:
        s.prep.shutdown()


@pytest.mark.audio
def test_immediate_note_ons_on_pulseaudio_keep_their_spacing(pulse_null_sink, tmp_path):
    """40 note-ons 0.3-0.5 s apart to `melgand serve --sink sounddevice` on the null sink,
    recorded from its monitor: every onset gap equals the sending gap within 3 ms (a block
    is 11.6 ms: an event moved to the next block fails this)."""
    env = {**pulse_null_sink, "PYTHONPATH": str(ROOT)}
    rec = tmp_path / "monitor.wav"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rec_cmd = ["parecord", "--device=melgand_test.monitor", "--channels=1", f"--rate={RATE}",
               "--file-format=wav", str(rec)]  # fmt: skip
    parec = subprocess.Popen(rec_cmd, env=env)
    log = tmp_path / "stderr"
    cmd = [sys.executable, "-m", "daemon.cli", "serve", "--sink", "sounddevice", "--osc",
           f"127.0.0.1:{port}", "--mqtt", "off", "--set", "daemon.greeting=''"]  # fmt: skip
    with log.open("w") as f:
        p = subprocess.Popen(cmd, stderr=f, env=env, cwd=ROOT)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest = ("127.0.0.1", port)
    try:
        assert answers(sock, dest, p, 60.0), log.read_text()
        time.sleep(3.0)  # past the stall of a newly opened PulseAudio stream
        sent, took = send_notes(sock, dest, 41, seed=1)  # a lead-in note, then 40
        time.sleep(1.0)
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(30)
        parec.send_signal(signal.SIGINT)
        parec.wait(10)
        sock.close()
    assert rc == 0, log.read_text()
    y, sr = sf.read(rec, dtype="float32")
    assert sr == RATE
    r = analyse(y, RATE, sent, took)
    text = log.read_text()
    # a device stall (an underrun on a busy CPU) drops ~2 s of sound, and a busy CPU may
    # hold the sender up between its clock and sendto: those notes are not compared, but
    # enough must be (the old clock slipped a block on more than half of them)
    assert r["good"].sum() >= 12, (r["found"].sum(), r["cut"].sum(), r["unsure"].sum(),
                                   text[-2000:])  # fmt: skip
    err = r["err"][r["good"]]
    assert np.abs(err).max() <= ONSET_SLIP, np.round(err * 1000, 2)
    assert "late by" not in text
