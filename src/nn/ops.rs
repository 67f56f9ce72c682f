//! Per-sample kernels of the exact operators (one image at a time, CHW layout), generic over
//! the working precision. Shapes were validated by the importer; each kernel still uses
//! checked access so that an inconsistent call cannot panic (it produces zeros instead, which
//! the engine's own shape checks rule out).

use super::engine::Real;
use super::ir::{Pool, Shape};

/// Convolution parameters in the engine's precision.
#[derive(Debug, Clone)]
pub(crate) struct ConvK<T> {
    pub weight: Vec<T>,
    pub bias: Option<Vec<T>>,
    pub cout: usize,
    pub cin: usize,
    pub kh: usize,
    pub kw: usize,
    pub strides: [usize; 2],
    pub pads: [usize; 4],
    pub dilations: [usize; 2],
    pub groups: usize,
}

/// im2col of one group: `col[(ci·kh + i)·kw + j][oy·wo + ox] = x[c0 + ci][oy·s + i·d − pt][…]`
/// (zero outside the input).
#[expect(
    clippy::indexing_slicing,
    reason = "hot loop; ranges computed from validated shapes"
)]
fn im2col<T: Real>(
    x: &[T],
    (h, w): (usize, usize),
    k: &ConvK<T>,
    c0: usize,
    cig: usize,
    (ho, wo): (usize, usize),
    col: &mut Vec<T>,
) {
    let n = ho * wo;
    col.clear();
    col.resize(cig * k.kh * k.kw * n, T::ZERO);
    let [sh, sw] = k.strides;
    let [dh, dw] = k.dilations;
    let (pt, pl) = (k.pads[0], k.pads[1]);
    for ci in 0..cig {
        let plane = &x[(c0 + ci) * h * w..(c0 + ci + 1) * h * w];
        for i in 0..k.kh {
            for j in 0..k.kw {
                let row = ((ci * k.kh + i) * k.kw + j) * n;
                let dst = &mut col[row..row + n];
                // Valid ox: 0 ≤ ox·sw + j·dw − pl < w.
                let off = j * dw;
                let ox0 = if off >= pl {
                    0
                } else {
                    (pl - off).div_ceil(sw)
                };
                let ox1 = if w + pl > off {
                    ((w + pl - off - 1) / sw + 1).min(wo)
                } else {
                    0
                };
                for oy in 0..ho {
                    let iy = oy * sh + i * dh;
                    if iy < pt || iy - pt >= h || ox0 >= ox1 {
                        continue;
                    }
                    let src = &plane[(iy - pt) * w..(iy - pt + 1) * w];
                    let drow = &mut dst[oy * wo..(oy + 1) * wo];
                    if sw == 1 {
                        let s0 = ox0 + off - pl;
                        drow[ox0..ox1].copy_from_slice(&src[s0..s0 + (ox1 - ox0)]);
                    } else {
                        for ox in ox0..ox1 {
                            drow[ox] = src[ox * sw + off - pl];
                        }
                    }
                }
            }
        }
    }
}

/// Convolution by im2col + GEMM per group; `col` is scratch space reused across calls.
pub(crate) fn conv<T: Real>(
    x: &[T],
    chw: (usize, usize, usize),
    k: &ConvK<T>,
    out_hw: (usize, usize),
    col: &mut Vec<T>,
) -> Vec<T> {
    let (_, h, w) = chw;
    let (ho, wo) = out_hw;
    let n = ho * wo;
    let g = k.groups;
    let cig = k.cin / g;
    let cog = k.cout / g;
    let kk = cig * k.kh * k.kw;
    let mut out = vec![T::ZERO; k.cout * n];
    let direct = k.kh == 1 && k.kw == 1 && k.strides == [1, 1] && k.pads == [0; 4];
    for gi in 0..g {
        let wslice = k
            .weight
            .get(gi * cog * kk..(gi + 1) * cog * kk)
            .unwrap_or(&[]);
        let oslice = out
            .get_mut(gi * cog * n..(gi + 1) * cog * n)
            .unwrap_or(&mut []);
        if direct {
            let xs = x.get(gi * cig * n..(gi + 1) * cig * n).unwrap_or(&[]);
            T::gemm(cog, kk, n, wslice, xs, oslice, false);
        } else {
            im2col(x, (h, w), k, gi * cig, cig, (ho, wo), col);
            T::gemm(cog, kk, n, wslice, col, oslice, false);
        }
    }
    if let Some(b) = &k.bias {
        for (plane, &bv) in out.chunks_exact_mut(n.max(1)).zip(b) {
            for v in plane {
                *v += bv;
            }
        }
    }
    out
}

/// y = x·scale_c + shift_c per channel, in place.
pub(crate) fn affine_channels<T: Real>(x: &mut [T], plane: usize, scale: &[T], shift: &[T]) {
    for ((p, &s), &t) in x.chunks_exact_mut(plane.max(1)).zip(scale).zip(shift) {
        for v in p {
            *v = v.mul_add(s, t);
        }
    }
}

