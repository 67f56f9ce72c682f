//! [`BoundedNetwork`]: a network prepared for error propagation — per-node weights and
//! rigorous norms, the block decomposition, the Theorem 3/4 global bound and the per-input
//! elementwise bound.
//!
//! # Rounding
//! Every bound is computed in f64 rounded upward ([`super::round`]). Norms ‖A‖∞ are maximum
//! row sums of |weights| (f32 values, exact in f64) accumulated with upward rounding; batch
//! normalisation y = γ(x − μ)/√(σ² + ε) + β is folded in interval arithmetic (`inari`,
//! outward rounding): scale s ∈ S = γ/√(σ² + ε), shift t ∈ T = β − μ·S, and ‖·‖ uses sup |S|.
//!
//! # Per-input propagation (beyond the paper)
//! For an input x, three quantities flow through the graph for every value v:
//! - v̂, the f64 forward pass of F (computed here with the midpoints of the folded weights);
//! - r_v, a scalar a-priori enclosure ‖v − v̂‖∞ ≤ r_v of the *exact* F's value, from the
//!   classical bound |fl(Σ a_i b_i) − Σ a_i b_i| ≤ γ_n·Σ|a_i b_i| (Higham §3.1), applied as
//!   γ_{n+1}·(‖A‖∞·‖v̂‖∞ + ‖b‖∞) per affine node (no extra GEMM), plus the radii of the
//!   interval-folded batch-norm weights;
//! - e_v, an elementwise bound |v^α − v| ≤ e_v between F^α and F (exact arithmetic):
//!   linear maps send e to |A|·e (computed by a GEMM with |A| and scaled by (1 − γ_n)^−1,
//!   rounded up); Add sums; ReLU at entry i with pre-activation enclosure
//!   [ŷ_i − r − e_i, ŷ_i + r + e_i] ∋ y_i, y^α_i gives
//!   |r̃(y^α_i) − ReLU(y_i)| ≤ |r̃(y^α_i) − ReLU(y^α_i)| + |ReLU(y^α_i) − ReLU(y_i)|
//!   ≤ (B/2)·max{condition-(1) box bounds over |y|/B ∈ that interval} + (0 if ŷ_i + r + e_i ≤ 0,
//!   else e_i); max-pooling adds the window's max e and B·(Theorem 2 / Eq. 7 constant);
//!   softmax maps e to ‖e‖∞/2.
//!
//! Range check: every ReLU / max-pool input interval [ŷ − r − e, ŷ + r + e] must lie in
//! [−B, B] (the hypothesis of Theorem 1 / 2 scaled); otherwise the input gets no certificate
//! and is counted (`out_of_range`), never silently dropped.
//!
//! Tightness: the elementwise propagation is non-relational (|A|·e ignores the cancellations
//! of A·δ), so in deep networks the bound compounds by roughly the row sums of |W| per
//! layer; on the CIFAR ResNets it grows ~20–40× per residual block and exceeds the slack
//! B − |ŷ| − r after 2–5 blocks (of 12–24), so the range check fails for every input at
//! α ≤ 14, while on shallow networks (the MNIST CNNs) it certifies most inputs. A relational
//! (zonotope / back-substitution) propagation would be needed there. [`BlockTrace`] records,
//! per block, the bound, the slack and the excess (r + e)/(B − |ŷ|) at the tightest
//! activation input, and with early exit ([`BoundedNetwork::per_input_with`]) an input
//! stops at its first failing block.

use std::collections::BTreeMap;
use std::sync::Arc;

use inari::Interval;
use serde::{Deserialize, Serialize};

use super::block::{decompose, Block, Shortcut};
use super::polyerr::{LocalRelu, PolyErrors};
use super::round::{abs_sum_ru, add_ru, gamma_ru, mul_ru, sum_factor_ru, sum_up, Ulp, U};
use super::BoundsError;
use crate::nn::ops::{self, ConvK};
use crate::nn::{Network, NodeId, Op, Pool};

/// Per-node data for propagation.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per node, built once per network"
)]
enum Prep {
    Conv {
        k: ConvK<f64>,
        kabs: ConvK<f64>,
        /// Row abs-sums ‖W_o‖₁ per output channel, rounded up.
        rows: Vec<f64>,
        norm: f64,
        kdim: usize,
        bmax: f64,
    },
    Bn {
        s_mid: Vec<f64>,
        t_mid: Vec<f64>,
        /// sup |S_c| per channel.
        s_mag: Vec<f64>,
        norm: f64,
        rad_s: f64,
        rad_t: f64,
        s_mid_max: f64,
        t_mid_max: f64,
    },
    Linear {
        w: Vec<f64>,
        wabs: Vec<f64>,
        m: usize,
        k: usize,
        bias: Option<Vec<f64>>,
        rows: Vec<f64>,
        norm: f64,
        bmax: f64,
    },
    AddConst {
        c: Vec<f64>,
        cmax: f64,
    },
    Pad {
        begin: Vec<usize>,
        value: f64,
    },
    Other,
}

/// The f32 tensor widened to binary64 (exact).
pub(super) fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn iv(x: f64) -> Interval {
    Interval::try_from((x, x)).unwrap_or(Interval::ENTIRE)
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |a, x| a.max(x.abs()))
}

