//! The hot operators of the trajectory certificate ([`super::trajectory`]) on tensors of
//! fixed-point balls: convolution and fully connected layers (exact dot products of the
//! midpoints, one floor), r̃_α (Eq. 4) and m_α / M̃_{α,n} (§2.2, Eq. 6) in centred form.
//!
//! Each exists twice with **bit-identical** results: a fixed-width fast path (midpoints as
//! N×64-bit integers, [`Wide`]; no heap allocation per operation) and the GMP path it falls
//! back to. The fast dot product splits each midpoint M into 64-bit limbs
//! M = Σ_k l_k·2^(64k) (l_k unsigned below the top limb, the top one signed), multiplies them
//! by the weights W·2^G held as i64, and sums l_k·W in one i128 accumulator per limb. Before
//! a layer runs, its accumulators are proved not to overflow from the actual maxima:
//! n·(2^64 − 1)·max|W| ≤ 2^127 − 1 for the unsigned limbs and n·max|l_top|·max|W| ≤ 2^127 − 1
//! for the top one (n terms; every partial sum is bounded by the sum of the magnitudes).
//! When the first fails (long dot products with weights of a wide dynamic range, hence a
//! large W·2^G: EfficientNet-Lite0's 1×1 convolutions), the limbs are carry-normalised every
//! K weights, K·(2^64 − 1)·max|W| ≤ 2^127 − 2^65 (exact; see `LimbAcc::new` for the
//! bounds). If no K ≥ 1 exists, or a weight needs more than 63 bits, the layer takes the GMP
//! path. The
//! accumulators and the bias are then combined exactly in 384 bits and floored by 2^−G, so
//! the midpoint is the GMP path's integer. The radius loop is the same code for both paths.
//! The polynomials run on [`Wide<4>`] midpoints per activation and fall back per activation
//! when a value does not fit (e.g. far outside [−B, B], where p grows like y^deg).

use inari::Interval;
use rug::Integer;

use super::fixed::{
    ball_interval, dyadic_of_f64, f64_to_fixed, mag, ChainBall, FixedMid, FixedSign, Frac,
};
use super::round::{add_ru, div_ru, dot_up, mul_ru};
use super::wide::Wide;

/// Midpoints of the fast path of the polynomials: 256-bit (values below 2^(255 − F)).
pub(crate) type PolyWide = Wide<4>;

/// The exact combination of the limb accumulators and the bias (384 bits).
type SumWide = Wide<6>;

/// A tensor of balls ⟨mid_i·2^−F, rad_i⟩.
#[derive(Debug, Clone, Default)]
pub(crate) struct BallT {
    pub(crate) mid: Vec<Integer>,
    pub(crate) rad: Vec<f64>,
}

/// The fast path's copy of a layer's weights: W·2^G as i64 and the bias at F + G bits.
#[derive(Debug, Clone)]
pub(crate) struct FastWeights {
    w: Vec<i64>,
    max_abs: u64,
    bias: Option<Vec<SumWide>>,
}

/// A layer's weights as exact integers W·2^G with one G for the tensor, their |W| in
/// binary64 and the bias at F + G fraction bits (its floor adds < 2^−F·2^−G, counted as one
/// more ulp); `fast` when every weight fits in an i64 and every bias in 383 bits.
#[derive(Debug, Clone)]
pub(crate) struct IntWeights {
    pub(crate) w: Vec<Integer>,
    pub(crate) wabs: Vec<f64>,
    pub(crate) g: u32,
    pub(crate) bias: Option<Vec<Integer>>,
    pub(crate) fast: Option<FastWeights>,
}

impl IntWeights {
    /// From f32 weights and bias at F fraction bits.
    pub(crate) fn new(data: &[f32], bias: Option<&[f32]>, f: Frac) -> Self {
        let dy: Vec<(Integer, i32)> = data
            .iter()
            .map(|&w| dyadic_of_f64(f64::from(w)).unwrap_or((Integer::new(), 0)))
            .collect();
        let g = dy
            .iter()
            .filter(|(m, _)| !m.is_zero())
            .map(|(_, e)| -e)
            .max()
            .unwrap_or(0)
            .max(0)
            .unsigned_abs();
        let w: Vec<Integer> = dy
            .into_iter()
            .map(|(m, e)| {
                let sh = i64::from(g) + i64::from(e);
                m << u32::try_from(sh.max(0)).unwrap_or(0)
            })
            .collect();
        let wabs = data.iter().map(|&w| f64::from(w).abs()).collect();
        let bias: Option<Vec<Integer>> = bias.map(|b| {
            b.iter()
                .map(|&v| {
                    f64_to_fixed(f64::from(v), Frac(f.0 + g))
                        .map(|x| x.0)
                        .unwrap_or_default()
                })
                .collect()
        });
        let fast = (|| {
            let wf: Vec<i64> = w.iter().map(Integer::to_i64).collect::<Option<_>>()?;
            let max_abs = wf.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
            let bf = match &bias {
                Some(b) => Some(
                    b.iter()
                        .map(SumWide::from_integer)
                        .collect::<Option<Vec<_>>>()?,
                ),
                None => None,
            };
            Some(FastWeights {
                w: wf,
                max_abs,
                bias: bf,
            })
        })();
        Self {
            w,
            wabs,
            g,
            bias,
            fast,
        }
    }
}