/// Exact ReLU in place.
pub(crate) fn relu<T: Real>(x: &mut [T]) {
    for v in x {
        if *v < T::ZERO {
            *v = T::ZERO;
        }
    }
}

/// Clip in place.
pub(crate) fn clip<T: Real>(x: &mut [T], lo: T, hi: T) {
    for v in x {
        if *v < lo {
            *v = lo;
        } else if *v > hi {
            *v = hi;
        }
    }
}

/// Gather every pooling window: `f(window values)` per output position (padding excluded).
pub(crate) fn pool_windows<T: Real>(
    x: &[T],
    chw: (usize, usize, usize),
    p: &Pool,
    out_hw: (usize, usize),
    mut f: impl FnMut(&[T], usize) -> T,
) -> Vec<T> {
    let (c, h, w) = chw;
    let (ho, wo) = out_hw;
    let mut out = Vec::with_capacity(c * ho * wo);
    let mut win = Vec::with_capacity(p.kernel[0] * p.kernel[1]);
    for ci in 0..c {
        for oy in 0..ho {
            for ox in 0..wo {
                win.clear();
                for i in 0..p.kernel[0] {
                    let iy = oy * p.strides[0] + i;
                    if iy < p.pads[0] || iy - p.pads[0] >= h {
                        continue;
                    }
                    for j in 0..p.kernel[1] {
                        let ix = ox * p.strides[1] + j;
                        if ix < p.pads[1] || ix - p.pads[1] >= w {
                            continue;
                        }
                        if let Some(&v) = x.get((ci * h + iy - p.pads[0]) * w + ix - p.pads[1]) {
                            win.push(v);
                        }
                    }
                }
                out.push(f(&win, p.kernel[0] * p.kernel[1]));
            }
        }
    }
    out
}

/// Exact max pooling.
pub(crate) fn maxpool<T: Real>(
    x: &[T],
    chw: (usize, usize, usize),
    p: &Pool,
    out_hw: (usize, usize),
) -> Vec<T> {
    pool_windows(x, chw, p, out_hw, |w, _| {
        w.iter().copied().fold(T::NEG_INFINITY, T::max)
    })
}

/// Average pooling.
pub(crate) fn avgpool<T: Real>(
    x: &[T],
    chw: (usize, usize, usize),
    p: &Pool,
    out_hw: (usize, usize),
    count_include_pad: bool,
) -> Vec<T> {
    pool_windows(x, chw, p, out_hw, |w, full| {
        let s = w.iter().copied().fold(T::ZERO, |a, b| a + b);
        let n = if count_include_pad { full } else { w.len() };
        s / T::from_usize(n.max(1))
    })
}

/// Global average pooling → `[C]`.
pub(crate) fn global_avgpool<T: Real>(x: &[T], plane: usize) -> Vec<T> {
    x.chunks_exact(plane.max(1))
        .map(|p| p.iter().copied().fold(T::ZERO, |a, b| a + b) / T::from_usize(plane.max(1)))
        .collect()
}

/// y = W·x + b for `W` `[m × k]`.
pub(crate) fn linear<T: Real>(x: &[T], w: &[T], m: usize, k: usize, bias: Option<&[T]>) -> Vec<T> {
    let mut out = match bias {
        Some(b) => b.to_vec(),
        None => vec![T::ZERO; m],
    };
    T::gemm(m, k, 1, w, x, &mut out, true);
    out
}

/// Iterate over every multi-index of `dims` in row-major order.
fn for_each_index(dims: &[usize], mut f: impl FnMut(&[usize])) {
    let n: usize = dims.iter().product();
    let mut idx = vec![0usize; dims.len()];
    for _ in 0..n {
        f(&idx);
        for j in (0..dims.len()).rev() {
            if let (Some(i), Some(&d)) = (idx.get_mut(j), dims.get(j)) {
                *i += 1;
                if *i < d {
                    break;
                }
                *i = 0;
            }
        }
    }
}

fn flat(idx: &[usize], dims: &[usize]) -> usize {
    idx.iter().zip(dims).fold(0, |a, (&i, &d)| a * d + i)
}

/// Strided slice.
pub(crate) fn slice<T: Real>(
    x: &[T],
    s_in: &Shape,
    starts: &[usize],
    steps: &[usize],
    s_out: &Shape,
) -> Vec<T> {
    let mut out = Vec::with_capacity(s_out.numel());
    let mut src = vec![0usize; s_in.0.len()];
    for_each_index(&s_out.0, |idx| {
        for (((d, &i), &st), &sp) in src.iter_mut().zip(idx).zip(starts).zip(steps) {
            *d = st + i * sp;
        }
        out.push(x.get(flat(&src, &s_in.0)).copied().unwrap_or(T::ZERO));
    });
    out
}

