//! CKKS parameters: ring degree N = 2^log_n, the modulus chain Q = q_0·…·q_L, the special
//! primes P of hybrid key switching, the scale chain Δ_ℓ and the security check against the
//! HomomorphicEncryption.org table (128-bit classical security, ternary secret, σ = 3.2).

use super::CkksError;

/// HomomorphicEncryption.org standard, 128-bit classical security, ternary secret:
/// (log₂ N, max log₂(QP)).
pub const HE_STANDARD_128: [(u32, u32); 7] = [
    (10, 27),
    (11, 54),
    (12, 109),
    (13, 218),
    (14, 438),
    (15, 881),
    (16, 1772),
];

/// Largest key-switching key [`CkksParams::for_depth`] accepts (bytes).
pub const MAX_KEY_BYTES: usize = 320 << 20;

/// Standard deviation of the discrete (rounded) Gaussian error, σ = 3.2.
pub const SIGMA: f64 = 3.2;

/// Whether the parameters meet the HomomorphicEncryption.org 128-bit bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SecurityLevel {
    /// log₂(QP) within the table for this N: 128-bit classical security.
    Bits128,
    /// Outside the table: accepted only with `insecure(true)`; for tests and toys.
    Insecure,
}

impl std::fmt::Display for SecurityLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bits128 => write!(f, "128-bit (HomomorphicEncryption.org, ternary secret)"),
            Self::Insecure => write!(f, "INSECURE (outside the HomomorphicEncryption.org table)"),
        }
    }
}

/// Validating builder of [`CkksParams`].
#[derive(Debug, Clone)]
pub struct CkksParamsBuilder {
    log_n: u32,
    q_bits: Vec<u32>,
    p_bits: Vec<u32>,
    scale_bits: u32,
    digit_size: Option<usize>,
    insecure: bool,
}

impl Default for CkksParamsBuilder {
    fn default() -> Self {
        Self {
            log_n: 15,
            q_bits: Vec::new(),
            p_bits: Vec::new(),
            scale_bits: 40,
            digit_size: None,
            insecure: false,
        }
    }
}

impl CkksParamsBuilder {
    /// A builder with no moduli yet (N = 2^15, scale 2^40).
    pub fn new() -> Self {
        Self::default()
    }
    /// log₂ N (3 ≤ log_n ≤ 17).
    pub fn log_n(&mut self, log_n: u32) -> &mut Self {
        self.log_n = log_n;
        self
    }
    /// Bit sizes of q_0, q_1, …, q_L (q_0 the base prime, the others the rescaling primes).
    pub fn q_bits(&mut self, bits: &[u32]) -> &mut Self {
        self.q_bits = bits.to_vec();
        self
    }
    /// Bit sizes of the special primes of hybrid key switching.
    pub fn p_bits(&mut self, bits: &[u32]) -> &mut Self {
        self.p_bits = bits.to_vec();
        self
    }
    /// log₂ Δ_0, the scale at level 0 (the other levels follow, see [`CkksParams::scale`]).
    pub fn scale_bits(&mut self, bits: u32) -> &mut Self {
        self.scale_bits = bits;
        self
    }
    /// Number of q-primes per key-switching digit (default: the largest for which every
    /// digit's product stays below P).
    pub fn digit_size(&mut self, d: usize) -> &mut Self {
        self.digit_size = Some(d);
        self
    }
    /// Accept parameters outside the HomomorphicEncryption.org table.
    pub fn insecure(&mut self, yes: bool) -> &mut Self {
        self.insecure = yes;
        self
    }

