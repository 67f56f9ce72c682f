//! Two special cases of the convolution that `ops::conv_epi` hands to dedicated kernels
//! instead of the 16-channel × 6-pixel tile kernel (which would leave 15 of its 16 channel
//! lanes empty on a depthwise convolution, and does not block for cache on long 1×1 sums):
//!
//! - **depthwise** (groups = C_in = C_out): per channel c and output row oy,
//!   y_c[oy, ·] = b_c + Σ_{i,j} w_{c,i,j}·x̂_c[oy·s_h + i·d_h, · ·s_w + j·d_w] over the zero-padded
//!   input x̂, one fused multiply-add per tap over the whole row, so the inner loop runs over
//!   contiguous pixels and vectorises (each padded input row is first split into its s_w
//!   phases x̂[·, p + s_w·q], which makes the strided taps contiguous too);
//! - **1×1, stride 1, no padding**: per group g, Y_g = W_g·X_g + b, a plain matrix product
//!   (`matrixmultiply`, cache-blocked) of the [C_out/g × C_in/g] weights with the
//!   [C_in/g × H·W] input planes.
//!
//! Both apply the same [`Epilogue`] as the tile kernel (bias first, then the activation on
//! every value, with the same statistics), so the values differ from the tile kernel's only
//! by the summation order of the dot products.

use super::engine::Real;
use super::ops::{clip_minmax, relu_max, ConvK, EpiStats, Epilogue};

/// Output pixels per register block of the depthwise kernel (4 AVX2 vectors of f32).
const PXB: usize = 32;

/// Output pixels per block of the row's last partial blocks (EfficientNet's widths 7, 14, 28
/// are below [`PXB`]).
const PXB_TAIL: usize = 8;

