//! Tests of the trajectory certificate against independent evaluations: exact rational
//! arithmetic (rug `Rational`) on small networks, 1024-bit MPFR on ResNet-20, the f64 engine
//! (measured), and the certificate itself at a higher precision.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rug::{Float, Integer, Rational};

use super::fixed::FixedSign;
use super::fixed::Frac;
use super::polyerr::PolyErrors;
use super::trajectory::{BallT, Mode, TrajectoryBound, TrajectoryCertifier, TrajectoryNetwork};
use crate::nn::{
    ActivationPolicy, BatchNorm, Conv, Engine, Linear, Network, Node, NodeId, Op, Pad, Pool,
    Preprocess, RunStats, Shape, SignKernel, Slice, Tensor, ValueInfo,
};

pub(super) fn proofs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proofs")
}

pub(super) fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    p.is_dir().then_some(p)
}

/// The number type of the independent oracle (exact rationals or 1024-bit MPFR).
trait Num: Clone {
    fn of_rat(q: &Rational) -> Self;
    fn add(&self, o: &Self) -> Self;
    fn sub(&self, o: &Self) -> Self;
    fn mul(&self, o: &Self) -> Self;
    fn div(&self, o: &Self) -> Self;
    fn sqrt(&self) -> Self;
    fn gt(&self, o: &Self) -> bool;
    fn to_rat(&self) -> Rational;
    fn of_f64(x: f64) -> Self {
        Self::of_rat(&Rational::from_f64(x).unwrap())
    }
}

impl Num for Rational {
    fn of_rat(q: &Rational) -> Self {
        q.clone()
    }
    fn add(&self, o: &Self) -> Self {
        Rational::from(self + o)
    }
    fn sub(&self, o: &Self) -> Self {
        Rational::from(self - o)
    }
    fn mul(&self, o: &Self) -> Self {
        Rational::from(self * o)
    }
    fn div(&self, o: &Self) -> Self {
        Rational::from(self / o)
    }
    fn sqrt(&self) -> Self {
        // Only perfect squares are used by the rational tests.
        let (n, d) = self.clone().into_numer_denom();
        let (sn, sd) = (n.clone().sqrt(), d.clone().sqrt());
        assert_eq!(Integer::from(&sn * &sn), n, "not a perfect square");
        assert_eq!(Integer::from(&sd * &sd), d, "not a perfect square");
        Rational::from((sn, sd))
    }
    fn gt(&self, o: &Self) -> bool {
        self > o
    }
    fn to_rat(&self) -> Rational {
        self.clone()
    }
}

const HP: u32 = 1024;

impl Num for Float {
    fn of_rat(q: &Rational) -> Self {
        Float::with_val(HP, q)
    }
    fn add(&self, o: &Self) -> Self {
        Float::with_val(HP, self + o)
    }
    fn sub(&self, o: &Self) -> Self {
        Float::with_val(HP, self - o)
    }
    fn mul(&self, o: &Self) -> Self {
        Float::with_val(HP, self * o)
    }
    fn div(&self, o: &Self) -> Self {
        Float::with_val(HP, self / o)
    }
    fn sqrt(&self) -> Self {
        Float::with_val(HP, self.sqrt_ref())
    }
    fn gt(&self, o: &Self) -> bool {
        self > o
    }
    fn to_rat(&self) -> Rational {
        self.to_rational().unwrap()
    }
}

/// p(x) = p_k(…p_1(x)) from the exact odd coefficients, plain Horner in x².
fn sign_of<T: Num>(comps: &[Vec<Rational>], x: &T) -> T {
    let mut y = x.clone();
    for c in comps {
        let y2 = y.mul(&y);
        let mut s = T::of_rat(c.last().unwrap());
        for cj in c.iter().rev().skip(1) {
            s = s.mul(&y2).add(&T::of_rat(cj));
        }
        y = s.mul(&y);
    }
    y
}

enum OMode<'a> {
    Exact,
    Approx {
        comps: &'a [Vec<Rational>],
        kernel: &'a SignKernel,
        ranges: &'a BTreeMap<NodeId, f64>,
    },
}

fn max2<T: Num>(comps: &[Vec<Rational>], a: &T, b: &T) -> T {
    let d = a.sub(b);
    let half = T::of_f64(0.5);
    a.add(b).add(&d.mul(&sign_of(comps, &d))).mul(&half)
}

fn max_tree<T: Num>(comps: &[Vec<Rational>], xs: &[T]) -> T {
    if xs.len() == 1 {
        return xs[0].clone();
    }
    let k = xs.len() / 2;
    max2(
        comps,
        &max_tree(comps, &xs[..k]),
        &max_tree(comps, &xs[k..]),
    )
}

