//! The Remez exchange for the best odd approximation of sgn(x) on [−b,−a] ∪ [a,b], 0 < a < b
//! (Lee–Lee–No–Kim; paper §2.2).
//!
//! # Formulation
//! An odd p of degree d = 2n − 1 is p(x) = x·q(x²) with deg q = n − 1. On [a, b] the error is
//! e(x) = 1 − x·q(x²), so the problem is the weighted minimax problem
//! min_q max_{t∈[a²,b²]} |1 − √t·q(t)| (weight √t, target 1/√t). `q` is kept in the Chebyshev
//! basis of the *interval* [a², b²]:
//!
//! q(t) = Σ_{k<n} γ_k T_k(s),  s(x) = 2(x−a)(x+a) / ((b−a)(b+a)) − 1 ∈ [−1, 1],
//!
//! which is well conditioned for every interval, including the narrow later stages
//! [1−τ, 1+τ]. Points are always carried as x (not t), so x ↦ √t is exact and the first stage's
//! tiny a = ε loses nothing.
//!
//! # Exchange
//! The n+1 reference points x_0 < … < x_n solve x_j q(t_j) + (−1)^j E = 1. Between consecutive
//! reference points e changes sign, so it has a zero z_j there (Illinois regula falsi). The
//! n+1 sign runs [a, z_0], [z_0, z_1], …, [z_{n−1}, b] each get their extremum of the expected
//! sign (sampling, then safeguarded Newton on e′ with e″ from the differentiated Chebyshev
//! series), so the new reference alternates by construction: the alternation is never lost.
//! The iteration stops when (M − m)/M < tol, with M the largest |e| seen anywhere (reference
//! and samples) and m the smallest |e| on the reference.

use super::real::Real;
use super::RemezError;

/// Result of one Remez exchange on [a, b] (values in the working number type `R`).
#[derive(Debug, Clone)]
pub(crate) struct Minimax<R> {
    /// Chebyshev coefficients γ_k of q on [a², b²].
    pub gamma: Vec<R>,
    /// Largest |e| measured (reference points and all samples): the minimax error estimate.
    pub max_err: R,
    /// Smallest |e| on the final reference.
    pub min_err: R,
    /// The final alternation points x_0 < … < x_n.
    pub extrema: Vec<R>,
    /// e(x_j) at the final reference (alternating signs).
    pub extrema_err: Vec<R>,
    /// Exchange iterations used.
    pub iterations: u32,
}

/// The error function e(x) = 1 − x·q(s(x)) with its first two derivatives.
pub(crate) struct ErrFn<'g, R> {
    gamma: &'g [R],
    d1: Vec<R>,
    d2: Vec<R>,
    a: R,
    c1: R,
    one: R,
}

/// Coefficients of the derivative of the Chebyshev series Σ c_k T_k (same convention: the
/// T_0 coefficient is not halved). Recurrence d′_{k−1} = d′_{k+1} + 2k·c_k, then d_0 = d′_0/2.
fn cheb_derivative<R: Real>(c: &[R], zero: &R) -> Vec<R> {
    let n = c.len();
    if n <= 1 {
        return vec![zero.clone()];
    }
    let mut d = vec![zero.clone(); n + 1];
    for k in (1..n).rev() {
        let next = d.get(k + 1).cloned().unwrap_or_else(|| zero.clone());
        let ck = c.get(k).cloned().unwrap_or_else(|| zero.clone());
        let v = next.add(&ck.mul(&zero.cst(2.0 * k as f64)));
        if let Some(slot) = d.get_mut(k - 1) {
            *slot = v;
        }
    }
    d.truncate(n - 1);
    if let Some(d0) = d.first_mut() {
        *d0 = d0.mul(&zero.cst(0.5));
    }
    d
}

