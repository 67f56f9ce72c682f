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
//! of one per diagonal. The giant-step rotations share their ModDown (the second hoisting of
//! Bossuat et al. 2021, §4.2): rot(y_g, g) = (σ_g(c_0), 0) + ⌊(Σ_j ModUp_j(σ_g(c_1))·k_{g,j})/P⌉
//! and ModDown (division by P over Q·P, rounded) is linear up to rounding, so the key-switched
//! pairs of all giant steps are summed over Q·P and divided by P once: one ModDown of two
//! polynomials per transform instead of one per giant step. Before the rescale the sum differs
//! from one ModDown per rotation by rounding only, at most (giants)·(k + 1)/2 per coefficient
//! (k special primes); the rescale's rounding of x/q_ℓ absorbs that unless it carries x
//! across a rounding boundary (probability ≈ 2N·giants·(k + 1)/q_ℓ, below 2^−38 for N ≤ 2^16
//! and 60-bit q_ℓ), so the outputs are in practice bit-identical (tested). n_1 is the power of two minimising that count for the actual set of
//! diagonals. The plaintext products are taken without rescaling (all at the same scale
//! s·S), summed, rotated and summed again, and rescaled once: one level per transform, the
//! output at scale exactly Δ_{ℓ−1} (S = q_ℓ·Δ_{ℓ−1}/s as for constants, module docs of `ckks`).

#![expect(
    clippy::indexing_slicing,
    reason = "diagonal indices are reduced mod the period, which is every diagonal's length"
)]

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::{Add, Mul};

use rayon::prelude::*;

use super::encoding::Complex;
use super::eval::{check_scale, Ciphertext, CkksContext, Evaluator, Plaintext};
use super::ring::Limbs;
use super::CkksError;

/// Products of a baby-step sum reduced together (`Evaluator::mul_plain_sum_into`): at most
/// this many plaintexts encoded on the fly are held at once.
const PLAIN_BATCH: usize = 8;

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
    pub(crate) fn split(&self, n1: usize) -> (Vec<usize>, Vec<usize>) {
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

/// A [`LinearTransform`] with its baby-step giant-step plaintexts encoded once, for inputs at
/// one level ℓ and one scale s: the diagonal D_k becomes the NTT-form plaintext of
/// rot(D_k, −g) at level ℓ and scale S = q_ℓ·Δ_{ℓ−1}/s (module docs). Applying it
/// ([`Evaluator::linear_transform_encoded`]) gives the ciphertext of
/// [`Evaluator::linear_transform`] bit for bit, without re-encoding (one special FFT and ℓ + 1
/// NTTs per diagonal saved on every call).
#[derive(Clone)]
pub struct EncodedTransform {
    level: usize,
    input_scale: f64,
    period: usize,
    n1: usize,
    babies: Vec<usize>,
    /// Giant step g → (diagonal index k, plaintext of rot(D_k, −g)).
    groups: BTreeMap<usize, Vec<(usize, Plaintext)>>,
}

impl std::fmt::Debug for EncodedTransform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedTransform")
            .field("level", &self.level)
            .field("input_scale", &self.input_scale)
            .field("period", &self.period)
            .field("n1", &self.n1)
            .field("diagonals", &self.diagonals())
            .field("size_bytes", &self.size_bytes())
            .finish()
    }
}

impl EncodedTransform {
    /// The level ℓ of the inputs it applies to.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The scale s of the inputs it applies to.
    pub fn input_scale(&self) -> f64 {
        self.input_scale
    }

    /// Number of encoded diagonals.
    pub fn diagonals(&self) -> usize {
        self.groups.values().map(Vec::len).sum()
    }

    /// Bytes of the encoded plaintexts: diagonals × (ℓ + 1) limbs × N × 8.
    pub fn size_bytes(&self) -> u64 {
        self.groups
            .values()
            .flatten()
            .map(|(_, pt)| pt.limbs.iter().map(|l| 8 * l.len() as u64).sum::<u64>())
            .sum()
    }