/// An independent straight interpreter of the IR (explicitly padded convolution input,
/// window lists for pooling) in the number type T.
fn oracle<T: Num>(net: &Network, x: &[f64], mode: &OMode<'_>) -> Vec<T> {
    let mut vals: Vec<Option<Vec<T>>> = vec![None; net.values.len()];
    vals[net.input] = Some(x.iter().map(|&v| T::of_f64(v)).collect());
    let zero = T::of_f64(0.0);
    let half = T::of_f64(0.5);
    for (i, node) in net.nodes.iter().enumerate() {
        let a = vals[node.inputs[0]].clone().unwrap();
        let s_in = net.shape(node.inputs[0]).clone();
        let s_out = net.shape(node.output).clone();
        let out: Vec<T> = match &node.op {
            Op::Conv(c) => {
                let (ci, h, w) = s_in.chw().unwrap();
                let (co, ho, wo) = s_out.chw().unwrap();
                let [kh, kw] = [c.weight.dims[2], c.weight.dims[3]];
                let (hp, wp) = (h + c.pads[0] + c.pads[2], w + c.pads[1] + c.pads[3]);
                let mut xp = vec![zero.clone(); ci * hp * wp];
                for c0 in 0..ci {
                    for y in 0..h {
                        for z in 0..w {
                            xp[(c0 * hp + y + c.pads[0]) * wp + z + c.pads[1]] =
                                a[(c0 * h + y) * w + z].clone();
                        }
                    }
                }
                let cig = ci / c.groups;
                let cog = co / c.groups;
                let mut o = Vec::new();
                for oc in 0..co {
                    let g = oc / cog;
                    for oy in 0..ho {
                        for ox in 0..wo {
                            let mut s = c
                                .bias
                                .as_ref()
                                .map_or(zero.clone(), |b| T::of_f64(f64::from(b[oc])));
                            for l in 0..cig {
                                for u in 0..kh {
                                    for v in 0..kw {
                                        let wv = c.weight.data[((oc * cig + l) * kh + u) * kw + v];
                                        let xv = &xp[((g * cig + l) * hp
                                            + oy * c.strides[0]
                                            + u * c.dilations[0])
                                            * wp
                                            + ox * c.strides[1]
                                            + v * c.dilations[1]];
                                        s = s.add(&T::of_f64(f64::from(wv)).mul(xv));
                                    }
                                }
                            }
                            o.push(s);
                        }
                    }
                }
                o
            }
            Op::BatchNorm(b) => {
                let plane = s_in.numel() / b.gamma.len();
                a.iter()
                    .enumerate()
                    .map(|(j, v)| {
                        let c = j / plane;
                        let den = T::of_f64(f64::from(b.var[c]))
                            .add(&T::of_f64(f64::from(b.eps)))
                            .sqrt();
                        let s = T::of_f64(f64::from(b.gamma[c])).div(&den);
                        v.sub(&T::of_f64(f64::from(b.mean[c])))
                            .mul(&s)
                            .add(&T::of_f64(f64::from(b.beta[c])))
                    })
                    .collect()
            }
            Op::Relu => match mode {
                OMode::Exact => a
                    .iter()
                    .map(|v| if v.gt(&zero) { v.clone() } else { zero.clone() })
                    .collect(),
                OMode::Approx { comps, ranges, .. } => {
                    let b = T::of_f64(ranges[&i]);
                    a.iter()
                        .map(|v| {
                            let p = sign_of(comps, &v.div(&b));
                            v.add(&v.mul(&p)).mul(&half)
                        })
                        .collect()
                }
            },
            Op::MaxPool(p) => {
                let chw = s_in.chw().unwrap();
                let (_, ho, wo) = s_out.chw().unwrap();
                let mut o = Vec::new();
                crate::nn::ops::for_pool_windows(chw, p, (ho, wo), |_, win| {
                    let xs: Vec<T> = win.iter().map(|&j| a[j].clone()).collect();
                    o.push(match mode {
                        OMode::Exact => xs.iter().skip(1).fold(xs[0].clone(), |m, v| {
                            if v.gt(&m) {
                                v.clone()
                            } else {
                                m
                            }
                        }),
                        OMode::Approx {
                            comps,
                            kernel,
                            ranges,
                        } => {
                            let bp = T::of_f64(kernel.b_prime(ranges[&i], xs.len()));
                            let ys: Vec<T> = xs.iter().map(|v| v.div(&bp).add(&half)).collect();
                            max_tree(comps, &ys).sub(&half).mul(&bp)
                        }
                    });
                });
                o
            }
            Op::AvgPool {
                pool,
                count_include_pad,
            } => {
                let chw = s_in.chw().unwrap();
                let (_, ho, wo) = s_out.chw().unwrap();
                let mut o = Vec::new();
                crate::nn::ops::for_pool_windows(chw, pool, (ho, wo), |_, win| {
                    let n = if *count_include_pad {
                        pool.kernel[0] * pool.kernel[1]
                    } else {
                        win.len()
                    };
                    let s = win.iter().fold(zero.clone(), |s, &j| s.add(&a[j]));
                    o.push(s.div(&T::of_f64(n as f64)));
                });
                o
            }
            Op::GlobalAvgPool => {
                let (c, h, w) = s_in.chw().unwrap();
                (0..c)
                    .map(|k| {
                        a[k * h * w..(k + 1) * h * w]
                            .iter()
                            .fold(zero.clone(), |s, v| s.add(v))
                            .div(&T::of_f64((h * w) as f64))
                    })
                    .collect()
            }
            Op::Add { constant: None } => {
                let b = vals[node.inputs[1]].clone().unwrap();
                a.iter().zip(&b).map(|(p, q)| p.add(q)).collect()
            }
            Op::Gemm(l) | Op::MatMul(l) => {
                let (m, k) = (l.weight.dims[0], l.weight.dims[1]);
                (0..m)
                    .map(|r| {
                        let s0 = l
                            .bias
                            .as_ref()
                            .map_or(zero.clone(), |b| T::of_f64(f64::from(b[r])));
                        (0..k).fold(s0, |s, c| {
                            s.add(&T::of_f64(f64::from(l.weight.data[r * k + c])).mul(&a[c]))
                        })
                    })
                    .collect()
            }
            Op::Flatten | Op::Reshape | Op::Identity => a,
            Op::Slice(s) => {
                // Direct strided indexing over (C, H, W).
                let (_, h, w) = s_in.chw().unwrap();
                let (c2, h2, w2) = s_out.chw().unwrap();
                let mut o = Vec::new();
                for c in 0..c2 {
                    for y in 0..h2 {
                        for z in 0..w2 {
                            let (sc, sy, sz) = (
                                s.starts[0] + c * s.steps[0],
                                s.starts[1] + y * s.steps[1],
                                s.starts[2] + z * s.steps[2],
                            );
                            o.push(a[(sc * h + sy) * w + sz].clone());
                        }
                    }
                }
                o
            }
            Op::Pad(p) => {
                let (c, h, w) = s_in.chw().unwrap();
                let (_, h2, w2) = s_out.chw().unwrap();
                let mut o = vec![T::of_f64(f64::from(p.value)); s_out.numel()];
                for k in 0..c {
                    for y in 0..h {
                        for z in 0..w {
                            o[((k + p.begin[0]) * h2 + y + p.begin[1]) * w2 + z + p.begin[2]] =
                                a[(k * h + y) * w + z].clone();
                        }
                    }
                }
                o
            }
            Op::Add { constant: Some(c) } => a
                .iter()
                .zip(&c.data)
                .map(|(v, &k)| v.add(&T::of_f64(f64::from(k))))
                .collect(),
            Op::Mul { constant: c } => a
                .iter()
                .zip(&c.data)
                .map(|(v, &k)| v.mul(&T::of_f64(f64::from(k))))
                .collect(),
            Op::Div { constant: c } => a
                .iter()
                .zip(&c.data)
                .map(|(v, &k)| v.div(&T::of_f64(f64::from(k))))
                .collect(),
            Op::Clip { min, max } => {
                let (lo, hi) = (T::of_f64(f64::from(*min)), T::of_f64(f64::from(*max)));
                match mode {
                    OMode::Exact => a
                        .iter()
                        .map(|v| {
                            if lo.gt(v) {
                                lo.clone()
                            } else if v.gt(&hi) {
                                hi.clone()
                            } else {
                                v.clone()
                            }
                        })
                        .collect(),
                    // min + r̃_{B_lo}(x − min) − r̃_{B_hi}(x − max), r̃_B(t) = t(1 + p(t/B))/2.
                    OMode::Approx { comps, ranges, .. } => {
                        let r = |t: &T, b: f64| {
                            let p = sign_of(comps, &t.div(&T::of_f64(b)));
                            t.add(&t.mul(&p)).mul(&half)
                        };
                        let (bl, bh) = (ranges[&i], ranges[&crate::nn::clip_upper_key(i)]);
                        a.iter()
                            .map(|v| lo.add(&r(&v.sub(&lo), bl)).sub(&r(&v.sub(&hi), bh)))
                            .collect()
                    }
                }
            }
            op => panic!("oracle: {op:?} not supported"),
        };
        vals[node.output] = Some(out);
    }
    vals[net.output].clone().unwrap()
}

