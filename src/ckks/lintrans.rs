//! Plaintext matrices applied to the slots of a ciphertext, by diagonals with the baby-step
//! giant-step (BSGS) algorithm (Halevi–Shoup 2014, "Algorithms in HElib" §4; Han–Ki 2020;
//! Bossuat et al. 2021 §4).
//!
//! A complex P×P matrix M acting on P-periodic slot vectors (P a power of two dividing N/2:
//! the N/2 slots repeat a P-vector) is stored by its non-zero generalised diagonals
//! D_k[r] = M[r][(r + k) mod P], so that
//!
//! M·x = Σ_k D_k ⊙ rot(x, k),  rot(x, k)[r] = x[(r + k) mod P]  (left rotation by k).
//!
//! BSGS: write k = g + b with g a multiple of n_1 and 0 ≤ b < n_1. Since
//! D_k ⊙ rot(x, g + b) = rot(rot(D_k, −g) ⊙ rot(x, b), g),
//!
//! M·x = Σ_g rot( Σ_b rot(D_{g+b}, −g) ⊙ rot(x, b), g ),
//!
//! which needs the baby rotations rot(x, b) (all of one ciphertext: hoisted, one
//! decomposition) and one rotation per giant step g: |babies| + |giants| key switches instead
//! of one per diagonal. n_1 is the power of two minimising that count for the actual set of
//! diagonals. The plaintext products are taken without rescaling (all at the same scale
//! s·S), summed, rotated and summed again, and rescaled once: one level per transform, the
//! output at scale exactly Δ_{ℓ−1} (S = q_ℓ·Δ_{ℓ−1}/s as for constants, module docs of `ckks`).

#![expect(
    clippy::indexing_slicing,
    reason = "diagonal indices are reduced mod the period, which is every diagonal's length"
)]

use std::collections::BTreeMap;
use std::ops::{Add, Mul};

use super::encoding::Complex;
use super::eval::{Ciphertext, Evaluator};
use super::CkksError;

/// A complex matrix on P-periodic slot vectors, by its non-zero generalised diagonals (module
/// docs).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearTransform {
    period: usize,
    diags: BTreeMap<usize, Vec<Complex>>,
}

impl LinearTransform {
    /// The matrix with diagonals `diags` (index k ∈ 0..P → D_k of length P).
    ///
    /// # Errors
    /// [`CkksError::BadParam`] when P is not a power of two, an index is ≥ P or a diagonal
    /// does not have P entries.
    pub fn new(period: usize, diags: BTreeMap<usize, Vec<Complex>>) -> Result<Self, CkksError> {
        if !period.is_power_of_two() {
            return Err(CkksError::BadParam {
                what: "linear transform period".into(),
                value: period.to_string(),
                valid: "a power of two dividing N/2".into(),
            });
        }
        for (k, d) in &diags {
            if *k >= period || d.len() != period {
                return Err(CkksError::BadParam {
                    what: format!("diagonal {k}"),
                    value: format!("{} entries", d.len()),
                    valid: format!("index < {period} and {period} entries"),
                });
            }
        }
        Ok(Self { period, diags })
    }

    /// The matrix with rows `rows` (P rows of P entries); all-zero diagonals are omitted.
    ///
    /// # Errors
    /// As [`LinearTransform::new`]; [`CkksError::BadParam`] for a row of another length.
    pub fn from_dense(rows: &[Vec<Complex>]) -> Result<Self, CkksError> {
        let p = rows.len();
        if let Some((r, row)) = rows.iter().enumerate().find(|(_, row)| row.len() != p) {
            return Err(CkksError::BadParam {
                what: format!("matrix row {r}"),
                value: format!("{} entries", row.len()),
                valid: format!("{p} entries (a square matrix)"),
            });
        }
        let mut diags = BTreeMap::new();
        for k in 0..p {
            let d: Vec<Complex> = (0..p).map(|r| rows[r][(r + k) % p]).collect();
            if d.iter().any(|z| z.re != 0.0 || z.im != 0.0) {
                diags.insert(k, d);
            }
        }
        Self::new(p, diags)
    }

    /// The period P (size of the matrix).
    pub fn period(&self) -> usize {
        self.period
    }

    /// Indices of the non-zero diagonals.
    pub fn diagonal_indices(&self) -> Vec<usize> {
        self.diags.keys().copied().collect()
    }

    /// M·x in plaintext (x of length P).
    pub fn apply(&self, x: &[Complex]) -> Vec<Complex> {
        let p = self.period;
        let mut y = vec![Complex::default(); p];
        for (k, d) in &self.diags {
            for r in 0..p {
                y[r] = y[r].add(d[r].mul(x.get((r + k) % p).copied().unwrap_or_default()));
            }
        }
        y
    }

    /// The product `next`·`self` (self applied first): (A·B)_{a+b}[r] += A_a[r]·B_b[r + a].
    /// Diagonals whose entries all fall below 2^−60 of the largest entry (cancellation
    /// residue, below any plaintext scale's resolution) are dropped.
    ///
    /// # Errors
    /// [`CkksError::BadParam`] when the periods differ.
    pub fn then(&self, next: &LinearTransform) -> Result<Self, CkksError> {
        let p = self.period;
        if next.period != p {
            return Err(CkksError::BadParam {
                what: "period of the composed transform".into(),
                value: next.period.to_string(),
                valid: format!("{p} (the first transform's period)"),
            });
        }
        let mut out: BTreeMap<usize, Vec<Complex>> = BTreeMap::new();
        for (a, da) in &next.diags {
            for (b, db) in &self.diags {
                let d = out
                    .entry((a + b) % p)
                    .or_insert_with(|| vec![Complex::default(); p]);
                for r in 0..p {
                    d[r] = d[r].add(da[r].mul(db[(r + a) % p]));
                }
            }
        }
        let max = out
            .values()
            .flat_map(|d| d.iter().map(|z| z.abs()))
            .fold(0.0, f64::max);
        out.retain(|_, d| d.iter().any(|z| z.abs() > max * 2f64.powi(-60)));
        Self::new(p, out)
    }

