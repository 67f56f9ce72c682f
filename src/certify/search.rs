//! Adaptive bisection (branch and bound) for a certified supremum of a claim function over an
//! interval, with one Taylor model per box (see `taylor`).
//!
//! Invariant: every box that is ever discarded is kept in the output, so the returned boxes
//! partition the domain and the certified supremum is the maximum of their upper bounds.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use inari::Interval;

use super::taylor::{stages, Scratch, ShiftPoly};

/// The function of x whose supremum a claim bounds (paper §2.2–3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    /// |p(x) − 1| ((β, ε)-closeness on [ε, 1]; by oddness also on [−1, −ε]).
    AbsPMinus1,
    /// |x·p(x) − x| on [0, 1] (condition (1) for m_α; by evenness also on [−1, 0]).
    XAbsPMinus1,
    /// |p(x)| on [0, 1] (enclosure of p on [−1, 1] by oddness), or on [−1, 0] for a p that
    /// is not odd.
    AbsP,
    /// |p(x) + 1| on [−1, −ε] (closeness on the negative side, p not odd).
    AbsPPlus1,
    /// |x·p(x) + x| on [−1, 0] (condition (1) on the negative side, p not odd).
    XAbsPPlus1,
    /// |q(x) − p(x)| for a second composite q (the shipped polynomial, p its odd part).
    Diff,
}

/// Upper bound of f on [m − ρ, m + ρ] and a rigorous lower bound of f(m); `other` is the
/// second composite of [`Func::Diff`] (ignored by the other functions).
pub(crate) fn bound_box(
    polys: &[ShiftPoly],
    other: &[ShiftPoly],
    f: Func,
    a: f64,
    b: f64,
    scratch: &mut Scratch,
) -> (f64, f64) {
    let m = 0.5 * (a + b);
    let rho = 0.5 * (b - a);
    let h = Interval::try_from((-rho, rho)).unwrap_or(Interval::ENTIRE);
    let tms = stages(polys, m, h, scratch, None);
    let Some(t) = tms.last() else {
        return (f64::INFINITY, 0.0);
    };
    let one = Interval::try_from((1.0, 1.0)).unwrap_or(Interval::ENTIRE);
    let mi = Interval::try_from((m, m)).unwrap_or(Interval::ENTIRE);
    // x·(p ∓ 1) with x = m + h, p ∓ 1 = (C ∓ 1) + D·h + R:
    // = m(C ∓ 1) + (m·D + C ∓ 1)·h + D·h² + x·R.
    let x_times = |shift: Interval| {
        let x = Interval::try_from((a, b)).unwrap_or(Interval::ENTIRE);
        let c1 = t.c() + shift;
        let lin = mi * t.d + c1;
        (
            mi * c1 + lin * h + t.d * h.sqr() + x * t.r,
            mi * (t.at_centre() + shift),
        )
    };
    let (enc, at_m) = match f {
        Func::AbsPMinus1 => ((t.c() - one) + t.d * h + t.r, t.at_centre() - one),
        Func::AbsPPlus1 => ((t.c() + one) + t.d * h + t.r, t.at_centre() + one),
        Func::AbsP => (t.c() + t.d * h + t.r, t.at_centre()),
        Func::XAbsPMinus1 => x_times(-one),
        Func::XAbsPPlus1 => x_times(one),
        Func::Diff => {
            let t = t.clone();
            // Lower bound at the centre: both chains at the point m, centres subtracted in
            // MPFR (4·WORK_PREC bits hold the difference of two WORK_PREC-bit numbers of
            // comparable size; the result is enclosed outward), remainders at h = 0.
            let zero = Interval::try_from((0.0, 0.0)).unwrap_or(Interval::ENTIRE);
            let tq = stages(other, m, zero, scratch, None);
            let Some(q) = tq.last() else {
                return (f64::INFINITY, 0.0);
            };
            let dc = rug::Float::with_val(4 * super::taylor::WORK_PREC, &q.y - &t.y);
            let lo = dc.to_f64_round(rug::float::Round::Down);
            let hi = dc.to_f64_round(rug::float::Round::Up);
            let e = q.e + t.e;
            let c = Interval::try_from((lo, hi)).unwrap_or(Interval::ENTIRE)
                + Interval::try_from((-e, e)).unwrap_or(Interval::ENTIRE);
            let at_m = c + (q.r_pt - t.r_pt);
            (
                Interval::try_from((0.0, diff_upper(polys, other, m, h, scratch)))
                    .unwrap_or(Interval::ENTIRE),
                at_m,
            )
        }
    };
    (enc.abs().sup(), at_m.abs().inf())
}

