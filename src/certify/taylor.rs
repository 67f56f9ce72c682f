//! First-order Taylor models recentred per box, propagated stage by stage through the
//! composite p = p_k ∘ … ∘ p_1 (paper §2.2) with outward-rounded `inari` intervals and a
//! multi-precision (MPFR, [`WORK_PREC`] bits) centre.
//!
//! On a box X = [m − ρ, m + ρ] every stage output is enclosed as
//! y(x) ∈ c + d·(x − m) + R, h = x − m ∈ H = [−ρ, ρ], where the real c is known as an MPFR
//! number ỹ with |c − ỹ| ≤ e, d lies in an f64 interval D and R is an interval remainder.
//! An odd component q is re-expanded at ỹ (exact Taylor shift of the polynomial,
//! q(ỹ + δ) = Σ_k a_k δ^k, computed in MPFR with an a-priori rounding bound), so with
//! δ = y − ỹ ∈ Δ = [−e, e] + D·H + R:
//!
//! q(y) = a_0 + a_1·d·h + a_1·((c − ỹ) + r) + Σ_{k≥2} a_k δ^k,
//!
//! giving ỹ' = a_0, D' = A_1·D, R' = A_1·([−e, e] + R) ± Σ_{k≥2} |A_k|·|Δ|^k.
//!
//! Why not plain f64 intervals: the later stages are evaluated near y ≈ 2, where the power
//! basis has terms |c_j|·y^j ≈ 10^12 that cancel to ≈ 1; interval Horner there loses all
//! accuracy (and naive Horner on the composite gives bounds ≈ 10^27, FACTS). The Taylor
//! coefficients a_k at the centre are well conditioned, and the linear part is carried
//! exactly, so the overestimation is O(ρ²): the recentring per box of FACTS.

use inari::{const_interval, Interval};
use rug::{float::Round, Float, Rational};

/// The point interval 0.
pub(crate) const ZERO: Interval = const_interval!(0.0, 0.0);

/// MPFR precision of the centres and Taylor coefficients.
pub(crate) const WORK_PREC: u32 = 128;

/// Centres |ỹ| up to this value use the precomputed rounding bounds.
const Y_MAX: f64 = 4.0;

/// Tight outward f64 enclosure of an exact rational.
pub(crate) fn enclose(q: &Rational) -> Option<Interval> {
    let (lo, _) = Float::with_val_round(53, q, Round::Down);
    let (hi, _) = Float::with_val_round(53, q, Round::Up);
    let (lo, hi) = (lo.to_f64(), hi.to_f64());
    if !lo.is_finite() || !hi.is_finite() || lo.abs() > 1e300 || hi.abs() > 1e300 {
        return None;
    }
    Interval::try_from((lo, hi)).ok()
}

/// f64 interval enclosing an MPFR number.
fn enclose_float(x: &Float) -> Interval {
    let lo = x.to_f64_round(Round::Down);
    let hi = x.to_f64_round(Round::Up);
    Interval::try_from((lo, hi)).unwrap_or(Interval::ENTIRE)
}

fn iv(a: f64, b: f64) -> Interval {
    Interval::try_from((a, b)).unwrap_or(Interval::ENTIRE)
}

/// Absolute-value Taylor shift: Ã_k = Σ_j |c_j|·C(j, k)·y^(j−k) for y ≥ 0 (f64, each entry
/// then inflated by 10% to cover the f64 rounding of this non-negative computation).
fn abs_shift(abs_coeffs: &[f64], y: f64) -> Vec<f64> {
    let mut b = abs_coeffs.to_vec();
    let n = b.len();
    for i in 0..n.saturating_sub(1) {
        for j in (i..n - 1).rev() {
            let next = b.get(j + 1).copied().unwrap_or(0.0);
            if let Some(bj) = b.get_mut(j) {
                *bj += y * next;
            }
        }
    }
    b.iter().map(|v| v * 1.1).collect()
}

