//! Per-sample kernels of the exact operators (one image at a time, CHW layout), generic over
//! the working precision. Shapes were validated by the importer; each kernel still uses
//! checked access so that an inconsistent call cannot panic (it produces zeros instead, which
//! the engine's own shape checks rule out).

use super::activation::{ClipRelu, SignKernel};
use super::direct;
use super::dwblock::CB;
use super::engine::Real;
use super::gemm::{Taps, CO_TILE, PW_MR, PX_TILE};
use super::ir::{Conv, Pool, Shape};

/// Convolution parameters in the engine's precision: OIHW weights, and the same weights
/// packed for the direct-convolution kernel (`packed`, see [`ConvK::pack`]).
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
    /// Depthwise: per block of 8 channels a `[kh·kw][8]` panel (`dwblock`). Otherwise per
    /// group g and block b of 16 output channels, a `[kk][16]` panel (kk = cin/g·kh·kw,
    /// tap-major) of the weights; channels past the group's last are zero. For a 1×1
    /// convolution with stride 1 and no padding (`direct::is_pointwise`) or an f32 one with at
    /// most 32 taps (`im2col::is_im2col`), instead per group and block of [`PW_MR`] output
    /// channels a `[kk][PW_MR]` panel for `gemm::pw_tile` (rows past the group's last are
    /// zero).
    pub packed: Vec<T>,
}

impl<T: Real> ConvK<T> {
    /// The kernel of an imported convolution `c`, with its weights and bias already
    /// converted to `T` (`weight` in OIHW order), packed.
    pub(crate) fn from_conv(c: &Conv, weight: Vec<T>, bias: Option<Vec<T>>) -> Self {
        let d = &c.weight.dims;
        let mut k = ConvK {
            weight,
            bias,
            cout: d.first().copied().unwrap_or(0),
            cin: d.get(1).copied().unwrap_or(0) * c.groups,
            kh: d.get(2).copied().unwrap_or(1),
            kw: d.get(3).copied().unwrap_or(1),
            strides: c.strides,
            pads: c.pads,
            dilations: c.dilations,
            groups: c.groups,
            packed: Vec::new(),
        };
        k.pack();
        k
    }

    /// Lay the OIHW weights out as the kernel's panels (call after any change to `weight`).
    pub(crate) fn pack(&mut self) {
        let tile = if direct::is_pointwise(self) || super::im2col::is_im2col(self) {
            PW_MR
        } else {
            CO_TILE
        };
        self.pack_panels(tile);
    }

    /// [`ConvK::pack`] with blocks of `tile` output channels outside the depthwise case
    /// ([`PW_MR`] for the 1×1 and im2col products, [`CO_TILE`] for the tile kernel).
    pub(crate) fn pack_panels(&mut self, tile: usize) {
        if direct::is_depthwise(self, self.cin) {
            // Depthwise: per block of 8 channels a [kh·kw][8] panel
            // for `dwblock` (channels past the last are zero).
            let kk = self.kh * self.kw;
            let mut packed = vec![T::ZERO; self.cout.div_ceil(CB) * kk * CB];
            for (co, w) in self.weight.chunks_exact(kk.max(1)).enumerate() {
                for (t, &v) in w.iter().enumerate() {
                    if let Some(d) = packed.get_mut(((co / CB) * kk + t) * CB + co % CB) {
                        *d = v;
                    }
                }
            }
            self.packed = packed;
            return;
        }
        let g = self.groups.max(1);
        let (cig, cog) = (self.cin / g, self.cout / g);
        let kk = cig * self.kh * self.kw;
        let nb = cog.div_ceil(tile);
        let mut packed = vec![T::ZERO; g * nb * kk * tile];
        for gi in 0..g {
            for co in 0..cog {
                let (b, c) = (co / tile, co % tile);
                let panel = (gi * nb + b) * kk * tile;
                let src = (gi * cog + co) * kk;
                for t in 0..kk {
                    if let (Some(d), Some(&v)) = (
                        packed.get_mut(panel + t * tile + c),
                        self.weight.get(src + t),
                    ) {
                        *d = v;
                    }
                }
            }
        }
        self.packed = packed;
    }
}

/// What a convolution's output pass applies to each value v = Σ + bias of a tile.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Epilogue<'a> {
    /// v itself.
    Linear,
    /// The exact ReLU max(v, 0), with the largest |v|.
    Relu,
    /// r̃_α(v) = B·r_α(v/B) with B = `b` (as [`SignKernel::relu_in_place_stats`], same
    /// bits), with the count of |v| > B and the largest |v|.
    Poly {
        /// p_α.
        sign: &'a SignKernel,
        /// The approximation range B.
        b: f64,
    },
    /// The exact Clip min(max(v, lo), hi), with the smallest and largest v.
    Clip {
        /// min.
        lo: f64,
        /// max.
        hi: f64,
    },
    /// The approximate Clip lo + r̃_α(v − lo) − r̃_α(v − hi) of
    /// [`SignKernel::clip_in_place_stats`] (same bits), with its statistics per ReLU.
    ClipPoly {
        /// p_α.
        sign: &'a SignKernel,
        /// ReLU(v − min) and its B (`None` for min = −∞).
        lower: Option<ClipRelu>,
        /// ReLU(v − max) and its B (`None` for max = +∞).
        upper: Option<ClipRelu>,
    },
}

/// Statistics of a convolution's output pass: largest |v| (NaN ignored; 0 for
/// [`Epilogue::Linear`] and [`Epilogue::Clip`]) and the number of |v| > B
/// ([`Epilogue::Poly`] only); for [`Epilogue::ClipPoly`] the same two for the lower ReLU
/// (|v − min|) here and for the upper one (|v − max|) in `upper`; for [`Epilogue::Clip`] the
/// smallest and largest v in `range` (`None` when every v was NaN).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct EpiStats {
    pub max_abs: f64,
    pub outside: u64,
    pub upper: (u64, f64),
    pub range: Option<(f64, f64)>,
}

