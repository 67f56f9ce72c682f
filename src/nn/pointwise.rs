//! The 1×1-convolution register block with its output pass fused in (the second kernel module
//! of `nn` with `unsafe`, beside `gemm`): `Y = W·X + b` on a block of 6 output channels × 16
//! pixels, then the exact activation of the convolution's [`Epilogue`] (none, ReLU or Clip)
//! on the block while it is still in registers, stored straight into the output planes, with
//! the statistics of the unfused pass (largest |v| for the ReLU, smallest and largest v for
//! the Clip) kept as running per-lane extremes.
//!
//! The unfused pass (`direct::pointwise_packed` before this kernel, still used for the
//! approximate activations and the last < 16 pixels of a chunk) stores the sums to a stack
//! block, copies them with + bias into the output, and runs the activation over the output
//! rows again: three passes over every value instead of one. Every value here is computed by
//! the same operations in the same order (the fused multiply-add chain of `gemm::pw_tile` in
//! k order from 0, then + bias, then the same select), so the output and the statistics are
//! bit-for-bit those of the unfused pass (a proptest checks it).
//!
//! Where the CPU has AVX-512F (detected at run time), the full 16-pixel blocks run on the
//! wide block [`pw_wide_f32`] instead: 12 output channels × 32 (or 16) pixels in up to 24 of
//! the 32 vector registers, each loaded vector of X used twelve times instead of six, with the
//! same chains and selects, hence the same bits (proptests against the 6-row blocks).
#![allow(unsafe_code)]

use super::engine::Real;
use super::gemm::{PW_MR, PW_NR};
use super::ops::EpiStats;

/// An exact activation run in the output pass of [`Real::pw_fused`] (the exact arms of
/// `ops::Epilogue`, bounds rounded to `T`).
#[derive(Debug, Clone, Copy)]
pub enum ExactAct<T> {
    /// v itself.
    Linear,
    /// max(v, 0) (v < 0 → 0, else v: −0 and NaN kept), with the largest |v|.
    Relu,
    /// v < lo → lo, else v > hi → hi, else v (NaN kept), with the smallest and largest v.
    Clip {
        /// min.
        lo: T,
        /// max.
        hi: T,
    },
}

/// Lanes of an 8-wide vector register.
pub(crate) const LANES: usize = 8;

/// Running per-lane statistics of the fused output pass: largest |v| (ReLU; starts at 0),
/// smallest and largest v (Clip; start at +∞ and −∞). NaN never enters (it fails every
/// comparison), and a maximum or minimum is exact in any order, so folding the lanes at the
/// end gives the statistics of the unfused pass.
#[derive(Debug, Clone, Copy)]
pub struct ActLanes<T> {
    /// Largest |v| per lane.
    pub abs: [T; LANES],
    /// Smallest v per lane.
    pub mn: [T; LANES],
    /// Largest v per lane.
    pub mx: [T; LANES],
}

impl<T: Real> ActLanes<T> {
    /// No value seen yet.
    pub(crate) fn new() -> Self {
        Self {
            abs: [T::ZERO; LANES],
            mn: [T::ZERO - T::NEG_INFINITY; LANES],
            mx: [T::NEG_INFINITY; LANES],
        }
    }

    /// Merge the lanes into the statistics of the unfused pass for `act` (ReLU: `max_abs`;
    /// Clip: `range`, left alone when no lane saw a number).
    pub(crate) fn fold_into(&self, act: ExactAct<T>, st: &mut EpiStats) {
        match act {
            ExactAct::Linear => {}
            ExactAct::Relu => {
                st.max_abs = self.abs.iter().fold(st.max_abs, |a, v| a.max(v.to_f64()));
            }
            ExactAct::Clip { .. } => {
                let mn = self.mn.iter().fold(f64::INFINITY, |a, v| a.min(v.to_f64()));
                let mx = self
                    .mx
                    .iter()
                    .fold(f64::NEG_INFINITY, |a, v| a.max(v.to_f64()));
                st.add_range((mn, mx));
            }
        }
    }
}

