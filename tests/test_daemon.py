"""`melgand serve` with real parts: UDP OSC clients, a wav timeline checked to the sample,
a mosquitto broker, a PulseAudio null sink recorded through its monitor."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from daemon import config, score
from daemon.runs import LivePhrase
from daemon.serve import Daemon
from daemon.synth import Note, Speech

RATE = 22050


def _value(v):
    """Override values as --set would read them (TOML), paths as strings."""
    if isinstance(v, Path):
        return str(v)
    return config.parse_override(f"x.y={v}")[2]


class Running:
    """A daemon on its own thread and loop, and a UDP client talking to it."""

    def __init__(self, tmp: Path, sink: str = "wav", mqtt: str = "off", **overrides):
        sets = {"daemon.greeting": "''", "osc.port": "0", **overrides}
        self.cfg = config.load(
            None,
            [
                (*k.split("."), str(v) if isinstance(v, Path) else v)
                for k, v in ((k, _value(v)) for k, v in sets.items())
            ],
        )
        self.wav = tmp / "timeline.wav"
        spec = f"wav:{self.wav}" if sink == "wav" else sink
        ready = threading.Event()
        self.d = Daemon(self.cfg, sink=spec, mqtt=mqtt, version="test", ready=lambda d: ready.set())
        self.rc = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        assert ready.wait(60), "the daemon did not start"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(20)

    def _run(self):
        self.rc = asyncio.run(self.d.run())

    def send(self, address, *args, at: float | None = None):
        b = OscMessageBuilder(address)
        for a in args:
            b.add_arg(a)
        msg = b.build()
        if at is not None:
            bb = OscBundleBuilder(at)
            bb.add_content(msg)
            msg = bb.build()
        self.sock.sendto(msg.dgram, self.d.osc_addr)

    def recv(self, address: str | None = None, timeout: float = 30):
        """The next reply (with ``address``, skipping others)."""
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data, _ = self.sock.recvfrom(65536)
            m = OscMessage(data)
            if address is None or m.address == address:
                return m.address, m.params

    def stop(self):
        self.d.stop()
        self.thread.join(30)
        assert not self.thread.is_alive() and self.rc == 0
        self.sock.close()


@pytest.fixture
def served(tmp_path):
    running = []

    def start(**kw):
        r = Running(tmp_path, **kw)
        running.append(r)
        return r

    yield start
    for r in running:
        if r.thread.is_alive():
            r.stop()


def locate(timeline: np.ndarray, ref: np.ndarray, near: int, span: int) -> int:
    """Where ``ref`` starts in ``timeline``, searched within ``near +- span`` samples."""
    ref = ref[:4096]
    best, where = -1.0, -1
    for s in range(max(0, near - span), min(len(timeline) - len(ref), near + span)):
        seg = timeline[s : s + len(ref)]
        c = float(np.dot(seg, ref)) / (np.linalg.norm(seg) * np.linalg.norm(ref) + 1e-9)
        if c > best:
            best, where = c, s
    assert best > 0.9, f"the sound was not found (best match {best:.2f})"
    return where


def test_osc_queries_jobs_and_failures(served):
    r = served()
    r.send("/version")
    assert r.recv() == ("/version.reply", ["test"])
    r.send("/status")
    addr, args = r.recv()
    assert addr == "/status.reply" and len(args) == 8 and args[0] == 1 and args[6] == RATE
    r.send("/notify", 1)
    assert r.recv() == ("/done", ["/notify"])
    r.send("/say", "One, two.", 7)
    assert r.recv("/n_go") == ("/n_go", [7])
    assert r.recv("/done") == ("/done", ["/say", 7])
    r.send("/bogus", 1)
    assert r.recv("/fail") == ("/fail", ["/bogus", "unknown address /bogus"])
    r.sock.sendto(b"not osc at all", r.d.osc_addr)
    assert r.recv("/fail")[1][0] == "?"
    r.send("/voice", "/etc/passwd")  # messages name voices, never files
    assert r.recv("/fail")[1][1] == "unknown voice '/etc/passwd'; known: ['default', 'joe']"
    r.send("/voice", "default")
    assert r.recv("/done") == ("/done", ["/voice"])
    r.send("/sync", 42)
    assert r.recv("/synced") == ("/synced", [42])
    r.stop()


def test_a_timetagged_bundle_sounds_at_its_time_to_the_sample(served):
    r = served()
    sink = r.d.scheduler.sink
    text = "Right on time."
    at = time.time() + 0.6
    r.send("/say", text, 1, at=at)
    r.recv("/done")
    expected = round((at - time.time() + time.monotonic() - sink.t0) * RATE)
    r.stop()
    y, sr = sf.read(r.wav, dtype="float32")
    ref = Speech(r.d.renderer, text).render(RATE)
    found = locate(y, ref, expected, RATE // 10)
    assert abs(found - expected) <= sr // 1000, (found, expected)  # within 1 ms
    assert np.abs(y[: found - 10]).max() == 0  # silence before it, in the timeline


def test_a_timetagged_note_sings_its_vowel_on_its_time(served):
    """A bundle /lyric "star" + /mnote: the note starts its consonants ("st") before the
    timetag, by the note's lead, so that its vowel lands on the timetag (to the sample)."""
    r = served()
    sink, sched = r.d.scheduler.sink, r.d.scheduler
    at = time.time() + 0.6
    bb = OscBundleBuilder(at)
    for address, args in (("/lyric", ("star", 1)), ("/mnote", (57.0, 100.0, 1))):
        b = OscMessageBuilder(address)
        for a in args:
            b.add_arg(a)
        bb.add_content(b.build())
    r.sock.sendto(bb.build().dgram, r.d.osc_addr)
    r.send("/mnote/rel", 57.0, 1, at=at + 0.5)
    expected = round((at - time.time() + time.monotonic() - sink.t0) * RATE)
    time.sleep(1.5)
    r.send("/sync", 1)
    r.recv("/synced")
    r.stop()
    y, _ = sf.read(r.wav, dtype="float32")
    star = {
        "id": 1,
        "pitch": 57.0,
        "velocity": 100.0,
        "start": 0.0,
        "dur": 0.5,
        "phones": score.phones([{"lyric": "star"}])[0],
        "melisma": False,
    }
    note = LivePhrase(r.d.renderer, [star], sched.params)  # a timed note: a live phrase
    lead = note.lead
    assert lead > RATE // 20  # "st": some 50 ms or more
    found = locate(y, note.render(RATE // 2), expected - lead, RATE // 10)
    assert abs(found + lead - expected) <= RATE // 1000, (found, lead, expected)  # 1 ms
    assert np.abs(y[: found - 10]).max() == 0


def test_immediate_notes_keep_their_spacing_and_late_bundles_are_reported(served):
    r = served()
    r.send("/notify", 1)
    r.recv("/done")
    sent = []
    for i in range(4):
        sent.append(time.monotonic())
        r.send("/mnote", 67.0, 100.0, i + 1)
        # released after the reference's 2048 samples and the vocoder's look-ahead have sounded
        time.sleep(0.16)
        r.send("/mnote/rel", 67.0, i + 1)
        time.sleep(0.25 - (time.monotonic() - sent[-1]))
    for _ in range(4):
        r.recv("/n_end")
    r.send("/say", "late", 9, at=time.time() - 1.0)
    _, (late,) = r.recv("/late")
    assert late > 0.9
    r.recv("/done")
    r.send("/status")
    status = r.recv("/status.reply")[1]
    sink = r.d.scheduler.sink
    r.stop()
    y, _ = sf.read(r.wav, dtype="float32")
    # each note after the first is sung after a "la": co-articulated with it, as live
    first = Note(r.d.renderer, 67.0, 100.0, "la").render(2048)
    later = Note(r.d.renderer, 67.0, 100.0, "la", context=(("l", "aa"), ())).render(2048)
    latency = r.d.scheduler.latency / RATE  # the configured latency, or what the sink needs
    onsets = [locate(y, first if i == 0 else later, round((t - sink.t0 + latency) * RATE), 1500)
              for i, t in enumerate(sent)]  # fmt: skip
    gaps = np.diff(onsets) / RATE - np.diff(sent)
    assert np.abs(gaps).max() <= 0.003, gaps  # the arrival spacing, within 3 ms
    assert status[3] == 0 or status[3] < 5  # underruns, if any, are counted


def test_polyphony_is_capped_and_the_limiter_keeps_the_peak(served):
    r = served()
    r.send("/param/volume", 4.0)
    for i in range(6):
        r.send("/mnote", 55.0 + 2 * i, 127.0, i + 1)
    time.sleep(0.8)
    r.send("/status")
    active = r.recv("/status.reply")[1][1]
    r.send("/allnotesoff")
    r.send("/sync", 1)
    r.recv("/synced")
    r.stop()
    y, _ = sf.read(r.wav, dtype="float32")
    assert active <= 8
    assert np.abs(y).max() <= 0.99 and np.abs(y).max() > 0.5  # loud, and never clipped


def test_voice_stealing_beyond_max_voices(served):
    r = served(**{"daemon.max_voices": "2"})
    for i in range(4):
        r.send("/mnote", 60.0 + i, 100.0, i + 1)
    time.sleep(0.6)
    r.send("/status")
    assert r.recv("/status.reply")[1][1] == 2
    r.send("/allsoundoff")
    r.send("/sync", 3)
    r.recv("/synced")
    r.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """`melgand serve ARGS` in its own process, its log in ``log``."""
    with log.open("w") as f:
        cmd = [sys.executable, "-m", "daemon.cli", "serve", *args]
        return subprocess.Popen(cmd, stderr=f, env=env)


def wait_ready(sock: socket.socket, dest, p: subprocess.Popen, log: Path) -> None:
    """Until the daemon in ``p`` answers /version on ``dest`` (a minute at most)."""
    deadline = time.monotonic() + 60
    while True:
        sock.sendto(osc("/version"), dest)
        sock.settimeout(0.5)
        try:
            if OscMessage(sock.recvfrom(4096)[0]).address == "/version.reply":
                return
        except TimeoutError:
            assert time.monotonic() < deadline and p.poll() is None, log.read_text()


def test_sigterm_stops_cleanly_with_a_complete_wav(tmp_path):
    wav = tmp_path / "out.wav"
    port = free_port()
    log = tmp_path / "stderr"
    args = ["--sink", f"wav:{wav}", "--osc", f"127.0.0.1:{port}", "--mqtt", "off"]
    p = spawn([*args, "--set", "daemon.greeting='Hello.'"], log)
    deadline = time.monotonic() + 60
    while not wav.exists() or wav.stat().st_size < 100_000:
        assert time.monotonic() < deadline and p.poll() is None, log.read_text()
        time.sleep(0.2)
    t = time.monotonic()
    p.send_signal(signal.SIGTERM)
    assert p.wait(10) == 0
    assert time.monotonic() - t < 5
    y, sr = sf.read(wav)  # a valid file, header complete
    assert sr == RATE and np.abs(y).max() > 0.05  # the greeting is in it
    err = log.read_text()
    assert "sink: wav:" in err and "stopped" in err


@pytest.fixture
def broker(tmp_path):
    exe = "/usr/sbin/mosquitto"
    if not os.path.exists(exe):
        pytest.fail("mosquitto is missing: run `bash setup.sh test`, which installs it")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")

    def start():
        proc = subprocess.Popen(
            [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return proc
            time.sleep(0.05)
        proc.kill()
        pytest.fail("mosquitto did not start")

    procs = [start()]
    yield port, procs, start
    for p in procs:
        p.kill()
        p.wait()


class Listener:
    """A paho client collecting what the daemon publishes."""

    def __init__(self, port: int, topic: str = "melgand/#"):
        import paho.mqtt.client as mqtt

        self.msgs: list[tuple[str, bytes, bool]] = []
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.c.on_message = lambda c, u, m: self.msgs.append((m.topic, m.payload, m.retain))
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(topic, qos=1)
        self.c.loop_start()

    def wait(self, pred, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in list(self.msgs):
                if pred(m):
                    return m
            time.sleep(0.05)
        raise AssertionError(f"not published; got {self.msgs[-10:]}")

    def events(self):
        return [json.loads(p) for t, p, _ in list(self.msgs) if t.endswith("/event")]

    def publish(self, topic, payload):
        self.c.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_mqtt_jobs_events_status_and_reconnect(served, broker):
    port, procs, start = broker
    r = served(
        mqtt=f"mqtt://127.0.0.1:{port}",
        **{"mqtt.node": "t1", "mqtt.stats_interval": "0.3", "mqtt.pool": "true"},
    )
    listen = Listener(port)
    try:
        listen.wait(lambda m: m[0] == "melgand/t1/status" and m[1] == b"online")
        listen.publish("melgand/t1/say", json.dumps({"text": "Lights on.", "id": 5}))
        listen.wait(lambda m: m[0].endswith("/event") and b'"done"' in m[1] and b'"id": 5' in m[1])
        kinds = [e["type"] for e in listen.events() if e.get("id") == 5 and e["type"] != "late"]
        assert kinds[:1] == ["audio-start"] and "audio-stop" in kinds
        listen.publish("melgand/t1/say", b"{broken")
        err = listen.wait(lambda m: m[0].endswith("/event") and b'"error"' in m[1])
        assert "not valid JSON" in json.loads(err[1])["reason"]
        listen.wait(lambda m: m[0] == "melgand/t1/stats")
        stats = json.loads([p for t, p, _ in listen.msgs if t.endswith("/stats")][-1])
        assert {"active_voices", "queued_jobs", "underruns", "avg_load"} <= set(stats)
        listen.publish("melgand/pool/say", json.dumps({"text": "Pooled.", "id": 6}))
        listen.wait(lambda m: b'"done"' in m[1] and b'"id": 6' in m[1])
        # the broker goes away and comes back: the daemon reconnects and serves again
        procs[0].kill()
        procs[0].wait()
        listen.close()
        procs.append(start())
        listen = Listener(port)
        listen.wait(lambda m: m[0] == "melgand/t1/status" and m[1] == b"online", 30)
        listen.publish("melgand/t1/control", json.dumps({"param": "volume", "value": 0.5}))
        listen.publish("melgand/t1/say", "Back again.")
        listen.wait(lambda m: b'"done"' in m[1])
        r.stop()
        listen.wait(lambda m: m[0] == "melgand/t1/status" and m[1] == b"offline")
    finally:
        listen.close()


def osc(address: str, *args, at: float | None = None) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    if at is None:
        return b.build().dgram
    bb = OscBundleBuilder(at)
    bb.add_content(b.build())
    return bb.build().dgram


_XRUN = """
import json, sys, time
from daemon.sink import DeviceSink
s = DeviceSink(22050, latency_ms=float(sys.argv[1]))
s.start()
time.sleep(4.0)  # past the stall of the opening stream
t0, p0 = time.monotonic(), s.played()
with s._lock:  # the callback waits for it: one late callback, as on a busy CPU
    time.sleep(0.1)
time.sleep(3.0)
t1, p1 = time.monotonic(), s.played()
s.close()
print(json.dumps({"wall": t1 - t0, "clock": (p1 - p0) / 22050, "stalls": s.stalls}))
"""


def test_device_clock_keeps_wall_time_through_an_underrun(pulse_null_sink):
    """One late callback on PortAudio's "low" latency underruns, and PulseAudio stalls the
    stream ~2 s: the audio clock jumps over the stall instead of falling 2 s behind (which
    would sound every later timed event 2 s late)."""
    root = Path(__file__).parents[1]
    r = subprocess.run([sys.executable, "-c", _XRUN, "0"], env=pulse_null_sink, cwd=root,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["stalls"] >= 1, m  # the underrun happened and was seen
    assert abs(m["clock"] - m["wall"]) < 0.1, m


def test_sounddevice_sink_plays_on_pulseaudio(pulse_null_sink, tmp_path):
    """The PortAudio path into a real (null) PulseAudio sink, recorded from its monitor: the
    sound arrives, and an immediate /say and a bundle timed 1.5 s later sound 1.5 s apart
    (less the fixed latency), so the device clock keeps time."""
    env = {**pulse_null_sink}
    rec = tmp_path / "monitor.wav"
    port = free_port()
    parec = subprocess.Popen(
        [
            "parecord",
            "--device=melgand_test.monitor",
            "--channels=1",
            f"--rate={RATE}",
            "--file-format=wav",
            str(rec),
        ],
        env=env,
    )
    log = tmp_path / "stderr"
    args = ["--sink", "sounddevice", "--osc", f"127.0.0.1:{port}", "--mqtt", "off"]
    p = spawn([*args, "--set", "daemon.greeting=''"], log, env)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest = ("127.0.0.1", port)
    try:
        wait_ready(sock, dest, p, log)
        sock.settimeout(60)
        time.sleep(2.0)  # past the stall of a newly opened PulseAudio stream
        t1 = time.monotonic()
        sock.sendto(osc("/say", "Testing.", 1), dest)
        sock.sendto(osc("/say", "Testing.", 2, at=time.time() + 1.5), dest)
        t2 = t1 + 1.5
        done = 0
        while done < 2:
            done += OscMessage(sock.recvfrom(4096)[0]).address == "/done"
        time.sleep(0.5)
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(15)
        parec.send_signal(signal.SIGINT)
        parec.wait(10)
        sock.close()
    assert rc == 0
    assert "sink: sounddevice:" in log.read_text()
    y, sr = sf.read(rec, dtype="float32")
    assert sr == RATE and len(y) > 2 * RATE
    assert "audio output failed" not in log.read_text()
    loud = np.flatnonzero(np.abs(y) > 0.02)
    assert len(loud), "nothing reached the sound server"
    starts = loud[np.concatenate(([True], np.diff(loud) > RATE // 2))]  # after 0.5 s of quiet
    assert len(starts) == 2, starts / RATE  # the two phrases
    gap = (starts[-1] - starts[-2]) / RATE
    assert abs(gap - (t2 - (t1 + 0.04))) < 0.05, gap


def test_the_will_says_offline_when_the_daemon_dies(broker, tmp_path):
    """Killed without a goodbye, the daemon's Will (retained) tells subscribers it is gone."""
    port, _, _ = broker
    log = tmp_path / "stderr"
    args = [
        "--sink",
        "null",
        "--osc",
        "127.0.0.1:0",
        "--mqtt",
        f"mqtt://127.0.0.1:{port}",
        "--set",
        "mqtt.node=w",
        "--set",
        "mqtt.keepalive=5",
        "--set",
        "daemon.greeting=''",
    ]
    p = spawn(args, log)
    listen = Listener(port)
    try:
        listen.wait(lambda m: m[0] == "melgand/w/status" and m[1] == b"online", 60)
        p.kill()
        p.wait()
        listen.wait(lambda m: m[0] == "melgand/w/status" and m[1] == b"offline", 20)
    finally:
        listen.close()
        if p.poll() is None:
            p.kill()


def test_mqtt_with_a_password_over_tls(tmp_path):
    """A broker that wants a login and speaks only TLS: `mqtts://` with [mqtt] ca_file,
    username and password gets in; a wrong password is refused and retried, not fatal."""
    exe = "/usr/sbin/mosquitto"
    if not os.path.exists(exe):
        pytest.fail("mosquitto is missing: run `bash setup.sh test`, which installs it")
    d = tmp_path
    subj = ["-subj", "/CN=melgand test CA"]
    ossl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
    subprocess.run(
        [*ossl, "-keyout", d / "ca.key", "-out", d / "ca.pem", *subj],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            d / "server.key",
            "-out",
            d / "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    subprocess.run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            d / "server.csr",
            "-CA",
            d / "ca.pem",
            "-CAkey",
            d / "ca.key",
            "-CAcreateserial",
            "-out",
            d / "server.pem",
            "-days",
            "2",
            "-extfile",
            d / "ext.cnf",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", d / "passwd", "melgand", "s3cret"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    (d / "m.conf").write_text(
        f"user {getpass.getuser()}\n"  # stay who we are: the files are private to the test
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {d / 'passwd'}\n"
        f"cafile {d / 'ca.pem'}\ncertfile {d / 'server.pem'}\nkeyfile {d / 'server.key'}\n"
    )
    broker = subprocess.Popen(
        [exe, "-c", str(d / "m.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("the TLS broker did not start")
        common = {"mqtt.node": "tls", "mqtt.username": "melgand", "mqtt.ca_file": d / "ca.pem"}
        bad = Running(
            tmp_path, mqtt=f"mqtts://127.0.0.1:{port}", **{**common, "mqtt.password": "wrong"}
        )
        time.sleep(1.5)
        assert bad.d.mqtt.connects == 0 and bad.thread.is_alive()  # refused, still serving
        bad.stop()
        r = Running(
            tmp_path, mqtt=f"mqtts://127.0.0.1:{port}", **{**common, "mqtt.password": "s3cret"}
        )
        deadline = time.monotonic() + 20
        while r.d.mqtt.connects == 0:
            assert time.monotonic() < deadline, "no TLS connection with the password"
            time.sleep(0.05)
        r.stop()
    finally:
        broker.kill()
        broker.wait()


def test_legato_glides_one_voice_to_the_next_note(served):
    r = served()
    r.send("/param/legato", 1.0)
    r.send("/param/portamento", 0.05)
    r.send("/mnote", 60.0, 100.0, 1)
    r.send("/mnote", 67.0, 100.0, 2)
    time.sleep(0.4)
    r.send("/status")
    assert r.recv("/status.reply")[1][1] == 1  # one voice sings both
    r.send("/mnote/rel", 60.0, 1)  # the superseded note: nothing happens
    time.sleep(0.2)
    r.send("/status")
    assert r.recv("/status.reply")[1][1] == 1
    r.send("/mnote/rel", 67.0, 2)
    done = {tuple(r.recv("/done")[1]) for _ in range(2)}
    assert done == {("/mnote", 1), ("/mnote", 2)}
    r.stop()


def test_jobs_sent_while_the_daemon_is_away_are_not_lost(served, broker):
    port, _, _ = broker
    url = f"mqtt://127.0.0.1:{port}"
    first = served(mqtt=url, **{"mqtt.node": "p"})
    deadline = time.monotonic() + 20
    while first.d.mqtt.connects == 0:  # the session (and its subscriptions) now exists
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.stop()
    listen = Listener(port)
    try:
        listen.publish("melgand/p/say", json.dumps({"text": "While you were out.", "id": 11}))
        served(mqtt=url, **{"mqtt.node": "p"})
        listen.wait(lambda m: m[0].endswith("/event") and b'"done"' in m[1] and b'"id": 11' in m[1])
    finally:
        listen.close()


def test_a_vanishing_sound_server_falls_back_and_keeps_serving(tmp_path):
    """PulseAudio killed under the running daemon: it says so, carries on into the fallback
    wav on the same schedule, and still finishes jobs."""
    from tests.conftest import start_pulse

    run = tmp_path / "pulse"
    run.mkdir()
    pulse, env, plog = start_pulse(run)
    fallback = tmp_path / "fallback.wav"
    port = free_port()
    log = tmp_path / "stderr"
    p = spawn(
        [
            "--sink",
            "sounddevice",
            "--osc",
            f"127.0.0.1:{port}",
            "--mqtt",
            "off",
            "--set",
            "daemon.greeting=''",
            "--set",
            f"daemon.fallback_sink='wav:{fallback}'",
        ],
        log,
        env,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest = ("127.0.0.1", port)
    try:
        wait_ready(sock, dest, p, log)
        pulse.kill()
        pulse.wait()
        deadline = time.monotonic() + 20
        while "audio output failed" not in log.read_text():
            assert time.monotonic() < deadline and p.poll() is None, log.read_text()
            time.sleep(0.1)
        sock.settimeout(30)
        sock.sendto(osc("/say", "Still here.", 5), dest)
        while OscMessage(sock.recvfrom(4096)[0]).address != "/done":
            pass
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(15)
        sock.close()
        plog.close()
    assert rc == 0
    y, sr = sf.read(fallback, dtype="float32")
    assert sr == RATE and np.abs(y).max() > 0.05  # the phrase went into the fallback


def test_touching_timed_notes_over_osc_are_sung_by_one_voice(served):
    """A melody sent ahead as timetagged bundles, as a DAW sends it (each note-off at its
    note's end, the next note on it, a melisma "_"): one voice sings it as a phrase; every
    note gets its /done."""
    r = served()
    t0, notes = time.time() + 0.8, [(60.0, "sun-"), (62.0, "shine"), (64.0, "_")]
    for i, (pitch, lyric) in enumerate(notes):
        at = t0 + 0.3 * i
        bb = OscBundleBuilder(at)
        for address, args in (("/lyric", (lyric, i + 1)), ("/mnote", (pitch, 100.0, i + 1))):
            b = OscMessageBuilder(address)
            for a in args:
                b.add_arg(a)
            bb.add_content(b.build())
        r.sock.sendto(bb.build().dgram, r.d.osc_addr)
        r.send("/mnote/rel", pitch, i + 1, at=at + 0.3)
    time.sleep(t0 + 0.45 - time.time())
    r.send("/status")
    assert r.recv("/status.reply")[1][1] == 1  # one voice, the phrase
    (run,) = r.d.scheduler.runs
    assert [n["id"] for n in run.notes] == [1, 2, 3] and run.notes[2]["melisma"]
    assert [round(n["dur"], 2) for n in run.notes] == [0.3, 0.3, 0.3]
    done = {tuple(r.recv("/done")[1]) for _ in range(3)}
    assert done == {("/mnote", 1), ("/mnote", 2), ("/mnote", 3)}
    r.stop()