/// One odd component q(y) = Σ c_j y^j prepared for Taylor shifts.
#[derive(Debug, Clone)]
pub(crate) struct ShiftPoly {
    /// c_1, c_3, …, c_d rounded to nearest at [`WORK_PREC`] bits.
    odd: Vec<Float>,
    /// j·c_j (j = 1, 3, …, d) rounded to nearest at [`WORK_PREC`] bits: q' in s = y².
    dodd: Vec<Float>,
    /// f64 enclosures of c_0, c_1, …, c_d (even entries 0).
    full_iv: Vec<Interval>,
    /// |c_j| rounded up to f64 (c_0 … c_d).
    abs_coeffs: Vec<f64>,
    /// Rounding bound factor 1.01·(d + 3)·2^−P.
    gamma: f64,
    /// Bounds on |computed a_0 − a_0(ỹ)| and |computed a_1 − a_1(ỹ)| for |ỹ| ≤ Y_MAX.
    err_default: [f64; 2],
    /// For a component that is not odd: all c_0 … c_d and j·c_j (j = 1 … d) at
    /// [`WORK_PREC`] bits, for Horner in y (`odd`, `dodd` then unused).
    general: Option<(Vec<Float>, Vec<Float>)>,
}

impl ShiftPoly {
    /// Prepare the exact odd coefficients `[c_1, c_3, …]`.
    pub(crate) fn new(odd_exact: &[Rational]) -> Option<Self> {
        let d = 2 * odd_exact.len() - 1;
        let mut odd = Vec::with_capacity(odd_exact.len());
        let mut dodd = Vec::with_capacity(odd_exact.len());
        let mut full_iv = Vec::with_capacity(d + 1);
        let mut abs_coeffs = Vec::with_capacity(d + 1);
        for (i, q) in odd_exact.iter().enumerate() {
            let c = Float::with_val(WORK_PREC, q);
            if !c.is_finite() {
                return None;
            }
            let j = u32::try_from(2 * i + 1).ok()?;
            dodd.push(Float::with_val(WORK_PREC, q * Rational::from(j)));
            odd.push(c);
            let e = enclose(q)?;
            full_iv.push(ZERO);
            full_iv.push(e);
            abs_coeffs.push(0.0);
            abs_coeffs.push(e.mag());
        }
        // a_0 = y·Σ c_j s^((j−1)/2) and a_1 = Σ j·c_j s^((j−1)/2) by Horner in s = fl(y²):
        // every term passes through at most d + 3 roundings (coefficient, s, Horner steps,
        // final product), so |â − a| ≤ ((1+u)^(d+3) − 1)·Σ|terms| ≤ 1.01·(d+3)·u·Ã_k(|ỹ|),
        // Ã_k the Taylor coefficients of Σ|c_j| y^j at |ỹ| (increasing in |ỹ|).
        let gamma = 1.01 * (d as f64 + 3.0) * 2f64.powi(-(WORK_PREC as i32));
        let abs = abs_shift(&abs_coeffs, Y_MAX);
        let err_default = [
            abs.first().copied().unwrap_or(f64::INFINITY) * gamma,
            abs.get(1).copied().unwrap_or(0.0) * gamma,
        ];
        Some(Self {
            odd,
            dodd,
            full_iv,
            abs_coeffs,
            gamma,
            err_default,
            general: None,
        })
    }

