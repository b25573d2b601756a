"""Hostile input and faults: parsers refuse cleanly, the daemon keeps serving."""

from __future__ import annotations

import random
import socket
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

import dsp
from daemon import protocol as P
from daemon.scheduler import Job, Scheduler
from daemon.sink import OfflineSink
from daemon.synth import Note, Renderer
from model import voice as _voice

ADDRESSES = [
    "/say",
    "/mnote",
    "/mnote/rel",
    "/fnote",
    "/fnote/rel",
    "/lyric",
    "/lyrics",
    "/ne/pitch",
    "/ne/volume",
    "/allnotesoff",
    "/allsoundoff",
    "/param/volume",
    "/param/speed",
    "/voice",
    "/status",
    "/sync",
    "/notify",
    "/version",
    "/vkb_midi/1/note/60",
    "/vkb_midi/1/note/999",
    "/unknown",
    "/param/../../etc",
]
ARGS = st.lists(
    st.one_of(
        st.integers(-(2**31), 2**31 - 1),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=50),
        st.booleans(),
        st.binary(max_size=20),
        st.none(),
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash_the_osc_parser(data):
    try:
        for pk in P.parse_datagram(data):
            try:
                P.command(pk.address, pk.args)
            except P.ProtocolError:
                pass
    except P.ProtocolError:
        pass


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(ADDRESSES), ARGS)
def test_any_arguments_give_a_command_or_a_reason(address, args):
    try:
        cmd = P.command(address, args)
    except P.ProtocolError as e:
        assert str(e)  # a reason, to send back
        return
    for v in vars(cmd).values():  # what passes is finite and typed
        if isinstance(v, float):
            assert np.isfinite(v)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["say", "sing", "control"]))
def test_random_payloads_never_crash_the_mqtt_parsers(payload, kind):
    parse = {"say": P.mqtt_say, "sing": P.mqtt_sing, "control": P.mqtt_control}[kind]
    try:
        parse(payload)
    except P.ProtocolError as e:
        assert str(e)


def test_huge_text_is_refused_naming_the_limit():
    with pytest.raises(P.ProtocolError, match=r"limit \(\[daemon\] max_text\) is 2000"):
        P.command("/say", ["x" * 5000])


@pytest.fixture(scope="module")
def renderer():
    return Renderer(_voice.packaged(dsp.DEFAULT), dsp.DspVocoder(dsp.DEFAULT, "rtisi"), 2)


