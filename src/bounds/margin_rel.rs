//! Relational forward boxes of the noise margin (issue 13, part 2; beyond the paper): a
//! tighter box of the perturbation Δy at the output y of every conv–site–conv chain
//! y = W₂·r̃_α(Σ₁·(W₁·x) + β₁) + b₂ of F^α (Σ₁ the batch-norm scale, or 1), by
//! back-substitution to the chain's input x instead of the |W| products of
//! [`super::MarginCertifier`]'s forward boxes.
//!
//! # The math object
//! With the notation of `margin` (Δ the exact perturbation, e the site noise, |e| ≤ η·B), the
//! site's input deviation is Δz = Σ₁W₁Δx and, by the mean-value theorem,
//! Δy = W₂·(S ∘ (Δz + e)) with S_k = r̃_α′(ξ_k) enclosed over the box the perturbation can
//! reach. Split S = s + δ at a point slope s chosen once per input (the midpoint of the slope
//! enclosure on the certified trajectory ball, set to 0 where it is below 2^−10), so
//! |δ_k| ≤ d_k = mag(S_k − s_k) at the current η. Then, exactly,
//!
//!   Δy = M·Δx + W₂·(s ∘ e) + W₂·(δ ∘ (Δz + e)),   M = W₂·diag(s·Σ₁)·W₁,
//!
//! and with boxes |Δx| ≤ R_x, |Δz + e| ≤ w (the site's own box plus η·B):
//!
//!   |Δy| ≤ |M̂|·R_x + |W₂|·v,   v_k = |s_k|·(σ̄₁_k·g·(|W₁|·R_x)_k + η·B) + d_k·w_k,
//!
//! where M̂ is M computed in binary64 and g·|W₂|·diag(|s|·σ̄₁)·|W₁| bounds |M − M̂| (σ̄₁ ≥ |Σ₁|,
//! g = γ_{n+16} for the n terms of each entry: three roundings per term, the 4u of the
//! batch-norm scale, the sum). M is a convolution with position-dependent kernels: each
//! output (o, p) gets its own C_in × (s₁(k₂ − 1)d₂ + (k₁ − 1)d₁ + 1)² kernel (5 × 5 for two
//! 3 × 3 stride-1 convolutions), stored as upward-rounded binary32 |M̂| entries. The bound is
//! intersected with the |W| box (both are certified), so it is never larger.
//!
//! The gain over |W₂|·mag(S)·|W₁|·R_x is the cancellation inside M: signs of W₂·diag(s)·W₁
//! that the |W| product ignores. M depends on the input (through s) but not on η, so it is
//! built once per input ([`RelChain::kernel`]) and applied at every η of the search.
//!
//! Supported chains: Conv (groups 1) → [BatchNormalization] → Relu site → Conv (groups 1),
//! any strides, pads and dilations. Other graphs keep the |W| boxes.
//!
//! Symbols: `s` the point slopes s, `sigma` Σ₁, `g` g, `m` |M̂|, `rx` R_x.

use rayon::prelude::*;

use super::margin::MPrep;
use super::round::{add_ru, gamma_ru, mul_ru, sum_factor_ru, sum_up};
use crate::nn::{Network, NodeId, Op, Real, ValueId};

/// Output channels per block of the combined kernels ([`RelChain::kernel`]), one per lane of
/// [`RelChain::apply`].
const CB: usize = 8;

/// Point slopes below this magnitude are linearised at 0 (their slope enters d instead).
const SLOPE_FLOOR: f64 = 1.0 / 1024.0;

/// Shapes and geometry of one chain (all validated when the chain is detected).
#[derive(Debug, Clone)]
struct Geo {
    /// x: (C_in, H, W).
    cin: usize,
    h: usize,
    w: usize,
    /// Site: (C_mid, H_s, W_s).
    cmid: usize,
    hs: usize,
    ws: usize,
    /// y: (C_out, H_o, W_o).
    cout: usize,
    ho: usize,
    wo: usize,
    /// Kernel sizes, strides, dilations and (top, left) pads of W₁ and W₂.
    k1: [usize; 2],
    s1: [usize; 2],
    d1: [usize; 2],
    p1: [usize; 2],
    k2: [usize; 2],
    s2: [usize; 2],
    d2: [usize; 2],
    p2: [usize; 2],
    /// Combined kernel extent (rows, columns).
    nd: [usize; 2],
}

