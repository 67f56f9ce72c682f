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
    /// |p(x)| on [0, 1] (enclosure of p on [−1, 1] by oddness).
    AbsP,
}

/// Upper bound of f on [m − ρ, m + ρ] and a rigorous lower bound of f(m).
pub(crate) fn bound_box(
    polys: &[ShiftPoly],
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
    let (enc, at_m) = match f {
        Func::AbsPMinus1 => ((t.c() - one) + t.d * h + t.r, t.at_centre() - one),
        Func::AbsP => (t.c() + t.d * h + t.r, t.at_centre()),
        Func::XAbsPMinus1 => {
            // x·(p − 1) with x = m + h, p − 1 = (C − 1) + D·h + R:
            // = m(C − 1) + (m·D + C − 1)·h + D·h² + x·R.
            let x = Interval::try_from((a, b)).unwrap_or(Interval::ENTIRE);
            let c1 = t.c() - one;
            let lin = mi * t.d + c1;
            (
                mi * c1 + lin * h + t.d * h.sqr() + x * t.r,
                mi * (t.at_centre() - one),
            )
        }
    };
    (enc.abs().sup(), at_m.abs().inf())
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
}

/// Certified supremum of f on [lo, hi] decided against `bound`.
///
/// Returns `Err(partial)` when the box limit is reached first.
pub(crate) fn certify_sup(
    polys: &[ShiftPoly],
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
        let (_, l) = bound_box(polys, f, x, x, &mut scratch);
        if l > lower {
            (lower, witness) = (l, x);
        }
    }
    let (u, l) = bound_box(polys, f, lo, hi, &mut scratch);
    if l > lower {
        (lower, witness) = (l, 0.5 * (lo + hi));
    }
    heap.push(Cell {
        a: lo,
        b: hi,
        upper: u,
    });
    while let Some(top) = heap.peek().copied() {
        let tight = top.upper <= lower * (1.0 + limits.rel_tol);
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
            let (u, l) = bound_box(polys, f, a, b, &mut scratch);
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
        };
        let s = certify_sup(&polys, Func::AbsPMinus1, 0.25, 1.0, 1.0, lim).unwrap();
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
        };
        let s = certify_sup(&classic(3), Func::AbsPMinus1, 0.25, 1.0, 1.0, lim).unwrap();
        assert!(s.lower <= expect * (1.0 + 1e-15) && expect <= s.upper);
        assert!((s.upper - expect) / expect < 1e-6);
    }
}
