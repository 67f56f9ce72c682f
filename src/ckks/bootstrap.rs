//! CKKS bootstrapping (Cheon–Han–Kim–Kim–Song 2018; Chen–Chillotti–Song 2019; Han–Ki 2020;
//! Bossuat–Mouchet–Troncoso-Pastoriza–Hubaux 2021): a ciphertext at level 0 is brought back to
//! a higher level with the same message, up to a measured error.
//!
//! # Steps and their equations
//! Let ct = (c_0, c_1) at level 0 decrypt to m = c_0 + c_1·s mod q_0, |m| ≪ q_0 (m is the
//! message at scale Δ_0; its p slots repeat N/(2p) times, i.e. m ∈ Z[Y], Y = X^{N/(2p)}).
//! 1. **ModRaise**: lift the centred c_0, c_1 from q_0 to Q_L. Over Q_L the ciphertext now
//!    decrypts to t = c_0 + c_1·s = m + q_0·I exactly, with |I| < K (`evalmod` derives K
//!    from the dense ternary secret). Its scale label is set to Δ_L (the value τ(t)/Δ_L is
//!    what its slots hold; constants below undo the label). With sparse-secret encapsulation
//!    ([`BootstrapConfig::sparse_secret`], `encapsulation`) the level-0 ciphertext is first
//!    switched to an ephemeral secret s' of weight h = 32, raised under s' (|I| < K = 12
//!    instead of 482 at N = 2^16), and switched back to s at level L.
//! 2. **SubSum** (p < N/2 only): t ↦ Σ_{k<N/(2p)} σ_{5^{pk}}(t) by log₂(N/(2p)) rotations by
//!    p, 2p, 4p, …: the trace onto Z[Y], which multiplies the Y-part of t by N/(2p) and kills
//!    the rest (σ over the subgroup fixing Y sums the other monomials to 0).
//! 3. **CoeffToSlot** (`dft`): R·U^{−1} in `cts_levels` stages: slots w_i = (u_i + i·u_{i+p})
//!    in bit-reversed order, u the coefficients of t in Y, all times Δ_L/(2·q_0·K) (and
//!    2p/N after SubSum). Real parts: for p < N/2 the last stage also writes −i·w into slots
//!    p … 2p − 1 (a 2p-periodic transform) and one conjugation gives
//!    y = v + v̄ = [Re w, Im w]/(q_0 K): one ciphertext; for p = N/2 there is no room, so
//!    Re w = w + w̄ and Im w = −i·(w − w̄) are two ciphertexts.
//! 4. **EvalMod** (`evalmod`): y ↦ sin(2πK·y) = sin(2π·t/q_0) ≈ 2π·m/q_0, slot-wise, its plan
//!    replayed with lazy rescaling (`polyeval::eval_plan_lazy`: one rescale per Chebyshev
//!    leaf sum instead of one per constant product; same levels).
//! 5. **SlotToCoeff** (`dft`): U·R in `stc_levels` stages, the first scaled by
//!    q_0/(2π·Δ_0) and, for p < N/2, preceded by [a, b] ↦ a + i·b (two diagonals), so that
//!    the slots become U·(m_i + i·m_{i+p})/Δ_0: the original message, at scale Δ_ℓ of the
//!    output level ℓ = L − (cts_levels + EvalMod depth + stc_levels).
//!
//! # Why the modulus chain looks like it does
//! The message sits at 2^−(log q_0 − log Δ_0) of q_0: that ratio is what EvalMod's error is
//! multiplied by (q_0/(2πΔ_0)), and SlotToCoeff then sums N/2 such coefficient errors into
//! each slot (a further ≈ √N), so CoeffToSlot and EvalMod must run at scales well above Δ_0
//! (their primes are ~60 bits: Δ_ℓ = √(Δ_{ℓ−1}·q_ℓ) climbs towards 2^60), while the sine's own
//! cubic bias (2π·m/q_0)²/6 wants q_0/Δ_0 large. Measured at N = 2^10 (full slots, q_0 ≈ 2^60):
//! Δ_0 = 2^40 gives 15.0 bits, 2^46 21.1, 2^50 24.6, 2^54 18.6, 2^56 14.6; the tests use
//! Δ_0 = 2^50 ([`bootstrap_params`]: q_0 of 60 bits, user primes of the scale's size, 60-bit
//! bootstrapping primes).
//!
//! With sparse-secret encapsulation (K = 12, EvalMod depth 8 instead of 13) the additive error
//! is far smaller, and the optimum moves: measured (INSECURE, full slots, q_0 ≈ 2^60, 60-bit
//! bootstrapping primes, one seed): N = 2^12: Δ_0 = 2^49 24.3 bits, 2^51 25.6, 2^53 22.2,
//! 2^55 18.0, 2^57 14.1 (the dense secret at 2^57: 14.0); N = 2^13: 2^50 24.1, 2^52 24.8,
//! 2^54 21.1, 2^56 17.1; N = 2^14: 2^51 23.3, 2^53 23.9, 2^55 20.1. Above the optimum the
//! sine's cubic bias dominates (2 bits per bit of Δ_0, +1 bit per doubling of N as the
//! coefficients of a random message shrink by √2); below it the additive error (≈ −1 bit per
//! doubling of N). Smaller CoeffToSlot/SlotToCoeff primes cost precision fast (N = 2^12,
//! Δ_0 = 2^51: 55-bit primes 21.2 bits, 52-bit 15.9, 50-bit 12.7), so they stay at 60 bits.
//! The bench takes Δ_0 = 2^54 at N = 2^16 (the optimum moves up ≈ 0.5 bit per doubling):
//! 11 user levels of 54 bits within the 1772-bit bound (depth 14: q_0 60 + 14·60 + 4·61 +
//! 11·54 ≤ 1772), against 5 with the dense secret; measured there (one run, 32768 slots):
//! 22.9 bits (dense secret at 2^57: 17.5).
//!
//! Where those 22.9 bits go (the bench's decomposition, measured: the encoded message's
//! coefficients m put through EvalMod's exact function give the deterministic bias; the rest
//! is |output − that model|): the sine's cubic bias alone 23.9 bits (max |m|/q_0 = 2^−12.6),
//! the rest 23.2 bits — CKKS noise of CoeffToSlot and EvalMod, amplified by EvalMod's slope
//! 2πK ≈ 75 and by q_0/(2πΔ_0) (it improves ≈ 1 bit per bit of Δ_0); EvalMod's interpolation
//! error (≤ 2^−43.6 of the sine, `EvalModConfig::max_error`) contributes at most ≈ 2^−30 to
//! a slot, the level-0 input's own noise less. The two terms pull Δ_0 in opposite directions,
//! so no Δ_0 gives 24 bits with the sine.
//!
//! **Cubic correction** ([`BootstrapConfig::encapsulated_corrected`], `evalmod` module docs):
//! EvalMod subtracts sin(2θ)/8 from sin θ, which cancels the cubic term (relative bias x⁴/30
//! instead of x²/6, x = 2π·m/q_0) for one more level (EvalMod depth 9, 15 consumed). With the
//! bias gone, Δ_0 moves up and the rest shrinks with it. Measured (INSECURE, full slots,
//! q_0 ≈ 2^60, one user level, seed 81; `cargo test --release --lib
//! evalmod_tests::sweep -- --ignored --nocapture`, total (bias, rest) in bits):
//!
//! | N, Δ_0 | 2^53 | 2^55 | 2^56 | 2^57 | 2^58 |
//! |---|---|---|---|---|---|
//! | 2^13 sine | 22.8 (22.8, 26.8) | 18.8 (18.8, 28.7) | 16.8 | 14.8 | 12.8 |
//! | 2^13 corrected | 27.2 (45.1, 27.2) | 29.3 (37.1, 29.3) | **30.3** (33.1, 30.3) | 29.0 (29.1, 31.2) | 25.1 |
//! | 2^14 sine | 23.8 (23.9, 25.4) | 19.9 (19.9, 27.2) | 17.9 | 15.9 | 13.9 |
//! | 2^14 corrected | 25.7 (47.2, 25.7) | 27.9 (39.2, 27.9) | 28.6 (35.2, 28.6) | **29.5** (31.2, 29.7) | 27.2 |
//!
//! The corrected bias falls 4 bits per bit of Δ_0 below the optimum (2 bits per doubling of
//! N, as the coefficients shrink by √2), the rest ≈ 1 bit per bit of Δ_0 and ≈ −1 bit per
//! doubling of N. At N = 2^16, 128-bit, eight special primes (`POLYCERT_BOOT_BENCH_SPECIAL=8
//! cargo bench --bench bootstrap -- --test`, one run each, 2026-12-07): Δ_0 = 2^56 (the
//! bench's default for the corrected EvalMod) **25.6 bits** (bias 39.5, rest 25.6; max
//! |m|/q_0 = 2^−10.9), 2^55 24.8 (43.4, 24.8), 2^58 27.6 (31.3, 27.6; max |m|/q_0 = 2^−8.6)
//! (the message differs between these runs: the key generation's rejection sampling draws
//! from the same seeded RNG a prime-dependent number of times); levels left 5 of L = 20 (the extra
//! 60-bit level and the larger user primes leave ⌊(1772 − 1 − 60 − 15·60 − 8·61)/56⌋ = 5,
//! against 7 of 21 with the sine at 2^54). The precision is that of uniform messages in
//! [−1, 1] (as OpenFHE's script); a message with larger coefficients (e.g. a constant
//! vector, one coefficient Δ_0·v) sees the bias at its own x, and a larger Δ_0 leaves less
//! room below q_0/2 at level 0 (|v| ≲ q_0/(2Δ_0) = 8 at 2^56).
//!
//! # Keys
//! Rotation keys exist only for the steps used (SubSum, the baby and giant steps of each
//! stage, conjugation), each made for the highest level it is used at
//! ([`Bootstrapper::key_plan`]); [`Bootstrapper::key_memory`] is their size before any is
//! made, and [`Bootstrapper::generate_keys`] refuses to exceed the memory it is given. The
//! model also states the cap of the evaluator's limb pool (`pool`: the temporaries of key
//! switching recycled instead of freed and faulted in again), the most the pool adds to the
//! peak.

