//! Sparse-secret encapsulation of bootstrapping (Bossuat–Troncoso-Pastoriza–Hubaux 2022,
//! "Bootstrapping for approximate homomorphic encryption with negligible failure-probability
//! by using sparse-secret encapsulation"): the level-0 ciphertext is key-switched from the
//! dense secret s to an ephemeral sparse ternary secret s' of Hamming weight h, ModRaise runs
//! under s', and the raised ciphertext is switched back to s before CoeffToSlot.
//!
//! # Why
//! After ModRaise the ciphertext decrypts to t = c_0 + c_1·s' = m + q_0·I over Q_L. With c_1
//! uniform mod q_0, coefficient i of c_1·s' is a signed sum of h coefficients of c_1, so
//! t_i/q_0 = c_{0,i}/q_0 + Σ_{j<h} ±U_j with U_j uniform on [−1/2, 1/2): |t_i/q_0| ≤ 1/2 + |S_h|
//! with S_h a centred Irwin–Hall variable (the sum of h uniforms). EvalMod's interval [−K, K]
//! then only has to cover 1/2 + |S_h| ≤ 1/2 + h/2: for h = 32, K = 12 fails with probability
//! 2·F_32(16.5 − 12) = 2^−47.2 per coefficient ([`sparse_k`], computed exactly from the
//! Irwin–Hall CDF), where a dense secret needs K ≈ 6.5·√(N/12) = 482 at N = 2^16. The smaller
//! K needs fewer double angles and a lower degree: fewer levels, less time, and a smaller
//! amplification 2πK of the CoeffToSlot error.
//!
//! # Security
//! The sparse secret s' is used under one modulus only: q_0·p_0 (the base prime and the first
//! special prime), log₂(q_0·p_0) = 60 + 61 = 121 at the bootstrapping parameters
//! (`bootstrap_params`). The adversary sees (a) the switching key s → s', RLWE samples
//! (a, −a·s' + e + p_0·s) over R_{q_0·p_0}: LWE with N = 2^16, log q = 121, ternary secret of
//! weight h = 32, σ = 3.2; (b) level-0 ciphertexts under s' mod q_0 (log q = 60), and their
//! ModRaise, a public deterministic lift of them that reveals nothing more. Bossuat et al.
//! (2022, §5) choose this instance (h = 32, the modulus Q_0·P_0 of the first q- and the first
//! p-prime). Re-estimated here ([`super::security`], a re-implementation of the lattice
//! estimator's primal uSVP costing that reproduces the HomomorphicEncryption.org 128-bit table
//! within ±4 bits, plus drop-and-solve and a meet-in-the-middle hybrid on the sparse support
//! with free memory and unit-cost guesses, both in the attacker's favour): the cheapest attack
//! keeps n' = 3444 coordinates, guesses 13 non-zeros among the dropped ones and costs
//! ≈ 2^147.5 (a test asserts ≥ 2^128). For comparison, the 128-bit bound for a *dense* ternary
//! secret at N = 2^16 is log q ≤ 1772, 14.6× the 121 bits here: the sparsity, not the modulus,
//! is what an attacker exploits, and the margin above 128 bits is ~19 bits under this model,
//! not the "far above" a dense-secret comparison would suggest. Not re-implemented: the
//! estimator's exact primal-hybrid costing, the dual hybrid and MATZOV's dual attack; a
//! dual-hybrid figure could be lower than this one, so running the lattice estimator on
//! (N = 2^16, log q = 121, h = 32, σ = 3.2) remains the reference check. The switching key
//! s' → s is an ordinary key-switching key under the dense s over Q_L·P, like every Galois
//! key, inside the 1772-bit bound the parameters are checked
//! against. There is no bare sparse secret anywhere else: s' is drawn in
//! [`EncapsulationKeys::generate`], used for the two keys, and zeroized.

#![expect(
    clippy::indexing_slicing,
    reason = "limb indices < number of primes by construction"
)]

use rand::{CryptoRng, Rng, RngCore};
use zeroize::Zeroize;

use super::eval::{Ciphertext, CkksContext, Evaluator};
use super::keys::{KeySwitchKey, SecretKey};
use super::ring::{inv_mod, sample_gaussian, Limbs, ModVal};
use super::CkksError;

/// Hamming weight of the ephemeral sparse secret (Lattigo's default and the paper's h = 32).
pub const EPHEMERAL_WEIGHT: usize = 32;

/// log₂ of the failure probability per coefficient that [`sparse_k`] accepts: 2^−40.
pub const LOG2_FAIL_PER_COEFF: f64 = -40.0;

/// The two switching keys of the encapsulation: s → s' over q_0·p_0 (two limbs) and s' → s
/// over Q_L·P (an ordinary [`KeySwitchKey`] under s).
#[derive(Debug, Clone)]
pub struct EncapsulationKeys {
    /// (b, a) over [q_0, p_0], NTT form: b = −a·s' + e + p_0·s.
    to_sparse: (Limbs, Limbs),
    /// Key switching from s' to s at the top level.
    to_dense: KeySwitchKey,
    weight: usize,
}

