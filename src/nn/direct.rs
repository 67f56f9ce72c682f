//! Two special cases of the convolution that `ops::conv_epi` hands to dedicated kernels
//! instead of the 16-channel × 6-pixel tile kernel (which would leave 15 of its 16 channel
//! lanes empty on a depthwise convolution, and does not block for cache on long 1×1 sums):
//!
//! - **depthwise** (groups = C_in = C_out): per channel c and output row oy,
//!   y_c[oy, ·] = b_c + Σ_{i,j} w_{c,i,j}·x̂_c[oy·s_h + i·d_h, · ·s_w + j·d_w] over the zero-padded
//!   input x̂, one fused multiply-add per tap and vector of contiguous output pixels, in
//!   register blocks of several rows (each padded input row is first split into its s_w
//!   phases x̂[·, p + s_w·q], which makes the strided taps contiguous too);
//! - **1×1, stride 1, no padding**: per group g, Y_g = W_g·X_g + b, a plain matrix product of
//!   the [C_out/g × C_in/g] weights with the [C_in/g × H·W] input planes: in f32 on 6 × 16
//!   register blocks (12 × 32 where the CPU has AVX-512F, `pointwise`; weights packed into
//!   panels when the engine is built, X read in place,
//!   the epilogue per column chunk), in f64 by `matrixmultiply`.
//!
//! In f32 with AVX2 + FMA, the depthwise convolutions that `dwblock` takes (kw ∈ {3, 5},
//! s_w ∈ {1, 2}) run there instead, 8 channels in the lanes, with the same bits.
//!
//! Both apply the same [`Epilogue`] as the tile kernel (bias first, then the activation on
//! every value, with the same statistics), so the values differ from the tile kernel's only
//! by the summation order of the dot products. The exact activations (none, ReLU, Clip) run
//! as the values are stored (the kernels of `pointwise`: one pass over the output instead of
//! a store, a copy with + bias and an activation pass); r̃_α runs on each finished plane or
//! column chunk while it is in cache. Outputs are written into buffers the engine recycles
//! (every value is overwritten, so they are not zeroed first).

use super::dwblock::{prepare_buf, DwBlock, DwGeom, CB};
use super::engine::Real;
use super::gemm::{PW_MR, PW_NR, PW_NR_TAIL};
use super::ops::{relu_max, ConvK, EpiStats, Epilogue};
use super::pointwise::{ActLanes, ExactAct, WIDE_LANES};

/// Output pixels per register block of the depthwise kernel (4 AVX2 vectors of f32).
const PXB: usize = 32;

/// Output pixels per block of the row's last partial blocks (EfficientNet's widths 7, 14, 28
/// are below [`PXB`]); one vector of f32.
const PXB_TAIL: usize = 8;

/// Output rows per register block of [`PXB_TAIL`] pixels (the most rows a depthwise block
/// computes, also the last block of a plane, see `segment`).
const PXB_ROWS: usize = 8;

/// Where the values of a depthwise block go: the output from a channel plane on (rows of
/// `wo` pixels; the planes of later channels follow), the channel's bias, and the exact
/// activation run on each value as it is stored, with its statistics in `lanes` (`None`: the
/// values as they are, for a separate pass).
struct PlaneOut<'a, T> {
    plane: &'a mut [T],
    wo: usize,
    bias: T,
    act: Option<ExactAct<T>>,
    lanes: &'a mut ActLanes<T>,
}

/// One block of R output rows × 8·V output pixels of a depthwise plane (the sums by
/// [`Real::dw_block`]): for rows r < `rows` ≤ R and pixels k < n ≤ 8V,
/// `plane[o + r·wo + k] = act(Σ_taps w·buf[start + r·rstep + t + k] + bias)`, reading 8V
/// cells per tap and each of the R rows (the caller guarantees they exist; the sums of rows
/// ≥ `rows` are dropped); `rstep` is the distance in `buf` between the windows of
/// consecutive output rows.
///
/// A row is stored whole (8V values) wherever the output has room: the values past n then
/// land on the first pixels of the next row or plane, which `depthwise` writes later (it runs
/// a row's partial segment first), and they enter no statistic. Only the last row of the
/// last plane is cut to n values. This avoids a masked store per row (slow on Zen 4: it was
/// the hottest instruction of the 7×7 and 14×14 planes).
#[expect(
    clippy::indexing_slicing,
    reason = "`plane` holds R rows of wo ≥ n pixels from o (the caller's geometry)"
)]
#[inline(always)]
fn block<T: Real, const R: usize, const V: usize>(
    buf: &[T],
    at: (usize, usize),
    (taps, wt): (&[usize], &[T]),
    out: &mut PlaneOut<'_, T>,
    o: usize,
    (n, rows): (usize, usize),
) {
    let mut acc = [T::ZERO; 64];
    let p = 8 * V;
    let ok = R * p <= acc.len() && T::dw_block::<R, V>(buf, at, taps, wt, &mut acc);
    if !ok {
        // A refused block (never, for the geometry `depthwise` checked) gives sums 0.
        acc = [T::ZERO; 64];
    }
    let (bias, wo, act) = (out.bias, out.wo, out.act);
    for (r, a) in acc.chunks_exact(p).take(R.min(rows)).enumerate() {
        let s = o + r * wo;
        if out.plane.len() >= s + p {
            T::store_act(&mut out.plane[s..s + p], a, n, (bias, act), out.lanes);
        } else {
            T::store_act(&mut out.plane[s..s + n], a, n, (bias, act), out.lanes);
        }
    }
}

