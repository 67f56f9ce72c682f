//! The depthwise convolution on blocks of 8 channels (the third kernel module of `nn` with
//! `unsafe`, beside `gemm` and `pointwise`): for output channel c, row oy and column ox,
//! y_c[oy, ox] = b_c + Σ_{i,j} w_{c,i,j}·x̂_c[oy·s_h + i·d_h, ox·s_w + j] over the zero-padded
//! input x̂, with the 8 channels of a block in the 8 lanes of one AVX2 vector.
//!
//! The per-plane kernel of `direct` runs one channel at a time with the output pixels in the
//! lanes: a 7- or 14-pixel row leaves lanes empty, and each tap needs its own (mostly
//! unaligned) load per vector of sums. Here the block's planes are first interleaved into a
//! zero-padded `[H_p][W_p][8]` buffer (one 8 × 8 register transpose per 8 pixels; the
//! padding cells stay zero), so every lane holds a real channel and an input vector (8
//! channels at one pixel) is one aligned load. A register block holds the sums of 8
//! consecutive output pixels of a row (8 accumulators); per kernel row i the kw weight
//! vectors are loaded once, and each input vector of the row window is loaded once and
//! multiplied into every output pixel whose tap it is (for stride 1 and kw = 5: 12 loads for
//! 40 fused multiply-adds, against 40 before). Then + bias and the exact activation (with its
//! statistics) run on the 8 interleaved vectors, an 8 × 8 transpose turns them into 8
//! channel rows of 8 pixels, stored into the output planes.
//!
//! Every value is the same fused multiply-add chain as the per-plane kernel (from 0, over the
//! taps in (i, j) order, padding cells included as zeros), then the same + bias and the same
//! selects: bit-for-bit the same output and statistics (a proptest in `direct` checks it).
//! Supported: kw ∈ {3, 5}, s_w ∈ {1, 2}, d_w = 1, kh ≤ 8 (any s_h, d_h), the depthwise
//! convolutions of EfficientNet-Lite0 and MobileNets; other shapes stay on the per-plane
//! kernel.
#![allow(unsafe_code)]

use super::pointwise::{ActLanes, ExactAct};

/// Channels per block (the lanes of one AVX2 vector of f32).
pub(crate) const CB: usize = 8;

/// Output pixels per register block (8 accumulator vectors).
const RB: usize = 8;

/// Most kernel rows the blocked kernel takes.
const KH_MAX: usize = 8;

/// Geometry of a depthwise convolution: input H × W, output H_o × W_o, kernel kh × kw,
/// strides, dilations and pads (top, left, bottom, right), as `ops::ConvK`.
#[derive(Debug, Clone, Copy)]
pub struct DwGeom {
    /// Input height H and width W.
    pub hw: (usize, usize),
    /// Output height H_o and width W_o.
    pub out: (usize, usize),
    /// Kernel height kh and width kw.
    pub k: (usize, usize),
    /// Strides (s_h, s_w).
    pub strides: [usize; 2],
    /// Dilations (d_h, d_w).
    pub dilations: [usize; 2],
    /// Pads (top, left, bottom, right).
    pub pads: [usize; 4],
}

impl DwGeom {
    /// Padded input height H_p and width W_p.
    fn padded(&self) -> (usize, usize) {
        let [pt, pl, pb, pr] = self.pads;
        (self.hw.0 + pt + pb, self.hw.1 + pl + pr)
    }

    /// Whether the blocked kernel takes this geometry (see the module docs) and the output
    /// fits in the padded input.
    pub(crate) fn blocked_ok(&self) -> bool {
        let (hp, wp) = self.padded();
        let ((ho, wo), (kh, kw)) = (self.out, self.k);
        let ([sh, sw], [dh, dw]) = (self.strides, self.dilations);
        matches!(kw, 3 | 5)
            && matches!(sw, 1 | 2)
            && dw == 1
            && (1..=KH_MAX).contains(&kh)
            && sh > 0
            && dh > 0
            && ho > 0
            && wo > 0
            && (ho - 1) * sh + (kh - 1) * dh < hp
            && (wo - 1) * sw + kw - 1 < wp
    }