/// One block of P output pixels of a depthwise row: `out[k] = bias + Σ_taps w·buf[start + t +
/// k]` for k < out.len() ≤ P, reading P cells per tap (the caller guarantees they exist).
/// Returns out.len().
#[expect(
    clippy::indexing_slicing,
    reason = "the caller sizes `buf` with PXB ≥ P spare cells past every window it reads"
)]
#[inline(always)]
fn block<T: Real, const P: usize>(
    buf: &[T],
    start: usize,
    taps: &[usize],
    wt: &[T],
    bias: T,
    out: &mut [T],
) -> usize {
    let mut acc = [T::ZERO; P];
    for (&t, &wv) in taps.iter().zip(wt) {
        let src = &buf[start + t..start + t + P];
        if let Ok(src) = <&[T; P]>::try_from(src) {
            for (a, &s) in acc.iter_mut().zip(src) {
                *a = s.mul_add(wv, *a);
            }
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = a + bias;
    }
    out.len()
}

/// Whether `k` on `c` input channels is depthwise with multiplier 1 (groups = C_in = C_out).
pub(crate) fn is_depthwise<T>(k: &ConvK<T>, c: usize) -> bool {
    c > 1 && k.groups == c && k.cin == c && k.cout == c
}

/// Whether `k` is a 1×1 convolution with stride 1 and no padding (a matrix product per group).
pub(crate) fn is_pointwise<T>(k: &ConvK<T>) -> bool {
    k.kh == 1 && k.kw == 1 && k.strides == [1, 1] && k.pads == [0; 4]
}

/// Apply the epilogue to finished values `v` (bias already added), collecting statistics (also
/// the engine's pass for an activation node that no convolution runs in its output pass).
pub(crate) fn epilogue_slice<T: Real>(v: &mut [T], epi: Epilogue<'_>, st: &mut EpiStats) {
    match epi {
        Epilogue::Linear => {}
        Epilogue::Relu => st.max_abs = st.max_abs.max(relu_max(v)),
        Epilogue::Poly { sign, b } => {
            let (n, m) = T::relu_poly(sign, v, b);
            st.outside += n;
            st.max_abs = st.max_abs.max(m);
        }
        Epilogue::Clip { lo, hi } => {
            st.add_range(clip_minmax(v, T::from_f64(lo), T::from_f64(hi)));
        }
        Epilogue::ClipPoly { sign, lower, upper } => {
            st.add_clip(sign.clip_in_place_stats(v, lower, upper));
        }
    }
}

/// Depthwise convolution (see the module docs); `buf` holds one channel's phase-split padded
/// input and is reused across calls. Inconsistent sizes give zeros (ruled out by the
/// engine's shape checks), never a panic.
#[expect(
    clippy::indexing_slicing,
    reason = "hot loop; every range is checked against the buffer sizes before the loops"
)]
pub(crate) fn depthwise<T: Real>(
    x: &[T],
    (c, h, w): (usize, usize, usize),
    k: &ConvK<T>,
    (ho, wo): (usize, usize),
    buf: &mut Vec<T>,
    epi: Epilogue<'_>,
) -> (Vec<T>, EpiStats) {
    let mut out = vec![T::ZERO; c * ho * wo];
    let mut st = EpiStats::default();
    let [pt, pl, pb, pr] = k.pads;
    let (hp, wp) = (h + pt + pb, w + pl + pr);
    let ([sh, sw], [dh, dw]) = (k.strides, k.dilations);
    let (kh, kw) = (k.kh, k.kw);
    // Phase width: padded column xp lives in phase xp % s_w at position xp / s_w.
    let pw = wp.div_ceil(sw.max(1));
    let fits = ho > 0
        && wo > 0
        && kh > 0
        && kw > 0
        && sh > 0
        && sw > 0
        && (ho - 1) * sh + (kh - 1) * dh < hp
        && (wo - 1) * sw + (kw - 1) * dw < wp
        && x.len() >= c * h * w
        && k.weight.len() >= c * kh * kw
        && k.bias.as_ref().is_none_or(|b| b.len() >= c);
    if !fits {
        return (out, st);
    }
    buf.clear();
    buf.resize(hp * sw * pw + PXB, T::ZERO);
    // Offset of tap (i, j) in `buf` from the start of output row 0's window: input row
    // i·d_h, phase (j·d_w) mod s_w, position ⌊j·d_w / s_w⌋ (output row oy adds oy·s_h rows).
    let taps: Vec<usize> = (0..kh)
        .flat_map(|i| (0..kw).map(move |j| (i, j)))
        .map(|(i, j)| {
            let off = j * dw;
            (i * dh * sw + off % sw) * pw + off / sw
        })
        .collect();
    for ch in 0..c {
        // Zero-padded, phase-split copy of channel ch (padding cells stay zero: every call
        // writes the same interior cells).
        for y in 0..h {
            let src = &x[(ch * h + y) * w..(ch * h + y + 1) * w];
            let row = (y + pt) * sw;
            if sw == 1 {
                buf[row * pw + pl..row * pw + pl + w].copy_from_slice(src);
            } else {
                // Phase ph holds the padded columns xp = ph + q·s_w, i.e. the input columns
                // xi = xp − p_l from the first one ≥ 0 with xp ≡ ph (mod s_w), every s_w-th
                // (no division per element).
                for ph in 0..sw {
                    let xp0 = if pl > ph {
                        ph + (pl - ph).div_ceil(sw) * sw
                    } else {
                        ph
                    };
                    let (Some(from), q0) = (src.get(xp0 - pl..), xp0 / sw) else {
                        continue;
                    };
                    let dst = &mut buf[(row + ph) * pw + q0..(row + ph + 1) * pw];
                    for (d, &v) in dst.iter_mut().zip(from.iter().step_by(sw)) {
                        *d = v;
                    }
                }
            }
        }
        let wt = &k.weight[ch * kh * kw..(ch + 1) * kh * kw];
        let bias = k.bias.as_ref().map_or(T::ZERO, |b| b[ch]);
        let plane = &mut out[ch * ho * wo..(ch + 1) * ho * wo];
        for (oy, orow) in plane.chunks_exact_mut(wo).enumerate() {
            let base = oy * sh * sw * pw;
            // Blocks of PXB pixels, then of PXB_TAIL: the sums stay in registers over all taps
            // (one load and one fused multiply-add per pixel and tap). Σ from 0 over the taps
            // in (i, j) order, then + bias, as the tile kernel. A block always reads its full
            // width (`buf` has PXB spare cells at the end), and only its first n sums are
            // kept, so the last partial block runs the same fixed-width loop.
            let mut ox = 0;
            while ox < wo {
                let n = if wo - ox >= PXB {
                    block::<T, PXB>(buf, base + ox, &taps, wt, bias, &mut orow[ox..ox + PXB])
                } else {
                    let n = PXB_TAIL.min(wo - ox);
                    block::<T, PXB_TAIL>(buf, base + ox, &taps, wt, bias, &mut orow[ox..ox + n])
                };
                ox += n;
            }
        }
        epilogue_slice(plane, epi, &mut st);
    }
    (out, st)
}