impl EpiStats {
    /// Widen `range` by the extremes (mn, mx) of more values (`mn > mx`: none).
    pub(crate) fn add_range(&mut self, (mn, mx): (f64, f64)) {
        if mn <= mx {
            self.range = Some(self.range.map_or((mn, mx), |(a, b)| (a.min(mn), b.max(mx))));
        }
    }

    /// Merge the per-ReLU statistics of an approximate Clip (lower, upper).
    pub(crate) fn add_clip(&mut self, [lo, hi]: [(u64, f64); 2]) {
        self.outside += lo.0;
        self.max_abs = self.max_abs.max(lo.1);
        self.upper = (self.upper.0 + hi.0, self.upper.1.max(hi.1));
    }
}

/// Direct convolution without im2col: the input is copied once into a zero-padded buffer
/// (`pad_buf`, reused across calls) and each tile of 16 output channels × 6 output pixels is
/// one run of the tile kernel over the taps (k = (ci·kh + i)·kw + j at input offset
/// ci·Hp·Wp + i·dh·Wp + j·dw from the pixel's window origin oy·sh·Wp + ox·sw). Bias and, with
/// `relu`, the exact ReLU are applied while the tile is written out. Returns the output and,
/// with `relu`, the largest |pre-activation| (0 otherwise).
pub(crate) fn conv<T: Real>(
    x: &[T],
    chw: (usize, usize, usize),
    k: &ConvK<T>,
    out_hw: (usize, usize),
    pad_buf: &mut Vec<T>,
    relu: bool,
) -> (Vec<T>, f64) {
    let epi = if relu {
        Epilogue::Relu
    } else {
        Epilogue::Linear
    };
    let (y, st) = conv_epi(x, chw, k, out_hw, pad_buf, epi);
    (y, st.max_abs)
}

/// [`conv`] with any [`Epilogue`]: the activation runs on each tile while its 96 values are
/// in L1, before they are scattered to the channel planes. Depthwise and 1×1 (stride 1, no
/// padding) convolutions go to the kernels of `direct` instead, with the same epilogue. Every value is the same as that of
/// [`conv`] followed by the activation on the whole output (same operations per value, and
/// the statistics are a maximum and a count, exact in any order).
pub(crate) fn conv_epi<T: Real>(
    x: &[T],
    chw: (usize, usize, usize),
    k: &ConvK<T>,
    out_hw: (usize, usize),
    pad_buf: &mut Vec<T>,
    epi: Epilogue<'_>,
) -> (Vec<T>, EpiStats) {
    conv_epi_into(x, chw, k, out_hw, pad_buf, epi, Vec::new())
}

/// [`conv_epi`] writing into `recycled`, the buffer of a value the engine has freed (see
/// [`out_buf`]): the depthwise and 1×1 kernels overwrite every output value, so reused memory
/// is not zeroed first (the general tile path starts from zeros as before). Convolutions with
/// at most 32 taps run in f32 as one im2col product (`im2col`, same bits as the tile path).
pub(crate) fn conv_epi_into<T: Real>(
    x: &[T],
    chw: (usize, usize, usize),
    k: &ConvK<T>,
    out_hw: (usize, usize),
    pad_buf: &mut Vec<T>,
    epi: Epilogue<'_>,
    recycled: Vec<T>,
) -> (Vec<T>, EpiStats) {
    if direct::is_depthwise(k, chw.0) {
        return direct::depthwise(x, chw, k, out_hw, pad_buf, epi, recycled);
    }
    if direct::is_pointwise(k) {
        return direct::pointwise(x, chw, k, out_hw, epi, recycled);
    }
    if super::im2col::is_im2col(k) {
        return super::im2col::conv(x, chw, k, out_hw, pad_buf, epi, recycled);
    }
    conv_tiles(x, chw, k, out_hw, pad_buf, epi, recycled)
}

/// The general convolution on the 16-channel × 6-pixel tile kernel (`k.packed` in `[kk][16]`
/// panels, see [`ConvK::pack`]), with the epilogue in each tile's output pass.
#[expect(
    clippy::indexing_slicing,
    reason = "hot loop; ranges computed from validated shapes"
)]
pub(crate) fn conv_tiles<T: Real>(
    x: &[T],
    chw: (usize, usize, usize),
    k: &ConvK<T>,
    out_hw: (usize, usize),
    pad_buf: &mut Vec<T>,
    epi: Epilogue<'_>,
    recycled: Vec<T>,
) -> (Vec<T>, EpiStats) {
    let (c, h, w) = chw;
    let (ho, wo) = out_hw;
    let hw = ho * wo;
    let g = k.groups.max(1);
    let (cig, cog) = (k.cin / g, k.cout / g);
    let kk = cig * k.kh * k.kw;
    let nb = cog.div_ceil(CO_TILE);
    let [pt, pl, pb, pr] = k.pads;
    let (hp, wp) = (h + pt + pb, w + pl + pr);
    // Tiles that the kernel refuses (never, for consistent sizes) stay zero.
    let mut out = out_buf(recycled, k.cout * hw);
    out.fill(T::ZERO);
    let mut st = EpiStats::default();
    if hw == 0 || x.len() < c * h * w || k.packed.len() < g * nb * kk * CO_TILE {
        return (out, st);
    }
    let xs: &[T] = if k.pads == [0; 4] {
        x
    } else {
        pad_buf.clear();
        pad_buf.resize(c * hp * wp, T::ZERO);
        for ci in 0..c {
            for y in 0..h {
                let d = (ci * hp + y + pt) * wp + pl;
                pad_buf[d..d + w].copy_from_slice(&x[(ci * h + y) * w..(ci * h + y + 1) * w]);
            }
        }
        pad_buf
    };
    let [sh, sw] = k.strides;
    let [dh, dw] = k.dilations;
    // One running max |pre-activation| per channel lane for the exact ReLU (independent
    // chains; max is exact in any order, NaN ignored by the `>` test).
    let mut mc = [T::ZERO; CO_TILE];
    let mut acc = [[T::ZERO; CO_TILE]; PX_TILE];
    for gi in 0..g {
        let mut off = Vec::with_capacity(kk);
        for ci in 0..cig {
            for i in 0..k.kh {
                for j in 0..k.kw {
                    off.push((gi * cig + ci) * hp * wp + i * dh * wp + j * dw);
                }
            }
        }
        let taps = Taps::new(off);
        for b in 0..nb {
            let panel = &k.packed[(gi * nb + b) * kk * CO_TILE..(gi * nb + b + 1) * kk * CO_TILE];
            let co0 = gi * cog + b * CO_TILE;
            let nco = CO_TILE.min(cog - b * CO_TILE);
            // The block's biases, zero past its last channel.
            let bias = k.bias.as_deref().map(|v| {
                let mut t = [T::ZERO; CO_TILE];
                t[..nco].copy_from_slice(&v[co0..co0 + nco]);
                t
            });
            let mut q = 0;
            while q < hw {
                let np = PX_TILE.min(hw - q);
                // Window origins of pixels q + min(p, np − 1) (one division per tile).
                let mut pix = [0usize; PX_TILE];
                let (mut oy, mut ox) = (q / wo, q % wo);
                for (p, o) in pix.iter_mut().enumerate() {
                    *o = oy * sh * wp + ox * sw;
                    if p + 1 < np {
                        ox += 1;
                        if ox == wo {
                            (oy, ox) = (oy + 1, 0);
                        }
                    }
                }
                if T::conv_tile(xs, &pix, &taps, panel, &mut acc) {
                    tile_out(&mut acc, bias.as_ref(), np, nco, epi, &mut mc, &mut st);
                    T::scatter_tile(&acc, &mut out, co0 * hw + q, hw, np, nco);
                }
                q += np;
            }
        }
    }
    st.max_abs = mc.iter().fold(st.max_abs, |a, v| a.max(v.to_f64()));
    (out, st)
}