/// Deterministic pseudo-random dyadic values k/2^bits, |k| < 2^bits·scale (LCG).
pub(super) struct Lcg(pub(super) u64);
impl Lcg {
    pub(super) fn next(&mut self, scale: f64, bits: i32) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let u = ((self.0 >> 11) as f64) / (1u64 << 53) as f64;
        ((2.0 * u - 1.0) * scale * 2f64.powi(bits)).round() / 2f64.powi(bits)
    }
    pub(super) fn vec(&mut self, n: usize, scale: f64, bits: i32) -> Vec<f32> {
        (0..n).map(|_| self.next(scale, bits) as f32).collect()
    }
}

/// An option-A shortcut of value `x` (`c` channels): a stride-2 slice to (h, w), then `c/2`
/// zero channels on each side.
pub(super) fn option_a(b: &mut NetB, x: usize, c: usize, (h, w): (usize, usize)) -> usize {
    let sl = b.add(
        Op::Slice(Slice {
            starts: vec![0, 0, 0],
            steps: vec![1, 2, 2],
        }),
        &[x],
        &[c, h, w],
    );
    b.add(
        Op::Pad(Pad {
            begin: vec![c / 2, 0, 0],
            end: vec![c / 2, 0, 0],
            value: 0.0,
        }),
        &[sl],
        &[2 * (c / 2) + c, h, w],
    )
}

pub(super) struct NetB {
    values: Vec<ValueInfo>,
    nodes: Vec<Node>,
}

impl NetB {
    pub(super) fn new(input: &[usize]) -> Self {
        Self {
            values: vec![ValueInfo {
                name: "input".into(),
                shape: Shape(input.to_vec()),
            }],
            nodes: Vec::new(),
        }
    }
    pub(super) fn add(&mut self, op: Op, inputs: &[usize], out: &[usize]) -> usize {
        let v = self.values.len();
        self.values.push(ValueInfo {
            name: format!("v{v}"),
            shape: Shape(out.to_vec()),
        });
        self.nodes.push(Node {
            name: format!("n{}", self.nodes.len()),
            op,
            inputs: inputs.to_vec(),
            output: v,
        });
        v
    }
    pub(super) fn build(self, output: usize) -> Network {
        Network {
            name: "test".into(),
            values: self.values,
            nodes: self.nodes,
            input: 0,
            output,
            preprocess: Preprocess::default(),
            metadata: Vec::new(),
        }
    }
}

/// A 3×3 convolution (pads 1) with random weights (scale `sc.0`) and bias (scale `sc.1`);
/// `io` = [C_out, C_in / groups].
fn conv3x3(r: &mut Lcg, io: [usize; 2], groups: usize, stride: usize, sc: (f64, f64)) -> Op {
    Op::Conv(Conv {
        weight: Tensor {
            dims: vec![io[0], io[1], 3, 3],
            data: r.vec(io[0] * io[1] * 9, sc.0, 20),
        },
        bias: Some(r.vec(io[0], sc.1, 20)),
        strides: [stride, stride],
        pads: [1, 1, 1, 1],
        dilations: [1, 1],
        groups,
    })
}

