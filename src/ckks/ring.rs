//! RNS polynomials of R_Q = Z_Q[X]/(X^N + 1) in NTT form, over fhe-math's modular arithmetic
//! ([`Modulus`]) and negacyclic NTT ([`NttOperator`]).
//!
//! A polynomial is a list of limbs, one per prime, each of N residues in NTT order: entry i is
//! a(ψ^{e_i}) mod p with ψ a primitive 2N-th root of unity and e_i = 2·brv(i) + 1 (checked
//! for every prime when the ring is built). A Galois automorphism X ↦ X^g then permutes the
//! entries: a(X^g)(ψ^{e_i}) = a(ψ^{e_i·g}), the entry with exponent e_i·g mod 2N.
//!
//! The transforms themselves ([`Ntt`]) run on tfhe-ntt's `prime64::Plan` (Harvey butterflies,
//! SIMD), about twice as fast as fhe-math's native NTT at N = 2^16, with its output permuted
//! into fhe-math's order: the plan evaluates at the powers of another primitive 2N-th root
//! ψ' = ψ^t, so its outputs are those of fhe-math's NTT in another order. The limbs are
//! therefore the same, bit for bit, as with fhe-math's transform, which stays the fallback
//! (N < 16) and the test oracle.

#![expect(
    clippy::indexing_slicing,
    reason = "hot loops over limbs of length N; every index is < N or < the number of primes, \
              checked by construction of the ring"
)]

use std::collections::HashMap;

