//! Homomorphic evaluation of the crate's polynomials: an [`EvalPlan`] (odd baby-step
//! giant-step in the scaled Chebyshev basis, `poly::plan`) replayed on ciphertexts, the
//! composite sign p_α = p_k ∘ … ∘ p_1 (Table 1), r_α (Eq. 4) and m_α (§2.2).
//!
//! Level assertion: the input at level ℓ_in; after every op the ciphertext's level must equal
//! ℓ_in − (the plan's level of that value) — the plan's level model (`EvalPlan::levels`) is
//! checked on real ciphertexts, and a deviation is an error ([`CkksError::LevelModel`]).
//! Operands of Add/Sub/Mul at different levels: the higher one is brought down with
//! [`Evaluator::adjust_to`] (a modulus drop plus a multiplication by 1 that lands exactly on
//! the lower level's scale), which the plan's model counts as free.

use rug::Float;

use crate::poly::{EvalPlan, OddPoly, Op};
use crate::remez::CompositeSign;

use super::eval::{Ciphertext, Evaluator};
use super::CkksError;

/// What a replay did: levels and multiplication counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PlanTrace {
    /// Level of the input.
    pub input_level: usize,
    /// Level of the output.
    pub output_level: usize,
    /// The plan's depth (= input_level − output_level, asserted).
    pub depth: u32,
    /// Ciphertext–ciphertext multiplications performed.
    pub nonscalar_mults: u32,
}

/// The odd BSGS plans of p_α's components, each in the scaled Chebyshev basis of its input
/// interval [−b_i, b_i]: b_1 = 1 and b_i = 1 + τ_{i−1} (stage i − 1 maps [ε, 1] into
/// [1 − τ_{i−1}, 1 + τ_{i−1}]). In the basis of [−1, 1] the Chebyshev values T_j(x) for
/// |x| ≤ 1 + τ grow like cosh(j·acosh(1 + τ)) (≈ 10^15 for j = 27, τ ≈ 1 at α = 14), and the
/// cancelling sum loses every bit of a 2^40 scale; in the basis of [−b, b] every term stays
/// below its coefficient.
pub fn sign_plans(sign: &CompositeSign) -> Vec<EvalPlan> {
    sign.poly()
        .components()
        .iter()
        .enumerate()
        .map(|(i, c)| EvalPlan::odd_bsgs_on(c, &component_bound(sign, i)))
        .collect()
}

/// b_i of [`sign_plans`]: 1 for the first component, 1 + τ_{i−1} after.
fn component_bound(sign: &CompositeSign, i: usize) -> Float {
    let one = Float::with_val(64, 1);
    match i.checked_sub(1).and_then(|k| sign.taus().get(k)) {
        Some(tau) => Float::with_val(64, &one + tau),
        None => one,
    }
}

/// As [`sign_plans`], component i's polynomial multiplied by `scales[i]` (1 where `scales`
/// is shorter): c·p_i has the same plan shape and depth, the constant rides on its
/// coefficients (no level). Used to divide a value by the bootstrap gain before a bootstrap
/// (`schedule` module docs).
///
/// # Errors
/// [`CkksError::BadParam`] for a scale that is not finite and non-zero.
pub fn sign_plans_scaled(sign: &CompositeSign, scales: &[f64]) -> Result<Vec<EvalPlan>, CkksError> {
    sign.poly()
        .components()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let b = component_bound(sign, i);
            let s = scales.get(i).copied().unwrap_or(1.0);
            if !(s.is_finite() && s != 0.0) {
                return Err(CkksError::BadParam {
                    what: format!("scale of component {}", i + 1),
                    value: s.to_string(),
                    valid: "finite and non-zero".into(),
                });
            }
            if s == 1.0 {
                return Ok(EvalPlan::odd_bsgs_on(c, &b));
            }
            let scaled: Vec<Float> = c
                .odd_coeffs()
                .iter()
                .map(|a| Float::with_val(a.prec(), a * s))
                .collect();
            let p = OddPoly::from_odd_coeffs(scaled).map_err(|e| CkksError::BadParam {
                what: format!("component {} scaled by {s}", i + 1),
                value: e.to_string(),
                valid: "a finite odd polynomial".into(),
            })?;
            Ok(EvalPlan::odd_bsgs_on(&p, &b))
        })
        .collect()
}

fn align(
    ev: &Evaluator,
    a: &Ciphertext,
    b: &Ciphertext,
) -> Result<(Ciphertext, Ciphertext), CkksError> {
    let l = a.level().min(b.level());
    Ok((ev.adjust_to(a, l)?, ev.adjust_to(b, l)?))
}