use std::collections::BTreeMap;

use rand::{CryptoRng, RngCore};

use crate::poly::EvalPlan;

use super::dft::{coeff_to_slot_stages, slot_to_coeff_stages};
use super::encapsulation::{centred, EncapsulationKeys};
use super::encoding::Complex;
use super::eval::{Ciphertext, CkksContext, Evaluator};
use super::evalmod::EvalModConfig;
use super::keys::{GaloisKeys, KeySwitchKey, SecretKey};
use super::lintrans::{EncodedTransform, LinearTransform};
use super::polyeval::{eval_plan, eval_plan_lazy};
use super::CkksError;

/// Configuration of a [`Bootstrapper`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BootstrapConfig {
    /// Number p of slots (a power of two, 2 ≤ p ≤ N/2).
    pub slots: usize,
    /// Level budget of CoeffToSlot (1 ..= log₂ p).
    pub cts_levels: usize,
    /// Level budget of SlotToCoeff (1 ..= log₂ p).
    pub stc_levels: usize,
    /// EvalMod (K, degree, double angles).
    pub eval_mod: EvalModConfig,
    /// Sparse-secret encapsulation: the Hamming weight h of the ephemeral secret s' that
    /// ModRaise runs under (`encapsulation` module docs), or None for ModRaise under the
    /// dense secret. `eval_mod.k` must cover the chosen secret
    /// ([`EvalModConfig::for_sparse_secret`] / [`EvalModConfig::for_ring`]).
    pub sparse_secret: Option<usize>,
}

