//! Enclosures of the slope r̃_α′ over an interval for the noise margin (issue 13, part 2;
//! beyond the paper), in midpoint–radius binary64 arithmetic.
//!
//! # The math object
//! r̃_α(ξ) = ξ·(1 + p(ξ/B))/2 (Eq. 4) with p = p_k ∘ … ∘ p_1 the composite sign polynomial,
//! so r̃_α′(ξ) = (1 + p(u) + u·p′(u))/2, u = ξ/B. Over an interval X it is enclosed in
//! centred form at the exact chain ŷ_0 = m/B, ŷ_i = p_i(ŷ_{i−1}) of a point m ∈ X (computed
//! in fixed point by the trajectory certificate): per component, with
//! H = Y_{i−1} − Ŷ_{i−1} ∋ y − ŷ_{i−1} and the Taylor coefficients b_k of p_i at ŷ_{i−1},
//! p_i(y) ∈ Ŷ_i + H·Σ_{k≥1} b_k·H^(k−1) and p_i′(y) ∈ Σ_{k≥1} k·b_k·H^(k−1) (Horner in
//! H), and p′(U) ⊆ Π p_i′(Y_{i−1}) (chain rule).
//!
//! # Arithmetic
//! Balls ⟨m, r⟩ = [m − r, m + r] of binary64 numbers ([`Ball`]): for an operation ∘ on
//! balls, m = fl(m_a ∘ m_b) and r ≥ the exact radius of the exact result's enclosure plus the
//! rounding of m: for a sum r = r_a + r_b + 2u·|m|; for a product
//! r = |m_a|·r_b + r_a·|m_b| + r_a·r_b + 2u·|m|. The radius terms (non-negative, at most four)
//! are summed in round-to-nearest and the sum t is bounded by fl(fl(t·(1 + 2^−49)) + 2^−1000):
//! four products and three sums lose at most a relative 5u (plus one underflow unit 2^−1074
//! per product), and 1 + 2^−49 = 1 + 16u leaves 13u after the two final roundings; 2^−1000
//! covers the underflow units. Overflow gives ±∞ or NaN, and any non-finite midpoint or
//! radius makes the final enclosure the whole line. These balls are about four times cheaper
//! than inf–sup intervals with directed rounding and as tight here: the products are of
//! narrow balls or of balls centred at 0 (H), where both forms are exact up to rounding.
//!
//! Symbols: `b` B, `chain` Ŷ, `taylor` b_k, `h` H.

use inari::{const_interval, Interval};
use rug::Rational;

use super::fixed::rat_interval;
use super::round::Ulp;

/// 1 + 16u: the radius factor covering the rounding of the radius terms (module docs).
const RAD_FACTOR: f64 = 1.0 + 1.0 / 562_949_953_421_312.0;
/// 2^−1000: the allowance for underflow in the radius terms.
const TINY: f64 = 9.332_636_185_032_189e-302;
/// 2u.
const TWO_U: f64 = 2.0 / 9_007_199_254_740_992.0;

/// A ball ⟨m, r⟩ = [m − r, m + r] of binary64 numbers (module docs); non-finite parts mean
/// "anything".
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ball {
    m: f64,
    r: f64,
}

impl Ball {
    const ZERO: Self = Self { m: 0.0, r: 0.0 };
    const ONE: Self = Self { m: 1.0, r: 0.0 };
    const ENTIRE: Self = Self {
        m: 0.0,
        r: f64::INFINITY,
    };

    /// The smallest-radius ball around the rounded midpoint that contains `i` (the whole
    /// line for an unbounded or empty `i`).
    pub(crate) fn of(i: Interval) -> Self {
        if i.is_empty() {
            return Self::ENTIRE;
        }
        let (a, b) = (i.inf(), i.sup());
        if !(a.is_finite() && b.is_finite()) {
            return Self::ENTIRE;
        }
        let m = 0.5 * a + 0.5 * b;
        let r = (b - m).up().max((m - a).up());
        Self { m, r }
    }

