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
use super::pool::LimbPool;
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
    /// The recycled limbs of the evaluator's temporaries (`pool` module docs).
    pub pool: LimbPool,
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
            pool: LimbPool::new(n, pool_cap_bytes(params)),
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

    /// acc + Σ_j a_j ⊙ b_j per prime (all NTT form over `primes`), the sum accumulated
    /// exactly in u128 over blocks of [`CONV_BLOCK`] residues and reduced once per block
    /// (every 15 terms for longer sums: products < 2^124 for primes < 2^62): the canonical
    /// residues of [`Ring::mul_add_assign`] applied term by term, with one reduction instead
    /// of one per term (the baby-step sums of linear transforms).
    pub fn mul_add_many(&self, acc: &mut Limbs, terms: &[(&Limbs, &Limbs)], primes: &[usize]) {
        acc.par_iter_mut()
            .zip(primes.par_iter())
            .enumerate()
            .for_each(|(li, (s, &j))| {
                let m = &self.moduli[j];
                let mut buf = [0u128; CONV_BLOCK];
                for (b, o) in s.chunks_mut(CONV_BLOCK).enumerate() {
                    let lo = b * CONV_BLOCK;
                    let len = o.len();
                    let acc = &mut buf[..len];
                    for (a, &v) in acc.iter_mut().zip(o.iter()) {
                        *a = u128::from(v);
                    }
                    for (t, (x, y)) in terms.iter().enumerate() {
                        let (x, y) = (&x[li][lo..lo + len], &y[li][lo..lo + len]);
                        for k in 0..len {
                            acc[k] += u128::from(x[k]) * u128::from(y[k]);
                        }
                        if t % 15 == 14 {
                            for a in acc.iter_mut() {
                                *a = u128::from(m.reduce_u128(*a));
                            }
                        }
                    }
                    for (o, &a) in o.iter_mut().zip(acc.iter()) {
                        *o = m.reduce_u128(a);
                    }
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
    #[cfg(test)]
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
        // A sequential copy first brings the limb into cache for the gather's random reads.
        a.par_iter()
            .map(|x| {
                with_scratch(x.len(), |t| {
                    t.copy_from_slice(x);
                    let mut out = self.pool.take();
                    for (o, &p) in out.iter_mut().zip(perm) {
                        *o = t[p];
                    }
                    out
                })
            })
            .collect()
    }

    /// Fast basis conversion of coefficient-form limbs `a` (primes `from`) to the primes
    /// `to`: Σ_i [a_i·(Q̂_i)^{−1}]_{q_i}·(Q̂_i mod t) (result may exceed the exact value by a
    /// small multiple of Q = Π from; standard in hybrid key switching). Output in coefficient
    /// form.
    #[cfg(test)]
    pub fn convert(&self, a: &[Vec<u64>], from: &[usize], to: &[usize]) -> Limbs {
        let y = self.convert_digits(a, from);
        to.par_iter()
            .map(|&t| {
                let mut out = vec![0u64; self.n];
                self.convert_limb(&y, from, t, &mut out);
                out
            })
            .collect()
    }

    /// [`Ring::convert`] followed by the forward NTT of every output limb, fused per limb
    /// (the converted limb is transformed in a per-thread buffer and written once, in NTT
    /// order): the extension step of ModUp and ModDown. Bit-identical to `convert` then
    /// [`Ring::to_ntt`].
    pub fn convert_to_ntt(&self, a: &[Vec<u64>], from: &[usize], to: &[usize]) -> Limbs {
        let y = self.pool.guard(self.convert_digits(a, from));
        to.par_iter()
            .map(|&t| {
                with_scratch(self.n, |buf| {
                    self.convert_limb(&y, from, t, buf);
                    let mut out = self.pool.take();
                    self.ntt[t].forward_gather(buf, &mut out);
                    out
                })
            })
            .collect()
    }

    /// The first step of the fast basis conversion: y_i = [a_i·(Q̂_i)^{−1}]_{q_i} (canonical
    /// residues) for each prime q_i of `from`, Q̂_i = Π_{k ≠ i} q_k, by Shoup multiplication
    /// with the precomputed w' = ⌊w·2^64/q_i⌋ of the constant w = (Q̂_i)^{−1} mod q_i.
    fn convert_digits(&self, a: &[Vec<u64>], from: &[usize]) -> Limbs {
        a.par_iter()
            .zip(from.par_iter())
            .map(|(x, &i)| {
                let m = &self.moduli[i];
                let w = inv_mod(m, self.prod_mod(from, i, i));
                let ws = m.shoup(w);
                let mut out = self.pool.take();
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = m.mul_shoup(v, w, ws);
                }
                out
            })
            .collect()
    }

    /// Π_{k ∈ primes, k ≠ skip} q_k mod the prime `t` (Q̂_skip mod t).
    fn prod_mod(&self, primes: &[usize], skip: usize, t: usize) -> u64 {
        let mt = &self.moduli[t];
        primes
            .iter()
            .filter(|&&k| k != skip)
            .fold(1u64, |q, &k| mt.mul(q, mt.reduce(self.moduli[k].val())))
    }

    /// The second step of the fast basis conversion into the prime `t`:
    /// out = Σ_i y_i·(Q̂_i mod t) mod t, the sum accumulated exactly in u128 over blocks of
    /// [`CONV_BLOCK`] residues (kept in L1) and reduced once (products < 2^124 for primes
    /// < 2^62: 15 of them plus a reduced residue stay below 2^128, so longer sums are reduced
    /// every 15 terms). The reduction is exact, so the output is the canonical residue, the
    /// same whatever the grouping.
    fn convert_limb(&self, y: &[Vec<u64>], from: &[usize], t: usize, out: &mut [u64]) {
        let mt = &self.moduli[t];
        // Kept as u64 so that each product is one 64×64 → 128-bit multiplication.
        let c: Vec<u64> = from.iter().map(|&i| self.prod_mod(from, i, t)).collect();
        let mut acc = [0u128; CONV_BLOCK];
        for (b, o) in out.chunks_mut(CONV_BLOCK).enumerate() {
            let lo = b * CONV_BLOCK;
            let acc = &mut acc[..o.len()];
            acc.fill(0);
            for (j, (yi, &ci)) in y.iter().zip(&c).enumerate() {
                for (s, &v) in acc.iter_mut().zip(&yi[lo..lo + o.len()]) {
                    *s += u128::from(v) * u128::from(ci);
                }
                if j % 15 == 14 {
                    for s in acc.iter_mut() {
                        *s = u128::from(mt.reduce_u128(*s));
                    }
                }
            }
            for (o, &s) in o.iter_mut().zip(acc.iter()) {
                *o = mt.reduce_u128(s);
            }
        }
    }

    /// The fast basis conversion as first written (a u128 vector of N sums per output limb):
    /// the oracle of the blocked kernel.
    #[cfg(test)]
    pub fn convert_reference(&self, a: &[Vec<u64>], from: &[usize], to: &[usize]) -> Limbs {
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

/// The cap of the ring's [`LimbPool`]: the limbs of one key switch at the top level L (the
/// ModUp digits, ⌈(L+1)/d⌉·(L + 1 + k) limbs, and the two accumulators over Q·P) plus
/// [`POOL_CIPHERTEXTS`] ciphertexts of 2(L + 1) limbs (the baby-step rotations and
/// accumulators of a linear transform), N residues of 8 bytes each.
pub(crate) fn pool_cap_bytes(params: &CkksParams) -> u64 {
    let l1 = params.max_level() + 1;
    let qp = l1 + params.p().len();
    let digits = l1.div_ceil(params.digit_size().max(1));
    let limbs = (digits + 2) * qp + POOL_CIPHERTEXTS * 2 * l1;
    (limbs * params.n() * 8) as u64
}

/// Ciphertexts' worth of limbs the pool retains beyond one key switch ([`pool_cap_bytes`]).
pub(crate) const POOL_CIPHERTEXTS: usize = 16;

/// Residues per block of the basis-conversion and key inner-product kernels: u128 sums of
/// one block (4 KiB) stay in L1.
pub(crate) const CONV_BLOCK: usize = 256;

thread_local! {
    /// A per-thread work buffer of N residues for the NTT's reordering and the fused
    /// conversion (no allocation, hence no page faults, per transform).
    static SCRATCH: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Run `f` on this thread's work buffer resized to n (a fresh buffer if it is in use).
pub(crate) fn with_scratch<T>(n: usize, f: impl FnOnce(&mut [u64]) -> T) -> T {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.resize(n, 0);
            f(&mut buf[..n])
        }
        Err(_) => f(&mut vec![0u64; n]),
    })
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
            Some((plan, src)) => with_scratch(a.len(), |t| {
                t.copy_from_slice(a);
                plan.fwd(t);
                for (x, &s) in a.iter_mut().zip(src) {
                    *x = t[s];
                }
            }),
            None => self.native.forward(a),
        }
    }

    /// Forward transform of `work` (coefficients; overwritten) written to `out` (every entry,
    /// `out` as long as `work`) in the NTT order of the module docs: the reordering writes the
    /// output directly.
    pub fn forward_gather(&self, work: &mut [u64], out: &mut [u64]) {
        match &self.fast {
            Some((plan, src)) => {
                plan.fwd(work);
                for (o, &s) in out.iter_mut().zip(src) {
                    *o = work[s];
                }
            }
            None => {
                self.native.forward(work);
                out.copy_from_slice(work);
            }
        }
    }

    /// Inverse transform in place (NTT order → coefficients).
    pub fn backward(&self, a: &mut [u64]) {
        match &self.fast {
            Some((plan, src)) => {
                with_scratch(a.len(), |t| {
                    t.copy_from_slice(a);
                    for (&v, &s) in t.iter().zip(src) {
                        a[s] = v;
                    }
                });
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

    use super::{Limbs, ModVal, Ring};
    use crate::ckks::keys::KeySwitchKey;
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

    /// The 128-bit bootstrapping chains at N = 2^16 with four and with eight special primes
    /// (digits of 4 and of 8 primes).
    fn chains_128() -> Vec<CkksParams> {
        let n16 = BootstrapConfig::encapsulated(1 << 16).unwrap();
        [4, 8]
            .iter()
            .map(|&k| bootstrap_params(16, n16.depth(), 54, None, k, false).unwrap())
            .collect()
    }

    /// Uniform residues of prime index `i`, with the extreme residues 0 and q − 1 and
    /// `extra` (e.g. residues whose converted digit is q − 1) at the front.
    fn residues(ring: &Ring, i: usize, extra: &[u64], rng: &mut ChaCha20Rng) -> Vec<u64> {
        let p = ring.moduli[i].val();
        let mut v: Vec<u64> = (0..ring.n).map(|_| rng.random_range(0..p)).collect();
        v[0] = 0;
        v[1] = p - 1;
        v[2] = p - 1;
        for (k, &x) in extra.iter().enumerate() {
            v[3 + k] = x;
        }
        v[ring.n - 1] = p - 1;
        v
    }

    /// The blocked basis-conversion kernel (Shoup multiplication by (Q̂_i)^{−1}, u128 sums per
    /// block of residues) and its fusion with the forward NTT are bit-identical to the
    /// conversion as first written followed by the NTT, on every prime of both 128-bit
    /// chains: each digit of the top level into the other primes of QP, the last (partial)
    /// digit of a low level, ModDown's P → Q_L, and Q_L → P. Inputs include 0, q − 1 and
    /// residues whose converted value y_i is q_i − 1 (the largest sums).
    #[test]
    fn blocked_conversion_bit_identical_to_reference_on_every_prime() {
        let mut rng = ChaCha20Rng::seed_from_u64(23);
        for params in chains_128() {
            let ring = Ring::new(&params).unwrap();
            let (nq, np) = (ring.nq, ring.np);
            let ds = params.digit_size();
            let qp: Vec<usize> = (0..nq + np).collect();
            let mut cases: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
            for lo in (0..nq).step_by(ds) {
                let from: Vec<usize> = (lo..(lo + ds).min(nq)).collect();
                let to = qp.iter().copied().filter(|i| !from.contains(i)).collect();
                cases.push((from, to));
            }
            // Level 9: its last digit is partial for digits of 4 (8, 9) and of 8 (8, 9).
            let from: Vec<usize> = vec![8, 9];
            let to = (0..10)
                .chain(nq..nq + np)
                .filter(|i| !from.contains(i))
                .collect();
            cases.push((from, to));
            cases.push(((nq..nq + np).collect(), (0..nq).collect()));
            cases.push(((0..nq).collect(), (nq..nq + np).collect()));
            for (from, to) in cases {
                let a: Vec<Vec<u64>> = from
                    .iter()
                    .map(|&i| {
                        let m = &ring.moduli[i];
                        // a = q̂_i·(q − 1) gives y = a·q̂_i^{−1} = q − 1.
                        let qhat = ring.prod_mod(&from, i, i);
                        residues(&ring, i, &[m.mul(m.val() - 1, qhat)], &mut rng)
                    })
                    .collect();
                let want = ring.convert_reference(&a, &from, &to);
                let got = ring.convert(&a, &from, &to);
                assert_eq!(got, want, "conversion {from:?} → {} primes", to.len());
                let mut want_ntt = want;
                ring.to_ntt(&mut want_ntt, &to);
                let got_ntt = ring.convert_to_ntt(&a, &from, &to);
                assert_eq!(got_ntt, want_ntt, "conversion + NTT {from:?}");
            }
        }
    }

    /// A key-switching key with uniform limbs (q − 1 at a few places) of `digits` digits
    /// for ciphertexts up to `level`: the inner product only reads its limbs.
    fn random_key(ring: &Ring, level: usize, digits: usize, rng: &mut ChaCha20Rng) -> KeySwitchKey {
        let qp = ring.qp_idx(level);
        let mut limbs =
            || -> Vec<Vec<u64>> { qp.iter().map(|&i| residues(ring, i, &[], rng)).collect() };
        KeySwitchKey {
            digits: (0..digits).map(|_| (limbs(), limbs())).collect(),
            level,
            nq: ring.nq,
            params_id: 0,
            key_id: 0,
        }
    }

    /// The blocked key inner product Σ_j ext_j·(b_j, a_j) over QP is bit-identical to the
    /// kernel as first written, with and without a Galois permutation, on every prime of
    /// both 128-bit chains at the top level and at level 9 (keys made for the top level),
    /// and with 20 digits on the INSECURE N = 2^12 chain (the reduction every 15 digits);
    /// inputs and keys include 0 and q − 1, and one case has every residue q − 1.
    #[test]
    fn blocked_key_inner_product_bit_identical_to_reference() {
        let mut rng = ChaCha20Rng::seed_from_u64(29);
        let mut params = chains_128();
        params.push(chains().pop().unwrap());
        for (pi, params) in params.into_iter().enumerate() {
            let insecure = pi == 2;
            let ctx = CkksContext::new(params.clone()).unwrap();
            let ev = Evaluator::new(Arc::clone(&ctx), None, GaloisKeys::default()).unwrap();
            let ring = ctx.ring();
            let top = params.max_level();
            let ds = params.digit_size();
            let levels: Vec<(usize, usize)> = if insecure {
                vec![(top, 20)]
            } else {
                vec![(top, (top + 1).div_ceil(ds)), (9, 10usize.div_ceil(ds))]
            };
            for (level, digits) in levels {
                let key = random_key(ring, top, digits.max((top + 1).div_ceil(ds)), &mut rng);
                let qp = ring.qp_idx(level);
                let mut ext: Vec<Vec<Vec<u64>>> = (0..digits)
                    .map(|_| {
                        qp.iter()
                            .map(|&i| residues(ring, i, &[], &mut rng))
                            .collect()
                    })
                    .collect();
                let perm = ring.galois_perm(5);
                for p in [None, Some(&perm[..])] {
                    let want = ev.key_switch_ext_qp_reference(&ext, level, &key, p);
                    let got = ev.key_switch_ext_qp(&ext, level, &key, p);
                    assert_eq!(
                        got,
                        want,
                        "N = {}, level {level}, perm {}",
                        ring.n,
                        p.is_some()
                    );
                }
                if insecure {
                    // Every residue of ext and key at q − 1: the largest sums.
                    let mut key = key.clone();
                    for (i, l) in ext.iter_mut().flatten().enumerate() {
                        l.fill(ring.moduli[qp[i % qp.len()]].val() - 1);
                    }
                    for (b, a) in &mut key.digits {
                        for (li, l) in b.iter_mut().chain(a.iter_mut()).enumerate() {
                            let i = ring.qp_idx(top)[li % (top + 1 + ring.np)];
                            l.fill(ring.moduli[i].val() - 1);
                        }
                    }
                    let want = ev.key_switch_ext_qp_reference(&ext, level, &key, None);
                    assert_eq!(ev.key_switch_ext_qp(&ext, level, &key, None), want);
                }
            }
        }
    }

    /// The lazy sum of products (one reduction per block) equals `mul_add_assign` term by
    /// term, for 1, 7 and 20 terms (20: the reduction every 15 terms) on every prime of the
    /// 128-bit chain with 8 special primes and of the INSECURE N = 2^12 chain, with 0 and
    /// q − 1 in the inputs and one case with every residue q − 1.
    #[test]
    fn lazy_product_sum_equals_term_by_term() {
        let mut rng = ChaCha20Rng::seed_from_u64(37);
        for params in [chains_128().pop().unwrap(), chains().pop().unwrap()] {
            let ring = Ring::new(&params).unwrap();
            let primes: Vec<usize> = (0..ring.nq + ring.np).collect();
            let draw = |rng: &mut ChaCha20Rng| -> Vec<Vec<u64>> {
                primes
                    .iter()
                    .map(|&i| residues(&ring, i, &[], rng))
                    .collect()
            };
            for (count, all_max) in [(1, false), (7, false), (20, false), (20, true)] {
                let mut terms: Vec<(Limbs, Limbs)> = (0..count)
                    .map(|_| (draw(&mut rng), draw(&mut rng)))
                    .collect();
                let mut acc = draw(&mut rng);
                if all_max {
                    // residues() puts q − 1 at index 1.
                    for l in terms
                        .iter_mut()
                        .flat_map(|(a, b)| a.iter_mut().chain(b.iter_mut()))
                        .chain(acc.iter_mut())
                    {
                        let top = l[1];
                        l.fill(top);
                    }
                }
                let mut want = acc.clone();
                for (a, b) in &terms {
                    ring.mul_add_assign(&mut want, a, b, &primes);
                }
                let refs: Vec<(&Limbs, &Limbs)> = terms.iter().map(|(a, b)| (a, b)).collect();
                ring.mul_add_many(&mut acc, &refs, &primes);
                assert_eq!(
                    acc, want,
                    "{count} terms, N = {}, all q − 1: {all_max}",
                    ring.n
                );
            }
        }
    }

    /// Rescale and ModDown (each fused into one Shoup pass after the NTT) equal their
    /// definitions computed coefficient by coefficient with fhe-math's scalar operations and
    /// native NTT: rescale [(x_i − [x_ℓ]_centred)·q_ℓ^{−1}]_{q_i}; ModDown
    /// [(x_i − Conv_{P→Q}([x]_P)_i)·P^{−1}]_{q_i} with the conversion as first written.
    /// INSECURE N = 2^12 chain (4 special primes) and the 128-bit N = 2^16 chain with 8;
    /// uniform limbs with 0 and q − 1.
    #[test]
    fn rescale_and_mod_down_equal_their_definitions() {
        let mut rng = ChaCha20Rng::seed_from_u64(31);
        let n12 = chains().pop().unwrap();
        for params in [n12, chains_128().pop().unwrap()] {
            let ctx = CkksContext::new(params.clone()).unwrap();
            let native = Ring::new_native(&params).unwrap();
            let ev = Evaluator::new(Arc::clone(&ctx), None, GaloisKeys::default()).unwrap();
            let ring = ctx.ring();
            let n = ring.n;
            let level = params.max_level();
            let coeffs = |limbs: &[Vec<u64>], primes: &[usize]| {
                let mut c = limbs.to_vec();
                native.to_coeffs(&mut c, primes);
                c
            };
            // Rescale.
            let q = ring.q_idx(level);
            let poly: Vec<Vec<u64>> = q
                .iter()
                .map(|&i| residues(ring, i, &[], &mut rng))
                .collect();
            let ct = Ciphertext {
                c: vec![poly.clone(), poly.clone()],
                level,
                scale: params.scale(level),
                params_id: params.id(),
            };
            let got = ev.rescale(&ct).unwrap();
            let xc = coeffs(&poly, &q);
            let ql = ring.moduli[level].val();
            let mut want: Vec<Vec<u64>> = (0..level)
                .map(|i| {
                    let m = &ring.moduli[i];
                    let inv = m.inv(m.reduce(ql)).unwrap();
                    (0..n)
                        .map(|k| {
                            let v = xc[level][k];
                            let t = if v > ql / 2 {
                                m.sub(m.reduce(v), m.reduce(ql))
                            } else {
                                m.reduce(v)
                            };
                            m.mul(m.sub(xc[i][k], t), inv)
                        })
                        .collect()
                })
                .collect();
            native.to_ntt(&mut want, &q[..level]);
            assert_eq!(got.c[0], want, "rescale, N = {n}");
            assert_eq!(got.c[1], want);
            // ModDown.
            let qp = ring.qp_idx(level);
            let acc: Vec<Vec<u64>> = qp
                .iter()
                .map(|&i| residues(ring, i, &[], &mut rng))
                .collect();
            let got = ev.mod_down(acc.clone(), level);
            let pidx: Vec<usize> = (ring.nq..ring.nq + ring.np).collect();
            let xp = coeffs(&acc[q.len()..], &pidx);
            let mut conv = ring.convert_reference(&xp, &pidx, &q);
            native.to_ntt(&mut conv, &q);
            let want: Vec<Vec<u64>> = q
                .iter()
                .map(|&i| {
                    let m = &ring.moduli[i];
                    let p = pidx
                        .iter()
                        .fold(1u64, |a, &j| m.mul(a, m.reduce(ring.moduli[j].val())));
                    let pinv = m.inv(p).unwrap();
                    (0..n)
                        .map(|k| m.mul(m.sub(acc[i][k], conv[i][k]), pinv))
                        .collect()
                })
                .collect();
            assert_eq!(got, want, "ModDown, N = {n}, {} special primes", ring.np);
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