impl BootstrapConfig {
    /// Full slots (N/2), level budgets ⌈log₂(N/2)/5⌉ each (at most five butterfly stages,
    /// 63 diagonals, per transform: 2 at N = 2^10, 3 at N = 2^16), EvalMod for the ring's
    /// dense ternary secret ([`EvalModConfig::for_ring`]).
    ///
    /// # Errors
    /// As [`EvalModConfig::for_ring`].
    pub fn full(n: usize) -> Result<Self, CkksError> {
        let log = (n / 2).max(2).trailing_zeros() as usize;
        let budget = log.div_ceil(5);
        Ok(Self {
            slots: n / 2,
            cts_levels: budget,
            stc_levels: budget,
            eval_mod: EvalModConfig::for_ring(n)?,
            sparse_secret: None,
        })
    }

    /// As [`BootstrapConfig::full`] with sparse-secret encapsulation: an ephemeral secret of
    /// weight [`super::EPHEMERAL_WEIGHT`] = 32 and EvalMod for it
    /// ([`EvalModConfig::for_sparse_secret`]: K = 12, 2 double angles, degree 47, depth 8
    /// instead of 13 at N = 2^16). Needs the encapsulation keys
    /// ([`Bootstrapper::generate_keys`] makes them).
    ///
    /// # Errors
    /// As [`EvalModConfig::for_sparse_secret`].
    pub fn encapsulated(n: usize) -> Result<Self, CkksError> {
        let h = super::EPHEMERAL_WEIGHT;
        Ok(Self {
            eval_mod: EvalModConfig::for_sparse_secret(h)?,
            sparse_secret: Some(h),
            ..Self::full(n)?
        })
    }

    /// As [`BootstrapConfig::encapsulated`] with EvalMod's cubic correction
    /// ([`EvalModConfig::for_sparse_secret_corrected`]: the sine's bias (2π·m/q_0)²/6 removed
    /// by a second-harmonic chain, one more level: EvalMod depth 9, 15 levels consumed at
    /// N = 2^16). The bias no longer caps Δ_0/q_0, so Δ_0 can move closer to q_0 (module
    /// docs: the measured precision against Δ_0).
    ///
    /// # Errors
    /// As [`EvalModConfig::for_sparse_secret_corrected`].
    pub fn encapsulated_corrected(n: usize) -> Result<Self, CkksError> {
        let h = super::EPHEMERAL_WEIGHT;
        Ok(Self {
            eval_mod: EvalModConfig::for_sparse_secret_corrected(h)?,
            sparse_secret: Some(h),
            ..Self::full(n)?
        })
    }

    /// Levels consumed by a bootstrap of this configuration: CoeffToSlot + EvalMod +
    /// SlotToCoeff (what [`bootstrap_params`] needs as `boot_depth`).
    pub fn depth(&self) -> usize {
        self.cts_levels + self.eval_mod.depth() + self.stc_levels
    }
}

/// One rotation key the bootstrapper needs: Galois element, what it is for, its level.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyNeed {
    /// The Galois element g (X ↦ X^g).
    pub element: usize,
    /// Left-rotation step (None for the conjugation).
    pub step: Option<i64>,
    /// Highest level it is used at (the key is made for it).
    pub level: usize,
    /// Bytes of the key (model of [`KeySwitchKey::model_bytes`]).
    pub bytes: u64,
}