fn prepare(net: &Network, id: NodeId, op: &Op) -> Result<Prep, BoundsError> {
    let name = || {
        net.nodes
            .get(id)
            .map(|n| n.name.clone())
            .unwrap_or_default()
    };
    Ok(match op {
        Op::Conv(c) => {
            let d = &c.weight.dims;
            let cout = d.first().copied().unwrap_or(0);
            let w = f64s(&c.weight.data);
            let kdim = w.len().checked_div(cout).unwrap_or(0);
            let rows: Vec<f64> = w
                .chunks(kdim.max(1))
                .map(|r| abs_sum_ru(r.iter().copied()))
                .collect();
            let k = ConvK::from_conv(c, w.clone(), c.bias.as_deref().map(f64s));
            let mut kabs = k.clone();
            kabs.weight = w.iter().map(|x| x.abs()).collect();
            kabs.bias = None;
            kabs.pack();
            Prep::Conv {
                norm: rows.iter().fold(0.0f64, |a, &b| a.max(b)),
                rows,
                kdim,
                bmax: c.bias.as_deref().map_or(0.0, |b| max_abs(&f64s(b))),
                k,
                kabs,
            }
        }
        Op::BatchNorm(b) => {
            let (mut s_mid, mut t_mid, mut s_mag) = (Vec::new(), Vec::new(), Vec::new());
            let (mut rad_s, mut rad_t) = (0.0f64, 0.0f64);
            for (((g, be), m), v) in b.gamma.iter().zip(&b.beta).zip(&b.mean).zip(&b.var) {
                // S = γ/√(σ² + ε), T = β − μ·S in outward-rounded interval arithmetic.
                let s = iv(f64::from(*g)) / (iv(f64::from(*v)) + iv(f64::from(b.eps))).sqrt();
                let t = iv(f64::from(*be)) - iv(f64::from(*m)) * s;
                if s.is_empty() || t.is_empty() || !s.mag().is_finite() || !t.mag().is_finite() {
                    return Err(BoundsError::Unsupported {
                        node: name(),
                        op: "BatchNormalization".into(),
                        reason: format!(
                            "scale gamma/sqrt(var + eps) is not finite (gamma {g}, var {v}, eps {})",
                            b.eps
                        ),
                    });
                }
                let (sm, tm) = (s.mid(), t.mid());
                rad_s = rad_s.max((s.sup() - sm).up()).max((sm - s.inf()).up());
                rad_t = rad_t.max((t.sup() - tm).up()).max((tm - t.inf()).up());
                s_mid.push(sm);
                t_mid.push(tm);
                s_mag.push(s.mag());
            }
            Prep::Bn {
                norm: s_mag.iter().fold(0.0f64, |a, &b| a.max(b)),
                s_mid_max: max_abs(&s_mid),
                t_mid_max: max_abs(&t_mid),
                s_mid,
                t_mid,
                s_mag,
                rad_s,
                rad_t,
            }
        }
        Op::Gemm(l) | Op::MatMul(l) => {
            let m = l.weight.dims.first().copied().unwrap_or(0);
            let k = l.weight.dims.get(1).copied().unwrap_or(0);
            let w = f64s(&l.weight.data);
            let rows: Vec<f64> = w
                .chunks(k.max(1))
                .map(|r| abs_sum_ru(r.iter().copied()))
                .collect();
            Prep::Linear {
                wabs: w.iter().map(|x| x.abs()).collect(),
                w,
                m,
                k,
                bias: l.bias.as_deref().map(f64s),
                norm: rows.iter().fold(0.0f64, |a, &b| a.max(b)),
                rows,
                bmax: l.bias.as_deref().map_or(0.0, |b| max_abs(&f64s(b))),
            }
        }
        Op::Add { constant: Some(t) } => {
            let c = f64s(&t.data);
            Prep::AddConst {
                cmax: max_abs(&c),
                c,
            }
        }
        Op::Pad(p) => Prep::Pad {
            begin: p.begin.clone(),
            value: f64::from(p.value),
        },
        _ => Prep::Other,
    })
}

/// One row of the per-block table: the block's propagation function is the affine map
/// E(e) = gain·e + added (Lemma 1; for a residual block E(e) = E_ReLU(E_S(e) + E_G(e))).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockRow {
    /// Position in the decomposition (0-based).
    pub index: usize,
    /// `linear`, `relu`, `maxpool`, `softmax`, `clip`, `residual`.
    pub kind: String,
    /// First and last node names.
    pub nodes: String,
    /// Shortcut kind of a residual block.
    pub shortcut: Option<Shortcut>,
    /// Gain of E (‖A‖∞ for a linear block, 1 for ReLU / max-pool, ½ for softmax), rounded up.
    #[serde(deserialize_with = "super::nan_f64")]
    pub gain: f64,
    /// Error added by the block when its input is exact (B·s for ReLU), rounded up.
    #[serde(deserialize_with = "super::nan_f64")]
    pub added: f64,
    /// Upper bound of ‖F^α − F‖∞ after this block (Theorem 3 composition), rounded up.
    #[serde(deserialize_with = "super::nan_f64")]
    pub cumulative: f64,
}

