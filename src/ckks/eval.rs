//! Ciphertexts, plaintexts and the homomorphic operations (always in NTT form).
//!
//! Level ℓ means the modulus Q_ℓ = q_0·…·q_ℓ; a fresh ciphertext is at level L at scale Δ_L.
//! Every operation checks that its operands belong to the same parameters, and that levels and
//! scales agree where they must (module docs of `ckks`: exact scale management).

#![expect(
    clippy::indexing_slicing,
    reason = "limb indices < number of primes by construction"
)]

use std::sync::Arc;

use rand::{CryptoRng, RngCore};
use rayon::prelude::*;

use super::encoding::{Complex, Encoder};
use super::keys::{GaloisKeys, KeySwitchKey, PublicKey, RelinKey, SecretKey};
use super::params::CkksParams;
use super::pool::{LimbPool, LimbPoolStats, Pooled};
use super::ring::{
    inv_mod, sample_gaussian, sample_ternary, with_scratch, Limbs, ModVal, Ring, CONV_BLOCK,
};
use super::CkksError;

/// Relative tolerance of scale comparisons (f64 rounding of the scale bookkeeping).
const SCALE_TOL: f64 = 1e-9;

/// Parameters with their precomputed ring and encoder.
#[derive(Debug)]
pub struct CkksContext {
    params: CkksParams,
    ring: Ring,
    encoder: Encoder,
}

impl CkksContext {
    /// Precompute the NTT tables and the encoder.
    ///
    /// # Errors
    /// [`CkksError::BadParam`] if a prime does not support the NTT.
    pub fn new(params: CkksParams) -> Result<Arc<Self>, CkksError> {
        let ring = Ring::new(&params)?;
        Ok(Self::with_ring(params, ring))
    }
    /// The context with a limb pool retaining at most `cap_bytes` (0: no recycling, every
    /// limb freshly allocated: the reference of the pool's tests).
    #[cfg(test)]
    pub(crate) fn with_pool_cap(
        params: CkksParams,
        cap_bytes: u64,
    ) -> Result<Arc<Self>, CkksError> {
        let mut ring = Ring::new(&params)?;
        ring.pool = LimbPool::new(ring.n, cap_bytes);
        Ok(Self::with_ring(params, ring))
    }

    /// What the limb pool of this context's evaluators did so far (`pool` module docs):
    /// limbs reused and freshly allocated, bytes retained and the cap.
    pub fn pool_stats(&self) -> LimbPoolStats {
        self.ring.pool.stats()
    }

    /// The context with fhe-math's native NTT only (the test oracle of the ring's NTT).
    #[cfg(test)]
    pub(crate) fn new_native(params: CkksParams) -> Result<Arc<Self>, CkksError> {
        let ring = Ring::new_native(&params)?;
        Ok(Self::with_ring(params, ring))
    }
    fn with_ring(params: CkksParams, ring: Ring) -> Arc<Self> {
        let encoder = Encoder::new(params.n());
        Arc::new(Self {
            params,
            ring,
            encoder,
        })
    }
    /// The parameters.
    pub fn params(&self) -> &CkksParams {
        &self.params
    }
    pub(crate) fn ring(&self) -> &Ring {
        &self.ring
    }
    /// The canonical-embedding encoder.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The factor S = q_ℓ·Δ_{ℓ−1}/s by which a level-ℓ ciphertext of scale s is multiplied so
    /// that rescaling lands exactly on Δ_{ℓ−1} (module docs of `ckks`).
    pub(super) fn rescale_factor(
        &self,
        level: usize,
        scale: f64,
        op: &str,
    ) -> Result<f64, CkksError> {
        if level == 0 {
            return Err(CkksError::Level {
                op: op.into(),
                got: 0,
                expected: "≥ 1 (a level to rescale by)".into(),
            });
        }
        self.check_level(op, level)?;
        let q = self.ring.moduli[level].val() as f64;
        Ok(q * self.params.scale(level - 1) / scale)
    }

    fn check_level(&self, op: &str, level: usize) -> Result<(), CkksError> {
        if level > self.params.max_level() {
            return Err(CkksError::Level {
                op: op.into(),
                got: level,
                expected: format!("0..={}", self.params.max_level()),
            });
        }
        Ok(())
    }

    /// Encode real values (≤ N/2) at `level` and `scale`.
    ///
    /// # Errors
    /// [`CkksError::Encode`], [`CkksError::Level`].
    pub fn encode(&self, values: &[f64], level: usize, scale: f64) -> Result<Plaintext, CkksError> {
        self.check_level("encode", level)?;
        let c = self.encoder.encode_coeffs(values, scale)?;
        Ok(Plaintext {
            limbs: self.ring.i128_to_ntt(&c, &self.ring.q_idx(level)),
            level,
            scale,
            params_id: self.params.id(),
        })
    }

    /// Encode p complex values (p a power of two ≤ N/2; the N/2 slots hold them repeated
    /// N/(2p) times) at `level` and `scale`.
    ///
    /// # Errors
    /// [`CkksError::Encode`], [`CkksError::Level`].
    pub fn encode_complex(
        &self,
        values: &[Complex],
        level: usize,
        scale: f64,
    ) -> Result<Plaintext, CkksError> {
        self.check_level("encode", level)?;
        let c = self.encoder.encode_complex_coeffs(values, scale)?;
        Ok(Plaintext {
            limbs: self.ring.i128_to_ntt(&c, &self.ring.q_idx(level)),
            level,
            scale,
            params_id: self.params.id(),
        })
    }