/// The memory model of the bootstrapping keys, available before generating them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyMemory {
    /// The Galois keys.
    pub keys: Vec<KeyNeed>,
    /// Bytes of the relinearisation key (at level L).
    pub relin_bytes: u64,
    /// Total bytes of the keys.
    pub total_bytes: u64,
    /// Bytes of the CoeffToSlot/SlotToCoeff diagonals the [`Bootstrapper`] holds, encoded
    /// once at construction (NTT-form plaintexts at the level where each stage is used; not
    /// in `total_bytes`, which the key generation checks: they exist before it).
    pub matrix_bytes: u64,
    /// The most bytes of recycled limbs the evaluator's pool retains (the cap of the ring's
    /// limb pool, `pool` module docs: the peak grows by at most this much; not in
    /// `total_bytes`).
    pub pool_bytes: u64,
}

impl std::fmt::Display for KeyMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
        let rot = self.keys.iter().filter(|k| k.step.is_some()).count();
        writeln!(
            f,
            "bootstrapping keys: {} rotation keys + {} conjugation key + relinearisation key = {:.1} MiB",
            rot,
            self.keys.len() - rot,
            mib(self.total_bytes)
        )?;
        let mut by_level: BTreeMap<usize, (usize, u64)> = BTreeMap::new();
        for k in &self.keys {
            let e = by_level.entry(k.level).or_default();
            e.0 += 1;
            e.1 += k.bytes;
        }
        for (l, (n, b)) in by_level.iter().rev() {
            writeln!(f, "  level {l:>3}: {n:>3} keys, {:.1} MiB", mib(*b))?;
        }
        writeln!(f, "  relinearisation: {:.1} MiB", mib(self.relin_bytes))?;
        let encaps = self
            .total_bytes
            .saturating_sub(self.relin_bytes + self.keys.iter().map(|k| k.bytes).sum::<u64>());
        if encaps > 0 {
            writeln!(
                f,
                "  sparse-secret encapsulation (s → s' at q_0·p_0, s' → s at level L): {:.1} MiB",
                mib(encaps)
            )?;
        }
        write!(
            f,
            "  (plus {:.1} MiB of encoded DFT diagonals held by the bootstrapper and at most \
             {:.1} MiB of recycled limbs retained by the evaluator's pool)",
            mib(self.matrix_bytes),
            mib(self.pool_bytes)
        )
    }
}

/// Wall-clock seconds of the steps of one bootstrap ([`Bootstrapper::bootstrap_timed`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct BootstrapTimes {
    /// Bringing the input to level 0, ModRaise (with the two key switches of sparse-secret
    /// encapsulation) and SubSum.
    pub mod_raise_s: f64,
    /// CoeffToSlot (all stages).
    pub coeff_to_slot_s: f64,
    /// Conjugation (real parts) and EvalMod.
    pub eval_mod_s: f64,
    /// SlotToCoeff (all stages).
    pub slot_to_coeff_s: f64,
}

impl BootstrapTimes {
    /// The sum of the steps.
    pub fn total_s(&self) -> f64 {
        self.mod_raise_s + self.coeff_to_slot_s + self.eval_mod_s + self.slot_to_coeff_s
    }
}

impl std::fmt::Display for BootstrapTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tot = self.total_s().max(f64::MIN_POSITIVE);
        let pc = |x: f64| 100.0 * x / tot;
        write!(
            f,
            "ModRaise {:.2} s ({:.0} %), CoeffToSlot {:.2} s ({:.0} %), EvalMod {:.2} s ({:.0} %), \
             SlotToCoeff {:.2} s ({:.0} %)",
            self.mod_raise_s,
            pc(self.mod_raise_s),
            self.coeff_to_slot_s,
            pc(self.coeff_to_slot_s),
            self.eval_mod_s,
            pc(self.eval_mod_s),
            self.slot_to_coeff_s,
            pc(self.slot_to_coeff_s)
        )
    }
}

/// The bootstrapping procedure for one parameter set (module docs): the CoeffToSlot and
/// SlotToCoeff matrices with their constants folded in, the EvalMod plan, the levels.
#[derive(Debug, Clone)]
pub struct Bootstrapper {
    config: BootstrapConfig,
    period: usize,
    subsum: Vec<i64>,
    cts: Vec<LinearTransform>,
    stc: Vec<LinearTransform>,
    cts_enc: Vec<EncodedTransform>,
    stc_enc: Vec<EncodedTransform>,
    plan: EvalPlan,
    top: usize,
    eval_mod_depth: usize,
    scale0: f64,
    key_plan: Vec<(usize, Option<i64>, usize)>,
    /// EvalMod with lazy rescaling ([`eval_plan_lazy`]); false only in the tests' eager
    /// reference.
    lazy: bool,
}

