//! The homomorphic special DFT of bootstrapping: CoeffToSlot and SlotToCoeff as products of
//! butterfly stages (Cheon–Han–Kim–Kim–Song 2018, "Bootstrapping for approximate HE" /
//! "Improved bootstrapping … via sparse matrices"; Han–Ki 2020; Bossuat et al. 2021 §4).
//!
//! # The map
//! With p slots (p a power of two ≤ N/2) a plaintext polynomial lies in Z[Y]/(Y^{2p} + 1),
//! Y = X^{N/(2p)}, with coefficients u_0 … u_{2p−1}. Its slots are
//!
//! z_j = u(ζ_p^{5^j}) = Σ_{i<p} w_i·ζ_p^{5^j·i},  w_i = u_i + i·u_{i+p},  ζ_p = e^{iπ/(2p)}
//!
//! (using ζ_p^{5^j·p} = i^{5^j} = i). So decoding is the complex p×p map U: w ↦ z, the
//! "special FFT" of HEAAN (`Encoder::special_fft`); SlotToCoeff evaluates U homomorphically
//! and CoeffToSlot evaluates U^{−1}.
//!
//! # Factorisation
//! The special FFT is U = B_{log p}·…·B_1·R with R the bit-reversal permutation and B_s
//! (len = 2^s, h = len/2) the butterfly stage: within each block of len entries, for j < h,
//!
//! out[j] = v[j] + ξ_j·v[j+h],  out[j+h] = v[j] − ξ_j·v[j+h],  ξ_j = e^{2πi·(5^j mod 4len)/(4len)},
//!
//! a matrix with three generalised diagonals (0, h and −h). Its inverse is
//! out[j] = (v[j] + v[j+h])/2, out[j+h] = ξ̄_j·(v[j] − v[j+h])/2. R is not sparse, so it is
//! left out: CoeffToSlot computes R·U^{−1} = B_1^{−1}·…·B_{log p}^{−1} (the coefficients in
//! bit-reversed order, harmless since EvalMod acts slot-wise) and SlotToCoeff computes
//! U·R = B_{log p}·…·B_1 on that order. With a level budget b the log p stages are cut into b
//! consecutive groups and each group is multiplied out into one [`LinearTransform`] (a group
//! of r stages has at most 2^{r+1} − 1 diagonals), evaluated by BSGS in one level: fewer
//! levels cost more rotations.
//!
//! The stages are built on a period P that is p or 2p: blocks of len ≤ p never wrap, so the
//! same butterflies act on both halves of a 2p-periodic vector (used by bootstrapping to pack
//! real and imaginary parts of sparse slots side by side).

#![expect(
    clippy::indexing_slicing,
    reason = "butterfly indices stay inside blocks of the period, the length of every diagonal"
)]

use std::collections::BTreeMap;
use std::ops::Add;

use super::encoding::Complex;
use super::lintrans::LinearTransform;
use super::CkksError;

/// ξ_j of the butterfly stage of block length `len`: e^{2πi·(5^j mod 4len)/(4len)}.
fn twiddle(j: usize, len: usize) -> Complex {
    let lenq = 4 * len;
    let mut g = 1usize;
    for _ in 0..j {
        g = g * 5 % lenq;
    }
    Complex::expi(std::f64::consts::TAU * g as f64 / lenq as f64)
}

