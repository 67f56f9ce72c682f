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
use std::sync::Arc;

use rand::{CryptoRng, RngCore};
use zeroize::Zeroize;

use super::encapsulation::EncapsulationKeys;
use super::eval::CkksContext;
use super::params::CkksParams;
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

/// A hybrid key-switching key from s' to s (one (b_j, a_j) pair per digit), made for
/// ciphertexts up to level `level`: its limbs are q_0..q_level followed by the special primes
/// (a key made at the level where it is used is smaller: ⌈(ℓ+1)/digit_size⌉ digits of ℓ + 1 + k
/// limbs each).
#[derive(Debug, Clone)]
pub struct KeySwitchKey {
    pub(crate) digits: Vec<(Limbs, Limbs)>,
    pub(crate) level: usize,
    pub(crate) nq: usize,
    pub(crate) params_id: u64,
    pub(crate) key_id: u64,
}

impl KeySwitchKey {
    /// Key switching from `s_prime` (NTT form over q_0..q_level at least) to `sk`, for
    /// ciphertexts at levels ≤ `level` (clamped to L).
    pub(crate) fn generate<R: RngCore + CryptoRng>(
        ctx: &CkksContext,
        sk: &SecretKey,
        s_prime: &[Vec<u64>],
        level: usize,
        rng: &mut R,
    ) -> Self {
        let ring = ctx.ring();
        let nq = ring.nq;
        let level = level.min(nq - 1);
        let primes = ring.qp_idx(level);
        let ds = ctx.params().digit_size();
        let ndig = (level + 1).div_ceil(ds);
        // P mod q_i.
        let p_mod: Vec<u64> = (0..=level)
            .map(|i| {
                let m = &ring.moduli[i];
                ring.moduli[nq..]
                    .iter()
                    .fold(1u64, |acc, p| m.mul(acc, m.reduce(p.val())))
            })
            .collect();
        let s_limbs: Limbs = primes.iter().map(|&i| sk.ntt[i].clone()).collect();
        let mut digits = Vec::with_capacity(ndig);
        for j in 0..ndig {
            let a = ring.uniform(&primes, rng);
            let mut e = ring.signed_to_ntt(&sample_gaussian(ring.n, rng), &primes);
            // b's limbs from the limb pool: the previous digit's error limbs, recycled.
            let mut b = ring.pool.copy_limbs(&a);
            ring.mul_assign(&mut b, &s_limbs, &primes);
            ring.neg_assign(&mut b, &primes);
            ring.add_assign(&mut b, &e, &primes);
            // The error is secret: cleared before its limbs go back to the pool.
            for l in &mut e {
                l.fill(0);
            }
            ring.pool.put_all(e);
            // Limb i of q_0..q_level sits at position i (the special primes follow).
            for i in j * ds..((j + 1) * ds).min(level + 1) {
                let m = &ring.moduli[i];
                let mut t = s_prime[i].clone();
                m.scalar_mul_vec(&mut t, p_mod[i]);
                m.add_vec(&mut b[i], &t);
            }
            digits.push((b, a));
        }
        let mut s_limbs = s_limbs;
        for l in &mut s_limbs {
            l.zeroize();
        }
        Self {
            digits,
            level,
            nq,
            params_id: sk.params_id,
            key_id: sk.key_id,
        }
    }

    /// Position of the limb of prime index `i` (q_0..q_L, then the special primes).
    pub(crate) fn pos(&self, i: usize) -> usize {
        if i < self.nq {
            i
        } else {
            self.level + 1 + (i - self.nq)
        }
    }

    /// The highest ciphertext level this key switches.
    pub fn level(&self) -> usize {
        self.level
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

    /// Bytes of a key made for level `level` under `params` (the memory model of
    /// [`KeySwitchKey::size_bytes`] before generation): ⌈(ℓ+1)/d⌉ digits × 2 polynomials ×
    /// (ℓ + 1 + k) limbs × N words of 8 bytes.
    pub fn model_bytes(params: &CkksParams, level: usize) -> u64 {
        let level = level.min(params.max_level());
        let ndig = (level + 1).div_ceil(params.digit_size()) as u64;
        ndig * 2 * (level + 1 + params.p().len()) as u64 * params.n() as u64 * 8
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
        let k = KeySwitchKey::generate(ctx, sk, &s2, ctx.params().max_level(), rng);
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
    /// The switching keys of sparse-secret encapsulation (bootstrapping), when made.
    pub(crate) encapsulation: Option<Arc<EncapsulationKeys>>,
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
            let k = KeySwitchKey::generate(ctx, sk, &sg, q.len() - 1, rng);
            for l in &mut sg {
                l.zeroize();
            }
            out.keys.insert(g, k);
            out.steps.push(r);
        }
        out
    }

    /// Keys for Galois elements g (X ↦ X^g, g odd mod 2N: 5^r is a left rotation by r slots,
    /// 2N − 1 the complex conjugation of every slot), each made for ciphertexts up to the
    /// given level (the level where it is used: smaller keys). Elements already present or
    /// equal to 1 are skipped; the rotation step of each new rotation element is recorded.
    pub fn generate_elements<R: RngCore + CryptoRng>(
        &mut self,
        ctx: &CkksContext,
        sk: &SecretKey,
        elements: &[(usize, usize)],
        rng: &mut R,
    ) {
        let ring = ctx.ring();
        let two_n = 2 * ring.n;
        for &(g, level) in elements {
            let g = g % two_n;
            if g == 1 || g.is_multiple_of(2) || self.keys.contains_key(&g) {
                continue;
            }
            let level = level.min(ctx.params().max_level());
            let q = ring.q_idx(level);
            let perm = ring.galois_perm(g);
            let mut sg = ring.permute(&sk.ntt[..q.len()], &perm);
            let k = KeySwitchKey::generate(ctx, sk, &sg, level, rng);
            for l in &mut sg {
                l.zeroize();
            }
            self.keys.insert(g, k);
            if let Some(r) = (0..ring.n / 2).find(|&r| ctx.encoder().galois_element(r as i64) == g)
            {
                self.steps.push(r as i64);
            }
        }
    }

    /// Whether a key for the Galois element g is present.
    pub fn has_element(&self, g: usize) -> bool {
        self.keys.contains_key(&g)
    }

    /// The rotation steps with keys.
    pub fn steps(&self) -> &[i64] {
        &self.steps
    }

    /// Bytes held by all keys (the encapsulation keys included).
    pub fn size_bytes(&self) -> usize {
        self.keys
            .values()
            .map(KeySwitchKey::size_bytes)
            .sum::<usize>()
            + self.encapsulation.as_ref().map_or(0, |k| k.size_bytes())
    }

    /// Add the switching keys of sparse-secret encapsulation (bootstrapping with
    /// [`crate::ckks::BootstrapConfig::sparse_secret`]); replaces any present.
    pub fn set_encapsulation(&mut self, keys: EncapsulationKeys) {
        self.encapsulation = Some(Arc::new(keys));
    }

    /// The encapsulation keys, when present.
    pub fn encapsulation(&self) -> Option<&EncapsulationKeys> {
        self.encapsulation.as_deref()
    }
}