impl Bootstrapper {
    /// Build the matrices and the plan for `ctx`'s parameters.
    ///
    /// # Errors
    /// [`CkksError::BadParam`] for a slot count that is not a power of two in 2 ..= N/2 or a
    /// budget outside 1 ..= log₂ p; [`CkksError::NotEnoughLevels`] when L is below the levels
    /// bootstrapping consumes.
    pub fn new(ctx: &CkksContext, config: BootstrapConfig) -> Result<Self, CkksError> {
        let params = ctx.params();
        let half = params.slots();
        let p = config.slots;
        if p < 2 || !p.is_power_of_two() || p > half {
            return Err(CkksError::BadParam {
                what: "bootstrapping slots".into(),
                value: p.to_string(),
                valid: format!("a power of two in 2..={half}"),
            });
        }
        let sparse = p < half;
        let period = if sparse { 2 * p } else { p };
        let plan = config.eval_mod.plan();
        let eval_mod_depth = plan.depth() as usize;
        let top = params.max_level();
        let need = config.cts_levels + eval_mod_depth + config.stc_levels;
        if top < need {
            return Err(CkksError::NotEnoughLevels {
                what: format!(
                    "bootstrapping (CoeffToSlot {} + EvalMod {} + SlotToCoeff {})",
                    config.cts_levels, eval_mod_depth, config.stc_levels
                ),
                needed: need,
                available: top,
            });
        }
        let q0 = params.q().first().copied().unwrap_or(1) as f64;
        let scale0 = params.scale(0);
        let k = config.eval_mod.k;
        // CoeffToSlot constant: Δ_L/(2·q_0·K), times 2p/N for SubSum's factor N/(2p).
        let c_cts = params.scale(top) / (2.0 * q0 * k) * (2 * p) as f64 / (2 * half) as f64;
        let mut cts = coeff_to_slot_stages(p, period, config.cts_levels)?;
        if let Some(first) = cts.first_mut() {
            *first = first.scaled(Complex::new(c_cts, 0.0));
        }
        if sparse {
            // Last stage: rows p … 2p − 1 times −i (they then hold −i·w).
            let v: Vec<Complex> = (0..period)
                .map(|r| {
                    if r < p {
                        Complex::new(1.0, 0.0)
                    } else {
                        Complex::new(0.0, -1.0)
                    }
                })
                .collect();
            if let Some(last) = cts.last_mut() {
                *last = last.rows_scaled(&v);
            }
        }
        // SlotToCoeff constant q_0/(2π·g·Δ_0) (g: EvalMod's output gain, 3/4 with the cubic
        // correction); for sparse slots [a, b] ↦ [a + ib, a + ib] first.
        let c_stc = q0 / (std::f64::consts::TAU * config.eval_mod.output_gain() * scale0);
        let mut stc = slot_to_coeff_stages(p, period, config.stc_levels)?;
        if let Some(first) = stc.first_mut() {
            let mut f = first.scaled(Complex::new(c_stc, 0.0));
            if sparse {
                let mut diags = BTreeMap::new();
                let one = Complex::new(1.0, 0.0);
                let i = Complex::new(0.0, 1.0);
                diags.insert(
                    0,
                    (0..period).map(|r| if r < p { one } else { i }).collect(),
                );
                diags.insert(
                    p,
                    (0..period).map(|r| if r < p { i } else { one }).collect(),
                );
                f = LinearTransform::new(period, diags)?.then(&f)?;
            }
            *first = f;
        }
        let mut subsum = Vec::new();
        let mut s = p;
        while sparse && s < half {
            subsum.push(s as i64);
            s *= 2;
        }
        // Keys: (element, step, level), the highest level each is used at.
        let enc = ctx.encoder();
        let mut need_at: BTreeMap<usize, (Option<i64>, usize)> = BTreeMap::new();
        let mut add = |g: usize, step: Option<i64>, level: usize| {
            if g == 1 {
                return;
            }
            let e = need_at.entry(g).or_insert((step, level));
            e.1 = e.1.max(level);
        };
        for &r in &subsum {
            add(enc.galois_element(r), Some(r), top);
        }
        for (i, lt) in cts.iter().enumerate() {
            for r in lt.rotation_steps() {
                add(enc.galois_element(r), Some(r), top - i);
            }
        }
        add(2 * params.n() - 1, None, top - config.cts_levels);
        let stc_top = top - config.cts_levels - eval_mod_depth;
        for (i, lt) in stc.iter().enumerate() {
            for r in lt.rotation_steps() {
                add(enc.galois_element(r), Some(r), stc_top - i);
            }
        }
        let key_plan = need_at.into_iter().map(|(g, (s, l))| (g, s, l)).collect();
        let cts_enc = encode_stages(ctx, &cts, top)?;
        let stc_enc = encode_stages(ctx, &stc, stc_top)?;
        Ok(Self {
            config,
            period,
            subsum,
            cts,
            stc,
            cts_enc,
            stc_enc,
            plan,
            top,
            eval_mod_depth,
            scale0,
            key_plan,
            lazy: true,
        })
    }

    /// The same bootstrapper with its output multiplied by `gain` (a constant of the first
    /// SlotToCoeff stage, no level): bootstrapping x/gain returns x. Used to keep the
    /// message's coefficients small against q_0 (the sine's cubic bias (2π·m/q_0)²/6) at the
    /// price of a gain-fold larger additive error (`schedule` module docs). The first
    /// SlotToCoeff stage is re-encoded.
    ///
    /// # Errors
    /// As [`CkksContext::encode_transform`] (`ctx` must be the context of [`Bootstrapper::new`]).
    pub fn with_output_gain(mut self, ctx: &CkksContext, gain: f64) -> Result<Self, CkksError> {
        if let (Some(first), Some(enc)) = (self.stc.first_mut(), self.stc_enc.first_mut()) {
            *first = first.scaled(Complex::new(gain, 0.0));
            *enc = ctx.encode_transform(first, enc.level(), enc.input_scale())?;
        }
        Ok(self)
    }