    /// The enclosed interval, rounded outward (the whole line when a part is not finite).
    pub(crate) fn interval(self) -> Interval {
        if !(self.m.is_finite() && self.r.is_finite()) {
            return Interval::ENTIRE;
        }
        Interval::try_from(((self.m - self.r).down(), (self.m + self.r).up()))
            .unwrap_or(Interval::ENTIRE)
    }

    /// A radius ≥ the exact value of the non-negative sum `t` of at most four rounded terms
    /// (module docs).
    #[inline]
    fn rad(t: f64) -> f64 {
        t * RAD_FACTOR + TINY
    }

    /// self + o.
    #[inline]
    fn add(self, o: Self) -> Self {
        let m = self.m + o.m;
        Self {
            m,
            r: Self::rad(self.r + o.r + TWO_U * m.abs()),
        }
    }

    /// self − o.
    #[inline]
    fn sub(self, o: Self) -> Self {
        let m = self.m - o.m;
        Self {
            m,
            r: Self::rad(self.r + o.r + TWO_U * m.abs()),
        }
    }

    /// self·o.
    #[inline]
    fn mul(self, o: Self) -> Self {
        let m = self.m * o.m;
        let t = self.m.abs() * o.r + self.r * o.m.abs() + self.r * o.r + TWO_U * m.abs();
        Self { m, r: Self::rad(t) }
    }

    /// self·o + c.
    #[inline]
    fn mul_add(self, o: Self, c: Self) -> Self {
        self.mul(o).add(c)
    }

    /// The same ball widened to contain `o`.
    fn hull(self, o: Self) -> Self {
        let need = Self::rad((self.m - o.m).abs() * RAD_FACTOR + o.r);
        // A NaN radius stays NaN (the comparison is false).
        let r = if self.r < need { need } else { self.r };
        Self { m: self.m, r }
    }
}

/// Entries per batch of the batched slope enclosures ([`SiteTaylor`]).
const LANES: usize = 8;

/// [`LANES`] independent balls, one per lane: each lane's operations are exactly those of
/// [`Ball`] (same formulas, same order of the binary64 operations), so every lane's result
/// is bit-identical to the scalar one; the lane loops let the compiler use SIMD registers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BallV {
    m: [f64; LANES],
    r: [f64; LANES],
}

#[expect(
    clippy::indexing_slicing,
    reason = "hot loops over the lanes 0..LANES of fixed-size arrays"
)]
impl BallV {
    const ZERO: Self = Self {
        m: [0.0; LANES],
        r: [0.0; LANES],
    };
    const ONE: Self = Self {
        m: [1.0; LANES],
        r: [0.0; LANES],
    };

    /// Lanes from [`LANES`] scalar balls.
    fn from_balls(b: [Ball; LANES]) -> Self {
        Self {
            m: b.map(|x| x.m),
            r: b.map(|x| x.r),
        }
    }

    /// Lane `l` as a scalar ball.
    fn lane(&self, l: usize) -> Ball {
        Ball {
            m: self.m.get(l).copied().unwrap_or(f64::NAN),
            r: self.r.get(l).copied().unwrap_or(f64::NAN),
        }
    }

    /// self − o ([`Ball::sub`] per lane).
    #[inline]
    fn sub(self, o: Self) -> Self {
        let mut out = Self::ZERO;
        for l in 0..LANES {
            let m = self.m[l] - o.m[l];
            out.m[l] = m;
            out.r[l] = Ball::rad(self.r[l] + o.r[l] + TWO_U * m.abs());
        }
        out
    }

    /// self·o ([`Ball::mul`] per lane).
    #[inline]
    fn mul(self, o: Self) -> Self {
        let mut out = Self::ZERO;
        for l in 0..LANES {
            let m = self.m[l] * o.m[l];
            let t = self.m[l].abs() * o.r[l]
                + self.r[l] * o.m[l].abs()
                + self.r[l] * o.r[l]
                + TWO_U * m.abs();
            out.m[l] = m;
            out.r[l] = Ball::rad(t);
        }
        out
    }