    /// Decode all N/2 complex slots of a plaintext (checks as [`CkksContext::decode`]).
    ///
    /// # Errors
    /// As [`CkksContext::decode`].
    pub fn decode_complex(&self, pt: &Plaintext) -> Result<Vec<Complex>, CkksError> {
        let cf = self.centred_coeffs(pt)?;
        Ok(self.encoder.decode_complex_coeffs(&cf, pt.scale))
    }

    /// Decode a plaintext (slots' real parts). Uses q_0 (centred) and checks it against q_1
    /// when the plaintext has level ≥ 1.
    ///
    /// # Errors
    /// [`CkksError::Overflow`] when |m| ≥ q_0/2 is detected; [`CkksError::ParamsMismatch`].
    pub fn decode(&self, pt: &Plaintext) -> Result<Vec<f64>, CkksError> {
        let cf = self.centred_coeffs(pt)?;
        Ok(self.encoder.decode_coeffs(&cf, pt.scale))
    }

    /// The coefficients of a plaintext, centred mod q_0 (checked against q_1 when present).
    fn centred_coeffs(&self, pt: &Plaintext) -> Result<Vec<f64>, CkksError> {
        self.check_params("plaintext", pt.params_id)?;
        let take = if pt.level >= 1 { 2 } else { 1 };
        let mut l: Limbs = pt.limbs[..take].to_vec();
        let idx: Vec<usize> = (0..take).collect();
        self.ring.to_coeffs(&mut l, &idx);
        let q0 = self.ring.moduli[0].val();
        let half = q0 / 2;
        let centred: Vec<i64> = l[0]
            .iter()
            .map(|&v| {
                if v > half {
                    v as i64 - q0 as i64
                } else {
                    v as i64
                }
            })
            .collect();
        if take == 2 {
            let m1 = &self.ring.moduli[1];
            let ok = centred
                .iter()
                .zip(&l[1])
                .all(|(&c, &r)| m1.reduce_vec_i64(&[c]).first().copied() == Some(r));
            if !ok {
                return Err(CkksError::Overflow {
                    log_scale: pt.scale.log2(),
                    log_half_q0: (half as f64).log2(),
                });
            }
        }
        Ok(centred.iter().map(|&c| c as f64).collect())
    }

    pub(super) fn check_params(&self, what: &str, id: u64) -> Result<(), CkksError> {
        if id != self.params.id() {
            return Err(CkksError::ParamsMismatch {
                what: what.into(),
                got: id,
                expected: self.params.id(),
            });
        }
        Ok(())
    }

