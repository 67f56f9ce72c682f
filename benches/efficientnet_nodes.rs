//! Per-node-class time split of the plaintext engine on EfficientNet-Lite0 (issue 15, engine
//! speed), the counterpart of onnxruntime's profiler split printed by
//! `benches/compare/efficientnet_op_profile.py`: one thread (images one after the other),
//! the first 16 ImageNet records of `../shared`, `REPS` timed passes after one warm-up pass,
//! exact and α = 14. Each node's wall time comes from `Engine::run_timed_batch` (the images
//! of a pass one after another with one buffer pool and the final Gemm once for all 16, as
//! one thread of `Engine::run_batch` runs them); the classes are the
//! stem 3×3 s2 conv, depthwise K×K sN, 1×1 expand (C_out > C_in) and project convs (their
//! bias, ReLU6 and folded batch norm run in the convolution's output pass, so their time is
//! in the conv's), unfused Clip, Add, GlobalAveragePool, Gemm and the rest. GFLOP/s counts
//! 2 flops per multiply-add. Prints Markdown; **measured**, as noisy as the machine is
//! loaded.
//!
//! usage: `cargo bench --bench efficientnet_nodes [-- REPS] [--exact-only] [--per-node]`
//! (default 5 passes; `--exact-only` skips α = 14, `--per-node` adds one row per convolution
//! with its shape; `--bench` and other flags that cargo passes are ignored).
#![allow(missing_docs)]

use std::collections::BTreeMap;

use polycert::nn::{ActivationPolicy, Engine, Op, RunStats};

mod common;

const N: usize = 16;

/// The class of node `i` and its multiply-adds per image.
fn class(e: &Engine<f32>, i: usize) -> (String, u64) {
    let net = e.network();
    let Some(node) = net.nodes.get(i) else {
        return ("?".into(), 0);
    };
    let out = net.shape(node.output).numel() as u64;
    match &node.op {
        Op::Conv(c) => {
            let &[co, ci, kh, kw] = c.weight.dims.as_slice() else {
                return ("Conv (not 4-D)".into(), 0);
            };
            let macs = out * (ci * kh * kw) as u64;
            let s = c.strides[0];
            let name = if c.groups > 1 {
                format!("depthwise {kh}x{kw} s{s}")
            } else if kh == 1 && kw == 1 {
                if co > ci { "1x1 expand" } else { "1x1 project" }.to_string()
            } else {
                format!("conv {kh}x{kw} s{s} (stem)")
            };
            (name, macs)
        }
        Op::Gemm(l) | Op::MatMul(l) => ("Gemm".into(), l.weight.data.len() as u64),
        op => (op.op_type().to_string(), 0),
    }
}

fn main() {
    let reps: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let flag = |f: &str| std::env::args().any(|a| a == f);
    let (exact_only, per_node) = (flag("--exact-only"), flag("--per-node"));
    let Some((engine, xs, approx)) = common::efficientnet(N) else {
        return;
    };
    let policies = [("exact", ActivationPolicy::Exact), ("alpha14", approx)];
    for (name, policy) in policies.into_iter().take(if exact_only { 1 } else { 2 }) {
        let mut times = Vec::new();
        let mut st = RunStats::default();
        if engine
            .run_timed_batch(&xs, &policy, &mut st, &mut times)
            .is_err()
        {
            eprintln!("run failed");
            return;
        }
        times.iter_mut().for_each(|t| *t = 0);
        let wall = std::time::Instant::now();
        for _ in 0..reps {
            if engine
                .run_timed_batch(&xs, &policy, &mut st, &mut times)
                .is_err()
            {
                eprintln!("run failed");
                return;
            }
        }
        let wall = wall.elapsed().as_secs_f64();
        let imgs = (reps * N) as f64;
        let mut by: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (i, &t) in times.iter().enumerate() {
            let (c, macs) = class(&engine, i);
            let e = by.entry(c).or_default();
            e.0 += t;
            e.1 += macs;
        }
        let total: u64 = by.values().map(|v| v.0).sum();
        let mut rows: Vec<_> = by.into_iter().collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1 .0));
        println!(
            "polycert {name}, 1 thread, {N} images x {reps} passes: {:.1} img/s wall, \
             node time {:.3} ms/img",
            imgs / wall,
            total as f64 / imgs / 1e6
        );
        println!();
        println!("| node class | ms / image | share | GFLOP/s |");
        println!("|---|---|---|---|");
        for (c, (t, macs)) in rows {
            let ms = t as f64 / imgs / 1e6;
            let g = if macs > 0 {
                format!("{:.1}", 2.0 * macs as f64 / (ms * 1e6))
            } else {
                String::new()
            };
            println!(
                "| {c} | {ms:.3} | {:.1} % | {g} |",
                100.0 * t as f64 / total as f64
            );
        }
        println!();
        if per_node {
            print_per_node(&engine, &times, imgs);
        }
    }
}

/// One row per convolution: its class, C_in → C_out, kernel, output pixels, time and
/// GFLOP/s (where a class's time goes).
fn print_per_node(engine: &Engine<f32>, times: &[u64], imgs: f64) {
    let net = engine.network();
    println!("| node | class | C_in -> C_out | kernel | output pixels | ms / image | GFLOP/s |");
    println!("|---|---|---|---|---|---|---|");
    for (i, (node, &t)) in net.nodes.iter().zip(times).enumerate() {
        let Op::Conv(c) = &node.op else { continue };
        let &[co, ci, kh, kw] = c.weight.dims.as_slice() else {
            continue;
        };
        let (class, macs) = class(engine, i);
        let s = net.shape(node.output);
        let px = s.numel() / co.max(1);
        let ms = t as f64 / imgs / 1e6;
        println!(
            "| {} | {class} | {} -> {co} | {kh}x{kw} | {px} | {ms:.3} | {:.1} |",
            node.name,
            ci * c.groups,
            2.0 * macs as f64 / (ms * 1e6)
        );
    }
    println!();
}