/// A buffer of `n` values for an output that its kernel overwrites entirely: `recycled` (a
/// freed value's buffer) cut or grown to `n`, so that only a grown part is written with zeros;
/// a fresh zeroed allocation when `recycled` has less than `n` values of capacity. The values
/// it holds are stale until the kernel writes them.
pub(crate) fn out_buf<T: Real>(mut recycled: Vec<T>, n: usize) -> Vec<T> {
    if recycled.capacity() < n {
        return vec![T::ZERO; n];
    }
    if recycled.len() >= n {
        recycled.truncate(n);
    } else {
        recycled.resize(n, T::ZERO);
    }
    recycled
}

/// The output pass of one tile, in place on `acc` (pixels `..np`, channels `..nco` are real;
/// the others are the kernel's padding): v = Σ + bias, then the epilogue. `mc` collects the
/// exact ReLU's max |v| per channel lane, `st` the polynomial's count and max.
#[inline]
fn tile_out<T: Real>(
    acc: &mut [[T; CO_TILE]; PX_TILE],
    bias: Option<&[T; CO_TILE]>,
    np: usize,
    nco: usize,
    epi: Epilogue<'_>,
    mc: &mut [T; CO_TILE],
    st: &mut EpiStats,
) {
    if let Some(bias) = bias {
        for a in acc.iter_mut() {
            for (v, &bv) in a.iter_mut().zip(bias) {
                *v += bv;
            }
        }
    }
    match epi {
        Epilogue::Linear => {}
        Epilogue::Relu => {
            for a in acc.iter_mut().take(np) {
                for (v, m) in a.iter_mut().zip(mc.iter_mut()) {
                    let av = if *v < T::ZERO { T::ZERO - *v } else { *v };
                    *m = if av > *m { av } else { *m };
                    *v = if *v < T::ZERO { T::ZERO } else { *v };
                }
            }
        }
        Epilogue::Poly { sign, b } => {
            // Padding lanes are set to 0, which is neither outside [−B, B] nor above the max
            // (the kernel repeats the last pixel past `np`, and zero weights past `nco` can
            // still give NaN on an infinite input).
            for a in acc.iter_mut().skip(np) {
                *a = [T::ZERO; CO_TILE];
            }
            if nco < CO_TILE {
                for a in acc.iter_mut() {
                    for v in a.iter_mut().skip(nco) {
                        *v = T::ZERO;
                    }
                }
            }
            let (n, m) = T::relu_poly(sign, acc.as_flattened_mut(), b);
            st.outside += n;
            st.max_abs = st.max_abs.max(m);
        }
        Epilogue::Clip { lo, hi } => {
            let (lo, hi) = (T::from_f64(lo), T::from_f64(hi));
            for a in acc.iter_mut().take(np) {
                let row = a.get_mut(..nco).unwrap_or_default();
                st.add_range(T::clip_minmax(row, lo, hi));
            }
        }
        Epilogue::ClipPoly { sign, lower, upper } => {
            // The real cells only (padding would count as out of range for one of the
            // two shifted ReLUs), gathered, approximated, put back.
            let mut buf = [T::ZERO; CO_TILE * PX_TILE];
            let n = np * nco;
            for (p, a) in acc.iter().take(np).enumerate() {
                if let (Some(d), Some(s)) = (buf.get_mut(p * nco..(p + 1) * nco), a.get(..nco)) {
                    d.copy_from_slice(s);
                }
            }
            st.add_clip(sign.clip_in_place_stats(
                buf.get_mut(..n).unwrap_or_default(),
                lower,
                upper,
            ));
            for (p, a) in acc.iter_mut().take(np).enumerate() {
                if let (Some(d), Some(s)) = (a.get_mut(..nco), buf.get(p * nco..(p + 1) * nco)) {
                    d.copy_from_slice(s);
                }
            }
        }
    }
}

/// y = x·scale_c + shift_c per channel, in place.
pub(crate) fn affine_channels<T: Real>(x: &mut [T], plane: usize, scale: &[T], shift: &[T]) {
    for ((p, &s), &t) in x.chunks_exact_mut(plane.max(1)).zip(scale).zip(shift) {
        for v in p {
            *v = v.mul_add(s, t);
        }
    }
}