/// Σ c_k T_k(s) by Clenshaw's recurrence.
pub(crate) fn clenshaw<R: Real>(c: &[R], s: &R) -> R {
    let zero = s.cst(0.0);
    let two_s = s.add(s);
    let mut b1 = zero.clone();
    let mut b2 = zero;
    for ck in c.iter().skip(1).rev() {
        let b0 = ck.add(&two_s.mul(&b1)).sub(&b2);
        b2 = b1;
        b1 = b0;
    }
    match c.first() {
        Some(c0) => c0.add(&s.mul(&b1)).sub(&b2),
        None => s.cst(0.0),
    }
}

impl<'g, R: Real> ErrFn<'g, R> {
    pub(crate) fn new(gamma: &'g [R], a: &R, b: &R) -> Self {
        let zero = a.cst(0.0);
        let d1 = cheb_derivative(gamma, &zero);
        let d2 = cheb_derivative(&d1, &zero);
        // c1 = 2 / ((b−a)(b+a))
        let c1 = a.cst(2.0).div(&b.sub(a).mul(&b.add(a)));
        Self {
            gamma,
            d1,
            d2,
            a: a.clone(),
            c1,
            one: a.cst(1.0),
        }
    }

    fn s(&self, x: &R) -> R {
        self.c1
            .mul(&x.sub(&self.a).mul(&x.add(&self.a)))
            .sub(&self.one)
    }

    /// e(x) = 1 − x·q(x²).
    pub(crate) fn e(&self, x: &R) -> R {
        self.one.sub(&x.mul(&clenshaw(self.gamma, &self.s(x))))
    }

    /// (e, e′, e″) at x.
    fn e_d(&self, x: &R) -> (R, R, R) {
        let s = self.s(x);
        let q = clenshaw(self.gamma, &s);
        let q1 = clenshaw(&self.d1, &s);
        let q2 = clenshaw(&self.d2, &s);
        // s′ = 2·c1·x, s″ = 2·c1.
        let s2 = self.c1.add(&self.c1);
        let s1 = s2.mul(x);
        // Q = q(s(x)); Q′ = q′ s′; Q″ = q″ s′² + q′ s″.
        let dq = q1.mul(&s1);
        let ddq = q2.mul(&s1).mul(&s1).add(&q1.mul(&s2));
        // e = 1 − xQ; e′ = −Q − xQ′; e″ = −2Q′ − xQ″.
        let e = self.one.sub(&x.mul(&q));
        let e1 = q.add(&x.mul(&dq)).neg();
        let e2 = dq.add(&dq).add(&x.mul(&ddq)).neg();
        (e, e1, e2)
    }
}

/// Solve the dense system `m · v = rhs` by Gaussian elimination with partial pivoting.
fn solve<R: Real>(mut m: Vec<Vec<R>>, mut rhs: Vec<R>) -> Option<Vec<R>> {
    let n = rhs.len();
    for col in 0..n {
        let mut piv = col;
        let mut best = m.get(col)?.get(col)?.abs();
        for r in col + 1..n {
            let v = m.get(r)?.get(col)?.abs();
            if v > best {
                best = v;
                piv = r;
            }
        }
        if best.partial_cmp(&best.cst(0.0)) != Some(std::cmp::Ordering::Greater) {
            return None;
        }
        m.swap(col, piv);
        rhs.swap(col, piv);
        let prow = m.get(col)?.clone();
        let pval = prow.get(col)?.clone();
        let prhs = rhs.get(col)?.clone();
        for r in col + 1..n {
            let row = m.get_mut(r)?;
            let f = row.get(col)?.div(&pval);
            for c in col..n {
                let v = row.get(c)?.sub(&f.mul(prow.get(c)?));
                *row.get_mut(c)? = v;
            }
            let rr = rhs.get_mut(r)?;
            *rr = rr.sub(&f.mul(&prhs));
        }
    }
    let mut out = vec![rhs.first()?.cst(0.0); n];
    for r in (0..n).rev() {
        let row = m.get(r)?;
        let mut acc = rhs.get(r)?.clone();
        for c in r + 1..n {
            acc = acc.sub(&row.get(c)?.mul(out.get(c)?));
        }
        *out.get_mut(r)? = acc.div(row.get(r)?);
    }
    Some(out)
}