/// Replay `plan` on `x`, asserting the level of every value against the plan's model.
///
/// # Errors
/// [`CkksError::NotEnoughLevels`] before any work when x's level is below the plan's depth;
/// [`CkksError::LevelModel`] when a value's level deviates; [`CkksError::BadPlan`]; as the
/// evaluator's operations.
pub fn eval_plan(
    ev: &Evaluator,
    plan: &EvalPlan,
    x: &Ciphertext,
) -> Result<(Ciphertext, PlanTrace), CkksError> {
    replay(ev, plan, x, false)
}

/// [`eval_plan`] with lazy rescaling of linear combinations: every maximal tree of `Add`,
/// `Sub` and `AddConst` over `MulConst` leaves (each value read once), such as a Chebyshev
/// leaf Σ c_j·T_j + c_0, is evaluated as one sum of integer products
/// ([`Evaluator::mul_const_lazy`] of each T_j, first dropped to the sum's level + 1: all
/// products then share the scale q_{ℓ+1}·Δ_ℓ exactly), the constants added after a single
/// rescale. The eager replay rescales every product and brings the higher ones down with
/// another multiplication and rescale; this one saves those NTTs, lands on the same level as
/// the plan's model (asserted at every materialised value) and differs from the eager result
/// by rounding only (each constant is quantised to 1/S, S ≈ q_{ℓ+1}·Δ_ℓ/Δ_in, instead of
/// once per rescale).
///
/// # Errors
/// As [`eval_plan`].
pub fn eval_plan_lazy(
    ev: &Evaluator,
    plan: &EvalPlan,
    x: &Ciphertext,
) -> Result<(Ciphertext, PlanTrace), CkksError> {
    replay(ev, plan, x, true)
}

/// The lazy groups of [`eval_plan_lazy`]: for each op, Some(root) when it belongs to the group
/// of `root` (roots map to themselves), None outside any group.
pub(super) fn lazy_groups(plan: &EvalPlan) -> Vec<Option<usize>> {
    let n = plan.ops.len();
    let mut uses = vec![0usize; n];
    let mut reader = vec![usize::MAX; n];
    for (i, op) in plan.ops.iter().enumerate() {
        let mut read = |v: usize| {
            if let (Some(u), Some(r)) = (uses.get_mut(v), reader.get_mut(v)) {
                *u += 1;
                *r = i;
            }
        };
        match *op {
            Op::Mul(a, b) | Op::Add(a, b) | Op::Sub(a, b) => {
                read(a);
                read(b);
            }
            Op::MulConst(a, _) | Op::MulInt(a, _) | Op::AddConst(a, _) => read(a),
            Op::Input => {}
        }
    }
    if let Some(u) = uses.get_mut(plan.output) {
        *u += 1;
    }
    let single = |v: usize| uses.get(v) == Some(&1);
    let mut lazy = vec![false; n];
    for (i, op) in plan.ops.iter().enumerate() {
        let ok = |v: usize| v < i && lazy.get(v) == Some(&true) && single(v);
        let l = match *op {
            Op::MulConst(..) => true,
            Op::AddConst(a, _) => ok(a),
            Op::Add(a, b) | Op::Sub(a, b) => a != b && ok(a) && ok(b),
            _ => false,
        };
        if let Some(slot) = lazy.get_mut(i) {
            *slot = l;
        }
    }
    // Roots: lazy values not read once by a lazy op. Walk down from the end so that every
    // member's root is known from its (later) reader.
    let mut root = vec![None; n];
    for i in (0..n).rev() {
        if lazy.get(i) != Some(&true) {
            continue;
        }
        let r = reader.get(i).copied().unwrap_or(usize::MAX);
        let member = single(i) && i != plan.output && lazy.get(r) == Some(&true);
        let g = if member {
            root.get(r).copied().flatten()
        } else {
            Some(i)
        };
        if let Some(slot) = root.get_mut(i) {
            *slot = g;
        }
    }
    root
}

