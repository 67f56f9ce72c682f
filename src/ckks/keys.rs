//! Keys: the ternary secret s (zeroized on drop), the public key (−a·s + e, a), and hybrid
//! key-switching keys (Han–Ki): for digit j of the q-primes (q-primes grouped `digit_size` at
//! a time) the pair (b_j, a_j) over QP with b_j = −a_j·s + e_j + P·[Q/Q_j·((Q/Q_j)^{−1} mod Q_j)]·s'
//! — i.e. P·s' on the limbs of digit j and 0 on the other q-limbs. The relinearisation key has
//! s' = s², the Galois key of g has s' = s(X^g).

#![expect(
    clippy::indexing_slicing,
    reason = "limb indices < number of primes by construction"
)]

use std::collections::BTreeMap;

use rand::{CryptoRng, RngCore};
use zeroize::Zeroize;

use super::eval::CkksContext;
use super::ring::{sample_gaussian, sample_ternary, Limbs, ModVal};

/// The secret key s ∈ R with ternary coefficients, kept in NTT form over every prime of QP.
/// Zeroized on drop.
pub struct SecretKey {
    pub(crate) coeffs: Vec<i64>,
    pub(crate) ntt: Limbs,
    pub(crate) params_id: u64,
    pub(crate) key_id: u64,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey {{ key_id: {:#x}, .. }}", self.key_id)
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.coeffs.zeroize();
        for l in &mut self.ntt {
            l.zeroize();
        }
    }
}

impl SecretKey {
    /// Draw a uniform ternary secret (coefficients in {−1, 0, 1}).
    pub fn generate<R: RngCore + CryptoRng>(ctx: &CkksContext, rng: &mut R) -> Self {
        let ring = ctx.ring();
        let coeffs = sample_ternary(ring.n, rng);
        let all: Vec<usize> = (0..ring.nq + ring.np).collect();
        let ntt = ring.signed_to_ntt(&coeffs, &all);
        Self {
            coeffs,
            ntt,
            params_id: ctx.params().id(),
            key_id: rng.next_u64(),
        }
    }

    /// Identifier of the key set generated from this secret.
    pub fn key_id(&self) -> u64 {
        self.key_id
    }
}

/// The public key (b, a) = (−a·s + e, a) over q_0..q_L.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub(crate) b: Limbs,
    pub(crate) a: Limbs,
    pub(crate) params_id: u64,
    pub(crate) key_id: u64,
}

impl PublicKey {
    /// Identifier of the key set (that of the secret key).
    pub fn key_id(&self) -> u64 {
        self.key_id
    }

    /// Generate the public key of `sk`.
    pub fn generate<R: RngCore + CryptoRng>(
        ctx: &CkksContext,
        sk: &SecretKey,
        rng: &mut R,
    ) -> Self {
        let ring = ctx.ring();
        let q = ring.q_idx(ctx.params().max_level());
        let a = ring.uniform(&q, rng);
        let e = ring.signed_to_ntt(&sample_gaussian(ring.n, rng), &q);
        let mut b = a.clone();
        ring.mul_assign(&mut b, &sk.ntt[..q.len()], &q);
        ring.neg_assign(&mut b, &q);
        ring.add_assign(&mut b, &e, &q);
        Self {
            b,
            a,
            params_id: sk.params_id,
            key_id: sk.key_id,
        }
    }
}

/// A hybrid key-switching key from s' to s (one (b_j, a_j) pair per digit, over all of QP).
#[derive(Debug, Clone)]
pub struct KeySwitchKey {
    pub(crate) digits: Vec<(Limbs, Limbs)>,
    pub(crate) params_id: u64,
    pub(crate) key_id: u64,
}

impl KeySwitchKey {
    /// Key switching from `s_prime` (NTT form over the q-primes q_0..q_L) to `sk`.
    pub(crate) fn generate<R: RngCore + CryptoRng>(
        ctx: &CkksContext,
        sk: &SecretKey,
        s_prime: &[Vec<u64>],
        rng: &mut R,
    ) -> Self {
        let ring = ctx.ring();
        let nq = ring.nq;
        let all: Vec<usize> = (0..nq + ring.np).collect();
        let ds = ctx.params().digit_size();
        let ndig = nq.div_ceil(ds);
        // P mod q_i.
        let p_mod: Vec<u64> = (0..nq)
            .map(|i| {
                let m = &ring.moduli[i];
                ring.moduli[nq..]
                    .iter()
                    .fold(1u64, |acc, p| m.mul(acc, m.reduce(p.val())))
            })
            .collect();
        let mut digits = Vec::with_capacity(ndig);
        for j in 0..ndig {
            let a = ring.uniform(&all, rng);
            let e = ring.signed_to_ntt(&sample_gaussian(ring.n, rng), &all);
            let mut b = a.clone();
            ring.mul_assign(&mut b, &sk.ntt, &all);
            ring.neg_assign(&mut b, &all);
            ring.add_assign(&mut b, &e, &all);
            for i in j * ds..((j + 1) * ds).min(nq) {
                let m = &ring.moduli[i];
                let mut t = s_prime[i].clone();
                m.scalar_mul_vec(&mut t, p_mod[i]);
                m.add_vec(&mut b[i], &t);
            }
            digits.push((b, a));
        }
        Self {
            digits,
            params_id: sk.params_id,
            key_id: sk.key_id,
        }
    }