/// Exactly h distinct positions of N with coefficients ±1, the rest 0.
fn sample_sparse_ternary<R: RngCore + CryptoRng>(n: usize, h: usize, rng: &mut R) -> Vec<i64> {
    let mut s = vec![0i64; n];
    let mut placed = 0;
    while placed < h.min(n) {
        let i = rng.random_range(0..n);
        if s[i] == 0 {
            s[i] = if rng.random::<bool>() { 1 } else { -1 };
            placed += 1;
        }
    }
    s
}

impl EncapsulationKeys {
    /// Draw a sparse ternary s' of weight `weight` and make both switching keys for `sk`
    /// (s' is zeroized before returning).
    ///
    /// # Errors
    /// [`CkksError::BadParam`] for a weight outside 1 ..= N, or parameters without a special
    /// prime; [`CkksError::ParamsMismatch`] for a key of other parameters.
    pub fn generate<R: RngCore + CryptoRng>(
        ctx: &CkksContext,
        sk: &SecretKey,
        weight: usize,
        rng: &mut R,
    ) -> Result<Self, CkksError> {
        ctx.check_params("secret key", sk.params_id)?;
        let ring = ctx.ring();
        if weight == 0 || weight > ring.n || ring.np == 0 {
            return Err(CkksError::BadParam {
                what: "sparse-secret weight".into(),
                value: weight.to_string(),
                valid: format!("1..={} (and at least one special prime)", ring.n),
            });
        }
        let top = ctx.params().max_level();
        let p0 = ring.nq;
        let small = [0, p0];
        let mut coeffs = sample_sparse_ternary(ring.n, weight, rng);
        // s' → s: an ordinary key under s with s' on the q-limbs.
        let mut sp_q = ring.signed_to_ntt(&coeffs, &ring.q_idx(top));
        let to_dense = KeySwitchKey::generate(ctx, sk, &sp_q, top, rng);
        // s → s' over [q_0, p_0]: b = −a·s' + e + p_0·s (p_0·s vanishes mod p_0).
        let mut sp = ring.signed_to_ntt(&coeffs, &small);
        let a = ring.uniform(&small, rng);
        let e = ring.signed_to_ntt(&sample_gaussian(ring.n, rng), &small);
        let mut b = a.clone();
        ring.mul_assign(&mut b, &sp, &small);
        ring.neg_assign(&mut b, &small);
        ring.add_assign(&mut b, &e, &small);
        let m0 = &ring.moduli[0];
        let mut ps = sk.ntt[0].clone();
        m0.scalar_mul_vec(&mut ps, m0.reduce(ring.moduli[p0].val()));
        m0.add_vec(&mut b[0], &ps);
        coeffs.zeroize();
        ps.zeroize();
        for l in sp.iter_mut().chain(sp_q.iter_mut()) {
            l.zeroize();
        }
        Ok(Self {
            to_sparse: (b, a),
            to_dense,
            weight,
        })
    }

    /// The s' → s key (its key-set id is that of s).
    pub(crate) fn to_dense_key(&self) -> &KeySwitchKey {
        &self.to_dense
    }

    /// The Hamming weight h of the sparse secret.
    pub fn weight(&self) -> usize {
        self.weight
    }

    /// Bytes held by both keys.
    pub fn size_bytes(&self) -> usize {
        let small: usize = self
            .to_sparse
            .0
            .iter()
            .chain(&self.to_sparse.1)
            .map(|l| 8 * l.len())
            .sum();
        small + self.to_dense.size_bytes()
    }

    /// Bytes of the keys for `params` before generating them (model of
    /// [`EncapsulationKeys::size_bytes`]): 2 polynomials × 2 limbs × N words for s → s', and a
    /// [`KeySwitchKey`] at level L for s' → s.
    pub fn model_bytes(params: &super::CkksParams) -> u64 {
        4 * params.n() as u64 * 8 + KeySwitchKey::model_bytes(params, params.max_level())
    }
}

impl Evaluator {
    /// The level-0 ciphertext (c_0, c_1) under s switched to the sparse s' of `keys`:
    /// (c_0 + ⌊c_1·b/p_0⌉, ⌊c_1·a/p_0⌉) mod q_0, with c_1 lifted exactly (centred) to p_0.
    ///
    /// # Errors
    /// [`CkksError::Level`] unless `ct` is at level 0; [`CkksError::Size`] for three
    /// components; [`CkksError::ParamsMismatch`].
    pub fn switch_to_sparse(
        &self,
        ct: &Ciphertext,
        keys: &EncapsulationKeys,
    ) -> Result<Ciphertext, CkksError> {
        self.check_level0_pair(ct, "switch_to_sparse")?;
        let ring = self.ring();
        let p0 = ring.nq;
        let small = [0, p0];
        let mut c1 = vec![ct.c[1][0].clone()];
        ring.to_coeffs(&mut c1, &[0]);
        let ext = ring.signed_to_ntt(&centred(&c1[0], ring.moduli[0].val()), &small);
        let m0 = &ring.moduli[0];
        let pinv = inv_mod(m0, ring.moduli[p0].val());
        let (kb, ka) = &keys.to_sparse;
        // ⌊c_1·k/p_0⌉ mod q_0: (x_{q_0} − [x]_{p_0}) · p_0^{−1}.
        let down = |k: &Limbs| -> Vec<u64> {
            let mut x = ext.clone();
            ring.mul_assign(&mut x, k, &small);
            let mut hi = vec![x[1].clone()];
            ring.to_coeffs(&mut hi, &[p0]);
            let c = ring.signed_to_ntt(&centred(&hi[0], ring.moduli[p0].val()), &[0]);
            let mut lo = x.swap_remove(0);
            if let Some(c) = c.first() {
                m0.sub_vec(&mut lo, c);
            }
            m0.scalar_mul_vec(&mut lo, pinv);
            lo
        };
        let mut c0 = ct.c[0][0].clone();
        m0.add_vec(&mut c0, &down(kb));
        Ok(Ciphertext {
            c: vec![vec![c0], vec![down(ka)]],
            level: 0,
            scale: ct.scale,
            params_id: ct.params_id,
        })
    }

