//! [`FirstOrderNetwork`]: the first-order limit of box-based certificates (issue 5) — a
//! computed linearisation, **not** a certificate.
//!
//! # The math object
//! Write ε_a = (approximate activation − exact activation) at activation node a (ReLU: r̃_α,
//! max pooling: M̃_{α,n} of Eq. 7), evaluated at F^α's own input to that node. Telescoping
//! the replacements node by node and linearising each suffix network at the exact trajectory
//! gives, to first order in the ε,
//!
//!   F^α(x) − F(x) ≈ Σ_a J_a(x)·ε_a,
//!
//! where J_a(x) is the Jacobian of the exact network's outputs with respect to the output of
//! node a, at x, with F's activation pattern (ReLU′ = 1 on y > 0, max pooling routed to the
//! first argmax of each window). For the top-1 class t of F(x) and a class j ≠ t, with
//! c = e_t − e_j and g_a^{(j)} = cᵀJ_a (one vector-Jacobian product, i.e. one backward pass,
//! per j), the worst case of the change of the margin F_t − F_j over the per-neuron error
//! boxes |ε_{a,i}| ≤ E_{a,i}(α) is, to first order,
//!
//!   L_j(α) = Σ_a Σ_i |g^{(j)}_{a,i}|·E_{a,i}(α),
//!
//! attained by ε = E·sign(g), which lies inside the boxes. E_{a,i}(α) is exactly the
//! per-neuron bound of the per-input method ([`super::BoundedNetwork::per_input`]) at the
//! exact pre-activation y_{a,i}: for a ReLU, (B/2)·(largest certified condition-(1) box
//! bound of |u·p_α(u) − |u|| over the grid cells meeting u = |y|/B) (Theorem 1, §3); for max
//! pooling over a window of n values, B·⌈log₂ n⌉·s/(½ − (⌈log₂ n⌉ − 1)·2^−α) (Theorem 2 with
//! Eq. 7). Consequently:
//!
//! - margin_j > L_j(α) for every j ≠ t: the image is *first-order certifiable* — a
//!   relational (zonotope / back-substitution) method could hope to certify it;
//! - margin_j ≤ L_j(α) for some j: no method that is sound for every error pattern inside the
//!   per-neuron boxes can certify "prediction unchanged" for it (up to second-order terms).
//!
//! The elementwise per-input certificate e_t + e_j of the margin change is ≥ L_j for the
//! same boxes (|A|·e dominates |cᵀA|·e, and its masks and local boxes contain the exact
//! ones), so the per-input method never certifies an image this limit rejects.
//!
//! Not included: the second-order terms (pre-activation shifts of F^α that move a ReLU across
//! 0 or a max-pool argmax, and the change of the local box along the way), and the range
//! hypothesis that every activation input of F^α stays in [−B, B] (only F's own
//! pre-activations are checked: `in_range`). Both would only shrink what can be certified, so
//! the first-order certifiable fraction is an estimate from above of what box-based
//! certificates can reach. All arithmetic is f64 rounded to nearest (no directed rounding).
//!
//! # Output
//! The margins are those of the graph output: the shared models output raw logits (no
//! softmax). A final softmax, when present, is differentiated like any other node
//! (J = diag(s) − s·sᵀ), so the margins are then those of the probabilities — the same output
//! the per-input bound certifies.
//!
//! # Cost
//! One exact forward pass in f64 and, batched node by node, (classes − 1) backward passes:
//! convolutions are transposed by running the engine's direct-convolution kernel with the
//! flipped, channel-swapped kernel on the (zero-upsampled, for strides > 1) output gradient.
//! The α only enter through E, so one forward and (classes − 1) backward passes serve every α.
//! Measured (`benches/bounds.rs`, one thread, one image at a time, side by side): ResNet-20
//! 58 ms against 3.3 ms for the engine's exact forward pass (17.6×), ResNet-44 136 ms against
//! 7.2 ms (18.7×) — the unfused forward pass, the 9 backward passes, the zero-upsampled
//! stride-2 transposes (4× their forward cost) and the |g|·E sums over nine α.
//!
//! Symbols: `alpha` α, `b` B, `g` the vector-Jacobian products g_a^{(j)}, `e` the per-neuron
//! bounds E_{a,i}(α), `l` L_j(α).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::network::{argmax, f64s};
use super::polyerr::{LocalRelu, PolyErrors};
use super::round::mul_ru;
use super::BoundsError;
use crate::nn::ops::{self, ConvK};
use crate::nn::{Network, NodeId, Op, Shape};

/// A transposed convolution: the vector-Jacobian product of a convolution with respect to
/// its input, as a stride-1 convolution of the zero-upsampled output gradient with the
/// flipped, channel-swapped kernel W′[ci, co, i, j] = W[co, ci, kh−1−i, kw−1−j].
#[derive(Debug, Clone)]
pub(super) struct ConvT {
    /// The transposed kernel (stride 1, the forward dilation and groups).
    k: ConvK<f64>,
    /// Forward output (C_out, H_o, W_o).
    out_chw: (usize, usize, usize),
    /// Forward strides.
    strides: [usize; 2],
    /// Size of the zero-upsampled gradient ((H_o − 1)·s + 1, (W_o − 1)·s + 1).
    up_hw: (usize, usize),
    /// Output size of the transposed kernel before cropping.
    t_hw: (usize, usize),
    /// Rows / columns to drop (top, left, bottom, right) to get the forward input's size.
    crop: [usize; 4],
    /// Forward input (C_in, H, W).
    in_chw: (usize, usize, usize),
}

/// Per-node data for the forward and backward passes.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per node, built once per network"
)]
enum Prep {
    Conv {
        k: ConvK<f64>,
        t: ConvT,
    },
    Bn {
        scale: Vec<f64>,
        shift: Vec<f64>,
    },
    Linear {
        w: Vec<f64>,
        /// Wᵀ, `[k × m]`.
        wt: Vec<f64>,
        m: usize,
        k: usize,
        bias: Option<Vec<f64>>,
    },
    AddConst(Vec<f64>),
    /// Output position → input flat index.
    Slice(Vec<usize>),
    /// Output position → input flat index (`usize::MAX` for a fill cell), and the fill.
    Pad {
        src: Vec<usize>,
        value: f64,
    },
    Other,
}