/// Constant padding.
pub(crate) fn pad<T: Real>(
    x: &[T],
    s_in: &Shape,
    begin: &[usize],
    value: T,
    s_out: &Shape,
) -> Vec<T> {
    let mut out = vec![value; s_out.numel()];
    let mut dst = vec![0usize; s_in.0.len()];
    let mut k = 0usize;
    for_each_index(&s_in.0, |idx| {
        for ((d, &i), &b) in dst.iter_mut().zip(idx).zip(begin) {
            *d = i + b;
        }
        if let (Some(o), Some(&v)) = (out.get_mut(flat(&dst, &s_out.0)), x.get(k)) {
            *o = v;
        }
        k += 1;
    });
    out
}

/// Concatenation along a per-sample axis.
pub(crate) fn concat<T: Real>(xs: &[(&[T], &Shape)], axis: usize, s_out: &Shape) -> Vec<T> {
    let outer: usize = s_out.0.iter().take(axis).product();
    let mut out = Vec::with_capacity(s_out.numel());
    for o in 0..outer {
        for (x, s) in xs {
            let inner: usize = s.0.iter().skip(axis).product();
            out.extend_from_slice(x.get(o * inner..(o + 1) * inner).unwrap_or(&[]));
        }
    }
    out
}

/// Softmax along a per-sample axis.
pub(crate) fn softmax<T: Real>(x: &[T], s: &Shape, axis: usize) -> Vec<T> {
    let d = s.0.get(axis).copied().unwrap_or(1).max(1);
    let inner: usize = s.0.iter().skip(axis + 1).product::<usize>().max(1);
    let outer = x.len() / (d * inner).max(1);
    let mut out = x.to_vec();
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| o * d * inner + j * inner + i;
            let m = (0..d)
                .filter_map(|j| x.get(at(j)).copied())
                .fold(T::NEG_INFINITY, T::max);
            let mut sum = T::ZERO;
            for j in 0..d {
                if let Some(v) = out.get_mut(at(j)) {
                    *v = (*v - m).exp();
                    sum += *v;
                }
            }
            for j in 0..d {
                if let Some(v) = out.get_mut(at(j)) {
                    *v = *v / sum;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Direct 7-loop convolution (the naive reference).
    #[allow(clippy::too_many_arguments)]
    fn conv_naive(
        x: &[f64],
        (c, h, w): (usize, usize, usize),
        k: &ConvK<f64>,
        (ho, wo): (usize, usize),
    ) -> Vec<f64> {
        let g = k.groups;
        let (cig, cog) = (c / g, k.cout / g);
        let mut out = vec![0.0; k.cout * ho * wo];
        for co in 0..k.cout {
            let gi = co / cog;
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut s = k.bias.as_ref().map_or(0.0, |b| b[co]);
                    for ci in 0..cig {
                        for i in 0..k.kh {
                            for j in 0..k.kw {
                                let iy = (oy * k.strides[0] + i * k.dilations[0]) as isize
                                    - k.pads[0] as isize;
                                let ix = (ox * k.strides[1] + j * k.dilations[1]) as isize
                                    - k.pads[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xv = x[((gi * cig + ci) * h + iy as usize) * w + ix as usize];
                                s += xv * k.weight[((co * cig + ci) * k.kh + i) * k.kw + j];
                            }
                        }
                    }
                    out[(co * ho + oy) * wo + ox] = s;
                }
            }
        }
        out
    }

    fn vals(n: usize) -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(-2.0f64..2.0, n)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn conv_matches_naive(
            g in 1usize..3, cig in 1usize..3, cog in 1usize..3,
            h in 3usize..8, w in 3usize..8, kh in 1usize..4, kw in 1usize..4,
            s in 1usize..3, d in 1usize..3, p in 0usize..3, bias in any::<bool>(), seed in any::<u64>(),
        ) {
            let (c, cout) = (g * cig, g * cog);
            let eh = d * (kh - 1) + 1;
            let ew = d * (kw - 1) + 1;
            prop_assume!(eh <= h + 2 * p && ew <= w + 2 * p);
            let ho = (h + 2 * p - eh) / s + 1;
            let wo = (w + 2 * p - ew) / s + 1;
            let mut r = seed;
            let mut rnd = || { r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((r >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0 };
            let x: Vec<f64> = (0..c * h * w).map(|_| rnd()).collect();
            let k = ConvK {
                weight: (0..cout * cig * kh * kw).map(|_| rnd()).collect(),
                bias: bias.then(|| (0..cout).map(|_| rnd()).collect()),
                cout, cin: c, kh, kw, strides: [s, s], pads: [p, p, p, p], dilations: [d, d], groups: g,
            };
            let mut col = Vec::new();
            let got = conv(&x, (c, h, w), &k, (ho, wo), &mut col);
            let want = conv_naive(&x, (c, h, w), &k, (ho, wo));
            prop_assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                prop_assert!((a - b).abs() < 1e-12, "{} vs {}", a, b);
            }
        }

        #[test]
        fn pools_match_naive(x in vals(2 * 6 * 5), k in 1usize..4, s in 1usize..3, p in 0usize..2) {
            prop_assume!(p < k);
            let pool = Pool { kernel: [k, k], strides: [s, s], pads: [p, p, p, p] };
            let (ho, wo) = ((6 + 2 * p - k) / s + 1, (5 + 2 * p - k) / s + 1);
            let mx = maxpool(&x, (2, 6, 5), &pool, (ho, wo));
            let av = avgpool(&x, (2, 6, 5), &pool, (ho, wo), false);
            let avp = avgpool(&x, (2, 6, 5), &pool, (ho, wo), true);
            for c in 0..2 { for oy in 0..ho { for ox in 0..wo {
                let mut m = f64::NEG_INFINITY; let mut sum = 0.0; let mut cnt = 0;
                for i in 0..k { for j in 0..k {
                    let iy = (oy * s + i) as isize - p as isize; let ix = (ox * s + j) as isize - p as isize;
                    if iy >= 0 && ix >= 0 && iy < 6 && ix < 5 {
                        let v = x[(c * 6 + iy as usize) * 5 + ix as usize]; m = m.max(v); sum += v; cnt += 1;
                    }
                }}
                let o = (c * ho + oy) * wo + ox;
                prop_assert_eq!(mx[o], m);
                prop_assert!((av[o] - sum / cnt as f64).abs() < 1e-12);
                prop_assert!((avp[o] - sum / (k * k) as f64).abs() < 1e-12);
            }}}
        }

        #[test]
        fn linear_matches_dot(x in vals(7), w in vals(21), b in vals(3)) {
            let y = linear(&x, &w, 3, 7, Some(&b));
            for i in 0..3 {
                let want: f64 = b[i] + (0..7).map(|j| w[i * 7 + j] * x[j]).sum::<f64>();
                prop_assert!((y[i] - want).abs() < 1e-12);
            }
        }

        #[test]
        fn slice_pad_roundtrip(x in vals(3 * 4 * 6), b0 in 0usize..2, b1 in 0usize..3, e1 in 0usize..3) {
            // Pad then slice back out is the identity; padded cells hold the fill value.
            let s = Shape(vec![3, 4, 6]);
            let so = Shape(vec![3 + b0 + 1, 4 + b1 + e1, 6]);
            let y = pad(&x, &s, &[b0, b1, 0], 9.0, &so);
            prop_assert_eq!(y.iter().filter(|&&v| v == 9.0).count() >= so.numel() - s.numel(), true);
            let z = slice(&y, &so, &[b0, b1, 0], &[1, 1, 1], &s);
            prop_assert_eq!(z, x.clone());
            // Stride-2 slice against direct indexing.
            let so2 = Shape(vec![3, 2, 3]);
            let z2 = slice(&x, &s, &[0, 0, 0], &[1, 2, 2], &so2);
            for c in 0..3 { for i in 0..2 { for j in 0..3 {
                prop_assert_eq!(z2[(c * 2 + i) * 3 + j], x[(c * 4 + 2 * i) * 6 + 2 * j]);
            }}}
        }

        #[test]
        fn softmax_concat_gap_relu(x in vals(12)) {
            let s = softmax(&x, &Shape(vec![12]), 0);
            let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = x.iter().map(|v| (v - m).exp()).sum();
            for (a, v) in s.iter().zip(&x) { prop_assert!((a - (v - m).exp() / z).abs() < 1e-12); }
            let s2 = Shape(vec![2, 6]);
            let s3 = Shape(vec![2, 2]);
            let c = concat(&[(&x[..], &s2), (&x[..4], &s3)], 1, &Shape(vec![2, 8]));
            prop_assert_eq!(&c[..6], &x[..6]); prop_assert_eq!(&c[6..8], &x[..2]);
            prop_assert_eq!(&c[8..14], &x[6..12]); prop_assert_eq!(&c[14..], &x[2..4]);
            let g = global_avgpool(&x, 4);
            for i in 0..3 { prop_assert!((g[i] - x[4*i..4*i+4].iter().sum::<f64>() / 4.0).abs() < 1e-12); }
            let mut r = x.clone(); relu(&mut r);
            for (a, v) in r.iter().zip(&x) { prop_assert_eq!(*a, v.max(0.0)); }
            let mut q = x.clone(); clip(&mut q, -0.5, 0.5);
            for (a, v) in q.iter().zip(&x) { prop_assert_eq!(*a, v.clamp(-0.5, 0.5)); }
        }
    }
}