    /// self·o + c ([`Ball::mul_add`] per lane).
    #[inline]
    fn mul_add(self, o: Self, c: Self) -> Self {
        let p = self.mul(o);
        let mut out = Self::ZERO;
        for l in 0..LANES {
            let m = p.m[l] + c.m[l];
            out.m[l] = m;
            out.r[l] = Ball::rad(p.r[l] + c.r[l] + TWO_U * m.abs());
        }
        out
    }

    /// The two Horner sums of one component in H = `h` ([`IntervalSign::site_slopes`]):
    /// q = Σ_k b_k·H^(k−1) and p′ = Σ_k k·b_k·H^(k−1) over the coefficients `bs` = b_1, …,
    /// b_d, i.e. from q = p′ = 0 and for k = d, …, 1: q ← q·H + b_k, p′ ← p′·H + k·b_k.
    ///
    /// Each step is [`Self::mul_add`] and k·b_k ([`Ball::mul`] by the exact ball ⟨k, 0⟩) written out lane by lane with the
    /// same binary64 operations in the same order (so the same bits as those calls), fused
    /// into one loop over the lanes so that both chains stay in registers: the sums are
    /// chains of dependent operations, and interleaving the lanes of both hides their
    /// latency.
    ///
    /// With `FINITE` (every coefficient's midpoint and radius finite, checked by the caller)
    /// the radius of k·b_k, |m|·0 + r·k + r·0 + 2u·|k·m|, is computed as r·k + 2u·|k·m|: for
    /// finite m and r ≥ 0 the dropped terms are +0 and adding +0 to a non-negative sum is
    /// exact, so the bits are the same.
    #[inline]
    #[expect(
        clippy::needless_range_loop,
        reason = "one lane index into six arrays, the shape the vectoriser needs"
    )]
    fn horner_pair<const FINITE: bool>(h: Self, bs: &[Self]) -> (Self, Self) {
        let mut q = Self::ZERO;
        let mut p = Self::ZERO;
        let hma: [f64; LANES] = h.m.map(f64::abs);
        // `bs` holds b_d, …, b_1 (descending k, the order of the reads: [`SiteTaylor`]).
        let nk = bs.len();
        for (idx, bk) in bs.iter().enumerate() {
            let kf = (nk - idx) as f64;
            for l in 0..LANES {
                let (bm, br) = (bk.m[l], bk.r[l]);
                // q·H ([`Ball::mul`]), then + b_k ([`Ball::add`]).
                let m = q.m[l] * h.m[l];
                let t = q.m[l].abs() * h.r[l] + q.r[l] * hma[l] + q.r[l] * h.r[l] + TWO_U * m.abs();
                let r = Ball::rad(t);
                let m2 = m + bm;
                q.r[l] = Ball::rad(r + br + TWO_U * m2.abs());
                q.m[l] = m2;
                // k·b_k ([`Ball::mul`] by ⟨k, 0⟩).
                let sm = bm * kf;
                let st = if FINITE {
                    br * kf + TWO_U * sm.abs()
                } else {
                    bm.abs() * 0.0 + br * kf.abs() + br * 0.0 + TWO_U * sm.abs()
                };
                let sr = Ball::rad(st);
                // p′·H, then + k·b_k.
                let m = p.m[l] * h.m[l];
                let t = p.m[l].abs() * h.r[l] + p.r[l] * hma[l] + p.r[l] * h.r[l] + TWO_U * m.abs();
                let r = Ball::rad(t);
                let m2 = m + sm;
                p.r[l] = Ball::rad(r + sr + TWO_U * m2.abs());
                p.m[l] = m2;
            }
        }
        (q, p)
    }

    /// [`Ball::hull`] per lane.
    #[inline]
    fn hull(self, o: Self) -> Self {
        let mut out = self;
        for l in 0..LANES {
            let need = Ball::rad((self.m[l] - o.m[l]).abs() * RAD_FACTOR + o.r[l]);
            // A NaN radius stays NaN (the comparison is false).
            out.r[l] = if self.r[l] < need { need } else { self.r[l] };
        }
        out
    }
}