/// The output rows `0..ho` of one column segment (pixels `ox .. ox + n`, n ≤ P) of a depthwise
/// plane, P = [`PXB`] or [`PXB_TAIL`], in register blocks of eight 8-pixel vectors of sums
/// (2 rows × 32 pixels, or 8 rows × 8 pixels): enough independent fused multiply-add chains
/// to cover the FMA latency on two pipes (one 8-pixel row alone would wait on its single
/// chain at every tap). The last block keeps the full height and drops the rows past `ho`
/// (`buf` has room for them): its eight chains finish in the time of the one to four that a
/// lower block would run on (the 7 rows of a 7×7 plane: one block instead of 4 + 2 + 1 rows,
/// each waiting on the FMA latency). Every kept sum is the same chain as before.
#[inline(always)]
fn segment<T: Real, const P: usize>(
    buf: &[T],
    rstep: usize,
    kernel: (&[usize], &[T]),
    out: &mut PlaneOut<'_, T>,
    ho: usize,
    (ox, n): (usize, usize),
) {
    let mut oy = 0;
    while oy < ho {
        let left = ho - oy;
        let at = (oy * rstep + ox, rstep);
        let o = oy * out.wo + ox;
        let rows = if P == PXB {
            block::<T, 2, { PXB / 8 }>(buf, at, kernel, out, o, (n, left));
            2
        } else {
            block::<T, PXB_ROWS, 1>(buf, at, kernel, out, o, (n, left));
            PXB_ROWS
        };
        oy += rows;
    }
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
            st.add_range(T::clip_minmax(v, T::from_f64(lo), T::from_f64(hi)));
        }
        Epilogue::ClipPoly { sign, lower, upper } => {
            st.add_clip(sign.clip_in_place_stats(v, lower, upper));
        }
    }
}

/// Depthwise convolution (see the module docs); `buf` holds one channel's phase-split padded
/// input and is reused across calls. Inconsistent sizes give zeros (ruled out by the
/// engine's shape checks), never a panic.
pub(crate) fn depthwise<T: Real>(
    x: &[T],
    chw: (usize, usize, usize),
    k: &ConvK<T>,
    out_hw: (usize, usize),
    buf: &mut Vec<T>,
    epi: Epilogue<'_>,
    recycled: Vec<T>,
) -> (Vec<T>, EpiStats) {
    depthwise_with(x, chw, k, out_hw, (buf, T::DW_BLOCKED), epi, recycled)
}

/// [`depthwise`], on the channel-blocked kernel of `dwblock` when `blocked` and the kernel
/// takes the geometry, else one channel plane at a time (both give the same bits).
#[expect(
    clippy::indexing_slicing,
    reason = "hot loop; every range is checked against the buffer sizes before the loops"
)]
fn depthwise_with<T: Real>(
    x: &[T],
    (c, h, w): (usize, usize, usize),
    k: &ConvK<T>,
    (ho, wo): (usize, usize),
    (buf, blocked): (&mut Vec<T>, bool),
    epi: Epilogue<'_>,
    recycled: Vec<T>,
) -> (Vec<T>, EpiStats) {
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
        return (vec![T::ZERO; c * ho * wo], st);
    }
    // Every output value is written below (the column segments cover each row, the register
    // blocks each row of a segment), so a recycled buffer needs no zeroing.
    let mut out = super::ops::out_buf(recycled, c * ho * wo);
    // The exact activations run as the blocks are stored (`block`); the approximate ones in a
    // pass over each finished plane.
    let act = match epi {
        Epilogue::Linear => Some(ExactAct::Linear),
        Epilogue::Relu => Some(ExactAct::Relu),
        Epilogue::Clip { lo, hi } => Some(ExactAct::Clip {
            lo: T::from_f64(lo),
            hi: T::from_f64(hi),
        }),
        _ => None,
    };
    let mut lanes = ActLanes::new();
    let geom = DwGeom {
        hw: (h, w),
        out: (ho, wo),
        k: (kh, kw),
        strides: k.strides,
        dilations: k.dilations,
        pads: k.pads,
    };
    if blocked && geom.blocked_ok() {
        // Blocks of 8 channels in the lanes (`dwblock`); the buffer's padding cells stay zero
        // across the blocks. The approximate activations run on each block's finished planes,
        // in channel order as below.
        prepare_buf(buf, &geom, T::ZERO);
        let mut done = true;
        let mut c0 = 0;
        while c0 < c {
            let cr = CB.min(c - c0);
            let mut bias = [T::ZERO; CB];
            if let Some(b) = &k.bias {
                bias[..cr].copy_from_slice(&b[c0..c0 + cr]);
            }
            let blk = DwBlock {
                x: &x[c0 * h * w..],
                cr,
                wt: k.packed.get(c0 * kh * kw..).unwrap_or_default(),
                bias,
                act,
            };
            if !T::dw_block8(&blk, &geom, buf, &mut out[c0 * ho * wo..], &mut lanes) {
                done = false;
                break;
            }
            if act.is_none() {
                for plane in out[c0 * ho * wo..(c0 + cr) * ho * wo].chunks_exact_mut(ho * wo) {
                    epilogue_slice(plane, epi, &mut st);
                }
            }
            c0 += cr;
        }
        if done {
            if let Some(act) = act {
                lanes.fold_into(act, &mut st);
            }
            return (out, st);
        }
        // Refused (never, for the geometry checked): the per-plane kernel below rewrites
        // every value, from fresh statistics.
        st = EpiStats::default();
        lanes = ActLanes::new();
    }
    // Room for a full block of PXB_ROWS rows below the last output row (`segment`).
    let rstep = sh * sw * pw;
    buf.clear();
    buf.resize(hp * sw * pw + PXB + (PXB_ROWS - 1) * rstep, T::ZERO);
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
            } else if sw == 2 {
                // Padded column xp = xi + p_l goes to phase xp mod 2 at position ⌊xp / 2⌋:
                // after an odd first column, consecutive pairs fill both phases side by side
                // (a loop the compiler vectorises, unlike a strided gather).
                let (lo, hi) = buf.split_at_mut((row + 1) * pw);
                let (ph0, ph1) = (&mut lo[row * pw..], &mut hi[..pw]);
                let (mut src, mut xp) = (src, pl);
                if xp % 2 == 1 {
                    if let Some((&v, rest)) = src.split_first() {
                        ph1[xp / 2] = v;
                        (src, xp) = (rest, xp + 1);
                    }
                }
                let q0 = xp / 2;
                let mut pairs = src.chunks_exact(2);
                for ((a, b), pr) in ph0[q0..].iter_mut().zip(&mut ph1[q0..]).zip(&mut pairs) {
                    if let [u, v] = pr {
                        (*a, *b) = (*u, *v);
                    }
                }
                if let [v] = pairs.remainder() {
                    ph0[q0 + src.len() / 2] = *v;
                }
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
        let mut po = PlaneOut {
            plane: &mut out[ch * ho * wo..],
            wo,
            bias,
            act,
            lanes: &mut lanes,
        };
        // Column segments of PXB pixels, then of PXB_TAIL, each over all rows in register
        // blocks of several rows (see `segment`): the sums stay in registers over all taps
        // (one load and one fused multiply-add per pixel and tap). Σ from 0 over the taps in
        // (i, j) order, then + bias, as the tile kernel. A block always reads its full width
        // (`buf` has PXB spare cells at the end), and only its first n sums are kept, so the
        // last partial segment runs the same fixed-width loop. That partial segment runs
        // first: its whole-vector stores spill onto the next row's first pixels (`block`),
        // which the segment at column 0 then writes.
        let full = wo / PXB * PXB;
        let last = full + (wo - full).saturating_sub(1) / PXB_TAIL * PXB_TAIL;
        if last < wo {
            segment::<T, PXB_TAIL>(buf, rstep, (&taps, wt), &mut po, ho, (last, wo - last));
        }
        let mut ox = 0;
        while ox < last {
            let n = if ox < full { PXB } else { PXB_TAIL };
            if n == PXB {
                segment::<T, PXB>(buf, rstep, (&taps, wt), &mut po, ho, (ox, n));
            } else {
                segment::<T, PXB_TAIL>(buf, rstep, (&taps, wt), &mut po, ho, (ox, n));
            }
            ox += n;
        }
        if act.is_none() {
            epilogue_slice(&mut po.plane[..ho * wo], epi, &mut st);
        }
    }
    if let Some(act) = act {
        lanes.fold_into(act, &mut st);
    }
    (out, st)
}