/// The Theorem 3/4 bound for one α: ‖F^α(x) − F(x)‖∞ ≤ `bound` = C·2^−α for every input
/// whose activation inputs under F^α stay in [−B, B] (certified: outward rounded, built from
/// checked certificates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalBound {
    /// Precision parameter α.
    pub alpha: u32,
    /// Certified s = sup |r_α − ReLU| on [−1, 1] used for every ReLU.
    #[serde(deserialize_with = "super::nan_f64")]
    pub relu_sup: f64,
    /// The per-block table.
    pub blocks: Vec<BlockRow>,
    /// The bound on ‖F^α(x) − F(x)‖∞, rounded up.
    #[serde(deserialize_with = "super::nan_f64")]
    pub bound: f64,
    /// Product of the block gains: for an input error ‖δ‖∞ ≤ e (F^α at x + δ, F at x) the
    /// bound is E(e) = gain·e + bound.
    #[serde(deserialize_with = "super::nan_f64")]
    pub gain: f64,
    /// C = bound·2^α (Theorem 4), rounded up.
    #[serde(deserialize_with = "super::nan_f64")]
    pub c: f64,
}

/// The per-input certificate of one input x (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerInputBound {
    /// Upper bound of ‖F^α(x) − F(x)‖∞ (max of `elementwise`), rounded up; certified only
    /// when `in_range`.
    pub bound: f64,
    /// Upper bounds of |F^α(x)_i − F(x)_i| per output, rounded up.
    pub elementwise: Vec<f64>,
    /// The f64 forward pass F̂(x).
    pub output: Vec<f64>,
    /// ‖F(x) − F̂(x)‖∞ ≤ `output_radius` (exact F vs this f64 pass), rounded up.
    pub output_radius: f64,
    /// Number of ReLU / max-pool input entries whose interval leaves [−B, B].
    pub out_of_range: usize,
    /// Whether every activation input passed the range check (the bound is then certified).
    pub in_range: bool,
    /// Index of the largest output of F̂(x).
    pub top1: usize,
    /// Certified: F and F^α both predict `top1` (in range, and for every j ≠ top1
    /// F̂_top − r − e_top > F̂_j + r + e_j, directed rounding).
    pub unchanged: bool,
    /// Index of the first block whose range check failed (`None` when in range).
    pub first_failure: Option<usize>,
    /// Whether the whole graph was propagated. With early exit an input that fails the range
    /// check stops after its first failing block: then `bound` is +∞, `elementwise` and
    /// `output` are empty, `output_radius` is +∞ and `top1` is meaningless (0).
    pub complete: bool,
    /// Per-block diagnostic of the blocks propagated, in order.
    pub trace: Vec<BlockTrace>,
}

/// Per-block diagnostic of one input's per-input propagation (where and by how much the
/// range check is lost). Every value of the blocks before the first failing block is a
/// certified bound; in the failing block, `slack`, `excess` and `out_of_range` are still
/// computed from certified inputs, while `e_max` is only formal (the hypothesis |y| ≤ B of
/// the polynomial's error bound fails there). Blocks after it are not propagated (early
/// exit) or, without early exit, only formal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockTrace {
    /// Block index in the decomposition.
    pub block: usize,
    /// max_i e_i of the elementwise bound |F^α − F| at the block's output, rounded up.
    pub e_max: f64,
    /// The scalar enclosure r of the f64 forward pass at the block's output, rounded up.
    pub r: f64,
    /// min over the block's ReLU / max-pool input entries of the range slack
    /// B − |ŷ_i| − r − e_i (negative: the range check fails); `None` without activations.
    pub slack: Option<f64>,
    /// max over the same entries of (r + e_i)/(B − |ŷ_i|) (+∞ when |ŷ_i| ≥ B): the range
    /// check passes iff it is ≤ 1 (up to rounding), so it is the factor by which the bound
    /// would have to shrink for this block to pass; `None` without activations.
    pub excess: Option<f64>,
    /// Entries of this block whose interval leaves [−B, B].
    pub out_of_range: usize,
}

/// A network prepared for error propagation (see the module docs).
#[derive(Debug, Clone)]
pub struct BoundedNetwork {
    net: Arc<Network>,
    preps: Vec<Prep>,
    blocks: Vec<Block>,
    last_use: Vec<Option<NodeId>>,
    /// Top-level block of each node (`None` for Flatten / Reshape / … outside blocks).
    block_of: Vec<Option<usize>>,
    /// Whether the node is the last (in graph order) of its block: its output is the block's.
    block_end: Vec<bool>,
}

/// State of one value in the per-input pass.
#[derive(Debug, Clone)]
struct Val {
    x: Vec<f64>,
    e: Vec<f64>,
    /// Whether every entry of `e` is 0 (skips GEMMs before the first activation).
    zero: bool,
    r: f64,
    xmax: f64,
}

fn node_name(net: &Network, id: NodeId) -> String {
    net.nodes
        .get(id)
        .map(|n| n.name.clone())
        .unwrap_or_else(|| format!("#{id}"))
}