/// The callback of the backward pass at each activation node: (node, gradients at its
/// output, one per cotangent).
type Visit<'a> = dyn FnMut(NodeId, &[Vec<f64>]) -> Result<(), BoundsError> + 'a;

/// What the backward pass needs from the forward pass at one node.
#[derive(Debug, Clone)]
enum Tape {
    None,
    /// ReLU: the exact pre-activation y (ReLU′ = [y > 0], E from |y|).
    Relu(Vec<f64>),
    /// Clip: whether each input was strictly inside (min, max) (derivative 1, else 0).
    Mask(Vec<bool>),
    /// Max pooling: per output, the input flat index of the (first) maximum and the number of
    /// values in the window (padding excluded).
    MaxPool {
        arg: Vec<usize>,
        lens: Vec<usize>,
    },
    /// Softmax: the output s.
    Softmax(Vec<f64>),
}

/// The forward pass of the exact network at one input, with what the backward pass needs.
#[derive(Debug, Clone)]
struct Forward {
    output: Vec<f64>,
    tapes: Vec<Tape>,
    /// Activation input entries with |y| > B (only counted when ranges were given).
    out_of_range: usize,
}

/// Vector-Jacobian products of the exact network at one input (see the module docs): for
/// each cotangent c (a vector over the outputs), cᵀ·∂F/∂v for the network input and for the
/// output v of every ReLU / max-pool node.
#[derive(Debug, Clone, PartialEq)]
pub struct Vjp {
    /// F(x), the exact f64 forward pass.
    pub output: Vec<f64>,
    /// Per cotangent, cᵀ·∂F/∂x (input-sized).
    pub input: Vec<Vec<f64>>,
    /// Per ReLU / max-pool node, per cotangent, g_a = cᵀ·J_a (sized like the node's output).
    pub activations: BTreeMap<NodeId, Vec<Vec<f64>>>,
}

/// The first-order limit at one input for several α (see the module docs). A computed
/// linearisation in f64, not a certificate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirstOrderLimit {
    /// F(x), the exact f64 forward pass.
    pub output: Vec<f64>,
    /// t, the index of the largest output of F(x).
    pub top1: usize,
    /// margin_j = F_t(x) − F_j(x) per output (0 at t).
    pub margins: Vec<f64>,
    /// The α, in the order of `limits`.
    pub alphas: Vec<u32>,
    /// Per α, L_j(α) per output j (0 at t).
    pub limits: Vec<Vec<f64>>,
    /// Activation inputs of F(x) with |y| > B (the per-neuron bounds do not apply there).
    pub out_of_range: usize,
}

impl FirstOrderLimit {
    /// max_{j≠t} L_j(α)/margin_j for the k-th α (+∞ when a margin is 0 or a value is NaN,
    /// or when F's own activations leave [−B, B]; 0 with a single output).
    pub fn ratio(&self, k: usize) -> f64 {
        if self.out_of_range > 0 {
            return f64::INFINITY;
        }
        let Some(l) = self.limits.get(k) else {
            return f64::INFINITY;
        };
        let mut worst = 0.0f64;
        for (j, (&lj, &mj)) in l.iter().zip(&self.margins).enumerate() {
            if j == self.top1 {
                continue;
            }
            let r = lj / mj;
            if r.is_nan() || mj <= 0.0 {
                return f64::INFINITY;
            }
            worst = worst.max(r);
        }
        worst
    }

    /// Whether the image is first-order certifiable at the k-th α: margin_j > L_j(α) for
    /// every j ≠ t, and F's activation inputs lie in [−B, B].
    pub fn certifiable(&self, k: usize) -> bool {
        self.ratio(k) < 1.0
    }

    /// max_{j≠t} L_j(α) for the k-th α.
    pub fn limit_max(&self, k: usize) -> f64 {
        self.limits.get(k).map_or(f64::NAN, |l| {
            l.iter()
                .enumerate()
                .filter(|&(j, _)| j != self.top1)
                .fold(0.0f64, |a, (_, &v)| a.max(v))
        })
    }
}

/// A network prepared for the first-order limit: the exact forward pass in f64 and its
/// vector-Jacobian products (see the module docs).
#[derive(Debug, Clone)]
pub struct FirstOrderNetwork {
    net: Arc<Network>,
    preps: Vec<Prep>,
    /// For each value, the last node reading it (frees forward buffers early).
    last_use: Vec<Option<NodeId>>,
}

fn unsupported(node: &str, op: &str, reason: impl Into<String>) -> BoundsError {
    BoundsError::FirstOrder {
        node: node.to_string(),
        op: op.to_string(),
        reason: reason.into(),
    }
}