    /// The configuration.
    pub fn config(&self) -> &BootstrapConfig {
        &self.config
    }

    /// Levels consumed: CoeffToSlot + EvalMod + SlotToCoeff.
    pub fn depth(&self) -> usize {
        self.config.cts_levels + self.eval_mod_depth + self.config.stc_levels
    }

    /// Levels EvalMod consumes.
    pub fn eval_mod_depth(&self) -> usize {
        self.eval_mod_depth
    }

    /// The level of a bootstrapped ciphertext: L − [`Bootstrapper::depth`].
    pub fn output_level(&self) -> usize {
        self.top - self.depth()
    }

    /// The CoeffToSlot transforms (constants folded in), in the order applied.
    pub fn coeff_to_slot(&self) -> &[LinearTransform] {
        &self.cts
    }

    /// The SlotToCoeff transforms (constants folded in), in the order applied.
    pub fn slot_to_coeff(&self) -> &[LinearTransform] {
        &self.stc
    }

    /// The Galois keys needed: (element, rotation step or None for the conjugation, level).
    pub fn key_plan(&self) -> &[(usize, Option<i64>, usize)] {
        &self.key_plan
    }

    /// The memory model of the keys (before generating them).
    pub fn key_memory(&self, ctx: &CkksContext) -> KeyMemory {
        let params = ctx.params();
        let keys: Vec<KeyNeed> = self
            .key_plan
            .iter()
            .map(|&(element, step, level)| KeyNeed {
                element,
                step,
                level,
                bytes: KeySwitchKey::model_bytes(params, level),
            })
            .collect();
        let relin_bytes = KeySwitchKey::model_bytes(params, params.max_level());
        let encaps_bytes = if self.config.sparse_secret.is_some() {
            EncapsulationKeys::model_bytes(params)
        } else {
            0
        };
        let total_bytes = keys.iter().map(|k| k.bytes).sum::<u64>() + relin_bytes + encaps_bytes;
        let matrix_bytes = self
            .cts_enc
            .iter()
            .chain(&self.stc_enc)
            .map(EncodedTransform::size_bytes)
            .sum();
        KeyMemory {
            keys,
            relin_bytes,
            total_bytes,
            matrix_bytes,
            pool_bytes: ctx.ring().pool.cap_bytes(),
        }
    }

    /// Generate the Galois keys of [`Bootstrapper::key_plan`], each at its level, and with
    /// [`BootstrapConfig::sparse_secret`] the encapsulation keys
    /// ([`Bootstrapper::add_encapsulation_keys`]), after checking the memory model against
    /// `available_bytes` (e.g. [`available_memory_bytes`]).
    ///
    /// # Errors
    /// [`CkksError::KeyMemory`] when the keys would exceed `available_bytes`; as
    /// [`EncapsulationKeys::generate`].
    pub fn generate_keys<R: RngCore + CryptoRng>(
        &self,
        ctx: &CkksContext,
        sk: &SecretKey,
        available_bytes: u64,
        rng: &mut R,
    ) -> Result<GaloisKeys, CkksError> {
        let m = self.key_memory(ctx);
        if m.total_bytes > available_bytes {
            return Err(CkksError::KeyMemory {
                what: format!(
                    "bootstrapping ({} slots, level budget {}/{})",
                    self.config.slots, self.config.cts_levels, self.config.stc_levels
                ),
                needed_mib: m.total_bytes >> 20,
                available_mib: available_bytes >> 20,
            });
        }
        let mut gk = GaloisKeys::default();
        let els: Vec<(usize, usize)> = self.key_plan.iter().map(|&(g, _, l)| (g, l)).collect();
        gk.generate_elements(ctx, sk, &els, rng);
        self.add_encapsulation_keys(ctx, sk, &mut gk, rng)?;
        Ok(gk)
    }

    /// With [`BootstrapConfig::sparse_secret`], draw the ephemeral sparse secret and add its
    /// two switching keys to `gk` (for callers that generate the Galois keys themselves, e.g.
    /// from a merged key plan); nothing for the dense configuration.
    ///
    /// # Errors
    /// As [`EncapsulationKeys::generate`].
    pub fn add_encapsulation_keys<R: RngCore + CryptoRng>(
        &self,
        ctx: &CkksContext,
        sk: &SecretKey,
        gk: &mut GaloisKeys,
        rng: &mut R,
    ) -> Result<(), CkksError> {
        if let Some(h) = self.config.sparse_secret {
            gk.set_encapsulation(EncapsulationKeys::generate(ctx, sk, h, rng)?);
        }
        Ok(())
    }

    /// ModRaise (step 1): a level-0 ciphertext lifted to level L, labelled with scale Δ_L.
    ///
    /// # Errors
    /// [`CkksError::Level`] unless `ct` is at level 0; [`CkksError::ParamsMismatch`].
    pub fn mod_raise(&self, ev: &Evaluator, ct: &Ciphertext) -> Result<Ciphertext, CkksError> {
        ev.mod_raise(ct)
    }