impl BoundedNetwork {
    /// Decompose and prepare a network.
    ///
    /// # Errors
    /// As [`decompose`]; [`BoundsError::Unsupported`] for a batch norm with a non-finite
    /// scale.
    pub fn new(net: Arc<Network>) -> Result<Self, BoundsError> {
        let blocks = decompose(&net)?;
        let preps = net
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| prepare(&net, i, &n.op))
            .collect::<Result<Vec<_>, _>>()?;
        let mut last_use = vec![None; net.values.len()];
        for (i, n) in net.nodes.iter().enumerate() {
            for &v in &n.inputs {
                if let Some(l) = last_use.get_mut(v) {
                    *l = Some(i);
                }
            }
        }
        let mut block_of = vec![None; net.nodes.len()];
        let mut block_end = vec![false; net.nodes.len()];
        for (bi, b) in blocks.iter().enumerate() {
            let nodes = b.nodes();
            for &n in &nodes {
                if let Some(slot) = block_of.get_mut(n) {
                    *slot = Some(bi);
                }
            }
            if let Some(slot) = nodes.iter().max().and_then(|&n| block_end.get_mut(n)) {
                *slot = true;
            }
        }
        Ok(Self {
            net,
            preps,
            blocks,
            last_use,
            block_of,
            block_end,
        })
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The block decomposition.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    fn range_of(&self, ranges: &BTreeMap<NodeId, f64>, id: NodeId) -> Result<f64, BoundsError> {
        match ranges.get(&id) {
            Some(&b) if b.is_finite() && b > 0.0 => Ok(b),
            other => Err(BoundsError::Range {
                node: node_name(&self.net, id),
                index: id,
                value: format!("{other:?}"),
            }),
        }
    }

    /// ‖A‖∞ of one node's linear part, rounded up.
    fn node_norm(&self, id: NodeId) -> f64 {
        match self.preps.get(id) {
            Some(Prep::Conv { norm, .. } | Prep::Bn { norm, .. } | Prep::Linear { norm, .. }) => {
                *norm
            }
            _ => 1.0,
        }
    }

    /// ‖A‖∞ of a linear block, rounded up: batch norm folded into a preceding Conv / Gemm
    /// (max_o sup|S_o|·‖W_o‖₁), otherwise the product of the nodes' norms
    /// (‖A₂A₁‖∞ ≤ ‖A₂‖∞‖A₁‖∞).
    fn linear_norm(&self, nodes: &[NodeId]) -> f64 {
        let mut norm = 1.0f64;
        let mut i = 0;
        while let Some(&id) = nodes.get(i) {
            let next = nodes.get(i + 1).copied();
            let rows = match self.preps.get(id) {
                Some(Prep::Conv { rows, .. } | Prep::Linear { rows, .. }) => Some(rows),
                _ => None,
            };
            let bn = next.and_then(|n| match self.preps.get(n) {
                Some(Prep::Bn { s_mag, .. }) => Some(s_mag),
                _ => None,
            });
            match (rows, bn) {
                (Some(rows), Some(s_mag)) if rows.len() == s_mag.len() => {
                    let folded = rows
                        .iter()
                        .zip(s_mag)
                        .fold(0.0f64, |a, (&r, &s)| a.max(mul_ru(r, s)));
                    norm = mul_ru(norm, folded);
                    i += 2;
                }
                _ => {
                    norm = mul_ru(norm, self.node_norm(id));
                    i += 1;
                }
            }
        }
        norm
    }

    /// The affine propagation function (gain, added) of a block (Lemma 1).
    fn block_fn(
        &self,
        b: &Block,
        pe: &PolyErrors,
        ranges: &BTreeMap<NodeId, f64>,
    ) -> Result<(f64, f64), BoundsError> {
        Ok(match b {
            Block::Linear { nodes } => (self.linear_norm(nodes), 0.0),
            Block::Relu { node } => (1.0, mul_ru(self.range_of(ranges, *node)?, pe.relu_sup())),
            Block::MaxPool { node, window } => (
                1.0,
                mul_ru(self.range_of(ranges, *node)?, pe.maxpool_unit(*window)?),
            ),
            Block::Softmax { .. } => (0.5, 0.0),
            Block::Clip { .. } => (1.0, 0.0),
            Block::Residual { s, g, relu, .. } => {
                let (gs, cs) = self.chain_fn(s, pe, ranges)?;
                let (gg, cg) = self.chain_fn(g, pe, ranges)?;
                let (gain, added) = (add_ru(gs, gg), add_ru(cs, cg));
                match relu {
                    Some(r) => (
                        gain,
                        add_ru(added, mul_ru(self.range_of(ranges, *r)?, pe.relu_sup())),
                    ),
                    None => (gain, added),
                }
            }
        })
    }

    /// Compose a chain of blocks (Theorem 3): E = E_k ∘ … ∘ E_1, as an affine map.
    fn chain_fn(
        &self,
        blocks: &[Block],
        pe: &PolyErrors,
        ranges: &BTreeMap<NodeId, f64>,
    ) -> Result<(f64, f64), BoundsError> {
        let (mut gain, mut added) = (1.0f64, 0.0f64);
        for b in blocks {
            let (g, c) = self.block_fn(b, pe, ranges)?;
            gain = mul_ru(g, gain);
            added = add_ru(mul_ru(g, added), c);
        }
        Ok((gain, added))
    }

