//! The dataflow graph the encrypted executor runs for residual networks (the CIFAR ResNets of
//! He et al. 2016 with option-A shortcuts, the paper's §5 networks), compiled from the network
//! IR, and its level plan ([`plan_graph`]), made before any key.
//!
//! # Packing (the same family as `infer`'s chains)
//! Image b of a batch in the slot block [b·blk, (b+1)·blk), blk the power of two ≥ H·W of the
//! input, row width w₀ = W of the input; one ciphertext per channel; a feature map on a grid of
//! stride st: value (y, x) at slot st·(y·w₀ + x). Every slot off the grid holds 0 (each node
//! below keeps it so), which the channel sharing of the bootstraps needs.
//!
//! # Nodes
//! - **Conv** k×k, zero padding p ∈ {0, (k−1)/2}, stride s ∈ {1, 2}, with a following
//!   BatchNormalization folded into its weights and bias (y = γ(x − μ)/√(σ² + ε) + β per
//!   channel). Output (y′, x′) reads the input at (s·y′ − p + dy, s·x′ − p + dx): the
//!   convolution is computed at stride 1 and its output lives on the grid of stride s·st. The
//!   input rotated by st·((dy − p)·w₀ + (dx − p)) holds that value at the output slot
//!   st·s·(y′·w₀ + x′), or a value of a neighbouring row, image or the wrap-around when the read
//!   leaves the map (zero padding). So each rotated input is multiplied by the 0/1 mask
//!   M_{dy,dx} of the output positions whose read is inside the map (1 level: 9·C_in masked
//!   ciphertexts, 9 distinct plaintexts per convolution, encoded once), then the masked
//!   rotations are summed with scalar weights (lazy integer products, bias added, one rescale:
//!   1 level). Folding w·M into one plaintext per (co, ci, offset) would save a level but
//!   encode C_out·C_in·9 plaintexts per convolution (36,864 at 64 channels, ≈ 5 GiB at
//!   N = 2^16, level 4): the masks are shared, the weights are scalars. The masks also zero
//!   every off-grid slot of the output (the stride-2 subsampling comes free). The 8 rotations of
//!   an input are hoisted (one key-switching decomposition). **2 levels.**
//! - **Relu**: r̃_α (paper Eq. 4) as `u·(1 + p_α(u))` with u = x/B, bootstrapped inside the
//!   composite sign where the levels run out (`schedule::plan_relu`; u is bootstrapped as well
//!   when its level would leave the output below O − 1, O the bootstraps' output level, so
//!   that the next convolution fits), channels sharing
//!   ciphertexts for the bootstraps (`schedule::pack_offsets`: a 16×16 grid of stride 2 in a
//!   1024-slot block has 4 disjoint copies, an 8×8 grid of stride 4 has 16) and, when the
//!   batch has B < slots/blk images, across the m = ⌊slots/(B·blk)⌋ block groups of the batch
//!   (`schedule` module docs: block groups; Horner chains of rotations by ∓B·blk, two keys),
//!   and unpacked by masks (1 level). Packing across block groups needs the blocks B … of
//!   every value (noise-)zero: the input is encrypted with zeros there and every node keeps
//!   them so (the convolutions' masks, the bias, the subsampling's and the unpacking's masks
//!   cover the B blocks only; a ReLU without bootstrap maps 0 to 0; a residual Add sums two
//!   such values), so no extra mask is needed.
//! - **Slice** (starts 0, steps 1, 2, 2; option A's subsampling): the grid reinterpreted at
//!   stride 2·st, the other slots masked to 0 (1 level).
//! - **Pad** of channels only (option A's zero channels): free, channel c becomes
//!   c + planes/4 and the new channels are absent (zero) ciphertexts.
//! - **Add** (residual): both operands brought to the same scaling κ (below) and level.
//! - **GlobalAveragePool → Flatten → Gemm**: one dense layer whose weight w[o][c] is spread
//!   over the H·W grid positions of channel c as w[o][c]/(H·W) (`infer`'s dense layer: 1 level).
//!
//! # Scalings κ (as `infer`)
//! Each value is held as κ·(true value). A convolution absorbs 1/κ of its input and outputs
//! u = x/B for the ReLU it feeds (directly or through a residual Add); the ReLU outputs
//! 2·r̃_α(x)/B (κ = 2/B); Slice and Pad keep κ; an Add brings every operand whose κ differs
//! from its target (1/B of the ReLU it feeds, else its first operand's κ) there by one constant
//! multiplication (1 level: the shortcut, whose level is higher than the residual branch's in
//! ResNets); the dense layer absorbs 1/κ.