/// A zero of `e` in [lo, hi] where e(lo), e(hi) have opposite signs (Illinois regula falsi;
/// the zero only delimits the sign runs, so 2^−40 relative accuracy is ample).
fn find_zero<R: Real>(f: &ErrFn<'_, R>, mut lo: R, mut hi: R) -> R {
    let mut flo = f.e(&lo);
    let mut fhi = f.e(&hi);
    let mut side = 0i8;
    let tol = 2f64.powi(-40);
    for _ in 0..200 {
        let w = hi.sub(&lo);
        if w.abs().to_f64() <= tol * hi.abs().to_f64() {
            break;
        }
        let denom = fhi.sub(&flo);
        let mut x = hi.sub(&fhi.mul(&w).div(&denom));
        if !x.finite() || x <= lo || x >= hi {
            x = lo.add(&w.mul(&w.cst(0.5)));
        }
        let fx = f.e(&x);
        let fx_sign = fx.to_f64().signum();
        if fx.to_f64() == 0.0 && fx == fx.cst(0.0) {
            return x;
        }
        if fx_sign == flo.to_f64().signum() {
            lo = x;
            flo = fx;
            if side == -1 {
                fhi = fhi.mul(&fhi.cst(0.5));
            }
            side = -1;
        } else {
            hi = x;
            fhi = fx;
            if side == 1 {
                flo = flo.mul(&flo.cst(0.5));
            }
            side = 1;
        }
    }
    lo.add(&hi).mul(&lo.cst(0.5))
}

/// Best point of σ·e in [lo, hi] (σ = ±1 the expected sign of the run), starting from the
/// known-good `start`. Returns (x, σ·e(x), largest |e| seen among all samples).
fn run_extremum<R: Real>(f: &ErrFn<'_, R>, lo: &R, hi: &R, start: &R, sigma: f64) -> (R, R, R) {
    const SAMPLES: usize = 8;
    let sig = lo.cst(sigma);
    let mut best_x = start.clone();
    let mut best_g = sig.mul(&f.e(start));
    let mut seen = best_g.abs();
    let w = hi.sub(lo);
    for i in 0..=SAMPLES {
        let x = lo.add(&w.mul(&lo.cst(i as f64 / SAMPLES as f64)));
        let e = f.e(&x);
        let ae = e.abs();
        if ae > seen {
            seen = ae;
        }
        let g = sig.mul(&e);
        if g > best_g {
            best_g = g;
            best_x = x;
        }
    }
    // Safeguarded Newton on g′ = 0 (g = σe, maximised).
    let bits = lo.bits();
    let stop = 2f64.powi(-(i32::try_from(bits / 2 + 8).unwrap_or(60)));
    for _ in 0..40 {
        let (e, e1, e2) = f.e_d(&best_x);
        let g1 = sig.mul(&e1);
        let g2 = sig.mul(&e2);
        let _ = e;
        if g2.to_f64().partial_cmp(&0.0) != Some(std::cmp::Ordering::Less) {
            break;
        }
        let mut step = g1.div(&g2).neg();
        let mut improved = false;
        for _ in 0..6 {
            let mut x = best_x.add(&step);
            if x < *lo {
                x = lo.clone();
            }
            if x > *hi {
                x = hi.clone();
            }
            let ex = f.e(&x);
            let g = sig.mul(&ex);
            if ex.abs() > seen {
                seen = ex.abs();
            }
            if g >= best_g {
                step = x.sub(&best_x);
                best_g = g;
                best_x = x;
                improved = true;
                break;
            }
            step = step.mul(&step.cst(0.5));
        }
        if !improved || step.abs().to_f64() <= stop * best_x.abs().to_f64() {
            break;
        }
    }
    if best_g > seen {
        seen = best_g.clone();
    }
    (best_x, best_g, seen)
}