/// 1×1 convolution with stride 1 and no padding as one matrix product per group (see the
/// module docs). Inconsistent sizes give zeros, never a panic.
pub(crate) fn pointwise<T: Real>(
    x: &[T],
    (c, h, w): (usize, usize, usize),
    k: &ConvK<T>,
    epi: Epilogue<'_>,
) -> (Vec<T>, EpiStats) {
    let hw = h * w;
    let g = k.groups.max(1);
    let (cig, cog) = (k.cin / g, k.cout / g);
    let mut out = vec![T::ZERO; k.cout * hw];
    let mut st = EpiStats::default();
    if x.len() < c * hw || c != k.cin || k.weight.len() < k.cout * cig || hw == 0 {
        return (out, st);
    }
    for gi in 0..g {
        let (Some(a), Some(b), Some(y)) = (
            k.weight.get(gi * cog * cig..(gi + 1) * cog * cig),
            x.get(gi * cig * hw..(gi + 1) * cig * hw),
            out.get_mut(gi * cog * hw..(gi + 1) * cog * hw),
        ) else {
            return (vec![T::ZERO; k.cout * hw], EpiStats::default());
        };
        T::gemm(cog, cig, hw, a, b, y, false);
    }
    if let Some(bias) = &k.bias {
        for (row, &bv) in out.chunks_exact_mut(hw).zip(bias) {
            for v in row {
                *v += bv;
            }
        }
    }
    epilogue_slice(&mut out, epi, &mut st);
    (out, st)
}

#[cfg(test)]
mod tests {
    use super::super::ops::tests::{conv_naive, lcg as rnd};
    use super::*;
    use proptest::prelude::*;

    #[allow(clippy::too_many_arguments)]
    fn kernel(
        c: usize,
        groups: usize,
        cout: usize,
        (kh, kw): (usize, usize),
        strides: [usize; 2],
        pads: [usize; 4],
        dilations: [usize; 2],
        bias: bool,
        seed: u64,
    ) -> ConvK<f64> {
        let mut r = rnd(seed);
        let mut k = ConvK {
            weight: (0..cout * (c / groups) * kh * kw).map(|_| r()).collect(),
            bias: bias.then(|| (0..cout).map(|_| r()).collect()),
            cout,
            cin: c,
            kh,
            kw,
            strides,
            pads,
            dilations,
            groups,
            packed: Vec::new(),
        };
        k.pack();
        k
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn depthwise_matches_naive_loop(
            c in 2usize..20, h in 1usize..12, w in 1usize..12, kh in 1usize..6, kw in 1usize..6,
            sh in 1usize..4, sw in 1usize..4, dh in 1usize..3, dw in 1usize..3,
            pt in 0usize..3, pl in 0usize..3, pb in 0usize..3, pr in 0usize..3,
            bias in any::<bool>(), seed in any::<u64>(),
        ) {
            // Shapes, strides, dilations and asymmetric pads (TF "SAME": one more at the
            // bottom / right) against the naive loop, through the engine's dispatch
            // (`conv_epi`) in f64 and f32.
            let (eh, ew) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
            prop_assume!(eh <= h + pt + pb && ew <= w + pl + pr);
            let (ho, wo) = ((h + pt + pb - eh) / sh + 1, (w + pl + pr - ew) / sw + 1);
            let k = kernel(c, c, c, (kh, kw), [sh, sw], [pt, pl, pb, pr], [dh, dw], bias, seed);
            prop_assert!(is_depthwise(&k, c));
            let mut r = rnd(seed ^ 0x5555);
            let x: Vec<f64> = (0..c * h * w).map(|_| 3.0 * r()).collect();
            let want = conv_naive(&x, (c, h, w), &k, (ho, wo));
            let mut buf = Vec::new();
            let (got, st) = super::super::ops::conv_epi(&x, (c, h, w), &k, (ho, wo), &mut buf, Epilogue::Linear);
            prop_assert_eq!(st, EpiStats::default());
            prop_assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                prop_assert!((a - b).abs() <= 1e-12, "{} vs {}", a, b);
            }
            // Exact ReLU epilogue: ReLU of the same values and their max |v|.
            let (re, sr) = super::super::ops::conv_epi(&x, (c, h, w), &k, (ho, wo), &mut buf, Epilogue::Relu);
            for (a, b) in re.iter().zip(&got) {
                prop_assert_eq!(*a, b.max(0.0));
            }
            prop_assert_eq!(sr.max_abs, got.iter().fold(0.0f64, |m, v| m.max(v.abs())));
            // f32 (vectorised FMA) against the f64 loop.
            let mut kf = ConvK {
                weight: k.weight.iter().map(|&v| v as f32).collect(),
                bias: k.bias.as_ref().map(|b| b.iter().map(|&v| v as f32).collect()),
                cout: c, cin: c, kh, kw, strides: k.strides, pads: k.pads, dilations: k.dilations,
                groups: c, packed: Vec::new(),
            };
            kf.pack();
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let mut bf = Vec::new();
            let (gf, _) = super::super::ops::conv_epi(&xf, (c, h, w), &kf, (ho, wo), &mut bf, Epilogue::Linear);
            for (a, b) in gf.iter().zip(&want) {
                prop_assert!((f64::from(*a) - b).abs() <= 1e-4, "{} vs {}", a, b);
            }
        }