    /// The global bound of Theorems 3 and 4 for the certified errors of `pe` and the ranges
    /// B per ReLU / MaxPool node.
    ///
    /// # Errors
    /// [`BoundsError::Range`] when a ReLU / MaxPool node lacks a valid B;
    /// [`BoundsError::Config`] when B′ of Eq. 7 is undefined.
    pub fn global(
        &self,
        pe: &PolyErrors,
        ranges: &BTreeMap<NodeId, f64>,
    ) -> Result<GlobalBound, BoundsError> {
        let mut e = 0.0f64;
        let mut total_gain = 1.0f64;
        let mut rows = Vec::new();
        for (index, b) in self.blocks.iter().enumerate() {
            let (gain, added) = self.block_fn(b, pe, ranges)?;
            e = add_ru(mul_ru(gain, e), added);
            total_gain = mul_ru(total_gain, gain);
            let nodes = b.nodes();
            let first = nodes
                .first()
                .map(|&n| node_name(&self.net, n))
                .unwrap_or_default();
            let last = nodes
                .last()
                .map(|&n| node_name(&self.net, n))
                .unwrap_or_default();
            rows.push(BlockRow {
                index,
                kind: b.kind().to_string(),
                nodes: if nodes.len() > 1 {
                    format!("{first} .. {last}")
                } else {
                    first
                },
                shortcut: match b {
                    Block::Residual { shortcut, .. } => Some(*shortcut),
                    _ => None,
                },
                gain,
                added,
                cumulative: e,
            });
        }
        Ok(GlobalBound {
            alpha: pe.alpha(),
            relu_sup: pe.relu_sup(),
            blocks: rows,
            bound: e,
            gain: total_gain,
            // Multiplying by a power of two is exact (no overflow for these magnitudes).
            c: (e * f64::from(pe.alpha()).exp2()).up(),
        })
    }

    /// The per-input bound for one preprocessed input x (F and F^α both see x exactly).
    ///
    /// # Errors
    /// [`BoundsError::Size`] for a wrong input size; [`BoundsError::Range`] when a ReLU /
    /// MaxPool node lacks a valid B; [`BoundsError::Unsupported`] for ops outside the blocks.
    pub fn per_input(
        &self,
        pe: &PolyErrors,
        ranges: &BTreeMap<NodeId, f64>,
        x: &[f64],
    ) -> Result<PerInputBound, BoundsError> {
        self.per_input_perturbed(pe, ranges, x, None)
    }

    /// As [`BoundedNetwork::per_input`], for F^α evaluated at a perturbed input x + δ with
    /// |δ_i| ≤ `input_error[i]` (F at x).
    ///
    /// # Errors
    /// As [`BoundedNetwork::per_input`]; [`BoundsError::Size`] when `input_error` has the
    /// wrong length.
    pub fn per_input_perturbed(
        &self,
        pe: &PolyErrors,
        ranges: &BTreeMap<NodeId, f64>,
        x: &[f64],
        input_error: Option<&[f64]>,
    ) -> Result<PerInputBound, BoundsError> {
        self.per_input_with(pe, ranges, x, input_error, false)
    }