    /// The model of [`EncodedTransform::size_bytes`] before encoding: `diagonals` plaintexts of
    /// ℓ + 1 limbs of N residues (8 bytes each).
    pub fn model_bytes(diagonals: usize, level: usize, n: usize) -> u64 {
        (diagonals * (level + 1) * n * 8) as u64
    }
}

impl CkksContext {
    /// Encode the BSGS plaintexts of `m` for inputs at `level` and scale `input_scale`
    /// ([`EncodedTransform`]; the same plaintexts [`Evaluator::linear_transform`] encodes on
    /// each call).
    ///
    /// # Errors
    /// [`CkksError::BadParam`] when the period does not divide N/2; [`CkksError::Level`] at
    /// level 0 or above L; [`CkksError::Encode`].
    pub fn encode_transform(
        &self,
        m: &LinearTransform,
        level: usize,
        input_scale: f64,
    ) -> Result<EncodedTransform, CkksError> {
        self.check_period(m)?;
        let s = self.rescale_factor(level, input_scale, "encode_transform")?;
        let n1 = m.baby_step();
        let (babies, _) = m.split(n1);
        let items: Vec<(usize, usize)> = m.diags.keys().map(|&k| (k - k % n1, k)).collect();
        let pts = items
            .par_iter()
            .map(|&(g, k)| Ok((g, k, self.encode_diagonal(m, k, g, level, s)?)))
            .collect::<Result<Vec<_>, CkksError>>()?;
        let mut groups: BTreeMap<usize, Vec<(usize, Plaintext)>> = BTreeMap::new();
        for (g, k, pt) in pts {
            groups.entry(g).or_default().push((k, pt));
        }
        Ok(EncodedTransform {
            level,
            input_scale,
            period: m.period,
            n1,
            babies,
            groups,
        })
    }

    /// The plaintext of rot(D_k, −g) at `level` and scale `s`.
    fn encode_diagonal(
        &self,
        m: &LinearTransform,
        k: usize,
        g: usize,
        level: usize,
        s: f64,
    ) -> Result<Plaintext, CkksError> {
        let p = m.period;
        let d = &m.diags[&k];
        // rot(D_k, −g)[r] = D_k[(r − g) mod P].
        let shifted: Vec<Complex> = (0..p).map(|r| d[(r + p - g) % p]).collect();
        self.encode_complex(&shifted, level, s)
    }

    /// [`CkksError::BadParam`] unless the period of `m` divides N/2.
    fn check_period(&self, m: &LinearTransform) -> Result<(), CkksError> {
        let slots = self.params().slots();
        let p = m.period;
        if p > slots || !slots.is_multiple_of(p) {
            return Err(CkksError::BadParam {
                what: "linear transform period".into(),
                value: p.to_string(),
                valid: format!("a power of two dividing N/2 = {slots}"),
            });
        }
        Ok(())
    }
}

impl Evaluator {
    /// M·x on the slots of `a` (module docs: BSGS, hoisted baby steps, one rescaling). The
    /// output is at level ℓ − 1 and scale Δ_{ℓ−1}. Encodes the diagonals on every call; see
    /// [`Evaluator::linear_transform_encoded`] for the same result from encoded ones.
    ///
    /// # Errors
    /// [`CkksError::BadParam`] when the period does not divide N/2; [`CkksError::Level`] at
    /// level 0; [`CkksError::MissingGaloisKey`]; as the evaluator's operations.
    pub fn linear_transform(
        &self,
        a: &Ciphertext,
        m: &LinearTransform,
    ) -> Result<Ciphertext, CkksError> {
        let ctx = self.context();
        ctx.check_period(m)?;
        let s = self.next_factor(a, "linear_transform")?;
        let n1 = m.baby_step();
        let (babies, _) = m.split(n1);
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &k in m.diags.keys() {
            groups.entry(k - k % n1).or_default().push(k);
        }
        let groups = groups.into_iter().map(|(g, ks)| {
            let pts = ks
                .into_iter()
                .map(move |k| Ok((k, Cow::Owned(ctx.encode_diagonal(m, k, g, a.level(), s)?))));
            (g, pts)
        });
        self.bsgs(a, n1, &babies, groups)
    }

