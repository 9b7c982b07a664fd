"""Silero VAD (the PyPI package's ONNX model, run with onnxruntime; no torch) over an 8 kHz mono WAV.

Prints one JSON object: per-window speech probabilities (256 samples = 32 ms at 8 kHz, as the model
takes them) and the mean inference time per window. Usage: silero_vad_bench.py FILE.wav
"""
import importlib.metadata
import importlib.util
import json
import os
import sys
import time
import wave

import numpy as np
import onnxruntime as ort

WINDOW = 256   # samples per call at 8 kHz
CONTEXT = 32   # samples of the previous window the model expects in front


def model_path():
    # Not imported: the package's __init__ needs torch. Only its data file is used.
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("silero-vad is not installed in this interpreter")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", "silero_vad.onnx")


def main():
    with wave.open(sys.argv[1], "rb") as w:
        if w.getframerate() != 8000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            sys.exit("need 8 kHz mono 16-bit")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_path(), sess_options=opts, providers=["CPUExecutionProvider"])
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, CONTEXT), dtype=np.float32)
    sr = np.array(8000, dtype=np.int64)
    probs = []
    spent = 0.0
    for start in range(0, len(pcm) - WINDOW + 1, WINDOW):
        chunk = pcm[start:start + WINDOW].reshape(1, WINDOW)
        x = np.concatenate([context, chunk], axis=1)
        t = time.perf_counter()
        out, state = sess.run(None, {"input": x, "state": state, "sr": sr})
        spent += time.perf_counter() - t
        context = x[:, -CONTEXT:]
        probs.append(float(out.reshape(-1)[0]))
    print(json.dumps({
        "window_samples": WINDOW,
        "us_per_window": spent / max(len(probs), 1) * 1e6,
        "probs": probs,
        "version": importlib.metadata.version("silero-vad"),
        "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main()