/// A fully connected layer m×k with random weights (and bias, scale 0.5).
fn gemm(r: &mut Lcg, m: usize, k: usize, bias: bool) -> Op {
    Op::Gemm(Linear {
        weight: Tensor {
            dims: vec![m, k],
            data: r.vec(m * k, 1.0, 20),
        },
        bias: bias.then(|| r.vec(m, 0.5, 20)),
    })
}

/// Conv (groups 2, pads, stride 2) → BN → + option-A shortcut (Slice + Pad) → ReLU →
/// AvgPool → Flatten → Gemm; one activation layer so exact rationals stay small.
fn residual_net(seed: u64) -> Network {
    let mut r = Lcg(seed);
    let mut b = NetB::new(&[2, 6, 6]);
    let conv = b.add(conv3x3(&mut r, [4, 1], 2, 2, (1.0, 0.5)), &[0], &[4, 3, 3]);
    let bn = b.add(
        Op::BatchNorm(BatchNorm {
            gamma: r.vec(4, 0.5, 12),
            beta: r.vec(4, 0.5, 12),
            mean: r.vec(4, 0.5, 12),
            // var + eps ∈ {4, 1, 0.25, 2.25}: perfect squares for the rational oracle.
            var: vec![3.75, 0.75, 0.0, 2.0],
            eps: 0.25,
        }),
        &[conv],
        &[4, 3, 3],
    );
    let pd = option_a(&mut b, 0, 2, (3, 3));
    let add = b.add(Op::Add { constant: None }, &[bn, pd], &[4, 3, 3]);
    let relu = b.add(Op::Relu, &[add], &[4, 3, 3]);
    let ap = b.add(
        Op::AvgPool {
            pool: Pool {
                kernel: [2, 2],
                strides: [1, 1],
                pads: [0, 0, 0, 0],
            },
            count_include_pad: false,
        },
        &[relu],
        &[4, 2, 2],
    );
    let fl = b.add(Op::Flatten, &[ap], &[16]);
    let out = b.add(gemm(&mut r, 3, 16, true), &[fl], &[3]);
    b.build(out)
}

/// MaxPool (3×3, stride 2, pads 1: windows of 4, 6 and 9 values) → Flatten → Gemm.
fn maxpool_net(seed: u64) -> Network {
    let mut r = Lcg(seed);
    let mut b = NetB::new(&[1, 4, 4]);
    let mp = b.add(
        Op::MaxPool(Pool {
            kernel: [3, 3],
            strides: [2, 2],
            pads: [1, 1, 1, 1],
        }),
        &[0],
        &[1, 2, 2],
    );
    let fl = b.add(Op::Flatten, &[mp], &[4]);
    let out = b.add(gemm(&mut r, 2, 4, false), &[fl], &[2]);
    b.build(out)
}

/// Div and Sub by constants (input normalisation, 0.229 is not dyadic) → depthwise conv →
/// Clip(0, 6) (ReLU6: two shifted r̃_α in F^α) → Mul by constants → Flatten → Gemm, the
/// EfficientNet-Lite ops.
fn clip_net(seed: u64) -> Network {
    let mut r = Lcg(seed);
    let mut b = NetB::new(&[2, 3, 3]);
    let t = |data: Vec<f32>| Tensor {
        dims: vec![2, 3, 3],
        data,
    };
    let div = b.add(
        Op::Div {
            constant: t([0.229f32; 18].to_vec()),
        },
        &[0],
        &[2, 3, 3],
    );
    let sub = b.add(
        Op::Add {
            constant: Some(t(r.vec(18, 0.5, 12))),
        },
        &[div],
        &[2, 3, 3],
    );
    let dw = b.add(
        conv3x3(&mut r, [2, 1], 2, 1, (2.0, 1.0)),
        &[sub],
        &[2, 3, 3],
    );
    let clip = b.add(Op::Clip { min: 0.0, max: 6.0 }, &[dw], &[2, 3, 3]);
    let mul = b.add(
        Op::Mul {
            constant: t(r.vec(18, 1.0, 16)),
        },
        &[clip],
        &[2, 3, 3],
    );
    let fl = b.add(Op::Flatten, &[mul], &[18]);
    let out = b.add(gemm(&mut r, 3, 18, false), &[fl], &[3]);
    b.build(out)
}

fn ranges_of(net: &Network, b: f64) -> BTreeMap<NodeId, f64> {
    net.activation_nodes().into_iter().map(|i| (i, b)).collect()
}

/// |oracle_i − mid_i| ≤ rad_i for every output, in exact arithmetic, and rad_i <
/// `tight`·max(1, |mid_i|).
fn assert_inside(what: &str, oracle: &[Rational], balls: &BallT, f: Frac, tight: f64) {
    assert_eq!(oracle.len(), balls.mid.len());
    for (i, (q, (m, r))) in oracle
        .iter()
        .zip(balls.mid.iter().zip(&balls.rad))
        .enumerate()
    {
        let mid = Rational::from(m.clone()) >> f.0;
        let d = Rational::from(q - &mid).abs();
        assert!(
            d <= Rational::from_f64(*r).unwrap(),
            "{what}: output {i}: |oracle − mid| = {} > radius {r}",
            d.to_f64()
        );
        // Tight relative to the value (F^α is huge where p is evaluated far outside [−1, 1]).
        let scale = mid.to_f64().abs().max(1.0);
        assert!(
            r.is_finite() && *r < tight * scale,
            "{what}: radius {r} not tight"
        );
    }
}