#![expect(
    clippy::indexing_slicing,
    reason = "indices within shapes validated by the compiler pass"
)]

use std::collections::{BTreeMap, HashMap};

use crate::nn::{Network, NodeId, Op, ValueId};

use super::layers::{grid, logit_spacing, unsupported, Geo};
use super::schedule::{
    block_groups, group_packing, pack_offsets, plan_relu, plan_relu_with, LayerSchedule, Schedule,
};
use super::CkksError;

/// An operation of the compiled graph.
#[derive(Debug, Clone)]
pub(crate) enum GOp {
    /// k×k convolution with zero padding `pad` and stride `stride`, BatchNorm folded;
    /// `w` is [co][ci][ky][kx].
    Conv {
        w: Vec<f64>,
        b: Vec<f64>,
        cout: usize,
        k: usize,
        pad: usize,
        stride: usize,
    },
    /// r̃_α with the range of node `id`.
    Relu { id: NodeId },
    /// Slice (0, 0, 0) step (1, 2, 2).
    Subsample,
    /// Channel c becomes c + `before`.
    ChannelPad { before: usize },
    /// Residual sum of two values.
    Add,
    /// (GlobalAveragePool →) Flatten → Gemm: `w` [out][c·h·w] over the input grid.
    Dense {
        w: Vec<f64>,
        b: Vec<f64>,
        out: usize,
    },
}

/// One node: its op, the values it reads (0 the graph input, i + 1 the output of node i) and
/// the geometry of its output.
#[derive(Debug, Clone)]
pub(crate) struct GNode {
    pub node: String,
    pub op: GOp,
    pub inputs: Vec<usize>,
    pub geo: Geo,
}

impl GNode {
    /// The ONNX op type the node came from.
    pub(crate) fn op_name(&self) -> &'static str {
        match self.op {
            GOp::Conv { .. } => "Conv",
            GOp::Relu { .. } => "Relu",
            GOp::Subsample => "Slice",
            GOp::ChannelPad { .. } => "Pad",
            GOp::Add => "Add",
            GOp::Dense { .. } => "Gemm",
        }
    }
}

/// The compiled graph: nodes in topological order, the input geometry (stride 1).
#[derive(Debug, Clone)]
pub(crate) struct Graph {
    pub nodes: Vec<GNode>,
    pub input: Geo,
}

impl Graph {
    /// Geometry of value v.
    pub(crate) fn geo(&self, v: usize) -> Geo {
        match v.checked_sub(1) {
            None => self.input,
            Some(i) => self.nodes[i].geo,
        }
    }

    /// Readers (node indices) of value v.
    pub(crate) fn readers(&self, v: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].inputs.contains(&v))
            .collect()
    }
}

/// What an IR value is in the compiled graph.
#[derive(Debug, Clone, Copy)]
enum GVal {
    /// A feature map (graph value).
    Map(usize),
    /// The global average of a feature map (before the Gemm).
    Pooled(usize),
}

fn bn_affine(b: &crate::nn::BatchNorm) -> (Vec<f64>, Vec<f64>) {
    crate::nn::bn_affine(b)
}