/// The fused block for f32 with AVX2 + FMA: the 12 accumulator registers of
/// `gemm::pw_tile_f32` (6 rows × 2 vectors of 8 pixels, per k two loads of X and six
/// broadcasts of W), then per row r < `nr`: v = Σ + bias[r] (`_mm256_add_ps`, as the scalar
/// `v + b`), the activation (`max_ps(0, v)` is v < 0 ? 0 : v; the Clip is `gemm`'s
/// `clip_minmax_f32` select), the statistics (`max_ps(|v|, m)` / `min_ps(v, m)` /
/// `max_ps(v, m)` take the running lane when v is NaN), and an unaligned store of 16 values
/// at `out[r·ldo ..]`. A block without bias passes bias −0, which leaves every v unchanged
/// (v + (−0) = v, also for v = −0).
///
/// Returns `false` (and writes nothing) when a slice is too short or `nr` is not in 1..=6.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[expect(clippy::too_many_arguments, reason = "the block's geometry")]
pub(crate) fn pw_fused_f32(
    a: &[f32],
    b: &[f32],
    (ldb, k): (usize, usize),
    bias: &[f32; PW_MR],
    act: ExactAct<f32>,
    nr: usize,
    out: &mut [f32],
    ldo: usize,
    lanes: &mut ActLanes<f32>,
) -> bool {
    match act {
        ExactAct::Linear => fused::<0>(a, b, (ldb, k), bias, (0.0, 0.0), nr, out, ldo, lanes),
        ExactAct::Relu => fused::<1>(a, b, (ldb, k), bias, (0.0, 0.0), nr, out, ldo, lanes),
        ExactAct::Clip { lo, hi } => {
            fused::<2>(a, b, (ldb, k), bias, (lo, hi), nr, out, ldo, lanes)
        }
    }
}

/// [`pw_fused_f32`] for one activation: `MODE` 0 = linear, 1 = ReLU, 2 = Clip(lo, hi).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[expect(clippy::too_many_arguments, reason = "the block's geometry")]
#[inline(always)]
fn fused<const MODE: u8>(
    a: &[f32],
    b: &[f32],
    (ldb, k): (usize, usize),
    bias: &[f32; PW_MR],
    (lo, hi): (f32, f32),
    nr: usize,
    out: &mut [f32],
    ldo: usize,
    lanes: &mut ActLanes<f32>,
) -> bool {
    use std::arch::x86_64::{
        _mm256_add_ps, _mm256_andnot_ps, _mm256_blendv_ps, _mm256_broadcast_ss, _mm256_cmp_ps,
        _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_min_ps, _mm256_set1_ps,
        _mm256_setzero_ps, _mm256_storeu_ps, _CMP_LT_OQ,
    };
    if !(1..=PW_MR).contains(&nr)
        || a.len() < k * PW_MR
        || (k > 0 && b.len() < (k - 1) * ldb + PW_NR)
        || out.len() < (nr - 1) * ldo + PW_NR
    {
        return false;
    }
    let (ap, bp, op) = (a.as_ptr(), b.as_ptr(), out.as_mut_ptr());
    // SAFETY: for every kk < k, the broadcasts read `a[kk·6 + r]`, r < 6, below
    // k·6 ≤ a.len(), and the loads read `b[kk·ldb .. kk·ldb + 16]`, below
    // (k − 1)·ldb + 16 ≤ b.len(); the stores write `out[r·ldo .. r·ldo + 16]` for r < nr,
    // below (nr − 1)·ldo + 16 ≤ out.len() (all checked above); `lanes`' arrays are
    // `[f32; 8]`, loaded and stored whole. All loads and stores are unaligned 8-lane
    // operations on in-bounds f32 values. AVX2 and FMA are enabled at compile time (cfg
    // above).
    unsafe {
        let mut c = [[_mm256_setzero_ps(); 2]; PW_MR];
        for kk in 0..k {
            let br = bp.add(kk * ldb);
            let (b0, b1) = (_mm256_loadu_ps(br), _mm256_loadu_ps(br.add(8)));
            let ar = ap.add(kk * PW_MR);
            for (r, c) in c.iter_mut().enumerate() {
                let w = _mm256_broadcast_ss(&*ar.add(r));
                c[0] = _mm256_fmadd_ps(w, b0, c[0]);
                c[1] = _mm256_fmadd_ps(w, b1, c[1]);
            }
        }
        let (zero, sign) = (_mm256_setzero_ps(), _mm256_set1_ps(-0.0));
        let (lov, hiv) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
        let mut vabs = _mm256_loadu_ps(lanes.abs.as_ptr());
        let mut vmn = _mm256_loadu_ps(lanes.mn.as_ptr());
        let mut vmx = _mm256_loadu_ps(lanes.mx.as_ptr());
        for (r, (c, &bv)) in c.iter().zip(bias).enumerate().take(nr) {
            let bv = _mm256_set1_ps(bv);
            for (h, &s) in c.iter().enumerate() {
                let v = _mm256_add_ps(s, bv);
                let y = match MODE {
                    1 => {
                        vabs = _mm256_max_ps(_mm256_andnot_ps(sign, v), vabs);
                        _mm256_max_ps(zero, v)
                    }
                    2 => {
                        vmn = _mm256_min_ps(v, vmn);
                        vmx = _mm256_max_ps(v, vmx);
                        let t = _mm256_min_ps(hiv, v);
                        _mm256_blendv_ps(t, lov, _mm256_cmp_ps::<_CMP_LT_OQ>(v, lov))
                    }
                    _ => v,
                };
                _mm256_storeu_ps(op.add(r * ldo + 8 * h), y);
            }
        }
        _mm256_storeu_ps(lanes.abs.as_mut_ptr(), vabs);
        _mm256_storeu_ps(lanes.mn.as_mut_ptr(), vmn);
        _mm256_storeu_ps(lanes.mx.as_mut_ptr(), vmx);
    }
    true
}