def test_a_failing_voice_ends_alone(renderer, monkeypatch):
    """A model error in one voice: that voice ends with a failure, the other sings on."""
    events = []
    sched = Scheduler(
        renderer,
        OfflineSink(renderer.rate),
        on_event=lambda kind, job, **kw: events.append((kind, job, kw)),
    )
    good = Job(P.NoteOn(60, 100, 1), sound=Note(renderer, 60, 100, "la"))
    bad = Job(P.NoteOn(64, 100, 2), sound=Note(renderer, 64, 100, "la"))

    def broken():
        raise RuntimeError("injected fault")

    monkeypatch.setattr(bad.sound, "_frames", broken)
    for j in (good, bad):
        sched._apply(j, 0)
    for _ in range(40):
        sched._render_block()
    fails = [(j.cmd.id, kw["reason"]) for kind, j, kw in events if kind == "fail"]
    assert fails == [(2, "the voice failed (RuntimeError: injected fault)")]
    assert len(sched.voices) == 1 and sched.voices[0].job is good
    assert np.abs(sched.sink.audio()[-4096:]).max() > 0.01  # still singing


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_3000_hostile_datagrams_leave_it_serving(tmp_path):
    from tests.test_daemon import free_port, spawn, wait_ready

    port = free_port()
    p = spawn(
        [
            "--sink",
            "null",
            "--osc",
            f"127.0.0.1:{port}",
            "--mqtt",
            "off",
            "--set",
            "daemon.greeting=''",
            "--set",
            "osc.max_rate=100000",
        ],
        tmp_path / "log",
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest = ("127.0.0.1", port)
    try:
        wait_ready(sock, dest, p, tmp_path / "log")
        time.sleep(1.0)
        rss0 = rss_kb(p.pid)
        rng = random.Random(7)
        replies: list[str] = []
        done = threading.Event()

        def read():
            sock.settimeout(0.2)
            while not done.is_set():
                try:
                    replies.append(OscMessage(sock.recvfrom(65536)[0]).address)
                except TimeoutError:
                    pass

        reader = threading.Thread(target=read)
        reader.start()
        refused = 0  # well-formed messages our own parser refuses: each must get a /fail
        for i in range(3000):
            kind = i % 3
            if kind == 0:  # raw junk
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
            elif kind == 1:  # truncated or mangled OSC
                m = OscMessageBuilder("/say")
                m.add_arg("hello")
                data = m.build().dgram[: rng.randrange(1, 16)]
            else:  # well-formed, bad arguments
                address = rng.choice(
                    ["/mnote", "/say", "/param/volume", "/nope", "/voice", "/ne/pitch"]
                )
                b = OscMessageBuilder(address)
                args = [
                    rng.choice(
                        [
                            float("nan"),
                            float("inf"),
                            -5.0,
                            1e9,
                            "x" * 3000,
                            "../../etc/passwd",
                            2**31 - 1,
                        ]
                    )
                    for _ in range(rng.randrange(0, 3))
                ]
                for a in args:
                    b.add_arg(a)
                data = b.build().dgram
                try:
                    P.command(address, args)
                except P.ProtocolError:
                    refused += 1
            sock.sendto(data, dest)
            time.sleep(0.0005)
        time.sleep(2.0)
        done.set()
        reader.join()
        fails = replies.count("/fail")
        sock.sendto(OscMessageBuilder("/status").build().dgram, dest)
        sock.settimeout(5)
        assert OscMessage(sock.recvfrom(4096)[0]).address == "/status.reply"
        rss1 = rss_kb(p.pid)
        assert fails >= refused + 1000  # every bad message answered (and the 1,000 junk ones)
        assert rss1 < 1.2 * rss0, (rss0, rss1)
        print(f"RSS {rss0} -> {rss1} kB; {fails} /fail replies")
    finally:
        p.terminate()
        p.wait(15)
        sock.close()


def test_a_damaged_checkpoint_is_refused_never_half_loaded(tmp_path):
    import torch

    from model import checkpoint

    path = tmp_path / "c.safetensors"
    checkpoint.save(path, {"w": torch.arange(1000, dtype=torch.float32)}, {"kind": "x"})
    assert checkpoint.load(path)[0]["w"][999] == 999
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x40  # one bit, inside the weights
    (tmp_path / "flip.safetensors").write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match="do not match their checksum"):
        checkpoint.load(tmp_path / "flip.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(path.read_bytes()[:-500])
    with pytest.raises(checkpoint.CheckpointError, match="not a readable safetensors"):
        checkpoint.load(tmp_path / "cut.safetensors")


def test_a_trainer_killed_mid_run_resumes_from_its_last_checkpoint(corpus_copy, tmp_path):
    """SIGKILL (no chance to save): the atomic checkpoints on disk are whole, and --resume
    goes on from the last one."""
    import json
    import subprocess
    import sys

    from model import checkpoint

    run = tmp_path / "run"
    base = [
        sys.executable,
        "-m",
        "daemon.cli",
        "train",
        "acoustic",
        "--data",
        str(corpus_copy),
        "--run",
        str(run),
    ]
    sets = [
        "acoustic.batch_size=2",
        "acoustic.hidden=32",
        "acoustic.save_every=3",
        "acoustic.held_out=0.2",
    ]

    def flags(steps: int) -> list[str]:
        return [a for s in [f"acoustic.steps={steps}", *sets] for a in ("--set", s)]

    p = subprocess.Popen([*base, *flags(400)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:  # wait for a second checkpoint, then kill without warning
        ck = run / "acoustic.safetensors"
        if ck.exists() and checkpoint.load(ck)[1]["provenance"]["step"] >= 6:
            break
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.2)
    p.kill()
    p.wait()
    step = checkpoint.load(run / "acoustic.safetensors")[1]["provenance"]["step"]
    assert step % 3 == 0 and step >= 6
    r = subprocess.run(
        [*base, *flags(step + 3), "--resume"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == step + 3  # the run went on from the whole checkpoint