/// Convolution geometry (ONNX semantics): weight dims [C_out, C_in/groups, kh, kw].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvGeom {
    pub(crate) dims: [usize; 4],
    pub(crate) strides: [usize; 2],
    pub(crate) pads: [usize; 4],
    pub(crate) dil: [usize; 2],
    pub(crate) groups: usize,
}

/// Exact accumulation of the dot products Σ_i W_i·M_i + bias of one layer's midpoints, for
/// a run of output slots at a time (one output channel of a convolution, one row of W).
trait DotAcc {
    /// Start `count` dot products of output row (channel) `row`, each at its bias.
    fn start(&mut self, row: usize, count: usize);
    /// slot s += W[wi]·M[xi0 + (s − slots.start)·xstep] for s in `slots`.
    fn mac_run(&mut self, wi: usize, slots: std::ops::Range<usize>, xi0: usize, xstep: usize);
    /// Called after all `mac_run`s of one weight: every slot has received at most one more
    /// term since the previous call (the fixed-width accumulators count terms here).
    fn weight_done(&mut self) {}
    /// ⌊(Σ + bias)·2^−G⌋ of a slot; `None` when a fixed-width sum does not fit.
    fn finish(&self, slot: usize) -> Option<Integer>;
}

/// The GMP accumulators (any size).
struct GmpAcc<'a> {
    w: &'a [Integer],
    x: &'a [Integer],
    bias: Option<&'a [Integer]>,
    g: u32,
    acc: Vec<Integer>,
}

impl DotAcc for GmpAcc<'_> {
    fn start(&mut self, row: usize, count: usize) {
        self.acc.resize_with(count, Integer::new);
        let b = self.bias.and_then(|b| b.get(row));
        for a in &mut self.acc {
            match b {
                Some(b) => rug::Assign::assign(a, b),
                None => rug::Assign::assign(a, 0),
            }
        }
    }
    #[expect(
        clippy::indexing_slicing,
        reason = "hot loop; indices from validated shapes"
    )]
    fn mac_run(&mut self, wi: usize, slots: std::ops::Range<usize>, xi0: usize, xstep: usize) {
        let w = &self.w[wi];
        let s0 = slots.start;
        for s in slots {
            let m = &self.x[xi0 + (s - s0) * xstep];
            if !m.is_zero() {
                self.acc[s] += w * m;
            }
        }
    }
    fn finish(&self, slot: usize) -> Option<Integer> {
        Some(Integer::from(self.acc.get(slot)? >> self.g))
    }
}

/// The accumulator of a radius-only pass: no midpoint arithmetic, every midpoint 0 (the
/// radii of [`conv_with`] / [`linear_with`] do not depend on the accumulator).
struct NullAcc;

impl DotAcc for NullAcc {
    fn start(&mut self, _: usize, _: usize) {}
    fn mac_run(&mut self, _: usize, _: std::ops::Range<usize>, _: usize, _: usize) {}
    fn finish(&self, _: usize) -> Option<Integer> {
        Some(Integer::new())
    }
}

/// The fixed-width accumulators: L limbs per midpoint, one i128 per limb and slot (see the
/// module docs for the overflow guard that [`LimbAcc::new`] checks).
struct LimbAcc<'a, const L: usize> {
    w: &'a [i64],
    x: Vec<[u64; L]>,
    bias: Option<&'a [SumWide]>,
    g: u32,
    row: usize,
    acc: Vec<[i128; L]>,
    /// Weights (terms per slot) between two carry normalisations ([`LimbAcc::normalise`]);
    /// `usize::MAX` when the whole dot product fits without one.
    chunk: usize,
    /// Weights since the last normalisation.
    since: usize,
}

impl<'a, const L: usize> LimbAcc<'a, L> {
    /// The layer's accumulator over the midpoints `x` with `n` terms per dot product, or
    /// `None` when a midpoint does not fit in L limbs or an accumulator could overflow.
    fn new(fw: &'a FastWeights, x: &[Integer], g: u32, n: usize) -> Option<Self> {
        let limbs: Vec<[u64; L]> = x
            .iter()
            .map(|m| Wide::<L>::from_integer(m).map(|w| w.0))
            .collect::<Option<_>>()?;
        let top = limbs
            .iter()
            .map(|l| l.last().map_or(0, |&t| (t as i64).unsigned_abs()))
            .max()
            .unwrap_or(0);
        let cap = u128::try_from(i128::MAX).ok()?;
        let nw = u128::try_from(n)
            .ok()?
            .checked_mul(u128::from(fw.max_abs))?;
        // Unsigned limbs: n·(2^64 − 1)·max|W|; the signed top limb: n·max|l_top|·max|W|.
        // Both within the cap: one pass, no normalisation.
        let whole = nw
            .checked_mul(u128::from(u64::MAX))
            .is_some_and(|v| v <= cap)
            && nw.checked_mul(u128::from(top)).is_some_and(|v| v <= cap);
        let chunk = if whole {
            usize::MAX
        } else {
            // Chunked: after a normalisation each unsigned-limb accumulator lies in
            // [0, 2^64); K more terms of magnitude ≤ (2^64 − 1)·max|W| keep it within
            // 2^64 + K·(2^64 − 1)·max|W| ≤ cap − 2^64, and the carry (≤ 2^63 in magnitude)
            // added to it while normalising keeps it below the cap. The top accumulator is
            // ⌊S/2^(64(L−1))⌋ right after a normalisation (S the partial sum of the terms,
            // |S| ≤ n·max|W|·(max|l_top| + 1)·2^(64(L−1))) plus the top-limb terms since
            // (≤ n·max|l_top|·max|W|): n·max|W|·(2·max|l_top| + 1) + 1 ≤ cap.
            let per = u128::from(u64::MAX).checked_mul(u128::from(fw.max_abs))?;
            let k = (cap - (1u128 << 65)) / per.max(1);
            let top_bound = nw.checked_mul(u128::from(top).checked_mul(2)?.checked_add(1)?)?;
            if L < 2 || k == 0 || top_bound.checked_add(1)? > cap {
                return None;
            }
            usize::try_from(k).unwrap_or(usize::MAX)
        };
        Some(Self {
            w: &fw.w,
            x: limbs,
            bias: fw.bias.as_deref(),
            g,
            row: 0,
            acc: Vec::new(),
            chunk,
            since: 0,
        })
    }