/// The transposed convolution of a forward convolution (see [`ConvT`]).
pub(super) fn conv_transpose(
    name: &str,
    k: &ConvK<f64>,
    in_chw: (usize, usize, usize),
    out_chw: (usize, usize, usize),
) -> Result<ConvT, BoundsError> {
    let bad = |why: String| unsupported(name, "Conv", why);
    let (c, h, w) = in_chw;
    let (co, ho, wo) = out_chw;
    let g = k.groups.max(1);
    if c != k.cin
        || co != k.cout
        || !k.cin.is_multiple_of(g)
        || !k.cout.is_multiple_of(g)
        || ho == 0
        || wo == 0
    {
        return Err(bad(format!(
            "input {in_chw:?} / output {out_chw:?} do not match the kernel ({} → {} channels, {g} groups)",
            k.cin, k.cout
        )));
    }
    let (cig, cog) = (k.cin / g, k.cout / g);
    let (kh, kw) = (k.kh, k.kw);
    let [sh, sw] = k.strides;
    let [dh, dw] = k.dilations;
    let [pt, pl, pb, pr] = k.pads;
    let (hp, wp) = (h + pt + pb, w + pl + pr);
    let (reach_h, reach_w) = ((kh.max(1) - 1) * dh, (kw.max(1) - 1) * dw);
    let (hu, wu) = ((ho - 1) * sh + 1, (wo - 1) * sw + 1);
    // The forward windows cover padded rows 0 .. hu + reach_h; the rows after them (extra)
    // get no gradient.
    let (Some(extra_h), Some(extra_w)) =
        (hp.checked_sub(hu + reach_h), wp.checked_sub(wu + reach_w))
    else {
        return Err(bad(format!(
            "output {ho}×{wo} is too large for the padded input {hp}×{wp} (kernel {kh}×{kw}, strides {sh},{sw}, dilations {dh},{dw})"
        )));
    };
    // With pads (reach, reach + extra) the stride-1 transposed kernel produces the padded
    // input's gradient, row r ↔ padded row r; the forward padding is cropped, as much as
    // possible by lowering these pads, the rest afterwards.
    let (full_b, full_r) = (reach_h + extra_h, reach_w + extra_w);
    let (ct, cl, cb, cr) = (
        pt.min(reach_h),
        pl.min(reach_w),
        pb.min(full_b),
        pr.min(full_r),
    );
    let pads = [reach_h - ct, reach_w - cl, full_b - cb, full_r - cr];
    let t_hw = (hp - ct - cb, wp - cl - cr);
    let crop = [pt - ct, pl - cl, pb - cb, pr - cr];
    let mut weight = vec![0.0; k.weight.len()];
    for gi in 0..g {
        for col in 0..cog {
            for cil in 0..cig {
                for i in 0..kh {
                    for j in 0..kw {
                        let src = (((gi * cog + col) * cig + cil) * kh + i) * kw + j;
                        let dst = (((gi * cig + cil) * cog + col) * kh + (kh - 1 - i)) * kw
                            + (kw - 1 - j);
                        if let (Some(d), Some(&s)) = (weight.get_mut(dst), k.weight.get(src)) {
                            *d = s;
                        }
                    }
                }
            }
        }
    }
    let mut tk = ConvK {
        weight,
        bias: None,
        cout: k.cin,
        cin: k.cout,
        kh,
        kw,
        strides: [1, 1],
        pads,
        dilations: k.dilations,
        groups: g,
        packed: Vec::new(),
    };
    tk.pack();
    Ok(ConvT {
        k: tk,
        out_chw,
        strides: k.strides,
        up_hw: (hu, wu),
        t_hw,
        crop,
        in_chw,
    })
}

impl ConvT {
    /// gx = Wᵀ·gy for one output gradient.
    pub(super) fn apply(&self, gy: &[f64], buf: &mut Vec<f64>) -> Vec<f64> {
        let (co, ho, wo) = self.out_chw;
        let (hu, wu) = self.up_hw;
        let up;
        let src: &[f64] = if self.strides == [1, 1] {
            gy
        } else {
            let [sh, sw] = self.strides;
            let mut u = vec![0.0; co * hu * wu];
            for c in 0..co {
                for oy in 0..ho {
                    for ox in 0..wo {
                        if let (Some(d), Some(&v)) = (
                            u.get_mut((c * hu + oy * sh) * wu + ox * sw),
                            gy.get((c * ho + oy) * wo + ox),
                        ) {
                            *d = v;
                        }
                    }
                }
            }
            up = u;
            &up
        };
        let (gx, _) = ops::conv(src, (co, hu, wu), &self.k, self.t_hw, buf, false);
        if self.crop == [0; 4] {
            return gx;
        }
        let (c, h, w) = self.in_chw;
        let (th, tw) = self.t_hw;
        let [ct, cl, _, _] = self.crop;
        let mut out = Vec::with_capacity(c * h * w);
        for ci in 0..c {
            for y in 0..h {
                let s = (ci * th + y + ct) * tw + cl;
                match gx.get(s..s + w) {
                    Some(row) => out.extend_from_slice(row),
                    None => out.extend(std::iter::repeat_n(0.0, w)),
                }
            }
        }
        out
    }
}

/// A fully connected layer's weights W `[m × k]` in f64, Wᵀ `[k × m]`, m and k.
pub(super) fn linear_and_transpose(l: &crate::nn::Linear) -> (Vec<f64>, Vec<f64>, usize, usize) {
    let m = l.weight.dims.first().copied().unwrap_or(0);
    let k = l.weight.dims.get(1).copied().unwrap_or(0);
    let w = f64s(&l.weight.data);
    let mut wt = vec![0.0; m * k];
    for r in 0..m {
        for c in 0..k {
            if let (Some(d), Some(&v)) = (wt.get_mut(c * m + r), w.get(r * k + c)) {
                *d = v;
            }
        }
    }
    (w, wt, m, k)
}

/// Output position → input flat index of a Slice: slicing the indices themselves (exact:
/// indices < 2^53).
pub(super) fn slice_src(s: &crate::nn::Slice, s_in: &Shape, s_out: &Shape) -> Vec<usize> {
    let idx: Vec<f64> = (0..s_in.numel()).map(|i| i as f64).collect();
    let src = ops::slice(&idx, s_in, &s.starts, &s.steps, s_out);
    src.into_iter().map(|v| v as usize).collect()
}

/// Output position → input flat index of a Pad (`usize::MAX` for a fill cell).
pub(super) fn pad_src(p: &crate::nn::Pad, s_in: &Shape, s_out: &Shape) -> Vec<usize> {
    let idx: Vec<f64> = (1..=s_in.numel()).map(|i| i as f64).collect();
    let src = ops::pad(&idx, s_in, &p.begin, 0.0, s_out);
    src.into_iter()
        .map(|v| if v > 0.0 { v as usize - 1 } else { usize::MAX })
        .collect()
}