/// The Taylor coefficients of every entry of one site ([`IntervalSign::taylor`]), stored in
/// batches of [`LANES`] entries, lane-interleaved: batch g holds, per component, its
/// coefficients b_d, …, b_1 in descending k (the order the Horner sums of
/// [`IntervalSign::site_slopes`] read them, so the reads run forward through memory), each a
/// [`BallV`] of entries LANES·g … LANES·g + LANES − 1 (the last batch padded with copies of the
/// last entry).
#[derive(Debug, Clone, Default)]
pub(crate) struct SiteTaylor {
    /// Entries.
    n: usize,
    /// Coefficients per entry ([`IntervalSign::taylor_len`]).
    len: usize,
    coef: Vec<BallV>,
    /// Whether every coefficient's midpoint and radius is finite (the fast path of
    /// [`BallV::horner_pair`]).
    finite: bool,
}

/// The components p_i of the composite sign polynomial p = p_k ∘ … ∘ p_1 with ball
/// coefficients, for enclosures of r̃_α′ over an interval by Taylor expansion at the chain.
#[derive(Debug, Clone)]
pub(crate) struct IntervalSign {
    /// Per component: enclosures of the monomial coefficients a_0, …, a_d (even ones 0).
    comps: Vec<Vec<Ball>>,
}

impl IntervalSign {
    /// From the exact odd coefficients [c_1, c_3, …] of each component.
    pub(crate) fn new(components: &[Vec<Rational>]) -> Self {
        let comps = components
            .iter()
            .map(|c| {
                let mut a = vec![Ball::ZERO; 2 * c.len()];
                for (j, cj) in c.iter().enumerate() {
                    if let Some(s) = a.get_mut(2 * j + 1) {
                        *s = Ball::of(rat_interval(cj));
                    }
                }
                a
            })
            .collect();
        Self { comps }
    }

    /// Taylor coefficients per entry: Σ_i d_i balls (component i of degree d_i).
    pub(crate) fn taylor_len(&self) -> usize {
        self.comps.iter().map(|a| a.len().saturating_sub(1)).sum()
    }

    /// The Taylor coefficients b_1, …, b_d of every component at its chain point,
    /// p_i(ŷ + h) = p_i(ŷ) + Σ_{k≥1} b_k·h^k with ŷ ∈ Ŷ_{i−1} = `chain[i]` (repeated
    /// synthetic division in ball arithmetic, so each b_k encloses the exact coefficient at
    /// the exact chain point), appended to `out`.
    pub(crate) fn taylor(&self, chain: &[Interval], out: &mut Vec<Ball>) {
        for (a, &yh) in self.comps.iter().zip(chain) {
            let yh = Ball::of(yh);
            let mut b = a.clone();
            let n = b.len().saturating_sub(1);
            for k in 0..n {
                for j in (k..n).rev() {
                    if let (Some(&hi), Some(lo)) = (b.get(j + 1), b.get(j)) {
                        let v = yh.mul_add(hi, *lo);
                        if let Some(s) = b.get_mut(j) {
                            *s = v;
                        }
                    }
                }
            }
            out.extend(b.iter().skip(1));
        }
    }

    /// The Taylor coefficients of every entry of a site ([`Self::taylor`] per entry, [`LANES`]
    /// entries at a time, bit-identical): `chains` holds `stride` chain intervals per entry.
    pub(crate) fn site_taylor(&self, chains: &[Interval], stride: usize) -> SiteTaylor {
        let stride = stride.max(1);
        let n = chains.len() / stride;
        let len = self.taylor_len();
        let mut coef = Vec::with_capacity(n.div_ceil(LANES) * len);
        let mut b: Vec<BallV> = Vec::new();
        for g in 0..n.div_ceil(LANES) {
            let ent = |l: usize| (g * LANES + l).min(n.saturating_sub(1));
            for (ci, a) in self.comps.iter().enumerate() {
                let yh = BallV::from_balls(std::array::from_fn(|l| {
                    let q = ent(l) * stride + ci;
                    Ball::of(chains.get(q).copied().unwrap_or(Interval::ENTIRE))
                }));
                b.clear();
                b.extend(a.iter().map(|c| BallV {
                    m: [c.m; LANES],
                    r: [c.r; LANES],
                }));
                let nk = b.len().saturating_sub(1);
                for k in 0..nk {
                    for j in (k..nk).rev() {
                        if let (Some(&hi), Some(&lo)) = (b.get(j + 1), b.get(j)) {
                            if let Some(s) = b.get_mut(j) {
                                *s = yh.mul_add(hi, lo);
                            }
                        }
                    }
                }
                // Descending k: the Horner sums read them in this order.
                coef.extend(b.iter().skip(1).rev());
            }
        }
        let finite = coef
            .iter()
            .all(|c: &BallV| c.m.iter().chain(&c.r).all(|v| v.is_finite()));
        SiteTaylor {
            n,
            len,
            coef,
            finite,
        }
    }