use fhe_math::ntt::NttOperator;
use fhe_math::zq::Modulus;
use rand::{CryptoRng, Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use tfhe_ntt::prime64::Plan;

use super::params::{CkksParams, SIGMA};
use super::CkksError;

/// RNS limbs (one `Vec<u64>` of N residues per prime).
pub(crate) type Limbs = Vec<Vec<u64>>;

/// The ring: moduli q_0..q_L then p_0..p_{k−1}, NTT operators and the NTT-order exponents.
#[derive(Debug)]
pub(crate) struct Ring {
    pub n: usize,
    pub moduli: Vec<Modulus>,
    pub ntt: Vec<Ntt>,
    /// Number of q primes (L + 1).
    pub nq: usize,
    /// Number of special primes.
    pub np: usize,
    /// e_i for each NTT index.
    exps: Vec<usize>,
    /// NTT index of each odd exponent (index e/2).
    index_of: Vec<usize>,
}

impl Ring {
    pub fn new(params: &CkksParams) -> Result<Self, CkksError> {
        Self::build(params, true)
    }

    /// The ring with fhe-math's native NTT only (the test oracle of [`Ntt`]).
    #[cfg(test)]
    pub fn new_native(params: &CkksParams) -> Result<Self, CkksError> {
        Self::build(params, false)
    }

    fn build(params: &CkksParams, fast: bool) -> Result<Self, CkksError> {
        let n = params.n();
        let mut moduli = Vec::new();
        let mut ntt = Vec::new();
        for &p in params.q().iter().chain(params.p()) {
            let m = Modulus::new(p).map_err(|e| CkksError::BadParam {
                what: "prime".into(),
                value: format!("{p} ({e})"),
                valid: "a prime < 2^62".into(),
            })?;
            let op = NttOperator::new(&m, n).ok_or_else(|| CkksError::BadParam {
                what: "prime".into(),
                value: p.to_string(),
                valid: format!("a prime ≡ 1 mod 2N = {}", 2 * n),
            })?;
            ntt.push(Ntt::new(&m, op, n, fast));
            moduli.push(m);
        }
        let log_n = params.log_n();
        let exps: Vec<usize> = (0..n)
            .map(|i| 2 * (i.reverse_bits() >> (usize::BITS - log_n)) + 1)
            .collect();
        let mut index_of = vec![0usize; n];
        for (i, &e) in exps.iter().enumerate() {
            index_of[e / 2] = i;
        }
        // Check the NTT order for every prime: NTT(X)[i] = ψ^{e_i} with ψ = NTT(X)[0].
        for (m, op) in moduli.iter().zip(&ntt) {
            let mut x = vec![0u64; n];
            x[1] = 1;
            op.forward(&mut x);
            let psi = x[0];
            let mut pw = vec![0u64; 2 * n];
            pw[0] = 1;
            for k in 1..2 * n {
                pw[k] = m.mul(pw[k - 1], psi);
            }
            if pw[n] != m.val() - 1 || exps.iter().zip(&x).any(|(&e, &v)| pw[e] != v) {
                return Err(CkksError::BadParam {
                    what: "NTT ordering".into(),
                    value: format!("prime {}", m.val()),
                    valid: "bit-reversed negacyclic NTT (fhe-math native)".into(),
                });
            }
        }
        Ok(Self {
            n,
            moduli,
            ntt,
            nq: params.q().len(),
            np: params.p().len(),
            exps,
            index_of,
        })
    }

    /// Indices of the primes q_0..q_level.
    pub fn q_idx(&self, level: usize) -> Vec<usize> {
        (0..=level).collect()
    }

    /// Indices of q_0..q_level followed by the special primes.
    pub fn qp_idx(&self, level: usize) -> Vec<usize> {
        (0..=level).chain(self.nq..self.nq + self.np).collect()
    }

    /// Reduce signed coefficients into the given primes, then NTT.
    pub fn signed_to_ntt(&self, coeffs: &[i64], primes: &[usize]) -> Limbs {
        primes
            .par_iter()
            .map(|&j| {
                let m = &self.moduli[j];
                let mut v = m.reduce_vec_i64(coeffs);
                self.ntt[j].forward(&mut v);
                v
            })
            .collect()
    }

    /// Reduce i128 coefficients into the given primes, then NTT.
    pub fn i128_to_ntt(&self, coeffs: &[i128], primes: &[usize]) -> Limbs {
        primes
            .par_iter()
            .map(|&j| {
                let m = &self.moduli[j];
                let p = i128::from(m.val());
                let mut v: Vec<u64> = coeffs.iter().map(|&c| c.rem_euclid(p) as u64).collect();
                self.ntt[j].forward(&mut v);
                v
            })
            .collect()
    }

    /// Uniform limbs (uniform in either representation).
    pub fn uniform<R: RngCore + CryptoRng>(&self, primes: &[usize], rng: &mut R) -> Limbs {
        primes
            .iter()
            .map(|&j| self.moduli[j].random_vec(self.n, rng))
            .collect()
    }

    /// a ⊙ b into a (same primes).
    pub fn mul_assign(&self, a: &mut Limbs, b: &[Vec<u64>], primes: &[usize]) {
        a.par_iter_mut()
            .zip(b.par_iter())
            .zip(primes.par_iter())
            .for_each(|((x, y), &j)| self.moduli[j].mul_vec(x, y));
    }

    /// a + b into a.
    pub fn add_assign(&self, a: &mut Limbs, b: &[Vec<u64>], primes: &[usize]) {
        a.par_iter_mut()
            .zip(b.par_iter())
            .zip(primes.par_iter())
            .for_each(|((x, y), &j)| self.moduli[j].add_vec(x, y));
    }

    /// −a in place.
    pub fn neg_assign(&self, a: &mut Limbs, primes: &[usize]) {
        a.par_iter_mut()
            .zip(primes.par_iter())
            .for_each(|(x, &j)| self.moduli[j].neg_vec(x));
    }

    /// a·k for a signed integer k (reduced per prime).
    pub fn mul_int_assign(&self, a: &mut Limbs, k: i128, primes: &[usize]) {
        a.par_iter_mut().zip(primes.par_iter()).for_each(|(x, &j)| {
            let m = &self.moduli[j];
            let kk = k.rem_euclid(i128::from(m.val())) as u64;
            m.scalar_mul_vec(x, kk);
        });
    }

    /// a + k (constant polynomial k: every NTT entry) for a signed integer k.
    pub fn add_int_assign(&self, a: &mut Limbs, k: i128, primes: &[usize]) {
        a.par_iter_mut().zip(primes.par_iter()).for_each(|(x, &j)| {
            let m = &self.moduli[j];
            let kk = k.rem_euclid(i128::from(m.val())) as u64;
            for v in x.iter_mut() {
                *v = m.add(*v, kk);
            }
        });
    }

    /// Σ a_i·b_i accumulated into acc.
    pub fn mul_add_assign(
        &self,
        acc: &mut Limbs,
        a: &[Vec<u64>],
        b: &[Vec<u64>],
        primes: &[usize],
    ) {
        acc.par_iter_mut()
            .zip(a.par_iter().zip(b.par_iter()))
            .zip(primes.par_iter())
            .for_each(|((s, (x, y)), &j)| {
                let m = &self.moduli[j];
                for ((s, &x), &y) in s.iter_mut().zip(x).zip(y) {
                    *s = m.add(*s, m.mul(x, y));
                }
            });
    }

    /// Inverse NTT of every limb (to coefficients).
    pub fn to_coeffs(&self, a: &mut Limbs, primes: &[usize]) {
        a.par_iter_mut()
            .zip(primes.par_iter())
            .for_each(|(x, &j)| self.ntt[j].backward(x));
    }

    /// Forward NTT of every limb.
    pub fn to_ntt(&self, a: &mut Limbs, primes: &[usize]) {
        a.par_iter_mut()
            .zip(primes.par_iter())
            .for_each(|(x, &j)| self.ntt[j].forward(x));
    }

    /// The NTT-domain permutation of X ↦ X^g: out[i] = a[perm[i]].
    pub fn galois_perm(&self, g: usize) -> Vec<usize> {
        let two_n = 2 * self.n;
        self.exps
            .iter()
            .map(|&e| self.index_of[(e * g % two_n) / 2])
            .collect()
    }

    /// Apply a permutation from [`Ring::galois_perm`] to every limb.
    pub fn permute(&self, a: &[Vec<u64>], perm: &[usize]) -> Limbs {
        a.par_iter()
            .map(|x| perm.iter().map(|&p| x[p]).collect())
            .collect()
    }

    /// Fast basis conversion of coefficient-form limbs `a` (primes `from`) to the primes
    /// `to`: Σ_i [a_i·(Q̂_i)^{−1}]_{q_i}·(Q̂_i mod t) (result may exceed the exact value by a
    /// small multiple of Q = Π from; standard in hybrid key switching). Output in coefficient
    /// form.
    pub fn convert(&self, a: &[Vec<u64>], from: &[usize], to: &[usize]) -> Limbs {
        // y_i = a_i · (Q/q_i)^{-1} mod q_i.
        let y: Vec<Vec<u64>> = a
            .par_iter()
            .zip(from.par_iter())
            .map(|(x, &i)| {
                let m = &self.moduli[i];
                let mut qhat = 1u64;
                for &k in from {
                    if k != i {
                        qhat = m.mul(qhat, m.reduce(self.moduli[k].val()));
                    }
                }
                let inv = inv_mod(m, qhat);
                let mut v = x.clone();
                m.scalar_mul_vec(&mut v, inv);
                v
            })
            .collect();
        to.par_iter()
            .map(|&t| {
                let mt = &self.moduli[t];
                // Q̂_i mod t for each i.
                let c: Vec<u64> = from
                    .iter()
                    .map(|&i| {
                        let mut q = 1u64;
                        for &k in from {
                            if k != i {
                                q = mt.mul(q, mt.reduce(self.moduli[k].val()));
                            }
                        }
                        q
                    })
                    .collect();
                let mut acc = vec![0u128; self.n];
                for (t, (yi, &ci)) in y.iter().zip(&c).enumerate() {
                    let ci = u128::from(ci);
                    for (s, &v) in acc.iter_mut().zip(yi) {
                        *s += u128::from(v) * ci;
                    }
                    // Products are < 2^122: reduce every 32 terms so the sum stays < 2^128.
                    if t % 32 == 31 {
                        for s in acc.iter_mut() {
                            *s = u128::from(mt.reduce_u128(*s));
                        }
                    }
                }
                acc.iter().map(|&s| mt.reduce_u128(s)).collect()
            })
            .collect()
    }
}

/// The negacyclic NTT of one prime p in fhe-math's order (module docs): entry i of the
/// transform of a ∈ Z_p[X]/(X^N + 1) is a(ψ^{e_i}). Computed by tfhe-ntt's plan followed by
/// the permutation into that order when the plan exists and reproduces fhe-math's transform
/// on a test vector (checked when the ring is built), else by fhe-math's [`NttOperator`].
/// Inputs are reduced residues (< p); outputs too.
pub(crate) struct Ntt {
    native: NttOperator,
    /// The plan and `src`: fhe-math's entry j is the plan's entry src[j].
    fast: Option<(Plan, Vec<usize>)>,
}

impl std::fmt::Debug for Ntt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ntt {{ fast: {} }}", self.fast.is_some())
    }
}

