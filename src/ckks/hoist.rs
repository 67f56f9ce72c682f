//! Hoisted Galois automorphisms (Halevi–Shoup 2018, "Faster homomorphic linear
//! transformations in HElib"; Bossuat et al. 2021 §4): many rotations of one ciphertext share
//! one key-switching decomposition of c_1.
//!
//! A rotation by r applies σ_g: X ↦ X^g (g = 5^r mod 2N) to (c_0, c_1), then key-switches
//! σ_g(c_1) from σ_g(s) back to s. Hybrid key switching first decomposes its input into the
//! digits [·]_{Q_j} and extends each to QP by fast basis conversion ("ModUp"): the expensive,
//! key-independent part. σ_g acts coefficient-wise up to sign and permutes the NTT entries,
//! so it commutes with the decomposition: ModUp(σ_g(c_1)) = σ_g(ModUp(c_1)) limb by limb (the
//! conversion error, a multiple Q_j·u_j, is mapped to Q_j·σ_g(u_j), which the key's P·Q/Q_j
//! structure still cancels). Hence one ModUp of c_1, then for each g only a permuted inner
//! product with the key of g and a ModDown. [`Evaluator::rotate`] is this path with one step.
//!
//! Also here: complex conjugation of every slot (σ_{2N−1}) and multiplication of every slot by
//! i (the monomial X^{N/2}: ζ_j^{N/2} = i^{5^j} = i), both used by bootstrapping.

#![expect(
    clippy::indexing_slicing,
    reason = "limb indices < number of primes by construction"
)]

use super::eval::{Ciphertext, Evaluator};
use super::keys::KeySwitchKey;
use super::ring::Limbs;
use super::CkksError;

impl Evaluator {
    /// Left rotations of `a` by each of `steps` (negative: right) with one shared
    /// decomposition of c_1 (module docs). Step 0 (mod N/2) returns `a` unchanged.
    ///
    /// # Errors
    /// [`CkksError::MissingGaloisKey`] for a step without key; [`CkksError::Size`] for an
    /// unrelinearised ciphertext; [`CkksError::Level`] when a key was made for a lower level.
    pub fn rotate_hoisted(
        &self,
        a: &Ciphertext,
        steps: &[i64],
    ) -> Result<Vec<Ciphertext>, CkksError> {
        let enc = self.context().encoder();
        let elements: Vec<usize> = steps.iter().map(|&r| enc.galois_element(r)).collect();
        for (&g, &step) in elements.iter().zip(steps) {
            if g != 1 && !self.galois.has_element(g) {
                return Err(CkksError::MissingGaloisKey {
                    step,
                    available: format!("{:?}", self.galois.steps()),
                });
            }
        }
        self.automorphisms_hoisted(a, &elements)
    }

    /// Complex conjugation of every slot: σ_{2N−1} (X ↦ X^{−1}) with its key.
    ///
    /// # Errors
    /// [`CkksError::MissingGaloisKey`] (step reported as 0) without a conjugation key; as
    /// [`Evaluator::rotate_hoisted`].
    pub fn conjugate(&self, a: &Ciphertext) -> Result<Ciphertext, CkksError> {
        let g = 2 * self.ring().n - 1;
        if !self.galois.has_element(g) {
            return Err(CkksError::MissingGaloisKey {
                step: 0,
                available: "no conjugation key (Galois element 2N − 1) was generated".into(),
            });
        }
        let mut v = self.automorphisms_hoisted(a, &[g])?;
        v.pop().ok_or(CkksError::BadPlan { op: 0 })
    }