    /// Values of the interleaved buffer: `[H_p][W_p][8]` plus the reads of the last register
    /// block past the end (its pixels past W_o read up to (RB − 1)·s_w cells further), plus
    /// [`CB`] so that the buffer can start at a 32-byte boundary.
    pub(crate) fn buf_len(&self) -> usize {
        let (hp, wp) = self.padded();
        (hp * wp + RB * self.strides[1] + 1) * CB
    }
}

/// Where the `[H_p][W_p][8]` buffer starts in a slice of [`DwGeom::buf_len`] values: at the
/// first 32-byte boundary (every input vector is then one aligned load), ≤ 7 values in (8
/// where the address gives none). The same for every call on the same slice.
fn aligned_start<T>(buf: &[T]) -> usize {
    buf.as_ptr().align_offset(32).min(CB)
}

/// Make `buf` ready for the blocks of one convolution of geometry `g`: at least
/// [`DwGeom::buf_len`] values, and every padding cell of the `[H_p][W_p][8]` buffer (from
/// [`aligned_start`]) zero. The interior cells are left as they are (each block overwrites
/// them), so a buffer kept across convolutions costs no full zeroing.
pub(crate) fn prepare_buf<T: Copy>(buf: &mut Vec<T>, g: &DwGeom, zero: T) {
    if buf.len() < g.buf_len() {
        buf.resize(g.buf_len(), zero);
    }
    let (h, _) = g.hw;
    let (hp, wp) = g.padded();
    let [pt, pl, _, pr] = g.pads;
    let start = aligned_start(buf);
    let Some(cells) = buf.get_mut(start..start + hp * wp * CB) else {
        return;
    };
    for (y, row) in cells.chunks_exact_mut(wp * CB).enumerate() {
        if y < pt || y >= pt + h {
            row.fill(zero);
        } else {
            let (left, rest) = row.split_at_mut(pl * CB);
            left.fill(zero);
            let r0 = rest.len().saturating_sub(pr * CB);
            if let Some(right) = rest.get_mut(r0..) {
                right.fill(zero);
            }
        }
    }
}

/// One block of ≤ 8 channels: the first `cr` input planes from `x` (H·W values each), their
/// weights `wt` (the block's `[kh·kw][8]` panel of `ConvK::pack`, channel in the lane, 0 past
/// `cr`), their biases (lanes ≥ `cr` ignored) and the exact
/// activation run as the values are stored (`None`: the values + bias, for a separate pass).
#[derive(Debug, Clone, Copy)]
pub struct DwBlock<'a, T> {
    /// Input planes of the block's channels.
    pub x: &'a [T],
    /// Channels in the block (1..=8).
    pub cr: usize,
    /// Weights of the block's channels, `[kh·kw][8]`.
    pub wt: &'a [T],
    /// Biases (0 where the convolution has none).
    pub bias: [T; CB],
    /// Exact activation in the store.
    pub act: Option<ExactAct<T>>,
}