impl Ntt {
    fn new(m: &Modulus, native: NttOperator, n: usize, fast: bool) -> Self {
        let plan = if fast {
            Plan::try_new(n, m.val())
        } else {
            None
        };
        let fast = plan.and_then(|plan| {
            // Both transforms of X: the evaluation points ψ^{e_j} and ψ'^{e_i}, the same set.
            let mut x = vec![0u64; n];
            x[1] = 1;
            let mut tx = x.clone();
            native.forward(&mut x);
            plan.fwd(&mut tx);
            let at: HashMap<u64, usize> = tx.iter().enumerate().map(|(i, &v)| (v, i)).collect();
            let src: Vec<usize> = x.iter().filter_map(|v| at.get(v).copied()).collect();
            (src.len() == n).then_some((plan, src))
        });
        let out = Self { native, fast };
        // The permuted plan must reproduce fhe-math's transform (forward and inverse) on a
        // pseudo-random vector with the extreme residues 0 and p − 1; otherwise keep the native.
        if out.fast.is_some() {
            let mut rng = ChaCha20Rng::seed_from_u64(m.val());
            let mut a: Vec<u64> = (0..n).map(|_| rng.random_range(0..m.val())).collect();
            a[0] = m.val() - 1;
            a[n - 1] = 0;
            let (mut f, mut g) = (a.clone(), a.clone());
            out.forward(&mut f);
            out.native.forward(&mut g);
            let fwd_ok = f == g;
            out.backward(&mut f);
            out.native.backward(&mut g);
            if !fwd_ok || f != g || f != a {
                return Self {
                    native: out.native,
                    fast: None,
                };
            }
        }
        out
    }

