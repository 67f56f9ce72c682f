//! Change of basis for odd polynomials: power basis ↔ odd Chebyshev basis on [−b, b],
//! p(x) = Σ_k a_k T_{2k+1}(x/b). Exact-input, high-precision arithmetic (rug); the result is
//! rounded to the requested precision.

use rug::{Float, Integer, Rational};

/// Power-basis coefficients (in u) of T_0 … T_m: `out[k][j]` = coefficient of u^j in T_k(u).
/// Integers, computed exactly in `Float`s of `prec` bits (exact while they fit).
fn chebyshev_power_table(m: usize, prec: u32) -> Vec<Vec<Float>> {
    let mut t: Vec<Vec<Float>> = Vec::with_capacity(m + 1);
    t.push(vec![Float::with_val(prec, 1)]);
    if m >= 1 {
        t.push(vec![Float::with_val(prec, 0), Float::with_val(prec, 1)]);
    }
    for k in 2..=m {
        // T_k = 2u·T_{k−1} − T_{k−2}
        let mut next = vec![Float::with_val(prec, 0); k + 1];
        if let (Some(p1), Some(p2)) = (t.get(k - 1), t.get(k - 2)) {
            for (j, c) in p1.iter().enumerate() {
                if let Some(slot) = next.get_mut(j + 1) {
                    *slot += Float::with_val(prec, c * 2u32);
                }
            }
            for (j, c) in p2.iter().enumerate() {
                if let Some(slot) = next.get_mut(j) {
                    *slot -= c;
                }
            }
        }
        t.push(next);
    }
    t
}

/// Odd power coefficients `[c_1, c_3, …]` of p(x) = Σ_k a_k T_{2k+1}(x/b), computed at
/// `prec` bits.
pub fn odd_chebyshev_to_power(cheb: &[Float], b: &Float, prec: u32) -> Vec<Float> {
    let n = cheb.len();
    if n == 0 {
        return Vec::new();
    }
    let m = 2 * n - 1;
    let table = chebyshev_power_table(m, prec);
    let mut out = vec![Float::with_val(prec, 0); n];
    for (k, ak) in cheb.iter().enumerate() {
        if let Some(tk) = table.get(2 * k + 1) {
            for (j, c) in tk.iter().enumerate().skip(1).step_by(2) {
                if let Some(slot) = out.get_mut(j / 2) {
                    *slot += Float::with_val(prec, ak * c);
                }
            }
        }
    }
    // u = x/b ⇒ coefficient of x^j is c_j / b^j.
    let mut binv = Float::with_val(prec, 1) / b;
    let binv2 = Float::with_val(prec, &binv * &binv);
    for c in out.iter_mut() {
        *c *= &binv;
        binv *= &binv2;
    }
    out
}

/// Odd Chebyshev coefficients `[a_0, a_1, …]` with p(x) = Σ_k a_k T_{2k+1}(x/b) of the odd
/// polynomial with power coefficients `odd = [c_1, c_3, …]`, computed at `prec` bits.
///
/// Uses x^j = 2^{1−j} Σ_{i ≡ j (2), i ≤ j} C(j, (j−i)/2) T_i (x/b = u, x^j = b^j u^j).
pub fn odd_power_to_chebyshev(odd: &[Float], b: &Float, prec: u32) -> Vec<Float> {
    let n = odd.len();
    let mut out = vec![Float::with_val(prec, 0); n];
    let mut bj = Float::with_val(prec, b);
    let b2 = Float::with_val(prec, b * b);
    for (h, c) in odd.iter().enumerate() {
        let j = 2 * h + 1;
        // coefficient of u^j is c·b^j; u^j = 2^{1−j} Σ_{i odd ≤ j} C(j, (j−i)/2) T_i.
        let cu = Float::with_val(prec, c * &bj);
        for i in (1..=j).step_by(2) {
            let binom = rug::Integer::from(rug::Integer::binomial_u(
                u32::try_from(j).unwrap_or(u32::MAX),
                u32::try_from((j - i) / 2).unwrap_or(u32::MAX),
            ));
            let mut term = Float::with_val(prec, &cu * &binom);
            term >>= u32::try_from(j - 1).unwrap_or(u32::MAX);
            if let Some(slot) = out.get_mut(i / 2) {
                *slot += term;
            }
        }
        bj *= &b2;
    }
    out
}