    /// Enclosures of r̃_α′ over `xs[q]` for every entry q of a site ([`Self::relu_slope`]
    /// per entry, [`LANES`] entries at a time, bit-identical), given the entries' chains (`stride`
    /// intervals each) and Taylor coefficients ([`Self::site_taylor`]); appended to `out`.
    pub(crate) fn site_slopes(
        &self,
        xs: &[Interval],
        b: f64,
        chains: &[Interval],
        stride: usize,
        tay: &SiteTaylor,
        out: &mut Vec<Interval>,
    ) {
        let n = xs.len();
        let stride = stride.max(1);
        let bi = Interval::try_from((b, b)).unwrap_or(Interval::ENTIRE);
        if stride != self.comps.len() + 1 || tay.n != n || chains.len() != n * stride {
            out.extend(std::iter::repeat_n(Interval::ENTIRE, n));
            return;
        }
        let chain = |q: usize, c: usize| {
            chains
                .get(q * stride + c)
                .copied()
                .unwrap_or(Interval::ENTIRE)
        };
        for g in 0..n.div_ceil(LANES) {
            let ent = |l: usize| (g * LANES + l).min(n.saturating_sub(1));
            let us: [Interval; LANES] =
                std::array::from_fn(|l| xs.get(ent(l)).copied().unwrap_or(Interval::ENTIRE) / bi);
            let mut y = BallV::from_balls(std::array::from_fn(|l| {
                let u = us.get(l).copied().unwrap_or(Interval::ENTIRE);
                Ball::of(u.convex_hull(chain(ent(l), 0)))
            }));
            let mut yh = BallV::from_balls(std::array::from_fn(|l| Ball::of(chain(ent(l), 0))));
            let mut d = BallV::ONE;
            let mut off = g * tay.len;
            for (ci, a) in self.comps.iter().enumerate() {
                let nk = a.len().saturating_sub(1);
                let Some(bs) = tay.coef.get(off..off + nk) else {
                    out.extend(std::iter::repeat_n(Interval::ENTIRE, n));
                    return;
                };
                off += nk;
                let h = y.sub(yh);
                let (q, di) = if tay.finite {
                    BallV::horner_pair::<true>(h, bs)
                } else {
                    BallV::horner_pair::<false>(h, bs)
                };
                d = d.mul(di);
                let nb =
                    BallV::from_balls(std::array::from_fn(|l| Ball::of(chain(ent(l), ci + 1))));
                y = h.mul_add(q, nb).hull(nb);
                yh = nb;
            }
            let take = (n - g * LANES).min(LANES);
            for (l, u) in us.iter().enumerate().take(take) {
                let s = Ball::ONE.add(y.lane(l)).add(Ball::of(*u).mul(d.lane(l)));
                out.push(s.interval() / const_interval!(2.0, 2.0));
            }
        }
    }