    /// M·x with the plaintexts of an [`EncodedTransform`]: bit for bit the ciphertext of
    /// [`Evaluator::linear_transform`] with the same matrix.
    ///
    /// # Errors
    /// [`CkksError::Level`] or [`CkksError::Scale`] when `a` is not at the level and scale the
    /// transform was encoded for; as [`Evaluator::linear_transform`].
    pub fn linear_transform_encoded(
        &self,
        a: &Ciphertext,
        m: &EncodedTransform,
    ) -> Result<Ciphertext, CkksError> {
        self.check(a)?;
        if a.level() != m.level {
            return Err(CkksError::Level {
                op: "linear_transform_encoded".into(),
                got: a.level(),
                expected: format!("{} (the level the diagonals were encoded for)", m.level),
            });
        }
        if a.scale().to_bits() != m.input_scale.to_bits() {
            return Err(CkksError::Scale {
                op: "linear_transform_encoded".into(),
                got: a.scale().log2(),
                expected: m.input_scale.log2(),
            });
        }
        let groups = m.groups.iter().map(|(&g, pts)| {
            let pts = pts
                .iter()
                .map(|(k, pt)| Ok::<_, CkksError>((*k, Cow::Borrowed(pt))));
            (g, pts)
        });
        self.bsgs(a, m.n1, &m.babies, groups)
    }

