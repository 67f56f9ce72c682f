//! Convolutions with a short reduction (C_in·k_h·k_w ≤ [`IM2COL_MAX_TAPS`], one group: the
//! 3×3 stride-2 stem of EfficientNet-Lite0 with its 3 input channels, 27 taps) as one matrix
//! product Y = W·X̂ + b on the 1×1 kernel of `direct`, where X̂ is the im2col matrix of the
//! input: row t = (ci·k_h + i)·k_w + j, column q = oy·W_out + ox holds
//! x̂_ci[oy·s_h + i·d_h, ox·s_w + j·d_w] of the zero-padded input x̂.
//!
//! The 16-channel × 6-pixel tile kernel (`ops::conv_epi_into`) spends more on each tile's
//! output pass and transpose to the channel planes than on its 27 taps; on X̂ the sums run
//! in blocks of 12 (or 6) channels × 32 (or 16) pixels whose rows are stored straight into
//! the planes with + bias and the exact activation fused. Every value is the same fused
//! multiply-add chain in tap order from 0 (padding cells are +0 in both), then + bias, then
//! the same epilogue, so the outputs and statistics are bit-for-bit those of the tile kernel
//! (a proptest checks it). f32 only (the f64 engine keeps the tile kernel, whose values the
//! bounds and CKKS tests pin).
//!
//! This module does not own the matrix product (`direct::pointwise_packed`) nor the weight
//! panels (`ops::ConvK::pack`).

use super::direct::pointwise_packed;
use super::engine::Real;
use super::ops::{out_buf, ConvK, EpiStats, Epilogue};

/// The longest reduction C_in·k_h·k_w that runs on the im2col product (the stem's 27 taps,
/// MNIST's and ResNet's first 5×5 / 3×3 convolutions on 1 or 3 channels); longer ones keep
/// the tile kernel, which reads the input in place instead of copying it k_h·k_w times.
pub(crate) const IM2COL_MAX_TAPS: usize = 32;

/// Whether `k` runs as an im2col product in `T` (f32; one group; neither depthwise nor a
/// plain 1×1 convolution, which have their own kernels; at most [`IM2COL_MAX_TAPS`] taps).
pub(crate) fn is_im2col<T: Real>(k: &ConvK<T>) -> bool {
    T::PACKED_POINTWISE
        && k.groups == 1
        && !super::direct::is_pointwise(k)
        && !super::direct::is_depthwise(k, k.cin)
        && k.cin * k.kh * k.kw <= IM2COL_MAX_TAPS
}

