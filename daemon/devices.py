"""Audio output discovery through PortAudio (sounddevice)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Output:
    index: int
    name: str
    hostapi: str
    channels: int
    rate: float
    is_default: bool


def outputs() -> tuple[list[Output], str | None]:
    """The output devices, and a message when PortAudio itself is unusable."""
    try:
        import sounddevice as sd
    except OSError as e:  # libportaudio2 missing
        return [], f"PortAudio is not available ({e}); install it: apt-get install libportaudio2"
    try:
        devs = sd.query_devices()
        apis = sd.query_hostapis()
        default_out = sd.default.device[1]
    except sd.PortAudioError as e:
        return [], f"PortAudio cannot list devices: {e}"
    out = []
    for d in devs:
        if d["max_output_channels"] > 0:
            out.append(
                Output(
                    d["index"],
                    d["name"],
                    apis[d["hostapi"]]["name"],
                    d["max_output_channels"],
                    d["default_samplerate"],
                    d["index"] == default_out,
                )
            )
    return out, None