/// Append node `n` compiled to `op` and map its output to the new graph value.
fn push_node(
    nodes: &mut Vec<GNode>,
    val: &mut HashMap<ValueId, GVal>,
    n: &crate::nn::Node,
    op: GOp,
    inputs: Vec<usize>,
    geo: Geo,
) {
    nodes.push(GNode {
        node: n.name.clone(),
        op,
        inputs,
        geo,
    });
    val.insert(n.output, GVal::Map(nodes.len()));
}

/// Compile `net` into a [`Graph`] (module docs: the supported nodes).
///
/// # Errors
/// [`CkksError::Unsupported`] naming the first node outside the supported set.
#[expect(clippy::too_many_lines, reason = "one match arm per supported op")]
pub(crate) fn compile_graph(net: &Network) -> Result<Graph, CkksError> {
    let (c0, h0, w0) = net
        .input_shape()
        .chw()
        .ok_or_else(|| unsupported("input", "-", "input must have shape [C, H, W]"))?;
    let input = Geo {
        c: c0,
        h: h0,
        w: w0,
        st: 1,
    };
    let mut readers: HashMap<ValueId, usize> = HashMap::new();
    for n in &net.nodes {
        for &v in &n.inputs {
            *readers.entry(v).or_insert(0) += 1;
        }
    }
    let mut nodes: Vec<GNode> = Vec::new();
    let mut val: HashMap<ValueId, GVal> = HashMap::new();
    val.insert(net.input, GVal::Map(0));
    let geo_of = |nodes: &[GNode], v: usize| match v.checked_sub(1) {
        None => input,
        Some(i) => nodes[i].geo,
    };
    for (id, n) in net.nodes.iter().enumerate() {
        let op = n.op.op_type();
        let bad = |reason: &str| unsupported(&n.name, op, reason);
        let map_in = |k: usize| -> Result<usize, CkksError> {
            match n.inputs.get(k).and_then(|v| val.get(v)) {
                Some(GVal::Map(g)) => Ok(*g),
                Some(GVal::Pooled(_)) => {
                    Err(bad("its input is a pooled vector, not a feature map"))
                }
                None => Err(bad("its input is not produced by a supported node")),
            }
        };
        let arity = match &n.op {
            Op::Add { constant: None } => 2,
            _ => 1,
        };
        if n.inputs.len() != arity {
            return Err(bad(&format!(
                "expected {arity} input(s), got {}",
                n.inputs.len()
            )));
        }
        let out_chw = net.shape(n.output).chw();
        match &n.op {
            Op::Conv(c) => {
                let x = map_in(0)?;
                let g = geo_of(&nodes, x);
                let (co, ci, kh, kw) = match c.weight.dims.as_slice() {
                    [a, b, c, e] => (*a, *b, *c, *e),
                    _ => return Err(bad("weight must be 4-D")),
                };
                let p = c.pads[0];
                let s = c.strides[0];
                if c.groups != 1
                    || c.dilations != [1, 1]
                    || kh != kw
                    || kh % 2 == 0
                    || c.pads.iter().any(|&q| q != p)
                    || (p != 0 && p != (kh - 1) / 2)
                    || c.strides[1] != s
                    || !(s == 1 || s == 2)
                {
                    return Err(bad(
                        "only square odd kernels, one group, dilation 1, equal pads of 0 or (k−1)/2 \
                         and equal strides of 1 or 2",
                    ));
                }
                if ci != g.c || g.h + 2 * p < kh || g.w + 2 * p < kh {
                    return Err(bad(&format!(
                        "weight [{co}, {ci}, {kh}, {kw}] does not fit the input [{}, {}, {}]",
                        g.c, g.h, g.w
                    )));
                }
                let geo = Geo {
                    c: co,
                    h: (g.h + 2 * p - kh) / s + 1,
                    w: (g.w + 2 * p - kh) / s + 1,
                    st: g.st * s,
                };
                if out_chw != Some((geo.c, geo.h, geo.w)) {
                    return Err(bad("output shape differs from the convolution's"));
                }
                nodes.push(GNode {
                    node: n.name.clone(),
                    op: GOp::Conv {
                        w: c.weight.data.iter().map(|&v| f64::from(v)).collect(),
                        b: c.bias.as_ref().map_or_else(
                            || vec![0.0; co],
                            |b| b.iter().map(|&v| f64::from(v)).collect(),
                        ),
                        cout: co,
                        k: kh,
                        pad: p,
                        stride: s,
                    },
                    inputs: vec![x],
                    geo,
                });
                val.insert(n.output, GVal::Map(nodes.len()));
            }
            Op::BatchNorm(bn) => {
                // Fold into the convolution producing the input when it is its only reader.
                let x = map_in(0)?;
                let sole = n.inputs.first().and_then(|v| readers.get(v)) == Some(&1);
                let last = nodes.len();
                let conv = match (x.checked_sub(1).map(|i| &mut nodes[i]), sole) {
                    (
                        Some(GNode {
                            op: GOp::Conv { w, b, cout, .. },
                            ..
                        }),
                        true,
                    ) if x == last => Some((w, b, *cout)),
                    _ => None,
                };
                let Some((w, b, cout)) = conv else {
                    return Err(bad(
                        "BatchNormalization must directly follow a convolution (it is folded into it)",
                    ));
                };
                let (scale, shift) = bn_affine(bn);
                if scale.len() != cout {
                    return Err(bad(&format!(
                        "{} channels, the convolution has {cout}",
                        scale.len()
                    )));
                }
                let per = w.len() / cout.max(1);
                for (o, (sc, sh)) in scale.iter().zip(&shift).enumerate() {
                    for v in &mut w[o * per..(o + 1) * per] {
                        *v *= sc;
                    }
                    b[o] = b[o] * sc + sh;
                }
                val.insert(n.output, GVal::Map(x));
            }
            Op::Relu => {
                let x = map_in(0)?;
                let geo = geo_of(&nodes, x);
                push_node(&mut nodes, &mut val, n, GOp::Relu { id }, vec![x], geo);
            }
            Op::Slice(s) => {
                let x = map_in(0)?;
                let g = geo_of(&nodes, x);
                let geo = Geo {
                    c: g.c,
                    h: g.h / 2,
                    w: g.w / 2,
                    st: g.st * 2,
                };
                if s.starts != [0, 0, 0]
                    || s.steps != [1, 2, 2]
                    || g.h % 2 != 0
                    || g.w % 2 != 0
                    || out_chw != Some((geo.c, geo.h, geo.w))
                {
                    return Err(bad(
                        "only the option-A subsampling (starts 0, steps 1, 2, 2 of an even map)",
                    ));
                }
                push_node(&mut nodes, &mut val, n, GOp::Subsample, vec![x], geo);
            }
            Op::Pad(p) => {
                let x = map_in(0)?;
                let g = geo_of(&nodes, x);
                let (Some(&before), Some(&after)) = (p.begin.first(), p.end.first()) else {
                    return Err(bad("padding must cover the three per-sample axes"));
                };
                if p.value != 0.0
                    || p.begin.len() != 3
                    || p.end.len() != 3
                    || p.begin[1..] != [0, 0]
                    || p.end[1..] != [0, 0]
                {
                    return Err(bad("only zero padding of channels (option-A shortcut)"));
                }
                let geo = Geo {
                    c: g.c + before + after,
                    ..g
                };
                push_node(
                    &mut nodes,
                    &mut val,
                    n,
                    GOp::ChannelPad { before },
                    vec![x],
                    geo,
                );
            }
            Op::Add { constant: None } => {
                let (a, b) = (map_in(0)?, map_in(1)?);
                let (ga, gb) = (geo_of(&nodes, a), geo_of(&nodes, b));
                if (ga.c, ga.h, ga.w, ga.st) != (gb.c, gb.h, gb.w, gb.st) {
                    return Err(bad(&format!(
                        "operands on different grids ([{}, {}, {}] stride {} and [{}, {}, {}] stride {})",
                        ga.c, ga.h, ga.w, ga.st, gb.c, gb.h, gb.w, gb.st
                    )));
                }
                push_node(&mut nodes, &mut val, n, GOp::Add, vec![a, b], ga);
            }
            Op::GlobalAvgPool => {
                let x = map_in(0)?;
                val.insert(n.output, GVal::Pooled(x));
            }
            Op::Flatten | Op::Reshape | Op::Identity => {
                let v = n
                    .inputs
                    .first()
                    .and_then(|v| val.get(v))
                    .copied()
                    .ok_or_else(|| bad("its input is not produced by a supported node"))?;
                val.insert(n.output, v);
            }
            Op::Gemm(l) | Op::MatMul(l) => {
                let v = n
                    .inputs
                    .first()
                    .and_then(|v| val.get(v))
                    .copied()
                    .ok_or_else(|| bad("its input is not produced by a supported node"))?;
                let (out, nin) = match l.weight.dims.as_slice() {
                    [a, b] => (*a, *b),
                    _ => return Err(bad("weight must be 2-D")),
                };
                let wd: Vec<f64> = l.weight.data.iter().map(|&x| f64::from(x)).collect();
                let (x, w) = match v {
                    GVal::Pooled(x) => {
                        let g = geo_of(&nodes, x);
                        if nin != g.c {
                            return Err(bad(&format!(
                                "weight [{out}, {nin}] after pooling {} channels",
                                g.c
                            )));
                        }
                        let hw = g.h * g.w;
                        let inv = 1.0 / hw as f64;
                        let w = (0..out)
                            .flat_map(|o| {
                                let wd = &wd;
                                (0..g.c).flat_map(move |c| {
                                    std::iter::repeat_n(wd[o * nin + c] * inv, hw)
                                })
                            })
                            .collect();
                        (x, w)
                    }
                    GVal::Map(x) => {
                        let g = geo_of(&nodes, x);
                        if nin != g.c * g.h * g.w {
                            return Err(bad(&format!(
                                "weight [{out}, {nin}] on a [{}, {}, {}] map",
                                g.c, g.h, g.w
                            )));
                        }
                        (x, wd)
                    }
                };
                let g = geo_of(&nodes, x);
                nodes.push(GNode {
                    node: n.name.clone(),
                    op: GOp::Dense {
                        w,
                        b: l.bias.as_ref().map_or_else(
                            || vec![0.0; out],
                            |b| b.iter().map(|&x| f64::from(x)).collect(),
                        ),
                        out,
                    },
                    inputs: vec![x],
                    geo: Geo {
                        c: out,
                        h: 1,
                        w: 1,
                        st: g.st,
                    },
                });
                val.insert(n.output, GVal::Map(nodes.len()));
            }
            _ => {
                return Err(bad(
                    "operator not supported by the encrypted graph executor (Conv, \
                     BatchNormalization, Relu, Slice, Pad, Add, GlobalAveragePool, Flatten, Gemm)",
                ))
            }
        }
    }
    let dense = nodes
        .iter()
        .filter(|n| matches!(n.op, GOp::Dense { .. }))
        .count();
    match (val.get(&net.output), nodes.last()) {
        (
            Some(GVal::Map(v)),
            Some(GNode {
                op: GOp::Dense { .. },
                ..
            }),
        ) if *v == nodes.len() && dense == 1 => {}
        _ => {
            return Err(unsupported(
                "output",
                "-",
                "the graph must end with its only Gemm (the logits)",
            ))
        }
    }
    Ok(Graph { nodes, input })
}