impl Geo {
    /// Entries of one output's combined kernel.
    fn per_out(&self) -> usize {
        self.cin * self.nd[0] * self.nd[1]
    }

    /// x position of offset 0 of output position `p` along axis `a` (may be negative).
    fn base(&self, p: usize, a: usize) -> isize {
        let (s1, s2) = (ax(self.s1, a) as isize, ax(self.s2, a) as isize);
        (p as isize) * s2 * s1 - (ax(self.p2, a) as isize) * s1 - ax(self.p1, a) as isize
    }
}

/// Component `a` (0: rows, else columns) of a per-axis pair.
fn ax(v: [usize; 2], a: usize) -> usize {
    let [y, x] = v;
    if a == 0 {
        y
    } else {
        x
    }
}

/// One conv–site–conv chain of the network (see the module docs).
#[derive(Debug, Clone)]
pub(super) struct RelChain {
    /// The chain's input x (the input of W₁).
    pub(super) x: ValueId,
    /// The node of W₁.
    pub(super) conv1: NodeId,
    /// The site node.
    pub(super) site: NodeId,
    /// The node of W₂ (its output is y).
    pub(super) conv2: NodeId,
    /// Σ₁ per site channel in binary64 and an upper bound of |Σ₁| (1 without batch norm).
    sigma: Vec<f64>,
    sigma_up: Vec<f64>,
    /// W₁ [C_mid][k₁][C_in] and W₂ [C_out][C_mid][k₂] (exact: widened binary32).
    w1: Vec<f64>,
    w2: Vec<f64>,
    geo: Geo,
    /// g ≥ γ_{n+16}: |M − M̂| ≤ g·|W₂|·diag(|s|·σ̄₁)·|W₁| entrywise.
    pub(super) g: f64,
}

/// The producer node of every value (`None`: the network input).
fn producers(net: &Network) -> Vec<Option<NodeId>> {
    let mut p = vec![None; net.values.len()];
    for (i, n) in net.nodes.iter().enumerate() {
        if let Some(s) = p.get_mut(n.output) {
            *s = Some(i);
        }
    }
    p
}

impl RelChain {
    /// Every conv–[batch norm]–site–conv chain of `net` (`preps` as built by the margin
    /// certifier); chains whose shapes do not fit the pattern are skipped (they keep the |W|
    /// boxes).
    pub(super) fn detect(net: &Network, preps: &[MPrep]) -> Vec<Self> {
        let prod = producers(net);
        let producer = |v: ValueId| prod.get(v).copied().flatten();
        let mut out = Vec::new();
        for (i2, node) in net.nodes.iter().enumerate() {
            let Op::Conv(c2) = &node.op else { continue };
            let Some(&u) = node.inputs.first() else {
                continue;
            };
            let Some(site) = producer(u) else { continue };
            if !matches!(preps.get(site), Some(MPrep::Site)) {
                continue;
            }
            let Some(&z) = net.nodes.get(site).and_then(|n| n.inputs.first()) else {
                continue;
            };
            let Some(mut i1) = producer(z) else { continue };
            let mut sigma = None;
            if let Some(MPrep::Bn { s, s_up }) = preps.get(i1) {
                sigma = Some((s.clone(), s_up.clone()));
                match net
                    .nodes
                    .get(i1)
                    .and_then(|n| n.inputs.first())
                    .and_then(|&v| producer(v))
                {
                    Some(p) => i1 = p,
                    None => continue,
                }
            }
            let Some(n1) = net.nodes.get(i1) else {
                continue;
            };
            let Op::Conv(c1) = &n1.op else { continue };
            let Some(&x) = n1.inputs.first() else {
                continue;
            };
            if let Some(chain) = Self::build(net, x, (i1, c1), site, (i2, c2), sigma) {
                out.push(chain);
            }
        }
        out
    }