/// F and F^α on balls, with the fixed-width fast path on or off.
fn run_mode(
    net: &Network,
    x: &[f64],
    pe: &PolyErrors,
    ranges: &BTreeMap<NodeId, f64>,
    f: Frac,
    fast: bool,
) -> (BallT, BallT, usize) {
    let tn = TrajectoryNetwork::new(Arc::new(net.clone()), f)
        .unwrap()
        .with_fast(fast);
    let sign = FixedSign::new(pe.components(), f);
    let wide = sign.to_wide();
    let kernel = pe.sign_kernel().unwrap();
    let (ex, _) = tn.run(x, Mode::Exact).unwrap();
    let (ap, oor) = tn
        .run(
            x,
            Mode::Approx {
                sign: &sign,
                wide: wide.as_ref().filter(|_| fast),
                kernel: &kernel,
                ranges,
            },
        )
        .unwrap();
    (ex, ap, oor)
}

/// Both balls bit-identical (midpoints and radii).
fn assert_identical(what: &str, p: &BallT, q: &BallT) {
    assert_eq!(p.mid, q.mid, "{what}: midpoints");
    let bits = |b: &BallT| b.rad.iter().map(|r| r.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(p), bits(q), "{what}: radii");
}

/// F and F^α on balls through the fast path, checked bit-identical to the GMP path.
fn run_both(
    net: &Network,
    x: &[f64],
    pe: &PolyErrors,
    ranges: &BTreeMap<NodeId, f64>,
    f: Frac,
) -> (BallT, BallT, usize) {
    let fast = run_mode(net, x, pe, ranges, f, true);
    let gmp = run_mode(net, x, pe, ranges, f, false);
    assert_identical("F", &fast.0, &gmp.0);
    assert_identical("F^alpha", &fast.1, &gmp.1);
    assert_eq!(fast.2, gmp.2);
    fast
}

/// F and F^α at 128 bits (fast path, checked against GMP) against the exact-rational
/// oracle: both lie in the balls, which are tight; returns the oracle values and the count
/// of activation inputs leaving [−B, B].
fn rational_check(
    net: &Network,
    x: &[f64],
    pe: &PolyErrors,
    ranges: &BTreeMap<NodeId, f64>,
    what: &str,
) -> (Vec<Rational>, Vec<Rational>, usize) {
    let f = Frac(128);
    let kernel = pe.sign_kernel().unwrap();
    let (ex, ap, oor) = run_both(net, x, pe, ranges, f);
    let oe: Vec<Rational> = oracle(net, x, &OMode::Exact);
    assert_inside(&format!("F, {what}"), &oe, &ex, f, 1e-20);
    let oa: Vec<Rational> = oracle(
        net,
        x,
        &OMode::Approx {
            comps: pe.components(),
            kernel: &kernel,
            ranges,
        },
    );
    assert_inside(&format!("F^alpha, {what}"), &oa, &ap, f, 1e-20);
    (oe, oa, oor)
}

#[test]
fn exact_rational_f_and_f_alpha_lie_in_the_balls_residual_net() {
    // Golden: an independent exact-rational interpreter (rug Rational), F and F^α.
    // With B = 3 some ReLU inputs leave
    // [−B, B] and the polynomial is evaluated there all the same.
    for (seed, alpha, b, outside) in [(1u64, 10u32, 3.0, true), (7, 14, 4.0, false)] {
        let net = residual_net(seed);
        let pe = PolyErrors::load(&proofs(), alpha).unwrap();
        let ranges = ranges_of(&net, b);
        let mut r = Lcg(seed + 100);
        let x: Vec<f64> = r.vec(72, 1.5, 8).into_iter().map(f64::from).collect();
        let (oe, oa, oor) = rational_check(&net, &x, &pe, &ranges, &format!("alpha {alpha}"));
        assert_eq!(oor > 0, outside, "inputs leaving [-B, B]: {oor}");
        // F and F^α really differ (the test is not vacuous).
        assert!(oe.iter().zip(&oa).any(|(p, q)| p != q));
    }
}