/// Remez exchange for the odd minimax approximation of sgn with `n` odd coefficients
/// (degree 2n − 1) on [a, b], 0 < a < b, stopping when (M − m)/M < `tol` (or at the
/// rounding-noise floor of the number type).
pub(crate) fn remez<R: Real>(
    a: &R,
    b: &R,
    n: usize,
    tol: f64,
    max_iter: u32,
) -> Result<Minimax<R>, RemezError> {
    let degree = 2 * n as u64 - 1;
    let zero = a.cst(0.0);
    let one = a.cst(1.0);
    // Initial reference: Chebyshev extrema in t = x² on [a², b²].
    let a2 = a.mul(a);
    let b2 = b.mul(b);
    let mut xs: Vec<R> = (0..=n)
        .map(|j| {
            if j == 0 {
                return a.clone();
            }
            if j == n {
                return b.clone();
            }
            let s = -(std::f64::consts::PI * j as f64 / n as f64).cos();
            let t = a2.add(&b2.sub(&a2).mul(&a.cst((s + 1.0) / 2.0)));
            t.sqrt()
        })
        .collect();
    let eps_bits = 2f64.powi(-(i32::try_from(a.bits()).unwrap_or(53)));
    let mut last: Option<Minimax<R>> = None;
    for it in 1..=max_iter {
        // Linear system: x_j Σ γ_k T_k(s_j) + (−1)^j E = 1.
        let c1 = a.cst(2.0).div(&b.sub(a).mul(&b.add(a)));
        let mut m = Vec::with_capacity(n + 1);
        for (j, x) in xs.iter().enumerate() {
            let s = c1.mul(&x.sub(a).mul(&x.add(a))).sub(&one);
            let mut row = Vec::with_capacity(n + 1);
            let mut t_prev = one.clone();
            let mut t_cur = s.clone();
            for k in 0..n {
                let tk = match k {
                    0 => one.clone(),
                    1 => s.clone(),
                    _ => {
                        let nx = s.add(&s).mul(&t_cur).sub(&t_prev);
                        t_prev = t_cur;
                        t_cur = nx.clone();
                        nx
                    }
                };
                row.push(x.mul(&tk));
            }
            row.push(if j % 2 == 0 { one.clone() } else { one.neg() });
            m.push(row);
        }
        let sol = solve(m, vec![one.clone(); n + 1]).ok_or(RemezError::Singular {
            degree,
            a: a.to_f64(),
            b: b.to_f64(),
            iteration: it,
        })?;
        let (gamma, e_lev) = sol.split_at(n);
        let gamma = gamma.to_vec();
        let e_lev = e_lev.first().cloned().unwrap_or_else(|| zero.clone());
        if !e_lev.finite() || gamma.iter().any(|g| !g.finite()) {
            return Err(RemezError::Singular {
                degree,
                a: a.to_f64(),
                b: b.to_f64(),
                iteration: it,
            });
        }
        let f = ErrFn::new(&gamma, a, b);
        let e_sign = if e_lev.to_f64() >= 0.0 { 1.0 } else { -1.0 };
        // Zeros between consecutive reference points.
        let mut zs = Vec::with_capacity(n);
        for w in xs.windows(2) {
            if let [lo, hi] = w {
                zs.push(find_zero(&f, lo.clone(), hi.clone()));
            }
        }
        // Extremum of each sign run.
        let mut new_x = Vec::with_capacity(n + 1);
        let mut new_e = Vec::with_capacity(n + 1);
        let mut big = zero.clone();
        let mut small: Option<R> = None;
        for (i, start) in xs.iter().enumerate() {
            let lo = if i == 0 {
                a.clone()
            } else {
                zs.get(i - 1).cloned().unwrap_or_else(|| a.clone())
            };
            let hi = zs.get(i).cloned().unwrap_or_else(|| b.clone());
            let sigma = if i % 2 == 0 { e_sign } else { -e_sign };
            let (x, g, seen) = run_extremum(&f, &lo, &hi, start, sigma);
            if seen > big {
                big = seen;
            }
            if small.as_ref().is_none_or(|s| g < *s) {
                small = Some(g.clone());
            }
            new_e.push(g.mul(&g.cst(sigma)));
            new_x.push(x);
        }
        let small = small.unwrap_or_else(|| zero.clone());
        // Rounding-noise floor of evaluating e: 2^−bits · 8(n+1) · (1 + b Σ|γ_k|).
        let mut sum_g = 0.0f64;
        for g in &gamma {
            sum_g += g.abs().to_f64();
        }
        let noise = eps_bits * 8.0 * (n as f64 + 1.0) * (1.0 + b.to_f64() * sum_g);
        let gap = big.sub(&small).to_f64();
        let done = gap <= tol * big.to_f64() + noise;
        let result = Minimax {
            gamma,
            max_err: big,
            min_err: small,
            extrema: new_x.clone(),
            extrema_err: new_e,
            iterations: it,
        };
        if done {
            return Ok(result);
        }
        // Monotone x order is guaranteed by the sign runs; keep the new reference.
        xs = new_x;
        last = Some(result);
    }
    let gap = last
        .as_ref()
        .map(|r| r.max_err.sub(&r.min_err).div(&r.max_err).to_f64())
        .unwrap_or(f64::NAN);
    Err(RemezError::NoConvergence {
        degree,
        a: a.to_f64(),
        b: b.to_f64(),
        iterations: max_iter,
        gap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rug::Float;

    fn fl(v: f64) -> Float {
        Float::with_val(200, v)
    }

    /// Independent closed form for degree 3 on [a, 1]: p(x) = αx − βx³ equioscillates at
    /// a, x* = √((1+a+a²)/3), 1 with p(a) = p(1) = 1 − E, p(x*) = 1 + E, which gives
    /// α = β(1+a+a²), β = 2 / (a + a² + (2/3)(1+a+a²)^{3/2}/√3), E = 1 − β(a+a²).
    fn cubic_closed_form(a: f64) -> f64 {
        let s = 1.0 + a + a * a;
        let beta = 2.0 / (a + a * a + (2.0 / 3.0) * s.powf(1.5) / 3f64.sqrt());
        1.0 - beta * (a + a * a)
    }

    #[test]
    fn degree_one_closed_form() {
        for a in [0.01, 0.3, 0.9] {
            let r = remez(&fl(a), &fl(1.0), 1, 1e-30, 50).unwrap();
            let want = (1.0 - a) / (1.0 + a);
            assert!((r.max_err.to_f64() - want).abs() < 1e-14, "{a}");
        }
    }

    #[test]
    fn degree_three_closed_form() {
        for a in [0.001, 0.05, 0.3, 0.8] {
            let r = remez(&fl(a), &fl(1.0), 2, 2f64.powi(-60), 50).unwrap();
            let want = cubic_closed_form(a);
            assert!(
                (r.max_err.to_f64() - want).abs() < 1e-13 * want,
                "a={a}: {} vs {want}",
                r.max_err.to_f64()
            );
            let rf = remez(&a, &1.0, 2, 1e-12, 50).unwrap();
            assert!((rf.max_err - want).abs() < 1e-10 * want);
        }
    }

    #[test]
    fn equioscillation_high_degree() {
        for (a, b, n) in [
            (0.0010375976562, 1.0, 8),
            (0.026, 1.974, 14),
            (0.9, 1.1, 32),
        ] {
            let r = remez(&fl(a), &fl(b), n, 2f64.powi(-60), 60).unwrap();
            assert_eq!(r.extrema.len(), n + 1);
            let m = r.max_err.to_f64();
            for (j, e) in r.extrema_err.iter().enumerate() {
                let rel = (e.to_f64().abs() - m).abs() / m;
                assert!(rel < 1e-15, "n={n} j={j} rel={rel}");
                if j > 0 {
                    let prev = r.extrema_err[j - 1].to_f64();
                    assert!(prev * e.to_f64() < 0.0, "alternation lost at {j}");
                }
            }
        }
    }
}