    /// Carry normalisation of every slot: each unsigned limb's accumulator a_k is replaced
    /// by a_k mod 2^64 and ⌊a_k/2^64⌋ is added to a_(k+1) (exact: Σ_k a_k·2^(64k) is
    /// unchanged), so the unsigned limbs restart from [0, 2^64).
    #[expect(clippy::indexing_slicing, reason = "k + 1 < L: within the limb array")]
    fn normalise(&mut self) {
        for acc in &mut self.acc {
            for k in 0..L - 1 {
                let carry = acc[k] >> 64;
                acc[k] &= i128::from(u64::MAX);
                acc[k + 1] += carry;
            }
        }
    }
}

impl<const L: usize> DotAcc for LimbAcc<'_, L> {
    fn start(&mut self, row: usize, count: usize) {
        self.row = row;
        self.since = 0;
        self.acc.clear();
        self.acc.resize(count, [0; L]);
    }
    fn weight_done(&mut self) {
        self.since += 1;
        if self.since >= self.chunk {
            self.normalise();
            self.since = 0;
        }
    }
    #[expect(
        clippy::indexing_slicing,
        reason = "hot loop; indices from validated shapes"
    )]
    #[inline]
    fn mac_run(&mut self, wi: usize, slots: std::ops::Range<usize>, xi0: usize, xstep: usize) {
        let w = self.w[wi];
        let (wm, wt) = (u128::from(w.unsigned_abs()), i128::from(w));
        let s0 = slots.start;
        // No overflow: bounded by the guard of `new` (each |partial sum| ≤ Σ|terms|). The
        // unsigned limbs take |W| (one 64×64→128 product) and the sign of the run's weight.
        if w >= 0 {
            for s in slots {
                let x = &self.x[xi0 + (s - s0) * xstep];
                let acc = &mut self.acc[s];
                for k in 0..L - 1 {
                    acc[k] += (u128::from(x[k]) * wm) as i128;
                }
                acc[L - 1] += i128::from(x[L - 1] as i64) * wt;
            }
        } else {
            for s in slots {
                let x = &self.x[xi0 + (s - s0) * xstep];
                let acc = &mut self.acc[s];
                for k in 0..L - 1 {
                    acc[k] -= (u128::from(x[k]) * wm) as i128;
                }
                acc[L - 1] += i128::from(x[L - 1] as i64) * wt;
            }
        }
    }
    fn finish(&self, slot: usize) -> Option<Integer> {
        let mut s = match self.bias {
            Some(b) => *b.get(self.row)?,
            None => SumWide::ZERO,
        };
        for (k, &a) in self.acc.get(slot)?.iter().enumerate() {
            s = s.checked_add(&SumWide::from_i128_shl_limbs(a, k)?)?;
        }
        Some(s.shr_floor(self.g).to_integer())
    }
}

/// The number of 64-bit limbs that holds every midpoint of `x` (two's complement).
fn limbs_needed(x: &[Integer]) -> usize {
    let bits = x.iter().map(Integer::significant_bits).max().unwrap_or(0);
    (bits as usize + 1).div_ceil(64)
}

/// One layer's loop, run over whichever accumulator (monomorphised per accumulator type).
trait LayerLoop {
    /// The layer's output balls; `None` when a fixed-width sum does not fit.
    fn run<A: DotAcc>(&self, acc: &mut A) -> Option<BallT>;
}

/// Run `job` with the fixed-width accumulator of the right width, `None` when the fast path
/// does not apply (no fast weights, > 4 limbs, overflow guard).
fn run_fast<J: LayerLoop>(wt: &IntWeights, x: &[Integer], n: usize, job: &J) -> Option<BallT> {
    let fw = wt.fast.as_ref()?;
    match limbs_needed(x) {
        0..=2 => job.run(&mut LimbAcc::<2>::new(fw, x, wt.g, n)?),
        3 => job.run(&mut LimbAcc::<3>::new(fw, x, wt.g, n)?),
        4 => job.run(&mut LimbAcc::<4>::new(fw, x, wt.g, n)?),
        _ => None,
    }
}

