//! Rigorous rounding-error analysis of evaluating r_α(x) = (x + x·p(x))/2 (Eq. 4) in IEEE
//! binary64 or binary32 with the crate's evaluation scheme, and the measured witnesses that
//! can refute the 2^−α promise.
//!
//! The scheme (that of [`crate::poly::OddPoly::eval_f64`], and its binary32 twin): each
//! coefficient rounded to nearest, per component s = fl(y·y), Horner in s with fused
//! multiply-add (acc ← fma(acc, s, ĉ_j), highest coefficient first), y ← fl(acc·y); finally
//! r̂ = fl(x + fl(x·p̂))·0.5.
//!
//! Error model: every operation returns v(1 + δ) + η with |δ| ≤ u (u = 2^−53 or 2^−24) and
//! |η| ≤ η₀ (the subnormal spacing, 2^−1074 or 2^−149). Per box X, stage i's computed input
//! ŷ lies in Y_{i−1} + [−E, E] (Y from the Taylor models of `taylor`), and
//! |p̂_i(ŷ) − p_i(y)| ≤ Σ|ĉ_j − c_j|·|ŷ|^j + |p_i'|·E + (Horner rounding error), the last one
//! by a running error bound over interval enclosures of the exact Horner intermediates.

#![expect(
    clippy::indexing_slicing,
    reason = "component and stage vectors have equal, non-zero lengths by construction"
)]

use inari::Interval;
use rug::{float::Round, Float, Rational};

use super::claims::{Arith, CertBox, Claim, ClaimKind, RationalComposite, Verdict};
use super::search::{bound_box, certify_sup, Func, Limits};
use super::taylor::{enclose, lipschitz, stages, Scratch, ShiftPoly, StageInfo, ZERO};
use super::CertifyError;

fn iv(a: f64, b: f64) -> Interval {
    Interval::try_from((a.min(b), a.max(b))).unwrap_or(Interval::ENTIRE)
}

fn pt(a: f64) -> Interval {
    iv(a, a)
}

/// Unit roundoff, underflow spacing and the largest finite number of the format.
fn unit(arith: Arith) -> (f64, f64, f64) {
    match arith {
        Arith::F32 => (2f64.powi(-24), 2f64.powi(-149), f64::from(f32::MAX)),
        _ => (2f64.powi(-53), f64::from_bits(1), f64::MAX),
    }
}

/// One component with its rounded coefficients.
struct FloatComp {
    /// Rounded coefficients ĉ_j as f64 (exact values of the format's numbers).
    rounded: Vec<f64>,
    /// Enclosures of |ĉ_j − c_j|.
    coef_err: Vec<f64>,
    /// Interval Horner enclosure of the polynomial with the rounded coefficients.
    rounded_iv: Vec<Interval>,
}

fn round_to(arith: Arith, q: &Rational) -> f64 {
    match arith {
        Arith::F32 => Float::with_val_round(24, q, Round::Nearest).0.to_f64(),
        _ => Float::with_val_round(53, q, Round::Nearest).0.to_f64(),
    }
}

fn float_comps(poly: &RationalComposite, arith: Arith) -> Vec<FloatComp> {
    poly.components()
        .iter()
        .map(|c| {
            let rounded: Vec<f64> = c.iter().map(|q| round_to(arith, q)).collect();
            let coef_err = c
                .iter()
                .zip(&rounded)
                .map(|(q, r)| {
                    let d = Rational::from_f64(*r)
                        .map(|r| Rational::from(&r - q))
                        .unwrap_or_default();
                    enclose(&d).map_or(f64::INFINITY, |i| i.mag())
                })
                .collect();
            let rounded_iv = rounded.iter().map(|r| pt(*r)).collect();
            FloatComp {
                rounded,
                coef_err,
                rounded_iv,
            }
        })
        .collect()
}