    /// Check every invariant, generate the primes and the scale chain.
    ///
    /// # Errors
    /// [`CkksError::BadParam`] for an out-of-range size, [`CkksError::Insecure`] above the
    /// 128-bit table without `insecure(true)`, [`CkksError::NoPrime`] when primes run out.
    pub fn build(&self) -> Result<CkksParams, CkksError> {
        let bad = |what: &str, value: String, valid: &str| CkksError::BadParam {
            what: what.into(),
            value,
            valid: valid.into(),
        };
        if !(3..=17).contains(&self.log_n) {
            return Err(bad("log_n", self.log_n.to_string(), "3..=17"));
        }
        if self.q_bits.is_empty() {
            return Err(bad("q_bits", "[]".into(), "at least one prime (q_0)"));
        }
        if self.p_bits.is_empty() {
            return Err(bad("p_bits", "[]".into(), "at least one special prime"));
        }
        for (what, b) in self
            .q_bits
            .iter()
            .map(|b| ("q_bits", b))
            .chain(self.p_bits.iter().map(|b| ("p_bits", b)))
        {
            if !(20..=61).contains(b) {
                return Err(bad(what, b.to_string(), "each prime 20..=61 bits"));
            }
        }
        let q0_bits = self.q_bits.first().copied().unwrap_or(0);
        if !(10..q0_bits).contains(&self.scale_bits) {
            return Err(bad(
                "scale_bits",
                self.scale_bits.to_string(),
                "10 ≤ scale_bits < bits of q_0",
            ));
        }
        let n = 1u64 << self.log_n;
        let two_n = 2 * n;
        let mut used: Vec<u64> = Vec::new();
        let mut q = Vec::with_capacity(self.q_bits.len());
        for (i, &b) in self.q_bits.iter().enumerate() {
            // Rescaling primes alternate just above and just below 2^b so that their product
            // stays close to a power of two; q_0 is the largest b-bit prime.
            let above = i > 0 && i % 2 == 1;
            let p = find_prime(b, two_n, above, &used).ok_or(CkksError::NoPrime {
                bits: b,
                two_n,
                count: self.q_bits.len(),
            })?;
            used.push(p);
            q.push(p);
        }
        let mut p = Vec::with_capacity(self.p_bits.len());
        for &b in &self.p_bits {
            let pr = find_prime(b, two_n, false, &used).ok_or(CkksError::NoPrime {
                bits: b,
                two_n,
                count: self.p_bits.len(),
            })?;
            used.push(pr);
            p.push(pr);
        }
        let log_p: f64 = p.iter().map(|&x| (x as f64).log2()).sum();
        let digit_size = match self.digit_size {
            Some(d) if d == 0 || d > q.len() => {
                return Err(bad("digit_size", d.to_string(), "1..=number of q primes"))
            }
            Some(d) => d,
            None => {
                let mut best = 0;
                for d in 1..=q.len() {
                    if max_digit_bits(&q, d) <= log_p {
                        best = d;
                    }
                }
                if best == 0 {
                    return Err(bad(
                        "p_bits",
                        format!("{:?} (log2 P = {log_p:.1})", self.p_bits),
                        "log2 P ≥ bits of the largest prime q_i",
                    ));
                }
                best
            }
        };
        let log_qp: f64 = q.iter().chain(&p).map(|&x| (x as f64).log2()).sum();
        let limit = HE_STANDARD_128
            .iter()
            .find(|r| r.0 == self.log_n)
            .map(|r| r.1);
        let secure = limit.is_some_and(|m| log_qp <= f64::from(m));
        if !secure && !self.insecure {
            return Err(CkksError::Insecure {
                log_n: self.log_n,
                log_qp,
                max: limit.map_or_else(|| "none".to_string(), |m| m.to_string()),
            });
        }
        // Δ_0 = 2^scale_bits, Δ_ℓ = √(Δ_{ℓ−1}·q_ℓ).
        let mut scales = Vec::with_capacity(q.len());
        let mut s = 2f64.powi(i32::try_from(self.scale_bits).unwrap_or(40));
        scales.push(s);
        for &qi in q.iter().skip(1) {
            s = (s * qi as f64).sqrt();
            scales.push(s);
        }
        let mut id: u64 = 0xcbf2_9ce4_8422_2325;
        for &x in q
            .iter()
            .chain(&p)
            .chain(&[u64::from(self.log_n), digit_size as u64])
        {
            id ^= x;
            id = id.wrapping_mul(0x0100_0000_01b3);
        }
        Ok(CkksParams {
            log_n: self.log_n,
            q,
            p,
            scale_bits: self.scale_bits,
            scales,
            digit_size,
            security: if secure {
                SecurityLevel::Bits128
            } else {
                SecurityLevel::Insecure
            },
            log_qp,
            id,
        })
    }
}

fn max_digit_bits(q: &[u64], d: usize) -> f64 {
    q.chunks(d)
        .map(|c| c.iter().map(|&x| (x as f64).log2()).sum::<f64>())
        .fold(0.0, f64::max)
}

/// Validated CKKS parameters (build with [`CkksParamsBuilder`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CkksParams {
    log_n: u32,
    q: Vec<u64>,
    p: Vec<u64>,
    scale_bits: u32,
    scales: Vec<f64>,
    digit_size: usize,
    security: SecurityLevel,
    log_qp: f64,
    id: u64,
}