/// Exact ReLU in place (the scalar reference of [`relu_max`] and the fused output pass).
#[cfg(test)]
pub(crate) fn relu<T: Real>(x: &mut [T]) {
    for v in x {
        if *v < T::ZERO {
            *v = T::ZERO;
        }
    }
}

/// Exact ReLU in place, returning the largest |x| (NaN ignored; 0 for no input): 16
/// independent running maxima (one vector register for f32) and a select for the ReLU, so the
/// loop vectorises; a maximum is exact in any order.
pub(crate) fn relu_max<T: Real>(x: &mut [T]) -> f64 {
    fn step<T: Real>(v: &mut T, m: &mut T) {
        let av = if *v < T::ZERO { T::ZERO - *v } else { *v };
        *m = if av > *m { av } else { *m };
        *v = if *v < T::ZERO { T::ZERO } else { *v };
    }
    let mut m = [T::ZERO; CO_TILE];
    let mut chunks = x.chunks_exact_mut(CO_TILE);
    for c in &mut chunks {
        for (v, m) in c.iter_mut().zip(m.iter_mut()) {
            step(v, m);
        }
    }
    for (v, m) in chunks.into_remainder().iter_mut().zip(m.iter_mut()) {
        step(v, m);
    }
    m.iter().fold(0.0f64, |a, v| a.max(v.to_f64()))
}

/// Clip in place, returning the smallest and largest input in f64 (NaN ignored; +∞ and −∞
/// for no input).
pub(crate) fn clip_minmax<T: Real>(x: &mut [T], lo: T, hi: T) -> (f64, f64) {
    // CO_TILE independent lanes of running minima / maxima written as selects (a NaN input
    // never compares true, so it is ignored, and it is left as NaN by the clamp), so the loop
    // vectorises; the lanes are folded in f64 at the end (T → f64 is exact and monotone, so
    // the result is that of a scalar f64 fold).
    fn step<T: Real>(v: &mut T, mn: &mut T, mx: &mut T, lo: T, hi: T) {
        *mn = if *v < *mn { *v } else { *mn };
        *mx = if *v > *mx { *v } else { *mx };
        *v = if *v < lo {
            lo
        } else if *v > hi {
            hi
        } else {
            *v
        };
    }
    let mut mn = [T::ZERO - T::NEG_INFINITY; CO_TILE];
    let mut mx = [T::NEG_INFINITY; CO_TILE];
    let mut chunks = x.chunks_exact_mut(CO_TILE);
    for c in &mut chunks {
        for ((v, a), b) in c.iter_mut().zip(mn.iter_mut()).zip(mx.iter_mut()) {
            step(v, a, b, lo, hi);
        }
    }
    for ((v, a), b) in chunks
        .into_remainder()
        .iter_mut()
        .zip(mn.iter_mut())
        .zip(mx.iter_mut())
    {
        step(v, a, b, lo, hi);
    }
    let fold = |l: &[T], pick_lower: bool| {
        l.iter().fold(
            if pick_lower {
                f64::INFINITY
            } else {
                f64::NEG_INFINITY
            },
            |a, v| {
                let f = v.to_f64();
                if (pick_lower && f < a) || (!pick_lower && f > a) {
                    f
                } else {
                    a
                }
            },
        )
    };
    (fold(&mn, true), fold(&mx, false))
}

/// Walk every pooling window: `f(output index, flat input indices of the window)`, in
/// output order (padding excluded).
pub(crate) fn for_pool_windows(
    chw: (usize, usize, usize),
    p: &Pool,
    out_hw: (usize, usize),
    mut f: impl FnMut(usize, &[usize]),
) {
    let (c, h, w) = chw;
    let (ho, wo) = out_hw;
    let mut win = Vec::with_capacity(p.kernel[0] * p.kernel[1]);
    let mut o = 0;
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
                        win.push((ci * h + iy - p.pads[0]) * w + ix - p.pads[1]);
                    }
                }
                f(o, &win);
                o += 1;
            }
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
    let (c, _, _) = chw;
    let mut out = Vec::with_capacity(c * out_hw.0 * out_hw.1);
    let mut vals = Vec::with_capacity(p.kernel[0] * p.kernel[1]);
    for_pool_windows(chw, p, out_hw, |_, win| {
        vals.clear();
        vals.extend(win.iter().filter_map(|&i| x.get(i).copied()));
        out.push(f(&vals, p.kernel[0] * p.kernel[1]));
    });
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
    if T::PACKED_POINTWISE {
        gemv(x, w, k, &mut out);
    } else {
        T::gemm(m, k, 1, w, x, &mut out, true);
    }
    out
}

/// [`linear`] on each input of `xs` (a batch of images), the same bits as one call per
/// input: for f32 each weight row is read once for all inputs (per input the chain of
/// [`gemv`]), instead of streaming the whole matrix once per image.
pub(crate) fn linear_batch<T: Real>(
    xs: &[&[T]],
    w: &[T],
    m: usize,
    k: usize,
    bias: Option<&[T]>,
) -> Vec<Vec<T>> {
    if !T::PACKED_POINTWISE {
        return xs.iter().map(|x| linear(x, w, m, k, bias)).collect();
    }
    let mut ys: Vec<Vec<T>> = xs
        .iter()
        .map(|_| match bias {
            Some(b) => b.to_vec(),
            None => vec![T::ZERO; m],
        })
        .collect();
    for (i, row) in w.chunks(k.max(1)).enumerate().take(m) {
        for (x, y) in xs.iter().zip(&mut ys) {
            if let Some(yi) = y.get_mut(i) {
                *yi += gemv_row(x, row, k);
            }
        }
    }
    ys
}