/// Upper bound of |q(x) − p(x)| on the box, p = p_k ∘ … ∘ p_1 odd and q = q_k ∘ … ∘ q_1
/// with q_i = p_i + e_i (e_i the even terms): with y_i, z_i the stage outputs of p and q,
/// z_i − y_i = (p_i(z_{i−1}) − p_i(y_{i−1})) + e_i(z_{i−1}), so
/// δ_i ≤ L_i·δ_{i−1} + sup|e_i|, L_i a Lipschitz bound of p_i on [ỹ − R, ỹ + R] where ỹ ± Δ
/// encloses y_{i−1} on the box (the Taylor models) and R = Δ + δ_{i−1}; δ_0 = 0. First order
/// in δ, so the bound stays tight while the even terms are small.
fn diff_upper(
    polys: &[ShiftPoly],
    other: &[ShiftPoly],
    m: f64,
    h: Interval,
    scratch: &mut Scratch,
) -> f64 {
    let mut infos = Vec::with_capacity(polys.len());
    let tms = stages(polys, m, h, scratch, Some(&mut infos));
    let mut centre = m.abs();
    let mut delta = 0.0f64;
    for (i, (info, q)) in infos.iter().zip(other).enumerate() {
        let r = up(info.delta + delta);
        let l = super::taylor::lipschitz(&info.a, r);
        delta = up(up(l * delta) + q.even_bound(up(centre + r)));
        if !delta.is_finite() {
            return f64::INFINITY;
        }
        centre = tms.get(i).map_or(f64::INFINITY, |t| {
            t.y.to_f64_round(rug::float::Round::Up)
                .abs()
                .max(t.y.to_f64_round(rug::float::Round::Down).abs())
        });
    }
    delta
}