    /// The chain with validated shapes, or `None` when they do not fit.
    fn build(
        net: &Network,
        x: ValueId,
        (conv1, c1): (NodeId, &crate::nn::Conv),
        site: NodeId,
        (conv2, c2): (NodeId, &crate::nn::Conv),
        sigma: Option<(Vec<f64>, Vec<f64>)>,
    ) -> Option<Self> {
        if c1.groups != 1 || c2.groups != 1 {
            return None;
        }
        let (cin, h, w) = net.shape(x).chw()?;
        let u = net.nodes.get(conv2)?.inputs.first().copied()?;
        let (cmid, hs, ws) = net.shape(u).chw()?;
        let (cout, ho, wo) = net.shape(net.nodes.get(conv2)?.output).chw()?;
        if [cin, h, w, cmid, hs, ws, cout, ho, wo].contains(&0) {
            return None;
        }
        let d1 = &c1.weight.dims;
        let d2 = &c2.weight.dims;
        if d1.len() != 4 || d2.len() != 4 || d1.first() != Some(&cmid) || d1.get(1) != Some(&cin) {
            return None;
        }
        if d2.first() != Some(&cout) || d2.get(1) != Some(&cmid) {
            return None;
        }
        let k1 = [*d1.get(2)?, *d1.get(3)?];
        let k2 = [*d2.get(2)?, *d2.get(3)?];
        let (sigma, sigma_up) = sigma.unwrap_or_else(|| (vec![1.0; cmid], vec![1.0; cmid]));
        if sigma.len() != cmid || c1.weight.data.len() != cmid * cin * k1.iter().product::<usize>()
        {
            return None;
        }
        if c2.weight.data.len() != cout * cmid * k2.iter().product::<usize>() {
            return None;
        }
        let ext = |a: usize| {
            ax(c1.strides, a) * (ax(k2, a) - 1) * ax(c2.dilations, a)
                + (ax(k1, a) - 1) * ax(c1.dilations, a)
                + 1
        };
        let geo = Geo {
            cin,
            h,
            w,
            cmid,
            hs,
            ws,
            cout,
            ho,
            wo,
            k1,
            s1: c1.strides,
            d1: c1.dilations,
            p1: [c1.pads[0], c1.pads[1]],
            k2,
            s2: c2.strides,
            d2: c2.dilations,
            p2: [c2.pads[0], c2.pads[1]],
            nd: [ext(0), ext(1)],
        };
        if k1.contains(&0) || k2.contains(&0) || geo.s1.contains(&0) || geo.s2.contains(&0) {
            return None;
        }
        let n = cmid * k2.iter().product::<usize>() * k1.iter().product::<usize>();
        Some(Self {
            x,
            conv1,
            site,
            conv2,
            sigma,
            sigma_up,
            w1: transpose_w1(&c1.weight.data, cmid, cin, k1.iter().product()),
            w2: c2.weight.data.iter().map(|&v| f64::from(v)).collect(),
            geo,
            g: gamma_ru(n + 16),
        })
    }

    /// Point slopes s from the midpoints of the site's slope enclosures on the trajectory
    /// ball (magnitudes below 2^−10 set to 0).
    pub(super) fn point_slope(mid: f64) -> f64 {
        if mid.is_finite() && mid.abs() >= SLOPE_FLOOR {
            mid
        } else {
            0.0
        }
    }