    /// Every slot multiplied by i^k: the ciphertext times the monomial X^{k·N/2} (exact, no
    /// level, no change of scale).
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`].
    pub fn mul_i_pow(&self, a: &Ciphertext, k: i64) -> Result<Ciphertext, CkksError> {
        self.check(a)?;
        let ring = self.ring();
        let n = ring.n;
        // X^{k·N/2} = ±X^{(k mod 2)·N/2} since X^N = −1.
        let e = usize::try_from((k.rem_euclid(4)) as u64).unwrap_or(0) * (n / 2);
        let mut mono = vec![0i64; n];
        mono[e % n] = if e >= n { -1 } else { 1 };
        let q = ring.q_idx(a.level);
        let m = ring.signed_to_ntt(&mono, &q);
        let mut out = self.copy(a);
        for c in &mut out.c {
            ring.mul_assign(c, &m, &q);
        }
        self.pool().put_all(m);
        Ok(out)
    }

    /// [`CkksError::Size`] unless `a` is relinearised (two components); as
    /// [`Evaluator::check`].
    fn check_rotatable(&self, a: &Ciphertext) -> Result<(), CkksError> {
        self.check(a)?;
        if a.c.len() != 2 {
            return Err(CkksError::Size {
                op: "rotate".into(),
                got: a.c.len(),
                expected: 2,
            });
        }
        Ok(())
    }

    /// The Galois key of element g, checked to serve inputs at `level` (`step`: the rotation
    /// it is for, reported when the key is missing).
    fn galois_key(&self, g: usize, level: usize, step: i64) -> Result<&KeySwitchKey, CkksError> {
        let key = self
            .galois
            .keys
            .get(&g)
            .ok_or_else(|| CkksError::MissingGaloisKey {
                step,
                available: format!("{:?}", self.galois.steps()),
            })?;
        if key.level < level {
            return Err(CkksError::Level {
                op: format!("automorphism X -> X^{g}"),
                got: level,
                expected: format!("≤ {} (the level its key was made for)", key.level),
            });
        }
        Ok(key)
    }

    /// The left rotation of `a` by `step` with its key switch stopped before the ModDown:
    /// σ_g(c_0) over Q_ℓ and the key-switched pair over Q_ℓ·P ([`Evaluator::key_switch_ext_qp`]),
    /// so that rot(a, step) = (σ_g(c_0), 0) + ModDown(pair). Rotations of different
    /// ciphertexts summed this way share one ModDown (the giant steps of
    /// `lintrans`: Bossuat et al. 2021, §4.2, "double hoisting").
    ///
    /// # Errors
    /// As [`Evaluator::rotate`].
    pub(super) fn rotate_before_mod_down(
        &self,
        a: &Ciphertext,
        step: i64,
    ) -> Result<(Limbs, (Limbs, Limbs)), CkksError> {
        self.check_rotatable(a)?;
        let ring = self.ring();
        let g = self.context().encoder().galois_element(step);
        let key = self.galois_key(g, a.level, step)?;
        let ext = self.decompose(&a.c[1], a.level);
        let perm = ring.galois_perm(g);
        let pair = self.key_switch_ext_qp(&ext, a.level, key, Some(&perm));
        Ok((ring.permute(&a.c[0], &perm), pair))
    }

    /// σ_g(a) for each Galois element g (1 = identity) with one shared decomposition.
    fn automorphisms_hoisted(
        &self,
        a: &Ciphertext,
        elements: &[usize],
    ) -> Result<Vec<Ciphertext>, CkksError> {
        self.check_rotatable(a)?;
        let ring = self.ring();
        let q = ring.q_idx(a.level);
        let mut ext = None;
        let mut out = Vec::with_capacity(elements.len());
        for &g in elements {
            if g == 1 {
                out.push(self.copy(a));
                continue;
            }
            let key = self.galois_key(g, a.level, 0)?;
            let ext = match &ext {
                Some(e) => e,
                None => ext.insert(self.decompose(&a.c[1], a.level)),
            };
            let perm = ring.galois_perm(g);
            let (k0, k1) = self.key_switch_ext(ext, a.level, key, Some(&perm));
            let mut c0 = ring.permute(&a.c[0], &perm);
            ring.add_assign(&mut c0, &k0, &q);
            self.pool().put_all(k0);
            out.push(Ciphertext {
                c: vec![c0, k1],
                level: a.level,
                scale: a.scale,
                params_id: a.params_id,
            });
        }
        Ok(out)
    }
}