    /// Bootstrap `ct` (any level; brought to level 0 first) to [`Bootstrapper::output_level`].
    /// With p < N/2 slots the input should hold p values repeated N/(2p) times (a sparsely
    /// packed plaintext); otherwise SubSum returns, in every slot j, the average of the slots
    /// j + k·p.
    ///
    /// # Errors
    /// [`CkksError::Scale`] when the level-0 ciphertext is not at Δ_0;
    /// [`CkksError::MissingGaloisKey`] without the keys of [`Bootstrapper::generate_keys`];
    /// as the evaluator's operations.
    pub fn bootstrap(&self, ev: &Evaluator, ct: &Ciphertext) -> Result<Ciphertext, CkksError> {
        Ok(self.bootstrap_timed(ev, ct)?.0)
    }

    /// [`Bootstrapper::bootstrap`] with the wall-clock time of each step (the same ciphertext;
    /// the times are measured, not part of any deterministic output).
    ///
    /// # Errors
    /// As [`Bootstrapper::bootstrap`].
    pub fn bootstrap_timed(
        &self,
        ev: &Evaluator,
        ct: &Ciphertext,
    ) -> Result<(Ciphertext, BootstrapTimes), CkksError> {
        let mut times = BootstrapTimes::default();
        let mut t = std::time::Instant::now();
        let mut lap = |slot: &mut f64| {
            let now = std::time::Instant::now();
            *slot += now.duration_since(t).as_secs_f64();
            t = now;
        };
        let ct0 = if ct.level() > 0 {
            ev.adjust_to(ct, 0)?
        } else {
            ct.clone()
        };
        if ((ct0.scale() / self.scale0) - 1.0).abs() > 1e-9 {
            return Err(CkksError::Scale {
                op: "bootstrap".into(),
                got: ct0.scale().log2(),
                expected: self.scale0.log2(),
            });
        }
        let mut x = match self.config.sparse_secret {
            None => ev.mod_raise(&ct0)?,
            Some(_) => {
                let keys = ev
                    .galois_keys()
                    .encapsulation()
                    .ok_or(CkksError::MissingEncapsulationKeys)?;
                let sparse = ev.switch_to_sparse(&ct0, keys)?;
                ev.switch_to_dense(&ev.mod_raise(&sparse)?, keys)?
            }
        };
        for &r in &self.subsum {
            let y = ev.rotate(&x, r)?;
            ev.add_assign(&mut x, &y)?;
            ev.recycle(y);
        }
        lap(&mut times.mod_raise_s);
        x = apply_stages(ev, x, &self.cts, &self.cts_enc)?;
        lap(&mut times.coeff_to_slot_s);
        let xc = ev.conjugate(&x)?;
        let eval_mod = |y: &Ciphertext| -> Result<Ciphertext, CkksError> {
            Ok(if self.lazy {
                eval_plan_lazy(ev, &self.plan, y)?.0
            } else {
                eval_plan(ev, &self.plan, y)?.0
            })
        };
        let z = if self.period == 2 * self.config.slots {
            let y = ev.add(&x, &xc)?;
            let z = eval_mod(&y)?;
            ev.recycle(y);
            z
        } else {
            let re = ev.add(&x, &xc)?;
            let im = ev.mul_i_pow(&ev.sub(&x, &xc)?, 3)?;
            let zr = eval_mod(&re)?;
            let zi = eval_mod(&im)?;
            ev.add(&zr, &ev.mul_i_pow(&zi, 1)?)?
        };
        ev.recycle(x);
        ev.recycle(xc);
        lap(&mut times.eval_mod_s);
        let out = apply_stages(ev, z, &self.stc, &self.stc_enc)?;
        lap(&mut times.slot_to_coeff_s);
        Ok((out, times))
    }

    /// [`Bootstrapper::bootstrap`] with the CoeffToSlot/SlotToCoeff diagonals encoded on the
    /// fly ([`Evaluator::linear_transform`]) instead of the ones encoded at construction: the
    /// reference the cached path is tested against (bit for bit).
    #[cfg(test)]
    pub(crate) fn bootstrap_uncached(
        &self,
        ev: &Evaluator,
        ct: &Ciphertext,
    ) -> Result<Ciphertext, CkksError> {
        let uncached = Self {
            cts_enc: Vec::new(),
            stc_enc: Vec::new(),
            ..self.clone()
        };
        uncached.bootstrap(ev, ct)
    }

    /// [`Bootstrapper::bootstrap`] with EvalMod replayed eagerly ([`eval_plan`]: a rescale
    /// after every constant product): the reference of the lazy path's tests.
    #[cfg(test)]
    pub(crate) fn bootstrap_eager(
        &self,
        ev: &Evaluator,
        ct: &Ciphertext,
    ) -> Result<Ciphertext, CkksError> {
        let eager = Self {
            lazy: false,
            ..self.clone()
        };
        eager.bootstrap(ev, ct)
    }
}