    /// Bytes held by the key.
    pub fn size_bytes(&self) -> usize {
        self.digits
            .iter()
            .map(|(b, a)| {
                8 * (b.iter().map(Vec::len).sum::<usize>() + a.iter().map(Vec::len).sum::<usize>())
            })
            .sum()
    }
}

/// The relinearisation key: key switching from s² to s.
#[derive(Debug, Clone)]
pub struct RelinKey(pub(crate) KeySwitchKey);

impl RelinKey {
    /// Generate the relinearisation key of `sk`.
    pub fn generate<R: RngCore + CryptoRng>(
        ctx: &CkksContext,
        sk: &SecretKey,
        rng: &mut R,
    ) -> Self {
        let ring = ctx.ring();
        let q = ring.q_idx(ctx.params().max_level());
        let mut s2: Limbs = sk.ntt[..q.len()].to_vec();
        ring.mul_assign(&mut s2, &sk.ntt[..q.len()], &q);
        let k = KeySwitchKey::generate(ctx, sk, &s2, rng);
        for l in &mut s2 {
            l.zeroize();
        }
        Self(k)
    }
}

/// Galois keys for a set of rotation steps (left rotations by r slots; negative r = right).
#[derive(Debug, Clone, Default)]
pub struct GaloisKeys {
    pub(crate) keys: BTreeMap<usize, KeySwitchKey>,
    pub(crate) steps: Vec<i64>,
}

impl GaloisKeys {
    /// Keys for the given rotation steps (duplicates and steps ≡ 0 mod N/2 are skipped).
    pub fn generate<R: RngCore + CryptoRng>(
        ctx: &CkksContext,
        sk: &SecretKey,
        steps: &[i64],
        rng: &mut R,
    ) -> Self {
        let ring = ctx.ring();
        let q = ring.q_idx(ctx.params().max_level());
        let mut out = Self::default();
        for &r in steps {
            let g = ctx.encoder().galois_element(r);
            if g == 1 || out.keys.contains_key(&g) {
                continue;
            }
            let perm = ring.galois_perm(g);
            let mut sg = ring.permute(&sk.ntt[..q.len()], &perm);
            let k = KeySwitchKey::generate(ctx, sk, &sg, rng);
            for l in &mut sg {
                l.zeroize();
            }
            out.keys.insert(g, k);
            out.steps.push(r);
        }
        out
    }

    /// The rotation steps with keys.
    pub fn steps(&self) -> &[i64] {
        &self.steps
    }

    /// Bytes held by all keys.
    pub fn size_bytes(&self) -> usize {
        self.keys.values().map(KeySwitchKey::size_bytes).sum()
    }
}