/// Run `job` through the fast path when `fast` and it applies, else through GMP.
fn run_layer<J: LayerLoop>(wt: &IntWeights, x: &[Integer], n: usize, fast: bool, job: &J) -> BallT {
    if fast {
        if let Some(o) = run_fast(wt, x, n, job) {
            return o;
        }
    }
    let mut acc = GmpAcc {
        w: &wt.w,
        x,
        bias: wt.bias.as_deref(),
        g: wt.g,
        acc: Vec::new(),
    };
    job.run(&mut acc).unwrap_or_default()
}

/// A convolution layer applied to one ball tensor.
struct ConvJob<'a> {
    a: &'a BallT,
    chw: (usize, usize, usize),
    wt: &'a IntWeights,
    geo: &'a ConvGeom,
    out_hw: (usize, usize),
    ulp: f64,
}

impl LayerLoop for ConvJob<'_> {
    fn run<A: DotAcc>(&self, acc: &mut A) -> Option<BallT> {
        conv_with(self, acc)
    }
}

/// A fully connected layer (W of shape m×k) applied to one ball tensor.
struct LinearJob<'a> {
    a: &'a BallT,
    wt: &'a IntWeights,
    m: usize,
    k: usize,
    ulp: f64,
}

impl LayerLoop for LinearJob<'_> {
    fn run<A: DotAcc>(&self, acc: &mut A) -> Option<BallT> {
        linear_with(self.a, self.wt, self.m, self.k, self.ulp, acc)
    }
}

/// Direct convolution on balls (ONNX semantics: groups, pads, strides, dilations): the fast
/// path when it applies (`fast`), else GMP; the same result either way.
pub(crate) fn conv(
    a: &BallT,
    chw: (usize, usize, usize),
    wt: &IntWeights,
    geo: &ConvGeom,
    out_hw: (usize, usize),
    ulp: f64,
    fast: bool,
) -> BallT {
    let [_, cig, kh, kw] = geo.dims;
    let job = ConvJob {
        a,
        chw,
        wt,
        geo,
        out_hw,
        ulp,
    };
    run_layer(wt, &a.mid, cig * kh * kw, fast, &job)
}

/// The radii of [`conv`] alone (bit-identical: the same loop; every midpoint 0).
pub(crate) fn conv_radii(
    a: &BallT,
    chw: (usize, usize, usize),
    wt: &IntWeights,
    geo: &ConvGeom,
    out_hw: (usize, usize),
    ulp: f64,
) -> BallT {
    let job = ConvJob {
        a,
        chw,
        wt,
        geo,
        out_hw,
        ulp,
    };
    conv_with(&job, &mut NullAcc).unwrap_or_default()
}

/// The radii of [`linear`] alone (bit-identical: the same loop; every midpoint 0).
pub(crate) fn linear_radii(a: &BallT, wt: &IntWeights, m: usize, k: usize, ulp: f64) -> BallT {
    linear_with(a, wt, m, k, ulp, &mut NullAcc).unwrap_or_default()
}

/// The output positions o (of `n_out`) whose input position o·stride + k·dil − pad lies
/// in [0, n_in), as a range (they are consecutive), with the input position of the first.
fn valid_range(
    n_out: usize,
    n_in: usize,
    stride: usize,
    k: usize,
    dil: usize,
    pad: usize,
) -> (std::ops::Range<usize>, usize) {
    let inside = |o: usize| {
        let p = o * stride + k * dil;
        p >= pad && p - pad < n_in
    };
    let Some(lo) = (0..n_out).find(|&o| inside(o)) else {
        return (0..0, 0);
    };
    let hi = (lo..n_out)
        .take_while(|&o| inside(o))
        .last()
        .map_or(lo, |h| h + 1);
    (lo..hi, lo * stride + k * dil - pad)
}

/// The convolution loop over one accumulator (midpoints) and the radii |W|·ρ. Each output
/// receives its terms in the order (input channel, kernel row, kernel column), so its radius
/// sum is the same whichever accumulator runs; the loops go over runs of outputs of one
/// output row for one weight at a time.
#[expect(
    clippy::indexing_slicing,
    reason = "hot loop; indices from validated shapes"
)]
fn conv_with<A: DotAcc>(job: &ConvJob<'_>, acc: &mut A) -> Option<BallT> {
    let ConvJob {
        a,
        chw,
        wt,
        geo,
        out_hw,
        ulp,
    } = *job;
    let ConvGeom {
        dims,
        strides,
        pads,
        dil,
        groups,
    } = *geo;
    let wabs = &wt.wabs;
    let (_, h, wd) = chw;
    let (ho, wo) = out_hw;
    let [cout, cig, kh, kw] = dims;
    let cog = cout / groups;
    let n = cig * kh * kw;
    let mut o = BallT {
        mid: Vec::with_capacity(cout * ho * wo),
        rad: Vec::with_capacity(cout * ho * wo),
    };
    if a.mid.len() < chw.0 * h * wd || wabs.len() < cout * n || a.rad.len() < a.mid.len() {
        return Some(o);
    }
    let rows: Vec<_> = (0..kh)
        .map(|i| valid_range(ho, h, strides[0], i, dil[0], pads[0]))
        .collect();
    let cols: Vec<_> = (0..kw)
        .map(|j| valid_range(wo, wd, strides[1], j, dil[1], pads[1]))
        .collect();
    let mut r = vec![0.0f64; ho * wo];
    for co in 0..cout {
        let gi = co / cog.max(1);
        let wrow = co * n;
        acc.start(co, ho * wo);
        r.fill(0.0);
        for cl in 0..cig {
            let ci = gi * cig + cl;
            for (i, (oys, iy0)) in rows.iter().enumerate() {
                for (j, (oxs, ix0)) in cols.iter().enumerate() {
                    let wi = wrow + (cl * kh + i) * kw + j;
                    let wv = wabs[wi];
                    for (dy, oy) in oys.clone().enumerate() {
                        let iy = iy0 + dy * strides[0];
                        let xi0 = (ci * h + iy) * wd + ix0;
                        let s0 = oy * wo;
                        acc.mac_run(wi, s0 + oxs.start..s0 + oxs.end, xi0, strides[1]);
                        for (dx, ox) in oxs.clone().enumerate() {
                            r[s0 + ox] += wv * a.rad[xi0 + dx * strides[1]];
                        }
                    }
                    acc.weight_done();
                }
            }
        }
        for (slot, rs) in r.iter().enumerate() {
            o.mid.push(acc.finish(slot)?);
            // Floor of the sum (< ulp) and of the bias at F + G bits (< ulp).
            o.rad.push(add_ru(dot_up(*rs, n), 2.0 * ulp));
        }
    }
    Some(o)
}