    /// Forward transform in place (coefficients → NTT order of the module docs).
    pub fn forward(&self, a: &mut [u64]) {
        match &self.fast {
            Some((plan, src)) => {
                plan.fwd(a);
                let t = a.to_vec();
                for (x, &s) in a.iter_mut().zip(src) {
                    *x = t[s];
                }
            }
            None => self.native.forward(a),
        }
    }

    /// Inverse transform in place (NTT order → coefficients).
    pub fn backward(&self, a: &mut [u64]) {
        match &self.fast {
            Some((plan, src)) => {
                let t = a.to_vec();
                for (&v, &s) in t.iter().zip(src) {
                    a[s] = v;
                }
                plan.inv(a);
                plan.normalize(a);
            }
            None => self.native.backward(a),
        }
    }
}

/// a^{−1} mod p by Fermat's little theorem, a^{p−2} (p prime: the chain's primes; 0 for
/// a ≡ 0, as fhe-math's `inv` then `unwrap_or(0)`). fhe-math's `inv` runs a big-integer
/// primality test of p on every call, which profiling showed as ~16 % of a bootstrap at
/// N = 2^12 (basis conversions, rescaling and ModDown each invert a few constants per call).
pub(crate) fn inv_mod(m: &Modulus, a: u64) -> u64 {
    m.pow(m.reduce(a), m.val() - 2)
}