/// Pixels per AVX-512 vector of f32 (the column step of [`pw_wide_f32`]).
pub(crate) const WIDE_LANES: usize = 16;

/// Whether [`pw_wide_f32`] runs on this CPU (AVX-512F, detected at run time: the crate is
/// compiled for AVX2 + FMA only).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
pub(crate) fn wide_available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// Portable [`wide_available`]: never.
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
)))]
pub(crate) fn wide_available() -> bool {
    false
}

/// The wide fused block for f32 with AVX-512F: up to 12 output channels (two 6-row weight
/// panels, `a[0]` and `a[1]`, each `[k][6]` as for [`pw_fused_f32`]) × `ncol` = 16 or 32
/// pixels (one or two 16-lane vectors), so that up to 24 accumulator registers of the 32 each
/// reuse a loaded vector of X twelve times and a broadcast weight twice: per k, one or two
/// loads of X and 6 or 12 broadcasts for up to 24 FMAs (the 6 × 16 AVX2 block needs two loads
/// and six broadcasts for the work of six). Then per row r < `nr` the output pass of
/// [`pw_fused_f32`] (v = Σ + bias[r], the activation, the statistics) on 16 lanes, and
/// unaligned stores of `ncol` values at `out[r·ldo ..]`; the 16-lane statistics are folded
/// into the 8 of `lanes` (maxima and minima, exact in any order, NaN never entering).
///
/// Every value is the same fused multiply-add chain in k order from 0 as [`pw_fused_f32`]
/// (and `gemm::pw_tile`), then the same + bias and select, so the outputs are bit-for-bit
/// those of the 6 × 16 block. Rows past `nr` are not computed when `nr` ≤ 6 (`a[1]` is then
/// not read).
///
/// Returns `false` (and writes nothing) when AVX-512F is missing, a slice is too short, `nr`
/// is not in 1..=12 or `ncol` is not 16 or 32.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[expect(clippy::too_many_arguments, reason = "the block's geometry")]
pub(crate) fn pw_wide_f32(
    a: [&[f32]; 2],
    b: &[f32],
    (ldb, k): (usize, usize),
    bias: &[f32; 2 * PW_MR],
    act: ExactAct<f32>,
    (nr, ncol): (usize, usize),
    out: &mut [f32],
    ldo: usize,
    lanes: &mut ActLanes<f32>,
) -> bool {
    let two = nr > PW_MR;
    if !wide_available()
        || !(1..=2 * PW_MR).contains(&nr)
        || !(ncol == WIDE_LANES || ncol == 2 * WIDE_LANES)
        || a[0].len() < k * PW_MR
        || (two && a[1].len() < k * PW_MR)
        || (k > 0 && b.len() < (k - 1) * ldb + ncol)
        || out.len() < (nr - 1) * ldo + ncol
    {
        return false;
    }
    let (a0, a1) = (a[0].as_ptr(), if two { a[1] } else { a[0] }.as_ptr());
    let (lo, hi) = match act {
        ExactAct::Clip { lo, hi } => (lo, hi),
        _ => (0.0, 0.0),
    };
    let g = WideGeom {
        ab: [a0, a1, b.as_ptr()],
        ldb,
        k,
        nr,
        out: out.as_mut_ptr(),
        ldo,
    };
    // SAFETY: AVX-512F is present (checked above by `wide_available`). The geometry was
    // checked above: every kk < k reads `a0[kk·6 + r]` and, when nr > 6, `a1[kk·6 + r]`
    // (r < 6, below k·6 ≤ the panel's length; with nr ≤ 6 only the rows of `a0` are
    // computed), and `b[kk·ldb + 16v .. + 16]` for v < ncol / 16, below
    // (k − 1)·ldb + ncol ≤ b.len(); the stores write `out[r·ldo + 16v .. + 16]` for r < nr,
    // below (nr − 1)·ldo + ncol ≤ out.len(). `out` is a `&mut` borrow, so it aliases neither
    // `a` nor `b`.
    unsafe {
        match (two, ncol == 2 * WIDE_LANES, act) {
            (false, false, ExactAct::Linear) => wide::<1, 1, 0>(&g, bias, (lo, hi), lanes),
            (false, false, ExactAct::Relu) => wide::<1, 1, 1>(&g, bias, (lo, hi), lanes),
            (false, false, ExactAct::Clip { .. }) => wide::<1, 1, 2>(&g, bias, (lo, hi), lanes),
            (false, true, ExactAct::Linear) => wide::<1, 2, 0>(&g, bias, (lo, hi), lanes),
            (false, true, ExactAct::Relu) => wide::<1, 2, 1>(&g, bias, (lo, hi), lanes),
            (false, true, ExactAct::Clip { .. }) => wide::<1, 2, 2>(&g, bias, (lo, hi), lanes),
            (true, false, ExactAct::Linear) => wide::<2, 1, 0>(&g, bias, (lo, hi), lanes),
            (true, false, ExactAct::Relu) => wide::<2, 1, 1>(&g, bias, (lo, hi), lanes),
            (true, false, ExactAct::Clip { .. }) => wide::<2, 1, 2>(&g, bias, (lo, hi), lanes),
            (true, true, ExactAct::Linear) => wide::<2, 2, 0>(&g, bias, (lo, hi), lanes),
            (true, true, ExactAct::Relu) => wide::<2, 2, 1>(&g, bias, (lo, hi), lanes),
            (true, true, ExactAct::Clip { .. }) => wide::<2, 2, 2>(&g, bias, (lo, hi), lanes),
        }
    }
    true
}