#[test]
fn exact_rational_clip_div_mul_lie_in_the_balls() {
    // Golden: the exact-rational interpreter; Clip(0, 6) is two shifted r̃_α in F^α (as the
    // engine), with B = 16 for ReLU(x) and B = 20 for ReLU(x − 6).
    let net = clip_net(21);
    let clip = net
        .nodes
        .iter()
        .position(|n| matches!(n.op, Op::Clip { .. }))
        .unwrap();
    let ranges = BTreeMap::from([(clip, 16.0), (crate::nn::clip_upper_key(clip), 20.0)]);
    let pe = PolyErrors::load(&proofs(), 10).unwrap();
    let kernel = pe.sign_kernel().unwrap();
    let x: Vec<f64> = Lcg(22)
        .vec(18, 1.0, 10)
        .into_iter()
        .map(f64::from)
        .collect();
    let f = Frac(128);
    let (oe, oa, _) = rational_check(&net, &x, &pe, &ranges, "clip");
    assert!(oe.iter().zip(&oa).any(|(p, q)| p != q));
    // Only one of the Clip's two ranges: a clear error naming the node.
    let partial = BTreeMap::from([(clip, 4.0)]);
    let tn = TrajectoryNetwork::new(Arc::new(net.clone()), f).unwrap();
    let sign = FixedSign::new(pe.components(), f);
    let err = tn
        .run(
            &x,
            Mode::Approx {
                sign: &sign,
                wide: None,
                kernel: &kernel,
                ranges: &partial,
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("n3"), "{err}");
}

#[test]
fn exact_rational_maxpool_m_tilde_lies_in_the_balls() {
    // M̃ nests p (depth ⌈log₂ 9⌉ = 4): α = 4 keeps the exact rationals small.
    let net = maxpool_net(3);
    let pe = PolyErrors::load(&proofs(), 4).unwrap();
    let kernel = pe.sign_kernel().unwrap();
    let ranges = ranges_of(&net, 2.0);
    let mut r = Lcg(5);
    let x: Vec<f64> = r.vec(16, 1.9, 6).into_iter().map(f64::from).collect();
    let f = Frac(160);
    let (ex, ap, _) = run_both(&net, &x, &pe, &ranges, f);
    assert_inside(
        "F",
        &oracle::<Rational>(&net, &x, &OMode::Exact),
        &ex,
        f,
        1e-20,
    );
    let oa: Vec<Rational> = oracle(
        &net,
        &x,
        &OMode::Approx {
            comps: pe.components(),
            kernel: &kernel,
            ranges: &ranges,
        },
    );
    assert_inside("F^alpha (M~)", &oa, &ap, f, 1e-20);
}

#[test]
fn higher_precision_moves_midpoints_by_less_than_the_radius() {
    let net = residual_net(11);
    let pe = PolyErrors::load(&proofs(), 12).unwrap();
    let ranges = ranges_of(&net, 4.0);
    let x: Vec<f64> = Lcg(12)
        .vec(72, 1.5, 30)
        .into_iter()
        .map(f64::from)
        .collect();
    let (lo_e, lo_a, _) = run_both(&net, &x, &pe, &ranges, Frac(64));
    let (hi_e, hi_a, _) = run_both(&net, &x, &pe, &ranges, Frac(256));
    for (lo, hi) in [(&lo_e, &hi_e), (&lo_a, &hi_a)] {
        for ((ml, rl), mh) in lo.mid.iter().zip(&lo.rad).zip(&hi.mid) {
            let d = (Rational::from(ml.clone()) >> 64u32) - (Rational::from(mh.clone()) >> 256u32);
            assert!(d.abs() <= Rational::from_f64(*rl).unwrap());
        }
    }
}

#[test]
fn softmax_is_refused_with_a_clear_error() {
    let mut b = NetB::new(&[3]);
    let out = b.add(Op::Softmax { axis: 0 }, &[0], &[3]);
    let net = b.build(out);
    let e = TrajectoryNetwork::new(Arc::new(net), Frac(128)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "node \"n0\" (Softmax): cannot decompose into the paper's blocks: softmax is not \
         supported by the trajectory certificate (certify the logits)"
    );
}

/// k evenly spread images of `data`, preprocessed, and B per activation node calibrated on
/// them (1.1 × the max |input| of each node, as `polycert bound`).
pub(super) fn image(
    shared: &std::path::Path,
    model: &str,
    data: &str,
    k: usize,
) -> (Arc<Network>, Vec<Vec<f64>>, BTreeMap<NodeId, f64>) {
    let net = Arc::new(crate::nn::import_onnx(&shared.join("models").join(model)).unwrap());
    let mut d = crate::nn::Dataset::open(&shared.join("data").join(data), None).unwrap();
    d.select_evenly(k);
    let xs = (0..d.len())
        .map(|i| super::report::prep(&net, &d, i).unwrap())
        .collect();
    let engine: Engine<f64> = Engine::new(Arc::clone(&net));
    let ranges = crate::nn::calibrate(&engine, &d, None)
        .unwrap()
        .choose(crate::nn::RangePolicy::PerLayer { margin: 1.1 })
        .unwrap();
    (net, xs, ranges)
}

#[test]
#[ignore = "slow: two 1024-bit passes of ResNet-20 (~3 min)"]
fn resnet20_mpfr_1024_lies_in_the_balls() {
    let Some(sh) = shared() else {
        println!("skipped (ResNet-20 model and CIFAR image): ../shared is absent");
        return;
    };
    let (net, xs, ranges) = image(&sh, "resnet20_cifar10.onnx", "cifar10/test_first20.bin", 1);
    let pe = PolyErrors::load(&proofs(), 14).unwrap();
    let kernel = pe.sign_kernel().unwrap();
    let f = Frac(128);
    let (ex, ap, _) = run_both(&net, &xs[0], &pe, &ranges, f);
    let oe: Vec<Float> = oracle(&net, &xs[0], &OMode::Exact);
    let oa: Vec<Float> = oracle(
        &net,
        &xs[0],
        &OMode::Approx {
            comps: pe.components(),
            kernel: &kernel,
            ranges: &ranges,
        },
    );
    // 1024-bit rounding (~2^−1000 relative per operation) is far below the radii (~1e−18).
    let to_q = |v: &[Float]| v.iter().map(Num::to_rat).collect::<Vec<_>>();
    assert_inside("F", &to_q(&oe), &ex, f, 1e-10);
    assert_inside("F^alpha", &to_q(&oa), &ap, f, 1e-10);
}

/// Distance from v to the ball ⟨m, ρ⟩ plus ρ: an upper bound of |v − exact| (rounded up).
fn dist_up(v: f64, m: f64, r: f64) -> f64 {
    super::round::add_ru(super::round::Ulp::up((v - m).abs()), r)
}

/// Certified bound vs the measured error of the f64 engine, for the given model and images.
fn certified_vs_measured(model: &str, data: &str, k: usize) {
    let Some(sh) = shared() else {
        println!("skipped ({model}): ../shared is absent");
        return;
    };
    let (net, xs, ranges) = image(&sh, model, data, k);
    let pes: Vec<PolyErrors> = [10, 14]
        .iter()
        .map(|&a| PolyErrors::load(&proofs(), a).unwrap())
        .collect();
    let tc = TrajectoryCertifier::new(
        Arc::clone(&net),
        &pes,
        ranges.clone(),
        &[Frac(128), Frac(256)],
    )
    .unwrap();
    let engine: Engine<f64> = Engine::new(Arc::clone(&net));
    for x in &xs {
        let y = engine
            .run(x, &ActivationPolicy::Exact, &mut RunStats::default())
            .unwrap();
        let certs = tc.certify(x).unwrap();
        assert_eq!(certs.len(), 2);
        for (c, pe) in certs.iter().zip(&pes) {
            let pol = ActivationPolicy::Approx {
                sign: pe.sign_kernel().unwrap(),
                ranges: ranges.clone(),
            };
            let ya = engine.run(x, &pol, &mut RunStats::default()).unwrap();
            let measured = y
                .iter()
                .zip(&ya)
                .fold(0.0f64, |a, (p, q)| a.max((p - q).abs()));
            // ‖F̂^α − F̂‖ ≤ ‖F^α − F‖ + ‖F̂^α − F^α‖ + ‖F̂ − F‖ (triangle inequality), each
            // engine-vs-exact distance bounded from the certified balls.
            let de = y
                .iter()
                .zip(&c.exact_output)
                .fold(0.0f64, |a, (v, m)| a.max(dist_up(*v, *m, c.radius_exact)));
            let da = ya
                .iter()
                .zip(&c.approx_output)
                .fold(0.0f64, |a, (v, m)| a.max(dist_up(*v, *m, c.radius_approx)));
            assert!(
                measured <= c.hi + de + da,
                "{model} alpha {}: measured {measured} > certified {} + engine distances {de} + {da}",
                c.alpha,
                c.hi
            );
            assert!(c.lo <= measured + de + da);
            // The f64 engine agrees with the certified exact values (its own rounding only).
            assert!(
                de < 1e-6 && da < 1e-6,
                "{model}: engine distances {de}, {da}"
            );
            // The certificate is tight: within 1% of the measured value.
            assert!(
                c.hi <= 1.01 * measured,
                "{model} alpha {}: {} vs {measured}",
                c.alpha,
                c.hi
            );
            assert!(
                c.unchanged,
                "{model} alpha {}: not certified unchanged",
                c.alpha
            );
        }
    }
}

#[test]
fn certified_bound_covers_the_f64_engine_mnist() {
    certified_vs_measured("mnist_cnn_small.onnx", "mnist/t10k-images-idx3-ubyte", 4);
    certified_vs_measured(
        "mnist_cnn_small_maxpool.onnx",
        "mnist/t10k-images-idx3-ubyte",
        4,
    );
}

#[test]
#[ignore = "slow: ResNet-20 trajectory certificates of 3 CIFAR images (~1 min)"]
fn certified_bound_covers_the_f64_engine_cifar() {
    certified_vs_measured("resnet20_cifar10.onnx", "cifar10/test_batch_jpeg.bin", 3);
}

#[test]
fn certifier_is_deterministic_and_checks_its_inputs() {
    let net = Arc::new(residual_net(2));
    let pe = PolyErrors::load(&proofs(), 12).unwrap();
    let ranges = ranges_of(&net, 2.0);
    let tc = TrajectoryCertifier::new(
        Arc::clone(&net),
        std::slice::from_ref(&pe),
        ranges.clone(),
        &super::PRECISIONS,
    )
    .unwrap();
    let x: Vec<f64> = Lcg(9).vec(72, 1.0, 10).into_iter().map(f64::from).collect();
    let a = serde_json::to_string(&tc.certify(&x).unwrap()).unwrap();
    let b = serde_json::to_string(&tc.certify(&x).unwrap()).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        tc.certify(&x[..5]).unwrap_err().to_string(),
        "input: has 5 values, expected 72"
    );
    let e = TrajectoryCertifier::new(
        Arc::clone(&net),
        std::slice::from_ref(&pe),
        BTreeMap::new(),
        &super::PRECISIONS,
    )
    .unwrap()
    .certify(&x)
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("approximation range B = NaN is invalid"),
        "{e}"
    );
    assert!(TrajectoryCertifier::new(net, &[pe], ranges, &[]).is_err());
}