/// Bound on |ŷ_out − p_i(y)| given ŷ ∈ `yhat` (enclosing both ŷ and y) and |ŷ − y| ≤ `e_in`.
///
/// The rounding model v(1 + δ) + η only holds while no computed value overflows: each
/// computed intermediate is bounded by (exact magnitude + error so far)·(1 + u) + η, and as
/// soon as such a bound reaches `big` (the largest finite number of the format) the stage may
/// return ±∞, so the bound is +∞.
fn stage_error(
    info: &StageInfo,
    fc: &FloatComp,
    yhat: Interval,
    e_in: f64,
    (u, eta, big): (f64, f64, f64),
) -> f64 {
    let overflows = |v: f64| {
        let w = v * (1.0 + u) + eta;
        w.is_nan() || w >= big
    };
    let mag_y = yhat.mag();
    let s = yhat.sqr();
    let s_mag = s.mag();
    // Coefficient rounding: Σ |ĉ_j − c_j| |y|^j.
    let mut coef = 0.0f64;
    let mut pw = mag_y;
    for e in &fc.coef_err {
        coef += e * pw;
        pw *= s_mag;
    }
    // Propagated input error.
    // Propagated input error: Lipschitz bound of q on the centre ± (variation + error).
    let prop = lipschitz(&info.a, info.delta + e_in) * e_in;
    // Horner running error in s.
    let es = u * s_mag + eta;
    let sh_mag = s_mag + es;
    if overflows(s_mag) {
        return f64::INFINITY;
    }
    let mut a_prev = ZERO;
    let mut e = 0.0f64;
    let mut first = true;
    for c in fc.rounded_iv.iter().rev() {
        let a = a_prev.mul_add(s, *c);
        if first {
            first = false; // fma(0, s, ĉ) = ĉ exactly
        } else {
            let pre = e * sh_mag + a_prev.mag() * es;
            e = pre + u * (a.mag() + pre) + eta;
            if overflows(a.mag() + pre) {
                return f64::INFINITY;
            }
        }
        a_prev = a;
    }
    // Final y' = fl(acc·ŷ).
    let a_mag = a_prev.mag();
    let horner = e * mag_y + u * (a_mag * mag_y + e * mag_y) + eta;
    if overflows((a_mag + e) * mag_y) {
        return f64::INFINITY;
    }
    // Round up the sum generously (every term is a non-negative f64; 4 ulp slack).
    (coef + prop + horner) * (1.0 + 4.0 * f64::EPSILON)
}

/// Bound on |r̂(x) − r(x)| for every x in the box [a, b] (a ≥ 0).
fn box_error(
    polys: &[ShiftPoly],
    fcs: &[FloatComp],
    a: f64,
    b: f64,
    fmt: (f64, f64, f64),
    scratch: &mut Scratch,
) -> f64 {
    let (u, eta, big) = fmt;
    let m = 0.5 * (a + b);
    let h = iv(-0.5 * (b - a), 0.5 * (b - a));
    let mut infos = Vec::with_capacity(polys.len());
    let tms = stages(polys, m, h, scratch, Some(&mut infos));
    let mut e = 0.0f64;
    let mut yin = iv(a, b);
    for i in 0..polys.len() {
        let yhat = yin + iv(-e, e);
        e = stage_error(&infos[i], &fcs[i], yhat, e, fmt);
        yin = tms[i].range(h);
        if !e.is_finite() {
            return f64::INFINITY;
        }
    }
    let x = b.abs().max(a.abs());
    let p = yin.mag() + e;
    let r_mag = (x + x * p) * (1.0 + u) * (1.0 + u) + 2.0 * eta;
    if r_mag.is_nan() || r_mag >= big {
        return f64::INFINITY;
    }
    let t_err = x * e + u * x * p + eta;
    let v_err = t_err + u * (x + x * p + t_err) + eta;
    (0.5 * v_err + eta) * (1.0 + 4.0 * f64::EPSILON)
}

/// r̂(x) with the scheme, in f64 (rounded coefficients given).
fn eval_f64(fcs: &[FloatComp], x: f64) -> f64 {
    let mut y = x;
    for fc in fcs {
        let s = y * y;
        let mut acc = 0.0f64;
        for c in fc.rounded.iter().rev() {
            acc = acc.mul_add(s, *c);
        }
        y *= acc;
    }
    (x + x * y) * 0.5
}

/// r̂(x) with the scheme, in f32.
fn eval_f32(fcs: &[FloatComp], x: f32) -> f32 {
    let mut y = x;
    for fc in fcs {
        let s = y * y;
        let mut acc = 0.0f32;
        for c in fc.rounded.iter().rev() {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "ĉ is an f32 value stored as f64"
            )]
            let c32 = *c as f32;
            acc = acc.mul_add(s, c32);
        }
        y *= acc;
    }
    (x + x * y) * 0.5
}