/// y = W·x + b on balls (W of shape m×k): the fast path when it applies, else GMP.
pub(crate) fn linear(
    a: &BallT,
    wt: &IntWeights,
    m: usize,
    k: usize,
    ulp: f64,
    fast: bool,
) -> BallT {
    let job = LinearJob { a, wt, m, k, ulp };
    run_layer(wt, &a.mid, k, fast, &job)
}

/// The fully connected loop over one accumulator and the radii |W|·ρ.
#[expect(
    clippy::indexing_slicing,
    reason = "hot loop; indices from validated shapes"
)]
fn linear_with<A: DotAcc>(
    a: &BallT,
    wt: &IntWeights,
    m: usize,
    k: usize,
    ulp: f64,
    acc: &mut A,
) -> Option<BallT> {
    let mut o = BallT::default();
    if a.mid.len() < k || a.rad.len() < k || wt.wabs.len() < m * k {
        return Some(o);
    }
    for r in 0..m {
        acc.start(r, 1);
        let mut rad = 0.0f64;
        for c in 0..k {
            acc.mac_run(r * k + c, 0..1, c, 0);
            acc.weight_done();
            rad += wt.wabs[r * k + c] * a.rad[c];
        }
        o.mid.push(acc.finish(0)?);
        o.rad.push(add_ru(dot_up(rad, k), 2.0 * ulp));
    }
    Some(o)
}

/// Interval with both ends equal to v.
fn pt(v: f64) -> Interval {
    Interval::try_from((v, v)).unwrap_or(Interval::ENTIRE)
}

/// r̃_α(x) = x·(1 + p(x/B))/2 on the ball ⟨m, ρ⟩ (centred form):
/// - û = ⌊m/B⌋ (error < ulp), the chain of components gives p̂ with the point error e
///   (of p(m/B)) and the ball radius over X/B, and the enclosure dp of p′ over X/B;
/// - r̂ = ⌊(m + ⌊m·p̂⌋)/2⌋, |r̂ − r̃(m)| ≤ (|m|·e + ulp)/2 + ulp =: E;
/// - r̃′(ξ) = (1 + p(u) + u·p′(u))/2 with u = ξ/B, enclosed over X; radius sup|r̃′|·ρ + E.
///
/// Inputs with |ξ/B| > 2 possible get the trivial ball ⟨0, +∞⟩ (no certificate there).
/// `None` only when a fixed-width midpoint overflows.
pub(crate) fn relu_approx<M: FixedMid>(
    sign: &FixedSign<M>,
    m: &M,
    rho: f64,
    b: f64,
    bd: &(Integer, i32),
    f: Frac,
) -> Option<(M, f64)> {
    let ulp = f.ulp();
    let x = ball_interval(m, rho, f);
    let u = x / pt(b);
    if mag(u).is_nan() || mag(u) > 2.0 {
        return Some((M::zero(), f64::INFINITY));
    }
    let uh = m.div_dyadic(bd)?;
    let ch = ChainBall {
        mid: uh,
        rho: add_ru(div_ru(rho, b), ulp),
        e: ulp,
    };
    let sb = sign.apply(ch)?;
    let p_iv = ball_interval(&sb.p.mid, sb.p.rho, f);
    let d = (pt(1.0) + p_iv + u * sb.dp) / pt(2.0);
    let t = m.mul_fixed(&sb.p.mid, f)?.add(m)?.shr_floor(1);
    let e = add_ru(div_ru(add_ru(mul_ru(m.mag(f), sb.p.e), ulp), 2.0), ulp);
    Some((t, add_ru(mul_ru(mag(d), rho), e)))
}