/// (outer, d, inner) of a softmax along `axis`.
fn softmax_dims(s: &Shape, axis: usize, n: usize) -> (usize, usize, usize) {
    let d = s.0.get(axis).copied().unwrap_or(1).max(1);
    let inner: usize = s.0.iter().skip(axis + 1).product::<usize>().max(1);
    (n / (d * inner).max(1), d, inner)
}

/// Σ a_i·b_i with eight independent partial sums (vectorisable; the order of the sum is
/// fixed, so the result is deterministic).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for ((s, p), q) in acc.iter_mut().zip(x).zip(y) {
            *s += p * q;
        }
    }
    acc.iter().sum::<f64>() + tail
}

fn add_into(slot: &mut Option<Vec<Vec<f64>>>, g: Vec<Vec<f64>>) {
    match slot {
        Some(acc) => {
            for (a, b) in acc.iter_mut().zip(g) {
                for (p, q) in a.iter_mut().zip(b) {
                    *p += q;
                }
            }
        }
        None => *slot = Some(g),
    }
}

impl FirstOrderNetwork {
    /// Prepare a network: f64 weights, batch norm as a per-channel affine map
    /// (s = γ/√(σ² + ε), t = β − μ·s), transposed convolution kernels.
    ///
    /// # Errors
    /// [`BoundsError::FirstOrder`] naming the node when a convolution's shapes are
    /// inconsistent or a node has no input.
    pub fn new(net: Arc<Network>) -> Result<Self, BoundsError> {
        let mut preps = Vec::with_capacity(net.nodes.len());
        for node in &net.nodes {
            let in0 = node.inputs.first().copied().ok_or_else(|| {
                unsupported(&node.name, node.op.op_type(), "the node has no input")
            })?;
            let s_in = net.shape(in0);
            let s_out = net.shape(node.output);
            let p = match &node.op {
                Op::Conv(c) => {
                    let k = ConvK::from_conv(c, f64s(&c.weight.data), c.bias.as_deref().map(f64s));
                    let (Some(ic), Some(oc)) = (s_in.chw(), s_out.chw()) else {
                        return Err(unsupported(
                            &node.name,
                            "Conv",
                            format!("input {s_in} / output {s_out} are not [C, H, W]"),
                        ));
                    };
                    let t = conv_transpose(&node.name, &k, ic, oc)?;
                    Prep::Conv { k, t }
                }
                Op::BatchNorm(b) => {
                    let (mut scale, mut shift) = (Vec::new(), Vec::new());
                    for (((g, be), m), v) in b.gamma.iter().zip(&b.beta).zip(&b.mean).zip(&b.var) {
                        let s = f64::from(*g) / (f64::from(*v) + f64::from(b.eps)).sqrt();
                        scale.push(s);
                        shift.push(f64::from(*be) - f64::from(*m) * s);
                    }
                    Prep::Bn { scale, shift }
                }
                Op::Gemm(l) | Op::MatMul(l) => {
                    let (w, wt, m, k) = linear_and_transpose(l);
                    Prep::Linear {
                        w,
                        wt,
                        m,
                        k,
                        bias: l.bias.as_deref().map(f64s),
                    }
                }
                Op::Add { constant: Some(t) } => Prep::AddConst(f64s(&t.data)),
                Op::Slice(s) => Prep::Slice(slice_src(s, s_in, s_out)),
                Op::Pad(p) => Prep::Pad {
                    src: pad_src(p, s_in, s_out),
                    value: f64::from(p.value),
                },
                Op::Relu
                | Op::Clip { .. }
                | Op::MaxPool(_)
                | Op::AvgPool { .. }
                | Op::GlobalAvgPool
                | Op::Add { constant: None }
                | Op::Flatten
                | Op::Reshape
                | Op::Identity
                | Op::Concat { .. }
                | Op::Softmax { .. } => Prep::Other,
                Op::Mul { .. } | Op::Div { .. } => {
                    return Err(unsupported(
                        &node.name,
                        node.op.op_type(),
                        "elementwise Mul / Div by a constant is not supported by the first-order \
                         limit yet",
                    ))
                }
            };
            preps.push(p);
        }
        let mut last_use = vec![None; net.values.len()];
        for (i, n) in net.nodes.iter().enumerate() {
            for &v in &n.inputs {
                if let Some(l) = last_use.get_mut(v) {
                    *l = Some(i);
                }
            }
        }
        Ok(Self {
            net,
            preps,
            last_use,
        })
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The exact forward pass with the tapes; counts activation inputs with |y| > B when
    /// `ranges` are given.
    #[expect(clippy::too_many_lines, reason = "one arm per op")]
    fn forward(
        &self,
        x: &[f64],
        ranges: Option<&BTreeMap<NodeId, f64>>,
    ) -> Result<Forward, BoundsError> {
        let net = &*self.net;
        let n_in = net.input_shape().numel();
        if x.len() != n_in {
            return Err(BoundsError::Size {
                what: "input".into(),
                got: x.len(),
                expected: n_in,
            });
        }
        let mut vals: Vec<Option<Vec<f64>>> = vec![None; net.values.len()];
        if let Some(s) = vals.get_mut(net.input) {
            *s = Some(x.to_vec());
        }
        let mut tapes = vec![Tape::None; net.nodes.len()];
        let mut out_of_range = 0usize;
        let mut buf = Vec::new();
        for (i, (node, prep)) in net.nodes.iter().zip(&self.preps).enumerate() {
            let missing = || unsupported(&node.name, node.op.op_type(), "input value not computed");
            let get = |v: usize| vals.get(v).and_then(Option::as_ref).ok_or_else(missing);
            let in0 = node.inputs.first().copied().unwrap_or(usize::MAX);
            let a = get(in0)?;
            let s_in = net.shape(in0);
            let s_out = net.shape(node.output);
            let chw = s_in.chw().unwrap_or((0, 0, 0));
            let out_hw = s_out.chw().map_or((0, 0), |(_, h, w)| (h, w));
            let b = ranges.map(|r| r.get(&i).copied().unwrap_or(f64::NAN));
            let oor = |y: &[f64]| match b {
                Some(b) => y.iter().filter(|v| v.is_nan() || v.abs() > b).count(),
                None => 0,
            };
            let out: Vec<f64> = match (&node.op, prep) {
                (Op::Conv(_), Prep::Conv { k, .. }) => {
                    ops::conv(a, chw, k, out_hw, &mut buf, false).0
                }
                (Op::BatchNorm(_), Prep::Bn { scale, shift }) => {
                    let plane = (s_in.numel() / scale.len().max(1)).max(1);
                    let mut y = a.clone();
                    ops::affine_channels(&mut y, plane, scale, shift);
                    y
                }
                (Op::Gemm(_) | Op::MatMul(_), Prep::Linear { w, m, k, bias, .. }) => {
                    ops::linear(a, w, *m, *k, bias.as_deref())
                }
                (Op::Add { constant: Some(_) }, Prep::AddConst(c)) => {
                    a.iter().zip(c).map(|(p, q)| p + q).collect()
                }
                (Op::Add { constant: None }, _) => {
                    let b2 = get(node.inputs.get(1).copied().unwrap_or(usize::MAX))?;
                    a.iter().zip(b2).map(|(p, q)| p + q).collect()
                }
                (Op::Relu, _) => {
                    out_of_range += oor(a);
                    if let Some(t) = tapes.get_mut(i) {
                        *t = Tape::Relu(a.clone());
                    }
                    a.iter().map(|&v| v.max(0.0)).collect()
                }
                (Op::Clip { min, max }, _) => {
                    let (lo, hi) = (f64::from(*min), f64::from(*max));
                    if let Some(t) = tapes.get_mut(i) {
                        *t = Tape::Mask(a.iter().map(|&v| v > lo && v < hi).collect());
                    }
                    a.iter().map(|&v| v.max(lo).min(hi)).collect()
                }
                (Op::MaxPool(p), _) => {
                    out_of_range += oor(a);
                    let (mut arg, mut lens, mut y) = (Vec::new(), Vec::new(), Vec::new());
                    ops::for_pool_windows(chw, p, out_hw, |_, win| {
                        let mut best = usize::MAX;
                        let mut m = f64::NEG_INFINITY;
                        for &q in win {
                            if let Some(&v) = a.get(q) {
                                if best == usize::MAX || v > m {
                                    best = q;
                                    m = v;
                                }
                            }
                        }
                        arg.push(best);
                        lens.push(win.len());
                        y.push(m);
                    });
                    if let Some(t) = tapes.get_mut(i) {
                        *t = Tape::MaxPool { arg, lens };
                    }
                    y
                }
                (
                    Op::AvgPool {
                        pool,
                        count_include_pad,
                    },
                    _,
                ) => ops::avgpool(a, chw, pool, out_hw, *count_include_pad),
                (Op::GlobalAvgPool, _) => ops::global_avgpool(a, chw.1 * chw.2),
                (Op::Flatten | Op::Reshape | Op::Identity, _) => a.clone(),
                (Op::Slice(_), Prep::Slice(src)) => src
                    .iter()
                    .map(|&q| a.get(q).copied().unwrap_or(0.0))
                    .collect(),
                (Op::Pad(_), Prep::Pad { src, value }) => src
                    .iter()
                    .map(|&q| a.get(q).copied().unwrap_or(*value))
                    .collect(),
                (Op::Concat { axis }, _) => {
                    let mut parts = Vec::new();
                    for &v in &node.inputs {
                        parts.push((get(v)?.as_slice(), net.shape(v)));
                    }
                    ops::concat(&parts, *axis, s_out)
                }
                (Op::Softmax { axis }, _) => {
                    let s = ops::softmax(a, s_in, *axis);
                    if let Some(t) = tapes.get_mut(i) {
                        *t = Tape::Softmax(s.clone());
                    }
                    s
                }
                (op, _) => {
                    return Err(unsupported(
                        &node.name,
                        op.op_type(),
                        "not prepared for the first-order limit",
                    ))
                }
            };
            if out.len() != s_out.numel() {
                return Err(unsupported(
                    &node.name,
                    node.op.op_type(),
                    format!("produced {} values for the output shape {s_out}", out.len()),
                ));
            }
            for &v in &node.inputs {
                if v != net.output && self.last_use.get(v).copied().flatten() == Some(i) {
                    if let Some(s) = vals.get_mut(v) {
                        *s = None;
                    }
                }
            }
            if let Some(s) = vals.get_mut(node.output) {
                *s = Some(out);
            }
        }
        let output = vals
            .get_mut(net.output)
            .and_then(Option::take)
            .ok_or_else(|| unsupported("graph output", "-", "not computed"))?;
        Ok(Forward {
            output,
            tapes,
            out_of_range,
        })
    }

    /// The backward pass for several cotangents at once (node by node, in reverse graph
    /// order): `visit(node, gradients at its output)` at every ReLU / max-pool node; returns
    /// the gradients at the network input when `want_input`.
    #[expect(clippy::too_many_lines, reason = "one arm per op")]
    fn backward(
        &self,
        fw: &Forward,
        cots: Vec<Vec<f64>>,
        want_input: bool,
        visit: &mut Visit<'_>,
    ) -> Result<Option<Vec<Vec<f64>>>, BoundsError> {
        let net = &*self.net;
        let n_out = net.output_shape().numel();
        if let Some(c) = cots.iter().find(|c| c.len() != n_out) {
            return Err(BoundsError::Size {
                what: "cotangent".into(),
                got: c.len(),
                expected: n_out,
            });
        }
        // Values that (transitively) depend on the network input: gradients are only
        // propagated into those (the input's own gradient only when asked for).
        let mut live = vec![false; net.values.len()];
        if let Some(l) = live.get_mut(net.input) {
            *l = true;
        }
        for n in &net.nodes {
            if n.inputs
                .iter()
                .any(|&v| live.get(v).copied().unwrap_or(false))
            {
                if let Some(l) = live.get_mut(n.output) {
                    *l = true;
                }
            }
        }
        if !want_input {
            if let Some(l) = live.get_mut(net.input) {
                *l = false;
            }
        }
        let mut grads: Vec<Option<Vec<Vec<f64>>>> = vec![None; net.values.len()];
        if let Some(s) = grads.get_mut(net.output) {
            *s = Some(cots);
        }
        let mut buf = Vec::new();
        for (i, (node, prep)) in net.nodes.iter().zip(&self.preps).enumerate().rev() {
            let Some(gy) = grads.get_mut(node.output).and_then(Option::take) else {
                continue;
            };
            let tape = fw.tapes.get(i).unwrap_or(&Tape::None);
            if node.op.is_nonpolynomial_activation() {
                visit(i, &gy)?;
            }
            let in0 = node.inputs.first().copied().unwrap_or(usize::MAX);
            if !node
                .inputs
                .iter()
                .any(|&v| live.get(v).copied().unwrap_or(false))
            {
                continue;
            }
            let s_in = net.shape(in0);
            let s_out = net.shape(node.output);
            let n_in = s_in.numel();
            let chw = s_in.chw().unwrap_or((0, 0, 0));
            let out_hw = s_out.chw().map_or((0, 0), |(_, h, w)| (h, w));
            let each = |f: &mut dyn FnMut(&[f64]) -> Vec<f64>| -> Vec<Vec<f64>> {
                gy.iter().map(|g| f(g)).collect()
            };
            // Gradients for the first input (and, for a residual Add, the second).
            let gx: Vec<Vec<f64>> = match (&node.op, prep, tape) {
                (Op::Conv(_), Prep::Conv { t, .. }, _) => each(&mut |g| t.apply(g, &mut buf)),
                (Op::BatchNorm(_), Prep::Bn { scale, .. }, _) => {
                    let plane = (n_in / scale.len().max(1)).max(1);
                    let zero = vec![0.0; scale.len()];
                    each(&mut |g| {
                        let mut v = g.to_vec();
                        ops::affine_channels(&mut v, plane, scale, &zero);
                        v
                    })
                }
                (Op::Gemm(_) | Op::MatMul(_), Prep::Linear { wt, m, k, .. }, _) => {
                    each(&mut |g| ops::linear(g, wt, *k, *m, None))
                }
                (Op::Relu, _, Tape::Relu(y)) => each(&mut |g| {
                    g.iter()
                        .zip(y)
                        .map(|(&d, &v)| if v > 0.0 { d } else { 0.0 })
                        .collect()
                }),
                (Op::Clip { .. }, _, Tape::Mask(m)) => each(&mut |g| {
                    g.iter()
                        .zip(m)
                        .map(|(&d, &inside)| if inside { d } else { 0.0 })
                        .collect()
                }),
                (Op::MaxPool(_), _, Tape::MaxPool { arg, .. }) => each(&mut |g| {
                    let mut v = vec![0.0; n_in];
                    for (&d, &q) in g.iter().zip(arg) {
                        if let Some(s) = v.get_mut(q) {
                            *s += d;
                        }
                    }
                    v
                }),
                (
                    Op::AvgPool {
                        pool,
                        count_include_pad,
                    },
                    _,
                    _,
                ) => each(&mut |g| {
                    let mut v = vec![0.0; n_in];
                    let full = pool.kernel[0] * pool.kernel[1];
                    ops::for_pool_windows(chw, pool, out_hw, |o, win| {
                        let n = if *count_include_pad { full } else { win.len() };
                        let d = g.get(o).copied().unwrap_or(0.0) / n.max(1) as f64;
                        for &q in win {
                            if let Some(s) = v.get_mut(q) {
                                *s += d;
                            }
                        }
                    });
                    v
                }),
                (Op::GlobalAvgPool, _, _) => {
                    let plane = (chw.1 * chw.2).max(1);
                    each(&mut |g| {
                        g.iter()
                            .flat_map(|&d| std::iter::repeat_n(d / plane as f64, plane))
                            .collect()
                    })
                }
                (Op::Add { .. } | Op::Flatten | Op::Reshape | Op::Identity, _, _) => gy.clone(),
                (Op::Slice(_), Prep::Slice(src), _) => each(&mut |g| {
                    let mut v = vec![0.0; n_in];
                    for (&d, &q) in g.iter().zip(src) {
                        if let Some(s) = v.get_mut(q) {
                            *s += d;
                        }
                    }
                    v
                }),
                (Op::Pad(_), Prep::Pad { src, .. }, _) => each(&mut |g| {
                    let mut v = vec![0.0; n_in];
                    for (&d, &q) in g.iter().zip(src) {
                        if let Some(s) = v.get_mut(q) {
                            *s += d;
                        }
                    }
                    v
                }),
                (Op::Softmax { axis }, _, Tape::Softmax(s)) => {
                    let (outer, d, inner) = softmax_dims(s_in, *axis, n_in);
                    each(&mut |g| {
                        // gx = s ⊙ (g − Σ_axis g ⊙ s).
                        let mut v = vec![0.0; n_in];
                        for o in 0..outer {
                            for q in 0..inner {
                                let at = |j: usize| o * d * inner + j * inner + q;
                                let dot: f64 = (0..d)
                                    .map(|j| {
                                        g.get(at(j)).copied().unwrap_or(0.0)
                                            * s.get(at(j)).copied().unwrap_or(0.0)
                                    })
                                    .sum();
                                for j in 0..d {
                                    if let (Some(r), Some(&gj), Some(&sj)) =
                                        (v.get_mut(at(j)), g.get(at(j)), s.get(at(j)))
                                    {
                                        *r = sj * (gj - dot);
                                    }
                                }
                            }
                        }
                        v
                    })
                }
                (Op::Concat { axis }, _, _) => {
                    // Split the gradient along the axis among the inputs.
                    let outer: usize = s_out.0.iter().take(*axis).product();
                    let inners: Vec<usize> = node
                        .inputs
                        .iter()
                        .map(|&v| net.shape(v).0.iter().skip(*axis).product())
                        .collect();
                    let mut parts: Vec<Vec<Vec<f64>>> = inners
                        .iter()
                        .map(|&n| vec![Vec::with_capacity(outer * n); gy.len()])
                        .collect();
                    for (c, g) in gy.iter().enumerate() {
                        let mut off = 0;
                        for _ in 0..outer {
                            for (p, &n) in parts.iter_mut().zip(&inners) {
                                if let Some(dst) = p.get_mut(c) {
                                    dst.extend_from_slice(g.get(off..off + n).unwrap_or(&[]));
                                }
                                off += n;
                            }
                        }
                    }
                    for (&v, p) in node.inputs.iter().zip(parts) {
                        if live.get(v).copied().unwrap_or(false) {
                            if let Some(slot) = grads.get_mut(v) {
                                add_into(slot, p);
                            }
                        }
                    }
                    continue;
                }
                (op, _, _) => {
                    return Err(unsupported(
                        &node.name,
                        op.op_type(),
                        "no backward pass for this node",
                    ))
                }
            };
            if let Some(g) = gx.first().filter(|g| g.len() != n_in) {
                return Err(unsupported(
                    &node.name,
                    node.op.op_type(),
                    format!(
                        "backward pass produced {} values for the input shape {s_in}",
                        g.len()
                    ),
                ));
            }
            if let Op::Add { constant: None } = node.op {
                let in1 = node.inputs.get(1).copied().unwrap_or(usize::MAX);
                if live.get(in1).copied().unwrap_or(false) {
                    if let Some(slot) = grads.get_mut(in1) {
                        add_into(slot, gx.clone());
                    }
                }
            }
            if live.get(in0).copied().unwrap_or(false) {
                if let Some(slot) = grads.get_mut(in0) {
                    add_into(slot, gx);
                }
            }
        }
        Ok(if want_input {
            Some(
                grads
                    .get_mut(net.input)
                    .and_then(Option::take)
                    .unwrap_or_default(),
            )
        } else {
            None
        })
    }

    /// Vector-Jacobian products of the exact network at `x` for the given cotangents (each
    /// output-sized): cᵀ·∂F/∂x and cᵀ·J_a at every ReLU / max-pool node a.
    ///
    /// # Errors
    /// [`BoundsError::Size`] for a wrong input or cotangent size; [`BoundsError::FirstOrder`]
    /// naming a node whose shapes are inconsistent.
    pub fn vjp(&self, x: &[f64], cotangents: &[Vec<f64>]) -> Result<Vjp, BoundsError> {
        let fw = self.forward(x, None)?;
        let mut activations = BTreeMap::new();
        let input = self.backward(&fw, cotangents.to_vec(), true, &mut |a, g| {
            activations.insert(a, g.to_vec());
            Ok(())
        })?;
        let n_in = self.net.input_shape().numel();
        Ok(Vjp {
            output: fw.output,
            // An input that does not reach the output has gradient 0.
            input: input
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| vec![vec![0.0; n_in]; cotangents.len()]),
            activations,
        })
    }