    /// As [`BoundedNetwork::per_input_perturbed`]; with `early_exit` the propagation stops
    /// after the first block whose range check fails (that input gets no certificate
    /// anyway; see [`PerInputBound::complete`]). Inputs that pass get exactly the same
    /// result with or without early exit.
    ///
    /// # Errors
    /// As [`BoundedNetwork::per_input_perturbed`].
    #[expect(clippy::too_many_lines, reason = "one arm per op")]
    pub fn per_input_with(
        &self,
        pe: &PolyErrors,
        ranges: &BTreeMap<NodeId, f64>,
        x: &[f64],
        input_error: Option<&[f64]>,
        early_exit: bool,
    ) -> Result<PerInputBound, BoundsError> {
        let net = &*self.net;
        let n_in = net.input_shape().numel();
        if x.len() != n_in {
            return Err(BoundsError::Size {
                what: "input".into(),
                got: x.len(),
                expected: n_in,
            });
        }
        let e0 = match input_error {
            Some(e) if e.len() != n_in => {
                return Err(BoundsError::Size {
                    what: "input error".into(),
                    got: e.len(),
                    expected: n_in,
                })
            }
            Some(e) => e.iter().map(|v| v.abs()).collect(),
            None => vec![0.0; n_in],
        };
        let mut vals: Vec<Option<Val>> = vec![None; net.values.len()];
        if let Some(slot) = vals.get_mut(net.input) {
            *slot = Some(Val {
                zero: e0.iter().all(|&v| v == 0.0),
                xmax: max_abs(x),
                x: x.to_vec(),
                e: e0,
                r: 0.0,
            });
        }
        let mut col = Vec::new();
        let mut oor = 0usize;
        let mut trace: Vec<BlockTrace> = Vec::new();
        let mut first_failure = None;
        for (i, (node, prep)) in net.nodes.iter().zip(&self.preps).enumerate() {
            let blk = self.block_of.get(i).copied().flatten();
            if let Some(bi) = blk {
                if trace.last().is_none_or(|t| t.block != bi) {
                    trace.push(BlockTrace {
                        block: bi,
                        e_max: 0.0,
                        r: 0.0,
                        slack: None,
                        excess: None,
                        out_of_range: 0,
                    });
                }
            }
            // Range-check statistics of this node (activations only): (min slack, max
            // excess, entries out of range).
            let mut check: Option<(f64, f64, usize)> = None;
            let in0 = node.inputs.first().copied().unwrap_or(usize::MAX);
            // Take the first input by value when this node is its last reader (in-place ops).
            let owned = in0 != net.output
                && self.last_use.get(in0).copied().flatten() == Some(i)
                && node.inputs.iter().filter(|&&v| v == in0).count() == 1;
            let mut taken: Option<Val> = if owned {
                vals.get_mut(in0).and_then(Option::take)
            } else {
                None
            };
            let get = |v: usize| {
                vals.get(v)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| BoundsError::Unsupported {
                        node: node.name.clone(),
                        op: node.op.op_type().into(),
                        reason: "input value not computed (graph not in topological order)".into(),
                    })
            };
            let a: &Val = match &taken {
                Some(v) => v,
                None => get(in0)?,
            };
            let s_in = net.shape(in0);
            let s_out = net.shape(node.output);
            let chw = s_in.chw().unwrap_or((0, 0, 0));
            let out_hw = s_out.chw().map_or((0, 0), |(_, h, w)| (h, w));
            let out: Val = match (&node.op, prep) {
                (Op::Conv(_), Prep::Conv { k, kabs, norm, kdim, bmax, .. }) => {
                    let (xo, _) = ops::conv(&a.x, chw, k, out_hw, &mut col, false);
                    let e = if a.zero {
                        vec![0.0; xo.len()]
                    } else {
                        let f = sum_factor_ru(*kdim);
                        let (mut e, _) = ops::conv(&a.e, chw, kabs, out_hw, &mut col, false);
                        for v in &mut e {
                            *v = sum_up(*v, f, *kdim);
                        }
                        e
                    };
                    let rnd = mul_ru(gamma_ru(kdim + 1), add_ru(mul_ru(*norm, a.xmax), *bmax));
                    Val {
                        zero: a.zero,
                        r: add_ru(mul_ru(*norm, a.r), rnd),
                        xmax: max_abs(&xo),
                        x: xo,
                        e,
                    }
                }
                (Op::BatchNorm(_), Prep::Bn { s_mid, t_mid, s_mag, norm, rad_s, rad_t, s_mid_max, t_mid_max }) => {
                    let plane = (s_in.numel() / s_mid.len().max(1)).max(1);
                    let (zero, xmax, r_in) = (a.zero, a.xmax, a.r);
                    let v = match taken.take() {
                        Some(v) => v,
                        None => get(in0)?.clone(),
                    };
                    let (mut xo, mut e) = (v.x, v.e);
                    for (c, (xp, ep)) in xo.chunks_mut(plane).zip(e.chunks_mut(plane)).enumerate() {
                        let (s, t, m) = (
                            s_mid.get(c).copied().unwrap_or(0.0),
                            t_mid.get(c).copied().unwrap_or(0.0),
                            s_mag.get(c).copied().unwrap_or(f64::INFINITY),
                        );
                        for v in xp.iter_mut() {
                            *v = v.mul_add(s, t);
                        }
                        if !zero {
                            for v in ep.iter_mut() {
                                *v = mul_ru(*v, m);
                            }
                        }
                    }
                    // |fma(x̂, ŝ, t̂) − (s·x + t)| ≤ |s|·r + |ŝ − s|·|x̂| + |t̂ − t| + u·(|ŝ||x̂| + |t̂|).
                    let rnd = add_ru(
                        add_ru(mul_ru(*rad_s, xmax), *rad_t),
                        mul_ru(U, add_ru(mul_ru(*s_mid_max, xmax), *t_mid_max)),
                    );
                    Val {
                        zero,
                        r: add_ru(mul_ru(*norm, r_in), rnd),
                        xmax: max_abs(&xo),
                        x: xo,
                        e,
                    }
                }
                (Op::Gemm(_) | Op::MatMul(_), Prep::Linear { w, wabs, m, k, bias, norm, bmax, .. }) => {
                    let xo = ops::linear(&a.x, w, *m, *k, bias.as_deref());
                    let e = if a.zero {
                        vec![0.0; xo.len()]
                    } else {
                        let f = sum_factor_ru(*k);
                        ops::linear(&a.e, wabs, *m, *k, None)
                            .into_iter()
                            .map(|v| sum_up(v, f, *k))
                            .collect()
                    };
                    let rnd = mul_ru(gamma_ru(k + 1), add_ru(mul_ru(*norm, a.xmax), *bmax));
                    Val {
                        zero: a.zero,
                        r: add_ru(mul_ru(*norm, a.r), rnd),
                        xmax: max_abs(&xo),
                        x: xo,
                        e,
                    }
                }
                (Op::AvgPool { pool, count_include_pad }, _) => {
                    let n = pool.kernel[0] * pool.kernel[1];
                    let xo = ops::avgpool(&a.x, chw, pool, out_hw, *count_include_pad);
                    let f = sum_factor_ru(n + 1);
                    let e: Vec<f64> = ops::avgpool(&a.e, chw, pool, out_hw, *count_include_pad)
                        .into_iter()
                        .map(|v| sum_up(v, f, n + 1))
                        .collect();
                    Val {
                        zero: a.zero,
                        r: add_ru(a.r, mul_ru(gamma_ru(n + 1), a.xmax)),
                        xmax: max_abs(&xo),
                        x: xo,
                        e,
                    }
                }
                (Op::GlobalAvgPool, _) => {
                    let plane = chw.1 * chw.2;
                    let xo = ops::global_avgpool(&a.x, plane);
                    let f = sum_factor_ru(plane + 1);
                    let e: Vec<f64> = ops::global_avgpool(&a.e, plane)
                        .into_iter()
                        .map(|v| sum_up(v, f, plane + 1))
                        .collect();
                    Val {
                        zero: a.zero,
                        r: add_ru(a.r, mul_ru(gamma_ru(plane + 1), a.xmax)),
                        xmax: max_abs(&xo),
                        x: xo,
                        e,
                    }
                }
                (Op::Add { constant: Some(_) }, Prep::AddConst { c, cmax }) => {
                    let xo: Vec<f64> = a.x.iter().zip(c).map(|(p, q)| p + q).collect();
                    Val {
                        zero: a.zero,
                        r: add_ru(a.r, mul_ru(U, add_ru(a.xmax, *cmax))),
                        xmax: max_abs(&xo),
                        x: xo,
                        e: a.e.clone(),
                    }
                }
                (Op::Add { constant: None }, _) => {
                    let b = get(node.inputs.get(1).copied().unwrap_or(usize::MAX))?;
                    let xo: Vec<f64> = a.x.iter().zip(&b.x).map(|(p, q)| p + q).collect();
                    let e: Vec<f64> = a.e.iter().zip(&b.e).map(|(p, q)| add_ru(*p, *q)).collect();
                    Val {
                        zero: a.zero && b.zero,
                        r: add_ru(add_ru(a.r, b.r), mul_ru(U, add_ru(a.xmax, b.xmax))),
                        xmax: max_abs(&xo),
                        x: xo,
                        e,
                    }
                }
                (Op::Relu, _) => {
                    let b = self.range_of(ranges, i)?;
                    let lr = LocalRelu::new(b);
                    let r_in = a.r;
                    let mut v = match taken.take() {
                        Some(v) => v,
                        None => get(in0)?.clone(),
                    };
                    let (mut slack, mut excess, mut n_oor) = (f64::INFINITY, 0.0f64, 0usize);
                    for (y, ei) in v.x.iter_mut().zip(v.e.iter_mut()) {
                        let w = add_ru(r_in, *ei);
                        let (lo, hi) = widen(*y, w);
                        n_oor += usize::from(lo < -b || hi > b);
                        slack = slack.min((b - hi.max(-lo)).down());
                        excess = excess.max(excess_of(w, *y, b));
                        // |y| ranges over [ua, ub].
                        let (ua, ub) = if lo >= 0.0 {
                            (lo, hi)
                        } else if hi <= 0.0 {
                            (-hi, -lo)
                        } else {
                            (0.0, hi.max(-lo))
                        };
                        let local = pe.relu_local(&lr, lr.cells(ua, ub));
                        let pass = if hi <= 0.0 { 0.0 } else { *ei };
                        *ei = add_ru(local, pass);
                        *y = y.max(0.0);
                    }
                    check = Some((slack, excess, n_oor));
                    v.zero = false;
                    v
                }
                (Op::MaxPool(p), _) => {
                    let b = self.range_of(ranges, i)?;
                    let (mut slack, mut excess, mut n_oor) = (f64::INFINITY, 0.0f64, 0usize);
                    for (&y, &ei) in a.x.iter().zip(&a.e) {
                        let w = add_ru(a.r, ei);
                        let (lo, hi) = widen(y, w);
                        n_oor += usize::from(lo < -b || hi > b);
                        slack = slack.min((b - hi.max(-lo)).down());
                        excess = excess.max(excess_of(w, y, b));
                    }
                    check = Some((slack, excess, n_oor));
                    let full = p.kernel[0] * p.kernel[1];
                    let per_n: Vec<f64> = (0..=full)
                        .map(|n| pe.maxpool_unit(n).map(|u| mul_ru(b, u)))
                        .collect::<Result<_, _>>()?;
                    let xo = ops::maxpool(&a.x, chw, p, out_hw);
                    let e = pool_windows_f64(&a.e, chw, p, out_hw, |w| {
                        let m = w.iter().fold(0.0f64, |acc, &v| acc.max(v));
                        add_ru(m, per_n.get(w.len()).copied().unwrap_or(f64::INFINITY))
                    });
                    Val {
                        zero: false,
                        r: a.r,
                        xmax: max_abs(&xo),
                        x: xo,
                        e,
                    }
                }
                (Op::Clip { min, max }, _) => {
                    let (lo, hi) = (f64::from(*min), f64::from(*max));
                    let xo: Vec<f64> = a.x.iter().map(|v| v.max(lo).min(hi)).collect();
                    Val {
                        zero: a.zero,
                        r: a.r,
                        xmax: max_abs(&xo),
                        x: xo,
                        e: a.e.clone(),
                    }
                }
                (Op::Flatten | Op::Reshape | Op::Identity, _) => match taken.take() {
                    Some(v) => v,
                    None => get(in0)?.clone(),
                },
                (Op::Slice(s), _) => Val {
                    x: ops::slice(&a.x, s_in, &s.starts, &s.steps, s_out),
                    e: ops::slice(&a.e, s_in, &s.starts, &s.steps, s_out),
                    zero: a.zero,
                    r: a.r,
                    xmax: a.xmax,
                },
                (Op::Pad(_), Prep::Pad { begin, value }) => Val {
                    x: ops::pad(&a.x, s_in, begin, *value, s_out),
                    e: ops::pad(&a.e, s_in, begin, 0.0, s_out),
                    zero: a.zero,
                    r: a.r,
                    xmax: a.xmax.max(value.abs()),
                },
                (Op::Softmax { .. }, _) if s_in.dims().iter().filter(|&&d| d > 1).count() <= 1 => {
                    softmax_enclosure(a)
                }
                (op, _) => {
                    return Err(BoundsError::Unsupported {
                        node: node.name.clone(),
                        op: op.op_type().into(),
                        reason: "not supported by the per-input bound (Concat, or softmax over a non-vector)".into(),
                    })
                }
            };
            for &v in &node.inputs {
                if v != net.output && self.last_use.get(v).copied().flatten() == Some(i) {
                    if let Some(slot) = vals.get_mut(v) {
                        *slot = None;
                    }
                }
            }
            if let Some(t) = trace.last_mut().filter(|t| Some(t.block) == blk) {
                if let Some((slack, excess, n_oor)) = check {
                    oor += n_oor;
                    t.out_of_range += n_oor;
                    t.slack = Some(t.slack.map_or(slack, |s| s.min(slack)));
                    t.excess = Some(t.excess.map_or(excess, |s| s.max(excess)));
                    if n_oor > 0 && first_failure.is_none() {
                        first_failure = Some(t.block);
                    }
                }
                if self.block_end.get(i).copied().unwrap_or(false) {
                    t.e_max = out.e.iter().fold(0.0f64, |a, &b| a.max(b));
                    t.r = out.r;
                }
            } else if let Some((_, _, n_oor)) = check {
                // Unreachable for a decomposed network (every activation is in a block);
                // counted all the same.
                oor += n_oor;
            }
            if let Some(slot) = vals.get_mut(node.output) {
                *slot = Some(out);
            }
            // Early exit once the failing block is complete (its trace row is filled): at
            // its last node, or at a node of another block.
            let failing_done = match (first_failure, blk) {
                (Some(f), Some(b)) => b != f || self.block_end.get(i).copied().unwrap_or(false),
                _ => false,
            };
            if early_exit && failing_done {
                return Ok(PerInputBound {
                    bound: f64::INFINITY,
                    elementwise: Vec::new(),
                    output: Vec::new(),
                    output_radius: f64::INFINITY,
                    out_of_range: oor,
                    in_range: false,
                    top1: 0,
                    unchanged: false,
                    first_failure,
                    complete: false,
                    trace,
                });
            }
        }
        let out = vals
            .get_mut(net.output)
            .and_then(Option::take)
            .ok_or_else(|| BoundsError::Unsupported {
                node: "graph output".into(),
                op: "-".into(),
                reason: "not computed".into(),
            })?;
        let bound = out.e.iter().fold(0.0f64, |a, &b| a.max(b));
        let top1 = argmax(&out.x);
        let in_range = oor == 0;
        let unchanged = in_range && {
            let xt = out.x.get(top1).copied().unwrap_or(f64::NAN);
            let et = out.e.get(top1).copied().unwrap_or(f64::INFINITY);
            let lhs = (xt - add_ru(out.r, et)).down();
            out.x
                .iter()
                .zip(&out.e)
                .enumerate()
                .all(|(j, (&xj, &ej))| j == top1 || lhs > (xj + add_ru(out.r, ej)).up())
        };
        Ok(PerInputBound {
            bound,
            elementwise: out.e,
            output: out.x,
            output_radius: out.r,
            out_of_range: oor,
            in_range,
            top1,
            unchanged,
            first_failure,
            complete: true,
            trace,
        })
    }
}

