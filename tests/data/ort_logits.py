#!/usr/bin/env python3
"""Reference logits from onnxruntime (CPU) for polycert's engine comparison test.

usage: ort_logits.py MODEL.onnx DATA N
DATA is a CIFAR-10 binary file, an MNIST IDX images file, `imagenet224:FILE` (records of a
little-endian u16 label + 3x224x224 CHW pixels, raw 0..255 values fed as float32), or
`raw:SHAPE` followed by whitespace-separated float32 inputs on stdin (already preprocessed),
e.g. raw:2,3,8,8.
Prints one JSON list of N logit lists on stdout. Preprocessing follows the model's metadata
(input_scale, input_mean, input_std), as documented in shared/models/README.md.
"""
import json
import sys
from fractions import Fraction

import numpy as np
import onnx
import onnxruntime as ort


def meta(model):
    m = {p.key: p.value for p in model.metadata_props}
    scale = float(Fraction(m.get("input_scale", "1")))
    mean = [float(v) for v in m.get("input_mean", "0").split(",")]
    std = [float(v) for v in m.get("input_std", "1").split(",")]
    return scale, mean, std


def load(data, n):
    if data.startswith("raw:"):
        shape = [int(v) for v in data[4:].split(",")]
        vals = np.array(sys.stdin.read().split(), dtype=np.float32)
        return vals.reshape(shape), True
    if data.startswith("imagenet224:"):
        rec = 2 + 3 * 224 * 224
        b = np.fromfile(data[len("imagenet224:"):], dtype=np.uint8, count=n * rec)
        return b.reshape(n, rec)[:, 2:].reshape(n, 3, 224, 224).astype(np.float32), False
    b = open(data, "rb").read()
    if b[:4] == b"\x00\x00\x08\x03":
        rows, cols = int.from_bytes(b[8:12], "big"), int.from_bytes(b[12:16], "big")
        x = np.frombuffer(b[16:16 + n * rows * cols], dtype=np.uint8).reshape(n, 1, rows, cols)
    else:
        rec = np.frombuffer(b[: n * 3073], dtype=np.uint8).reshape(n, 3073)
        x = rec[:, 1:].reshape(n, 3, 32, 32)
    return x.astype(np.float32), False


def main():
    model_path, data, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model = onnx.load(model_path)
    x, pre = load(data, n)
    if not pre:
        scale, mean, std = meta(model)
        c = x.shape[1]
        mean = np.array(mean * (c if len(mean) == 1 else 1), dtype=np.float64).reshape(1, c, 1, 1)
        std = np.array(std * (c if len(std) == 1 else 1), dtype=np.float64).reshape(1, c, 1, 1)
        x = ((x.astype(np.float64) * scale - mean) / std).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    # In batches of 50 (bounded memory for 224x224 inputs).
    y = np.concatenate([sess.run(None, {name: x[i:i + 50]})[0] for i in range(0, len(x), 50)])
    json.dump(y.reshape(y.shape[0], -1).astype(float).tolist(), sys.stdout)


if __name__ == "__main__":
    main()