#[test]
fn fast_path_chain_points_equal_the_gmp_ones() {
    // The noise margin's recorded chains (`SiteRec`) now come from the fixed-width fast path
    // where the midpoints fit: they must be the GMP path's intervals, bit for bit.
    use super::fixed::{f64_to_fixed, ChainBall};
    use super::trajectory_ops::PolyWide;
    let mut r = Lcg(23);
    for alpha in [10u32, 14] {
        let pe = PolyErrors::load(&proofs(), alpha).unwrap();
        for f in [Frac(128), Frac(192)] {
            let sign = FixedSign::new(pe.components(), f);
            let wide: FixedSign<PolyWide> = sign.to_wide().unwrap();
            let mut fast = 0;
            for t in 0..200 {
                let u = r.next(1.0, 40) * [1e-6, 1e-3, 0.3, 1.0, 1.2][t % 5];
                let (mid, _) = f64_to_fixed(u, f).unwrap();
                let (rho, e) = (f.ulp(), f.ulp());
                let gmp = sign.chain_points(ChainBall {
                    mid: mid.clone(),
                    rho,
                    e,
                });
                let w = wide.chain_points_checked(ChainBall {
                    mid: PolyWide::from_integer(&mid).unwrap(),
                    rho,
                    e,
                });
                if let Some(w) = w {
                    assert_eq!(w.len(), gmp.len());
                    for (a, b) in w.iter().zip(&gmp) {
                        assert!(
                            a.inf().to_bits() == b.inf().to_bits()
                                && a.sup().to_bits() == b.sup().to_bits(),
                            "α {alpha} F {} u {u}: fast {a} vs GMP {b}",
                            f.0
                        );
                    }
                    fast += 1;
                }
            }
            assert!(
                fast >= 150,
                "α {alpha} F {}: only {fast} on the fast path",
                f.0
            );
        }
    }
}