/// Uniform ternary coefficients in {−1, 0, 1}.
pub(crate) fn sample_ternary<R: RngCore + CryptoRng>(n: usize, rng: &mut R) -> Vec<i64> {
    (0..n)
        .map(|_| i64::from(rng.random_range(0u8..3)) - 1)
        .collect()
}

/// Rounded Gaussian with σ = 3.2, tails cut at 6σ (Box–Muller on the CSPRNG's uniforms;
/// variable time, as in the reference libraries' samplers).
pub(crate) fn sample_gaussian<R: RngCore + CryptoRng>(n: usize, rng: &mut R) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt() * SIGMA;
        for z in [
            r * (std::f64::consts::TAU * u2).cos(),
            r * (std::f64::consts::TAU * u2).sin(),
        ] {
            if z.abs() <= 6.0 * SIGMA && out.len() < n {
                out.push(z.round() as i64);
            }
        }
    }
    out
}

/// The value of a modulus (fhe-math keeps it behind `Deref`).
pub(crate) trait ModVal {
    /// The prime p.
    fn val(&self) -> u64;
}

impl ModVal for Modulus {
    fn val(&self) -> u64 {
        **self
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::sync::Arc;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    use super::{ModVal, Ring};
    use crate::ckks::{
        bootstrap_params, BootstrapConfig, Ciphertext, CkksContext, CkksParams, Evaluator,
        GaloisKeys, PublicKey, RelinKey, SecretKey,
    };

    /// The 128-bit bootstrapping chain at N = 2^16 (L = 25, four special primes) and an
    /// INSECURE chain at N = 2^12.
    fn chains() -> Vec<CkksParams> {
        let n16 = BootstrapConfig::encapsulated(1 << 16).unwrap();
        let n12 = BootstrapConfig::encapsulated(1 << 12).unwrap();
        vec![
            bootstrap_params(16, n16.depth(), 54, None, 4, false).unwrap(),
            bootstrap_params(12, n12.depth(), 50, Some(2), 4, true).unwrap(),
        ]
    }

    #[test]
    fn fast_ntt_equals_fhe_math_native_on_every_prime() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for params in chains() {
            let fast = Ring::new(&params).unwrap();
            let native = Ring::new_native(&params).unwrap();
            for (j, m) in fast.moduli.iter().enumerate() {
                let p = m.val();
                assert!(fast.ntt[j].fast.is_some(), "prime {p}: no tfhe-ntt plan");
                assert!(native.ntt[j].fast.is_none());
                for _ in 0..2 {
                    let a: Vec<u64> = (0..fast.n).map(|_| rng.random_range(0..p)).collect();
                    let (mut x, mut y) = (a.clone(), a.clone());
                    fast.ntt[j].forward(&mut x);
                    native.ntt[j].native.forward(&mut y);
                    assert_eq!(x, y, "forward, prime {p}, N = {}", fast.n);
                    let (mut u, mut v) = (a.clone(), a);
                    fast.ntt[j].backward(&mut u);
                    native.ntt[j].native.backward(&mut v);
                    assert_eq!(u, v, "backward, prime {p}, N = {}", fast.n);
                }
            }
        }
    }

