//! The plaintext engine: runs a [`Network`] on one image at a time in f32 or f64, with rayon
//! across the images of a batch (no batch-sized tensors, so memory stays flat however many
//! images stream through).
//!
//! Convolutions run directly (no im2col) through the tile kernel of `gemm`; a batch norm right
//! after a convolution is folded into its weights and bias when the engine is built, and a ReLU
//! right after it (exact, or r̃_α under an approximate policy) is applied in the convolution's
//! output pass, tile by tile while the values are in L1. Every
//! output value is one fused multiply-add chain in a fixed order, so results are bit-for-bit
//! the same whatever the thread count or the batch composition.

use std::collections::BTreeMap;
use std::sync::Arc;

use rayon::prelude::*;

use super::activation::{ActivationPolicy, ClipRelu};
use super::direct;
use super::ir::{clip_upper_key, Network, NodeId, Op};
use super::ops::{self, ConvK, EpiStats, Epilogue};
use super::NnError;

/// A working precision of the engine (f32 or f64).
pub trait Real:
    Copy
    + Send
    + Sync
    + Default
    + PartialOrd
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// −∞.
    const NEG_INFINITY: Self;
    /// Round an f64 to this type (nearest).
    fn from_f64(v: f64) -> Self;
    /// Widen (exact) to f64.
    fn to_f64(self) -> f64;
    /// From a count.
    fn from_usize(n: usize) -> Self;
    /// Fused multiply-add self·a + b.
    #[must_use]
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// max(self, o).
    #[must_use]
    fn max(self, o: Self) -> Self;
    /// e^self.
    #[must_use]
    fn exp(self) -> Self;
    /// C[m×n] (+)= A[m×k]·B[k×n], row-major (`matrixmultiply`).
    fn gemm(m: usize, k: usize, n: usize, a: &[Self], b: &[Self], c: &mut [Self], accumulate: bool);
    /// One direct-convolution tile (see `gemm::conv_tile`); `false` when a slice is short.
    #[doc(hidden)]
    fn conv_tile(
        x: &[Self],
        pix: &[usize; super::gemm::PX_TILE],
        taps: &super::gemm::Taps,
        w: &[Self],
        acc: &mut [[Self; super::gemm::CO_TILE]; super::gemm::PX_TILE],
    ) -> bool;
    /// Write a finished tile to the channel planes (see `gemm::scatter_tile`).
    #[doc(hidden)]
    fn scatter_tile(
        acc: &[[Self; super::gemm::CO_TILE]; super::gemm::PX_TILE],
        out: &mut [Self],
        base: usize,
        hw: usize,
        np: usize,
        nco: usize,
    ) -> bool {
        super::gemm::scatter_tile(acc, out, base, hw, np, nco)
    }
    /// Whether 1×1 convolutions run on the packed-panel kernel [`Real::pw_tile`] (f32)
    /// instead of `matrixmultiply` (f64, whose values the bounds and CKKS tests pin).
    #[doc(hidden)]
    const PACKED_POINTWISE: bool = false;
    /// One register block of a 1×1 convolution (see `gemm::pw_tile`); `false` when a slice
    /// is short.
    #[doc(hidden)]
    fn pw_tile(
        a: &[Self],
        b: &[Self],
        ldb: usize,
        k: usize,
        acc: &mut [[Self; super::gemm::PW_NR]; super::gemm::PW_MR],
    ) -> bool {
        super::gemm::pw_tile(a, b, ldb, k, acc)
    }
    /// The 8-column block of [`Real::pw_tile`] (a row's last ≤ 8 pixels).
    #[doc(hidden)]
    fn pw_tile8(
        a: &[Self],
        b: &[Self],
        ldb: usize,
        k: usize,
        acc: &mut [[Self; super::gemm::PW_NR_TAIL]; super::gemm::PW_MR],
    ) -> bool {
        super::gemm::pw_tile(a, b, ldb, k, acc)
    }
    /// The store of one block row with its exact activation (depthwise blocks, the last < 16
    /// pixels of a 1×1 chunk; see `pointwise::finish`).
    #[doc(hidden)]
    #[inline(always)]
    fn store_act(
        d: &mut [Self],
        a: &[Self],
        n: usize,
        bias_act: (Self, Option<super::pointwise::ExactAct<Self>>),
        lanes: &mut super::pointwise::ActLanes<Self>,
    ) {
        super::pointwise::finish(d, a, n, bias_act, lanes);
    }
    /// Whether [`Real::pw_fused`] runs (f32 with AVX2 + FMA); otherwise the 1×1 convolution
    /// stores its blocks and runs the activation as a separate pass.
    #[doc(hidden)]
    const PW_FUSED: bool = false;
    /// One 6 × 16 register block of a 1×1 convolution with + bias and the exact activation
    /// fused into its stores (see `pointwise`); `false` (nothing written) when not available
    /// or a slice is short.
    #[doc(hidden)]
    #[expect(clippy::too_many_arguments, reason = "the block's geometry")]
    fn pw_fused(
        _a: &[Self],
        _b: &[Self],
        _ldb_k: (usize, usize),
        _bias: &[Self; super::gemm::PW_MR],
        _act: super::pointwise::ExactAct<Self>,
        _nr: usize,
        _out: &mut [Self],
        _ldo: usize,
        _lanes: &mut super::pointwise::ActLanes<Self>,
    ) -> bool {
        false
    }
    /// Whether [`Real::pw_wide`] runs on this CPU (f32 with AVX-512F, detected at run time).
    #[doc(hidden)]
    fn pw_wide_available() -> bool {
        false
    }
    /// The wide 1×1 block: up to 12 output channels (two weight panels) × 16 or 32 pixels,
    /// with + bias and the exact activation fused into its stores (see
    /// `pointwise::pw_wide_f32`, same bits as [`Real::pw_fused`]); `false` (nothing written)
    /// when not available or a slice is short.
    #[doc(hidden)]
    #[expect(clippy::too_many_arguments, reason = "the block's geometry")]
    fn pw_wide(
        _a: [&[Self]; 2],
        _b: &[Self],
        _ldb_k: (usize, usize),
        _bias: &[Self; 2 * super::gemm::PW_MR],
        _act: super::pointwise::ExactAct<Self>,
        _nr_ncol: (usize, usize),
        _out: &mut [Self],
        _ldo: usize,
        _lanes: &mut super::pointwise::ActLanes<Self>,
    ) -> bool {
        false
    }
    /// Whether [`Real::dw_block8`] runs (f32 with AVX2 + FMA); otherwise the depthwise
    /// convolution runs one channel plane at a time.
    #[doc(hidden)]
    const DW_BLOCKED: bool = false;
    /// One block of ≤ 8 channels of the channel-blocked depthwise kernel (see `dwblock`);
    /// `false` (nothing written) when not available, for a geometry it does not take or a
    /// short slice.
    #[doc(hidden)]
    fn dw_block8(
        _b: &super::dwblock::DwBlock<'_, Self>,
        _g: &super::dwblock::DwGeom,
        _buf: &mut [Self],
        _out: &mut [Self],
        _lanes: &mut super::pointwise::ActLanes<Self>,
    ) -> bool {
        false
    }
    /// One register block of the depthwise kernel (see `gemm::dw_block`); `false` when a
    /// slice is short.
    #[doc(hidden)]
    fn dw_block<const R: usize, const V: usize>(
        buf: &[Self],
        at: (usize, usize),
        taps: &[usize],
        wt: &[Self],
        out: &mut [Self],
    ) -> bool {
        super::gemm::dw_block::<Self, R, V>(buf, at, taps, wt, out)
    }
    /// Exact Clip in place with the extremes of the inputs (see `ops::clip_minmax`).
    #[doc(hidden)]
    fn clip_minmax(x: &mut [Self], lo: Self, hi: Self) -> (f64, f64) {
        super::ops::clip_minmax(x, lo, hi)
    }
    /// r̃_α in place with statistics (see `SignKernel::relu_in_place_stats`).
    #[doc(hidden)]
    fn relu_poly(sign: &super::SignKernel, x: &mut [Self], b: f64) -> (u64, f64) {
        sign.relu_poly_portable(x, b)
    }
    /// Both ReLUs of an approximate Clip in one pass, where a fused kernel exists (see
    /// `SignKernel::clip_in_place_stats`, whose bits it must give); `None` otherwise.
    #[doc(hidden)]
    fn clip_poly(
        _sign: &super::SignKernel,
        _x: &mut [Self],
        _lower: super::ClipRelu,
        _upper: super::ClipRelu,
    ) -> Option<[(u64, f64); 2]> {
        None
    }
    /// Name for reports.
    const NAME: &'static str;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    const NAME: &'static str = "f32";
    #[expect(
        clippy::cast_possible_truncation,
        reason = "rounding to f32 is the point"
    )]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    fn from_usize(n: usize) -> Self {
        n as f32
    }
    fn mul_add(self, a: Self, b: Self) -> Self {
        f32::mul_add(self, a, b)
    }
    fn max(self, o: Self) -> Self {
        f32::max(self, o)
    }
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn gemm(m: usize, k: usize, n: usize, a: &[Self], b: &[Self], c: &mut [Self], acc: bool) {
        let _ = super::gemm::sgemm(m, k, n, a, b, c, acc);
    }
    fn conv_tile(
        x: &[Self],
        pix: &[usize; super::gemm::PX_TILE],
        taps: &super::gemm::Taps,
        w: &[Self],
        acc: &mut [[Self; super::gemm::CO_TILE]; super::gemm::PX_TILE],
    ) -> bool {
        super::gemm::conv_tile_f32(x, pix, taps, w, acc)
    }
    #[inline(always)]
    fn dw_block<const R: usize, const V: usize>(
        buf: &[Self],
        at: (usize, usize),
        taps: &[usize],
        wt: &[Self],
        out: &mut [Self],
    ) -> bool {
        super::gemm::dw_block_f32::<R, V>(buf, at, taps, wt, out)
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    fn clip_minmax(x: &mut [Self], lo: Self, hi: Self) -> (f64, f64) {
        super::gemm::clip_minmax_f32(x, lo, hi)
    }
    const PACKED_POINTWISE: bool = true;
    fn pw_tile(
        a: &[Self],
        b: &[Self],
        ldb: usize,
        k: usize,
        acc: &mut [[Self; super::gemm::PW_NR]; super::gemm::PW_MR],
    ) -> bool {
        super::gemm::pw_tile_f32(a, b, ldb, k, acc)
    }
    fn pw_tile8(
        a: &[Self],
        b: &[Self],
        ldb: usize,
        k: usize,
        acc: &mut [[Self; super::gemm::PW_NR_TAIL]; super::gemm::PW_MR],
    ) -> bool {
        super::gemm::pw_tile_f32(a, b, ldb, k, acc)
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    #[inline(always)]
    fn store_act(
        d: &mut [Self],
        a: &[Self],
        n: usize,
        bias_act: (Self, Option<super::pointwise::ExactAct<Self>>),
        lanes: &mut super::pointwise::ActLanes<Self>,
    ) {
        super::pointwise::finish_f32(d, a, n, bias_act, lanes);
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    const PW_FUSED: bool = true;
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    const DW_BLOCKED: bool = true;
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    fn dw_block8(
        b: &super::dwblock::DwBlock<'_, Self>,
        g: &super::dwblock::DwGeom,
        buf: &mut [Self],
        out: &mut [Self],
        lanes: &mut super::pointwise::ActLanes<Self>,
    ) -> bool {
        super::dwblock::dw_block8_f32(b, g, buf, out, lanes)
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    fn pw_fused(
        a: &[Self],
        b: &[Self],
        ldb_k: (usize, usize),
        bias: &[Self; super::gemm::PW_MR],
        act: super::pointwise::ExactAct<Self>,
        nr: usize,
        out: &mut [Self],
        ldo: usize,
        lanes: &mut super::pointwise::ActLanes<Self>,
    ) -> bool {
        super::pointwise::pw_fused_f32(a, b, ldb_k, bias, act, nr, out, ldo, lanes)
    }
    fn pw_wide_available() -> bool {
        super::pointwise::wide_available()
    }
    fn pw_wide(
        a: [&[Self]; 2],
        b: &[Self],
        ldb_k: (usize, usize),
        bias: &[Self; 2 * super::gemm::PW_MR],
        act: super::pointwise::ExactAct<Self>,
        nr_ncol: (usize, usize),
        out: &mut [Self],
        ldo: usize,
        lanes: &mut super::pointwise::ActLanes<Self>,
    ) -> bool {
        super::pointwise::pw_wide_f32(a, b, ldb_k, bias, act, nr_ncol, out, ldo, lanes)
    }
    fn scatter_tile(
        acc: &[[Self; super::gemm::CO_TILE]; super::gemm::PX_TILE],
        out: &mut [Self],
        base: usize,
        hw: usize,
        np: usize,
        nco: usize,
    ) -> bool {
        super::gemm::scatter_tile_f32(acc, out, base, hw, np, nco)
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    fn relu_poly(sign: &super::SignKernel, x: &mut [Self], b: f64) -> (u64, f64) {
        super::gemm::relu_poly_f32(x, b, sign.components())
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    fn clip_poly(
        sign: &super::SignKernel,
        x: &mut [Self],
        lower: super::ClipRelu,
        upper: super::ClipRelu,
    ) -> Option<[(u64, f64); 2]> {
        super::gemm::clip_poly_f32(
            x,
            (lower.shift, lower.b),
            (upper.shift, upper.b),
            sign.components(),
        )
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    const NAME: &'static str = "f64";
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    fn from_usize(n: usize) -> Self {
        n as f64
    }
    fn mul_add(self, a: Self, b: Self) -> Self {
        f64::mul_add(self, a, b)
    }
    fn max(self, o: Self) -> Self {
        f64::max(self, o)
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn gemm(m: usize, k: usize, n: usize, a: &[Self], b: &[Self], c: &mut [Self], acc: bool) {
        let _ = super::gemm::dgemm(m, k, n, a, b, c, acc);
    }
    fn conv_tile(
        x: &[Self],
        pix: &[usize; super::gemm::PX_TILE],
        taps: &super::gemm::Taps,
        w: &[Self],
        acc: &mut [[Self; super::gemm::CO_TILE]; super::gemm::PX_TILE],
    ) -> bool {
        super::gemm::conv_tile(x, pix, taps, w, acc)
    }
}

/// Per-run measurements at every ReLU / MaxPool node (keyed by node index).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStats {
    /// Largest |input| seen at each activation node.
    pub max_abs: BTreeMap<NodeId, f64>,
    /// Number of inputs with |x| > B at each node (approximate runs only).
    pub out_of_range: BTreeMap<NodeId, u64>,
}

impl RunStats {
    /// Merge another run's statistics into this one.
    pub fn merge(&mut self, o: &RunStats) {
        for (&k, &v) in &o.max_abs {
            let e = self.max_abs.entry(k).or_insert(0.0);
            *e = e.max(v);
        }
        for (&k, &v) in &o.out_of_range {
            *self.out_of_range.entry(k).or_insert(0) += v;
        }
    }
}

#[derive(Debug, Clone)]
enum Prepared<T> {
    /// A convolution; `act` is the ReLU or Clip node it feeds (directly or through a folded
    /// batch norm), whose activation (exact or approximate, by policy) runs in its output
    /// pass.
    Conv {
        k: ConvK<T>,
        act: Option<NodeId>,
    },
    /// A batch norm folded into the convolution before it: passes its input on.
    Folded,
    /// A ReLU or Clip that the convolution before it runs in its output pass (exact or
    /// approximate, by policy): passes its input on.
    FusedAct,
    Affine {
        scale: Vec<T>,
        shift: Vec<T>,
    },
    Linear {
        w: Vec<T>,
        m: usize,
        k: usize,
        bias: Option<Vec<T>>,
    },
    AddConst(Vec<T>),
    MulConst(Vec<T>),
    DivConst(Vec<T>),
    Pad {
        begin: Vec<usize>,
        value: T,
    },
    None,
}

/// A network compiled for precision `T`: weights converted, batch norm turned into a
/// per-channel affine map (scale = γ/√(σ² + ε), shift = β − μ·scale, computed in f64).
#[derive(Debug, Clone)]
pub struct Engine<T: Real> {
    net: Arc<Network>,
    prepared: Vec<Prepared<T>>,
    /// For each value, the index of the last node reading it (frees buffers early).
    last_use: Vec<Option<NodeId>>,
}

fn conv_t<T: Real>(v: &[f32]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(f64::from(x))).collect()
}

/// Batch norm as a per-channel affine map in f64: scale = γ/√(σ² + ε), shift = β − μ·scale.
pub(crate) fn bn_affine(b: &super::ir::BatchNorm) -> (Vec<f64>, Vec<f64>) {
    let mut scale = Vec::new();
    let mut shift = Vec::new();
    for (((g, be), m), v) in b.gamma.iter().zip(&b.beta).zip(&b.mean).zip(&b.var) {
        let s = f64::from(*g) / (f64::from(*v) + f64::from(b.eps)).sqrt();
        scale.push(s);
        shift.push(f64::from(*be) - f64::from(*m) * s);
    }
    (scale, shift)
}

/// The node reading value `v` when it is its only reader and `v` is not the graph output.
fn sole_reader(net: &Network, v: super::ir::ValueId) -> Option<NodeId> {
    if v == net.output {
        return None;
    }
    let mut readers = net
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.inputs.contains(&v));
    let (i, n) = readers.next()?;
    (readers.next().is_none() && n.inputs.iter().filter(|&&u| u == v).count() == 1).then_some(i)
}

/// Fold batch norms into the convolutions before them and mark the ReLUs that convolutions
/// run in their output pass (see [`Engine::new`]).
fn fuse<T: Real>(net: &Network, prepared: &mut [Prepared<T>]) {
    for (ci, node) in net.nodes.iter().enumerate() {
        let Op::Conv(cv) = &node.op else {
            continue;
        };
        let mut tail = node.output;
        if let Some(bi) = sole_reader(net, tail) {
            if let (Some(Op::BatchNorm(b)), Some(Prepared::Conv { k, .. })) =
                (net.nodes.get(bi).map(|n| &n.op), prepared.get(ci))
            {
                let cout = k.cout;
                let (scale, shift) = bn_affine(b);
                if scale.len() == cout && cout > 0 {
                    let per = k.weight.len() / cout;
                    let w: Vec<T> = cv
                        .weight
                        .data
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| {
                            let s = scale.get(i / per.max(1)).copied().unwrap_or(1.0);
                            T::from_f64(f64::from(v) * s)
                        })
                        .collect();
                    let bias0 = cv.bias.as_deref();
                    let bias: Vec<T> = (0..cout)
                        .map(|c| {
                            let b0 = bias0.and_then(|b| b.get(c)).map_or(0.0, |&v| f64::from(v));
                            let s = scale.get(c).copied().unwrap_or(1.0);
                            let t = shift.get(c).copied().unwrap_or(0.0);
                            T::from_f64(b0.mul_add(s, t))
                        })
                        .collect();
                    if let Some(Prepared::Conv { k, .. }) = prepared.get_mut(ci) {
                        k.weight = w;
                        k.bias = Some(bias);
                        k.pack();
                    }
                    if let Some(p) = prepared.get_mut(bi) {
                        *p = Prepared::Folded;
                    }
                    tail = net.nodes.get(bi).map_or(tail, |n| n.output);
                }
            }
        }
        if let Some(ri) = sole_reader(net, tail) {
            if matches!(
                net.nodes.get(ri).map(|n| &n.op),
                Some(Op::Relu | Op::Clip { .. })
            ) {
                if let Some(Prepared::Conv { act, .. }) = prepared.get_mut(ci) {
                    *act = Some(ri);
                }
                if let Some(p) = prepared.get_mut(ri) {
                    *p = Prepared::FusedAct;
                }
            }
        }
    }
}

impl<T: Real> Engine<T> {
    /// Compile a network. Batch norms that directly follow a convolution (whose output has no
    /// other reader) are folded into it: w′ = w·s, b′ = b·s + (β − μ·s) per output channel
    /// with s = γ/√(σ² + ε), computed in f64 from the f32 parameters and rounded once to `T`.
    /// A ReLU that is the only reader of such a convolution's (or folded batch norm's) output
    /// runs in the convolution's output pass (exact, or r̃_α under an approximate policy).
    pub fn new(net: Arc<Network>) -> Self {
        let mut prepared: Vec<Prepared<T>> = net
            .nodes
            .iter()
            .map(|n| match &n.op {
                Op::Conv(c) => {
                    let k =
                        ConvK::from_conv(c, conv_t(&c.weight.data), c.bias.as_deref().map(conv_t));
                    Prepared::Conv { k, act: None }
                }
                Op::BatchNorm(b) => {
                    let (scale, shift) = bn_affine(b);
                    Prepared::Affine {
                        scale: scale.into_iter().map(T::from_f64).collect(),
                        shift: shift.into_iter().map(T::from_f64).collect(),
                    }
                }
                Op::Gemm(l) | Op::MatMul(l) => Prepared::Linear {
                    w: conv_t(&l.weight.data),
                    m: l.weight.dims.first().copied().unwrap_or(0),
                    k: l.weight.dims.get(1).copied().unwrap_or(0),
                    bias: l.bias.as_deref().map(conv_t),
                },
                Op::Add { constant: Some(t) } => Prepared::AddConst(conv_t(&t.data)),
                Op::Mul { constant: t } => Prepared::MulConst(conv_t(&t.data)),
                Op::Div { constant: t } => Prepared::DivConst(conv_t(&t.data)),
                Op::Pad(p) => Prepared::Pad {
                    begin: p.begin.clone(),
                    value: T::from_f64(f64::from(p.value)),
                },
                _ => Prepared::None,
            })
            .collect();
        fuse(&net, &mut prepared);
        let mut last_use = vec![None; net.values.len()];
        for (i, n) in net.nodes.iter().enumerate() {
            for &v in &n.inputs {
                if let Some(l) = last_use.get_mut(v) {
                    *l = Some(i);
                }
            }
        }
        Self {
            net,
            prepared,
            last_use,
        }
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// Check an approximate policy covers every activation node with a finite B > 0, and
    /// gives each Clip node ranges for all its ReLUs or for none.
    ///
    /// # Errors
    /// [`NnError::Config`] naming the first node without a valid range.
    pub fn check_policy(&self, policy: &ActivationPolicy) -> Result<(), NnError> {
        if let ActivationPolicy::Approx { ranges, .. } = policy {
            for id in self.net.activation_nodes() {
                let b = ranges.get(&id).copied();
                if !b.is_some_and(|b| b.is_finite() && b > 0.0) {
                    let name = self.net.nodes.get(id).map_or("?", |n| n.name.as_str());
                    return Err(NnError::Config {
                        what: format!("range B of node {name:?} (#{id})"),
                        value: format!("{b:?}"),
                        valid: "a finite B > 0 for every ReLU and MaxPool node".into(),
                    });
                }
            }
            for (id, n) in self.net.nodes.iter().enumerate() {
                if let Op::Clip { min, max } = n.op {
                    clip_sides(&self.net, id, (min, max), ranges)?;
                }
            }
        }
        Ok(())
    }

    /// Run one preprocessed image (per-sample input shape) and return the output.
    ///
    /// # Errors
    /// [`NnError::InputSize`] when `x` has the wrong number of values; [`NnError::Config`]
    /// when an approximate policy lacks a range (see [`Engine::check_policy`]).
    pub fn run(
        &self,
        x: &[T],
        policy: &ActivationPolicy,
        stats: &mut RunStats,
    ) -> Result<Vec<T>, NnError> {
        self.run_pooled(x, policy, stats, &mut Vec::new(), None, None)
    }

    /// [`Engine::run`] that also adds the wall time of each node, in nanoseconds, to
    /// `times[node index]` (resized to the node count): the per-node profile of
    /// `benches/efficientnet_nodes.rs`. A batch norm or activation that a convolution runs in
    /// its output pass gets ≈ 0 (its work is in the convolution's time). **Measured**, and
    /// noisy like any timing.
    ///
    /// # Errors
    /// As [`Engine::run`].
    pub fn run_timed(
        &self,
        x: &[T],
        policy: &ActivationPolicy,
        stats: &mut RunStats,
        times: &mut Vec<u64>,
    ) -> Result<Vec<T>, NnError> {
        times.resize(self.net.nodes.len(), 0);
        self.run_pooled(x, policy, stats, &mut Vec::new(), Some(times), None)
    }

    /// [`Engine::run_timed`] on several images the way one thread of [`Engine::run_batch`]
    /// runs its share: one after another with one buffer pool, and a final fully connected
    /// layer once for all of them (`ops::linear_batch`), its wall time added to that node's
    /// slot. Outputs in input order, the same values as [`Engine::run_batch`]. **Measured**.
    ///
    /// # Errors
    /// As [`Engine::run_batch`].
    pub fn run_timed_batch(
        &self,
        xs: &[Vec<T>],
        policy: &ActivationPolicy,
        stats: &mut RunStats,
        times: &mut Vec<u64>,
    ) -> Result<Vec<Vec<T>>, NnError> {
        self.check_policy(policy)?;
        times.resize(self.net.nodes.len(), 0);
        let head = self.batched_head();
        let mut pool = Vec::new();
        let mut ys = Vec::with_capacity(xs.len());
        for x in xs {
            let stop = head.map(|h| h.0);
            ys.push(self.run_pooled(x, policy, stats, &mut pool, Some(times), stop)?);
        }
        if let Some((i, w, (m, k), bias)) = head {
            let t0 = std::time::Instant::now();
            let ins: Vec<&[T]> = ys.iter().map(Vec::as_slice).collect();
            ys = ops::linear_batch(&ins, w, m, k, bias);
            if let Some(t) = times.get_mut(i) {
                *t += u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
            }
        }
        Ok(ys)
    }

    /// [`Engine::run`] with the buffers of freed values kept in `pool` for later convolution
    /// outputs (see [`take_pooled`]), across the images of one thread in [`Engine::run_batch`].
    /// The values never depend on what a reused buffer held.
    #[expect(clippy::too_many_lines, reason = "one arm per op")]
    fn run_pooled(
        &self,
        x: &[T],
        policy: &ActivationPolicy,
        stats: &mut RunStats,
        pool: &mut Vec<Vec<T>>,
        mut times: Option<&mut Vec<u64>>,
        stop: Option<NodeId>,
    ) -> Result<Vec<T>, NnError> {
        let net = &*self.net;
        let expected = net.input_shape().numel();
        if x.len() != expected {
            return Err(NnError::InputSize {
                index: 0,
                got: x.len(),
                expected,
                shape: net.input_shape().to_string(),
            });
        }
        let mut vals: Vec<Option<Vec<T>>> = vec![None; net.values.len()];
        if let Some(v) = vals.get_mut(net.input) {
            *v = Some(x.to_vec());
        }
        let mut col = Vec::new();
        let missing = |node: &str| NnError::BadModel {
            node: node.into(),
            reason: "input value not computed (graph not in topological order)".into(),
        };
        for (i, (node, prep)) in net.nodes.iter().zip(&self.prepared).enumerate() {
            let t0 = times.is_some().then(std::time::Instant::now);
            let in0 = node.inputs.first().copied().unwrap_or(usize::MAX);
            if stop == Some(i) {
                // The input of the node the caller runs itself (`run_batch`'s batched head).
                return vals
                    .get_mut(in0)
                    .and_then(Option::take)
                    .ok_or_else(|| missing(&node.name));
            }
            let s_in = net.shape(in0).clone();
            let s_out = net.shape(node.output);
            // Take the first input by value when this node is its last reader (in-place ops).
            let owned = self.last_use.get(in0).copied().flatten() == Some(i)
                && node.inputs.iter().filter(|&&v| v == in0).count() == 1
                && in0 != net.output;
            // In-place ops need an owned buffer (taken when this node is the last reader,
            // cloned otherwise); read-only ops borrow the stored value.
            let inplace = matches!(
                node.op,
                Op::BatchNorm(_)
                    | Op::Relu
                    | Op::Clip { .. }
                    | Op::Add { .. }
                    | Op::Mul { .. }
                    | Op::Div { .. }
                    | Op::Flatten
                    | Op::Reshape
                    | Op::Identity
            );
            let mut x0: Vec<T> = if owned {
                vals.get_mut(in0)
                    .and_then(Option::take)
                    .ok_or_else(|| missing(&node.name))?
            } else if inplace {
                vals.get(in0)
                    .and_then(|v| v.clone())
                    .ok_or_else(|| missing(&node.name))?
            } else {
                Vec::new()
            };
            let xr: &[T] = if owned || inplace {
                &x0
            } else {
                vals.get(in0)
                    .and_then(Option::as_ref)
                    .map(Vec::as_slice)
                    .ok_or_else(|| missing(&node.name))?
            };
            let out: Vec<T> = match (&node.op, prep) {
                (_, Prepared::Folded) => x0,
                (Op::Relu | Op::Clip { .. }, Prepared::FusedAct) => x0,
                (Op::Conv(_), Prepared::Conv { k, act }) => {
                    let (c, h, w) = s_in.chw().unwrap_or((0, 0, 0));
                    let (_, ho, wo) = s_out.chw().unwrap_or((0, 0, 0));
                    let epi = match act {
                        None => Epilogue::Linear,
                        Some(a) => act_epilogue(net, *a, policy)?,
                    };
                    let recycled = take_pooled(pool, k.cout * ho * wo);
                    let (y, st) =
                        ops::conv_epi_into(xr, (c, h, w), k, (ho, wo), &mut col, epi, recycled);
                    if let Some(a) = act {
                        record_act(stats, *a, epi, &st);
                    }
                    // The input, when this was its last reader.
                    recycle(pool, std::mem::take(&mut x0));
                    y
                }
                (Op::BatchNorm(_), Prepared::Affine { scale, shift }) => {
                    let plane = s_in.numel() / scale.len().max(1);
                    ops::affine_channels(&mut x0, plane, scale, shift);
                    x0
                }
                (Op::Relu, _) => {
                    let m = match policy {
                        ActivationPolicy::Exact => ops::relu_max(&mut x0),
                        ActivationPolicy::Approx { sign, ranges } => {
                            let b = ranges.get(&i).copied().unwrap_or(f64::NAN);
                            let (n, m) = sign.relu_in_place_stats(&mut x0, b);
                            *stats.out_of_range.entry(i).or_insert(0) += n;
                            m
                        }
                    };
                    let e = stats.max_abs.entry(i).or_insert(0.0);
                    *e = e.max(m);
                    x0
                }
                (Op::MaxPool(p), _) => {
                    let (c, h, w) = s_in.chw().unwrap_or((0, 0, 0));
                    let (_, ho, wo) = s_out.chw().unwrap_or((0, 0, 0));
                    let m = xr.iter().fold(0.0f64, |a, v| a.max(v.to_f64().abs()));
                    let e = stats.max_abs.entry(i).or_insert(0.0);
                    *e = e.max(m);
                    match policy {
                        ActivationPolicy::Exact => ops::maxpool(xr, (c, h, w), p, (ho, wo)),
                        ActivationPolicy::Approx { sign, ranges } => {
                            let b = ranges.get(&i).copied().unwrap_or(f64::NAN);
                            let n_out = xr.iter().filter(|v| v.to_f64().abs() > b).count() as u64;
                            *stats.out_of_range.entry(i).or_insert(0) += n_out;
                            approx_maxpool(xr, (c, h, w), p, (ho, wo), sign, b)
                        }
                    }
                }
                (Op::Clip { .. }, _) => {
                    let epi = act_epilogue(net, i, policy)?;
                    let mut st = EpiStats::default();
                    direct::epilogue_slice(&mut x0, epi, &mut st);
                    record_act(stats, i, epi, &st);
                    x0
                }
                (
                    Op::AvgPool {
                        pool,
                        count_include_pad,
                    },
                    _,
                ) => {
                    let (c, h, w) = s_in.chw().unwrap_or((0, 0, 0));
                    let (_, ho, wo) = s_out.chw().unwrap_or((0, 0, 0));
                    ops::avgpool(xr, (c, h, w), pool, (ho, wo), *count_include_pad)
                }
                (Op::GlobalAvgPool, _) => {
                    let (_, h, w) = s_in.chw().unwrap_or((0, 0, 0));
                    ops::global_avgpool(xr, h * w)
                }
                (Op::Add { constant: None }, _) => {
                    let y = node
                        .inputs
                        .get(1)
                        .and_then(|&v| vals.get(v))
                        .and_then(Option::as_ref)
                        .ok_or_else(|| missing(&node.name))?;
                    for (a, b) in x0.iter_mut().zip(y) {
                        *a += *b;
                    }
                    x0
                }
                (Op::Add { .. }, Prepared::AddConst(c)) => {
                    for (a, b) in x0.iter_mut().zip(c) {
                        *a += *b;
                    }
                    x0
                }
                (Op::Mul { .. }, Prepared::MulConst(c)) => {
                    for (a, b) in x0.iter_mut().zip(c) {
                        *a = *a * *b;
                    }
                    x0
                }
                (Op::Div { .. }, Prepared::DivConst(c)) => {
                    for (a, b) in x0.iter_mut().zip(c) {
                        *a = *a / *b;
                    }
                    x0
                }
                (Op::Gemm(_) | Op::MatMul(_), Prepared::Linear { w, m, k, bias }) => {
                    ops::linear(xr, w, *m, *k, bias.as_deref())
                }
                (Op::Flatten | Op::Reshape | Op::Identity, _) => x0,
                (Op::Slice(s), _) => ops::slice(xr, &s_in, &s.starts, &s.steps, s_out),
                (Op::Pad(_), Prepared::Pad { begin, value }) => {
                    ops::pad(xr, &s_in, begin, *value, s_out)
                }
                (Op::Concat { axis }, _) => {
                    let mut parts: Vec<(&[T], &super::ir::Shape)> = vec![(xr, &s_in)];
                    for &v in node.inputs.iter().skip(1) {
                        let d = vals
                            .get(v)
                            .and_then(Option::as_ref)
                            .ok_or_else(|| missing(&node.name))?;
                        parts.push((d, net.shape(v)));
                    }
                    ops::concat(&parts, *axis, s_out)
                }
                (Op::Softmax { axis }, _) => ops::softmax(xr, &s_in, *axis),
                (op, _) => {
                    return Err(NnError::BadModel {
                        node: node.name.clone(),
                        reason: format!("{} was not prepared for execution", op.op_type()),
                    })
                }
            };
            if out.len() != s_out.numel() {
                return Err(NnError::BadModel {
                    node: node.name.clone(),
                    reason: format!(
                        "produced {} values, shape {s_out} needs {}",
                        out.len(),
                        s_out.numel()
                    ),
                });
            }
            // Free inputs whose last reader was this node.
            for &v in &node.inputs {
                if v != net.output && self.last_use.get(v).copied().flatten() == Some(i) {
                    if let Some(b) = vals.get_mut(v).and_then(Option::take) {
                        recycle(pool, b);
                    }
                }
            }
            if let Some(slot) = vals.get_mut(node.output) {
                *slot = Some(out);
            }
            if let (Some(t0), Some(t)) = (t0, times.as_mut().and_then(|t| t.get_mut(i))) {
                *t += u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
            }
        }
        vals.get_mut(net.output)
            .and_then(Option::take)
            .ok_or_else(|| missing("graph output"))
    }

    /// [`Engine::run_pooled`] of image `idx` of a batch (up to the input of node `stop`), with
    /// its own statistics; a size mismatch names `idx`.
    fn run_indexed(
        &self,
        idx: usize,
        x: &[T],
        policy: &ActivationPolicy,
        pool: &mut Vec<Vec<T>>,
        stop: Option<NodeId>,
    ) -> Result<(Vec<T>, RunStats), NnError> {
        let mut st = RunStats::default();
        self.run_pooled(x, policy, &mut st, pool, None, stop)
            .map(|y| (y, st))
            .map_err(|e| match e {
                NnError::InputSize {
                    got,
                    expected,
                    shape,
                    ..
                } => NnError::InputSize {
                    index: idx,
                    got,
                    expected,
                    shape,
                },
                e => e,
            })
    }

    /// Run many images in parallel (rayon); results in input order.
    ///
    /// # Errors
    /// The first error of any image (with its index for a size mismatch).
    pub fn run_batch(
        &self,
        xs: &[Vec<T>],
        policy: &ActivationPolicy,
    ) -> Result<(Vec<Vec<T>>, RunStats), NnError> {
        self.check_policy(policy)?;
        // One contiguous share of the images per thread, run in order with one buffer pool,
        // so every image after a thread's first reuses the buffers of the one before (rayon's
        // `map_init` would start a new pool for each split of the work).
        let share = xs
            .len()
            .div_ceil(rayon::current_num_threads().max(1))
            .max(1);
        // A final fully connected layer runs once per share, as one product over its images
        // (`ops::linear_batch`: its weights are read once instead of once per image, the same
        // bits as `ops::linear` on each image).
        let head = self.batched_head();
        let res: Vec<Result<(Vec<T>, RunStats), NnError>> = xs
            .par_chunks(share)
            .enumerate()
            .flat_map_iter(|(ci, part)| {
                let mut pool = Vec::new();
                let stop = head.map(|h| h.0);
                let mut res = part
                    .iter()
                    .enumerate()
                    .map(|(j, x)| self.run_indexed(ci * share + j, x, policy, &mut pool, stop))
                    .collect::<Vec<_>>();
                if let Some((_, w, (m, k), bias)) = head {
                    let ins: Vec<&[T]> = res
                        .iter()
                        .filter_map(|r| r.as_ref().ok().map(|(v, _)| v.as_slice()))
                        .collect();
                    let mut ys = ops::linear_batch(&ins, w, m, k, bias).into_iter();
                    for r in res.iter_mut().flatten() {
                        r.0 = ys.next().unwrap_or_default();
                    }
                }
                res
            })
            .collect();
        let mut out = Vec::with_capacity(xs.len());
        let mut stats = RunStats::default();
        for r in res {
            let (y, s) = r?;
            stats.merge(&s);
            out.push(y);
        }
        Ok((out, stats))
    }
}

/// A final fully connected layer: node index, weights (M × K, row-major), (M, K), bias.
type LinearHead<'a, T> = (NodeId, &'a [T], (usize, usize), Option<&'a [T]>);

impl<T: Real> Engine<T> {
    /// The network's last node when it is a fully connected layer producing the output from
    /// one input of K values into M (Gemm / MatMul, no other node after it): its index,
    /// weights, (M, K) and bias, for [`Engine::run_batch`] to run on all images of a share at
    /// once.
    fn batched_head(&self) -> Option<LinearHead<'_, T>> {
        let net = &*self.net;
        let i = net.nodes.len().checked_sub(1)?;
        let node = net.nodes.get(i)?;
        let in0 = *node.inputs.first()?;
        match (&node.op, self.prepared.get(i)?) {
            (Op::Gemm(_) | Op::MatMul(_), Prepared::Linear { w, m, k, bias })
                if node.output == net.output
                    && node.inputs.len() == 1
                    && net.shape(node.output).numel() == *m
                    && net.shape(in0).numel() == *k
                    && w.len() == m * k =>
            {
                Some((i, w.as_slice(), (*m, *k), bias.as_deref()))
            }
            _ => None,
        }
    }
}

/// Most freed buffers of one length that [`Engine::run`] keeps for reuse.
const POOL_PER_LEN: usize = 2;

/// Most freed buffers kept in all (the oldest go first): a bound for networks with many
/// tensor sizes (EfficientNet-Lite0 has 19 convolution output sizes).
const POOL_BUFFERS: usize = 64;

/// Keep the buffer of a freed value for a later convolution output of the same length
/// ([`take_pooled`]): at most [`POOL_PER_LEN`] per length and [`POOL_BUFFERS`] in all.
fn recycle<T>(pool: &mut Vec<Vec<T>>, b: Vec<T>) {
    if b.is_empty() || pool.iter().filter(|v| v.len() == b.len()).count() >= POOL_PER_LEN {
        return;
    }
    pool.push(b);
    if pool.len() > POOL_BUFFERS {
        pool.remove(0);
    }
}

/// A kept buffer of exactly `n` values (empty when there is none): a convolution writes all
/// its output values, so reusing memory saves zeroing a fresh allocation and touching new
/// pages (`ops::out_buf`); the values never depend on what the buffer held. Only exact
/// lengths are reused: cutting a longer buffer would leave it short (a later, longer output
/// would zero the difference), and with the pool kept across the images of a thread
/// ([`Engine::run_batch`]) every output after the first image finds its length.
fn take_pooled<T>(pool: &mut Vec<Vec<T>>, n: usize) -> Vec<T> {
    pool.iter()
        .position(|v| v.len() == n)
        .map_or_else(Vec::new, |i| pool.remove(i))
}

/// The output-pass activation of ReLU or Clip node `a` under `policy`: exact ReLU / Clip, or
/// r̃_α / the two-r̃_α Clip with the node's ranges (a Clip without ranges stays exact, see
/// [`ActivationPolicy::Approx`]).
///
/// # Errors
/// As [`clip_sides`].
fn act_epilogue<'p>(
    net: &Network,
    a: NodeId,
    policy: &'p ActivationPolicy,
) -> Result<Epilogue<'p>, NnError> {
    let clip = match net.nodes.get(a).map(|n| &n.op) {
        Some(Op::Clip { min, max }) => Some((*min, *max)),
        _ => None,
    };
    Ok(match (clip, policy) {
        (None, ActivationPolicy::Exact) => Epilogue::Relu,
        (None, ActivationPolicy::Approx { sign, ranges }) => Epilogue::Poly {
            sign,
            b: ranges.get(&a).copied().unwrap_or(f64::NAN),
        },
        (Some((lo, hi)), p) => {
            let sides = match p {
                ActivationPolicy::Exact => None,
                ActivationPolicy::Approx { sign, ranges } => {
                    clip_sides(net, a, (lo, hi), ranges)?.map(|s| (sign, s))
                }
            };
            match sides {
                None => Epilogue::Clip {
                    lo: f64::from(lo),
                    hi: f64::from(hi),
                },
                Some((sign, (lower, upper))) => Epilogue::ClipPoly { sign, lower, upper },
            }
        }
    })
}

/// Record the statistics `st` of activation node `a`'s epilogue `epi`: the largest |input|
/// per approximation site (for an exact Clip, max |x − min| and max |x − max| from the
/// extremes of x, which calibrate its two ReLUs) and, for approximate activations, the
/// inputs outside [−B, B].
fn record_act(stats: &mut RunStats, a: NodeId, epi: Epilogue<'_>, st: &EpiStats) {
    let mut put = |key: NodeId, m: f64, outside: Option<u64>| {
        let e = stats.max_abs.entry(key).or_insert(0.0);
        *e = e.max(m);
        if let Some(n) = outside {
            *stats.out_of_range.entry(key).or_insert(0) += n;
        }
    };
    match epi {
        Epilogue::Linear => {}
        Epilogue::Relu => put(a, st.max_abs, None),
        Epilogue::Poly { .. } => put(a, st.max_abs, Some(st.outside)),
        Epilogue::Clip { lo, hi } => {
            let (mn, mx) = st.range.unwrap_or((0.0, 0.0));
            let dev = |b: f64| {
                if st.range.is_some() {
                    (mx - b).abs().max((mn - b).abs())
                } else {
                    0.0
                }
            };
            for (key, b) in [(a, lo), (clip_upper_key(a), hi)] {
                if b.is_finite() {
                    put(key, dev(b), None);
                }
            }
        }
        Epilogue::ClipPoly { lower, upper, .. } => {
            if lower.is_some() {
                put(a, st.max_abs, Some(st.outside));
            }
            if upper.is_some() {
                put(clip_upper_key(a), st.upper.1, Some(st.upper.0));
            }
        }
    }
}

/// The lower and upper ReLU of an approximate Clip (`None` for an infinite bound).
type ClipSides = (Option<ClipRelu>, Option<ClipRelu>);

/// The two ReLUs of Clip node `i` with bounds `(min, max)` under `ranges` (see
/// [`ActivationPolicy::Approx`]): `None` when `ranges` holds none of its site keys (an exact
/// Clip), else the lower and upper [`ClipRelu`] (each `None` for an infinite bound).
///
/// # Errors
/// [`NnError::Config`] when `ranges` holds some of the node's keys but not all, or a B that is
/// not finite and > 0.
fn clip_sides(
    net: &Network,
    i: NodeId,
    (min, max): (f32, f32),
    ranges: &BTreeMap<NodeId, f64>,
) -> Result<Option<ClipSides>, NnError> {
    let want = [(min, i), (max, clip_upper_key(i))];
    let got: Vec<Option<ClipRelu>> = want
        .iter()
        .filter(|(a, _)| a.is_finite())
        .map(|(a, k)| {
            ranges.get(k).map(|&b| ClipRelu {
                shift: f64::from(*a),
                b,
            })
        })
        .collect();
    let present = got.iter().flatten().count();
    if present == 0 {
        return Ok(None);
    }
    let name = net.nodes.get(i).map_or("?", |n| n.name.as_str());
    if present < got.len()
        || got
            .iter()
            .flatten()
            .any(|c| !(c.b.is_finite() && c.b > 0.0))
    {
        return Err(NnError::Config {
            what: format!("ranges B of Clip node {name:?} (#{i})"),
            value: format!("{got:?}"),
            valid: "a finite B > 0 for ReLU(x − min) and for ReLU(x − max) (keys node and \
                    clip_upper_key(node)), or none (exact Clip)"
                .into(),
        });
    }
    let side = |a: f32, k: NodeId| {
        a.is_finite().then(|| ClipRelu {
            shift: f64::from(a),
            b: ranges.get(&k).copied().unwrap_or(f64::NAN),
        })
    };
    Ok(Some((side(min, i), side(max, clip_upper_key(i)))))
}

/// M̃_{α,n} of Eq. (7) over every pooling window: inputs mapped to x/B′ + 0.5, the tree of
/// Eq. (6) evaluated column-wise over all output positions at once, mapped back by
/// B′·(M − 0.5). Padded cells are left out of the window (n = number of real cells).
fn approx_maxpool<T: Real>(
    x: &[T],
    chw: (usize, usize, usize),
    p: &super::ir::Pool,
    out_hw: (usize, usize),
    sign: &super::SignKernel,
    b: f64,
) -> Vec<T> {
    // Collect windows grouped by their size (padding can shrink edge windows).
    let mut windows: Vec<Vec<f64>> = Vec::new();
    let _ = ops::pool_windows(x, chw, p, out_hw, |w, _| {
        windows.push(w.iter().map(|v| v.to_f64()).collect());
        T::ZERO
    });
    let mut out = vec![T::ZERO; windows.len()];
    let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, w) in windows.iter().enumerate() {
        by_len.entry(w.len()).or_default().push(i);
    }
    for (n, idxs) in by_len {
        let bp = sign.b_prime(b, n);
        let cols: Vec<Vec<f64>> = (0..n)
            .map(|j| {
                idxs.iter()
                    .map(|&i| {
                        windows
                            .get(i)
                            .and_then(|w| w.get(j))
                            .copied()
                            .unwrap_or(0.0)
                            / bp
                            + 0.5
                    })
                    .collect()
            })
            .collect();
        let m = sign.max_tree(&cols);
        for (&i, v) in idxs.iter().zip(m) {
            if let Some(o) = out.get_mut(i) {
                *o = T::from_f64(bp * (v - 0.5));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{recycle, take_pooled, POOL_BUFFERS, POOL_PER_LEN};

    #[test]
    fn pool_reuses_exact_lengths_only_and_stays_bounded() {
        let mut pool: Vec<Vec<f32>> = Vec::new();
        recycle(&mut pool, vec![1.0; 10]);
        recycle(&mut pool, vec![2.0; 20]);
        recycle(&mut pool, Vec::new());
        assert_eq!(pool.len(), 2);
        // No buffer of 15 values: a fresh (empty) one, and the pool is unchanged.
        assert!(take_pooled(&mut pool, 15).is_empty());
        assert_eq!(take_pooled(&mut pool, 20), vec![2.0; 20]);
        assert_eq!(pool.len(), 1);
        for _ in 0..5 {
            recycle(&mut pool, vec![3.0; 10]);
        }
        assert_eq!(pool.iter().filter(|v| v.len() == 10).count(), POOL_PER_LEN);
        for n in 1..=2 * POOL_BUFFERS {
            recycle(&mut pool, vec![0.0; 100 + n]);
        }
        assert_eq!(pool.len(), POOL_BUFFERS);
        // The oldest went first.
        assert!(take_pooled(&mut pool, 10).is_empty());
        assert_eq!(
            take_pooled(&mut pool, 100 + 2 * POOL_BUFFERS).len(),
            100 + 2 * POOL_BUFFERS
        );
    }
}
