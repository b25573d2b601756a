"""Where the mixed audio goes, and the audio clock that paces everything.

Every sink takes blocks from the scheduler's worker (``write``) and tells how many samples
have been played (``played``), which is the audio clock; ``position_at(t)`` maps a monotonic
time to a sample position on it. ``wav:PATH`` and ``null`` play at real-time pace on the
monotonic clock (the wav holds the whole timeline, silence included); ``sounddevice`` is a
PortAudio callback stream fed from a ring buffer, counting underflows.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
import soundfile as sf

log = logging.getLogger("melgand.sink")


class SinkError(RuntimeError):
    user_error = True


class _Clocked:
    """Real-time pace on the monotonic clock."""

    lead = 0.0  # s that ``played()`` runs ahead of ``position_at(now)`` at most

    def __init__(self, rate: int):
        self.rate = rate
        self.t0: float | None = None
        self.written = 0
        self.underruns = 0

    def start(self, at: int = 0) -> None:
        """Start the clock at sample ``at`` (a fallback sink takes over the schedule)."""
        self.t0 = time.monotonic() - at / self.rate
        self.written = at

    def failed(self) -> str | None:
        return None

    def played(self) -> int:
        return int((time.monotonic() - self.t0) * self.rate) if self.t0 is not None else 0

    def position_at(self, t: float) -> float:
        return (t - self.t0) * self.rate

    def write(self, block: np.ndarray) -> None:
        if self.written + len(block) < self.played():  # the worker fell behind the clock
            self.underruns += 1
        self.written += len(block)

    def close(self) -> None:
        pass


class NullSink(_Clocked):
    name = "null"


class WavSink(_Clocked):
    def __init__(self, rate: int, path: Path):
        super().__init__(rate)
        self.path = Path(path)
        self.name = f"wav:{self.path}"
        if not self.path.parent.exists():
            raise SinkError(f"{self.path}: the folder {self.path.parent} does not exist")
        self._file = sf.SoundFile(str(self.path), "w", rate, 1, "PCM_16")

    def write(self, block: np.ndarray) -> None:
        super().write(block)
        self._file.write(block)

    def close(self) -> None:
        self._file.close()


class OfflineSink:
    """No clock: the worker renders as fast as it can (``melgand sing -o``, tests)."""

    name = "offline"
    lead = 0.0

    def __init__(self, rate: int):
        self.rate, self.blocks, self.written, self.underruns, self.t0 = rate, [], 0, 0, 0.0

    def start(self, at: int = 0) -> None:
        pass

    def failed(self) -> str | None:
        return None

    def played(self) -> int:
        return self.written

    def position_at(self, t: float) -> float:
        return self.written

    def write(self, block: np.ndarray) -> None:
        self.blocks.append(np.array(block, np.float32))
        self.written += len(block)

    def audio(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)

    def close(self) -> None:
        pass


class PhaseLine:
    """A device stream's phase: ``now - samples taken / rate`` at each callback. A callback
    can run late but never before the buffer has room for its samples, so the least phases
    over the last WINDOW s are the stream's fixed phase (and follow a drifting device); not
    the very least, though: after a short stall PortAudio's ALSA plugin can take a burst of
    blocks at once, one of them ahead of the stream (seen on PulseAudio under load: 4.8 ms
    early, the device itself unmoved), and such bursts come more than once in a window (a CI
    run on a busy machine: three notes 4.65 ms late), so the value is the Q-quantile of the
    window's phases (the K-th least at the fewest; about the 20th of a full window's 400),
    which idle sits 0.1 ms above the least. When every callback for RECENT s came JUMP later
    than the value, the device moved (it ran dry unreported): the phase is taken anew from
    them, not held for WINDOW s."""

    WINDOW = 2.0  # s of callbacks whose least phases are the clock's
    RECENT, JUMP = 0.1, 0.003  # a phase this much later for this long is the device's new one
    K, Q = 4, 0.05  # the value: the Q-quantile of the window's phases, the K-th least at least

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self._window: deque[tuple[float, float]] = deque()  # (time, phase), oldest first
        self._sorted: list[float] = []  # the window's phases, ascending
        self._recent: deque[tuple[float, float]] = deque()  # rising: its head is the least

    @property
    def value(self) -> float | None:
        n = len(self._sorted)
        if not n:
            return None
        return self._sorted[min(max(self.K, int(self.Q * n)), n) - 1]

    def add(self, now: float, phase: float) -> bool:
        """One callback's phase; True when it moved the clock to a new (later) phase."""
        self._window.append((now, phase))
        bisect.insort(self._sorted, phase)
        while self._window[0][0] < now - self.WINDOW:
            del self._sorted[bisect.bisect_left(self._sorted, self._window.popleft()[1])]
        while self._recent and self._recent[-1][1] >= phase:
            self._recent.pop()
        self._recent.append((now, phase))
        while self._recent[0][0] < now - self.RECENT:
            self._recent.popleft()
        if self._recent[0][1] - self.value > self.JUMP and now - self._window[0][0] >= self.RECENT:
            recent = [(t, ph) for t, ph in self._window if t >= now - self.RECENT]
            self._window = deque(recent)
            self._sorted = sorted(ph for _, ph in recent)
            return True
        return False