/// Portable [`pw_wide_f32`]: never runs (the caller falls back to the 6-row blocks).
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
)))]
#[expect(clippy::too_many_arguments, reason = "the block's geometry")]
pub(crate) fn pw_wide_f32(
    _a: [&[f32]; 2],
    _b: &[f32],
    _ldb_k: (usize, usize),
    _bias: &[f32; 2 * PW_MR],
    _act: ExactAct<f32>,
    _nr_ncol: (usize, usize),
    _out: &mut [f32],
    _ldo: usize,
    _lanes: &mut ActLanes<f32>,
) -> bool {
    false
}

/// The raw geometry of one [`pw_wide_f32`] block, checked by its caller: the two weight
/// panels and X (`ab`), X's row stride, the reduction length, the rows stored and where.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
struct WideGeom {
    ab: [*const f32; 3],
    ldb: usize,
    k: usize,
    nr: usize,
    out: *mut f32,
    ldo: usize,
}

/// [`pw_wide_f32`] for `P` panels (6·P rows), `NV` vectors of 16 pixels and one activation
/// (`MODE` 0 = linear, 1 = ReLU, 2 = Clip(lo, hi)).
///
/// # Safety
/// AVX-512F must be present, and `g` must describe in-bounds panels, X and output as
/// [`pw_wide_f32`] checks (rows ≥ 6 of the block are read from `ab[1]` only when P = 2).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[target_feature(enable = "avx512f")]
#[expect(
    clippy::indexing_slicing,
    reason = "constant indices below the arrays' constant lengths"
)]
unsafe fn wide<const P: usize, const NV: usize, const MODE: u8>(
    g: &WideGeom,
    bias: &[f32; 2 * PW_MR],
    (lo, hi): (f32, f32),
    lanes: &mut ActLanes<f32>,
) {
    use std::arch::x86_64::{
        __m512, _mm256_castpd_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_min_ps, _mm256_storeu_ps,
        _mm512_abs_ps, _mm512_add_ps, _mm512_castps512_ps256, _mm512_castps_pd, _mm512_cmp_ps_mask,
        _mm512_extractf64x4_pd, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_blend_ps,
        _mm512_max_ps, _mm512_min_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
        _CMP_LT_OQ,
    };
    let [a0, a1, bp] = g.ab;
    let panels = [a0, a1];
    let mut c = [[_mm512_setzero_ps(); NV]; 2 * PW_MR];
    // SAFETY (all pointer arithmetic and accesses below): within the geometry the caller
    // checked (see `pw_wide_f32`); AVX-512F is present (this function's contract).
    unsafe {
        for kk in 0..g.k {
            let br = bp.add(kk * g.ldb);
            let mut x = [_mm512_setzero_ps(); NV];
            for (v, x) in x.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(br.add(WIDE_LANES * v));
            }
            for (p, &ap) in panels.iter().enumerate().take(P) {
                let ar = ap.add(kk * PW_MR);
                for r in 0..PW_MR {
                    let w = _mm512_set1_ps(*ar.add(r));
                    for (c, &x) in c[p * PW_MR + r].iter_mut().zip(&x) {
                        *c = _mm512_fmadd_ps(w, x, *c);
                    }
                }
            }
        }
        let zero = _mm512_setzero_ps();
        let (lov, hiv) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        let mut vabs: __m512 = zero;
        let mut vmn = _mm512_set1_ps(f32::INFINITY);
        let mut vmx = _mm512_set1_ps(f32::NEG_INFINITY);
        for (r, (c, &bv)) in c.iter().zip(bias).enumerate().take(P * PW_MR) {
            if r >= g.nr {
                break;
            }
            let bv = _mm512_set1_ps(bv);
            for (h, &s) in c.iter().enumerate() {
                let v = _mm512_add_ps(s, bv);
                let y = match MODE {
                    1 => {
                        vabs = _mm512_max_ps(_mm512_abs_ps(v), vabs);
                        _mm512_max_ps(zero, v)
                    }
                    2 => {
                        vmn = _mm512_min_ps(v, vmn);
                        vmx = _mm512_max_ps(v, vmx);
                        let t = _mm512_min_ps(hiv, v);
                        _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, lov), t, lov)
                    }
                    _ => v,
                };
                _mm512_storeu_ps(g.out.add(r * g.ldo + WIDE_LANES * h), y);
            }
        }
        if MODE == 0 {
            return;
        }
        // Fold the 16 lanes into the 8 of `lanes`: `max_ps(s, l)` / `min_ps(s, l)` with s
        // a half of the block's extremes are the selects `s > l ? s : l` / `s < l ? s : l`
        // (neither holds NaN: `max_ps(v, m)` / `min_ps(v, m)` above keep m when v is NaN),
        // so these are the exact maxima and minima.
        let halves = |v: __m512| {
            let hi = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v));
            (_mm512_castps512_ps256(v), _mm256_castpd_ps(hi))
        };
        for (l, v, max) in [
            (lanes.abs.as_mut_ptr(), vabs, true),
            (lanes.mn.as_mut_ptr(), vmn, false),
            (lanes.mx.as_mut_ptr(), vmx, true),
        ] {
            let (a, b) = halves(v);
            let mut m = _mm256_loadu_ps(l);
            for s in [a, b] {
                m = if max {
                    _mm256_max_ps(s, m)
                } else {
                    _mm256_min_ps(s, m)
                };
            }
            _mm256_storeu_ps(l, m);
        }
    }
}