    /// inner + Σ_j pt_j ⊙ x_j without rescaling (inner: None for 0), with the checks of
    /// [`Evaluator::mul_plain_lazy`] and [`Evaluator::mul_plain_add_assign`] (same level,
    /// every product at the scale of the first); bit for bit their result, with one modular
    /// reduction per residue for the whole batch.
    fn mul_plain_sum_into(
        &self,
        inner: &mut Option<Ciphertext>,
        batch: &[(&Ciphertext, Cow<'_, Plaintext>)],
    ) -> Result<(), CkksError> {
        let Some((x0, p0)) = batch.first() else {
            return Ok(());
        };
        let scale = inner.as_ref().map_or(x0.scale * p0.scale, |i| i.scale);
        let level = inner.as_ref().map_or(x0.level, |i| i.level);
        for (x, pt) in batch {
            self.check(x)?;
            self.context().check_params("plaintext", pt.params_id)?;
            if x.level != level || pt.level != level {
                return Err(CkksError::Level {
                    op: "mul_plain_add".into(),
                    got: x.level,
                    expected: format!("{level} (the accumulator's and the plaintext's)"),
                });
            }
            check_scale("mul_plain_add", x.scale * pt.scale, scale)?;
        }
        let ring = self.ring();
        let q = ring.q_idx(level);
        let size = batch.iter().map(|(x, _)| x.c.len()).max().unwrap_or(2);
        let acc = inner.get_or_insert_with(|| Ciphertext {
            c: Vec::new(),
            level,
            scale,
            params_id: x0.params_id,
        });
        while acc.c.len() < size {
            acc.c.push(self.zeros(q.len()));
        }
        for (ci, s) in acc.c.iter_mut().enumerate() {
            let terms: Vec<(&Limbs, &Limbs)> = batch
                .iter()
                .filter_map(|(x, pt)| x.c.get(ci).map(|c| (c, &pt.limbs)))
                .collect();
            ring.mul_add_many(s, &terms, &q);
        }
        Ok(())
    }

    /// The BSGS sum Σ_g rot(Σ_b pt_{g+b} ⊙ rot(a, b), g), rescaled once (module docs); the
    /// plaintexts come per giant step g as (diagonal index k, rot(D_k, −g) encoded).
    fn bsgs<'p, G, P>(
        &self,
        a: &Ciphertext,
        n1: usize,
        babies: &[usize],
        groups: G,
    ) -> Result<Ciphertext, CkksError>
    where
        G: Iterator<Item = (usize, P)>,
        P: Iterator<Item = Result<(usize, Cow<'p, Plaintext>), CkksError>>,
    {
        let mut steps = vec![0i64];
        steps.extend(babies.iter().map(|&b| b as i64));
        let rotated = self.rotate_hoisted(a, &steps)?;
        let baby: BTreeMap<usize, &Ciphertext> = std::iter::once(0usize)
            .chain(babies.iter().copied())
            .zip(rotated.iter())
            .collect();
        let ring = self.ring();
        let pool = self.pool();
        let q = ring.q_idx(a.level);
        let qp = ring.qp_idx(a.level);
        let mut acc: Option<Ciphertext> = None;
        // The giant steps' key-switched pairs over Q·P, summed before one ModDown.
        let mut acc_qp: Option<(Limbs, Limbs)> = None;
        for (g, pts) in groups {
            // Σ_b pt_{g+b} ⊙ rot(a, b), summed lazily (one modular reduction per batch of
            // PLAIN_BATCH products: `Ring::mul_add_many`); the batch bounds how many
            // plaintexts encoded on the fly are held at once.
            let mut inner: Option<Ciphertext> = None;
            let mut batch: Vec<(&Ciphertext, Cow<'p, Plaintext>)> = Vec::new();
            let mut pts = pts.peekable();
            while let Some(item) = pts.next() {
                let (k, pt) = item?;
                let x = baby.get(&(k % n1)).ok_or(CkksError::BadPlan { op: k })?;
                batch.push((x, pt));
                if batch.len() == PLAIN_BATCH || pts.peek().is_none() {
                    self.mul_plain_sum_into(&mut inner, &batch)?;
                    // Plaintexts encoded on the fly go back to the pool.
                    pool.put_all(batch.drain(..).flat_map(|(_, pt)| match pt {
                        Cow::Owned(pt) => pt.limbs,
                        Cow::Borrowed(_) => Vec::new(),
                    }));
                }
            }
            let Some(mut inner) = inner else { continue };
            if g != 0 {
                if self.giants_share_mod_down {
                    let (c0, (k0, k1)) = self.rotate_before_mod_down(&inner, g as i64)?;
                    pool.put_all(std::mem::replace(&mut inner.c[0], c0));
                    match &mut acc_qp {
                        Some((s0, s1)) => {
                            ring.add_assign(s0, &k0, &qp);
                            ring.add_assign(s1, &k1, &qp);
                            pool.put_all(k0.into_iter().chain(k1));
                        }
                        None => acc_qp = Some((k0, k1)),
                    }
                    // (σ_g(c_0), 0): the c_1 part lives in the pair.
                    match &mut acc {
                        Some(x) => {
                            ring.add_assign(&mut x.c[0], &inner.c[0], &q);
                            self.recycle(inner);
                        }
                        None => {
                            inner.c[1].iter_mut().for_each(|l| l.fill(0));
                            acc = Some(inner);
                        }
                    }
                    continue;
                }
                let rotated = self.rotate(&inner, g as i64)?;
                self.recycle(std::mem::replace(&mut inner, rotated));
            }
            match &mut acc {
                Some(x) => {
                    self.add_assign(x, &inner)?;
                    self.recycle(inner);
                }
                None => acc = Some(inner),
            }
        }
        for x in rotated {
            self.recycle(x);
        }
        if let (Some((s0, s1)), Some(x)) = (acc_qp, &mut acc) {
            let d0 = pool.guard(self.mod_down(s0, a.level));
            ring.add_assign(&mut x.c[0], &d0, &q);
            let d1 = pool.guard(self.mod_down(s1, a.level));
            ring.add_assign(&mut x.c[1], &d1, &q);
        }
        match acc {
            Some(x) => self.rescale_consumed(x),
            // The zero matrix: 0·a, still one level down at the nominal scale.
            None => self.mul_const(a, 0.0),
        }
    }
}