/// [`relu_approx`] on a GMP midpoint through the fast path when `wide` is given and the
/// values fit (bit-identical), else through GMP.
pub(crate) fn relu_ball(
    sign: &FixedSign,
    wide: Option<&FixedSign<PolyWide>>,
    m: &Integer,
    rho: f64,
    b: f64,
    bd: &(Integer, i32),
    f: Frac,
) -> (Integer, f64) {
    let fast = wide.and_then(|ws| {
        let (y, r) = relu_approx(ws, &PolyWide::from_integer(m)?, rho, b, bd, f)?;
        Some((y.to_integer(), r))
    });
    fast.or_else(|| relu_approx(sign, m, rho, b, bd, f))
        .unwrap_or((Integer::new(), f64::INFINITY))
}

/// m_α(a, b) = ((a + b) + d·p(d))/2, d = a − b, on balls (centred form in both arguments):
/// ∂m/∂a = (1 + g′(d))/2, ∂m/∂b = (1 − g′(d))/2 with g′(d) = p(d) + d·p′(d) enclosed over
/// D = [d̂ ± (ρ_a + ρ_b)]; radius sup|∂m/∂a|·ρ_a + sup|∂m/∂b|·ρ_b + (|d̂|·e + ulp)/2 + ulp.
pub(crate) fn max2_approx(
    sign: &FixedSign,
    a: &(Integer, f64),
    b: &(Integer, f64),
    f: Frac,
) -> (Integer, f64) {
    let ulp = f.ulp();
    let d = Integer::from(&a.0 - &b.0);
    let rd = add_ru(a.1, b.1);
    let di = ball_interval(&d, rd, f);
    if mag(di).is_nan() || mag(di) > 2.0 {
        return (Integer::new(), f64::INFINITY);
    }
    let Some(sb) = sign.apply(ChainBall {
        mid: d.clone(),
        rho: rd,
        e: 0.0,
    }) else {
        return (Integer::new(), f64::INFINITY);
    };
    let p_iv = ball_interval(&sb.p.mid, sb.p.rho, f);
    let g = p_iv + di * sb.dp;
    let da = (pt(1.0) + g) / pt(2.0);
    let db = (pt(1.0) - g) / pt(2.0);
    let mut t = Integer::from(&d * &sb.p.mid);
    t >>= f.0;
    t += &a.0;
    t += &b.0;
    t >>= 1;
    let e = add_ru(div_ru(add_ru(mul_ru(d.mag(f), sb.p.e), ulp), 2.0), ulp);
    let rad = add_ru(add_ru(mul_ru(mag(da), a.1), mul_ru(mag(db), b.1)), e);
    (t, rad)
}

/// [`max_tree`] that calls `on_max2(d̂, ρ_d)` for every pairwise maximum in post-order (left
/// subtree, right subtree, then this one), with the ball ⟨d̂, ρ_d⟩ of its d = a − b (the
/// noise margin's record of the max-pool's sign-polynomial inputs).
pub(crate) fn max_tree_with(
    sign: &FixedSign,
    xs: &[(Integer, f64)],
    f: Frac,
    on_max2: &mut dyn FnMut(&Integer, f64),
) -> (Integer, f64) {
    match xs {
        [] => (Integer::new(), f64::INFINITY),
        [x] => x.clone(),
        _ => {
            let k = xs.len() / 2;
            let (l, r) = xs.split_at(k);
            let a = max_tree_with(sign, l, f, on_max2);
            let b = max_tree_with(sign, r, f, on_max2);
            on_max2(&Integer::from(&a.0 - &b.0), add_ru(a.1, b.1));
            max2_approx(sign, &a, &b, f)
        }
    }
}