/// Power coefficients (in t, ascending) of q(t) = Σ_k γ_k T_k(u) with u = α·t + β, computed at
/// `prec` bits (the substitution cancels heavily on narrow intervals: give `prec` ample room).
pub fn chebyshev_affine_to_power(
    gamma: &[Float],
    alpha: &Float,
    beta: &Float,
    prec: u32,
) -> Vec<Float> {
    let n = gamma.len();
    if n == 0 {
        return Vec::new();
    }
    let table = chebyshev_power_table(n - 1, prec);
    // P(u) = Σ γ_k T_k(u) in powers of u.
    let mut pu = vec![Float::with_val(prec, 0); n];
    for (k, g) in gamma.iter().enumerate() {
        if let Some(tk) = table.get(k) {
            for (j, c) in tk.iter().enumerate() {
                if let Some(slot) = pu.get_mut(j) {
                    *slot += Float::with_val(prec, g * c);
                }
            }
        }
    }
    // Horner in polynomials: R = (…(p_{n−1}(αt+β) + p_{n−2})(αt+β) + …) + p_0.
    let mut r: Vec<Float> = vec![Float::with_val(prec, 0); n];
    for pj in pu.iter().rev() {
        // r ← r·(αt + β) + p_j
        let mut next = vec![Float::with_val(prec, 0); n];
        for (i, ri) in r.iter().enumerate() {
            if let Some(slot) = next.get_mut(i) {
                *slot += Float::with_val(prec, ri * beta);
            }
            if let Some(slot) = next.get_mut(i + 1) {
                *slot += Float::with_val(prec, ri * alpha);
            }
        }
        if let Some(s0) = next.first_mut() {
            *s0 += pj;
        }
        r = next;
    }
    r
}

/// Power-basis coefficients (in y, ascending) of q(y) = Σ_k c_k T_k(u), u = (2y − a − b)/(b − a),
/// exactly; with `half_c0` the series is c_0/2 + Σ_{k≥1} c_k T_k (OpenFHE's convention).
/// `None` unless a < b.
pub fn chebyshev_to_power_exact(
    c: &[Rational],
    a: &Rational,
    b: &Rational,
    half_c0: bool,
) -> Option<Vec<Rational>> {
    if a >= b || c.is_empty() {
        return None;
    }
    let n = c.len();
    // T_k in powers of u (integers): T_0 = 1, T_1 = u, T_k = 2u·T_{k−1} − T_{k−2}.
    let mut pu = vec![Rational::new(); n];
    let (mut t_prev, mut t_cur) = (
        vec![Integer::from(1)],
        vec![Integer::new(), Integer::from(1)],
    );
    for (k, ck) in c.iter().enumerate() {
        let tk: &[Integer] = match k {
            0 => &t_prev,
            1 => &t_cur,
            _ => {
                let mut next = vec![Integer::new(); k + 1];
                for (j, v) in t_cur.iter().enumerate() {
                    if let Some(slot) = next.get_mut(j + 1) {
                        *slot += Integer::from(v * 2u32);
                    }
                }
                for (j, v) in t_prev.iter().enumerate() {
                    if let Some(slot) = next.get_mut(j) {
                        *slot -= v;
                    }
                }
                t_prev = std::mem::replace(&mut t_cur, next);
                &t_cur
            }
        };
        let ck = if k == 0 && half_c0 {
            Rational::from(ck / 2u32)
        } else {
            ck.clone()
        };
        for (j, v) in tk.iter().enumerate() {
            if let Some(slot) = pu.get_mut(j) {
                *slot += Rational::from(&ck * v);
            }
        }
    }
    // u = α·y + β with α = 2/(b − a), β = −(a + b)/(b − a).
    let w = Rational::from(b - a);
    let alpha = Rational::from(2) / &w;
    let beta = -Rational::from(a + b) / w;
    Some(substitute_affine_exact(&pu, &alpha, &beta))
}

/// Coefficients in t (ascending) of p(s·t + h), p given by its coefficients in its variable,
/// exactly (Horner in polynomials of t).
pub fn substitute_affine_exact(p: &[Rational], s: &Rational, h: &Rational) -> Vec<Rational> {
    let n = p.len();
    let mut r = vec![Rational::new(); n];
    for pj in p.iter().rev() {
        let mut next = vec![Rational::new(); n];
        for (i, ri) in r.iter().enumerate() {
            if *ri == 0 {
                continue;
            }
            if let Some(slot) = next.get_mut(i) {
                *slot += Rational::from(ri * h);
            }
            if let Some(slot) = next.get_mut(i + 1) {
                *slot += Rational::from(ri * s);
            }
        }
        if let Some(s0) = next.first_mut() {
            *s0 += pj;
        }
        r = next;
    }
    r
}

