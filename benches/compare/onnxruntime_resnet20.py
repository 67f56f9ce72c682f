#!/usr/bin/env python3
"""onnxruntime side of the ResNet-20 throughput comparison (benches/nn.rs is polycert's side).

usage: onnxruntime_resnet20.py [--threads T] [--batch 100] [--reps 20]
                               [--model M --data D --layout cifar10|imagenet224]
Runs ResNet-20 (shared/models) on the first `batch` images of the CIFAR-10 JPEG test file on
the CPU with T intra-op threads and prints images/s (best and median of `reps` runs) as JSON.
With `--layout imagenet224` it reads D as 2-byte-label 224x224 records and feeds the raw
pixels (EfficientNet-Lite0 normalises inside its graph; efficientnet_side_by_side.sh).

onnxruntime runs the exact graph; compare it with polycert's `exact` figure.
"""
import argparse
import json
import os
import statistics
import time
from fractions import Fraction

import numpy as np
import onnx
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "..", "shared")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--model", default=os.path.join(SHARED, "models", "resnet20_cifar10.onnx"))
    ap.add_argument("--data", default=os.path.join(SHARED, "data", "cifar10", "test_batch_jpeg.bin"))
    ap.add_argument("--layout", choices=["cifar10", "imagenet224"], default="cifar10")
    a = ap.parse_args()
    m = onnx.load(a.model)
    meta = {p.key: p.value for p in m.metadata_props}
    if a.layout == "imagenet224":
        rec = 2 + 3 * 224 * 224
        raw = np.fromfile(a.data, dtype=np.uint8, count=a.batch * rec).reshape(a.batch, rec)
        x = raw[:, 2:].reshape(a.batch, 3, 224, 224).astype(np.float32)
    else:
        scale = float(Fraction(meta.get("input_scale", "1")))
        mean = np.array([float(v) for v in meta["input_mean"].split(",")]).reshape(1, 3, 1, 1)
        std = np.array([float(v) for v in meta["input_std"].split(",")]).reshape(1, 3, 1, 1)
        raw = np.fromfile(a.data, dtype=np.uint8, count=a.batch * 3073).reshape(a.batch, 3073)
        x = ((raw[:, 1:].reshape(a.batch, 3, 32, 32) * scale - mean) / std).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for _ in range(3):
        sess.run(None, {name: x})
    times = []
    for _ in range(a.reps):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - t)
    print(json.dumps({
        "engine": f"onnxruntime {ort.__version__}",
        "threads": a.threads,
        "batch": a.batch,
        "seconds_best": min(times),
        "seconds_median": statistics.median(times),
        "images_per_s_best": a.batch / min(times),
        "images_per_s_median": a.batch / statistics.median(times),
    }))


if __name__ == "__main__":
    main()