/// The store of a block row (`direct::block`; the last < 16 pixels of a 1×1 chunk):
/// `d[k] = act(a[k] + bias)` for every k < d.len(), the statistics of `act` (the selects of
/// `ops::relu_max` / `ops::clip_minmax`, hence the same bits and extremes) over k < n only,
/// in lane k mod 8. Portable version (and the f32 one for a length that is not a multiple
/// of 8).
#[inline(always)]
pub(crate) fn finish<T: Real>(
    d: &mut [T],
    a: &[T],
    n: usize,
    (bias, act): (T, Option<ExactAct<T>>),
    lanes: &mut ActLanes<T>,
) {
    let chunks = d.chunks_mut(LANES).zip(a.chunks(LANES)).enumerate();
    match act {
        None | Some(ExactAct::Linear) => {
            for (d, a) in d.iter_mut().zip(a) {
                *d = *a + bias;
            }
        }
        Some(ExactAct::Relu) => {
            for (c, (dc, ac)) in chunks {
                for (l, ((d, a), m)) in dc.iter_mut().zip(ac).zip(&mut lanes.abs).enumerate() {
                    let v = *a + bias;
                    let av = if v < T::ZERO { T::ZERO - v } else { v };
                    *m = if av > *m && c * LANES + l < n { av } else { *m };
                    *d = if v < T::ZERO { T::ZERO } else { v };
                }
            }
        }
        Some(ExactAct::Clip { lo, hi }) => {
            for (c, (dc, ac)) in chunks {
                let ls = lanes.mn.iter_mut().zip(lanes.mx.iter_mut());
                for (l, ((d, a), (mn, mx))) in dc.iter_mut().zip(ac).zip(ls).enumerate() {
                    let v = *a + bias;
                    let kept = c * LANES + l < n;
                    *mn = if v < *mn && kept { v } else { *mn };
                    *mx = if v > *mx && kept { v } else { *mx };
                    *d = if v < lo {
                        lo
                    } else if v > hi {
                        hi
                    } else {
                        v
                    };
                }
            }
        }
    }
}