    /// The first-order limit at `x` for every α of `pes` (see the module docs): F(x), t,
    /// margin_j and L_j(α). One forward pass and (outputs − 1) backward passes.
    ///
    /// # Errors
    /// [`BoundsError::Size`] for a wrong input size; [`BoundsError::Range`] when a ReLU /
    /// MaxPool node lacks a valid B; [`BoundsError::Config`] when B′ of Eq. 7 is undefined
    /// for a max-pool window; [`BoundsError::FirstOrder`] for inconsistent shapes.
    pub fn limit(
        &self,
        pes: &[PolyErrors],
        ranges: &BTreeMap<NodeId, f64>,
        x: &[f64],
    ) -> Result<FirstOrderLimit, BoundsError> {
        let net = &*self.net;
        for id in net.activation_nodes() {
            match ranges.get(&id) {
                Some(&b) if b.is_finite() && b > 0.0 => {}
                other => {
                    return Err(BoundsError::Range {
                        node: net
                            .nodes
                            .get(id)
                            .map(|n| n.name.clone())
                            .unwrap_or_default(),
                        index: id,
                        value: format!("{other:?}"),
                    })
                }
            }
        }
        let fw = self.forward(x, Some(ranges))?;
        let n_out = fw.output.len();
        let top1 = argmax(&fw.output);
        let yt = fw.output.get(top1).copied().unwrap_or(f64::NAN);
        let margins: Vec<f64> = fw.output.iter().map(|&y| yt - y).collect();
        let others: Vec<usize> = (0..n_out).filter(|&j| j != top1).collect();
        let cots: Vec<Vec<f64>> = others
            .iter()
            .map(|&j| {
                let mut c = vec![0.0; n_out];
                if let Some(v) = c.get_mut(top1) {
                    *v = 1.0;
                }
                if let Some(v) = c.get_mut(j) {
                    *v = -1.0;
                }
                c
            })
            .collect();
        // acc[k][c] = Σ_a Σ_i |g^{(c)}_{a,i}|·E_{a,i}(α_k).
        let mut acc = vec![vec![0.0f64; cots.len()]; pes.len()];
        let mut e = vec![Vec::new(); pes.len()];
        self.backward(&fw, cots, false, &mut |a, gy| {
            let b = ranges.get(&a).copied().unwrap_or(f64::NAN);
            match fw.tapes.get(a) {
                Some(Tape::Relu(y)) => {
                    let lr = LocalRelu::new(b);
                    let cells: Vec<(usize, usize)> = y
                        .iter()
                        .map(|&v| {
                            let u = v.abs();
                            lr.cells(u, u)
                        })
                        .collect();
                    for (ek, pe) in e.iter_mut().zip(pes) {
                        ek.clear();
                        ek.extend(cells.iter().map(|&c| pe.relu_local(&lr, c)));
                    }
                }
                Some(Tape::MaxPool { lens, .. }) => {
                    for (ek, pe) in e.iter_mut().zip(pes) {
                        let full = lens.iter().copied().max().unwrap_or(0);
                        let per_n: Vec<f64> = (0..=full)
                            .map(|n| pe.maxpool_unit(n).map(|u| mul_ru(b, u)))
                            .collect::<Result<_, _>>()?;
                        ek.clear();
                        ek.extend(
                            lens.iter()
                                .map(|&n| per_n.get(n).copied().unwrap_or(f64::INFINITY)),
                        );
                    }
                }
                _ => return Ok(()),
            }
            let gabs: Vec<Vec<f64>> = gy
                .iter()
                .map(|g| g.iter().map(|v| v.abs()).collect())
                .collect();
            for (acc_k, ek) in acc.iter_mut().zip(&e) {
                for (l, g) in acc_k.iter_mut().zip(&gabs) {
                    *l += dot(g, ek);
                }
            }
            Ok(())
        })?;
        let limits = acc
            .into_iter()
            .map(|a| {
                let mut l = vec![0.0; n_out];
                for (&j, v) in others.iter().zip(a) {
                    if let Some(s) = l.get_mut(j) {
                        *s = v;
                    }
                }
                l
            })
            .collect();
        Ok(FirstOrderLimit {
            output: fw.output,
            top1,
            margins,
            alphas: pes.iter().map(PolyErrors::alpha).collect(),
            limits,
            out_of_range: fw.out_of_range,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Naive direct convolution (independent of the packed kernel): OIHW weights, zero
    /// padding, strides, dilations, groups.
    #[expect(clippy::too_many_arguments, reason = "test helper")]
    fn naive_conv(
        x: &[f64],
        (c, h, w): (usize, usize, usize),
        wt: &[f64],
        cout: usize,
        (kh, kw): (usize, usize),
        s: [usize; 2],
        p: [usize; 4],
        d: [usize; 2],
        g: usize,
        (ho, wo): (usize, usize),
    ) -> Vec<f64> {
        let (cig, cog) = (c / g, cout / g);
        let mut out = vec![0.0; cout * ho * wo];
        for co in 0..cout {
            let gi = co / cog;
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = 0.0;
                    for ci in 0..cig {
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (oy * s[0] + i * d[0]) as isize - p[0] as isize;
                                let ix = (ox * s[1] + j * d[1]) as isize - p[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xv = x[((gi * cig + ci) * h + iy as usize) * w + ix as usize];
                                acc += wt[((co * cig + ci) * kh + i) * kw + j] * xv;
                            }
                        }
                    }
                    out[(co * ho + oy) * wo + ox] = acc;
                }
            }
        }
        out
    }

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// The transposed convolution is the adjoint of the convolution:
        /// ⟨conv(x), y⟩ = ⟨x, convT(y)⟩ for random x, y (dot-product test), with the forward
        /// convolution computed by a naive loop.
        #[test]
        fn conv_transpose_is_the_adjoint(
            g in 1usize..=2, cig in 1usize..=3, cog in 1usize..=3,
            h in 1usize..=7, w in 1usize..=7, kh in 1usize..=3, kw in 1usize..=3,
            sh in 1usize..=3, sw in 1usize..=3, dh in 1usize..=2, dw in 1usize..=2,
            pads in proptest::array::uniform4(0usize..=3), seed in any::<u64>(),
        ) {
            let (c, cout) = (g * cig, g * cog);
            let hp = h + pads[0] + pads[2];
            let wp = w + pads[1] + pads[3];
            let (rh, rw) = ((kh - 1) * dh, (kw - 1) * dw);
            prop_assume!(hp > rh && wp > rw);
            let (ho, wo) = ((hp - rh - 1) / sh + 1, (wp - rw - 1) / sw + 1);
            let mut s = seed;
            let x: Vec<f64> = (0..c * h * w).map(|_| lcg(&mut s)).collect();
            let y: Vec<f64> = (0..cout * ho * wo).map(|_| lcg(&mut s)).collect();
            let wt: Vec<f64> = (0..cout * cig * kh * kw).map(|_| lcg(&mut s)).collect();
            let mut k = ConvK {
                weight: wt.clone(), bias: None, cout, cin: c, kh, kw,
                strides: [sh, sw], pads, dilations: [dh, dw], groups: g, packed: Vec::new(),
            };
            k.pack();
            let cx = naive_conv(&x, (c, h, w), &wt, cout, (kh, kw), [sh, sw], pads, [dh, dw], g, (ho, wo));
            // The engine kernel agrees with the naive loop (so the transposed kernel below
            // runs on a trusted convolution).
            let (ck, _) = ops::conv(&x, (c, h, w), &k, (ho, wo), &mut Vec::new(), false);
            for (a, b) in ck.iter().zip(&cx) {
                prop_assert!((a - b).abs() <= 1e-12);
            }
            let t = conv_transpose("n", &k, (c, h, w), (cout, ho, wo)).unwrap();
            let ty = t.apply(&y, &mut Vec::new());
            prop_assert_eq!(ty.len(), x.len());
            let lhs: f64 = cx.iter().zip(&y).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(&ty).map(|(a, b)| a * b).sum();
            prop_assert!((lhs - rhs).abs() <= 1e-12 * (1.0 + lhs.abs()), "{lhs} vs {rhs}");
        }
    }

    #[test]
    fn inconsistent_conv_shapes_name_the_node() {
        let mut k = ConvK {
            weight: vec![1.0; 9],
            bias: None,
            cout: 1,
            cin: 1,
            kh: 3,
            kw: 3,
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
            groups: 1,
            packed: Vec::new(),
        };
        k.pack();
        let e = conv_transpose("c7", &k, (1, 4, 4), (1, 3, 3))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "node \"c7\" (Conv): no first-order limit: output 3×3 is too large for the padded input 4×4 (kernel 3×3, strides 1,1, dilations 1,1)"
        );
    }
}