    /// The fast basis conversion equals its definition Σ_i [a_i·(Q̂_i)^{−1}]_{q_i}·(Q̂_i mod t)
    /// mod t, computed here coefficient by coefficient with scalar modular operations, for
    /// 4 → 26 primes (a digit of the 128-bit chain into the rest) and 26 → 4 (ModDown), with
    /// the extreme residues 0 and q − 1 included.
    #[test]
    fn basis_conversion_equals_its_definition() {
        let params = chains().swap_remove(0);
        let ring = Ring::new(&params).unwrap();
        let n = 64;
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let nqp = ring.nq + ring.np;
        let cases: [(Vec<usize>, Vec<usize>); 2] = [
            (
                (4..8).collect(),
                (0..nqp).filter(|i| !(4..8).contains(i)).collect(),
            ),
            ((ring.nq..nqp).collect(), (0..ring.nq).collect()),
        ];
        for (from, to) in cases {
            let a: Vec<Vec<u64>> = from
                .iter()
                .map(|&i| {
                    let p = ring.moduli[i].val();
                    let mut v: Vec<u64> = (0..n).map(|_| rng.random_range(0..p)).collect();
                    v[0] = p - 1;
                    v[1] = 0;
                    v
                })
                .collect();
            // Rows of N entries: the conversion only reads the first n here.
            let full: Vec<Vec<u64>> = a
                .iter()
                .map(|v| {
                    let mut w = v.clone();
                    w.resize(ring.n, 0);
                    w
                })
                .collect();
            let got = ring.convert(&full, &from, &to);
            for (&t, row) in to.iter().zip(&got) {
                let mt = &ring.moduli[t];
                for k in 0..n {
                    let mut want = 0u64;
                    for (j, &i) in from.iter().enumerate() {
                        let mi = &ring.moduli[i];
                        let (mut qhat_i, mut qhat_t) = (1u64, 1u64);
                        for &l in &from {
                            if l != i {
                                qhat_i = mi.mul(qhat_i, mi.reduce(ring.moduli[l].val()));
                                qhat_t = mt.mul(qhat_t, mt.reduce(ring.moduli[l].val()));
                            }
                        }
                        let y = mi.mul(a[j][k], mi.inv(qhat_i).unwrap());
                        want = mt.add(want, mt.mul(mt.reduce(y), qhat_t));
                    }
                    assert_eq!(row[k], want, "prime {t}, coefficient {k}");
                }
            }
        }
    }

    fn limbs(ct: &Ciphertext) -> (&[Vec<Vec<u64>>], usize) {
        (&ct.c, ct.level)
    }

    /// Keys, a relinearised product, a rescale and hoisted rotations from the same seeds are
    /// bit-identical with the fast NTT and with fhe-math's native NTT (INSECURE N = 2^12).
    #[test]
    fn key_switching_bit_identical_to_native_ntt_insecure() {
        let params = chains().pop().unwrap();
        let fast = CkksContext::new(params.clone()).unwrap();
        let native = CkksContext::new_native(params).unwrap();
        let run = |ctx: &Arc<CkksContext>| {
            let mut rng = ChaCha20Rng::seed_from_u64(11);
            let sk = SecretKey::generate(ctx, &mut rng);
            let pk = PublicKey::generate(ctx, &sk, &mut rng);
            let rk = RelinKey::generate(ctx, &sk, &mut rng);
            let gk = GaloisKeys::generate(ctx, &sk, &[1, 5, -3], &mut rng);
            let key = gk.keys.values().next().unwrap().digits.clone();
            let ev = Evaluator::new(Arc::clone(ctx), Some(rk), gk).unwrap();
            let top = ctx.params().max_level();
            let v: Vec<f64> = (0..ctx.params().slots())
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let pt = ctx.encode(&v, top, ctx.params().scale(top)).unwrap();
            let ct = ctx.encrypt(&pk, &pt, &mut rng).unwrap();
            let prod = ev.mul(&ct, &ct).unwrap();
            let rots = ev.rotate_hoisted(&prod, &[1, 5, -3]).unwrap();
            let dec = ctx.decrypt_decode(&sk, &rots[0]).unwrap();
            (key, ct, prod, rots, dec)
        };
        let (ka, ca, pa, ra, da) = run(&fast);
        let (kb, cb, pb, rb, db) = run(&native);
        assert_eq!(ka, kb, "Galois key");
        assert_eq!(limbs(&ca), limbs(&cb), "fresh ciphertext");
        assert_eq!(limbs(&pa), limbs(&pb), "product");
        assert_eq!(ra.len(), 3);
        for (x, y) in ra.iter().zip(&rb) {
            assert_eq!(limbs(x), limbs(y), "rotation");
        }
        assert_eq!(da, db);
        // The product is a real computation, not a copy: it dropped one level.
        assert_eq!(pa.level() + 1, ca.level());
    }
}