impl CkksParams {
    /// Choose parameters for a computation of multiplicative depth `depth` at N = 2^log_n:
    /// the largest scale (≤ 2^40, ≥ 2^20) whose chain — q_0 of scale + `q0_extra` bits,
    /// `depth` rescaling primes of scale bits and special primes covering the largest
    /// digit — fits the 128-bit table (or any size with `insecure`), with the fewest
    /// key-switching digits whose keys stay below [`MAX_KEY_BYTES`] each.
    ///
    /// # Errors
    /// [`CkksError::NotEnoughLevels`] when no scale ≥ 2^20 fits the table; as
    /// [`CkksParamsBuilder::build`].
    pub fn for_depth(
        log_n: u32,
        depth: usize,
        q0_extra: u32,
        insecure: bool,
    ) -> Result<Self, CkksError> {
        let limit = HE_STANDARD_128
            .iter()
            .find(|r| r.0 == log_n)
            .map_or(f64::INFINITY, |r| f64::from(r.1));
        for s in (20..=40u32).rev() {
            let q0 = (s + q0_extra).min(60);
            let nq = depth + 1;
            // The fewest digits (fastest key switching, smallest keys) that fit.
            let mut best: Option<(usize, usize)> = None;
            for dnum in 1..=nq {
                let d = nq.div_ceil(dnum);
                let dig = f64::from(q0) + (d as f64 - 1.0) * f64::from(s);
                let k = (dig / 60.0).ceil() as usize;
                let total = f64::from(q0) + depth as f64 * f64::from(s) + k as f64 * 61.0;
                // One key-switching key holds dnum·2·(L + 1 + k) limbs of N words; keep each
                // below 320 MiB so that a dozen Galois keys fit in a few GiB (issue 6: 8 GB).
                let key_bytes = dnum * 2 * (nq + k) * (8usize << log_n);
                if key_bytes > MAX_KEY_BYTES {
                    continue;
                }
                if insecure || total <= limit - 1.0 {
                    best = Some((k, d));
                    break;
                }
            }
            if let Some((k, d)) = best {
                let mut q_bits = vec![q0];
                q_bits.extend(std::iter::repeat_n(s, depth));
                let digit_bits = f64::from(q0) + (d as f64 - 1.0) * f64::from(s);
                let pb = ((digit_bits / k as f64).ceil() as u32 + 1).clamp(30, 61);
                let mut b = CkksParamsBuilder::new();
                b.log_n(log_n)
                    .q_bits(&q_bits)
                    .p_bits(&vec![pb; k])
                    .scale_bits(s)
                    .insecure(insecure);
                if let Ok(p) = b.build() {
                    return Ok(p);
                }
            }
        }
        Err(CkksError::NotEnoughLevels {
            what: format!(
                "a depth-{depth} circuit at N = 2^{log_n} with a scale ≥ 2^20 within the \
                 128-bit HomomorphicEncryption.org bound (log2 QP ≤ {limit}; --insecure lifts it)"
            ),
            needed: depth,
            available: max_levels(log_n),
        })
    }

