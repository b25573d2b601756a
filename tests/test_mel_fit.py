"""The harmonic vocoder's mel fit (model/mel_fit.py): closer to the input mel, exact in
streaming over any chunks, a fixed delay, the batched voices as each alone."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import dsp
from model import mel_fit, registry
from trainer.vocoder import pitch_error


@pytest.fixture(scope="module")
def copied(tiny_corpus):
    """A corpus sentence's log-mel and f0, as ``melgand vocode`` analyses them."""
    y = sf.read(sorted((tiny_corpus / "wavs").glob("*.wav"))[0], dtype="float32")[0]
    return dsp.vocoder_inputs(y[: len(y) // 256 * 256])


def _mel_error(y: np.ndarray, mel: np.ndarray) -> float:
    return float(np.abs(dsp.log_mel(y)[:, : mel.shape[1]] - mel).mean())


def test_the_fit_moves_the_render_toward_its_mel_and_step_0_is_one_render(copied):
    mel, f0 = copied
    voc = registry.load("harmonic")
    voc.mel_fit = 0.0
    plain = voc(mel, f0=f0)
    assert voc.delay == voc.source.delay
    voc.mel_fit = 0.5
    fitted = voc(mel, f0=f0)
    assert fitted.shape == plain.shape and not np.array_equal(fitted, plain)
    assert _mel_error(fitted, mel) < _mel_error(plain, mel) - 0.03
    (c_fit, lost), (c_plain, _) = (pitch_error(f0, y, dsp.DEFAULT) for y in (fitted, plain))
    assert c_fit < c_plain + 1 and lost < 0.1  # the pitch is the f0's, fitted or not
    with pytest.raises(ValueError, match=r"mel_fit must be a step in 0\.\.1"):
        voc.mel_fit = 1.5


@pytest.mark.parametrize("chunk", [1, 2, 5, 13, 32])
def test_a_fitted_stream_equals_the_offline_fit_after_its_delay(copied, chunk):
    mel, f0 = copied
    voc = registry.load("harmonic")
    voc.mel_fit = 0.5
    hop = dsp.DEFAULT.hop_length
    held = mel_fit.held(dsp.DEFAULT, voc.source.delay)
    assert held == 5 and voc.delay == voc.source.delay + held * hop
    ref, delay = voc(mel, f0=f0), voc.delay
    outs, st, got = [], None, 0
    for i in range(0, mel.shape[1], chunk):
        y, st = voc.stream(mel[:, i : i + chunk], st, f0=f0[i : i + chunk])
        outs.append(y)
        got += y.size
        assert got == max(0, min(i + chunk, mel.shape[1]) * hop - delay)
        if i == chunk:
            voc.mel_fit = 0.0  # a stream keeps the path it started on
    outs.append(voc.flush(st))
    np.testing.assert_allclose(np.concatenate(outs), ref, atol=1e-7, rtol=0)  # float32 rounding


def test_fitted_voices_in_one_call_sound_as_each_alone(copied):
    mel, f0 = copied
    voc = registry.load("harmonic")
    voc.mel_fit = 0.5
    n = mel.shape[1] // 2 // 4 * 4
    pieces = [(mel[:, :n], f0[:n]), (mel[:, n : 2 * n], f0[n : 2 * n])]  # two halves
    alone = [voc(m, f0=f) for m, f in pieces]
    states, outs = [None, None], [[], []]
    for i in range(0, n, 4):
        done = voc.stream_many([m[:, i : i + 4] for m, _ in pieces], states,
                               f0s=[f[i : i + 4] for _, f in pieces])  # fmt: skip
        for k, (y, s) in enumerate(done):
            outs[k].append(y)
            states[k] = s
    for k in range(2):
        outs[k].append(voc.flush(states[k]))
        np.testing.assert_array_equal(np.concatenate(outs[k]), alone[k])


def test_differences_are_clipped_held_below_fmax_and_smoothed():
    conv = dsp.DEFAULT
    mel_in = np.zeros((conv.n_mels, 3))
    mel_out = np.zeros((conv.n_mels, 3))
    mel_out[:, 1] = -3.0  # frame 1 rendered 3 nat too quiet in every band: +1 nat, clipped
    d = mel_fit.differences(mel_in, mel_out, conv)
    freqs = np.arange(conv.n_fft // 2 + 1) * conv.sample_rate / conv.n_fft
    np.testing.assert_allclose(d[1, freqs <= conv.fmax], 1.0)
    assert (d[1, freqs > conv.fmax] == 0).all() and (d[[0, 2]] == 0).all()
    s = mel_fit.smoothed(d, d[0], d[-1])
    np.testing.assert_allclose(s[:, 10], [0.25, 0.5, 0.25])


def test_scheduled_sound_renders_once():
    """A renderer (the daemon's live voices, `melgand sing`) turns the fit off: its 58 ms
    would add to the latency of every voice."""
    from daemon.synth import Renderer
    from model import voice as _voice

    voc = registry.load("harmonic")
    voc.mel_fit = 0.5
    r = Renderer(_voice.packaged(dsp.DEFAULT), voc, 2)
    assert r.vocoder.mel_fit == 0.0 and r.vocoder.delay == voc.source.delay
    assert voc.mel_fit == 0.5 and voc.delay > voc.source.delay  # the caller's kept its own
    r.pool.shutdown()


@pytest.mark.parametrize("frames", [1, 2, 5, 6])
def test_inputs_shorter_than_the_held_frames_come_out_at_the_flush(copied, frames):
    mel, f0 = copied
    voc = registry.load("harmonic")
    voc.mel_fit = 0.5
    ref = voc(mel[:, :frames], f0=f0[:frames])
    y, st = voc.stream(mel[:, :frames], None, f0=f0[:frames])
    assert y.size == 0 and ref.size == frames * dsp.DEFAULT.hop_length
    np.testing.assert_array_equal(np.concatenate([y, voc.flush(st)]), ref)
    assert voc.flush(None).size == 0


def test_vocode_cli_fits_on_request_and_refuses_a_vocoder_without_it(tiny_corpus, tmp_path,
                                                                     capsys):  # fmt: skip
    from daemon import cli

    wav = str(sorted((tiny_corpus / "wavs").glob("*.wav"))[0])
    plain, fitted = tmp_path / "plain.wav", tmp_path / "fitted.wav"
    assert cli.main(["vocode", wav, "-o", str(plain)]) == 0
    assert cli.main(["vocode", wav, "-o", str(fitted), "--mel-fit", "0.5"]) == 0
    mel, _ = dsp.vocoder_inputs(sf.read(wav, dtype="float32")[0])
    a, b = (sf.read(p, dtype="float32")[0] for p in (plain, fitted))
    assert a.shape == b.shape and _mel_error(b, mel) < _mel_error(a, mel)
    assert cli.main(["vocode", wav, "-o", str(fitted), "--mel-fit", "2"]) == 2
    assert "step in 0..1" in capsys.readouterr().err
    assert cli.main(["vocode", wav, "-o", str(fitted), "--mel-fit", "0.5",
                     "--vocoder", "rtisi"]) == 2  # fmt: skip
    assert "has no mel fit" in capsys.readouterr().err