/// [`finish`] for f32 with AVX2: per 8 values, v = a + bias (`_mm256_add_ps`), the statistics
/// blended in only on the lanes k < n (`_mm256_cmpgt_epi32(n, k)`), the activation by the
/// selects of [`pw_fused_f32`], one unaligned store. Same values and statistics as the
/// portable loop; lengths that are not a multiple of 8 (or `a` shorter than `d`) run it.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[inline(always)]
pub(crate) fn finish_f32(
    d: &mut [f32],
    a: &[f32],
    n: usize,
    (bias, act): (f32, Option<ExactAct<f32>>),
    lanes: &mut ActLanes<f32>,
) {
    use std::arch::x86_64::{
        _mm256_add_epi32, _mm256_add_ps, _mm256_andnot_ps, _mm256_blendv_ps, _mm256_castsi256_ps,
        _mm256_cmp_ps, _mm256_cmpgt_epi32, _mm256_loadu_ps, _mm256_max_ps, _mm256_min_ps,
        _mm256_set1_epi32, _mm256_set1_ps, _mm256_setr_epi32, _mm256_setzero_ps, _mm256_storeu_ps,
        _CMP_LT_OQ,
    };
    let len = d.len();
    let Ok(ni) = i32::try_from(n) else {
        return finish(d, a, n, (bias, act), lanes);
    };
    if !len.is_multiple_of(LANES) || a.len() < len || i32::try_from(len).is_err() {
        return finish(d, a, n, (bias, act), lanes);
    }
    let (ap, dp) = (a.as_ptr(), d.as_mut_ptr());
    // SAFETY: every chunk c < len / 8 loads `a[8c .. 8c + 8]` (below len ≤ a.len()) and stores
    // `d[8c .. 8c + 8]` (below len = d.len()), unaligned 8-lane operations on in-bounds f32
    // values; `lanes`' arrays are `[f32; 8]`, loaded and stored whole. AVX2 is enabled at
    // compile time (cfg above).
    unsafe {
        let (zero, sign, bv) = (
            _mm256_setzero_ps(),
            _mm256_set1_ps(-0.0),
            _mm256_set1_ps(bias),
        );
        let nv = _mm256_set1_epi32(ni);
        let mut idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let step = _mm256_set1_epi32(8);
        let mut vabs = _mm256_loadu_ps(lanes.abs.as_ptr());
        let mut vmn = _mm256_loadu_ps(lanes.mn.as_ptr());
        let mut vmx = _mm256_loadu_ps(lanes.mx.as_ptr());
        for c in 0..len / LANES {
            let v = _mm256_add_ps(_mm256_loadu_ps(ap.add(LANES * c)), bv);
            // All ones on the lanes k < n.
            let keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(nv, idx));
            idx = _mm256_add_epi32(idx, step);
            let y = match act {
                None | Some(ExactAct::Linear) => v,
                Some(ExactAct::Relu) => {
                    let m = _mm256_max_ps(_mm256_andnot_ps(sign, v), vabs);
                    vabs = _mm256_blendv_ps(vabs, m, keep);
                    _mm256_max_ps(zero, v)
                }
                Some(ExactAct::Clip { lo, hi }) => {
                    vmn = _mm256_blendv_ps(vmn, _mm256_min_ps(v, vmn), keep);
                    vmx = _mm256_blendv_ps(vmx, _mm256_max_ps(v, vmx), keep);
                    let (lov, hiv) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
                    let t = _mm256_min_ps(hiv, v);
                    _mm256_blendv_ps(t, lov, _mm256_cmp_ps::<_CMP_LT_OQ>(v, lov))
                }
            };
            _mm256_storeu_ps(dp.add(LANES * c), y);
        }
        _mm256_storeu_ps(lanes.abs.as_mut_ptr(), vabs);
        _mm256_storeu_ps(lanes.mn.as_mut_ptr(), vmn);
        _mm256_storeu_ps(lanes.mx.as_mut_ptr(), vmx);
    }
}