/// The block `b` of the depthwise convolution `g` for f32 with AVX2 + FMA (see the module
/// docs): writes planes `0..cr` of `out` (H_o·W_o values each) and adds the statistics of the
/// activation to `lanes`. `buf` must hold [`DwGeom::buf_len`] values, zero wherever a
/// padding cell lies ([`prepare_buf`], once per convolution; each block overwrites only the
/// interior cells, lanes ≥ `cr` may hold an earlier block's values: they are never stored
/// and enter no statistic). Returns `false` (nothing written) for a geometry that
/// [`DwGeom::blocked_ok`] refuses or a slice that is too short.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
pub(crate) fn dw_block8_f32(
    b: &DwBlock<'_, f32>,
    g: &DwGeom,
    buf: &mut [f32],
    out: &mut [f32],
    lanes: &mut ActLanes<f32>,
) -> bool {
    let ((h, w), (ho, wo), (kh, kw)) = (g.hw, g.out, g.k);
    let cr = b.cr;
    if !g.blocked_ok()
        || !(1..=CB).contains(&cr)
        || b.x.len() < cr * h * w
        || b.wt.len() < kh * kw * CB
        || out.len() < cr * ho * wo
        || buf.len() < g.buf_len()
    {
        return false;
    }
    let Some(buf) = buf.get_mut(aligned_start(buf)..) else {
        return false;
    };
    interleave(b, g, buf);
    let rows = match (kw, g.strides[1]) {
        (3, 1) => rows_f32::<3, 1>,
        (3, 2) => rows_f32::<3, 2>,
        (5, 1) => rows_f32::<5, 1>,
        (5, 2) => rows_f32::<5, 2>,
        _ => return false,
    };
    // SAFETY: `blocked_ok` holds (kw and s_w match the instance, kh ≤ KH_MAX, the output fits
    // in the padded input), `buf` holds buf_len − CB ≥ (H_p·W_p + RB·s_w)·8 values from a
    // 32-byte boundary (off ≤ 7 when `align_offset` succeeds, else CB: then the slice is
    // shorter and `rows_f32` only uses unaligned loads), `out` holds cr planes of H_o·W_o,
    // `b.wt` kh·kw·8 values (checked above).
    unsafe { rows(buf, g, b, out, lanes) };
    true
}

/// Copy the block's `cr` planes into the interior of the `[H_p][W_p][8]` buffer (pixel
/// (y, x) to cell (y + p_t, x + p_l), channel in the lane): for a full block, 8 pixels at a
/// time by an 8 × 8 register transpose, the rest one value at a time.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[expect(
    clippy::indexing_slicing,
    reason = "every index is below cr·H·W ≤ x.len() or H_p·W_p·8 ≤ buf.len() (checked by the caller)"
)]
fn interleave(b: &DwBlock<'_, f32>, g: &DwGeom, buf: &mut [f32]) {
    use std::arch::x86_64::{_mm256_loadu_ps, _mm256_storeu_ps};
    let (h, w) = g.hw;
    let (_, wp) = g.padded();
    let [pt, pl, _, _] = g.pads;
    for y in 0..h {
        let cell0 = (y + pt) * wp + pl;
        // Vectors of 8 pixels while the 8 loads stay within `x` (a row's last vector reads on
        // into the next row or plane; only its first W − x0 pixels are stored).
        let mut x0 = 0;
        while b.cr == CB && x0 < w && (7 * h + y) * w + x0 + 8 <= b.x.len() {
            let np = CB.min(w - x0);
            // SAFETY: the loads read x[(ch·H + y)·W + x0 .. + 8] for ch < 8, below x.len()
            // (loop condition, ch = 7 the largest); the stores write buf[(cell0 + x0 + p)·8
            // .. + 8] for p < np ≤ W − x0, cells of row y + p_t below H_p·W_p: within buf
            // (checked by the caller). AVX2 is enabled at compile time (cfg above).
            unsafe {
                let mut r = [std::arch::x86_64::_mm256_setzero_ps(); 8];
                for (ch, v) in r.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(b.x.as_ptr().add((ch * h + y) * w + x0));
                }
                transpose8(&mut r);
                for (p, v) in r.iter().enumerate().take(np) {
                    _mm256_storeu_ps(buf.as_mut_ptr().add((cell0 + x0 + p) * CB), *v);
                }
            }
            x0 += np;
        }
        let full = x0;
        for ch in 0..b.cr {
            let src = &b.x[(ch * h + y) * w..(ch * h + y + 1) * w];
            for (xi, &v) in src.iter().enumerate().skip(full) {
                buf[(cell0 + xi) * CB + ch] = v;
            }
        }
    }
}