class DeviceSink:
    """A PortAudio output stream whose callback reads a ring buffer.

    The clock is the count of samples the callbacks took, so it stops while the stream
    stalls. PulseAudio's stream stalls ~2 s when it opens, and again after every underrun
    (ALSA's pulse plugin restarts it). The first stall is waited out (what was scheduled
    plays when sound starts); a stall of a stream that has been running is an xrun, and the
    clock jumps over it, so that timed events keep wall time (what fell in it is dropped,
    like a DAW drops an xrun: counted in ``underruns`` and ``stalls``).

    ``position_at`` (where an event's sample goes) is a straight line, not ``played()``: a
    callback can run late but never before the buffer has room for its samples, so the
    least of ``now - samples before it / rate`` over the recent callbacks is the stream's
    fixed phase; a callback's time (late by the CPU, a whole callback's block in a burst)
    and PortAudio's DAC time (which steps with the callback) are not. Events placed on it
    keep their spacing to the sample; on ``played()`` they took its jitter and, placed in a
    block already rendered, slipped to the next one. The phase (``PhaseLine``) is taken anew
    when the device runs dry (PortAudio's underflow flag, or later callbacks: see there),
    not held for its window (which sounded notes late by what was lost)."""

    STALL = 0.1  # s without a callback that count as a stall
    SETTLE = 0.5  # s of callbacks after which the stream counts as running

    def __init__(self, rate: int, device: int | str | None = None, capacity: int = 1 << 16,
                 latency_ms: float = 20.0):  # fmt: skip
        import sounddevice as sd

        self.rate = rate
        self.ring = np.zeros(capacity, np.float32)
        self.read = self.wrote = 0  # total samples
        self.underruns = 0
        self.stalls = self.skipped = 0  # xruns of a running stream; the samples skipped over
        self._lock = threading.Lock()
        self._last = (time.monotonic(), 0, 0)  # (monotonic time, samples read, block) at a callback
        self._run_from: float | None = None  # the first callback since the opening stall(s)
        self.device_latency = 0.0  # seconds from a callback to the DAC, as PortAudio reports
        self._line = PhaseLine()  # the stream's phase, now - read / rate at the callbacks
        self._dead: str | None = None
        latency = latency_ms / 1000 if latency_ms > 0 else "low"
        try:
            self.stream = sd.OutputStream(rate, channels=1, dtype="float32", device=device,
                                          callback=self._callback, latency=latency)  # fmt: skip
        except (sd.PortAudioError, ValueError) as e:
            raise SinkError(f"cannot open audio output {device!r}: {e}") from None
        info = sd.query_devices(self.stream.device)
        self.name = f"sounddevice:{info['name']}"
        self.delay = float(self.stream.latency)  # s from a sample taken to the DAC (fixed)
        # played() runs ahead of position_at(now) by the buffer and up to a callback's block
        # (PortAudio's ALSA periods are a quarter of the buffer: half of it is room to spare)
        self.lead = 1.5 * self.delay

    def _running(self, t: float) -> bool:
        """Whether the stream had run SETTLE seconds without a stall by ``t`` (after that,
        every stall is an xrun)."""
        return self._run_from is not None and t - self._run_from >= self.SETTLE

    def _callback(self, out, frames, t, status) -> None:
        now = time.monotonic()
        with self._lock:
            t_last, _, block = self._last
            if self._running(t_last):
                if now - t_last > self.STALL:  # an xrun: jump the clock over it
                    skip = max(0, int((now - t_last) * self.rate) - block)
                    self.read += skip
                    self.skipped += skip
                    self.stalls += 1
                    self.underruns += 1
                    self._line.clear()  # the stream restarted: a new phase
            elif self._run_from is None or now - t_last > self.STALL:
                self._run_from = now  # the stream (re)starts: wait it out
                self._line.clear()
            if status.output_underflow:  # the device ran dry: it plays on later than before
                self._line.clear()
            self._line.add(now, now - self.read / self.rate)
            n = max(0, min(frames, self.wrote - self.read))
            a, b, head = self._spans(self.read, n)
            out[:head, 0] = self.ring[a]
            out[head:n, 0] = self.ring[b]
            out[n:, 0] = 0
            if n < frames and self.wrote > 0:
                self.underruns += 1
            self.read += frames  # samples written late are skipped: the timeline holds
            self._last = (now, self.read, frames)
            self.device_latency = max(0.0, t.outputBufferDacTime - t.currentTime)

    def start(self, at: int = 0) -> None:
        self.stream.start()
        self._started = time.monotonic()

    def failed(self) -> str | None:
        """Why the device is gone: the stream stopped, or no callback for 5 s (an underrun
        stalls PulseAudio's stream ~2 s, its opening a while longer)."""
        if not getattr(self, "_started", 0) or self._dead:
            return self._dead
        t_last = self._last[0]
        since = time.monotonic() - max(t_last, self._started)
        if not self.stream.active:
            self._dead = "the output stream stopped"
        elif since > 5.0 + self.device_latency:
            self._dead = f"no audio callback for {since:.1f} s"
        return self._dead

    def played(self) -> int:
        """Samples the device has taken, extrapolated by at most one callback's block, or,
        while a running stream stalls, by the stall (the jump the next callback makes)."""
        with self._lock:
            t, n, block = self._last
            running = self._running(t)
        late = int((time.monotonic() - t) * self.rate)
        if running and late > self.STALL * self.rate:
            return n + late - block
        return n + min(late, block)

    def position_at(self, t: float) -> float:
        """The sample that the DAC plays at monotonic time ``t``: on the stream's phase, a
        straight line at the sample rate; while a stream that has not run yet stalls (its
        opening), on ``played()``, which waits with it."""
        now = time.monotonic()
        with self._lock:
            t_last = self._last[0]
            phase = self._line.value
            line = phase is not None and (self._running(t_last) or now - t_last <= self.STALL)
        if line:
            return (t - phase - self.delay) * self.rate
        return self.played() + (t - now - self.device_latency) * self.rate

    def write(self, block: np.ndarray) -> None:
        with self._lock:
            a, b, head = self._spans(self.wrote, len(block))
            self.ring[a] = block[:head]
            self.ring[b] = block[head:]
            self.wrote += len(block)

    def _spans(self, start: int, n: int) -> tuple[slice, slice, int]:
        """The ring's slots for ``n`` samples from ``start``: up to its end, then from 0
        (slices, no index arrays: this runs in the audio callback)."""
        cap = len(self.ring)
        first = start % cap
        head = min(n, cap - first)
        return slice(first, first + head), slice(0, n - head), head

    def close(self) -> None:
        """Stop the stream; a dead device may never answer, so give it two seconds."""
        t = threading.Thread(target=lambda: (self.stream.stop(), self.stream.close()),
                             daemon=True)  # fmt: skip
        t.start()
        t.join(2.0)