/// The butterfly stage B_s (forward) or B_s^{−1} (inverse, including the factor 1/2) on
/// period `period`.
fn stage(s: u32, period: usize, inverse: bool) -> Result<LinearTransform, CkksError> {
    let len = 1usize << s;
    let h = len / 2;
    let zero = vec![Complex::default(); period];
    let mut d0 = zero.clone();
    let mut dp = zero.clone();
    let mut dm = zero;
    let half = Complex::new(0.5, 0.0);
    for block in (0..period).step_by(len) {
        for j in 0..h {
            let (r, r2) = (block + j, block + j + h);
            let xi = twiddle(j, len);
            if inverse {
                // out[r] = (v[r] + v[r+h])/2, out[r+h] = ξ̄(v[r] − v[r+h])/2.
                d0[r] = half;
                dp[r] = half;
                dm[r2] = xi.conj().scale(0.5);
                d0[r2] = xi.conj().scale(-0.5);
            } else {
                // out[r] = v[r] + ξ v[r+h], out[r+h] = v[r] − ξ v[r+h].
                d0[r] = Complex::new(1.0, 0.0);
                dp[r] = xi;
                dm[r2] = Complex::new(1.0, 0.0);
                d0[r2] = xi.scale(-1.0);
            }
        }
    }
    let mut diags: BTreeMap<usize, Vec<Complex>> = BTreeMap::new();
    diags.insert(0, d0);
    // Diagonal +h, and −h ≡ P − h (the same index when h = P/2: rows do not overlap).
    for (k, d) in [(h % period, dp), ((period - h) % period, dm)] {
        let e = diags
            .entry(k)
            .or_insert_with(|| vec![Complex::default(); period]);
        for (x, y) in e.iter_mut().zip(d) {
            *x = x.add(y);
        }
    }
    LinearTransform::new(period, diags)
}

/// Cut `stages` (in the order applied) into `budget` consecutive groups, as equal as
/// possible (the earlier groups one stage longer), each multiplied out.
fn grouped(stages: Vec<LinearTransform>, budget: usize) -> Result<Vec<LinearTransform>, CkksError> {
    let n = stages.len();
    if budget == 0 || budget > n {
        return Err(CkksError::BadParam {
            what: "DFT level budget".into(),
            value: budget.to_string(),
            valid: format!("1..={n} (log2 of the number of slots)"),
        });
    }
    let mut out = Vec::with_capacity(budget);
    let mut it = stages.into_iter();
    for g in 0..budget {
        let size = n / budget + usize::from(g < n % budget);
        let mut acc: Option<LinearTransform> = None;
        for st in it.by_ref().take(size) {
            acc = Some(match acc {
                None => st,
                Some(a) => a.then(&st)?,
            });
        }
        if let Some(a) = acc {
            out.push(a);
        }
    }
    Ok(out)
}

fn check_slots(slots: usize, period: usize) -> Result<u32, CkksError> {
    if slots < 2 || !slots.is_power_of_two() || (period != slots && period != 2 * slots) {
        return Err(CkksError::BadParam {
            what: "DFT slots / period".into(),
            value: format!("{slots} / {period}"),
            valid: "slots a power of two ≥ 2, period = slots or 2·slots".into(),
        });
    }
    Ok(slots.trailing_zeros())
}

/// CoeffToSlot: R·U^{−1} = B_1^{−1}·…·B_{log p}^{−1} for p = `slots`, on period `period`
/// (p or 2p), as `budget` transforms in the order they are applied (module docs).
///
/// # Errors
/// [`CkksError::BadParam`] for a bad slot count, period or budget (1..=log₂ p).
pub fn coeff_to_slot_stages(
    slots: usize,
    period: usize,
    budget: usize,
) -> Result<Vec<LinearTransform>, CkksError> {
    stages(slots, period, budget, true)
}

/// SlotToCoeff: U·R = B_{log p}·…·B_1 for p = `slots`, on period `period`, as `budget`
/// transforms in the order they are applied.
///
/// # Errors
/// As [`coeff_to_slot_stages`].
pub fn slot_to_coeff_stages(
    slots: usize,
    period: usize,
    budget: usize,
) -> Result<Vec<LinearTransform>, CkksError> {
    stages(slots, period, budget, false)
}

/// The butterfly stages in the order applied (inverse: B_{log p}^{−1} first; forward: B_1
/// first), grouped under the budget.
fn stages(
    slots: usize,
    period: usize,
    budget: usize,
    inverse: bool,
) -> Result<Vec<LinearTransform>, CkksError> {
    let log = check_slots(slots, period)?;
    let order: Vec<u32> = if inverse {
        (1..=log).rev().collect()
    } else {
        (1..=log).collect()
    };
    let st = order
        .into_iter()
        .map(|s| stage(s, period, inverse))
        .collect::<Result<Vec<_>, _>>()?;
    grouped(st, budget)
}

/// The bit-reversal permutation of 0..n (n a power of two): i ↦ brv(i).
pub fn bit_reverse_index(i: usize, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    i.reverse_bits() >> (usize::BITS - n.trailing_zeros())
}