/// In-register transpose of 8 vectors of 8 lanes: afterwards `r[k][j]` is the former
/// `r[j][k]` (unpack pairs, shuffle quadruples, swap the 128-bit halves).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[inline(always)]
fn transpose8(r: &mut [std::arch::x86_64::__m256; 8]) {
    use std::arch::x86_64::{
        _mm256_permute2f128_ps, _mm256_shuffle_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps,
    };
    // SAFETY: register-only AVX instructions; AVX2 is enabled at compile time (cfg above).
    unsafe {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        r[0] = _mm256_permute2f128_ps::<0x20>(u0, u4);
        r[1] = _mm256_permute2f128_ps::<0x20>(u1, u5);
        r[2] = _mm256_permute2f128_ps::<0x20>(u2, u6);
        r[3] = _mm256_permute2f128_ps::<0x20>(u3, u7);
        r[4] = _mm256_permute2f128_ps::<0x31>(u0, u4);
        r[5] = _mm256_permute2f128_ps::<0x31>(u1, u5);
        r[6] = _mm256_permute2f128_ps::<0x31>(u2, u6);
        r[7] = _mm256_permute2f128_ps::<0x31>(u3, u7);
    }
}

/// All output rows of one block for kernel width `KW` and column stride `S` (see the module
/// docs), register blocks of [`RB`] pixels along each row.
///
/// # Safety
/// The geometry passes [`DwGeom::blocked_ok`] with kw = `KW`, s_w = `S`; `buf` holds at least
/// (H_p·W_p + RB·S)·8 values; `b.wt` kh·KW·8; `out` `cr` planes of H_o·W_o; AVX2 + FMA are
/// enabled (cfg).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[inline(never)]
#[expect(
    clippy::indexing_slicing,
    reason = "wv[q − S·p] only where 0 ≤ q − S·p < KW = wv.len() (the condition before it)"
)]
unsafe fn rows_f32<const KW: usize, const S: usize>(
    buf: &[f32],
    g: &DwGeom,
    b: &DwBlock<'_, f32>,
    out: &mut [f32],
    lanes: &mut ActLanes<f32>,
) {
    use std::arch::x86_64::{
        _mm256_add_ps, _mm256_andnot_ps, _mm256_blendv_ps, _mm256_castsi256_ps, _mm256_cmp_ps,
        _mm256_cmpgt_epi32, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_min_ps,
        _mm256_set1_epi32, _mm256_set1_ps, _mm256_setr_epi32, _mm256_setzero_ps, _mm256_storeu_ps,
        _CMP_LT_OQ,
    };
    let ((ho, wo), (kh, _)) = (g.out, g.k);
    let (_, wp) = g.padded();
    let (sh, dh) = (g.strides[0], g.dilations[0]);
    let plane = ho * wo;
    let cr = b.cr;
    let (bp, wbp, op) = (buf.as_ptr(), b.wt.as_ptr(), out.as_mut_ptr());
    let zero = _mm256_setzero_ps();
    let sign = _mm256_set1_ps(-0.0);
    let bv = _mm256_loadu_ps(b.bias.as_ptr());
    // All ones on the lanes of the block's channels.
    let chmask = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
        _mm256_set1_epi32(cr as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    ));
    let mut vabs = _mm256_loadu_ps(lanes.abs.as_ptr());
    let mut vmn = _mm256_loadu_ps(lanes.mn.as_ptr());
    let mut vmx = _mm256_loadu_ps(lanes.mx.as_ptr());
    for oy in 0..ho {
        let mut ox = 0;
        while ox < wo {
            let n = RB.min(wo - ox);
            let mut acc = [zero; RB];
            for i in 0..kh {
                // SAFETY: cell ((oy·s_h + i·d_h)·W_p + ox·S + q) for q < S·(RB − 1) + KW is below
                // (H_p − 1)·W_p + (W_o − 1)·S + KW − 1 + S·(RB − 1) + 1 ≤ H_p·W_p + RB·S
                // (blocked_ok), within `buf`; tap (i, j) of the weights is below kh·KW·8 ≤ wt.len().
                let base = bp.add(((oy * sh + i * dh) * wp + ox * S) * CB);
                let wrow = wbp.add(i * KW * CB);
                let mut wv = [zero; KW];
                for (j, v) in wv.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(wrow.add(j * CB));
                }
                // Input column q of the window is tap j = q − S·p of output pixel p: each
                // input vector is loaded once; per pixel the taps still come in j order. The
                // columns are spelled out (q < S·(RB − 1) + KW ≤ 19) so that the compiler
                // unrolls them for every stride and keeps the sums in registers.
                macro_rules! columns {
                    ($($q:literal)*) => {$(
                        if $q < S * (RB - 1) + KW {
                            let xv = _mm256_loadu_ps(base.add($q * CB));
                            for (p, a) in acc.iter_mut().enumerate() {
                                if $q >= S * p && $q - S * p < KW {
                                    *a = _mm256_fmadd_ps(xv, wv[$q - S * p], *a);
                                }
                            }
                        }
                    )*};
                }
                columns!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18);
            }
            // + bias, the activation and its statistics (lanes of real channels and pixels
            // p < n only), as `pointwise::finish_f32`.
            match b.act {
                None | Some(ExactAct::Linear) => {
                    for a in acc.iter_mut() {
                        *a = _mm256_add_ps(*a, bv);
                    }
                }
                Some(ExactAct::Relu) => {
                    for (p, a) in acc.iter_mut().enumerate() {
                        let v = _mm256_add_ps(*a, bv);
                        let keep = if p < n { chmask } else { zero };
                        let m = _mm256_max_ps(_mm256_andnot_ps(sign, v), vabs);
                        vabs = _mm256_blendv_ps(vabs, m, keep);
                        *a = _mm256_max_ps(zero, v);
                    }
                }
                Some(ExactAct::Clip { lo, hi }) => {
                    let (lov, hiv) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
                    for (p, a) in acc.iter_mut().enumerate() {
                        let v = _mm256_add_ps(*a, bv);
                        let keep = if p < n { chmask } else { zero };
                        vmn = _mm256_blendv_ps(vmn, _mm256_min_ps(v, vmn), keep);
                        vmx = _mm256_blendv_ps(vmx, _mm256_max_ps(v, vmx), keep);
                        let t = _mm256_min_ps(hiv, v);
                        *a = _mm256_blendv_ps(t, lov, _mm256_cmp_ps::<_CMP_LT_OQ>(v, lov));
                    }
                }
            }
            // acc[ch] = pixels ox .. ox + 8 of channel ch.
            transpose8(&mut acc);
            for (ch, a) in acc.iter().enumerate().take(cr) {
                let d = ch * plane + oy * wo + ox;
                if d + RB <= (ch + 1) * plane {
                    // SAFETY: d + 8 ≤ (ch + 1)·H_o·W_o ≤ cr·H_o·W_o ≤ out.len(). The values past
                    // pixel n land on later rows of the same plane, written later (rows
                    // ascending).
                    _mm256_storeu_ps(op.add(d), *a);
                } else {
                    let mut t = [0.0f32; RB];
                    _mm256_storeu_ps(t.as_mut_ptr(), *a);
                    for (k, &v) in t.iter().enumerate().take(n) {
                        // SAFETY: d + k < d + n = (ch·H_o + oy)·W_o + ox + n ≤ (ch + 1)·H_o·W_o.
                        *op.add(d + k) = v;
                    }
                }
            }
            ox += RB;
        }
    }
    _mm256_storeu_ps(lanes.abs.as_mut_ptr(), vabs);
    _mm256_storeu_ps(lanes.mn.as_mut_ptr(), vmn);
    _mm256_storeu_ps(lanes.mx.as_mut_ptr(), vmx);
}