    /// Prepare a general component from all its coefficients `[c_0, c_1, …, c_d]` (even ones
    /// included, exactly as written).
    pub(crate) fn new_power(all: &[Rational]) -> Option<Self> {
        let d = all.len().checked_sub(1)?;
        let mut c = Vec::with_capacity(d + 1);
        let mut dc = Vec::with_capacity(d);
        let mut full_iv = Vec::with_capacity(d + 1);
        let mut abs_coeffs = Vec::with_capacity(d + 1);
        for (j, q) in all.iter().enumerate() {
            let f = Float::with_val(WORK_PREC, q);
            if !f.is_finite() {
                return None;
            }
            if j > 0 {
                dc.push(Float::with_val(
                    WORK_PREC,
                    q * Rational::from(u32::try_from(j).ok()?),
                ));
            }
            c.push(f);
            let e = enclose(q)?;
            full_iv.push(e);
            abs_coeffs.push(e.mag());
        }
        // a_0 = Σ c_j ỹ^j and a_1 = Σ j·c_j ỹ^(j−1) by Horner in ỹ: each term passes through
        // at most 2d + 2 roundings (coefficient, j·c_j, one product and one sum per step), so
        // |â − a| ≤ ((1+u)^(2d+2) − 1)·Σ|terms| ≤ 1.01·(2d+3)·u·Ã_k(|ỹ|), Ã_k as for `new`.
        let gamma = 1.01 * (2.0 * d as f64 + 3.0) * 2f64.powi(-(WORK_PREC as i32));
        let abs = abs_shift(&abs_coeffs, Y_MAX);
        let err_default = [
            abs.first().copied().unwrap_or(f64::INFINITY) * gamma,
            abs.get(1).copied().unwrap_or(0.0) * gamma,
        ];
        Some(Self {
            odd: Vec::new(),
            dodd: Vec::new(),
            full_iv,
            abs_coeffs,
            gamma,
            err_default,
            general: Some((c, dc)),
        })
    }

    /// Σ_{j even} |c_j|·z^j rounded up (z ≥ 0): a bound of the even terms of q on [−z, z].
    pub(crate) fn even_bound(&self, z: f64) -> f64 {
        let zi = iv(z, z);
        let mut acc = ZERO;
        for (j, c) in self.full_iv.iter().enumerate().rev() {
            acc *= zi;
            if j % 2 == 0 {
                let m = c.mag();
                acc += iv(m, m);
            }
        }
        acc.sup()
    }

    /// Taylor coefficients of q at ỹ: the MPFR values a_0, a_1 with their rounding bounds, and
    /// f64 enclosures A_0 … A_d of the exact a_k(ỹ).
    fn shift(&self, y: &Float, buf: &mut Vec<Interval>) -> Shift {
        // High-precision a_0 = q(ỹ) and a_1 = q'(ỹ).
        let (a0, acc1) = match &self.general {
            Some((c, dc)) => {
                let mut acc = Float::new(WORK_PREC);
                for cj in c.iter().rev() {
                    acc *= y;
                    acc += cj;
                }
                let mut acc1 = Float::new(WORK_PREC);
                for cj in dc.iter().rev() {
                    acc1 *= y;
                    acc1 += cj;
                }
                (acc, acc1)
            }
            None => {
                let s = Float::with_val(WORK_PREC, y * y);
                let mut acc = Float::new(WORK_PREC);
                for c in self.odd.iter().rev() {
                    acc *= &s;
                    acc += c;
                }
                let a0 = Float::with_val(WORK_PREC, &acc * y);
                let mut acc1 = Float::new(WORK_PREC);
                for c in self.dodd.iter().rev() {
                    acc1 *= &s;
                    acc1 += c;
                }
                (a0, acc1)
            }
        };
        let ya = y
            .to_f64_round(Round::Up)
            .abs()
            .max(y.to_f64_round(Round::Down).abs());
        let (e0, e1) = if ya <= Y_MAX {
            (self.err_default[0], self.err_default[1])
        } else {
            let abs = abs_shift(&self.abs_coeffs, ya);
            (
                abs.first().copied().unwrap_or(f64::INFINITY) * self.gamma,
                abs.get(1).copied().unwrap_or(f64::INFINITY) * self.gamma,
            )
        };
        // Higher coefficients in f64 interval arithmetic at the thin interval Ỹ ∋ ỹ (only
        // their magnitudes enter, multiplied by |Δ|^k, k ≥ 2).
        let yi = enclose_float(y);
        buf.clone_from(&self.full_iv);
        let n = buf.len();
        for i in 0..n.saturating_sub(1) {
            for j in (i..n - 1).rev() {
                let next = buf.get(j + 1).copied().unwrap_or(ZERO);
                if let Some(bj) = buf.get_mut(j) {
                    *bj = next.mul_add(yi, *bj);
                }
            }
        }
        if let Some(b0) = buf.get_mut(0) {
            *b0 = enclose_float(&a0) + iv(-e0, e0);
        }
        if let Some(b1) = buf.get_mut(1) {
            *b1 = enclose_float(&acc1) + iv(-e1, e1);
        }
        Shift {
            a0,
            e0,
            a: buf.clone(),
        }
    }
}