    /// |M̂| for the point slopes `s` of the site (one per site entry), entries rounded up to
    /// binary32: `[C_out / CB][H_o][W_o][nd₀][nd₁][C_in][CB]` (blocks of [`CB`] output
    /// channels, the last one padded with zeros). Empty when `s` has the wrong length.
    ///
    /// Per output channel o and tap t₂ of W₂, the block V·W₁ with V[p, k] = W₂[o, k, t₂]·s·Σ₁
    /// at the site position that output position p reads through t₂ (0 in the padding) and
    /// W₁ as `[C_mid][k₁ taps·C_in]` is one matrix product (`Real::gemm`); its columns are
    /// added at the offset of t₂ in every position's kernel. Each entry is thus a sum of at
    /// most n = C_mid·k₁·k₂ products of three rounded factors, evaluated in some order, and
    /// γ_{n+16} covers it whatever the order (module docs).
    #[expect(
        clippy::indexing_slicing,
        reason = "hot loop; indices from the shapes validated in `build`"
    )]
    pub(super) fn kernel(&self, s: &[f64]) -> Vec<f32> {
        let g = &self.geo;
        if s.len() != g.cmid * g.hs * g.ws {
            return Vec::new();
        }
        // coef[k, q] = s_k,q·Σ₁_k.
        let plane = g.hs * g.ws;
        let coef: Vec<f64> = s
            .iter()
            .enumerate()
            .map(|(q, v)| v * self.sigma[q / plane])
            .collect();
        let per = g.per_out();
        let np = g.ho * g.wo;
        let (k1, k2) = (g.k1, g.k2);
        let row = k1[0] * k1[1] * g.cin;
        if self.w1.len() != g.cmid * row || self.w2.len() != g.cout * g.cmid * k2[0] * k2[1] {
            return Vec::new();
        }
        let per_o: Vec<Vec<f32>> = (0..g.cout)
            .into_par_iter()
            .map(|o| {
                let mut acc = vec![0f64; np * per];
                let mut v = vec![0f64; np * g.cmid];
                let mut c = vec![0f64; np * row];
                for ty in 0..k2[0] {
                    for tx in 0..k2[1] {
                        let mut any = false;
                        for py in 0..g.ho {
                            let qy = (py * g.s2[0] + ty * g.d2[0]) as isize - g.p2[0] as isize;
                            for px in 0..g.wo {
                                let qx = (px * g.s2[1] + tx * g.d2[1]) as isize - g.p2[1] as isize;
                                let vp = &mut v[(py * g.wo + px) * g.cmid..][..g.cmid];
                                if qy < 0 || qy >= g.hs as isize || qx < 0 || qx >= g.ws as isize {
                                    vp.fill(0.0);
                                    continue;
                                }
                                let q = qy as usize * g.ws + qx as usize;
                                for (k, d) in vp.iter_mut().enumerate() {
                                    *d = self.w2[((o * g.cmid + k) * k2[0] + ty) * k2[1] + tx]
                                        * coef[k * plane + q];
                                    any |= *d != 0.0;
                                }
                            }
                        }
                        if !any {
                            continue;
                        }
                        <f64 as Real>::gemm(np, g.cmid, row, &v, &self.w1, &mut c, false);
                        let dy0 = ty * g.d2[0] * g.s1[0];
                        let dx0 = tx * g.d2[1] * g.s1[1];
                        for p in 0..np {
                            for uy in 0..k1[0] {
                                for ux in 0..k1[1] {
                                    let dst = p * per
                                        + ((dy0 + uy * g.d1[0]) * g.nd[1] + dx0 + ux * g.d1[1])
                                            * g.cin;
                                    let src = p * row + (uy * k1[1] + ux) * g.cin;
                                    for (d, x) in
                                        acc[dst..dst + g.cin].iter_mut().zip(&c[src..][..g.cin])
                                    {
                                        *d += x;
                                    }
                                }
                            }
                        }
                    }
                }
                acc.iter().map(|x| f32_up(x.abs())).collect()
            })
            .collect();
        // Blocked by CB output channels, channel innermost (`apply`'s lanes).
        let mut m = vec![0f32; g.cout.div_ceil(CB) * CB * np * per];
        for (o, v) in per_o.iter().enumerate() {
            let (ob, lane) = (o / CB, o % CB);
            for (pe, x) in v.iter().enumerate() {
                m[(ob * np * per + pe) * CB + lane] = *x;
            }
        }
        m
    }

    /// The index of entry e of output (o, p)'s combined kernel in [`Self::kernel`]'s layout.
    #[cfg(test)]
    fn kernel_index(&self, o: usize, p: usize, e: usize) -> usize {
        let g = &self.geo;
        (((o / CB) * g.ho * g.wo + p) * g.per_out() + e) * CB + o % CB
    }

    /// |M̂|·R_x rounded up (`m` from [`Self::kernel`]); `None` on a length mismatch.
    ///
    /// Output (o, p) is Σ over the kernel rows (dy, dx) inside x, in that order, of the row
    /// sum Σ_c |M̂|·R_x (from −0, c ascending), bounded by `sum_up`. [`CB`] output channels
    /// run at once, one per lane: they share the position, hence the rows and R_x, and each
    /// lane does its own sums in that order, so every output has the bits of one output at a
    /// time (`apply_one_by_one` in the tests).
    #[expect(
        clippy::indexing_slicing,
        reason = "hot loop; indices from the shapes validated in `build`"
    )]
    pub(super) fn apply(&self, m: &[f32], rx: &[f64]) -> Option<Vec<f64>> {
        let g = &self.geo;
        let per = g.per_out();
        let np = g.ho * g.wo;
        let nb = g.cout.div_ceil(CB);
        if m.len() != nb * CB * np * per || rx.len() != g.cin * g.h * g.w {
            return None;
        }
        // R_x channel-innermost, like the kernel.
        let plane = g.h * g.w;
        let mut rt = vec![0.0; rx.len()];
        for (q, &v) in rx.iter().enumerate() {
            rt[(q % plane) * g.cin + q / plane] = v;
        }
        let mut out = vec![0.0; g.cout * np];
        // `dot_up(s, n)` with the factor of the last n kept (same values, fewer divisions).
        let mut fac = (usize::MAX, 0.0);
        for ob in 0..nb {
            for p in 0..np {
                let (py, px) = (p / g.wo, p % g.wo);
                let (by, bx) = (g.base(py, 0), g.base(px, 1));
                let mk = &m[(ob * np + p) * per * CB..][..per * CB];
                let mut s = [0.0f64; CB];
                let mut n = 0usize;
                for dy in 0..g.nd[0] {
                    let y = by + dy as isize;
                    if y < 0 || y >= g.h as isize {
                        continue;
                    }
                    for dx in 0..g.nd[1] {
                        let x = bx + dx as isize;
                        if x < 0 || x >= g.w as isize {
                            continue;
                        }
                        let mrow = &mk[(dy * g.nd[1] + dx) * g.cin * CB..][..g.cin * CB];
                        let rrow = &rt[(y as usize * g.w + x as usize) * g.cin..][..g.cin];
                        // `Iterator::sum` of f64 starts from −0.
                        let mut row = [-0.0f64; CB];
                        for (mv, r) in mrow.chunks_exact(CB).zip(rrow) {
                            for l in 0..CB {
                                row[l] += f64::from(mv[l]) * r;
                            }
                        }
                        for l in 0..CB {
                            s[l] += row[l];
                        }
                        n += g.cin;
                    }
                }
                if fac.0 != n {
                    fac = (n, sum_factor_ru(n + 1));
                }
                for (l, sl) in s.iter().enumerate() {
                    if let Some(o) = out.get_mut((ob * CB + l) * np + p) {
                        *o = sum_up(*sl, fac.1, n + 1);
                    }
                }
            }
        }
        Some(out)
    }

    /// [`Self::apply`] one output at a time, as it was before the lanes (the reference of
    /// the bit-identity test).
    #[cfg(test)]
    fn apply_one_by_one(&self, m: &[f32], rx: &[f64]) -> Option<Vec<f64>> {
        let g = &self.geo;
        let per = g.per_out();
        let np = g.ho * g.wo;
        if m.len() != g.cout.div_ceil(CB) * CB * np * per || rx.len() != g.cin * g.h * g.w {
            return None;
        }
        let plane = g.h * g.w;
        let mut rt = vec![0.0; rx.len()];
        for (q, &v) in rx.iter().enumerate() {
            rt[(q % plane) * g.cin + q / plane] = v;
        }
        let mut out = vec![0.0; g.cout * np];
        for (q, o) in out.iter_mut().enumerate() {
            let (oc, p) = (q / np, q % np);
            let (py, px) = (p / g.wo, p % g.wo);
            let (by, bx) = (g.base(py, 0), g.base(px, 1));
            let mut s = 0.0f64;
            let mut n = 0usize;
            for dy in 0..g.nd[0] {
                let y = by + dy as isize;
                if y < 0 || y >= g.h as isize {
                    continue;
                }
                for dx in 0..g.nd[1] {
                    let x = bx + dx as isize;
                    if x < 0 || x >= g.w as isize {
                        continue;
                    }
                    let e0 = (dy * g.nd[1] + dx) * g.cin;
                    let rrow = &rt[(y as usize * g.w + x as usize) * g.cin..][..g.cin];
                    s += rrow
                        .iter()
                        .enumerate()
                        .map(|(c, r)| f64::from(m[self.kernel_index(oc, p, e0 + c)]) * r)
                        .sum::<f64>();
                    n += g.cin;
                }
            }
            *o = sum_up(s, sum_factor_ru(n + 1), n + 1);
        }
        Some(out)
    }

    /// v_k = |s_k|·(σ̄₁_k·g·t1_k + η·B) + d_k·w_k rounded up (module docs), from
    /// t1 = |W₁|·R_x (`None`: Δx = 0), the point slopes `s` and the site's
    /// (s_mid, s_rad, w) per entry.
    pub(super) fn site_term(
        &self,
        t1: Option<&[f64]>,
        s: &[f64],
        slopes: &[(f64, f64, f64)],
        eb: f64,
    ) -> Vec<f64> {
        let plane = (self.geo.hs * self.geo.ws).max(1);
        s.iter()
            .zip(slopes)
            .enumerate()
            .map(|(q, (&sk, &(sm, sr, w)))| {
                let su = self
                    .sigma_up
                    .get(q / plane)
                    .copied()
                    .unwrap_or(f64::INFINITY);
                let t = t1.map_or(0.0, |t| t.get(q).copied().unwrap_or(f64::INFINITY));
                let inner = add_ru(mul_ru(mul_ru(su, self.g), t), eb);
                let d = add_ru((sm - sk).abs().max(0.0), sr);
                // |sm − sk| is rounded to nearest: step it up once.
                let d = if d > 0.0 {
                    add_ru(d, d * f64::EPSILON)
                } else {
                    d
                };
                add_ru(mul_ru(sk.abs(), inner), mul_ru(d, w))
            })
            .collect()
    }
}