    /// log₂ N.
    pub fn log_n(&self) -> u32 {
        self.log_n
    }
    /// N, the ring degree.
    pub fn n(&self) -> usize {
        1 << self.log_n
    }
    /// Number of slots N/2.
    pub fn slots(&self) -> usize {
        self.n() / 2
    }
    /// The modulus chain q_0, …, q_L.
    pub fn q(&self) -> &[u64] {
        &self.q
    }
    /// The special primes.
    pub fn p(&self) -> &[u64] {
        &self.p
    }
    /// L, the top level (number of rescalings available).
    pub fn max_level(&self) -> usize {
        self.q.len() - 1
    }
    /// Δ_ℓ, the nominal scale of level ℓ (Δ_ℓ²/q_ℓ = Δ_{ℓ−1}).
    pub fn scale(&self, level: usize) -> f64 {
        self.scales.get(level).copied().unwrap_or(f64::NAN)
    }
    /// log₂ Δ_0.
    pub fn scale_bits(&self) -> u32 {
        self.scale_bits
    }
    /// q-primes per key-switching digit.
    pub fn digit_size(&self) -> usize {
        self.digit_size
    }
    /// log₂(QP).
    pub fn log_qp(&self) -> f64 {
        self.log_qp
    }
    /// Security level (128-bit table or insecure).
    pub fn security(&self) -> SecurityLevel {
        self.security
    }
    /// Identifier (hash of N and the primes) carried by keys and ciphertexts.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// A rough upper bound on the levels of ~20-bit primes at N = 2^log_n (for messages).
fn max_levels(log_n: u32) -> usize {
    HE_STANDARD_128
        .iter()
        .find(|r| r.0 == log_n)
        .map_or(0, |r| (r.1 as usize).saturating_sub(60) / 20)
}

/// Deterministic Miller–Rabin for u64 (bases 2, 3, 5, …, 37 are exact below 2^64).
pub(crate) fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    for p in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let mulmod = |a: u64, b: u64| ((u128::from(a) * u128::from(b)) % u128::from(n)) as u64;
    let powmod = |mut a: u64, mut e: u64| {
        let mut r = 1u64;
        while e > 0 {
            if e & 1 == 1 {
                r = mulmod(r, a);
            }
            a = mulmod(a, a);
            e >>= 1;
        }
        r
    };
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    'outer: for a in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        let mut x = powmod(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mulmod(x, x);
            if x == n - 1 {
                continue 'outer;
            }
        }
        return false;
    }
    true
}

/// A `bits`-bit prime ≡ 1 mod 2N, not in `used`: the nearest one below 2^bits, or (when
/// `above`) the nearest one above 2^(bits−1)·2 = 2^bits… i.e. just above 2^bits if that
/// still has `bits + 1` ≤ 62 bits; falls back to below.
fn find_prime(bits: u32, two_n: u64, above: bool, used: &[u64]) -> Option<u64> {
    let top = 1u64 << bits;
    if above && bits < 61 {
        let mut c = top + 1;
        while c < top + (top >> 4) {
            if is_prime(c) && !used.contains(&c) {
                return Some(c);
            }
            c += two_n;
        }
    }
    let mut c = top - two_n + 1;
    while c > top >> 1 {
        if is_prime(c) && !used.contains(&c) {
            return Some(c);
        }
        c = c.checked_sub(two_n)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_table_enforced() {
        // 2^15 with 19 levels of 40 bits + 60 + 2×60 = 940 > 881: refused without insecure.
        let mut b = CkksParamsBuilder::new();
        b.log_n(15)
            .q_bits(&[60; 1].iter().chain(&[40; 19]).copied().collect::<Vec<_>>())
            .p_bits(&[60, 60])
            .scale_bits(40);
        let e = b.build().unwrap_err();
        assert!(matches!(e, CkksError::Insecure { log_n: 15, .. }), "{e}");
        let p = b.insecure(true).build().unwrap();
        assert_eq!(p.security(), SecurityLevel::Insecure);
        // 880-ish bits fit.
        let p = CkksParamsBuilder::new()
            .log_n(15)
            .q_bits(&[60; 1].iter().chain(&[40; 17]).copied().collect::<Vec<_>>())
            .p_bits(&[60, 60])
            .scale_bits(40)
            .build()
            .unwrap();
        assert_eq!(p.security(), SecurityLevel::Bits128);
        assert!(p.log_qp() <= 881.0);
    }

    #[test]
    fn primes_are_ntt_friendly_and_scales_chain() {
        let p = CkksParamsBuilder::new()
            .log_n(12)
            .q_bits(&[50, 30, 30, 30])
            .p_bits(&[52])
            .scale_bits(30)
            .insecure(true)
            .build()
            .unwrap();
        let two_n = 2 * p.n() as u64;
        for &x in p.q().iter().chain(p.p()) {
            assert!(is_prime(x));
            assert_eq!(x % two_n, 1);
        }
        for l in 1..=p.max_level() {
            let r = p.scale(l) * p.scale(l) / p.q()[l] as f64 / p.scale(l - 1);
            assert!((r - 1.0).abs() < 1e-12);
        }
        assert!(is_prime(1_000_000_007) && !is_prime(1_000_000_007 * 3));
    }

    #[test]
    fn for_depth_fits_table() {
        let p = CkksParams::for_depth(16, 35, 20, false).unwrap();
        assert_eq!(p.max_level(), 35);
        assert!(p.log_qp() <= 1772.0);
        assert_eq!(p.security(), SecurityLevel::Bits128);
        assert!(CkksParams::for_depth(15, 60, 20, false).is_err());
    }
}