    /// Every entry multiplied by c.
    pub fn scaled(&self, c: Complex) -> Self {
        Self {
            period: self.period,
            diags: self
                .diags
                .iter()
                .map(|(k, d)| (*k, d.iter().map(|z| z.mul(c)).collect()))
                .collect(),
        }
    }

    /// Rows multiplied by the vector v (diag(v)·M).
    pub(crate) fn rows_scaled(&self, v: &[Complex]) -> Self {
        Self {
            period: self.period,
            diags: self
                .diags
                .iter()
                .map(|(k, d)| {
                    (
                        *k,
                        d.iter()
                            .zip(v.iter().cycle())
                            .map(|(z, w)| z.mul(*w))
                            .collect(),
                    )
                })
                .collect(),
        }
    }

    /// The baby-step size n_1 (a power of two ≤ P) minimising the number of non-zero baby
    /// and giant rotations; on ties the larger n_1 (baby rotations are hoisted, cheaper).
    pub fn baby_step(&self) -> usize {
        let mut best = (usize::MAX, 1);
        let mut n1 = 1;
        while n1 <= self.period {
            let (b, g) = self.split(n1);
            let cost = b.len() + g.len();
            if cost <= best.0 {
                best = (cost, n1);
            }
            n1 *= 2;
        }
        best.1
    }

    /// Non-zero baby and giant steps for baby-step size n1.
    fn split(&self, n1: usize) -> (Vec<usize>, Vec<usize>) {
        let mut babies: Vec<usize> = self.diags.keys().map(|k| k % n1).collect();
        let mut giants: Vec<usize> = self.diags.keys().map(|k| k - k % n1).collect();
        for v in [&mut babies, &mut giants] {
            v.sort_unstable();
            v.dedup();
            v.retain(|&x| x != 0);
        }
        (babies, giants)
    }

    /// The left-rotation steps whose Galois keys [`Evaluator::linear_transform`] needs.
    pub fn rotation_steps(&self) -> Vec<i64> {
        let (b, g) = self.split(self.baby_step());
        let mut v: Vec<i64> = b.into_iter().chain(g).map(|x| x as i64).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

impl Evaluator {
    /// M·x on the slots of `a` (module docs: BSGS, hoisted baby steps, one rescaling). The
    /// output is at level ℓ − 1 and scale Δ_{ℓ−1}.
    ///
    /// # Errors
    /// [`CkksError::BadParam`] when the period does not divide N/2; [`CkksError::Level`] at
    /// level 0; [`CkksError::MissingGaloisKey`]; as the evaluator's operations.
    pub fn linear_transform(
        &self,
        a: &Ciphertext,
        m: &LinearTransform,
    ) -> Result<Ciphertext, CkksError> {
        let slots = self.context().params().slots();
        let p = m.period;
        if p > slots || !slots.is_multiple_of(p) {
            return Err(CkksError::BadParam {
                what: "linear transform period".into(),
                value: p.to_string(),
                valid: format!("a power of two dividing N/2 = {slots}"),
            });
        }
        let s = self.next_factor(a, "linear_transform")?;
        let n1 = m.baby_step();
        let (babies, _) = m.split(n1);
        let mut steps = vec![0i64];
        steps.extend(babies.iter().map(|&b| b as i64));
        let rotated = self.rotate_hoisted(a, &steps)?;
        let baby: BTreeMap<usize, &Ciphertext> = std::iter::once(0usize)
            .chain(babies.iter().copied())
            .zip(rotated.iter())
            .collect();
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &k in m.diags.keys() {
            groups.entry(k - k % n1).or_default().push(k);
        }
        let ctx = self.context();
        let mut acc: Option<Ciphertext> = None;
        for (g, ks) in groups {
            let mut inner: Option<Ciphertext> = None;
            for k in ks {
                let d = &m.diags[&k];
                // rot(D_k, −g)[r] = D_k[(r − g) mod P].
                let shifted: Vec<Complex> = (0..p).map(|r| d[(r + p - g) % p]).collect();
                let pt = ctx.encode_complex(&shifted, a.level(), s)?;
                let x = baby.get(&(k % n1)).ok_or(CkksError::BadPlan { op: k })?;
                let t = self.mul_plain_lazy(x, &pt)?;
                match &mut inner {
                    Some(i) => self.add_assign(i, &t)?,
                    None => inner = Some(t),
                }
            }
            let Some(mut inner) = inner else { continue };
            if g != 0 {
                inner = self.rotate(&inner, g as i64)?;
            }
            match &mut acc {
                Some(x) => self.add_assign(x, &inner)?,
                None => acc = Some(inner),
            }
        }
        match acc {
            Some(x) => self.rescale(&x),
            // The zero matrix: 0·a, still one level down at the nominal scale.
            None => self.mul_const(a, 0.0),
        }
    }
}