/// Exact Chebyshev coefficients g_0 … g_d (standard convention) with
/// Σ_k g_k T_k((2y − a − b)/(b − a)) = Σ_j c_j y^j, from the power coefficients `all` =
/// [c_0, …, c_d]; `None` unless a < b.
///
/// Substitutes y = ((b − a)·u + a + b)/2 (Horner in polynomials of u), then
/// u^j = 2^(1−j)·Σ_{i ≡ j (2), i ≤ j} C(j, (j−i)/2)·T_i(u), the T_0 term halved.
pub fn power_to_chebyshev_exact(
    all: &[Rational],
    a: &Rational,
    b: &Rational,
) -> Option<Vec<Rational>> {
    if a >= b || all.is_empty() {
        return None;
    }
    let n = all.len();
    let half_w = Rational::from(b - a) / 2u32;
    let mid = Rational::from(a + b) / 2u32;
    let pu = substitute_affine_exact(all, &half_w, &mid);
    let mut g = vec![Rational::new(); n];
    for (j, v) in pu.iter().enumerate() {
        if *v == 0 {
            continue;
        }
        let ju = u32::try_from(j).ok()?;
        for i in (0..=j).rev().step_by(2) {
            let iu = u32::try_from(i).ok()?;
            let binom = Integer::from(Integer::binomial_u(ju, (ju - iu) / 2));
            let mut t = Rational::from(v * binom);
            // 2^(1−j), and the T_0 term halved: 2^(−j) for i = 0.
            let shift = if i == 0 { ju } else { ju.saturating_sub(1) };
            t >>= shift;
            if let Some(slot) = g.get_mut(i) {
                *slot += t;
            }
        }
    }
    Some(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_power_chebyshev() {
        let prec = 300;
        let odd: Vec<Float> = [0.75, -1.25, 3.5, -0.125]
            .iter()
            .map(|v| Float::with_val(prec, *v))
            .collect();
        let b = Float::with_val(prec, 1.5);
        let cheb = odd_power_to_chebyshev(&odd, &b, prec);
        let back = odd_chebyshev_to_power(&cheb, &b, prec);
        for (x, y) in odd.iter().zip(&back) {
            assert!(Float::with_val(prec, x - y).abs() < 1e-80);
        }
        // T_3(u) = 4u³ − 3u at b = 1: x³ = (3T_1 + T_3)/4.
        let one = Float::with_val(prec, 1);
        let c = odd_power_to_chebyshev(&[Float::with_val(prec, 0), one.clone()], &one, prec);
        assert_eq!(c[0], 0.75);
        assert_eq!(c[1], 0.25);
    }

    #[test]
    fn exact_power_to_chebyshev_by_hand() {
        let q = |n: i64, d: i64| Rational::from((n, d));
        // y³ on [−1, 1] = (3T_1 + T_3)/4; 1 + y² on [−1, 1] = 3/2·T_0 + T_2/2.
        let g =
            power_to_chebyshev_exact(&[q(0, 1), q(0, 1), q(0, 1), q(1, 1)], &q(-1, 1), &q(1, 1))
                .unwrap();
        assert_eq!(g, vec![q(0, 1), q(3, 4), q(0, 1), q(1, 4)]);
        let g =
            power_to_chebyshev_exact(&[q(1, 1), q(0, 1), q(1, 1)], &q(-1, 1), &q(1, 1)).unwrap();
        assert_eq!(g, vec![q(3, 2), q(0, 1), q(1, 2)]);
        // y on [0, 2]: u = y − 1, so y = T_0 + T_1.
        let g = power_to_chebyshev_exact(&[q(0, 1), q(1, 1)], &q(0, 1), &q(2, 1)).unwrap();
        assert_eq!(g, vec![q(1, 1), q(1, 1)]);
    }

    #[test]
    fn affine_substitution() {
        let prec = 200;
        // q(t) = T_2(2t − 1) = 2(2t−1)² − 1 = 8t² − 8t + 1
        let g = vec![
            Float::with_val(prec, 0),
            Float::with_val(prec, 0),
            Float::with_val(prec, 1),
        ];
        let r = chebyshev_affine_to_power(
            &g,
            &Float::with_val(prec, 2),
            &Float::with_val(prec, -1),
            prec,
        );
        assert_eq!(r[0], 1);
        assert_eq!(r[1], -8);
        assert_eq!(r[2], 8);
    }

    #[test]
    fn chebyshev_conversion_matches_hand_computation() {
        let q = |n: i64, d: i64| Rational::from((n, d));
        // On [0, 2]: u = y − 1. 3·T_0 + 2·T_1 + T_3 = 3 + 2(y − 1) + 4(y − 1)³ − 3(y − 1)
        // = (3 − 2 − 4 + 3) + (2 + 12 − 3)y − 12y² + 4y³ = 11y − 12y² + 4y³ (by hand).
        let p = chebyshev_to_power_exact(
            &[q(3, 1), q(2, 1), q(0, 1), q(1, 1)],
            &q(0, 1),
            &q(2, 1),
            false,
        )
        .unwrap();
        assert_eq!(p, vec![q(0, 1), q(11, 1), q(-12, 1), q(4, 1)]);
        // OpenFHE's convention halves c_0.
        let h = chebyshev_to_power_exact(&[q(3, 1), q(2, 1)], &q(-1, 1), &q(1, 1), true).unwrap();
        assert_eq!(h, vec![q(3, 2), q(2, 1)]);
        assert!(chebyshev_to_power_exact(&[q(1, 1)], &q(1, 1), &q(1, 1), false).is_none());
    }
}