/// The stages `lts`, the first applied to inputs at `level` and Δ_level, each next one level
/// lower, encoded ([`CkksContext::encode_transform`]).
fn encode_stages(
    ctx: &CkksContext,
    lts: &[LinearTransform],
    level: usize,
) -> Result<Vec<EncodedTransform>, CkksError> {
    lts.iter()
        .enumerate()
        .map(|(i, lt)| {
            let l = level - i;
            ctx.encode_transform(lt, l, ctx.params().scale(l))
        })
        .collect()
}

/// x through the stages `lts`, with their encoded diagonals `enc` (or, where `enc` is empty,
/// encoding them on the fly: the uncached reference of the tests).
fn apply_stages(
    ev: &Evaluator,
    mut x: Ciphertext,
    lts: &[LinearTransform],
    enc: &[EncodedTransform],
) -> Result<Ciphertext, CkksError> {
    if enc.is_empty() {
        for lt in lts {
            let y = ev.linear_transform(&x, lt)?;
            ev.recycle(std::mem::replace(&mut x, y));
        }
    } else {
        for lt in enc {
            let y = ev.linear_transform_encoded(&x, lt)?;
            ev.recycle(std::mem::replace(&mut x, y));
        }
    }
    Ok(x)
}

/// MemAvailable of /proc/meminfo in bytes (None where it cannot be read).
pub fn available_memory_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl Evaluator {
    /// Checks of ModRaise and of the switch to the sparse secret: `ct` of these parameters,
    /// at level 0, with two components.
    pub(super) fn check_level0_pair(&self, ct: &Ciphertext, op: &str) -> Result<(), CkksError> {
        self.check(ct)?;
        if ct.level != 0 {
            return Err(CkksError::Level {
                op: op.into(),
                got: ct.level,
                expected: "0".into(),
            });
        }
        if ct.c.len() != 2 {
            return Err(CkksError::Size {
                op: op.into(),
                got: ct.c.len(),
                expected: 2,
            });
        }
        Ok(())
    }

    /// ModRaise: the level-0 ciphertext (c_0, c_1) with c_i centred mod q_0 and reduced mod
    /// every q_j of Q_L. Over Q_L it decrypts to t = m + q_0·I (bootstrapping module docs);
    /// the scale label is set to Δ_L.
    ///
    /// # Errors
    /// [`CkksError::Level`] unless `ct` is at level 0; [`CkksError::Size`] for three
    /// components; [`CkksError::ParamsMismatch`].
    pub fn mod_raise(&self, ct: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.check_level0_pair(ct, "mod_raise")?;
        let ring = self.ring();
        let top = self.context().params().max_level();
        let q0 = self.context().params().q().first().copied().unwrap_or(1);
        let q = ring.q_idx(top);
        let c =
            ct.c.iter()
                .map(|poly| {
                    let mut l0: Vec<Vec<u64>> = poly.iter().take(1).cloned().collect();
                    ring.to_coeffs(&mut l0, &[0]);
                    let centred = l0.first().map(|v| centred(v, q0)).unwrap_or_default();
                    ring.signed_to_ntt(&centred, &q)
                })
                .collect();
        Ok(Ciphertext {
            c,
            level: top,
            scale: self.context().params().scale(top),
            params_id: ct.params_id,
        })
    }
}

/// A modulus chain for bootstrapping (module docs, "why the modulus chain looks like it
/// does"): q_0 of 60 bits, `user` primes of `scale_bits` bits (the levels left after a
/// bootstrap), `boot_depth` primes of 60 bits for SlotToCoeff, EvalMod and CoeffToSlot (in
/// that order upwards), `special` special primes of 61 bits; Δ_0 = 2^scale_bits. With
/// `user = None`, as many user levels as fit the 128-bit HomomorphicEncryption.org bound.
///
/// # Errors
/// [`CkksError::NotEnoughLevels`] when not even one user level fits the bound;
/// as [`super::CkksParamsBuilder::build`].
pub fn bootstrap_params(
    log_n: u32,
    boot_depth: usize,
    scale_bits: u32,
    user: Option<usize>,
    special: usize,
    insecure: bool,
) -> Result<super::CkksParams, CkksError> {
    let user = match user {
        Some(u) => u,
        None => {
            let max = super::HE_STANDARD_128
                .iter()
                .find(|r| r.0 == log_n)
                .map_or(0.0, |r| f64::from(r.1));
            let fixed = 60.0 + 60.0 * boot_depth as f64 + 61.0 * special as f64;
            let u = ((max - fixed - 1.0) / f64::from(scale_bits.max(1))).floor();
            if u < 1.0 {
                return Err(CkksError::NotEnoughLevels {
                    what: format!(
                        "bootstrapping of depth {boot_depth} at N = 2^{log_n} within the 128-bit \
                         bound (log2 QP ≤ {max})"
                    ),
                    needed: boot_depth + 1,
                    available: ((max - 60.0 - 61.0 * special as f64) / 60.0).max(0.0) as usize,
                });
            }
            u as usize
        }
    };
    let mut q = vec![60u32];
    q.extend(std::iter::repeat_n(scale_bits, user));
    q.extend(std::iter::repeat_n(60, boot_depth));
    super::CkksParamsBuilder::new()
        .log_n(log_n)
        .q_bits(&q)
        .p_bits(&vec![61; special])
        .scale_bits(scale_bits)
        .insecure(insecure)
        .build()
}