/// The next f64 above a non-negative x (covers one rounding to nearest).
fn up(x: f64) -> f64 {
    x + x * f64::EPSILON + f64::from_bits(1)
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Cell {
    a: f64,
    b: f64,
    upper: f64,
}

impl Eq for Cell {}

impl Ord for Cell {
    fn cmp(&self, other: &Self) -> Ordering {
        // Largest upper bound first; ties broken by position (determinism).
        self.upper
            .total_cmp(&other.upper)
            .then_with(|| other.a.total_cmp(&self.a))
    }
}

impl PartialOrd for Cell {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One box of the final partition: x ∈ [a, b] and an upper bound of f there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SupBox {
    /// Left end (exact dyadic).
    pub a: f64,
    /// Right end (exact dyadic).
    pub b: f64,
    /// Upper bound of f on [a, b] (outward rounded).
    pub upper: f64,
}

/// Outcome of a search: a partition with upper bounds, and a point lower bound.
#[derive(Debug, Clone)]
pub(crate) struct SupSearch {
    /// The boxes, sorted by position, partitioning the domain.
    pub boxes: Vec<SupBox>,
    /// Rigorous lower bound of the supremum (f at `witness`).
    pub lower: f64,
    /// The point where `lower` was found.
    pub witness: f64,
    /// Rigorous upper bound of the supremum (max over boxes).
    pub upper: f64,
}

/// Search limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Stop refining once upper ≤ lower·(1 + tol) (and the claim is decided).
    pub rel_tol: f64,
    /// Fail beyond this many boxes.
    pub max_boxes: usize,
    /// Upper bounds at or below this count as tight (0 for every claim but the even-part
    /// difference, whose supremum may be 0).
    pub floor: f64,
}

/// Certified supremum of f on [lo, hi] decided against `bound`.
///
/// Returns `Err(partial)` when the box limit is reached first.
pub(crate) fn certify_sup(
    polys: &[ShiftPoly],
    other: &[ShiftPoly],
    f: Func,
    lo: f64,
    hi: f64,
    bound: f64,
    limits: Limits,
) -> Result<SupSearch, SupSearch> {
    let mut scratch = Scratch::default();
    let mut heap = BinaryHeap::new();
    let mut done: Vec<SupBox> = Vec::new();
    let (mut lower, mut witness) = (0.0f64, lo);
    // Endpoints as extra witnesses (the supremum is often attained at ε).
    for x in [lo, hi] {
        let (_, l) = bound_box(polys, other, f, x, x, &mut scratch);
        if l > lower {
            (lower, witness) = (l, x);
        }
    }
    let (u, l) = bound_box(polys, other, f, lo, hi, &mut scratch);
    if l > lower {
        (lower, witness) = (l, 0.5 * (lo + hi));
    }
    heap.push(Cell {
        a: lo,
        b: hi,
        upper: u,
    });
    while let Some(top) = heap.peek().copied() {
        let tight = top.upper <= lower * (1.0 + limits.rel_tol) || top.upper <= limits.floor;
        let decided = top.upper <= bound || lower > bound;
        if tight && decided {
            break;
        }
        if heap.len() + done.len() >= limits.max_boxes {
            if std::env::var("POLYCERT_DEBUG").is_ok() {
                let mut v: Vec<Cell> = heap.clone().into_vec();
                v.sort();
                for c in v.iter().rev().take(8) {
                    eprintln!(
                        "box [{:e}, {:e}] upper {:e} w {:e}",
                        c.a,
                        c.b,
                        c.upper,
                        c.b - c.a
                    );
                }
            }
            let partial = finish(heap, done, lower, witness);
            return Err(partial);
        }
        heap.pop();
        let m = 0.5 * (top.a + top.b);
        if !(top.a < m && m < top.b) {
            done.push(SupBox {
                a: top.a,
                b: top.b,
                upper: top.upper,
            });
            continue;
        }
        for (a, b) in [(top.a, m), (m, top.b)] {
            let (u, l) = bound_box(polys, other, f, a, b, &mut scratch);
            if l > lower {
                (lower, witness) = (l, 0.5 * (a + b));
            }
            heap.push(Cell { a, b, upper: u });
        }
    }
    Ok(finish(heap, done, lower, witness))
}

fn finish(heap: BinaryHeap<Cell>, done: Vec<SupBox>, lower: f64, witness: f64) -> SupSearch {
    let mut boxes: Vec<SupBox> = heap
        .into_iter()
        .map(|c| SupBox {
            a: c.a,
            b: c.b,
            upper: c.upper,
        })
        .chain(done)
        .collect();
    boxes.sort_by(|x, y| x.a.total_cmp(&y.a));
    let upper = boxes
        .iter()
        .map(|b| b.upper)
        .fold(f64::NEG_INFINITY, f64::max);
    SupSearch {
        boxes,
        lower,
        witness,
        upper,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rug::Rational;

    fn classic(k: usize) -> Vec<ShiftPoly> {
        let p = ShiftPoly::new(&[Rational::from((3, 2)), Rational::from((-1, 2))]).unwrap();
        vec![p; k]
    }

    #[test]
    fn boxes_partition_the_domain() {
        let polys = classic(3);
        let lim = Limits {
            rel_tol: 1e-4,
            max_boxes: 100_000,
            floor: 0.0,
        };
        let s = certify_sup(&polys, &[], Func::AbsPMinus1, 0.25, 1.0, 1.0, lim).unwrap();
        assert_eq!(s.boxes[0].a, 0.25);
        assert_eq!(s.boxes.last().unwrap().b, 1.0);
        for w in s.boxes.windows(2) {
            assert_eq!(w[0].b, w[1].a);
        }
        assert!(s.lower <= s.upper && s.upper <= s.lower * (1.0 + 1e-4));
    }

    #[test]
    fn classic_iteration_sup_matches_closed_form() {
        // g(x) = (3x − x³)/2 is increasing on [0, 1], so sup_{[1/4, 1]} |g∘g∘g(x) − 1| is
        // attained at x = 1/4: an independent computation in exact rationals.
        let mut y = Rational::from((1, 4));
        for _ in 0..3 {
            let y3 = Rational::from(&y * &y) * &y;
            y = (3 * y) / 2 - y3 / 2;
        }
        let expect = (Rational::from(1) - y).to_f64();
        let lim = Limits {
            rel_tol: 1e-6,
            max_boxes: 100_000,
            floor: 0.0,
        };
        let s = certify_sup(&classic(3), &[], Func::AbsPMinus1, 0.25, 1.0, 1.0, lim).unwrap();
        assert!(s.lower <= expect * (1.0 + 1e-15) && expect <= s.upper);
        assert!((s.upper - expect) / expect < 1e-6);
    }
}