/// W₁ from OIHW ([k][c][taps]) to [k][taps][c] (channel-innermost for the kernel's loop).
fn transpose_w1(w: &[f32], cmid: usize, cin: usize, taps: usize) -> Vec<f64> {
    let mut out = vec![0.0; cmid * cin * taps];
    for (q, &v) in w.iter().enumerate() {
        let (k, c, t) = (q / (cin * taps), (q / taps) % cin, q % taps);
        if let Some(o) = out.get_mut((k * taps + t) * cin + c) {
            *o = f64::from(v);
        }
    }
    out
}

/// The least binary32 ≥ v (v ≥ 0; +∞ for v beyond the binary32 range or NaN).
pub(super) fn f32_up(v: f64) -> f32 {
    if v.is_nan() {
        return f32::INFINITY;
    }
    #[expect(clippy::cast_possible_truncation, reason = "rounded, then stepped up")]
    let f = v as f32;
    if f64::from(f) >= v {
        f
    } else {
        f32::from_bits(f.to_bits() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rug::Rational;

    #[test]
    fn f32_up_bounds_the_value() {
        for v in [0.0, 1e-40, 0.1, 1.0 / 3.0, 3.4e38, 1e300] {
            let f = f32_up(v);
            assert!(f64::from(f) >= v, "{v}");
            if v < 3.4e38 {
                assert!(f64::from(f) <= v * (1.0 + 2.0 * f64::from(f32::EPSILON)) + 1e-45);
            }
        }
        assert_eq!(f32_up(0.5), 0.5);
        assert!(Rational::from_f32(f32_up(0.1)).unwrap() >= Rational::from_f64(0.1).unwrap());
    }
}

#[cfg(test)]
mod kernel_tests {
    use super::*;
    use crate::bounds::round::U;
    use crate::bounds::trajectory_tests::{Lcg, NetB};
    use crate::nn::ops::{self, ConvK};
    use crate::nn::{BatchNorm, Conv, Tensor};

    /// Conv geometry: (channels out, kernel, stride, dilation, pads t/l/b/r).
    type G = (usize, usize, usize, usize, [usize; 4]);

    fn conv(r: &mut Lcg, cin: usize, g: G) -> Conv {
        let (co, k, s, d, p) = g;
        Conv {
            weight: Tensor {
                dims: vec![co, cin, k, k],
                data: r.vec(co * cin * k * k, 0.8, 20),
            },
            bias: Some(r.vec(co, 0.3, 20)),
            strides: [s, s],
            pads: p,
            dilations: [d, d],
            groups: 1,
        }
    }

    fn out_hw(h: usize, g: G, a: usize) -> usize {
        let (_, k, s, d, p) = g;
        (h + p[a] + p[a + 2] - d * (k - 1) - 1) / s + 1
    }

    /// x → conv1 → BN → ReLU → conv2, with the margin preps that `detect` reads.
    fn chain_net(seed: u64, x: [usize; 3], g1: G, g2: G) -> (Network, Vec<MPrep>, Vec<f64>) {
        let mut r = Lcg(seed);
        let mut b = NetB::new(&x);
        let (h1, w1) = (out_hw(x[1], g1, 0), out_hw(x[2], g1, 1));
        let (h2, w2) = (out_hw(h1, g2, 0), out_hw(w1, g2, 1));
        let c1 = b.add(Op::Conv(conv(&mut r, x[0], g1)), &[0], &[g1.0, h1, w1]);
        let sig: Vec<f64> = (0..g1.0).map(|_| r.next(1.5, 20)).collect();
        let bn = b.add(
            Op::BatchNorm(BatchNorm {
                gamma: sig.iter().map(|&v| v as f32).collect(),
                beta: r.vec(g1.0, 0.5, 12),
                mean: vec![0.0; g1.0],
                var: vec![1.0; g1.0],
                eps: 0.0,
            }),
            &[c1],
            &[g1.0, h1, w1],
        );
        let rl = b.add(Op::Relu, &[bn], &[g1.0, h1, w1]);
        let c2 = b.add(Op::Conv(conv(&mut r, g1.0, g2)), &[rl], &[g2.0, h2, w2]);
        let net = b.build(c2);
        let s_up = sig.iter().map(|v| v.abs() * (1.0 + 8.0 * U)).collect();
        let preps = vec![
            MPrep::Pass,
            MPrep::Bn {
                s: sig.clone(),
                s_up,
            },
            MPrep::Site,
            MPrep::Pass,
        ];
        (net, preps, sig)
    }

    /// The linear map v ↦ W₂·diag(s·Σ₁)·W₁·v in plain f64 (no bias), for the dense oracle.
    fn dense_map(net: &Network, s: &[f64], sig: &[f64], v: &[f64]) -> Vec<f64> {
        let mut buf = Vec::new();
        let mut a = v.to_vec();
        for (i, node) in net.nodes.iter().enumerate() {
            let chw = net.shape(node.inputs[0]).chw().unwrap();
            let (_, ho, wo) = net.shape(node.output).chw().unwrap();
            a = match &node.op {
                Op::Conv(c) => {
                    let w = c.weight.data.iter().map(|&x| f64::from(x)).collect();
                    ops::conv(
                        &a,
                        chw,
                        &ConvK::from_conv(c, w, None),
                        (ho, wo),
                        &mut buf,
                        false,
                    )
                    .0
                }
                Op::BatchNorm(_) => {
                    let plane = ho * wo;
                    a.iter()
                        .enumerate()
                        .map(|(q, x)| x * sig[q / plane])
                        .collect()
                }
                Op::Relu => a.iter().zip(s).map(|(x, sk)| x * sk).collect(),
                _ => unreachable!("node {i}"),
            };
        }
        a
    }

    #[test]
    fn combined_kernel_matches_the_dense_product_for_strides_dilations_and_pads() {
        // Golden: |M|·R_x from the dense matrix M built column by column with the engine's
        // f64 convolution (independent of the combined-kernel indexing).
        let cases: [([usize; 3], G, G); 4] = [
            (
                [2, 6, 6],
                (3, 3, 1, 1, [1, 1, 1, 1]),
                (2, 3, 1, 1, [1, 1, 1, 1]),
            ),
            (
                [2, 7, 7],
                (3, 3, 2, 1, [1, 1, 1, 1]),
                (2, 3, 1, 1, [1, 1, 1, 1]),
            ),
            (
                [1, 8, 7],
                (2, 3, 1, 2, [2, 0, 1, 2]),
                (3, 2, 2, 1, [0, 1, 1, 0]),
            ),
            (
                [3, 5, 5],
                (2, 1, 1, 1, [0, 0, 0, 0]),
                (2, 3, 1, 1, [1, 1, 1, 1]),
            ),
        ];
        for (t, (x, g1, g2)) in cases.into_iter().enumerate() {
            let (net, preps, sig) = chain_net(10 + t as u64, x, g1, g2);
            let chains = RelChain::detect(&net, &preps);
            assert_eq!(chains.len(), 1, "case {t}");
            let ch = &chains[0];
            let mut r = Lcg(99 + t as u64);
            let n_site = net.shape(net.nodes[2].output).numel();
            let s: Vec<f64> = (0..n_site)
                .map(|q| if q % 3 == 0 { 0.0 } else { r.next(1.2, 30) })
                .collect();
            let n_x = x.iter().product::<usize>();
            let rx: Vec<f64> = (0..n_x).map(|_| r.next(1.0, 30).abs() + 0.01).collect();
            let m = ch.kernel(&s);
            let got = ch.apply(&m, &rx).unwrap();
            // The lanes give the bits of one output at a time.
            let one = ch.apply_one_by_one(&m, &rx).unwrap();
            assert_eq!(got.len(), one.len());
            for (i, (a, b)) in got.iter().zip(&one).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "case {t} output {i}: {a} vs {b}");
            }
            let n_y = net.output_shape().numel();
            let mut dense = vec![0.0; n_y];
            for j in 0..n_x {
                let mut e = vec![0.0; n_x];
                e[j] = 1.0;
                let col = dense_map(&net, &s, &sig, &e);
                for (d, c) in dense.iter_mut().zip(&col) {
                    *d += c.abs() * rx[j];
                }
            }
            for (i, (g, d)) in got.iter().zip(&dense).enumerate() {
                assert!(
                    *g >= d * (1.0 - 1e-12) && *g <= d * (1.0 + 1e-6) + 1e-300,
                    "case {t} output {i}: combined {g} vs dense {d}"
                );
            }
            // Without the second batch norm's rounding allowance the bound still covers
            // the dense value; g is γ_{n+16}.
            assert!(ch.g > 0.0 && ch.g < 1e-12);
        }
    }

    #[test]
    fn point_slopes_below_the_floor_are_zero() {
        assert_eq!(RelChain::point_slope(1e-4), 0.0);
        assert_eq!(RelChain::point_slope(f64::NAN), 0.0);
        assert_eq!(RelChain::point_slope(-0.5), -0.5);
    }
}