/// Measured |r̂(x) − ReLU(x)| at x and −x, exactly (a rigorous lower bound of the sup).
fn measured(fcs: &[FloatComp], arith: Arith, x: f64) -> (f64, f64) {
    let mut best = (0.0, x);
    for xs in [x, -x] {
        let (xv, r) = match arith {
            Arith::F32 => {
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "x is rounded to binary32 on purpose"
                )]
                let x32 = xs as f32;
                (f64::from(x32), f64::from(eval_f32(fcs, x32)))
            }
            _ => (xs, eval_f64(fcs, xs)),
        };
        let relu = xv.max(0.0);
        // An overflow (±∞ or NaN) is an infinite error.
        let d = if r.is_finite() {
            (pt(r) - pt(relu)).abs().inf()
        } else {
            f64::INFINITY
        };
        if d > best.0 {
            best = (d, xv);
        }
    }
    best
}

/// The float claim: certified sup of |r̂ − ReLU| over floats in [−1, 1].
pub(crate) fn float_relu_claim(
    poly: &RationalComposite,
    polys: &[ShiftPoly],
    arith: Arith,
    alpha: u32,
    rel_tol: f64,
) -> Result<Claim, CertifyError> {
    let fmt = unit(arith);
    let fcs = float_comps(poly, arith);
    let bound = super::claims::pow2(-(alpha as i32));
    let bound_f = bound.to_f64();
    // A partition tight for the exact part |x p − x| (bound 2^(1−α)).
    let limits = Limits {
        rel_tol,
        max_boxes: 2_000_000,
        floor: 0.0,
    };
    let s = certify_sup(
        polys,
        &[],
        Func::XAbsPMinus1,
        0.0,
        1.0,
        2.0 * bound_f,
        limits,
    )
    .map_err(|p| CertifyError::BoxLimit {
        claim: ClaimKind::FloatRelu { arith }.id(),
        boxes: p.boxes.len(),
        limit: 2_000_000,
        lo: p.lower,
        hi: p.upper,
        bound: bound_f,
    })?;
    let mut scratch = Scratch::default();
    let mut boxes = Vec::with_capacity(s.boxes.len());
    let (mut lo, mut witness) = (0.0f64, 0.0f64);
    for bx in &s.boxes {
        let err = box_error(polys, &fcs, bx.a, bx.b, fmt, &mut scratch);
        let (exact_up, _) = bound_box(polys, &[], Func::XAbsPMinus1, bx.a, bx.b, &mut scratch);
        let upper = (0.5 * exact_up + err) * (1.0 + 2.0 * f64::EPSILON);
        // Measured witnesses: a few float points per box, more where the bound is at stake.
        let k = if upper > bound_f { 64 } else { 2 };
        for j in 0..k {
            let x = bx.a + (bx.b - bx.a) * (f64::from(j) + 0.5) / f64::from(k);
            let (d, xv) = measured(&fcs, arith, x);
            if d > lo {
                (lo, witness) = (d, xv);
            }
        }
        boxes.push(CertBox {
            lo: bx.a,
            hi: bx.b,
            upper,
        });
    }
    let hi = boxes.iter().map(|b| b.upper).fold(0.0, f64::max);
    let verdict = if hi <= bound_f {
        Verdict::Holds
    } else if lo > bound_f {
        Verdict::Refuted { witness }
    } else {
        Verdict::Undecided
    };
    Ok(Claim {
        kind: ClaimKind::FloatRelu { arith },
        bound,
        domain: (Rational::from(-1), Rational::from(1)),
        sup_lo: lo,
        sup_hi: hi,
        witness: Some(witness),
        verdict,
        boxes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poly::{CompositePoly, OddPoly};

    #[test]
    fn f64_scheme_matches_oddpoly_eval_f64_bit_for_bit() {
        let c = |x: f64| Float::with_val(200, x) / 3;
        let p = OddPoly::from_odd_coeffs(vec![c(4.5), c(-1.5), c(0.3)]).unwrap();
        let comp = CompositePoly::new(vec![p.clone(), p]).unwrap();
        let rc = RationalComposite::from_composite(&comp).unwrap();
        let fcs = float_comps(&rc, Arith::F64);
        for k in 0..50 {
            let x = f64::from(k) / 49.0;
            let y = comp.eval_f64(x);
            assert_eq!(eval_f64(&fcs, x), (x + x * y) * 0.5);
        }
    }
}