/// A lazy group's value before its rescale: the sum of the integer products at level
/// `target + 1` and the constants to add after the rescale.
fn eval_group(
    ev: &Evaluator,
    plan: &EvalPlan,
    vals: &[Option<Ciphertext>],
    i: usize,
    target: usize,
) -> Result<(Ciphertext, f64), CkksError> {
    let coeff = |k: usize| {
        plan.coeffs
            .get(k)
            .map(rug::Float::to_f64)
            .ok_or(CkksError::BadPlan { op: i })
    };
    match plan.ops.get(i) {
        Some(&Op::MulConst(a, k)) => {
            let v = vals
                .get(a)
                .and_then(Option::as_ref)
                .ok_or(CkksError::BadPlan { op: i })?;
            let d = if v.level() > target + 1 {
                ev.mod_drop(v, target + 1)?
            } else {
                ev.copy(v)
            };
            let c = ev.mul_const_lazy(&d, coeff(k)?);
            ev.recycle(d);
            Ok((c?, 0.0))
        }
        Some(&Op::AddConst(a, k)) => {
            let (c, s) = eval_group(ev, plan, vals, a, target)?;
            Ok((c, s + coeff(k)?))
        }
        Some(&Op::Add(a, b)) => {
            let (mut c, s) = eval_group(ev, plan, vals, a, target)?;
            let (d, t) = eval_group(ev, plan, vals, b, target)?;
            ev.add_assign(&mut c, &d)?;
            ev.recycle(d);
            Ok((c, s + t))
        }
        Some(&Op::Sub(a, b)) => {
            let (c, s) = eval_group(ev, plan, vals, a, target)?;
            let (d, t) = eval_group(ev, plan, vals, b, target)?;
            let r = ev.sub(&c, &d);
            ev.recycle(c);
            ev.recycle(d);
            Ok((r?, s - t))
        }
        _ => Err(CkksError::BadPlan { op: i }),
    }
}

fn replay(
    ev: &Evaluator,
    plan: &EvalPlan,
    x: &Ciphertext,
    lazy: bool,
) -> Result<(Ciphertext, PlanTrace), CkksError> {
    let model = plan.levels();
    let depth = plan.depth();
    let lin = x.level();
    if lin < depth as usize {
        return Err(CkksError::NotEnoughLevels {
            what: format!("a plan of depth {depth}"),
            needed: depth as usize,
            available: lin,
        });
    }
    let groups = if lazy {
        lazy_groups(plan)
    } else {
        vec![None; plan.ops.len()]
    };
    // Last reader of every value (the output is read at the end); a read inside a lazy group
    // happens when its root is evaluated.
    let mut last = vec![0usize; plan.ops.len()];
    for (i, op) in plan.ops.iter().enumerate() {
        let at = groups.get(i).copied().flatten().unwrap_or(i);
        match *op {
            Op::Mul(a, b) | Op::Add(a, b) | Op::Sub(a, b) => {
                for v in [a, b] {
                    if let Some(s) = last.get_mut(v) {
                        *s = (*s).max(at);
                    }
                }
            }
            Op::MulConst(a, _) | Op::MulInt(a, _) | Op::AddConst(a, _) => {
                if let Some(s) = last.get_mut(a) {
                    *s = (*s).max(at);
                }
            }
            Op::Input => {}
        }
    }
    if let Some(s) = last.get_mut(plan.output) {
        *s = usize::MAX;
    }
    let mut vals: Vec<Option<Ciphertext>> = vec![None; plan.ops.len()];
    let mut mults = 0u32;
    for (i, op) in plan.ops.iter().enumerate() {
        let expected = lin - model.get(i).copied().unwrap_or(0) as usize;
        let r = match groups.get(i).copied().flatten() {
            // A member of a later root's group: evaluated with its root.
            Some(root) if root != i => continue,
            Some(_) => {
                let (c, k) = eval_group(ev, plan, &vals, i, expected)?;
                let c = ev.rescale_consumed(c)?;
                if k != 0.0 {
                    let r = ev.add_const(&c, k);
                    ev.recycle(c);
                    r?
                } else {
                    c
                }
            }
            None => {
                let get = |k: usize| {
                    vals.get(k)
                        .and_then(Option::as_ref)
                        .ok_or(CkksError::BadPlan { op: i })
                };
                let coeff = |k: usize| {
                    plan.coeffs
                        .get(k)
                        .map(rug::Float::to_f64)
                        .ok_or(CkksError::BadPlan { op: i })
                };
                match *op {
                    Op::Input => ev.copy(x),
                    Op::Mul(a, b) => {
                        mults += 1;
                        let (p, q) = align(ev, get(a)?, get(b)?)?;
                        let r = ev.mul(&p, &q);
                        ev.recycle(p);
                        ev.recycle(q);
                        r?
                    }
                    Op::Add(a, b) => {
                        let (p, q) = align(ev, get(a)?, get(b)?)?;
                        let r = ev.add(&p, &q);
                        ev.recycle(p);
                        ev.recycle(q);
                        r?
                    }
                    Op::Sub(a, b) => {
                        let (p, q) = align(ev, get(a)?, get(b)?)?;
                        let r = ev.sub(&p, &q);
                        ev.recycle(p);
                        ev.recycle(q);
                        r?
                    }
                    Op::MulConst(a, k) => ev.mul_const(get(a)?, coeff(k)?)?,
                    Op::MulInt(a, n) => ev.mul_int(get(a)?, n)?,
                    Op::AddConst(a, k) => ev.add_const(get(a)?, coeff(k)?)?,
                }
            }
        };
        if r.level() != expected {
            return Err(CkksError::LevelModel {
                op: i,
                got: r.level(),
                expected,
            });
        }
        if let Some(slot) = vals.get_mut(i) {
            *slot = Some(r);
        }
        // Free values whose last reader was this op.
        for (v, slot) in vals.iter_mut().enumerate().take(i) {
            if last.get(v) == Some(&i) {
                if let Some(ct) = slot.take() {
                    ev.recycle(ct);
                }
            }
        }
    }
    let out = vals
        .get_mut(plan.output)
        .and_then(Option::take)
        .ok_or(CkksError::BadPlan { op: plan.output })?;
    let trace = PlanTrace {
        input_level: lin,
        output_level: out.level(),
        depth,
        nonscalar_mults: mults,
    };
    Ok((out, trace))
}