#[cfg(all(
    test,
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod tests {
    use super::super::gemm::pw_tile;
    use super::super::ops::tests::lcg;
    use super::super::ops::{clip_minmax, relu_max};
    use super::*;
    use proptest::prelude::*;

    /// The unfused output pass on one row of a block: `v = s + bias` (s itself without
    /// bias), then the portable activation pass, its statistics added to `ws`.
    fn unfused_row(
        v: &mut [f32],
        s: &[f32],
        bias: Option<f32>,
        act: ExactAct<f32>,
        ws: &mut EpiStats,
    ) {
        for (d, &s) in v.iter_mut().zip(s) {
            *d = bias.map_or(s, |b| s + b);
        }
        match act {
            ExactAct::Linear => {}
            ExactAct::Relu => ws.max_abs = ws.max_abs.max(relu_max(v)),
            ExactAct::Clip { lo, hi } => ws.add_range(clip_minmax(v, lo, hi)),
        }
    }

    /// The same output bits and statistics.
    fn same(got: &[f32], want: &[f32], st: &EpiStats, ws: &EpiStats) -> Result<(), TestCaseError> {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(got), bits(want));
        prop_assert_eq!(st.max_abs.to_bits(), ws.max_abs.to_bits());
        prop_assert_eq!(
            st.range.map(|(a, b)| (a.to_bits(), b.to_bits())),
            ws.range.map(|(a, b)| (a.to_bits(), b.to_bits()))
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn fused_block_matches_portable_block_and_pass_bit_for_bit(
            k in 0usize..40, extra in 0usize..9, nr in 1usize..=PW_MR, seed in any::<u64>(),
            specials in prop::collection::vec((0usize..4, 0usize..1000), 0..6),
            with_bias in any::<bool>(), mode in 0u8..3,
        ) {
            // The portable block (`gemm::pw_tile`), then + bias and the portable passes
            // (`ops::relu_max`, `ops::clip_minmax`) on its rows, against the fused kernel:
            // same bits and statistics, also for NaN, ±∞, ±0 and values at or beyond the
            // Clip bounds in the input planes (`specials`), and for k = 0.
            let ldb = PW_NR + extra;
            let mut r = lcg(seed);
            let a: Vec<f32> = (0..k * PW_MR).map(|_| r() as f32).collect();
            let mut b: Vec<f32> = (0..k * ldb).map(|_| 4.0 * r() as f32).collect();
            let (lo, hi) = (-0.25f32, 0.5f32);
            let nb = b.len().max(1);
            for &(what, at) in &specials {
                if let Some(v) = b.get_mut(at % nb) {
                    *v = [f32::NAN, f32::INFINITY, -0.0, lo][what];
                }
            }
            let bias: [f32; PW_MR] = if with_bias {
                std::array::from_fn(|_| r() as f32)
            } else {
                [-0.0; PW_MR]
            };
            let act = match mode {
                0 => ExactAct::Linear,
                1 => ExactAct::Relu,
                _ => ExactAct::Clip { lo, hi },
            };
            let ldo = PW_NR + 3;
            let mut got = vec![7.0f32; PW_MR * ldo];
            let mut lanes = ActLanes::new();
            prop_assert!(pw_fused_f32(&a, &b, (ldb, k), &bias, act, nr, &mut got, ldo, &mut lanes));
            let mut st = EpiStats::default();
            lanes.fold_into(act, &mut st);

            let mut acc = [[0.0f32; PW_NR]; PW_MR];
            prop_assert!(pw_tile(&a, &b, ldb, k, &mut acc));
            let mut want = vec![7.0f32; PW_MR * ldo];
            let mut ws = EpiStats::default();
            for (row, (s, &bv)) in acc.iter().zip(&bias).enumerate().take(nr) {
                let v = &mut want[row * ldo..row * ldo + PW_NR];
                unfused_row(v, s, with_bias.then_some(bv), act, &mut ws);
            }
            same(&got, &want, &st, &ws)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn wide_block_matches_portable_blocks_and_pass_bit_for_bit(
            k in 0usize..40, extra in 0usize..9, nr in 1usize..=2 * PW_MR, two_vectors in any::<bool>(),
            seed in any::<u64>(), specials in prop::collection::vec((0usize..4, 0usize..2000), 0..6),
            with_bias in any::<bool>(), mode in 0u8..3,
        ) {
            // The AVX-512F block (where the CPU has it) against the portable 6-row blocks
            // (`gemm::pw_tile` on each panel and 16-pixel half), + bias and the portable
            // passes on their rows: same bits and statistics, also for NaN, ±∞, ±0 and values
            // at the Clip bound in the input planes, for k = 0 and for every row count.
            if !wide_available() {
                eprintln!("skipped: this CPU has no AVX-512F (the wide block never runs here)");
                return Ok(());
            }
            let ncol = if two_vectors { 2 * WIDE_LANES } else { WIDE_LANES };
            let ldb = ncol + extra;
            let mut r = lcg(seed);
            let pan: [Vec<f32>; 2] = std::array::from_fn(|_| (0..k * PW_MR).map(|_| r() as f32).collect());
            let mut b: Vec<f32> = (0..k * ldb).map(|_| 4.0 * r() as f32).collect();
            let (lo, hi) = (-0.25f32, 0.5f32);
            let nb = b.len().max(1);
            for &(what, at) in &specials {
                if let Some(v) = b.get_mut(at % nb) {
                    *v = [f32::NAN, f32::INFINITY, -0.0, lo][what];
                }
            }
            let bias: [f32; 2 * PW_MR] = if with_bias {
                std::array::from_fn(|_| r() as f32)
            } else {
                [-0.0; 2 * PW_MR]
            };
            let act = match mode {
                0 => ExactAct::Linear,
                1 => ExactAct::Relu,
                _ => ExactAct::Clip { lo, hi },
            };
            let ldo = ncol + 5;
            let mut got = vec![7.0f32; 2 * PW_MR * ldo];
            let mut lanes = ActLanes::new();
            // Lanes that already hold values, as after earlier blocks.
            finish(&mut [0.0; 8], &[0.3, -0.7, 0.1, 0.0, -0.2, 0.9, 0.4, -0.1], 8, (0.0, Some(act)), &mut lanes);
            let mut ws = EpiStats::default();
            lanes.fold_into(act, &mut ws);
            prop_assert!(pw_wide_f32([&pan[0], &pan[1]], &b, (ldb, k), &bias, act, (nr, ncol), &mut got, ldo, &mut lanes));
            let mut st = EpiStats::default();
            lanes.fold_into(act, &mut st);

            let mut want = vec![7.0f32; 2 * PW_MR * ldo];
            for half in 0..ncol / PW_NR {
                for (p, a) in pan.iter().enumerate() {
                    let mut acc = [[0.0f32; PW_NR]; PW_MR];
                    prop_assert!(pw_tile(a, b.get(half * PW_NR..).unwrap_or(&[]), ldb, k, &mut acc));
                    for (i, s) in acc.iter().enumerate() {
                        let row = p * PW_MR + i;
                        if row >= nr {
                            break;
                        }
                        let v = &mut want[row * ldo + half * PW_NR..][..PW_NR];
                        unfused_row(v, s, with_bias.then_some(bias[row]), act, &mut ws);
                    }
                }
            }
            same(&got, &want, &st, &ws)?;
        }
    }

    #[test]
    fn wide_block_refuses_short_slices_and_bad_sizes() {
        if !wide_available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let (k, n) = (3, 2 * WIDE_LANES);
        let (a, b) = (vec![1.0f32; k * PW_MR], vec![1.0f32; k * n]);
        let mut out = vec![0.0f32; 2 * PW_MR * n];
        let mut l = ActLanes::new();
        let bias = [0.0; 2 * PW_MR];
        let mut call = |a1: &[f32], b: &[f32], nr_ncol, out_len: usize| {
            let o = &mut out[..out_len];
            pw_wide_f32(
                [&a, a1],
                b,
                (n, k),
                &bias,
                ExactAct::Relu,
                nr_ncol,
                o,
                n,
                &mut l,
            )
        };
        let full = 2 * PW_MR * n;
        assert!(call(&a, &b, (2 * PW_MR, n), full));
        // The second panel is read only for rows past 6.
        assert!(call(&[], &b, (PW_MR, n), full));
        assert!(!call(&a[1..], &b, (PW_MR + 1, n), full));
        assert!(!call(&a, &b[1..], (2 * PW_MR, n), full));
        assert!(!call(&a, &b, (0, n), full));
        assert!(!call(&a, &b, (2 * PW_MR + 1, n), full));
        assert!(!call(&a, &b, (2 * PW_MR, 24), full));
        assert!(!call(&a, &b, (2 * PW_MR, n), full - 1));
        // Every value of a block of ones: Σ over k = 3.
        assert!(call(&a, &b, (2 * PW_MR, n), full));
        assert!(out.iter().all(|&v| v == 3.0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn f32_row_store_matches_portable_bit_for_bit(
            len in 1usize..40, n in 0usize..40, seed in any::<u64>(), mode in 0u8..4,
            specials in prop::collection::vec((0usize..5, 0usize..40), 0..6),
        ) {
            // The AVX2 depthwise row store (multiples of 8 in vectors, other lengths by the
            // portable loop) against the portable one: same values, and the same statistics,
            // kept only on k < n, also for NaN, ±∞, ±0 and values at the Clip bounds.
            let mut r = lcg(seed);
            let mut a: Vec<f32> = (0..len).map(|_| 2.0 * r() as f32).collect();
            let (lo, hi) = (-0.25f32, 0.5f32);
            for &(what, at) in &specials {
                if let Some(v) = a.get_mut(at) {
                    *v = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, hi][what];
                }
            }
            let act = match mode {
                0 => None,
                1 => Some(ExactAct::Linear),
                2 => Some(ExactAct::Relu),
                _ => Some(ExactAct::Clip { lo, hi }),
            };
            let bias = r() as f32;
            let mut l1 = ActLanes::new();
            // Lanes that already hold values, as after earlier rows.
            finish(&mut [0.0; 8], &[0.3, -0.7, 0.1, 0.0, -0.2, 0.9, 0.4, -0.1], 8, (0.0, act), &mut l1);
            let mut l2 = l1;
            let (mut d1, mut d2) = (vec![7.0f32; len], vec![7.0f32; len]);
            finish(&mut d1, &a, n, (bias, act), &mut l1);
            finish_f32(&mut d2, &a, n, (bias, act), &mut l2);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&d1), bits(&d2));
            for (x, y) in [(l1.abs, l2.abs), (l1.mn, l2.mn), (l1.mx, l2.mx)] {
                prop_assert_eq!(bits(&x), bits(&y));
            }
        }
    }

    #[test]
    fn short_slices_and_bad_row_counts_are_refused() {
        let (a, b) = (vec![1.0f32; 2 * PW_MR], vec![1.0f32; 2 * PW_NR]);
        let mut out = vec![0.0f32; PW_MR * PW_NR];
        let mut l = ActLanes::new();
        let bias = [0.0; PW_MR];
        let call = |a: &[f32], b: &[f32], nr, out: &mut [f32], l: &mut ActLanes<f32>| {
            pw_fused_f32(a, b, (PW_NR, 2), &bias, ExactAct::Relu, nr, out, PW_NR, l)
        };
        assert!(call(&a, &b, PW_MR, &mut out, &mut l));
        assert!(!call(&a[1..], &b, PW_MR, &mut out, &mut l));
        assert!(!call(&a, &b[1..], PW_MR, &mut out, &mut l));
        assert!(!call(&a, &b, 0, &mut out, &mut l));
        assert!(!call(&a, &b, PW_MR + 1, &mut out, &mut l));
        assert!(!call(&a, &b, PW_MR, &mut out[1..], &mut l));
    }
}