        #[test]
        fn grouped_and_pointwise_match_naive_loop(
            g in 1usize..4, cig in 1usize..5, cog in 1usize..5, h in 1usize..9, w in 1usize..9,
            bias in any::<bool>(), seed in any::<u64>(),
        ) {
            // 1×1 (any groups) through the matrix-product path against a direct sum.
            let (c, cout) = (g * cig, g * cog);
            let k = kernel(c, g, cout, (1, 1), [1, 1], [0; 4], [1, 1], bias, seed);
            prop_assert!(is_pointwise(&k));
            let mut r = rnd(seed ^ 0xaaaa);
            let x: Vec<f64> = (0..c * h * w).map(|_| r()).collect();
            let mut buf = Vec::new();
            let (got, _) = super::super::ops::conv_epi(&x, (c, h, w), &k, (h, w), &mut buf, Epilogue::Linear);
            for co in 0..cout {
                let gi = co / cog;
                for p in 0..h * w {
                    let mut s = k.bias.as_ref().map_or(0.0, |b| b[co]);
                    for ci in 0..cig {
                        s += k.weight[co * cig + ci] * x[(gi * cig + ci) * h * w + p];
                    }
                    prop_assert!((got[co * h * w + p] - s).abs() <= 1e-12);
                }
            }
        }
    }

    #[test]
    fn inconsistent_sizes_give_zeros_not_a_panic() {
        let k = kernel(3, 3, 3, (3, 3), [1, 1], [1; 4], [1, 1], true, 1);
        let mut buf = Vec::new();
        // Input too short, and an output size the padded input cannot produce.
        let (y, _) = depthwise(&[1.0; 5], (3, 4, 4), &k, (4, 4), &mut buf, Epilogue::Linear);
        assert!(y.iter().all(|&v| v == 0.0) && y.len() == 48);
        let (y, _) = depthwise(
            &[1.0; 48],
            (3, 4, 4),
            &k,
            (9, 4),
            &mut buf,
            Epilogue::Linear,
        );
        assert!(y.iter().all(|&v| v == 0.0));
        let kp = kernel(4, 2, 2, (1, 1), [1, 1], [0; 4], [1, 1], false, 2);
        let (y, _) = pointwise(&[1.0; 3], (4, 2, 2), &kp, Epilogue::Linear);
        assert!(y.iter().all(|&v| v == 0.0) && y.len() == 8);
    }
}