def open_sink(spec: str, rate: int, latency_ms: float = 20.0):
    """``auto``, ``null``, ``wav:PATH`` or ``sounddevice[:DEVICE]``; returns (sink, why).
    ``latency_ms``: the device buffer asked of PortAudio (0: its "low")."""
    if spec == "null":
        return NullSink(rate), "asked for"
    if spec.startswith("wav:"):
        return WavSink(rate, Path(spec[4:])), "asked for"
    if spec == "sounddevice" or spec.startswith("sounddevice:"):
        dev = spec.partition(":")[2] or None
        if dev is not None and dev.isdigit():
            dev = int(dev)
        return DeviceSink(rate, dev, latency_ms=latency_ms), "asked for"
    if spec == "auto":
        from daemon import devices

        outputs, problem = devices.outputs()
        default = next((d for d in outputs if d.is_default), None)
        if default is not None:
            try:
                sink = DeviceSink(rate, default.index, latency_ms=latency_ms)
                return sink, f"the default output ({default.hostapi})"
            except SinkError as e:
                problem = str(e)
        why = problem or "no audio output device"
        return WavSink(rate, Path("melgand-out.wav")), f"{why}; writing the timeline instead"
    raise SinkError(f"unknown sink {spec!r}: use auto, null, wav:PATH or sounddevice[:DEVICE]")