    /// Enclosure of r̃_α′(ξ) = (1 + p(u) + u·p′(u))/2 over X, u = ξ/B, given the enclosures
    /// `chain` of the exact chain ŷ_0 = m/B, ŷ_i = p_i(ŷ_{i−1}) at a point m ∈ X
    /// ([`super::trajectory::SiteRec`], computed in fixed point) and the Taylor
    /// coefficients `taylor` of every component at its chain point ([`Self::taylor`]).
    ///
    /// Centred at the chain (module docs), the enclosures stay tight: a monomial evaluation
    /// over Y (inputs of the later components near 2, coefficients of alternating sign)
    /// would be wider by the sum of the terms' magnitudes, ~10^10 here.
    pub(crate) fn relu_slope(
        &self,
        x: Interval,
        b: f64,
        chain: &[Interval],
        taylor: &[Ball],
    ) -> Interval {
        let bi = Interval::try_from((b, b)).unwrap_or(Interval::ENTIRE);
        let u = x / bi;
        let (Some(&first), true) = (chain.first(), chain.len() == self.comps.len() + 1) else {
            return Interval::ENTIRE;
        };
        let mut y = Ball::of(u.convex_hull(first));
        let mut yh = Ball::of(first);
        let mut d = Ball::ONE;
        let mut off = 0usize;
        for (a, &next) in self.comps.iter().zip(chain.iter().skip(1)) {
            let n = a.len().saturating_sub(1);
            let Some(bs) = taylor.get(off..off + n) else {
                return Interval::ENTIRE;
            };
            off += n;
            let h = y.sub(yh);
            let mut q = Ball::ZERO;
            let mut di = Ball::ZERO;
            for (k, bk) in bs.iter().enumerate().rev() {
                q = q.mul_add(h, *bk);
                let kk = Ball {
                    m: (k + 1) as f64,
                    r: 0.0,
                };
                di = di.mul_add(h, bk.mul(kk));
            }
            d = d.mul(di);
            let nb = Ball::of(next);
            y = h.mul_add(q, nb).hull(nb);
            yh = nb;
        }
        let s = Ball::ONE.add(y).add(Ball::of(u).mul(d));
        s.interval() / const_interval!(2.0, 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounds::margin_tests::odd_mpfr;
    use crate::bounds::polyerr::PolyErrors;
    use crate::bounds::trajectory_tests::{proofs, Lcg};
    use rug::float::Round;
    use rug::Float;

    fn q(x: f64) -> Rational {
        Rational::from_f64(x).unwrap()
    }

    /// Whether the exact rational v lies in the ball.
    fn inside(b: Ball, v: &Rational) -> bool {
        let (lo, hi) = (q(b.m) - q(b.r), q(b.m) + q(b.r));
        lo <= *v && *v <= hi
    }

    #[test]
    fn ball_operations_enclose_the_exact_results() {
        // Golden: exact rational arithmetic on points of the operand balls (ends and
        // interior points), never the ball code.
        let mut r = Lcg(17);
        let pick = |r: &mut Lcg| {
            let scale = [1e-300, 1e-12, 1.0, 3.7, 1e10][(r.next(1.0, 30).abs() * 4.99) as usize];
            let m = r.next(1.0, 40) * scale;
            let rad = r.next(1.0, 40).abs()
                * scale
                * [0.0, 1e-16, 1e-3, 2.0][(r.next(1.0, 30).abs() * 3.99) as usize];
            Ball { m, r: rad }
        };
        for _ in 0..2000 {
            let (a, b, c) = (pick(&mut r), pick(&mut r), pick(&mut r));
            let pts = |x: Ball| {
                [
                    q(x.m) - q(x.r),
                    q(x.m),
                    q(x.m) + q(x.r),
                    q(x.m) + q(x.r) / 3,
                ]
            };
            for pa in pts(a) {
                for pb in pts(b) {
                    assert!(inside(a.add(b), &(pa.clone() + &pb)), "{a:?} + {b:?}");
                    assert!(inside(a.sub(b), &(pa.clone() - &pb)), "{a:?} - {b:?}");
                    assert!(inside(a.mul(b), &(pa.clone() * &pb)), "{a:?} * {b:?}");
                    let pc = q(c.m) - q(c.r);
                    let fma = Rational::from(&pa * &pb) + &pc;
                    assert!(inside(a.mul_add(b, c), &fma), "{a:?} * {b:?} + {c:?}");
                }
                assert!(inside(a.hull(b), &pa) && inside(a.hull(b), &q(b.m)));
            }
        }
        // Non-finite parts give the whole line.
        let big = Ball { m: 1e300, r: 0.0 };
        assert_eq!(big.mul(big).interval(), Interval::ENTIRE);
        assert_eq!(Ball::ENTIRE.mul(Ball::ZERO).interval(), Interval::ENTIRE);
    }

    /// r̃_α′(ξ) = (1 + p(u) + u·p′(u))/2 in 256-bit MPFR from the exact coefficients.
    fn slope_mpfr(comps: &[Vec<Rational>], xi: &Rational, b: f64) -> Float {
        let p = 256;
        let u = Float::with_val(p, xi) / Float::with_val(p, b);
        let (mut y, mut d) = (u.clone(), Float::with_val(p, 1));
        for c in comps {
            let y2 = Float::with_val(p, &y * &y);
            let (mut acc, mut dacc) = (Float::with_val(p, 0), Float::with_val(p, 0));
            for (j, cj) in c.iter().enumerate().rev() {
                acc = Float::with_val(p, &acc * &y2) + Float::with_val(p, cj);
                let k = Float::with_val(p, cj) * (2 * j as u32 + 1);
                dacc = Float::with_val(p, &dacc * &y2) + k;
            }
            d *= dacc;
            y = Float::with_val(p, &acc * &y);
        }
        (Float::with_val(p, 1) + y + Float::with_val(p, &u * &d)) / 2u32
    }

    /// The chain ŷ_0 = m/B, ŷ_i = p_i(ŷ_{i−1}) in 512-bit MPFR, each rounded outward to a
    /// binary64 interval (the exact chain lies inside: the MPFR error is far below an ulp).
    fn chain_mpfr(comps: &[Vec<Rational>], m: f64, b: f64) -> Vec<Interval> {
        let p = 512;
        let mut y = Float::with_val(p, m) / Float::with_val(p, b);
        let mut out = Vec::new();
        let iv = |y: &Float| {
            let lo = y.to_f64_round(Round::Down).down();
            let hi = y.to_f64_round(Round::Up).up();
            Interval::try_from((lo, hi)).unwrap()
        };
        out.push(iv(&y));
        for c in comps {
            y = odd_mpfr(c, &y, p);
            out.push(iv(&y));
        }
        out
    }

    /// The batched Taylor coefficients and slopes of the entries (`chains`, `xs`) against
    /// the scalar code, bit for bit.
    fn check_batched(
        sign: &IntervalSign,
        b: f64,
        chains: &[Interval],
        xs: &[Interval],
        what: &str,
    ) {
        let n = xs.len();
        let stride = sign.comps.len() + 1;
        let tay = sign.site_taylor(chains, stride);
        let mut batched = Vec::new();
        sign.site_slopes(xs, b, chains, stride, &tay, &mut batched);
        assert_eq!(batched.len(), n);
        // Per component, `SiteTaylor` stores b_d, …, b_1 (descending k).
        let mut stored = Vec::new();
        let mut base = 0;
        for a in &sign.comps {
            let d = a.len() - 1;
            stored.extend((0..d).rev().map(|j| base + j));
            base += d;
        }
        for q in 0..n {
            let chain = &chains[q * stride..(q + 1) * stride];
            let mut t = Vec::new();
            sign.taylor(chain, &mut t);
            assert_eq!(stored.len(), t.len());
            let g = q / LANES;
            for (pos, &k) in stored.iter().enumerate() {
                let (v, bk) = (tay.coef[g * tay.len + pos].lane(q % LANES), t[k]);
                // NaN bits included (`to_bits`), so non-finite coefficients match too.
                assert_eq!(v.m.to_bits(), bk.m.to_bits(), "{what} entry {q} coef {k}");
                assert_eq!(v.r.to_bits(), bk.r.to_bits(), "{what} entry {q} coef {k}");
            }
            let s = sign.relu_slope(xs[q], b, chain, &t);
            let (u, v) = (s, batched[q]);
            assert!(
                u.inf().to_bits() == v.inf().to_bits() && u.sup().to_bits() == v.sup().to_bits(),
                "{what} entry {q}: scalar {u} vs batched {v}"
            );
        }
    }

    #[test]
    fn batched_taylor_and_slopes_are_bit_identical_to_the_scalar_ones() {
        // The LANES-wide batches must reproduce the scalar ball code exactly (same binary64
        // operations per lane), including the padded last batch (2·LANES + 3 entries), on
        // sites whose coefficients are all finite (the fast path of `horner_pair`) and on a
        // site with one unbounded chain (non-finite coefficients, the general path).
        let b = 2.5;
        let mut r = Lcg(41);
        for alpha in [10u32, 14] {
            let pe = PolyErrors::load(&proofs(), alpha).unwrap();
            let comps = pe.components().to_vec();
            let sign = IntervalSign::new(&comps);
            let n = 2 * LANES + 3;
            let mut chains = Vec::new();
            let mut xs = Vec::new();
            for t in 0..n {
                let m = b
                    * [0.0, 2e-5, -3e-3, 0.04, -0.3, 0.6, -0.99][t % 7]
                    * (1.0 + 0.01 * r.next(1.0, 30));
                let w = b * [0.0, 1e-12, 1e-9, 1e-6, 1e-4, 1e-3, 1e-7][(t + alpha as usize) % 7];
                chains.extend(chain_mpfr(&comps, m, b));
                xs.push(Interval::try_from(((m - w).down(), (m + w).up())).unwrap());
            }
            let stride = comps.len() + 1;
            assert!(sign.site_taylor(&chains, stride).finite);
            check_batched(&sign, b, &chains, &xs, &format!("α {alpha}"));
            // One entry's chain unbounded: its coefficients are not finite.
            for c in &mut chains[3 * stride + 1..4 * stride] {
                *c = Interval::ENTIRE;
            }
            assert!(!sign.site_taylor(&chains, stride).finite);
            check_batched(
                &sign,
                b,
                &chains,
                &xs,
                &format!("α {alpha}, one entry unbounded"),
            );
        }
    }

    #[test]
    fn slope_enclosure_contains_the_mpfr_slope_at_sampled_points() {
        // Golden: r̃_α′ in 256-bit MPFR from the exact certificate coefficients at points of
        // X (ends, centre, random), for centres across the transition near 0 and the ripples.
        let b = 3.0;
        let mut r = Lcg(5);
        for alpha in [10u32, 14] {
            let pe = PolyErrors::load(&proofs(), alpha).unwrap();
            let comps = pe.components().to_vec();
            let sign = IntervalSign::new(&comps);
            let mut widths_ok = 0;
            for t in 0..60 {
                let m = b
                    * [0.0, 1e-5, -3e-4, 0.01, -0.2, 0.5, 0.97][t % 7]
                    * (1.0 + 0.02 * r.next(1.0, 30));
                let w = b * [0.0, 1e-12, 1e-8, 1e-6, 1e-4][(t / 7) % 5];
                let x = Interval::try_from(((m - w).down(), (m + w).up())).unwrap();
                let chain = chain_mpfr(&comps, m, b);
                let mut tay = Vec::new();
                sign.taylor(&chain, &mut tay);
                let s = sign.relu_slope(x, b, &chain, &tay);
                if !s.is_common_interval() {
                    // The whole line contains everything (only where X is wide).
                    assert!(w >= 1e-6 * b, "α {alpha} m {m} w {w}: unbounded enclosure");
                    continue;
                }
                let (lo, hi) = (q(s.inf()), q(s.sup()));
                for k in 0..9 {
                    let f = if k < 2 {
                        f64::from(k) * 2.0 - 1.0
                    } else {
                        r.next(1.0, 40)
                    };
                    let xi = q(m) + q(w) * q(f);
                    let v = slope_mpfr(&comps, &xi, b);
                    let v = v.to_rational().unwrap();
                    assert!(lo <= v && v <= hi, "α {alpha} m {m} w {w}: {v} outside {s}");
                }
                // Narrow X: the enclosure is narrow (not the whole line).
                if w <= 1e-8 * b && s.wid() < 1e-3 {
                    widths_ok += 1;
                }
            }
            assert!(
                widths_ok >= 20,
                "α {alpha}: only {widths_ok} narrow enclosures"
            );
        }
    }
}