/// (r + e)/(B − |ŷ|) rounded up, +∞ when |ŷ| ≥ B (see [`BlockTrace::excess`]).
fn excess_of(w: f64, y: f64, b: f64) -> f64 {
    let room = (b - y.abs()).down();
    if room <= 0.0 {
        f64::INFINITY
    } else {
        (w / room).up()
    }
}

/// [y − w, y + w] rounded outward (exact when w = 0).
fn widen(y: f64, w: f64) -> (f64, f64) {
    if w == 0.0 {
        (y, y)
    } else {
        ((y - w).down(), (y + w).up())
    }
}

/// Index of the largest value (first on ties).
pub(crate) fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if v.get(best).is_some_and(|b| x > b) {
            best = i;
        }
    }
    best
}

fn pool_windows_f64(
    x: &[f64],
    chw: (usize, usize, usize),
    p: &Pool,
    out_hw: (usize, usize),
    mut f: impl FnMut(&[f64]) -> f64,
) -> Vec<f64> {
    ops::pool_windows(x, chw, p, out_hw, |w, _| f(w))
}

/// Softmax over a vector: the exact F's output is enclosed with `inari` from x̂ ± r
/// (softmax_i ∈ 1/(1 + Σ_{j≠i} exp(X_j − X_i))), and e ↦ ‖e‖∞/2 (the Jacobian's ∞-norm
/// is max_i 2·s_i(1 − s_i) ≤ ½).
fn softmax_enclosure(a: &Val) -> Val {
    let xs: Vec<Interval> =
        a.x.iter()
            .map(|&v| {
                let r = a.r;
                Interval::try_from(((v - r).down(), (v + r).up())).unwrap_or(Interval::ENTIRE)
            })
            .collect();
    let one = iv(1.0);
    let mut x = Vec::with_capacity(xs.len());
    let mut r = 0.0f64;
    for (i, xi) in xs.iter().enumerate() {
        let mut s = iv(0.0);
        for (j, xj) in xs.iter().enumerate() {
            if i != j {
                s += (*xj - *xi).exp();
            }
        }
        let y = one / (one + s);
        let m = y.mid();
        r = r.max((y.sup() - m).up()).max((m - y.inf()).up());
        x.push(m);
    }
    let emax = a.e.iter().fold(0.0f64, |acc, &v| acc.max(v));
    let e = vec![(emax / 2.0).up(); a.e.len()];
    Val {
        zero: a.zero,
        xmax: max_abs(&x),
        x,
        e,
        r,
    }
}