/// The composite sign p_α(x) = p_k(…p_1(x)), one plan per component (e.g.
/// `EvalPlan::odd_bsgs` of each Table 1 component).
///
/// # Errors
/// [`CkksError::NotEnoughLevels`] before any work when the total depth exceeds x's level; as
/// [`eval_plan`].
pub fn eval_sign(
    ev: &Evaluator,
    plans: &[EvalPlan],
    x: &Ciphertext,
) -> Result<(Ciphertext, Vec<PlanTrace>), CkksError> {
    let depth: usize = plans.iter().map(|p| p.depth() as usize).sum();
    if x.level() < depth {
        return Err(CkksError::NotEnoughLevels {
            what: format!("the composite sign of depth {depth}"),
            needed: depth,
            available: x.level(),
        });
    }
    let mut cur = x.clone();
    let mut traces = Vec::with_capacity(plans.len());
    for p in plans {
        let (y, t) = eval_plan(ev, p, &cur)?;
        traces.push(t);
        cur = y;
    }
    Ok((cur, traces))
}

/// c·u·(1 + p_α(u)) = 2c·r_α(u) (Eq. 4) for u = x/B already scaled into [−1, 1] (fold 1/B into
/// the preceding linear layer; then B·r_α(u) = r̃_α(x) is the output for c = B/2). Depth:
/// sign depth + 1 (Table 1's depth); the factor c is free (it rides on the level adjustment
/// of u).
///
/// # Errors
/// As [`eval_sign`]; [`CkksError::NotEnoughLevels`] when u's level is below the depth.
pub fn relu_scaled(
    ev: &Evaluator,
    plans: &[EvalPlan],
    u: &Ciphertext,
    c: f64,
) -> Result<Ciphertext, CkksError> {
    let depth: usize = plans.iter().map(|p| p.depth() as usize).sum::<usize>() + 1;
    if u.level() < depth {
        return Err(CkksError::NotEnoughLevels {
            what: format!("r_α of depth {depth}"),
            needed: depth,
            available: u.level(),
        });
    }
    let (p, _) = eval_sign(ev, plans, u)?;
    let cu = scaled_to(ev, u, p.level(), c)?;
    let prod = ev.mul(&cu, &p)?;
    let cu2 = scaled_to(ev, u, prod.level(), c)?;
    let out = ev.add(&prod, &cu2)?;
    if out.level() != u.level() - depth {
        return Err(CkksError::LevelModel {
            op: usize::MAX,
            got: out.level(),
            expected: u.level() - depth,
        });
    }
    Ok(out)
}

/// c·((a + b) + (a − b)·p_α(a − b)) = 2c·m_α(a, b) (§2.2). Depth: sign depth + 1.
///
/// # Errors
/// As [`relu_scaled`].
pub fn max2_scaled(
    ev: &Evaluator,
    plans: &[EvalPlan],
    a: &Ciphertext,
    b: &Ciphertext,
    c: f64,
) -> Result<Ciphertext, CkksError> {
    let (a, b) = align(ev, a, b)?;
    let d = ev.sub(&a, &b)?;
    let s = ev.add(&a, &b)?;
    let (p, _) = eval_sign(ev, plans, &d)?;
    let cd = scaled_to(ev, &d, p.level(), c)?;
    let prod = ev.mul(&cd, &p)?;
    let cs = scaled_to(ev, &s, prod.level(), c)?;
    ev.add(&prod, &cs)
}

/// c·x brought down to `level` (< x's level) in the single multiplication of the adjustment.
fn scaled_to(
    ev: &Evaluator,
    x: &Ciphertext,
    level: usize,
    c: f64,
) -> Result<Ciphertext, CkksError> {
    if level >= x.level() {
        return Err(CkksError::Level {
            op: "scaled_to".into(),
            got: x.level(),
            expected: format!("> {level}"),
        });
    }
    let d = ev.mod_drop(x, level + 1)?;
    ev.mul_const(&d, c)
}