/// Fill `col` with the im2col matrix X̂ (`[C_in·k_h·k_w][H_out·W_out]`, see the module docs)
/// of the CHW input `x`, zero where a window reaches into the padding. The caller has checked
/// `x.len() ≥ C·H·W`.
#[expect(
    clippy::indexing_slicing,
    reason = "every index is within the sizes the caller checked or clamped to them here"
)]
fn fill<T: Real>(
    x: &[T],
    (c, h, w): (usize, usize, usize),
    k: &ConvK<T>,
    (ho, wo): (usize, usize),
    col: &mut Vec<T>,
) {
    let hw = ho * wo;
    // Every cell is written below (the padding cells with 0), so a reused buffer is not
    // cleared first.
    col.resize(c * k.kh * k.kw * hw, T::ZERO);
    let [pt, pl, _, _] = k.pads;
    let [sh, sw] = k.strides;
    let [dh, dw] = k.dilations;
    let mut rows = col.chunks_exact_mut(hw.max(1));
    for ci in 0..c {
        for i in 0..k.kh {
            for j in 0..k.kw {
                let Some(row) = rows.next() else {
                    return;
                };
                // Output columns ox whose input column ix = ox·s_w + j·d_w − p_l is in
                // [0, w): ox ∈ [ox0, ox1).
                let off = j * dw;
                let ox0 = pl.saturating_sub(off).div_ceil(sw.max(1)).min(wo);
                let ox1 = (w + pl).saturating_sub(off).div_ceil(sw.max(1)).min(wo);
                for (oy, orow) in row.chunks_exact_mut(wo.max(1)).enumerate() {
                    let iy = (oy * sh + i * dh).checked_sub(pt).filter(|&y| y < h);
                    let Some(iy) = iy.filter(|_| ox0 < ox1) else {
                        orow.fill(T::ZERO);
                        continue;
                    };
                    orow[..ox0].fill(T::ZERO);
                    orow[ox1..].fill(T::ZERO);
                    let src = &x[(ci * h + iy) * w..(ci * h + iy + 1) * w];
                    let dst = &mut orow[ox0..ox1];
                    let ix0 = ox0 * sw + off - pl;
                    let src = &src[ix0..];
                    match sw {
                        1 => dst.copy_from_slice(&src[..dst.len()]),
                        2 => {
                            // Pairs (the first of each is taken), then a last single value.
                            let n = dst.len();
                            let (pairs, last) = dst.split_at_mut(n - 1);
                            for (d, s) in pairs.iter_mut().zip(src.chunks_exact(2)) {
                                *d = s[0];
                            }
                            last[0] = src[2 * (n - 1)];
                        }
                        _ => {
                            for (d, s) in dst.iter_mut().zip(src.iter().step_by(sw)) {
                                *d = *s;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The convolution `k` (one group, see [`is_im2col`]) of the CHW input `x` as the product of
/// its weight panels with the im2col matrix built in `col` (reused across calls), with the
/// epilogue `epi` in its output pass, into `recycled` (every value overwritten). Inconsistent
/// sizes give zeros, never a panic.
pub(crate) fn conv<T: Real>(
    x: &[T],
    chw: (usize, usize, usize),
    k: &ConvK<T>,
    out_hw: (usize, usize),
    col: &mut Vec<T>,
    epi: Epilogue<'_>,
    recycled: Vec<T>,
) -> (Vec<T>, EpiStats) {
    let (c, h, w) = chw;
    let hw = out_hw.0 * out_hw.1;
    let kk = c * k.kh * k.kw;
    let mut st = EpiStats::default();
    if x.len() < c * h * w
        || c != k.cin
        || k.groups != 1
        || hw == 0
        || k.weight.len() < k.cout * kk
        || k.bias.as_ref().is_some_and(|b| b.len() < k.cout)
    {
        return (vec![T::ZERO; k.cout * hw], st);
    }
    fill(x, chw, k, out_hw, col);
    let mut out = out_buf(recycled, k.cout * hw);
    pointwise_packed(col, hw, k, epi, T::pw_wide_available(), &mut out, &mut st);
    (out, st)
}

#[cfg(test)]
mod tests {
    use super::super::gemm::CO_TILE;
    use super::super::ops::tests::{conv_naive, lcg, test_sign};
    use super::super::ops::{conv_epi_into, conv_tiles};
    use super::*;
    use crate::nn::ClipRelu;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn im2col_product_matches_naive_loop_and_tile_kernel_bit_for_bit(
            c in 1usize..4, cout in 1usize..30, kh in 1usize..4, kw in 1usize..4,
            sh in 1usize..4, sw in 1usize..4, dh in 1usize..3, dw in 1usize..3,
            pads in prop::array::uniform4(0usize..3), h in 1usize..30, w in 1usize..40,
            bias in any::<bool>(), seed in any::<u64>(), mode in 0u8..5, nan_at in 0usize..4000,
        ) {
            // Small reductions (C_in·k_h·k_w ≤ 27 here) over strides, dilations and
            // asymmetric pads: the im2col product against the naive loop (in f64 on the same
            // f32 values, within the γ_{k+1} bound of an f32 dot product) and against the
            // tile kernel on the same weights packed in its 16-channel panels: the same bits
            // and statistics for every epilogue, with a NaN in the input, into buffers of
            // stale NaN.
            let [pt, pl, pb, pr] = pads;
            let (hp, wp) = (h + pt + pb, w + pl + pr);
            let (ekh, ekw) = ((kh - 1) * dh + 1, (kw - 1) * dw + 1);
            prop_assume!(hp >= ekh && wp >= ekw && !(kh == 1 && kw == 1 && pads == [0; 4] && sh == 1 && sw == 1));
            let (ho, wo) = ((hp - ekh) / sh + 1, (wp - ekw) / sw + 1);
            let mut r = lcg(seed);
            let kk = c * kh * kw;
            let wt: Vec<f32> = (0..cout * kk).map(|_| r() as f32).collect();
            let bv: Option<Vec<f32>> = bias.then(|| (0..cout).map(|_| r() as f32).collect());
            let mut x: Vec<f32> = (0..c * h * w).map(|_| 3.0 * r() as f32).collect();
            let mut k = ConvK {
                weight: wt.clone(), bias: bv.clone(), cout, cin: c, kh, kw, strides: [sh, sw],
                pads, dilations: [dh, dw], groups: 1, packed: Vec::new(),
            };
            k.pack();
            prop_assert!(is_im2col(&k));
            let mut buf = Vec::new();
            let (got, _) = conv_epi_into(&x, (c, h, w), &k, (ho, wo), &mut buf, Epilogue::Linear, Vec::new());
            let k64 = ConvK {
                weight: wt.iter().map(|&v| f64::from(v)).collect(),
                bias: bv.as_ref().map(|b| b.iter().map(|&v| f64::from(v)).collect()),
                cout, cin: c, kh, kw, strides: [sh, sw], pads, dilations: [dh, dw], groups: 1,
                packed: Vec::new(),
            };
            let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            let want = conv_naive(&x64, (c, h, w), &k64, (ho, wo));
            let mag = conv_naive(
                &x64.iter().map(|v| v.abs()).collect::<Vec<_>>(), (c, h, w),
                &ConvK { weight: k64.weight.iter().map(|v| v.abs()).collect(),
                    bias: k64.bias.as_ref().map(|b| b.iter().map(|v| v.abs()).collect()), ..k64.clone() },
                (ho, wo));
            prop_assert_eq!(got.len(), want.len());
            for ((g, w), m) in got.iter().zip(&want).zip(&mag) {
                let tol = 1.01 * (kk as f64 + 1.0) * 2f64.powi(-24) * m;
                prop_assert!((f64::from(*g) - w).abs() <= tol, "{} vs {} (tol {})", g, w, tol);
            }

            if let Some(v) = x.get_mut(nan_at) {
                *v = f32::NAN;
            }
            let mut kt = k.clone();
            kt.pack_panels(CO_TILE);
            let sign = test_sign();
            let epi = match mode {
                0 => Epilogue::Linear,
                1 => Epilogue::Relu,
                2 => Epilogue::Clip { lo: -0.5, hi: 0.75 },
                3 => Epilogue::Poly { sign: &sign, b: 2.5 },
                _ => Epilogue::ClipPoly {
                    sign: &sign,
                    lower: Some(ClipRelu { shift: -0.5, b: 2.5 }),
                    upper: Some(ClipRelu { shift: 0.75, b: 2.5 }),
                },
            };
            let stale = vec![f32::NAN; cout * ho * wo + 5];
            let (a, sa) = conv_epi_into(&x, (c, h, w), &k, (ho, wo), &mut buf, epi, stale);
            let (b, sb) = conv_tiles(&x, (c, h, w), &kt, (ho, wo), &mut buf, epi, Vec::new());
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&a), bits(&b));
            prop_assert_eq!(sa, sb);
        }
    }

    #[test]
    fn long_reductions_and_f64_keep_the_tile_kernel() {
        let kern = |cin: usize, kh: usize| ConvK::<f32> {
            weight: vec![0.5; 4 * cin * kh * kh],
            bias: None,
            cout: 4,
            cin,
            kh,
            kw: kh,
            strides: [2, 2],
            pads: [0, 0, 1, 1],
            dilations: [1, 1],
            groups: 1,
            packed: Vec::new(),
        };
        assert!(is_im2col(&kern(3, 3)));
        assert!(!is_im2col(&kern(4, 3)));
        let k64 = ConvK::<f64> {
            weight: vec![0.5; 4 * 27],
            bias: None,
            cout: 4,
            cin: 3,
            kh: 3,
            kw: 3,
            strides: [2, 2],
            pads: [0; 4],
            dilations: [1, 1],
            groups: 1,
            packed: Vec::new(),
        };
        assert!(!is_im2col(&k64));
        // Inconsistent sizes give zeros, not a panic.
        let k = {
            let mut k = kern(3, 3);
            k.pack();
            k
        };
        let (y, st) = conv(
            &[1.0; 5],
            (3, 4, 4),
            &k,
            (2, 2),
            &mut Vec::new(),
            Epilogue::Relu,
            Vec::new(),
        );
        assert_eq!(y, vec![0.0; 16]);
        assert_eq!(st, EpiStats::default());
    }
}