/// The Taylor coefficients of one stage at a centre.
struct Shift {
    /// a_0 = q(ỹ) in MPFR.
    a0: Float,
    /// |a_0 − q(ỹ)| ≤ e0.
    e0: f64,
    /// Enclosures of a_0 … a_d.
    a: Vec<Interval>,
}

/// Σ_{k≥2} |A_k|·δ^k, rounded up (δ ≥ 0).
fn tail(a: &[Interval], delta: f64) -> f64 {
    let d = iv(delta, delta);
    let mut acc = ZERO;
    for ak in a.iter().skip(2).rev() {
        let m = ak.mag();
        acc = acc * d + iv(m, m);
    }
    (acc * d * d).sup()
}

/// Σ_{k≥1} k·|A_k|·δ^(k−1), rounded up: a Lipschitz bound of q on [ỹ − δ, ỹ + δ].
pub(crate) fn lipschitz(a: &[Interval], delta: f64) -> f64 {
    let d = iv(delta, delta);
    let mut acc = ZERO;
    for (k, ak) in a.iter().enumerate().skip(1).rev() {
        let m = ak.mag() * k as f64;
        let m = iv(m, m * (1.0 + f64::EPSILON));
        acc = acc * d + m;
    }
    acc.sup()
}

/// The Taylor model of one stage output on a box.
#[derive(Debug, Clone)]
pub(crate) struct Tm {
    /// The centre ỹ (MPFR).
    pub y: Float,
    /// |c − ỹ| ≤ e.
    pub e: f64,
    /// Linear coefficient enclosure.
    pub d: Interval,
    /// Remainder over the box.
    pub r: Interval,
    /// Remainder at h = 0 (the box centre).
    pub r_pt: Interval,
}

impl Tm {
    /// The identity x = m + 1·(x − m).
    pub(crate) fn identity(m: f64) -> Self {
        Self {
            y: Float::with_val(WORK_PREC, m),
            e: 0.0,
            d: iv(1.0, 1.0),
            r: ZERO,
            r_pt: ZERO,
        }
    }

    /// Enclosure of the constant c.
    pub(crate) fn c(&self) -> Interval {
        enclose_float(&self.y) + iv(-self.e, self.e)
    }

    /// Enclosure of y over the box (H = [−ρ, ρ]).
    pub(crate) fn range(&self, h: Interval) -> Interval {
        self.c() + self.d * h + self.r
    }

    /// Enclosure of y at the box centre.
    pub(crate) fn at_centre(&self) -> Interval {
        self.c() + self.r_pt
    }
}

/// Per-stage data a rounding-error analysis needs: the Taylor coefficients of the stage at the
/// centre of its input and the variation bound of the exact input around that centre.
#[derive(Debug, Clone)]
pub(crate) struct StageInfo {
    /// Enclosures of the Taylor coefficients a_k of q_i at the input centre ỹ_{i−1}.
    pub a: Vec<Interval>,
    /// |y_{i−1}(x) − ỹ_{i−1}| ≤ delta on the box.
    pub delta: f64,
}