/// The rotation steps st·((dy − p)·w₀ + (dx − p)) of a k×k convolution with padding p on a
/// grid of stride st (row w₀), in (dy, dx) row-major order; step 0 is the kernel centre.
pub(crate) fn conv_steps(k: usize, pad: usize, st: usize, w0: usize) -> Vec<i64> {
    let (st, w0, p) = (st as i64, w0 as i64, pad as i64);
    (0..k as i64)
        .flat_map(|dy| (0..k as i64).map(move |dx| st * ((dy - p) * w0 + (dx - p))))
        .collect()
}

/// Whether two scalings are the same (they are computed by the same expressions).
pub(crate) fn same_kappa(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// The plan of an encrypted graph run, made before any key (module docs).
#[derive(Debug, Clone)]
pub(crate) struct GraphPlan {
    /// Levels and bootstraps per node.
    pub schedule: Schedule,
    /// κ of each value (0 the input).
    pub kappa: Vec<f64>,
    /// The rotation keys (step, highest level used at).
    pub keys: Vec<(i64, usize)>,
    /// Levels the graph needs without bootstrapping (the longest path).
    pub levels_needed: usize,
    /// Levels per node without bootstrapping (node, op, levels).
    pub level_plan: Vec<(String, String, usize)>,
    /// Logit spacing of the dense layer.
    pub spacing: usize,
    /// Key switches per batch by level (rotations and relinearisations outside bootstraps).
    pub key_switches: BTreeMap<usize, usize>,
    /// Products of a ciphertext by a plaintext constant or vector per batch, by level.
    pub const_mults: BTreeMap<usize, usize>,
}

/// Where a range B is missing.
fn range_of(ranges: &BTreeMap<NodeId, f64>, id: NodeId, node: &str) -> Result<f64, CkksError> {
    ranges
        .get(&id)
        .copied()
        .filter(|b| b.is_finite() && *b > 0.0)
        .ok_or_else(|| unsupported(node, "Relu", "no finite range B > 0 for this node"))
}

/// κ of the value a ReLU reads when its producer (a convolution or a residual Add) feeds only
/// that ReLU: 1/B; else None.
fn relu_target(g: &Graph, v: usize, ranges: &BTreeMap<NodeId, f64>) -> Option<f64> {
    match g.readers(v).as_slice() {
        [r] => match g.nodes[*r].op {
            GOp::Relu { id } => ranges.get(&id).map(|b| 1.0 / b),
            _ => None,
        },
        _ => None,
    }
}

/// Plan levels, bootstraps, scalings and keys of `g` (module docs) from the top level `top`,
/// the composite sign's component depths `depths` (and their non-scalar multiplications
/// `mults`), the bootstraps' output level `boot_out` (None: no bootstrapping), the image
/// block `block`, row `w0`, the images of a batch `images` and the slots `slots` (the
/// bootstraps pack channels across the block groups of the batch: `schedule` module docs).
///
/// # Errors
/// [`CkksError::NotEnoughLevels`] naming the node that does not fit;
/// [`CkksError::Unsupported`] for a missing range or no logit spacing.
#[expect(clippy::too_many_arguments, reason = "the plan's independent inputs")]
#[expect(clippy::too_many_lines, reason = "one arm per op")]
pub(crate) fn plan_graph(
    g: &Graph,
    ranges: &BTreeMap<NodeId, f64>,
    depths: &[usize],
    mults: usize,
    top: usize,
    boot_out: Option<usize>,
    block: usize,
    w0: usize,
    images: usize,
    slots: usize,
) -> Result<GraphPlan, CkksError> {
    let m = block_groups(slots, block, images);
    let relu_depth = depths.iter().sum::<usize>() + 1;
    let mut level = vec![top; g.nodes.len() + 1];
    let mut depth = vec![0usize; g.nodes.len() + 1];
    let mut kappa = vec![1.0f64; g.nodes.len() + 1];
    let mut keys: Vec<(i64, usize)> = Vec::new();
    let mut ks: BTreeMap<usize, usize> = BTreeMap::new();
    let mut cm: BTreeMap<usize, usize> = BTreeMap::new();
    let mut layers = Vec::with_capacity(g.nodes.len());
    let mut level_plan = Vec::with_capacity(g.nodes.len());
    let mut total = 0;
    let mut spacing = 0;
    for (i, n) in g.nodes.iter().enumerate() {
        let op = n.op_name();
        let need = |k: usize, l: usize| {
            l.checked_sub(k).ok_or_else(|| CkksError::NotEnoughLevels {
                what: format!("{op} node {:?} (its input is never bootstrapped)", n.node),
                needed: k,
                available: l,
            })
        };
        let x = n.inputs.first().copied().unwrap_or(0);
        let (lin, gin) = (level[x], g.geo(x));
        let mut relu = None;
        let mut offsets = Vec::new();
        let (mut groups, mut stride) = (1, 0);
        let mut cts = n.geo.c;
        let mut boots = 0;
        let mut add_depth = 0;
        let (lout, cost, kout) = match &n.op {
            GOp::Conv { k, pad, cout, .. } => {
                let lout = need(2, lin)?;
                *cm.entry(lin).or_insert(0) += gin.c * k * k;
                *cm.entry(lin - 1).or_insert(0) += gin.c * cout * k * k;
                let mut steps = conv_steps(*k, *pad, gin.st, w0);
                steps.retain(|&s| s != 0);
                *ks.entry(lin).or_insert(0) += steps.len() * gin.c;
                keys.extend(steps.iter().map(|&s| (s, lin)));
                let kout = match g.readers(i + 1).as_slice() {
                    [r] if matches!(g.nodes[*r].op, GOp::Add) => {
                        relu_target(g, r + 1, ranges).unwrap_or(1.0)
                    }
                    _ => relu_target(g, i + 1, ranges).unwrap_or(1.0),
                };
                (lout, 2, kout)
            }
            GOp::Relu { id } => {
                let b = range_of(ranges, *id, &n.node)?;
                let scaled = !same_kappa(kappa[x], 1.0 / b);
                let lu = if scaled { need(1, lin)? } else { lin };
                let mut r = plan_relu(lu, depths, boot_out)?;
                // A bootstrapped ReLU keeps u at its level for the product; when u is low the
                // output would be too, leaving the next convolution no room: bootstrap u too.
                if let Some(o) = boot_out {
                    if r.bootstraps() > 0 && r.level_out + 1 < o {
                        let forced = plan_relu_with(lu, depths, boot_out, true)?;
                        if forced.level_out > r.level_out {
                            r = forced;
                        }
                    }
                }
                let mut lout = r.level_out;
                cts = gin.c;
                if r.bootstraps() > 0 {
                    offsets = pack_offsets(&grid(gin, w0), block);
                    let k = offsets.len().max(1);
                    (groups, cts) = group_packing(gin.c, k, m);
                    boots = cts * r.bootstraps();
                    lout = need(1, lout)?;
                    let moved = (0..gin.c).filter(|c| offsets[c % k] != 0).count();
                    for &o in offsets.iter().filter(|&&o| o != 0) {
                        keys.push((-(o as i64), lu));
                        keys.push((o as i64, lout));
                    }
                    // The Horner chains over the block groups: ⌈C/k⌉ − cts rotations each way,
                    // by −B·block at u's level (pack) and +B·block before the mask (unpack).
                    let chained = gin.c.div_ceil(k) - cts;
                    if groups > 1 {
                        stride = images.max(1) * block;
                        keys.push((-(stride as i64), lu));
                        keys.push((stride as i64, r.level_out));
                    }
                    *ks.entry(lu).or_insert(0) += moved + chained;
                    *ks.entry(r.level_out).or_insert(0) += chained;
                    *ks.entry(lout).or_insert(0) += moved;
                }
                *ks.entry(r.level_out).or_insert(0) += (mults + 1) * cts;
                relu = Some(r);
                (lout, relu_depth + usize::from(scaled), 2.0 / b)
            }
            GOp::Subsample => (need(1, lin)?, 1, kappa[x]),
            GOp::ChannelPad { .. } => (lin, 0, kappa[x]),
            GOp::Add => {
                let t = relu_target(g, i + 1, ranges).unwrap_or(kappa[x]);
                let mut lout = usize::MAX;
                let mut cost = 0;
                for &v in &n.inputs {
                    let c = usize::from(!same_kappa(kappa[v], t));
                    cost = cost.max(c);
                    add_depth = add_depth.max(depth[v] + c);
                    let l = level[v]
                        .checked_sub(c)
                        .ok_or_else(|| CkksError::NotEnoughLevels {
                            what: format!("Add node {:?} (rescaling an operand)", n.node),
                            needed: c,
                            available: level[v],
                        })?;
                    lout = lout.min(l);
                }
                (lout, cost, t)
            }
            GOp::Dense { out, .. } => {
                if !gin.h.is_power_of_two() || !gin.w.is_power_of_two() {
                    return Err(unsupported(
                        &n.node,
                        "Gemm",
                        &format!(
                            "input [{}, {}, {}] must have power-of-two sides (grid sums by rotations)",
                            gin.c, gin.h, gin.w
                        ),
                    ));
                }
                let lout = need(1, lin)?;
                *cm.entry(lin).or_insert(0) += gin.c * out;
                let l1 = lout;
                spacing = logit_spacing(&grid(gin, w0), *out, block).ok_or_else(|| {
                    unsupported(&n.node, "Gemm", "no logit spacing fits the image block")
                })?;
                let mut s = 1;
                let mut r = 0;
                while s < gin.w {
                    keys.push(((gin.st * s) as i64, l1));
                    s *= 2;
                    r += 1;
                }
                let mut s = 1;
                while s < gin.h {
                    keys.push(((gin.st * w0 * s) as i64, l1));
                    s *= 2;
                    r += 1;
                }
                keys.push((-(spacing as i64), l1));
                *ks.entry(l1).or_insert(0) += r + out.saturating_sub(1);
                (lout, 1, 1.0)
            }
        };
        level[i + 1] = lout;
        kappa[i + 1] = kout;
        depth[i + 1] = if matches!(n.op, GOp::Add) {
            add_depth
        } else {
            n.inputs.iter().map(|&v| depth[v]).max().unwrap_or(0) + cost
        };
        level_plan.push((n.node.clone(), op.to_string(), cost));
        total += boots;
        layers.push(LayerSchedule {
            node: n.node.clone(),
            op: op.to_string(),
            level_in: lin,
            level_out: lout,
            ciphertexts: cts,
            relu,
            pack_offsets: offsets,
            block_groups: groups,
            group_stride: stride,
            bootstraps: boots,
        });
    }
    // One key per rotation (mod the slots): a step s and s ± slots are the same Galois
    // element (−slots/2 and slots/2 when two block groups fill the slots), written in
    // (−slots/2, slots/2].
    let sl = slots.max(1) as i64;
    let mut uniq: BTreeMap<i64, usize> = BTreeMap::new();
    for (s, l) in keys {
        let s = s.rem_euclid(sl);
        let s = if 2 * s > sl { s - sl } else { s };
        if s != 0 {
            let e = uniq.entry(s).or_insert(l);
            *e = (*e).max(l);
        }
    }
    Ok(GraphPlan {
        schedule: Schedule {
            top,
            boot_output_level: boot_out,
            layers,
            bootstraps: total,
        },
        kappa,
        keys: uniq.into_iter().collect(),
        levels_needed: depth.iter().copied().max().unwrap_or(0),
        level_plan,
        spacing,
        key_switches: ks,
        const_mults: cm,
    })
}