    /// Public-key encryption at the top level L: (b·v + e_0 + m, a·v + e_1), v ternary.
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`]; [`CkksError::Level`] unless the plaintext is at level L.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        pk: &PublicKey,
        pt: &Plaintext,
        rng: &mut R,
    ) -> Result<Ciphertext, CkksError> {
        self.check_params("public key", pk.params_id)?;
        self.check_params("plaintext", pt.params_id)?;
        let level = pt.level;
        let q = self.ring.q_idx(level);
        let v = self
            .ring
            .signed_to_ntt(&sample_ternary(self.ring.n, rng), &q);
        let e0 = self
            .ring
            .signed_to_ntt(&sample_gaussian(self.ring.n, rng), &q);
        let e1 = self
            .ring
            .signed_to_ntt(&sample_gaussian(self.ring.n, rng), &q);
        let mut c0: Limbs = pk.b[..q.len()].to_vec();
        self.ring.mul_assign(&mut c0, &v, &q);
        self.ring.add_assign(&mut c0, &e0, &q);
        self.ring.add_assign(&mut c0, &pt.limbs, &q);
        let mut c1: Limbs = pk.a[..q.len()].to_vec();
        self.ring.mul_assign(&mut c1, &v, &q);
        self.ring.add_assign(&mut c1, &e1, &q);
        Ok(Ciphertext {
            c: vec![c0, c1],
            level,
            scale: pt.scale,
            params_id: self.params.id(),
        })
    }

    /// Secret-key encryption: (−a·s + e + m, a), a uniform.
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`].
    pub fn encrypt_sk<R: RngCore + CryptoRng>(
        &self,
        sk: &SecretKey,
        pt: &Plaintext,
        rng: &mut R,
    ) -> Result<Ciphertext, CkksError> {
        self.check_params("secret key", sk.params_id)?;
        self.check_params("plaintext", pt.params_id)?;
        let q = self.ring.q_idx(pt.level);
        let a = self.ring.uniform(&q, rng);
        let e = self
            .ring
            .signed_to_ntt(&sample_gaussian(self.ring.n, rng), &q);
        let mut c0 = a.clone();
        self.ring.mul_assign(&mut c0, &sk.ntt[..q.len()], &q);
        self.ring.neg_assign(&mut c0, &q);
        self.ring.add_assign(&mut c0, &e, &q);
        self.ring.add_assign(&mut c0, &pt.limbs, &q);
        Ok(Ciphertext {
            c: vec![c0, a],
            level: pt.level,
            scale: pt.scale,
            params_id: self.params.id(),
        })
    }

    /// Decryption: m = Σ_i c_i·s^i.
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`].
    pub fn decrypt(&self, sk: &SecretKey, ct: &Ciphertext) -> Result<Plaintext, CkksError> {
        self.check_params("secret key", sk.params_id)?;
        self.check_params("ciphertext", ct.params_id)?;
        let q = self.ring.q_idx(ct.level);
        let s: Limbs = sk.ntt[..q.len()].to_vec();
        let mut acc: Limbs = ct.c[ct.c.len() - 1].clone();
        for ci in ct.c.iter().rev().skip(1) {
            self.ring.mul_assign(&mut acc, &s, &q);
            self.ring.add_assign(&mut acc, ci, &q);
        }
        Ok(Plaintext {
            limbs: acc,
            level: ct.level,
            scale: ct.scale,
            params_id: ct.params_id,
        })
    }

    /// Decrypt and decode.
    ///
    /// # Errors
    /// As [`CkksContext::decrypt`] and [`CkksContext::decode`].
    pub fn decrypt_decode(&self, sk: &SecretKey, ct: &Ciphertext) -> Result<Vec<f64>, CkksError> {
        self.decode(&self.decrypt(sk, ct)?)
    }
}

/// An encoded plaintext at a level and scale (NTT form).
#[derive(Debug, Clone)]
pub struct Plaintext {
    pub(crate) limbs: Limbs,
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) params_id: u64,
}

impl Plaintext {
    /// Level.
    pub fn level(&self) -> usize {
        self.level
    }
    /// Scale Δ.
    pub fn scale(&self) -> f64 {
        self.scale
    }
}

/// A ciphertext (c_0, c_1[, c_2]) at a level and scale, NTT form.
#[derive(Debug, Clone)]
pub struct Ciphertext {
    pub(crate) c: Vec<Limbs>,
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) params_id: u64,
}

impl Ciphertext {
    /// Level ℓ (modulus q_0·…·q_ℓ).
    pub fn level(&self) -> usize {
        self.level
    }
    /// Scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }
    /// Number of components (2, or 3 before relinearisation).
    pub fn size(&self) -> usize {
        self.c.len()
    }
    /// Bytes held.
    pub fn size_bytes(&self) -> usize {
        self.c
            .iter()
            .map(|l| l.iter().map(|v| 8 * v.len()).sum::<usize>())
            .sum()
    }
}

/// The homomorphic evaluator: parameters plus evaluation keys of one key set.
#[derive(Debug, Clone)]
pub struct Evaluator {
    pub(super) ctx: Arc<CkksContext>,
    relin: Option<RelinKey>,
    pub(super) galois: GaloisKeys,
    /// Linear transforms sum their giant-step rotations before one shared ModDown
    /// (`lintrans` module docs); false only in the tests' reference (one ModDown per
    /// rotation).
    pub(super) giants_share_mod_down: bool,
}

impl Evaluator {
    /// An evaluator with the given keys.
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`] for a key of other parameters, [`CkksError::KeyMismatch`]
    /// when the relinearisation and Galois keys come from different secrets.
    pub fn new(
        ctx: Arc<CkksContext>,
        relin: Option<RelinKey>,
        galois: GaloisKeys,
    ) -> Result<Self, CkksError> {
        let mut key_id = None;
        let keys = relin
            .iter()
            .map(|r| ("relinearisation key", &r.0))
            .chain(galois.keys.values().map(|k| ("Galois key", k)))
            .chain(
                galois
                    .encapsulation
                    .iter()
                    .map(|e| ("encapsulation key", e.to_dense_key())),
            );
        for (what, k) in keys {
            ctx.check_params(what, k.params_id)?;
            match key_id {
                None => key_id = Some(k.key_id),
                Some(id) if id != k.key_id => {
                    return Err(CkksError::KeyMismatch {
                        what: what.into(),
                        got: k.key_id,
                        expected: id,
                    })
                }
                Some(_) => {}
            }
        }
        Ok(Self {
            ctx,
            relin,
            galois,
            giants_share_mod_down: true,
        })
    }

    /// The same evaluator with one ModDown per giant-step rotation in linear transforms: the
    /// reference the shared ModDown is tested against.
    #[cfg(test)]
    pub(crate) fn with_giant_mod_downs(mut self) -> Self {
        self.giants_share_mod_down = false;
        self
    }

    /// The context.
    pub fn context(&self) -> &Arc<CkksContext> {
        &self.ctx
    }

    /// The Galois keys.
    pub fn galois_keys(&self) -> &GaloisKeys {
        &self.galois
    }

    pub(super) fn ring(&self) -> &Ring {
        &self.ctx.ring
    }

    /// The pool of recycled limbs (`pool` module docs) of this evaluator's ring.
    pub(super) fn pool(&self) -> &LimbPool {
        &self.ctx.ring.pool
    }

    /// A copy of `a` whose limbs come from the pool (the same ciphertext as `a.clone()`).
    pub(super) fn copy(&self, a: &Ciphertext) -> Ciphertext {
        Ciphertext {
            c: a.c.iter().map(|p| self.pool().copy_limbs(p)).collect(),
            level: a.level,
            scale: a.scale,
            params_id: a.params_id,
        }
    }

    /// Give the limbs of a ciphertext that is no longer needed back to the limb pool of this
    /// evaluator's context (`pool` module docs), so that later operations reuse them instead of
    /// allocating (dropping it frees them instead).
    pub fn recycle(&self, a: Ciphertext) {
        self.pool().put_all(a.c.into_iter().flatten());
    }

    /// A polynomial of `limbs` zero limbs from the pool.
    pub(super) fn zeros(&self, limbs: usize) -> Limbs {
        (0..limbs).map(|_| self.pool().take_zeroed()).collect()
    }

    pub(super) fn check(&self, ct: &Ciphertext) -> Result<(), CkksError> {
        self.ctx.check_params("ciphertext", ct.params_id)
    }

    fn same(&self, op: &str, a: &Ciphertext, b: &Ciphertext) -> Result<(), CkksError> {
        self.check(a)?;
        self.check(b)?;
        if a.level != b.level {
            return Err(CkksError::Level {
                op: op.into(),
                got: b.level,
                expected: format!("{} (the first operand's level)", a.level),
            });
        }
        check_scale(op, b.scale, a.scale)
    }

    /// a + b (same level and scale).
    ///
    /// # Errors
    /// [`CkksError::Level`], [`CkksError::Scale`], [`CkksError::ParamsMismatch`].
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.same("add", a, b)?;
        let mut out = self.copy(a);
        self.add_assign_unchecked(&mut out, b);
        Ok(out)
    }

    /// a += b (same level and scale).
    ///
    /// # Errors
    /// As [`Evaluator::add`].
    pub fn add_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<(), CkksError> {
        self.same("add", a, b)?;
        self.add_assign_unchecked(a, b);
        Ok(())
    }

    fn add_assign_unchecked(&self, a: &mut Ciphertext, b: &Ciphertext) {
        let q = self.ring().q_idx(a.level);
        while a.c.len() < b.c.len() {
            a.c.push(self.zeros(q.len()));
        }
        for (x, y) in a.c.iter_mut().zip(&b.c) {
            self.ring().add_assign(x, y, &q);
        }
    }

    /// a − b (same level and scale).
    ///
    /// # Errors
    /// As [`Evaluator::add`].
    pub fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.same("sub", a, b)?;
        let mut nb = self.copy(b);
        let q = self.ring().q_idx(b.level);
        for x in &mut nb.c {
            self.ring().neg_assign(x, &q);
        }
        let mut out = self.copy(a);
        self.add_assign_unchecked(&mut out, &nb);
        self.recycle(nb);
        Ok(out)
    }

    /// a + pt (same level and scale).
    ///
    /// # Errors
    /// [`CkksError::Level`], [`CkksError::Scale`], [`CkksError::ParamsMismatch`].
    pub fn add_plain(&self, a: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext, CkksError> {
        self.check(a)?;
        self.ctx.check_params("plaintext", pt.params_id)?;
        if pt.level != a.level {
            return Err(CkksError::Level {
                op: "add_plain".into(),
                got: pt.level,
                expected: a.level.to_string(),
            });
        }
        check_scale("add_plain", pt.scale, a.scale)?;
        let mut out = self.copy(a);
        let q = self.ring().q_idx(a.level);
        self.ring().add_assign(&mut out.c[0], &pt.limbs, &q);
        Ok(out)
    }

    /// a + c for a real constant c in every slot (no level used).
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`]; [`CkksError::Encode`] for a non-finite c.
    pub fn add_const(&self, a: &Ciphertext, c: f64) -> Result<Ciphertext, CkksError> {
        self.check(a)?;
        let k = to_int(c * a.scale)?;
        let mut out = self.copy(a);
        let q = self.ring().q_idx(a.level);
        self.ring().add_int_assign(&mut out.c[0], k, &q);
        Ok(out)
    }

    /// a·n for an integer n (no level used).
    ///
    /// # Errors
    /// [`CkksError::ParamsMismatch`].
    pub fn mul_int(&self, a: &Ciphertext, n: i64) -> Result<Ciphertext, CkksError> {
        self.check(a)?;
        let mut out = self.copy(a);
        let q = self.ring().q_idx(a.level);
        for x in &mut out.c {
            self.ring().mul_int_assign(x, i128::from(n), &q);
        }
        Ok(out)
    }

    /// The factor S = q_ℓ·Δ_{ℓ−1}/s by which a level-ℓ ciphertext of scale s is multiplied so
    /// that rescaling lands exactly on Δ_{ℓ−1}.
    pub(super) fn next_factor(&self, a: &Ciphertext, op: &str) -> Result<f64, CkksError> {
        self.ctx.rescale_factor(a.level, a.scale, op)
    }

    /// a·c without rescaling: multiplies by the integer round(c·S), S as in the module docs,
    /// and sets the scale to s·S. Sums of such products (same input scale) are exact in scale;
    /// [`Evaluator::rescale`] then lands on Δ_{ℓ−1}.
    ///
    /// # Errors
    /// [`CkksError::Level`] at level 0; [`CkksError::Encode`] for a non-finite c.
    pub fn mul_const_lazy(&self, a: &Ciphertext, c: f64) -> Result<Ciphertext, CkksError> {
        self.check(a)?;
        let s = self.next_factor(a, "mul_const")?;
        let k = to_int(c * s)?;
        let mut out = self.copy(a);
        let q = self.ring().q_idx(a.level);
        for x in &mut out.c {
            self.ring().mul_int_assign(x, k, &q);
        }
        out.scale = a.scale * s;
        Ok(out)
    }

    /// a·c for a real constant, rescaled: one level, result scale Δ_{ℓ−1}.
    ///
    /// # Errors
    /// As [`Evaluator::mul_const_lazy`].
    pub fn mul_const(&self, a: &Ciphertext, c: f64) -> Result<Ciphertext, CkksError> {
        self.rescale_consumed(self.mul_const_lazy(a, c)?)
    }

    /// [`Evaluator::rescale`] of a temporary whose limbs then go back to the pool.
    pub(super) fn rescale_consumed(&self, a: Ciphertext) -> Result<Ciphertext, CkksError> {
        let out = self.rescale(&a);
        self.recycle(a);
        out
    }

    /// a ⊙ v for a real vector v encoded at the scale S of [`Evaluator::mul_const_lazy`],
    /// without rescaling.
    ///
    /// # Errors
    /// As [`Evaluator::mul_const_lazy`] and [`CkksContext::encode`].
    pub fn mul_vec_lazy(&self, a: &Ciphertext, v: &[f64]) -> Result<Ciphertext, CkksError> {
        self.check(a)?;
        let s = self.next_factor(a, "mul_plain")?;
        let pt = self.ctx.encode(v, a.level, s)?;
        self.mul_plain_lazy(a, &pt)
    }

    /// a ⊙ pt without rescaling (scale s·Δ_pt).
    ///
    /// # Errors
    /// [`CkksError::Level`] when pt is at another level; [`CkksError::ParamsMismatch`].
    pub fn mul_plain_lazy(&self, a: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext, CkksError> {
        self.check(a)?;
        self.ctx.check_params("plaintext", pt.params_id)?;
        if pt.level != a.level {
            return Err(CkksError::Level {
                op: "mul_plain".into(),
                got: pt.level,
                expected: a.level.to_string(),
            });
        }
        let mut out = self.copy(a);
        let q = self.ring().q_idx(a.level);
        for x in &mut out.c {
            self.ring().mul_assign(x, &pt.limbs, &q);
        }
        out.scale = a.scale * pt.scale;
        Ok(out)
    }

    /// acc += a ⊙ pt without rescaling (acc at scale s_a·Δ_pt and a's level; the fused
    /// form of [`Evaluator::mul_plain_lazy`] then [`Evaluator::add_assign`], same result).
    ///
    /// # Errors
    /// As [`Evaluator::mul_plain_lazy`] and [`Evaluator::add_assign`].
    pub fn mul_plain_add_assign(
        &self,
        acc: &mut Ciphertext,
        a: &Ciphertext,
        pt: &Plaintext,
    ) -> Result<(), CkksError> {
        self.check(acc)?;
        self.check(a)?;
        self.ctx.check_params("plaintext", pt.params_id)?;
        if acc.level != a.level || pt.level != a.level {
            return Err(CkksError::Level {
                op: "mul_plain_add".into(),
                got: a.level,
                expected: format!("{} (the accumulator's and the plaintext's)", acc.level),
            });
        }
        check_scale("mul_plain_add", a.scale * pt.scale, acc.scale)?;
        let q = self.ring().q_idx(a.level);
        while acc.c.len() < a.c.len() {
            acc.c.push(self.zeros(q.len()));
        }
        for (s, x) in acc.c.iter_mut().zip(&a.c) {
            self.ring().mul_add_assign(s, x, &pt.limbs, &q);
        }
        Ok(())
    }

    /// a ⊙ v (real vector), rescaled: one level, result scale Δ_{ℓ−1}.
    ///
    /// # Errors
    /// As [`Evaluator::mul_vec_lazy`].
    pub fn mul_vec(&self, a: &Ciphertext, v: &[f64]) -> Result<Ciphertext, CkksError> {
        self.rescale_consumed(self.mul_vec_lazy(a, v)?)
    }

    /// Divide by q_ℓ (rounding) and drop to level ℓ − 1; the scale is divided by q_ℓ.
    ///
    /// # Errors
    /// [`CkksError::Level`] at level 0.
    pub fn rescale(&self, a: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.check(a)?;
        let l = a.level;
        if l == 0 {
            return Err(CkksError::Level {
                op: "rescale".into(),
                got: 0,
                expected: "≥ 1".into(),
            });
        }
        let ring = self.ring();
        let ql = ring.moduli[l].val();
        let half = ql / 2;
        let c =
            a.c.iter()
                .map(|poly| {
                    let mut last = self.pool().guard(self.pool().take_copy(&poly[l]));
                    ring.ntt[l].backward(&mut last);
                    (0..l)
                        .into_par_iter()
                        .map(|i| {
                            let m = &ring.moduli[i];
                            let ql_mod = m.reduce(ql);
                            // Centred representative of the dropped limb, reduced mod q_i,
                            // transformed in a per-thread buffer.
                            let mut t = self.pool().take();
                            with_scratch(ring.n, |w| {
                                for (w, &v) in w.iter_mut().zip(last.iter()) {
                                    *w = if v > half {
                                        m.sub(m.reduce(v), ql_mod)
                                    } else {
                                        m.reduce(v)
                                    };
                                }
                                ring.ntt[i].forward_gather(w, &mut t);
                            });
                            // (x − t)·q_ℓ^{−1} in one pass, by Shoup multiplication
                            // (canonical output, as sub_vec then scalar_mul_vec).
                            let inv = inv_mod(m, ql_mod);
                            let ws = m.shoup(inv);
                            for (t, &x) in t.iter_mut().zip(&poly[i]) {
                                *t = m.mul_shoup(m.sub(x, *t), inv, ws);
                            }
                            t
                        })
                        .collect::<Limbs>()
                })
                .collect();
        let mut scale = a.scale / ql as f64;
        let nominal = self.ctx.params.scale(l - 1);
        if ((scale / nominal) - 1.0).abs() < SCALE_TOL {
            scale = nominal;
        }
        Ok(Ciphertext {
            c,
            level: l - 1,
            scale,
            params_id: a.params_id,
        })
    }

    /// Drop primes down to `level` without changing the scale (the message is unchanged).
    ///
    /// # Errors
    /// [`CkksError::Level`] when `level` is above the ciphertext's level.
    pub fn mod_drop(&self, a: &Ciphertext, level: usize) -> Result<Ciphertext, CkksError> {
        self.check(a)?;
        if level > a.level {
            return Err(CkksError::Level {
                op: "mod_drop".into(),
                got: a.level,
                expected: format!("≥ {level}"),
            });
        }
        Ok(Ciphertext {
            c: a.c
                .iter()
                .map(|p| self.pool().copy_limbs(&p[..=level]))
                .collect(),
            level,
            scale: a.scale,
            params_id: a.params_id,
        })
    }

    /// Bring a ciphertext to `level` < its level with scale exactly Δ_level: drop to
    /// level + 1, multiply by 1 (integer round(S), see the module docs) and rescale. The same
    /// ciphertext when already at `level`.
    ///
    /// # Errors
    /// [`CkksError::Level`] when `level` is above the ciphertext's level.
    pub fn adjust_to(&self, a: &Ciphertext, level: usize) -> Result<Ciphertext, CkksError> {
        if level == a.level {
            return Ok(self.copy(a));
        }
        let d = self.mod_drop(a, level + 1)?;
        let out = self.mul_const(&d, 1.0);
        self.recycle(d);
        out
    }

    /// a·b with relinearisation, not rescaled (scale s_a·s_b).
    ///
    /// # Errors
    /// [`CkksError::Level`] when the operands' levels differ (scales may differ: they
    /// multiply); [`CkksError::MissingRelinKey`]; [`CkksError::Size`] for a ciphertext with
    /// other than two components.
    pub fn mul_relin_lazy(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.check(a)?;
        self.check(b)?;
        if a.level != b.level {
            return Err(CkksError::Level {
                op: "mul".into(),
                got: b.level,
                expected: format!("{} (the first operand's level)", a.level),
            });
        }
        for x in [a, b] {
            if x.c.len() != 2 {
                return Err(CkksError::Size {
                    op: "mul".into(),
                    got: x.c.len(),
                    expected: 2,
                });
            }
        }
        let rk = self.relin.as_ref().ok_or(CkksError::MissingRelinKey)?;
        let ring = self.ring();
        let q = ring.q_idx(a.level);
        let pool = self.pool();
        let mut d0 = pool.copy_limbs(&a.c[0]);
        ring.mul_assign(&mut d0, &b.c[0], &q);
        let mut d1 = pool.copy_limbs(&a.c[0]);
        ring.mul_assign(&mut d1, &b.c[1], &q);
        ring.mul_add_assign(&mut d1, &a.c[1], &b.c[0], &q);
        let mut d2 = pool.guard(pool.copy_limbs(&a.c[1]));
        ring.mul_assign(&mut d2, &b.c[1], &q);
        let k = pool.guard(self.key_switch(&d2, a.level, &rk.0));
        ring.add_assign(&mut d0, &k.0, &q);
        ring.add_assign(&mut d1, &k.1, &q);
        Ok(Ciphertext {
            c: vec![d0, d1],
            level: a.level,
            scale: a.scale * b.scale,
            params_id: a.params_id,
        })
    }

    /// a·b, relinearised and rescaled (one level; Δ_ℓ·Δ_ℓ/q_ℓ = Δ_{ℓ−1}).
    ///
    /// # Errors
    /// As [`Evaluator::mul_relin_lazy`] and [`Evaluator::rescale`].
    pub fn mul(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.rescale_consumed(self.mul_relin_lazy(a, b)?)
    }

    /// Left rotation of the slots by `step` (negative: right), with the Galois key of 5^step
    /// (the hoisted path of [`Evaluator::rotate_hoisted`] with one step, so that both give
    /// the same ciphertext bit for bit).
    ///
    /// # Errors
    /// [`CkksError::MissingGaloisKey`]; [`CkksError::Size`] for an unrelinearised ciphertext;
    /// [`CkksError::Level`] when the key was made for a lower level.
    pub fn rotate(&self, a: &Ciphertext, step: i64) -> Result<Ciphertext, CkksError> {
        let mut v = self.rotate_hoisted(a, &[step])?;
        v.pop().ok_or(CkksError::BadPlan { op: 0 })
    }

    /// Hybrid key switching of d (NTT form over q_0..q_level) with `key`: returns (k0, k1)
    /// with k0 + k1·s ≈ d·s' over Q_level.
    fn key_switch(&self, d: &Limbs, level: usize, key: &KeySwitchKey) -> (Limbs, Limbs) {
        self.key_switch_ext(&self.decompose(d, level), level, key, None)
    }

    /// The decomposition step of hybrid key switching ("ModUp"): for each digit j (q-primes
    /// j·d … (j+1)·d − 1 of q_0..q_level) the digit [d]_{Q_j} extended by fast basis conversion
    /// to every prime of q_0..q_level and P, in NTT form. It depends on d only, not on the key:
    /// computed once, it serves every Galois element of a hoisted rotation.
    pub(super) fn decompose(&self, d: &Limbs, level: usize) -> Pooled<'_, Vec<Limbs>> {
        let ring = self.ring();
        let pool = self.pool();
        let q = ring.q_idx(level);
        let qp = ring.qp_idx(level);
        let ds = self.ctx.params.digit_size();
        let mut dc = pool.guard(pool.copy_limbs(d));
        ring.to_coeffs(&mut dc, &q);
        let ndig = (level + 1).div_ceil(ds);
        let ext = (0..ndig)
            .map(|j| {
                let lo = j * ds;
                let hi = ((j + 1) * ds).min(level + 1);
                let from: Vec<usize> = (lo..hi).collect();
                let to: Vec<usize> = qp
                    .iter()
                    .copied()
                    .filter(|i| !(lo..hi).contains(i))
                    .collect();
                let conv = ring.convert_to_ntt(&dc[lo..hi], &from, &to);
                let mut conv_it = conv.into_iter();
                qp.iter()
                    .map(|&i| {
                        if (lo..hi).contains(&i) {
                            pool.take_copy(&d[i])
                        } else {
                            conv_it.next().unwrap_or_default()
                        }
                    })
                    .collect()
            })
            .collect();
        pool.guard(ext)
    }

    /// The key-dependent step of hybrid key switching: Σ_j ext_j·(b_j, a_j) over QP, where
    /// ext_j is read through the NTT-domain permutation `perm` of a Galois automorphism when
    /// given (the automorphism commutes with the decomposition), then divided by P ("ModDown").
    /// The key must have been made for a level ≥ `level`.
    pub(super) fn key_switch_ext(
        &self,
        ext: &[Limbs],
        level: usize,
        key: &KeySwitchKey,
        perm: Option<&[usize]>,
    ) -> (Limbs, Limbs) {
        let (acc0, acc1) = self.key_switch_ext_qp(ext, level, key, perm);
        (self.mod_down(acc0, level), self.mod_down(acc1, level))
    }

    /// [`Evaluator::key_switch_ext`] before its ModDown: the pair Σ_j ext_j·(b_j, a_j) over
    /// the primes q_0..q_level, p_0..p_{k−1} (limbs in that order), i.e. P times the switched
    /// pair plus the key noise. Sums of such pairs can share one [`Evaluator::mod_down`]
    /// (the second hoisting of Bossuat et al. 2021, §4.2).
    pub(super) fn key_switch_ext_qp(
        &self,
        ext: &[Limbs],
        level: usize,
        key: &KeySwitchKey,
        perm: Option<&[usize]>,
    ) -> (Limbs, Limbs) {
        let ring = self.ring();
        let qp = ring.qp_idx(level);
        let n = ring.n;
        // Σ_j ext_j·key_j limb by limb (`inner_product_limb`). Under a Galois permutation
        // each digit's limb is first gathered into a per-thread buffer (random reads within
        // one limb, copied in order into cache first), then read in order: a gather inside
        // the kernel would range over all the digits' limbs at once.
        qp.par_iter()
            .enumerate()
            .map(|(li, &i)| {
                let m = &ring.moduli[i];
                let pos = key.pos(i);
                let keys = key
                    .digits
                    .iter()
                    .map(|(kb, ka)| (&kb[pos][..], &ka[pos][..]));
                match perm {
                    None => {
                        let rows: Vec<_> = ext.iter().map(|e| &e[li][..]).zip(keys).collect();
                        inner_product_limb(m, &rows, &ring.pool)
                    }
                    Some(perm) => PERMUTED.with(|cell| {
                        let mut fresh = Vec::new();
                        let mut guard = cell.try_borrow_mut();
                        let buf = match &mut guard {
                            Ok(b) => &mut **b,
                            Err(_) => &mut fresh,
                        };
                        buf.clear();
                        for e in ext {
                            // A sequential copy first brings the limb into cache (the
                            // gather's random reads would each wait on memory).
                            with_scratch(n, |x| {
                                x.copy_from_slice(&e[li]);
                                buf.extend(perm.iter().map(|&p| x[p]));
                            });
                        }
                        let rows: Vec<_> = buf.chunks(n).zip(keys).collect();
                        inner_product_limb(m, &rows, &ring.pool)
                    }),
                }
            })
            .unzip()
    }

    /// [`Evaluator::key_switch_ext_qp`] as first written (one u128 sum per residue over the
    /// digits, the limbs indexed per digit and residue): the oracle of the blocked kernel.
    #[cfg(test)]
    pub(super) fn key_switch_ext_qp_reference(
        &self,
        ext: &[Limbs],
        level: usize,
        key: &KeySwitchKey,
        perm: Option<&[usize]>,
    ) -> (Limbs, Limbs) {
        let ring = self.ring();
        let qp = ring.qp_idx(level);
        let n = ring.n;
        let digits: Vec<(&Limbs, &(Limbs, Limbs))> = ext.iter().zip(&key.digits).collect();
        qp.par_iter()
            .enumerate()
            .map(|(li, &i)| {
                let m = &ring.moduli[i];
                let pos = key.pos(i);
                let mut s0 = vec![0u64; n];
                let mut s1 = vec![0u64; n];
                for chunk in digits.chunks(15) {
                    for k in 0..n {
                        let (mut a0, mut a1) = (u128::from(s0[k]), u128::from(s1[k]));
                        for (e, (kb, ka)) in chunk {
                            let x = u128::from(match perm {
                                Some(perm) => e[li][perm[k]],
                                None => e[li][k],
                            });
                            a0 += x * u128::from(kb[pos][k]);
                            a1 += x * u128::from(ka[pos][k]);
                        }
                        s0[k] = m.reduce_u128(a0);
                        s1[k] = m.reduce_u128(a1);
                    }
                }
                (s0, s1)
            })
            .unzip()
    }

    /// ModDown: a polynomial over q_0..q_level, p_0..p_{k−1} (NTT form, limbs in that order)
    /// divided by P = Π p_i, rounded, over q_0..q_level: (x − Conv_{P→Q}([x]_P))·P^{−1}.
    pub(super) fn mod_down(&self, acc: Limbs, level: usize) -> Limbs {
        let ring = self.ring();
        let nq = ring.nq;
        let q = ring.q_idx(level);
        let pidx: Vec<usize> = (nq..nq + ring.np).collect();
        let np = pidx.len();
        let mut acc = acc;
        let mut pl = ring.pool.guard(acc.split_off(q.len()));
        ring.to_coeffs(&mut pl, &pidx);
        let conv = ring.pool.guard(ring.convert_to_ntt(&pl, &pidx, &q));
        acc.par_iter_mut()
            .zip(conv.par_iter())
            .zip(q.par_iter())
            .for_each(|((x, c), &i)| {
                let m = &ring.moduli[i];
                let pinv = inv_mod(
                    m,
                    ring.moduli[nq..nq + np]
                        .iter()
                        .fold(1u64, |a, p| m.mul(a, m.reduce(p.val()))),
                );
                // (x − c)·P^{−1} in one pass, P^{−1} by Shoup multiplication (canonical
                // output, as sub_vec then scalar_mul_vec).
                let ps = m.shoup(pinv);
                for (x, &c) in x.iter_mut().zip(c) {
                    *x = m.mul_shoup(m.sub(*x, c), pinv, ps);
                }
            });
        acc
    }
}

thread_local! {
    /// Per-thread buffer of the Galois-permuted digits of one limb (inner product).
    static PERMUTED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One digit's row of a limb in the key inner product: (x_j, (b_j, a_j)).
type DigitRow<'a> = (&'a [u64], (&'a [u64], &'a [u64]));

/// One limb of the key inner product: (Σ_j x_j·b_j, Σ_j x_j·a_j) mod the prime of `m` over
/// the digits' rows (x_j, (b_j, a_j)), each of n residues. The sums are accumulated exactly
/// in u128 over blocks of [`CONV_BLOCK`] residues (in L1) and reduced once: each product is
/// < 2^124 (primes < 2^62), so 15 of them plus a reduced residue stay below 2^128 (longer
/// sums are reduced every 15 digits). The outputs are canonical residues, in limbs of `pool`
/// (every entry written).
fn inner_product_limb(
    m: &fhe_math::zq::Modulus,
    rows: &[DigitRow<'_>],
    pool: &LimbPool,
) -> (Vec<u64>, Vec<u64>) {
    let mut s0 = pool.take();
    let mut s1 = pool.take();
    let mut acc0 = [0u128; CONV_BLOCK];
    let mut acc1 = [0u128; CONV_BLOCK];
    for (b, (o0, o1)) in s0
        .chunks_mut(CONV_BLOCK)
        .zip(s1.chunks_mut(CONV_BLOCK))
        .enumerate()
    {
        let lo = b * CONV_BLOCK;
        let len = o0.len();
        let (a0, a1) = (&mut acc0[..len], &mut acc1[..len]);
        a0.fill(0);
        a1.fill(0);
        for (j, &(x, (kb, ka))) in rows.iter().enumerate() {
            let (x, kb, ka) = (&x[lo..lo + len], &kb[lo..lo + len], &ka[lo..lo + len]);
            for k in 0..len {
                let v = u128::from(x[k]);
                a0[k] += v * u128::from(kb[k]);
                a1[k] += v * u128::from(ka[k]);
            }
            if j % 15 == 14 {
                for s in a0.iter_mut().chain(a1.iter_mut()) {
                    *s = u128::from(m.reduce_u128(*s));
                }
            }
        }
        for ((o0, o1), (&s0, &s1)) in o0
            .iter_mut()
            .zip(o1.iter_mut())
            .zip(a0.iter().zip(a1.iter()))
        {
            *o0 = m.reduce_u128(s0);
            *o1 = m.reduce_u128(s1);
        }
    }
    (s0, s1)
}

pub(super) fn check_scale(op: &str, got: f64, expected: f64) -> Result<(), CkksError> {
    if ((got / expected) - 1.0).abs() > SCALE_TOL {
        return Err(CkksError::Scale {
            op: op.into(),
            got: got.log2(),
            expected: expected.log2(),
        });
    }
    Ok(())
}

fn to_int(x: f64) -> Result<i128, CkksError> {
    if !x.is_finite() || x.abs() >= 2f64.powi(120) {
        return Err(CkksError::Encode {
            what: format!("constant times scale = {x:e} is not a finite number below 2^120"),
        });
    }
    Ok(x.round() as i128)
}