/// Scratch space reused across boxes.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    buf: Vec<Interval>,
}

/// Taylor models of every stage output p_i ∘ … ∘ p_1 on the box with centre `m` and
/// half-width interval `h` (the last entry is p itself); with `info`, also the stage data.
pub(crate) fn stages(
    polys: &[ShiftPoly],
    m: f64,
    h: Interval,
    scratch: &mut Scratch,
    mut info: Option<&mut Vec<StageInfo>>,
) -> Vec<Tm> {
    let mut out: Vec<Tm> = Vec::with_capacity(polys.len());
    let mut tm = Tm::identity(m);
    for q in polys {
        let Shift { a0, e0: err0, a } = q.shift(&tm.y, &mut scratch.buf);
        let e = iv(-tm.e, tm.e);
        let delta = (e + tm.d * h + tm.r).mag();
        let delta_pt = (e + tm.r_pt).mag();
        let a1 = a.get(1).copied().unwrap_or(ZERO);
        let t = tail(&a, delta);
        let t_pt = tail(&a, delta_pt);
        let next = Tm {
            y: a0,
            e: err0,
            d: a1 * tm.d,
            r: a1 * (e + tm.r) + iv(-t, t),
            r_pt: a1 * (e + tm.r_pt) + iv(-t_pt, t_pt),
        };
        if let Some(v) = info.as_deref_mut() {
            v.push(StageInfo { a, delta });
        }
        out.push(next.clone());
        tm = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: i64, d: i64) -> Rational {
        Rational::from((n, d))
    }

    #[test]
    fn enclosure_of_one_tenth_is_tight_and_contains_it() {
        let i = enclose(&q(1, 10)).unwrap();
        assert!(i.inf() <= 0.1 && i.sup() >= 0.1);
        assert!(i.wid() > 0.0 && i.wid() < 1e-16);
    }

    #[test]
    fn taylor_shift_matches_closed_form() {
        // q(y) = (3y − y³)/2 at ỹ = 1/2: a_0 = 11/16, a_1 = (3 − 3/4)/2 = 9/8, a_2 = −3/4,
        // a_3 = −1/2 (independent hand computation).
        let p = ShiftPoly::new(&[q(3, 2), q(-1, 2)]).unwrap();
        let Shift { a0, a, .. } = p.shift(&Float::with_val(WORK_PREC, 0.5), &mut Vec::new());
        assert_eq!(a0.to_f64(), 11.0 / 16.0);
        for (k, v) in [11.0 / 16.0, 9.0 / 8.0, -0.75, -0.5].iter().enumerate() {
            assert!(a[k].contains(*v), "a_{k} = {:?}", a[k]);
        }
    }

    #[test]
    fn taylor_model_encloses_sampled_values() {
        let p = ShiftPoly::new(&[q(3, 2), q(-1, 2)]).unwrap();
        let polys = vec![p.clone(), p];
        let (m, rho) = (0.3, 0.01);
        let h = iv(-rho, rho);
        let tms = stages(&polys, m, h, &mut Scratch::default(), None);
        let f = |x: f64| {
            let y = 1.5 * x - 0.5 * x * x * x;
            1.5 * y - 0.5 * y * y * y
        };
        let enc = tms[1].range(h);
        for k in 0..=100 {
            let x = m - rho + 2.0 * rho * f64::from(k) / 100.0;
            let v = f(x);
            assert!(
                enc.inf() - 1e-14 <= v && v <= enc.sup() + 1e-14,
                "{x} {v} {enc:?}"
            );
        }
        let fp = (f(m + 1e-6) - f(m - 1e-6)) / 2e-6;
        assert!(
            enc.wid() < 2.0 * rho * fp.abs() * 1.01 + 1e-3,
            "{}",
            enc.wid()
        );
        assert!(
            tms[1].at_centre().contains(f(m)) || (tms[1].at_centre().mid() - f(m)).abs() < 1e-15
        );
    }
}
