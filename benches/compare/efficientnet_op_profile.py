#!/usr/bin/env python3
"""onnxruntime's per-operator time split on EfficientNet-Lite0 (issue 15, engine speed).

usage: efficientnet_op_profile.py [--threads 1] [--batch 16] [--reps 10] [--model M --data D]

Runs the model with `SessionOptions.enable_profiling` on the first `batch` ImageNet records
(raw pixels, as `onnxruntime_resnet20.py --layout imagenet224`) and sums the profiler's
per-node kernel times over the timed runs by node class: the stem 3x3 s2 conv, depthwise
KxK sN, 1x1 expand (C_out > C_in) and project convs, Clip, Add, GlobalAveragePool, Gemm and
the rest. onnxruntime fuses Clip into the conv before it (FusedConv) unless `--no-fuse`, so
that Clip's time is inside the conv's. Prints one Markdown table: ms per image, share, and
GFLOP/s (2 flops per multiply-add) per class. Compare with polycert's
`cargo bench --bench efficientnet` (exact) and its per-class split (benches/compare/README
part of RESULTS.md). Needs ../shared and `pip install onnxruntime onnx numpy`.
"""
import argparse
import collections
import json
import os
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper, shape_inference

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "..", "shared")


def classes(model):
    """Node name -> (class, multiply-adds per image)."""
    m = shape_inference.infer_shapes(model)
    shapes = {}
    for v in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        shapes[v.name] = [d.dim_value for d in v.type.tensor_type.shape.dim]
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    out = {}
    for n in m.graph.node:
        if n.op_type == "Conv":
            w = inits[n.input[1]]
            a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
            so = shapes[n.output[0]]
            macs = int(np.prod(so[1:])) * int(np.prod(w.shape[1:]))
            s = a.get("strides", [1, 1])[0]
            if a.get("group", 1) > 1:
                cls = f"depthwise {w.shape[2]}x{w.shape[3]} s{s}"
            elif w.shape[2] == 1:
                cls = "1x1 expand" if w.shape[0] > w.shape[1] else "1x1 project"
            else:
                cls = f"conv {w.shape[2]}x{w.shape[3]} s{s} (stem)"
            out[n.name] = (cls, macs)
        elif n.op_type == "Gemm":
            w = inits[n.input[1]]
            out[n.name] = ("Gemm", int(np.prod(w.shape)))
        else:
            out[n.name] = (n.op_type, 0)
    return out


def lookup(cls, node, op):
    """The class of a profiled node: onnxruntime names its NCHWc convs after their output value
    (`blocks.3.dw.act.out_nchwc` for the conv `blocks.3.dw` with its Clip fused in), so the
    conv is the longest original conv name that the profiled name starts with (`x.conv` for a
    prefix `x`)."""
    if node in cls:
        return cls[node]
    base = node.removesuffix("_nchwc")
    best = None
    for name, v in cls.items():
        for stem in (name, name.removesuffix(".conv")):
            if base.startswith(stem + ".") and (best is None or len(stem) > best[0]):
                best = (len(stem), v)
    return best[1] if best and op == "Conv" else (op, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--no-fuse", action="store_true", help="basic graph optimisations only")
    ap.add_argument("--model", default=os.path.join(SHARED, "models", "efficientnet_lite0_imagenet.onnx"))
    ap.add_argument("--data", default=os.path.join(SHARED, "data", "imagenet", "imagenet_val500_224.bin"))
    a = ap.parse_args()
    model = onnx.load(a.model)
    cls = classes(model)
    rec = 2 + 3 * 224 * 224
    raw = np.fromfile(a.data, dtype=np.uint8, count=a.batch * rec).reshape(a.batch, rec)
    x = raw[:, 2:].reshape(a.batch, 3, 224, 224).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    if a.no_fuse:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(os.environ.get("TMPDIR", "/tmp"), "ort_effnet_profile")
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for _ in range(3):
        sess.run(None, {name: x})
    t0 = time.perf_counter_ns() // 1000
    wall = time.perf_counter()
    for _ in range(a.reps):
        sess.run(None, {name: x})
    wall = time.perf_counter() - wall
    path = sess.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)
    # Keep the last `reps` runs: drop the warm-up runs' node events (the first 3 "model_run"s).
    runs = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    start = runs[3] if len(runs) > 3 else 0
    tot = collections.defaultdict(float)
    macs = collections.defaultdict(int)
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e["ts"] < start:
            continue
        c, mac = lookup(cls, e["name"][: -len("_kernel_time")], e.get("args", {}).get("op_name", "?"))
        tot[c] += e["dur"]
        macs[c] += mac * a.batch
    imgs = a.batch * a.reps
    all_us = sum(tot.values())
    print(f"onnxruntime {ort.__version__}, {a.threads} thread(s), batch {a.batch} x {a.reps} runs: "
          f"{imgs / wall:.1f} img/s wall, node time {all_us / imgs / 1000:.3f} ms/img")
    print()
    print("| node class | ms / image | share | GFLOP/s |")
    print("|---|---|---|---|")
    for c, us in sorted(tot.items(), key=lambda kv: -kv[1]):
        g = f"{2 * macs[c] / (us * 1e3):.1f}" if macs[c] else ""
        print(f"| {c} | {us / imgs / 1000:.3f} | {100 * us / all_us:.1f} % | {g} |")
    del t0


if __name__ == "__main__":
    main()