#[test]
fn measured_hint_skips_only_levels_that_cannot_be_tight() {
    let net = Arc::new(residual_net(2));
    let pes = [
        PolyErrors::load(&proofs(), 10).unwrap(),
        PolyErrors::load(&proofs(), 12).unwrap(),
    ];
    let ranges = ranges_of(&net, 2.0);
    let levels = [Frac(20), Frac(128), Frac(192)];
    let tc = TrajectoryCertifier::new(Arc::clone(&net), &pes, ranges, &levels).unwrap();
    let x: Vec<f64> = Lcg(9).vec(72, 1.0, 10).into_iter().map(f64::from).collect();
    let plain = tc.certify(&x).unwrap();
    // 20 fraction bits are too short here, so the plain run escalates, but not to the end.
    assert!(plain.iter().all(|t| t.frac_bits == 128), "{plain:?}");
    let json = |v: &[TrajectoryBound]| serde_json::to_string(v).unwrap();
    // An honest hint (≤ the true value, ≥ half of it) changes nothing.
    let honest: Vec<f64> = plain.iter().map(|t| t.lo).collect();
    assert_eq!(
        json(&tc.certify_near(&x, Some(&honest)).unwrap()),
        json(&plain)
    );
    // Unusable hints are ignored.
    for h in [f64::NAN, 0.0, f64::INFINITY] {
        assert_eq!(
            json(&tc.certify_near(&x, Some(&[h, h])).unwrap()),
            json(&plain)
        );
    }
    // A hint far below the truth skips every level but the last: a longer F, the same
    // classes, an enclosure no wider.
    let tiny = tc
        .certify_near(&x, Some(&[f64::MIN_POSITIVE, f64::MIN_POSITIVE]))
        .unwrap();
    for (t, p) in tiny.iter().zip(&plain) {
        assert_eq!(t.frac_bits, 192);
        assert_eq!(
            (t.class_exact, t.class_approx),
            (p.class_exact, p.class_approx)
        );
        assert!(t.hi - t.lo <= p.hi - p.lo, "{t:?} vs {p:?}");
    }
}

#[test]
fn radius_only_pass_gives_the_radii_of_f_bit_for_bit() {
    // clip_net (Div, Add, grouped Conv, Clip, Mul, Flatten, Gemm): F's radii ignore the
    // midpoints, so the radius-only pass must reproduce the full run's radii exactly, at a
    // short F (inexact inputs, large radii) and a long one; residual_net has batch norm and
    // ReLU, whose radii read the midpoints: no radius-only pass there.
    let net = Arc::new(clip_net(21));
    for (seed, f) in [(22u64, Frac(20)), (23, Frac(128)), (24, Frac(192))] {
        let x: Vec<f64> = Lcg(seed)
            .vec(18, 1.0, 40)
            .into_iter()
            .map(f64::from)
            .collect();
        let tn = TrajectoryNetwork::new(Arc::clone(&net), f).unwrap();
        let (ex, _) = tn.run(&x, Mode::Exact).unwrap();
        let rad = tn
            .exact_radii(&x)
            .unwrap()
            .expect("clip_net's radii ignore midpoints");
        let bits = |v: &[f64]| v.iter().map(|r| r.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&rad), bits(&ex.rad), "F = {}", f.0);
        assert!(ex.rad.iter().all(|r| *r > 0.0));
    }
    let res = TrajectoryNetwork::new(Arc::new(residual_net(2)), Frac(128)).unwrap();
    let x: Vec<f64> = Lcg(9).vec(72, 1.0, 10).into_iter().map(f64::from).collect();
    assert!(res.exact_radii(&x).unwrap().is_none());
}

#[test]
fn radius_only_level_skip_keeps_the_certificates() {
    // The radius-only level skip drops F runs whose radii show that no α can use the level;
    // the certificates must be the same as with F run at every level, whatever the hint
    // (none, honest, far too small: every level but the last skipped, NaN: ignored).
    let net = Arc::new(clip_net(21));
    let clip = net
        .nodes
        .iter()
        .position(|n| matches!(n.op, Op::Clip { .. }))
        .unwrap();
    let ranges = BTreeMap::from([(clip, 16.0), (crate::nn::clip_upper_key(clip), 20.0)]);
    let pes = [
        PolyErrors::load(&proofs(), 10).unwrap(),
        PolyErrors::load(&proofs(), 12).unwrap(),
    ];
    let levels = [Frac(16), Frac(20), Frac(128), Frac(192)];
    let on = TrajectoryCertifier::new(Arc::clone(&net), &pes, ranges.clone(), &levels).unwrap();
    let off = on.clone().with_radius_skip(false);
    let json = |v: &[TrajectoryBound]| serde_json::to_string(v).unwrap();
    let mut skipped_levels = 0;
    for seed in [22u64, 25, 26] {
        let x: Vec<f64> = Lcg(seed)
            .vec(18, 1.0, 30)
            .into_iter()
            .map(f64::from)
            .collect();
        let plain = off.certify(&x).unwrap();
        let honest: Vec<f64> = plain.iter().map(|t| t.lo).collect();
        for hint in [
            None,
            Some(honest.clone()),
            Some(vec![f64::MIN_POSITIVE; 2]),
            Some(vec![f64::NAN; 2]),
        ] {
            let a = on.certify_near(&x, hint.as_deref()).unwrap();
            let b = off.certify_near(&x, hint.as_deref()).unwrap();
            assert_eq!(json(&a), json(&b), "seed {seed} hint {hint:?}");
        }
        // Count the levels whose F alone rules every α out (where the skip acts).
        for lv in &levels[..levels.len() - 1] {
            let tn = TrajectoryNetwork::new(Arc::clone(&net), *lv).unwrap();
            let rad = tn.exact_radii(&x).unwrap().unwrap();
            let rex = rad.iter().fold(0.0f64, |a, &r| a.max(r));
            skipped_levels += usize::from(honest.iter().all(|&m| rex > 1e-6 * 2.0 * m));
        }
    }
    assert!(skipped_levels > 0, "the skip never acted");
}