    /// A ciphertext under the sparse s' (any level) switched back to s with the s' → s key.
    ///
    /// # Errors
    /// [`CkksError::Size`] for three components; [`CkksError::Level`] above the key's level;
    /// [`CkksError::ParamsMismatch`].
    pub fn switch_to_dense(
        &self,
        ct: &Ciphertext,
        keys: &EncapsulationKeys,
    ) -> Result<Ciphertext, CkksError> {
        self.check(ct)?;
        if ct.c.len() != 2 {
            return Err(CkksError::Size {
                op: "switch_to_dense".into(),
                got: ct.c.len(),
                expected: 2,
            });
        }
        if ct.level > keys.to_dense.level() {
            return Err(CkksError::Level {
                op: "switch_to_dense".into(),
                got: ct.level,
                expected: format!("≤ {} (the key's level)", keys.to_dense.level()),
            });
        }
        let ring = self.ring();
        let q = ring.q_idx(ct.level);
        let ext = self.decompose(&ct.c[1], ct.level);
        let (k0, k1) = self.key_switch_ext(&ext, ct.level, &keys.to_dense, None);
        let mut c0 = ct.c[0].clone();
        ring.add_assign(&mut c0, &k0, &q);
        Ok(Ciphertext {
            c: vec![c0, k1],
            level: ct.level,
            scale: ct.scale,
            params_id: ct.params_id,
        })
    }
}

/// Residues mod p as centred signed integers (|x| ≤ p/2 < 2^62).
pub(super) fn centred(v: &[u64], p: u64) -> Vec<i64> {
    v.iter()
        .map(|&x| {
            if x > p / 2 {
                x as i64 - p as i64
            } else {
                x as i64
            }
        })
        .collect()
}

/// P(|S_h| ≥ x) for S_h the sum of h independent uniforms on [−1/2, 1/2), exactly (rug
/// rationals), then rounded to f64: 2·F_h(h/2 − x) with the Irwin–Hall CDF
/// F_h(y) = (1/h!)·Σ_{k ≤ y} (−1)^k·C(h, k)·(y − k)^h for 0 ≤ y ≤ h/2 (1 for x ≤ 0, 0 for
/// x ≥ h/2). `x` is given as a multiple of 1/2: x = x2/2.
pub fn irwin_hall_two_sided_tail(h: u32, x2: u32) -> f64 {
    use rug::{Integer, Rational};
    if x2 == 0 {
        return 1.0;
    }
    if x2 >= h {
        return 0.0;
    }
    // y = h/2 − x = (h − x2)/2 > 0.
    let y = Rational::from((Integer::from(h - x2), Integer::from(2)));
    let mut sum = Rational::new();
    let mut k = 0u32;
    // Terms k ≤ y: 2k ≤ h − x2.
    while 2 * k <= h - x2 {
        let d = &y - Rational::from(k);
        let term = rug::ops::Pow::pow(d, h) * Integer::from(Integer::binomial_u(h, k));
        if k.is_multiple_of(2) {
            sum += term;
        } else {
            sum -= term;
        }
        k += 1;
    }
    let fact = Integer::from(Integer::factorial(h));
    (sum / fact * 2u32).to_f64()
}

/// The smallest integer K with P(1/2 + |S_h| ≥ K) ≤ 2^[`LOG2_FAIL_PER_COEFF`] (module docs:
/// |t_i/q_0| ≤ 1/2 + |S_h| after ModRaise under a weight-h secret), with that probability:
/// (K, log₂ P). For h = 32: K = 12, log₂ P = −47.2.
pub fn sparse_k(h: u32) -> (f64, f64) {
    let mut k = 1u32;
    loop {
        // 1/2 + |S| ≥ K ⇔ |S| ≥ K − 1/2 = (2K − 1)/2.
        let p = irwin_hall_two_sided_tail(h, 2 * k - 1);
        if p <= 2f64.powf(LOG2_FAIL_PER_COEFF) {
            return (
                f64::from(k),
                if p > 0.0 { p.log2() } else { f64::NEG_INFINITY },
            );
        }
        k += 1;
    }
}