/// M_{α,n} of Eq. 6 on balls (n = 2k: halves; n = 2k + 1: k and k + 1), as the engine.
pub(crate) fn max_tree(sign: &FixedSign, xs: &[(Integer, f64)], f: Frac) -> (Integer, f64) {
    max_tree_with(sign, xs, f, &mut |_, _| {})
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rug::integer::Order;

    /// A random integer below 2^bits with the given sign.
    fn int(bits: u32, seed: [u64; 4], neg: bool) -> Integer {
        let mut v = Integer::from_digits(&seed, Order::Lsf);
        v.keep_bits_mut(bits);
        if neg {
            -v
        } else {
            v
        }
    }

    /// f32 weights m·2^e with exponents in [emin, emax] (tiny and huge), zeros mixed in.
    fn weights(seeds: &[(u32, i32, bool)], emin: i32, emax: i32) -> Vec<f32> {
        seeds
            .iter()
            .map(|&(m, e, z)| {
                if z {
                    0.0
                } else {
                    let e = emin + e.rem_euclid(emax - emin + 1);
                    let v = f64::from(m % (1 << 24)) * super::super::fixed::pow2(e - 24);
                    let v = v as f32;
                    if m % 2 == 0 {
                        -v
                    } else {
                        v
                    }
                }
            })
            .collect()
    }

    fn balls(mids: Vec<Integer>, rad_seed: u64) -> BallT {
        let n = mids.len();
        BallT {
            mid: mids,
            rad: (0..n)
                .map(|i| ((i as u64 * 2654435761 + rad_seed) % 1000) as f64 * 1e-30)
                .collect(),
        }
    }

    fn assert_same(p: &BallT, q: &BallT) -> Result<(), TestCaseError> {
        prop_assert_eq!(&p.mid, &q.mid);
        let bits = |b: &BallT| b.rad.iter().map(|r| r.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(p), bits(q));
        Ok(())
    }

    fn out_len(n: usize, k: usize, s: usize, d: usize, p0: usize, p1: usize) -> usize {
        (n + p0 + p1).saturating_sub(d * (k - 1) + 1) / s + 1
    }

    #[test]
    fn overflow_guard_sends_the_layer_to_gmp() {
        // Four terms per dot product: the unsigned-limb guard n·(2^64 − 1)·max|W| ≤ 2^127 − 1
        // holds for max|W| = 2^60, fails for 2^62 (G = 0: W are the integers themselves),
        // which then runs with a carry normalisation after every weight (K = 1), and 2^63
        // does not fit in an i64 (GMP).
        let f = Frac(64);
        let x = balls((0..4).map(|i| Integer::from(u64::MAX - i)).collect(), 1);
        for (e, fast_ok) in [(60, true), (62, true), (63, false)] {
            let big = super::super::fixed::pow2(e) as f32;
            let wt = IntWeights::new(&[big, -big, big, 1.0], Some(&[0.5]), f);
            assert_eq!(wt.g, 0);
            let chunk = wt
                .fast
                .as_ref()
                .and_then(|fw| LimbAcc::<2>::new(fw, &x.mid, wt.g, 4))
                .map(|a| a.chunk);
            let want = match e {
                60 => Some(usize::MAX),
                62 => Some(1),
                _ => None,
            };
            assert_eq!(chunk, want, "2^{e}");
            let job = LinearJob {
                a: &x,
                wt: &wt,
                m: 1,
                k: 4,
                ulp: f.ulp(),
            };
            assert_eq!(run_fast(&wt, &x.mid, 4, &job).is_some(), fast_ok, "2^{e}");
            // Either way the layer's result is the GMP one (exact rational oracle).
            let y = linear(&x, &wt, 1, 4, f.ulp(), true);
            let exact = x
                .mid
                .iter()
                .zip([big, -big, big, 1.0])
                .map(|(m, w)| m * Integer::from_f64(f64::from(w)).unwrap())
                .fold(Integer::from(1) << 63u32, |a, b| a + b);
            assert_eq!(y.mid, vec![exact]);
        }
        // A midpoint beyond 4 limbs also takes the GMP path.
        let huge = balls(vec![Integer::from(1) << 300u32], 2);
        let wt = IntWeights::new(&[1.0], None, f);
        let job = LinearJob {
            a: &huge,
            wt: &wt,
            m: 1,
            k: 1,
            ulp: f.ulp(),
        };
        assert!(run_fast(&wt, &huge.mid, 1, &job).is_none());
        assert_eq!(linear(&huge, &wt, 1, 1, f.ulp(), true).mid, huge.mid);
    }

    #[test]
    fn chunked_limb_sums_are_bit_identical_to_gmp() {
        // 1×1-convolution-like dot products of 1152 terms with weights over 2^−40..2^−10
        // (G ≈ 64, max|W| ≈ 2^54: the one-pass guard fails, so the limbs are normalised
        // every K < n weights) on 192-bit midpoints of both signs; reference: the GMP path.
        let f = Frac(192);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (m, k, cin, hw) in [(3usize, 1152usize, 0usize, 0usize), (4, 0, 1152, 2)] {
            let n = if k > 0 { k } else { cin };
            let count = if k > 0 { m * k } else { m * cin };
            let wv: Vec<f32> = (0..count)
                .map(|_| {
                    let e = -40 + (next() % 31) as i32;
                    let v = (next() % (1 << 24)) as f64 * super::super::fixed::pow2(e - 24);
                    if next() % 2 == 0 {
                        -(v as f32)
                    } else {
                        v as f32
                    }
                })
                .collect();
            let bv: Vec<f32> = (0..m).map(|i| 0.25 * i as f32 - 0.3).collect();
            let wt = IntWeights::new(&wv, Some(&bv), f);
            let len = if k > 0 { k } else { cin * hw * hw };
            let x = balls(
                (0..len)
                    .map(|_| int(196, [next(), next(), next(), next()], next() % 2 == 0))
                    .collect(),
                5,
            );
            let acc = LimbAcc::<4>::new(wt.fast.as_ref().unwrap(), &x.mid, wt.g, n).unwrap();
            assert!(acc.chunk < n, "K = {} for n = {n}", acc.chunk);
            let (fast, gmp) = if k > 0 {
                (
                    linear(&x, &wt, m, k, f.ulp(), true),
                    linear(&x, &wt, m, k, f.ulp(), false),
                )
            } else {
                let geo = ConvGeom {
                    dims: [m, cin, 1, 1],
                    strides: [1, 1],
                    pads: [0; 4],
                    dil: [1, 1],
                    groups: 1,
                };
                let job = ConvJob {
                    a: &x,
                    chw: (cin, hw, hw),
                    wt: &wt,
                    geo: &geo,
                    out_hw: (hw, hw),
                    ulp: f.ulp(),
                };
                assert!(run_fast(&wt, &x.mid, n, &job).is_some());
                (
                    conv(&x, (cin, hw, hw), &wt, &geo, (hw, hw), f.ulp(), true),
                    conv(&x, (cin, hw, hw), &wt, &geo, (hw, hw), f.ulp(), false),
                )
            };
            assert_eq!(fast.mid.len(), m * if k > 0 { 1 } else { hw * hw });
            assert_eq!(fast.mid, gmp.mid);
            let bits = |b: &BallT| b.rad.iter().map(|r| r.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&gmp));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        // Reference: the GMP path (exact integer dot products, one floor).
        #[test]
        fn fast_conv_is_bit_identical_to_gmp(
            (cig, groups, cog) in (1usize..4, 1usize..4, 1usize..3),
            (kh, kw, sy, sx, dy, dx) in (1usize..4, 1usize..4, 1usize..3, 1usize..3, 1usize..3, 1usize..3),
            pads in prop::array::uniform4(0usize..3),
            (h, w) in (1usize..7, 1usize..7),
            (emin, espan) in (-150i32..0, 0i32..60),
            wseed in prop::collection::vec((any::<u32>(), any::<i32>(), prop::bool::weighted(0.2)), 300),
            bits in prop_oneof![0u32..140, 180u32..256, 250u32..262],
            xseed in prop::collection::vec((prop::array::uniform4(any::<u64>()), any::<bool>()), 200),
            bias in any::<bool>(),
        ) {
            let f = Frac(128);
            let (cin, cout) = (cig * groups, cog * groups);
            let n_w = cout * cig * kh * kw;
            prop_assume!(n_w <= wseed.len() && cin * h * w <= xseed.len());
            let ho = out_len(h, kh, sy, dy, pads[0], pads[2]);
            let wo = out_len(w, kw, sx, dx, pads[1], pads[3]);
            prop_assume!(h + pads[0] + pads[2] > dy * (kh - 1));
            prop_assume!(w + pads[1] + pads[3] > dx * (kw - 1));
            let wv = weights(&wseed[..n_w], emin, (emin + espan).min(127));
            let bv: Vec<f32> = weights(&wseed[..cout], -40, 10);
            let wt = IntWeights::new(&wv, bias.then_some(&bv[..]), f);
            let geo = ConvGeom {
                dims: [cout, cig, kh, kw],
                strides: [sy, sx],
                pads,
                dil: [dy, dx],
                groups,
            };
            let x = balls(
                xseed[..cin * h * w].iter().map(|&(s, n)| int(bits, s, n)).collect(),
                7,
            );
            let fast = conv(&x, (cin, h, w), &wt, &geo, (ho, wo), f.ulp(), true);
            let gmp = conv(&x, (cin, h, w), &wt, &geo, (ho, wo), f.ulp(), false);
            prop_assert_eq!(fast.mid.len(), cout * ho * wo);
            assert_same(&fast, &gmp)?;
        }

        #[test]
        fn fast_linear_is_bit_identical_to_gmp(
            (m, k) in (1usize..5, 1usize..40),
            emin in -150i32..60,
            wseed in prop::collection::vec((any::<u32>(), any::<i32>(), prop::bool::weighted(0.2)), 200),
            bits in prop_oneof![0u32..140, 180u32..262],
            xseed in prop::collection::vec((prop::array::uniform4(any::<u64>()), any::<bool>()), 40),
        ) {
            let f = Frac(96);
            let wv = weights(&wseed[..m * k], emin, (emin + 40).min(127));
            let bv = weights(&wseed[..m], -20, 20);
            let wt = IntWeights::new(&wv, Some(&bv), f);
            let x = balls(xseed[..k].iter().map(|&(s, n)| int(bits, s, n)).collect(), 3);
            assert_same(
                &linear(&x, &wt, m, k, f.ulp(), true),
                &linear(&x, &wt, m, k, f.ulp(), false),
            )?;
        }

        // Reference: r̃_α on GMP midpoints. Inputs reach 3B (the trivial ball beyond 2B) and
        // radii up to 1e−3; the fast path must give the same ball whenever it returns one,
        // and return one whenever the input lies in [−B, B] (α = 14 at F = 128; outside,
        // p grows like u^(15·27·29) and soon needs more than 256 bits).
        #[test]
        fn fast_relu_is_bit_identical_to_gmp(
            v in -3.0f64..3.0,
            tail in any::<u64>(),
            rho_e in -40i32..-10,
            b in 0.5f64..40.0,
        ) {
            let pe = super::super::polyerr::PolyErrors::load(
                &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proofs"),
                14,
            )
            .unwrap();
            let f = Frac(128);
            let sign = FixedSign::new(pe.components(), f);
            let wide = sign.to_wide::<4>().unwrap();
            let bd = dyadic_of_f64(b).unwrap();
            let m = f64_to_fixed(v * b, f).unwrap().0 + Integer::from(tail >> 20);
            let rho = super::super::fixed::pow2(rho_e);
            let gmp = relu_approx(&sign, &m, rho, b, &bd, f).unwrap();
            let fast = relu_approx(&wide, &PolyWide::from_integer(&m).unwrap(), rho, b, &bd, f);
            if v.abs() < 1.0 {
                prop_assert!(fast.is_some());
            }
            if let Some((y, r)) = fast {
                prop_assert_eq!(&y.to_integer(), &gmp.0);
                prop_assert_eq!(r.to_bits(), gmp.1.to_bits());
            }
            let (y, r) = relu_ball(&sign, Some(&wide), &m, rho, b, &bd, f);
            prop_assert_eq!(y, gmp.0);
            prop_assert_eq!(r.to_bits(), gmp.1.to_bits());
        }
    }
}