/// Σ_j W[i, j]·x_j of one row of [`gemv`], in its order (16 lanes of fused multiply-add
/// chains over the columns j ≡ lane (mod 16), then the lanes summed in lane order).
#[inline(always)]
fn gemv_row<T: Real>(x: &[T], row: &[T], k: usize) -> T {
    const L: usize = 16;
    let x = x.get(..k).unwrap_or(x);
    let mut acc = [T::ZERO; L];
    let mut wc = row.chunks_exact(L);
    let mut xc = x.chunks_exact(L);
    for (wv, xv) in (&mut wc).zip(&mut xc) {
        for ((a, &wj), &xj) in acc.iter_mut().zip(wv).zip(xv) {
            *a = wj.mul_add(xj, *a);
        }
    }
    for ((a, &wj), &xj) in acc.iter_mut().zip(wc.remainder()).zip(xc.remainder()) {
        *a = wj.mul_add(xj, *a);
    }
    acc.iter().fold(T::ZERO, |s, &a| s + a)
}

/// y_i += Σ_j W[i, j]·x_j for every row i of the row-major W (k columns) and i < y.len(),
/// without packing W (`matrixmultiply` would pack the whole matrix for a single column): per
/// row, 16 lanes of fused multiply-add chains over the columns j ≡ lane (mod 16) in order,
/// then the lanes summed in lane order and added to y_i. A fixed order, so the same bits on
/// every call. Rows or inputs too short give zeros for the missing terms, never a panic.
fn gemv<T: Real>(x: &[T], w: &[T], k: usize, y: &mut [T]) {
    for (yi, row) in y.iter_mut().zip(w.chunks(k.max(1))) {
        *yi += gemv_row(x, row, k);
    }
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

/// A shape of rank ≤ 3 as (d0, d1, d2) with leading 1s; `None` for a higher rank.
fn dims3(d: &[usize], fill: usize) -> Option<[usize; 3]> {
    let mut r = [fill; 3];
    let n = d.len();
    if n > 3 {
        return None;
    }
    for (i, &v) in d.iter().enumerate() {
        if let Some(x) = r.get_mut(3 - n + i) {
            *x = v;
        }
    }
    Some(r)
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
    let rank = s_in.0.len();
    if let (Some([_, h, w]), Some([a, b, c]), Some([s0, s1, s2]), Some([t0, t1, t2]), true) = (
        dims3(&s_in.0, 1),
        dims3(&s_out.0, 1),
        dims3(starts, 0),
        dims3(steps, 1),
        s_out.0.len() == rank && starts.len() == rank && steps.len() == rank,
    ) {
        // Rank ≤ 3 (per-sample C, H, W): three plain loops.
        for i in 0..a {
            for j in 0..b {
                let row = ((s0 + i * t0) * h + s1 + j * t1) * w + s2;
                out.extend((0..c).map(|k| x.get(row + k * t2).copied().unwrap_or(T::ZERO)));
            }
        }
        return out;
    }
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
    let rank = s_in.0.len();
    if let (Some([a, b, c]), Some([_, h, w]), Some([b0, b1, b2]), true) = (
        dims3(&s_in.0, 1),
        dims3(&s_out.0, 1),
        dims3(begin, 0),
        s_out.0.len() == rank && begin.len() == rank,
    ) {
        // Rank ≤ 3: copy whole rows.
        for i in 0..a {
            for j in 0..b {
                let d = ((b0 + i) * h + b1 + j) * w + b2;
                let s = (i * b + j) * c;
                if let (Some(o), Some(v)) = (out.get_mut(d..d + c), x.get(s..s + c)) {
                    o.copy_from_slice(v);
                }
            }
        }
        return out;
    }
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
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Deterministic values uniform in [−1, 1) from a 64-bit LCG started at `seed` (test
    /// fixtures only).
    pub(in crate::nn) fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut r = seed;
        move || {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((r >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        }
    }

    /// Direct 7-loop convolution (the naive reference; taps outside the input skipped, so any
    /// bottom / right padding is implied by the output size).
    #[allow(clippy::too_many_arguments)]
    pub(in crate::nn) fn conv_naive(
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

    /// A composite sign polynomial with awkward coefficients (three components, odd degrees
    /// 3, 9, 5), so that the Horner chains are long enough to differ if reordered.
    pub(in crate::nn) fn test_sign() -> SignKernel {
        use crate::poly::{CompositePoly, OddPoly};
        use rug::Float;
        let odd = |c: &[f64]| {
            OddPoly::from_odd_coeffs(c.iter().map(|&v| Float::with_val(53, v)).collect()).unwrap()
        };
        let p = CompositePoly::new(vec![
            odd(&[1.5, -0.5]),
            odd(&[3.1, -7.3, 9.25, -4.4, 0.75]),
            odd(&[2.0, -1.25, 0.3]),
        ])
        .unwrap();
        SignKernel::new(7, &p)
    }

    /// One past the largest input index a tile reads (the length that is one too short).
    fn taps_max(taps: &Taps, pix: &[usize; PX_TILE]) -> usize {
        let m = (0..taps.len()).map(|k| taps.off_at(k)).max().unwrap_or(0);
        pix.iter().max().unwrap() + m
    }

    /// Fused output pass (r̃_α and exact ReLU) against the linear convolution followed by the
    /// portable activation loops: same bits and statistics.
    pub(in crate::nn) fn check_fused<T: Real>(
        x: &[T],
        chw: (usize, usize, usize),
        k: &ConvK<T>,
        out_hw: (usize, usize),
        sign: &SignKernel,
        b: f64,
    ) -> Result<(), TestCaseError> {
        let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
        let mut col = Vec::new();
        let (lin, s0) = conv_epi(x, chw, k, out_hw, &mut col, Epilogue::Linear);
        prop_assert_eq!(s0, EpiStats::default());
        let (fused, st) = conv_epi(x, chw, k, out_hw, &mut col, Epilogue::Poly { sign, b });
        let mut want = lin.clone();
        let (n, m) = sign.relu_poly_portable(&mut want, b);
        prop_assert_eq!(bits(&fused), bits(&want));
        prop_assert_eq!(st.outside, n);
        prop_assert_eq!(st.max_abs.to_bits(), m.to_bits());
        let (re, sr) = conv_epi(x, chw, k, out_hw, &mut col, Epilogue::Relu);
        let mut want = lin.clone();
        relu(&mut want);
        prop_assert_eq!(bits(&re), bits(&want));
        let mx = lin.iter().fold(0.0f64, |a, v| a.max(v.to_f64().abs()));
        prop_assert_eq!(sr.max_abs.to_bits(), mx.to_bits());
        prop_assert_eq!(sr.outside, 0);
        // Exact and approximate Clip (issue 15) in the output pass against the same
        // functions on the whole linear output.
        let (lo, hi) = (-0.5, 0.75);
        let (fc, sc) = conv_epi(x, chw, k, out_hw, &mut col, Epilogue::Clip { lo, hi });
        let mut want = lin.clone();
        let (mn, mx) = clip_minmax(&mut want, T::from_f64(lo), T::from_f64(hi));
        prop_assert_eq!(bits(&fc), bits(&want));
        prop_assert_eq!(sc.range, (mn <= mx).then_some((mn, mx)));
        let lower = Some(ClipRelu { shift: lo, b });
        let upper = Some(ClipRelu {
            shift: hi,
            b: 0.5 * b,
        });
        let (fp, sp) = conv_epi(
            x,
            chw,
            k,
            out_hw,
            &mut col,
            Epilogue::ClipPoly { sign, lower, upper },
        );
        let mut want = lin.clone();
        let [l, u] = sign.clip_in_place_stats(&mut want, lower, upper);
        prop_assert_eq!(bits(&fp), bits(&want));
        prop_assert_eq!((sp.outside, sp.max_abs.to_bits()), (l.0, l.1.to_bits()));
        prop_assert_eq!((sp.upper.0, sp.upper.1.to_bits()), (u.0, u.1.to_bits()));
        Ok(())
    }

    fn vals(n: impl Into<prop::collection::SizeRange>) -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(-2.0f64..2.0, n)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn conv_matches_naive(
            g in 1usize..3, cig in 1usize..3, cog in 1usize..20,
            h in 3usize..8, w in 3usize..8, kh in 1usize..4, kw in 1usize..4,
            s in 1usize..3, d in 1usize..3, p in 0usize..3, q in 0usize..3, bias in any::<bool>(), seed in any::<u64>(),
        ) {
            let (c, cout) = (g * cig, g * cog);
            let eh = d * (kh - 1) + 1;
            let ew = d * (kw - 1) + 1;
            // pads [top, left, bottom, right] = [p, p, q, q]
            prop_assume!(eh <= h + p + q && ew <= w + p + q);
            let ho = (h + p + q - eh) / s + 1;
            let wo = (w + p + q - ew) / s + 1;
            let mut rnd = lcg(seed);
            let x: Vec<f64> = (0..c * h * w).map(|_| rnd()).collect();
            let mut k = ConvK {
                weight: (0..cout * cig * kh * kw).map(|_| rnd()).collect(),
                bias: bias.then(|| (0..cout).map(|_| rnd()).collect()),
                cout, cin: c, kh, kw, strides: [s, s], pads: [p, p, q, q], dilations: [d, d], groups: g,
                packed: Vec::new(),
            };
            k.pack();
            let mut col = Vec::new();
            let (got, m0) = conv(&x, (c, h, w), &k, (ho, wo), &mut col, false);
            let want = conv_naive(&x, (c, h, w), &k, (ho, wo));
            prop_assert_eq!(got.len(), want.len());
            prop_assert_eq!(m0, 0.0);
            for (a, b) in got.iter().zip(&want) {
                prop_assert!((a - b).abs() < 1e-12, "{} vs {}", a, b);
            }
            // Fused ReLU: the ReLU of the same values, and the largest |pre-activation|.
            let (r, m) = conv(&x, (c, h, w), &k, (ho, wo), &mut col, true);
            prop_assert_eq!(m, got.iter().fold(0.0f64, |a, v| a.max(v.abs())));
            for (a, b) in r.iter().zip(&got) {
                prop_assert_eq!(*a, b.max(0.0));
            }
            // The f32 kernel (AVX2 + FMA where enabled) against the f64 reference.
            let mut kf = ConvK {
                weight: k.weight.iter().map(|&v| v as f32).collect(),
                bias: k.bias.as_ref().map(|b| b.iter().map(|&v| v as f32).collect()),
                cout, cin: c, kh, kw, strides: [s, s], pads: [p, p, q, q], dilations: [d, d], groups: g,
                packed: Vec::new(),
            };
            kf.pack();
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let mut colf = Vec::new();
            let (gf, _) = conv(&xf, (c, h, w), &kf, (ho, wo), &mut colf, false);
            for (a, b) in gf.iter().zip(&want) {
                prop_assert!((f64::from(*a) - b).abs() < 1e-5, "{} vs {}", a, b);
            }
        }

        #[test]
        fn fused_output_pass_matches_unfused_bit_for_bit(
            g in 1usize..3, cig in 1usize..4, cog in 1usize..36, h in 3usize..9, w in 3usize..9,
            kh in 1usize..4, s in 1usize..3, p in 0usize..2, bias in any::<bool>(),
            b in 0.5f64..4.0, nan_at in 0usize..400, seed in any::<u64>(),
        ) {
            // conv + r̃_α (and + exact ReLU) in the output pass, f32 (AVX2 tile, transpose
            // scatter, AVX-512/AVX2 polynomial where available) and f64 (portable), against
            // the unfused path: the linear convolution, then the portable activation loop on
            // the whole output. Same bits, same out-of-range count, same max |v|; shapes
            // leave partial tiles (channels not a multiple of 16, pixels not of 6).
            let (c, cout) = (g * cig, g * cog);
            prop_assume!(kh <= h + 2 * p && kh <= w + 2 * p);
            let (ho, wo) = ((h + 2 * p - kh) / s + 1, (w + 2 * p - kh) / s + 1);
            let mut rnd = lcg(seed);
            let mut x: Vec<f64> = (0..c * h * w).map(|_| 2.0 * rnd()).collect();
            if let Some(v) = x.get_mut(nan_at) {
                *v = f64::NAN;
            }
            let mut k = ConvK {
                weight: (0..cout * cig * kh * kh).map(|_| rnd()).collect(),
                bias: bias.then(|| (0..cout).map(|_| rnd()).collect()),
                cout, cin: c, kh, kw: kh, strides: [s, s], pads: [p, p, p, p], dilations: [1, 1], groups: g,
                packed: Vec::new(),
            };
            k.pack();
            let sign = test_sign();
            check_fused(&x, (c, h, w), &k, (ho, wo), &sign, b)?;
            let mut kf = ConvK {
                weight: k.weight.iter().map(|&v| v as f32).collect(),
                bias: k.bias.as_ref().map(|b| b.iter().map(|&v| v as f32).collect()),
                cout, cin: c, kh, kw: kh, strides: [s, s], pads: [p, p, p, p], dilations: [1, 1], groups: g,
                packed: Vec::new(),
            };
            kf.pack();
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            check_fused(&xf, (c, h, w), &kf, (ho, wo), &sign, b)?;
        }

        #[test]
        fn avx2_conv_tile_matches_portable_bit_for_bit(
            kk in 0usize..60, len in 8usize..200, seed in any::<u64>(), nan_at in 0usize..400,
        ) {
            // The f32 tile kernel (AVX2 + FMA where enabled) against the portable one on random
            // taps, pixel origins and weights (with a NaN somewhere): every sum the same bits.
            let mut r = seed;
            let mut next = || { r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); r >> 11 };
            let mut x: Vec<f32> = (0..len).map(|_| (next() as f64 / (1u64 << 53) as f64 * 8.0 - 4.0) as f32).collect();
            if let Some(v) = x.get_mut(nan_at) {
                *v = f32::NAN;
            }
            let taps = Taps::new((0..kk).map(|_| next() as usize % (len / 2)).collect());
            let pix: [usize; PX_TILE] = std::array::from_fn(|_| next() as usize % (len / 2));
            let wt: Vec<f32> = (0..kk * CO_TILE).map(|_| (next() as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32).collect();
            let (mut a, mut b) = ([[7.0f32; CO_TILE]; PX_TILE], [[7.0f32; CO_TILE]; PX_TILE]);
            prop_assert!(crate::nn::gemm::conv_tile_f32(&x, &pix, &taps, &wt, &mut a));
            prop_assert!(crate::nn::gemm::conv_tile(&x, &pix, &taps, &wt, &mut b));
            prop_assert_eq!(a.map(|r| r.map(f32::to_bits)), b.map(|r| r.map(f32::to_bits)));
            // Too short a weight panel or input: refused, nothing written.
            let mut z = [[7.0f32; CO_TILE]; PX_TILE];
            if kk > 0 {
                prop_assert!(!crate::nn::gemm::conv_tile_f32(&x, &pix, &taps, &wt[..wt.len() - 1], &mut z));
                prop_assert!(!crate::nn::gemm::conv_tile_f32(&x[..taps_max(&taps, &pix)], &pix, &taps, &wt, &mut z));
            }
            prop_assert_eq!(z, [[7.0f32; CO_TILE]; PX_TILE]);
        }

        #[test]
        fn transpose_scatter_matches_portable(
            np in 1usize..=PX_TILE, nco in 1usize..=CO_TILE, hw in 6usize..40, q in 0usize..30, seed in any::<u64>(),
        ) {
            // The AVX2 transpose-scatter writes exactly the values of the portable loop and
            // nothing else (the sentinel 9.5 stays everywhere outside the tile's cells).
            prop_assume!(q + np <= hw);
            let mut r = seed;
            let acc: [[f32; CO_TILE]; PX_TILE] = std::array::from_fn(|_| std::array::from_fn(|_| { r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (r >> 40) as f32 }));
            let n = CO_TILE * hw;
            let (mut a, mut b) = (vec![9.5f32; n], vec![9.5f32; n]);
            prop_assert!(crate::nn::gemm::scatter_tile_f32(&acc, &mut a, q, hw, np, nco));
            prop_assert!(crate::nn::gemm::scatter_tile(&acc, &mut b, q, hw, np, nco));
            prop_assert_eq!(&a, &b);
            for (i, v) in b.iter().enumerate() {
                let (ch, px) = (i / hw, i % hw);
                let inside = ch < nco && px >= q && px < q + np;
                prop_assert_eq!(*v == 9.5, !inside || acc[px - q][ch] == 9.5);
                if inside {
                    prop_assert_eq!(*v, acc[px - q][ch]);
                }
            }
            let mut short = vec![9.5f32; q + (nco - 1) * hw + np - 1];
            prop_assert!(!crate::nn::gemm::scatter_tile_f32(&acc, &mut short, q, hw, np, nco));
            prop_assert!(short.iter().all(|&v| v == 9.5));
        }

        #[test]
        fn relu_max_matches_scalar(mut x in vals(0..70), nan_at in 0usize..80) {
            // Against the scalar ReLU and an f64 fold of |x| (NaN ignored), with −0.0 and a NaN.
            if let Some(v) = x.get_mut(nan_at / 2) {
                *v = -0.0;
            }
            if let Some(v) = x.get_mut(nan_at) {
                *v = f64::NAN;
            }
            let want_m = x.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            let mut want = x.clone();
            relu(&mut want);
            let m = relu_max(&mut x);
            prop_assert_eq!(m.to_bits(), want_m.to_bits());
            prop_assert_eq!(x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }

        #[test]
        fn clip_minmax_matches_scalar(mut x in vals(0..70), nan_at in 0usize..80, lo in -1.0f64..0.5, w in 0.0f64..2.0) {
            // Against a scalar clamp and an f64 fold of the inputs (NaN ignored and kept).
            if let Some(v) = x.get_mut(nan_at) {
                *v = f64::NAN;
            }
            let hi = lo + w;
            let (mut mn, mut mx) = (f64::INFINITY, f64::NEG_INFINITY);
            let mut want = x.clone();
            for v in &mut want {
                if *v < mn { mn = *v; }
                if *v > mx { mx = *v; }
                if *v < lo { *v = lo; } else if *v > hi { *v = hi; }
            }
            // f32 (AVX2 where enabled) on the same values rounded, with −0.0 and +0.0 inputs
            // and bounds (the clamp keeps the input's zero).
            let mut xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            xf.extend([-0.0, 0.0, lo as f32, hi as f32]);
            for (lf, hf) in [(lo as f32, hi as f32), (-0.0, 0.0), (0.0, 0.0)] {
                let mut got = xf.clone();
                let mut want = xf.clone();
                let (mut mn, mut mx) = (f64::INFINITY, f64::NEG_INFINITY);
                for v in &mut want {
                    if f64::from(*v) < mn { mn = f64::from(*v); }
                    if f64::from(*v) > mx { mx = f64::from(*v); }
                    if *v < lf { *v = lf; } else if *v > hf { *v = hf; }
                }
                // The extremes by value (which of two tied zeros a lane fold keeps is not
                // specified), the clipped values bit for bit.
                let (gmn, gmx) = <f32 as Real>::clip_minmax(&mut got, lf, hf);
                prop_assert!(gmn == mn && gmx == mx, "{} {} vs {} {}", gmn, gmx, mn, mx);
                prop_assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            }
            let (gmn, gmx) = clip_minmax(&mut x, lo, hi);
            prop_assert_eq!((gmn.to_bits(), gmx.to_bits()), (mn.to_bits(), mx.to_bits()));
            prop_assert_eq!(x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
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
        fn linear_batch_is_linear_per_input_bit_for_bit(
            m in 1usize..9, k in 1usize..70, nb in 0usize..6, seed in any::<u64>(), bias in any::<bool>(),
        ) {
            // One product over a batch (`Engine::run_batch`'s final fully connected layer)
            // against one `linear` per input, f32 (weights read once per row) and f64.
            let mut r = lcg(seed);
            let xs: Vec<Vec<f64>> = (0..nb).map(|_| (0..k).map(|_| r()).collect()).collect();
            let w: Vec<f64> = (0..m * k).map(|_| r()).collect();
            let b: Vec<f64> = (0..m).map(|_| r()).collect();
            let bias = bias.then_some(&b[..]);
            let refs: Vec<&[f64]> = xs.iter().map(Vec::as_slice).collect();
            let ys = linear_batch(&refs, &w, m, k, bias);
            prop_assert_eq!(ys.len(), nb);
            for (x, y) in xs.iter().zip(&ys) {
                prop_assert_eq!(y, &linear(x, &w, m, k, bias));
            }
            let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let (xf, wf, bf): (Vec<Vec<f32>>, _, _) = (xs.iter().map(|x| f(x)).collect(), f(&w), f(&b));
            let bias = bias.map(|_| &bf[..]);
            let refs: Vec<&[f32]> = xf.iter().map(Vec::as_slice).collect();
            let ys = linear_batch(&refs, &wf, m, k, bias);
            for (x, y) in xf.iter().zip(&ys) {
                let want = linear(x, &wf, m, k, bias);
                prop_assert_eq!(y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            }
        }

        #[test]
        fn f32_linear_matches_dot(m in 1usize..6, k in 1usize..70, seed in any::<u64>(), bias in any::<bool>()) {
            // The f32 path (unpacked 16-lane products) against an f64 sum of the same
            // f32 values: within the γ_{k+1} bound (k + 1)·2^−24·Σ|terms| (1.01 slack for the
            // reference's own rounding).
            let mut r = lcg(seed);
            let x: Vec<f32> = (0..k).map(|_| r() as f32).collect();
            let w: Vec<f32> = (0..m * k).map(|_| r() as f32).collect();
            let b: Vec<f32> = (0..m).map(|_| r() as f32).collect();
            let y = linear(&x, &w, m, k, bias.then_some(&b[..]));
            prop_assert_eq!(y.len(), m);
            for i in 0..m {
                let b0 = if bias { f64::from(b[i]) } else { 0.0 };
                let t: Vec<f64> = (0..k).map(|j| f64::from(w[i * k + j]) * f64::from(x[j])).collect();
                let want = b0 + t.iter().sum::<f64>();
                let mag = b0.abs() + t.iter().map(|v| v.abs()).sum::<f64>();
                let tol = 1.01 * (k as f64 + 1.0) * 2f64.powi(-24) * mag;
                prop_assert!((f64::from(y[i]) - want).abs() <= tol, "{} vs {}", y[i], want);
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
            prop_assert_eq!(&z, &x);
            // Rank 4 (the general index walk) agrees with the rank-3 loops.
            let (s4, so4) = (Shape(vec![1, 3, 4, 6]), Shape(vec![1, 3 + b0 + 1, 4 + b1 + e1, 6]));
            let y4 = pad(&x, &s4, &[0, b0, b1, 0], 9.0, &so4);
            prop_assert_eq!(&y4, &y);
            prop_assert_eq!(slice(&y4, &so4, &[0, b0, b1, 0], &[1, 1, 1, 1], &s4), x.clone());
            let z4 = slice(&x, &s4, &[0, 0, 1, 1], &[1, 1, 2, 2], &Shape(vec![1, 3, 2, 3]));
            let z3 = slice(&x, &s, &[0, 1, 1], &[1, 2, 2], &Shape(vec![3, 2, 3]));
            prop_assert_eq!(z4, z3);
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
            let mut q = x.clone();
            let (mn, mx) = clip_minmax(&mut q, -0.5, 0.5);
            for (a, v) in q.iter().zip(&x) { prop_assert_eq!(*a, v.clamp(-0.5, 0.5)); }
            prop_assert_eq!(mn, x.iter().cloned().fold(f64::INFINITY, f64::min));
            prop_assert_eq!(mx, x.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
        }
    }
}