/// 1×1 convolution with stride 1 and no padding as one matrix product per group (see the
/// module docs): on the packed-panel kernel for f32 ([`pointwise_packed`]), by
/// `matrixmultiply` otherwise. Inconsistent sizes (also an output size other than the input's)
/// give zeros, never a panic.
pub(crate) fn pointwise<T: Real>(
    x: &[T],
    (c, h, w): (usize, usize, usize),
    k: &ConvK<T>,
    out_hw: (usize, usize),
    epi: Epilogue<'_>,
    recycled: Vec<T>,
) -> (Vec<T>, EpiStats) {
    let hw = h * w;
    let g = k.groups.max(1);
    let (cig, cog) = (k.cin / g, k.cout / g);
    let st = EpiStats::default();
    if x.len() < c * hw
        || c != k.cin
        || k.weight.len() < k.cout * cig
        || hw == 0
        || out_hw != (h, w)
        || k.bias.as_ref().is_some_and(|b| b.len() < k.cout)
    {
        return (vec![T::ZERO; k.cout * out_hw.0 * out_hw.1], st);
    }
    // Both paths below write every output value (the packed blocks cover every panel and
    // column, the matrix product every row), so a recycled buffer needs no zeroing.
    let mut out = super::ops::out_buf(recycled, k.cout * hw);
    let mut st = st;
    if T::PACKED_POINTWISE {
        pointwise_packed(x, hw, k, epi, T::pw_wide_available(), &mut out, &mut st);
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

/// The shortest reduction (C_in/g) that runs on the wide AVX-512F block: below it, the 6 × 16
/// blocks were as fast or faster in an interleaved comparison on the Zen 4 bench machine (the
/// 16 → 96 and 24 → 144 expansions, whose time goes to the output pass and its stores); from
/// 144 input channels on, the wide block was 8–20 % faster.
const WIDE_MIN_K: usize = 32;

/// Input values (C_in/g × columns) a column chunk of [`pointwise_packed`] aims to keep in
/// L2 while every weight panel streams over it (64 KiB of f32).
const PW_CHUNK_VALUES: usize = 16384;

/// Y_g = W_g·X_g + b per group on [`Real::pw_tile`] register blocks of 6 output channels ×
/// 16 pixels, reading the input planes in place and the weights from the panels `k.packed`
/// (packed once when the engine is built, so nothing is packed per call). The columns are cut
/// into chunks of a multiple of 48 pixels (about [`PW_CHUNK_VALUES`] input values each; the
/// last one also takes a remainder of < 16 pixels); for
/// each chunk and panel of 6 channels the sums are written with + bias, then the epilogue
/// runs on those 6 row segments while they are in cache. The last < 16 columns of a chunk are
/// copied once, zero-padded, into a `[C_in/g][8]` block (≤ 8 of them, run on the 8-column
/// kernel) or a `[C_in/g][16]` one. With `wide` (AVX-512F) and C_in/g ≥ [`WIDE_MIN_K`], the full 16-pixel blocks of two
/// panels at a time run on `pointwise::pw_wide_f32` (12 channels × 32 or 16 pixels; the
/// exact activation fused, or + bias only before the separate pass of r̃_α). Every value is one fused
/// multiply-add chain over the input channels in order from 0, then + bias: the same bits
/// whatever the chunking and thread count. The caller has checked the sizes.
#[expect(
    clippy::indexing_slicing,
    reason = "hot loop; every range is within the sizes the caller checked"
)]
pub(crate) fn pointwise_packed<T: Real>(
    x: &[T],
    hw: usize,
    k: &ConvK<T>,
    epi: Epilogue<'_>,
    wide: bool,
    out: &mut [T],
    st: &mut EpiStats,
) {
    let g = k.groups.max(1);
    // The reduction length: C_in/g for a 1×1 convolution, C_in·k_h·k_w for an im2col
    // matrix (`im2col`, one group).
    let (cig, cog) = (k.cin / g * k.kh * k.kw, k.cout / g);
    let npan = cog.div_ceil(PW_MR);
    if k.packed.len() < g * npan * cig * PW_MR || out.len() < k.cout * hw {
        return;
    }
    let target = (PW_CHUNK_VALUES / cig.max(1)).max(48);
    let nc = hw.div_ceil(hw.div_ceil(target)).next_multiple_of(48);
    let mut tail = Vec::new();
    let mut acc = [[T::ZERO; PW_NR]; PW_MR];
    let mut acc8 = [[T::ZERO; PW_NR_TAIL]; PW_MR];
    // The exact activations run in the stores of the full 16-pixel blocks where the target
    // has the fused kernel (`pointwise`); then the separate pass covers only the last < 16
    // pixels of each chunk.
    let fused = match epi {
        Epilogue::Linear if T::PW_FUSED => Some(ExactAct::Linear),
        Epilogue::Relu if T::PW_FUSED => Some(ExactAct::Relu),
        Epilogue::Clip { lo, hi } if T::PW_FUSED => Some(ExactAct::Clip {
            lo: T::from_f64(lo),
            hi: T::from_f64(hi),
        }),
        _ => None,
    };
    let mut lanes = ActLanes::new();
    let wide = wide && cig >= WIDE_MIN_K;
    for gi in 0..g {
        let xg = &x[gi * cig * hw..(gi + 1) * cig * hw];
        let mut j0 = 0;
        while j0 < hw {
            // A last sliver of < 16 columns joins this chunk instead of making one of its
            // own (which would stream every weight panel again for one partial block: the
            // 7×7 planes of 49 = 48 + 1 pixels).
            let j1 = if hw - (j0 + nc).min(hw) < PW_NR {
                hw
            } else {
                j0 + nc
            };
            let full_end = j0 + (j1 - j0) / PW_NR * PW_NR;
            // The last < 16 columns, zero-padded to a block of 8 (≤ 8 of them) or 16.
            let tw = if j1 - full_end <= PW_NR_TAIL {
                PW_NR_TAIL
            } else {
                PW_NR
            };
            if full_end < j1 {
                tail.clear();
                tail.resize(cig * tw, T::ZERO);
                for ci in 0..cig {
                    tail[ci * tw..ci * tw + (j1 - full_end)]
                        .copy_from_slice(&xg[ci * hw + full_end..ci * hw + j1]);
                }
            }
            let mut p0 = 0;
            while p0 < npan {
                // With AVX-512F, the full 16-pixel blocks of two panels at a time on the wide
                // block (same bits); the 6-row path below then starts at `jw`.
                let pe = (p0 + if wide { 2 } else { 1 }).min(npan);
                let mut jw = j0;
                if wide {
                    let pan = |p: usize| &k.packed[(gi * npan + p) * cig * PW_MR..][..cig * PW_MR];
                    let r0 = gi * cog + p0 * PW_MR;
                    let nr = (2 * PW_MR).min(cog - p0 * PW_MR);
                    let mut bias = [T::from_f64(-0.0); 2 * PW_MR];
                    if let Some(b) = &k.bias {
                        bias[..nr].copy_from_slice(&b[r0..r0 + nr]);
                    }
                    let act = fused.unwrap_or(ExactAct::Linear);
                    while jw < full_end {
                        let ncol = if full_end - jw >= 2 * WIDE_LANES {
                            2 * WIDE_LANES
                        } else {
                            WIDE_LANES
                        };
                        let ok = T::pw_wide(
                            [pan(p0), pan(pe - 1)],
                            &xg[jw..],
                            (hw, cig),
                            &bias,
                            act,
                            (nr, ncol),
                            &mut out[r0 * hw + jw..],
                            hw,
                            &mut lanes,
                        );
                        if !ok {
                            break;
                        }
                        jw += ncol;
                    }
                }
                for p in p0..pe {
                    let panel = &k.packed[(gi * npan + p) * cig * PW_MR..][..cig * PW_MR];
                    let r0 = gi * cog + p * PW_MR;
                    let nr = PW_MR.min(cog - p * PW_MR);
                    let mut j = jw;
                    if let Some(act) = fused {
                        // Bias −0 for none: v + (−0) = v (see `pointwise::pw_fused_f32`).
                        let mut bias = [T::from_f64(-0.0); PW_MR];
                        if let Some(b) = &k.bias {
                            bias[..nr].copy_from_slice(&b[r0..r0 + nr]);
                        }
                        while j < full_end {
                            let o = &mut out[r0 * hw + j..];
                            let ok = T::pw_fused(
                                panel,
                                &xg[j..],
                                (hw, cig),
                                &bias,
                                act,
                                nr,
                                o,
                                hw,
                                &mut lanes,
                            );
                            if !ok {
                                break;
                            }
                            j += PW_NR;
                        }
                    }
                    while j < j1 {
                        let ncol = PW_NR.min(j1 - j);
                        let ok = if ncol == PW_NR {
                            T::pw_tile(panel, &xg[j..], hw, cig, &mut acc)
                        } else if tw == PW_NR_TAIL {
                            T::pw_tile8(panel, &tail, tw, cig, &mut acc8)
                        } else {
                            T::pw_tile(panel, &tail, tw, cig, &mut acc)
                        };
                        if !ok {
                            // A refused block (never, for the sizes checked) gives sums 0.
                            acc = [[T::ZERO; PW_NR]; PW_MR];
                            acc8 = [[T::ZERO; PW_NR_TAIL]; PW_MR];
                        }
                        for r in 0..nr {
                            let a: &[T] = if ncol < PW_NR && tw == PW_NR_TAIL {
                                &acc8[r]
                            } else {
                                &acc[r]
                            };
                            let row = &mut out[(r0 + r) * hw + j..][..ncol];
                            let bv = k.bias.as_ref().map(|b| b[r0 + r]);
                            match (fused, bv) {
                                // The exact activation as the row is stored (the depthwise row
                                // store; bias −0 for none, as in the fused block).
                                (Some(act), _) => {
                                    let b = bv.unwrap_or(T::from_f64(-0.0));
                                    T::store_act(row, &a[..ncol], ncol, (b, Some(act)), &mut lanes);
                                }
                                (None, Some(bv)) => {
                                    for (o, &v) in row.iter_mut().zip(a) {
                                        *o = v + bv;
                                    }
                                }
                                (None, None) => row.copy_from_slice(&a[..ncol]),
                            }
                        }
                        j += ncol;
                    }
                    if fused.is_none() {
                        for r in 0..nr {
                            let row = &mut out[(r0 + r) * hw + j0..(r0 + r) * hw + j1];
                            epilogue_slice(row, epi, st);
                        }
                    }
                }
                p0 = pe;
            }
            j0 = j1;
        }
    }
    if let Some(act) = fused {
        lanes.fold_into(act, st);
    }
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
        fn depthwise_output_pass_and_reused_buffers_match_unfused_bit_for_bit(
            c in 2usize..12, h in 1usize..20, w in 1usize..20, kh in 1usize..6,
            s in 1usize..3, pt in 0usize..3, pb in 0usize..3, bias in any::<bool>(),
            nan_at in 0usize..800, b in 0.5f64..4.0, seed in any::<u64>(),
        ) {
            // The exact ReLU / Clip run as the depthwise blocks are stored (whole-vector
            // stores spilling onto the next row or plane, partial segments first, widths
            // 1..20 so every kind of row end occurs) against the linear output followed by
            // the activation pass (`ops::tests::check_fused`, also r̃_α), in f64 and f32, with
            // a NaN input; and every epilogue written into a recycled buffer of stale values
            // (NaN) gives the same bits as into a fresh one.
            prop_assume!(kh <= h + pt + pb && kh <= w + pt + pb);
            let (ho, wo) = ((h + pt + pb - kh) / s + 1, (w + pt + pb - kh) / s + 1);
            let k = kernel(c, c, c, (kh, kh), [s, s], [pt, pt, pb, pb], [1, 1], bias, seed);
            let mut r = rnd(seed ^ 3);
            let mut x: Vec<f64> = (0..c * h * w).map(|_| 2.0 * r()).collect();
            if let Some(v) = x.get_mut(nan_at) {
                *v = f64::NAN;
            }
            let sign = super::super::ops::tests::test_sign();
            super::super::ops::tests::check_fused(&x, (c, h, w), &k, (ho, wo), &sign, b)?;
            let mut kf = ConvK {
                weight: k.weight.iter().map(|&v| v as f32).collect(),
                bias: k.bias.as_ref().map(|b| b.iter().map(|&v| v as f32).collect()),
                cout: c, cin: c, kh, kw: kh, strides: [s, s], pads: [pt, pt, pb, pb],
                dilations: [1, 1], groups: c, packed: Vec::new(),
            };
            kf.pack();
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            super::super::ops::tests::check_fused(&xf, (c, h, w), &kf, (ho, wo), &sign, b)?;
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for epi in [
                Epilogue::Linear,
                Epilogue::Relu,
                Epilogue::Clip { lo: -0.5, hi: 0.75 },
                Epilogue::Poly { sign: &sign, b },
            ] {
                let mut buf = Vec::new();
                let (fresh, sf) = super::super::ops::conv_epi(&xf, (c, h, w), &kf, (ho, wo), &mut buf, epi);
                let stale = vec![f32::NAN; c * ho * wo + 5];
                let (reused, sr) =
                    super::super::ops::conv_epi_into(&xf, (c, h, w), &kf, (ho, wo), &mut buf, epi, stale);
                prop_assert_eq!(bits(&fresh), bits(&reused));
                prop_assert_eq!(sf, sr);
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

    /// f32 values uniform in [−1, 1) (LCG, test fixtures only).
    fn f32s(seed: u64, n: usize) -> Vec<f32> {
        let mut r = rnd(seed);
        (0..n).map(|_| r() as f32).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn wide_pointwise_blocks_give_the_bits_of_the_six_row_blocks(
            g in 1usize..3, cig in 1usize..80, cog in 1usize..30, hw in 1usize..120,
            bias in any::<bool>(), seed in any::<u64>(), mode in 0u8..5,
        ) {
            // The 1×1 chunks with the AVX-512F blocks of 12 channels × 32 or 16 pixels (where
            // the CPU has them) against the same chunks on the 6 × 16 blocks only: the same
            // output bits and statistics for every epilogue (the exact ones fused, r̃_α and
            // the approximate Clip as a separate pass), into buffers of stale NaN.
            if !crate::nn::pointwise::wide_available() {
                eprintln!("skipped: this CPU has no AVX-512F (the wide block never runs here)");
                return Ok(());
            }
            let (c, cout) = (g * cig, g * cog);
            let mut kf = ConvK {
                weight: f32s(seed, cout * cig), bias: bias.then(|| f32s(seed ^ 1, cout)), cout,
                cin: c, kh: 1, kw: 1, strides: [1, 1], pads: [0; 4], dilations: [1, 1], groups: g,
                packed: Vec::new(),
            };
            kf.pack();
            let x = f32s(seed ^ 2, c * hw);
            let sign = super::super::ops::tests::test_sign();
            let epi = match mode {
                0 => Epilogue::Linear,
                1 => Epilogue::Relu,
                2 => Epilogue::Clip { lo: -0.5, hi: 0.75 },
                3 => Epilogue::Poly { sign: &sign, b: 1.5 },
                _ => Epilogue::ClipPoly {
                    sign: &sign,
                    lower: Some(crate::nn::ClipRelu { shift: -0.5, b: 1.5 }),
                    upper: Some(crate::nn::ClipRelu { shift: 0.75, b: 1.5 }),
                },
            };
            let mut runs = Vec::new();
            for wide in [false, true] {
                let (mut out, mut st) = (vec![f32::NAN; cout * hw], EpiStats::default());
                pointwise_packed(&x, hw, &kf, epi, wide, &mut out, &mut st);
                runs.push((out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), st));
            }
            prop_assert_eq!(&runs[0], &runs[1]);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn packed_pointwise_f32_matches_naive_and_fuses_bit_for_bit(
            g in 1usize..3, cig in 1usize..48, cog in 1usize..20, h in 1usize..40,
            w in 1usize..48, bias in any::<bool>(), seed in any::<u64>(),
        ) {
            // The f32 packed-panel path (several column chunks when C_in/g·H·W is large,
            // partial 16-pixel blocks and 6-channel panels) against the naive loop on the
            // same f32-rounded values in f64: within the γ_{k+1} bound of an f32 dot product
            // of length k = C_in/g (plus bias), (k + 1)·2^−24·Σ|terms| (and a 1.01 slack
            // for the reference's own f64 rounding).
            let (c, cout) = (g * cig, g * cog);
            let wf = f32s(seed, cout * cig);
            let bf = bias.then(|| f32s(seed ^ 1, cout));
            let xf = f32s(seed ^ 2, c * h * w);
            let mut kf = ConvK {
                weight: wf.clone(), bias: bf.clone(), cout, cin: c, kh: 1, kw: 1,
                strides: [1, 1], pads: [0; 4], dilations: [1, 1], groups: g, packed: Vec::new(),
            };
            kf.pack();
            let mut buf = Vec::new();
            let (got, _) = super::super::ops::conv_epi(&xf, (c, h, w), &kf, (h, w), &mut buf, Epilogue::Linear);
            prop_assert_eq!(got.len(), cout * h * w);
            let hw = h * w;
            for co in 0..cout {
                let gi = co / cog;
                for p in 0..hw {
                    let b0 = bf.as_ref().map_or(0.0, |b| f64::from(b[co]));
                    let (mut s, mut mag) = (b0, b0.abs());
                    for ci in 0..cig {
                        let t = f64::from(wf[co * cig + ci]) * f64::from(xf[(gi * cig + ci) * hw + p]);
                        s += t;
                        mag += t.abs();
                    }
                    let tol = 1.01 * (cig as f64 + 1.0) * 2f64.powi(-24) * mag;
                    let v = f64::from(got[co * hw + p]);
                    prop_assert!((v - s).abs() <= tol, "co {} p {}: {} vs {} (tol {})", co, p, v, s, tol);
                }
            }
            // Every epilogue in the chunked output pass: the same bits and statistics as the
            // activation run on the whole linear output.
            let sign = super::super::ops::tests::test_sign();
            super::super::ops::tests::check_fused(&xf, (c, h, w), &kf, (h, w), &sign, 1.5)?;
            // Into a recycled buffer of stale values (NaN): the same bits and statistics.
            for epi in [Epilogue::Linear, Epilogue::Relu, Epilogue::Clip { lo: -0.5, hi: 0.75 }] {
                let (fresh, sf) = super::super::ops::conv_epi(&xf, (c, h, w), &kf, (h, w), &mut buf, epi);
                let stale = vec![f32::NAN; cout * h * w + 3];
                let (reused, sr) =
                    super::super::ops::conv_epi_into(&xf, (c, h, w), &kf, (h, w), &mut buf, epi, stale);
                prop_assert_eq!(fresh.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    reused.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
                prop_assert_eq!(sf, sr);
            }
        }

        #[test]
        fn f32_block_kernels_match_portable_bit_for_bit(
            k in 0usize..40, ldb in 16usize..40, nb in 0usize..400, seed in any::<u64>(),
            ntaps in 0usize..26, rstep in 0usize..50, start in 0usize..20, nan_at in 0usize..2000,
        ) {
            // The AVX2 + FMA pointwise and depthwise blocks (where enabled) against the
            // portable ones on random panels, strides and tap offsets (a NaN somewhere).
            let a = f32s(seed, k * PW_MR);
            let mut b = f32s(seed ^ 3, k.saturating_sub(1) * ldb + PW_NR + nb % 8);
            if let Some(v) = b.get_mut(nan_at) {
                *v = f32::NAN;
            }
            let (mut x, mut y) = ([[7.0f32; PW_NR]; PW_MR], [[7.0f32; PW_NR]; PW_MR]);
            prop_assert!(crate::nn::gemm::pw_tile_f32(&a, &b, ldb, k, &mut x));
            prop_assert!(crate::nn::gemm::pw_tile(&a, &b, ldb, k, &mut y));
            prop_assert_eq!(x.map(|r| r.map(f32::to_bits)), y.map(|r| r.map(f32::to_bits)));
            let (mut x8, mut y8) = ([[7.0f32; PW_NR_TAIL]; PW_MR], [[7.0f32; PW_NR_TAIL]; PW_MR]);
            prop_assert!(crate::nn::gemm::pw_tile_f32(&a, &b, ldb, k, &mut x8));
            prop_assert!(crate::nn::gemm::pw_tile(&a, &b, ldb, k, &mut y8));
            prop_assert_eq!(x8.map(|r| r.map(f32::to_bits)), y8.map(|r| r.map(f32::to_bits)));
            if k > 0 {
                let mut z = [[7.0f32; PW_NR]; PW_MR];
                prop_assert!(!crate::nn::gemm::pw_tile_f32(&a, &b[..(k - 1) * ldb + PW_NR - 1], ldb, k, &mut z));
                prop_assert!(!crate::nn::gemm::pw_tile_f32(&a[1..], &b, ldb, k, &mut z));
                prop_assert_eq!(z, [[7.0f32; PW_NR]; PW_MR]);
            }
            let mut r = rnd(seed ^ 4);
            let taps: Vec<usize> = (0..ntaps).map(|_| ((r() + 1.0) * 30.0) as usize).collect();
            let wt = f32s(seed ^ 5, ntaps);
            let mut buf = f32s(seed ^ 6, start + 7 * rstep + 60 + 32);
            if let Some(v) = buf.get_mut(nan_at) {
                *v = f32::NAN;
            }
            fn both<const R: usize, const V: usize>(buf: &[f32], at: (usize, usize), taps: &[usize], wt: &[f32]) -> Result<(), TestCaseError> {
                let (mut x, mut y) = ([7.0f32; 64], [7.0f32; 64]);
                let ok = crate::nn::gemm::dw_block_f32::<R, V>(buf, at, taps, wt, &mut x);
                prop_assert_eq!(ok, crate::nn::gemm::dw_block::<f32, R, V>(buf, at, taps, wt, &mut y));
                prop_assert_eq!(x.map(f32::to_bits), y.map(f32::to_bits));
                Ok(())
            }
            let at = (start, rstep);
            both::<8, 1>(&buf, at, &taps, &wt)?;
            both::<4, 1>(&buf, at, &taps, &wt)?;
            both::<2, 1>(&buf, at, &taps, &wt)?;
            both::<1, 1>(&buf, at, &taps, &wt)?;
            both::<2, 4>(&buf, at, &taps, &wt)?;
            both::<1, 4>(&buf, at, &taps, &wt)?;
            // A buffer one cell short of the furthest window: refused.
            let tmax = taps.iter().copied().max().unwrap_or(0);
            if !taps.is_empty() {
                let short = &buf[..start + 7 * rstep + tmax + 8 - 1];
                let mut z = [7.0f32; 64];
                prop_assert!(!crate::nn::gemm::dw_block_f32::<8, 1>(short, at, &taps, &wt, &mut z));
                prop_assert_eq!(z, [7.0f32; 64]);
            }
        }
    }

    /// The depthwise convolution of f32 planes as the naive loop: per output value one
    /// `mul_add` chain from 0 over the taps in (i, j) order, a padding cell read as 0, then
    /// + bias (0 without).
    fn depthwise_naive_f32(
        x: &[f32],
        (c, h, w): (usize, usize, usize),
        k: &ConvK<f32>,
        (ho, wo): (usize, usize),
    ) -> Vec<f32> {
        let [pt, pl, _, _] = k.pads;
        let mut y = vec![0.0f32; c * ho * wo];
        for ch in 0..c {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = 0.0f32;
                    for i in 0..k.kh {
                        for j in 0..k.kw {
                            let yy =
                                (oy * k.strides[0] + i * k.dilations[0]) as isize - pt as isize;
                            let xx =
                                (ox * k.strides[1] + j * k.dilations[1]) as isize - pl as isize;
                            let v =
                                if (0..h as isize).contains(&yy) && (0..w as isize).contains(&xx) {
                                    x[(ch * h + yy as usize) * w + xx as usize]
                                } else {
                                    0.0
                                };
                            acc = v.mul_add(k.weight[(ch * k.kh + i) * k.kw + j], acc);
                        }
                    }
                    y[(ch * ho + oy) * wo + ox] = acc + k.bias.as_ref().map_or(0.0, |b| b[ch]);
                }
            }
        }
        y
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn channel_blocked_depthwise_matches_naive_loop_and_per_plane_kernel_bit_for_bit(
            c in 2usize..20, h in 1usize..21, w in 1usize..21, kh in 1usize..7, k5 in any::<bool>(),
            sh in 1usize..4, sw in 1usize..3, dh in 1usize..3,
            pt in 0usize..3, pl in 0usize..3, pb in 0usize..4, pr in 0usize..4,
            bias in any::<bool>(), nan_at in 0usize..4000, b in 0.5f64..4.0, seed in any::<u64>(),
        ) {
            // The blocked kernel (`dwblock`, f32 with AVX2 + FMA: 8 channels in the lanes,
            // partial last blocks, widths 1..20 so every kind of row end and spill occurs,
            // strides, row dilation, asymmetric pads) against (1) the naive f32 loop, bit for
            // bit, and (2) the per-plane kernel with every epilogue: the same bits and the
            // same statistics (a NaN input somewhere); into a recycled buffer of stale NaN
            // values too.
            let kw = if k5 { 5 } else { 3 };
            let (eh, ew) = (dh * (kh - 1) + 1, kw);
            prop_assume!(eh <= h + pt + pb && ew <= w + pl + pr);
            let (ho, wo) = ((h + pt + pb - eh) / sh + 1, (w + pl + pr - ew) / sw + 1);
            let mut kf = ConvK {
                weight: f32s(seed, c * kh * kw),
                bias: bias.then(|| f32s(seed ^ 1, c)),
                cout: c, cin: c, kh, kw, strides: [sh, sw], pads: [pt, pl, pb, pr],
                dilations: [dh, 1], groups: c, packed: Vec::new(),
            };
            kf.pack();
            let geom = DwGeom {
                hw: (h, w), out: (ho, wo), k: (kh, kw), strides: [sh, sw], dilations: [dh, 1],
                pads: [pt, pl, pb, pr],
            };
            prop_assert!(geom.blocked_ok());
            let mut xf: Vec<f32> = f32s(seed ^ 2, c * h * w).iter().map(|v| 3.0 * v).collect();
            let want = depthwise_naive_f32(&xf, (c, h, w), &kf, (ho, wo));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let mut buf = Vec::new();
            let (got, _) = depthwise_with(&xf, (c, h, w), &kf, (ho, wo), (&mut buf, true), Epilogue::Linear, Vec::new());
            prop_assert_eq!(bits(&got), bits(&want));
            if let Some(v) = xf.get_mut(nan_at) {
                *v = f32::NAN;
            }
            let sign = super::super::ops::tests::test_sign();
            let ([lo, hi], hb) = ([-0.5, 0.75], 0.5 * b);
            for epi in [
                Epilogue::Linear,
                Epilogue::Relu,
                Epilogue::Clip { lo, hi },
                Epilogue::Poly { sign: &sign, b },
                Epilogue::ClipPoly {
                    sign: &sign,
                    lower: Some(super::super::activation::ClipRelu { shift: lo, b }),
                    upper: Some(super::super::activation::ClipRelu { shift: hi, b: hb }),
                },
            ] {
                let (plain, sp) = depthwise_with(&xf, (c, h, w), &kf, (ho, wo), (&mut buf, false), epi, Vec::new());
                let (blk, sb) = depthwise_with(&xf, (c, h, w), &kf, (ho, wo), (&mut buf, true), epi, Vec::new());
                prop_assert_eq!(bits(&blk), bits(&plain));
                prop_assert_eq!(sb, sp);
                // Stale NaN output and input buffers (the engine shares one input buffer
                // across convolutions of every geometry).
                let stale = vec![f32::NAN; c * ho * wo + 7];
                let mut stale_buf = vec![f32::NAN; geom.buf_len() + nan_at % 64];
                let (reused, sr) = depthwise_with(&xf, (c, h, w), &kf, (ho, wo), (&mut stale_buf, true), epi, stale);
                prop_assert_eq!(bits(&reused), bits(&plain));
                prop_assert_eq!(sr, sp);
            }
        }
    }

    #[test]
    fn inconsistent_sizes_give_zeros_not_a_panic() {
        let k = kernel(3, 3, 3, (3, 3), [1, 1], [1; 4], [1, 1], true, 1);
        let mut buf = Vec::new();
        // Input too short, and an output size the padded input cannot produce.
        // A recycled buffer of stale values changes nothing.
        let stale = || vec![9.0; 64];
        let (y, _) = depthwise(
            &[1.0; 5],
            (3, 4, 4),
            &k,
            (4, 4),
            &mut buf,
            Epilogue::Linear,
            stale(),
        );
        assert!(y.iter().all(|&v| v == 0.0) && y.len() == 48);
        let (y, _) = depthwise(
            &[1.0; 48],
            (3, 4, 4),
            &k,
            (9, 4),
            &mut buf,
            Epilogue::Linear,
            stale(),
        );
        assert!(y.iter().all(|&v| v == 0.0));
        let kp = kernel(4, 2, 2, (1, 1), [1, 1], [0; 4], [1, 1], false, 2);
        let (y, _) = pointwise(&[1.0; 3], (4, 2, 2), &kp, (2, 2), Epilogue::Linear, stale());
        assert!(y.iter().all(|&v| v == 0.0) && y.len() == 8);
    }
}
