//! RNS-CKKS (Cheon–Kim–Kim–Song, residue number system variant) and the encrypted run of the
//! paper's approximate networks (paper §3: the composite sign p_α, r̃_α and M̃_{α,n} evaluated
//! on ciphertexts).
//!
//! Layers (each file one object):
//! - [`params`]: [`CkksParams`] / [`CkksParamsBuilder`]: the ring degree N, the modulus chain
//!   q_0 … q_L, the special primes P of hybrid key switching, the scale chain Δ_ℓ, and the
//!   HomomorphicEncryption.org 128-bit check of log₂(QP) for ternary secrets.
//! - `ring`: RNS polynomials in NTT form over fhe-math's [`fhe_math::zq::Modulus`] and
//!   [`fhe_math::ntt::NttOperator`], Galois automorphisms in the NTT domain, fast basis
//!   conversion, samplers (ternary secret, rounded Gaussian σ = 3.2, uniform).
//! - `encoding`: the canonical embedding (slot j = m(ζ^{5^j}), ζ = e^{iπ/N}) by the special FFT.
//! - [`keys`]: secret (zeroized on drop), public, relinearisation and Galois keys (hybrid key
//!   switching with special primes).
//! - `eval`: [`Ciphertext`], [`Plaintext`], [`Evaluator`]: add, plaintext and constant
//!   multiplication, multiplication with relinearisation, rescaling with exact scale tracking,
//!   rotations, level management; every operation checks parameters, levels and scales.
//! - `polyeval`: replay of an [`crate::poly::EvalPlan`] (odd BSGS, Chebyshev basis) on
//!   ciphertexts with the level of every value asserted against the plan's level model; r_α
//!   and m_α on ciphertexts.
//! - `pool`: the recycling pool of limb buffers for the evaluator's large temporaries (ModUp
//!   digits, key inner products, ModDown, rescaling, rotations, linear-transform sums).
//! - `hoist`: hoisted Galois automorphisms (one key-switching decomposition of c_1 for many
//!   rotations), conjugation, multiplication of the slots by i.
//! - `lintrans`: [`LinearTransform`], complex matrices on (periodic) slot vectors by
//!   generalised diagonals, evaluated by baby-step giant-step with hoisted baby steps in one
//!   level.
//! - `dft`: the special DFT of the canonical embedding factored into butterfly stages and
//!   grouped under a level budget: CoeffToSlot and SlotToCoeff.
//! - `evalmod`: [`EvalModConfig`], the scaled sine sin(2πK·u) by a Chebyshev interpolant of
//!   a cosine and double angles, K from the dense ternary secret.
//! - `encapsulation`: sparse-secret encapsulation of ModRaise ([`EncapsulationKeys`]: s → s'
//!   at q_0·p_0, s' → s at Q_L·P; the security argument), K from the exact Irwin–Hall tail.
//! - [`security`]: estimated LWE bit security (primal uSVP calibrated on the
//!   HomomorphicEncryption.org table; drop-and-solve and MITM hybrids for sparse secrets), the
//!   check behind the encapsulation's security argument.
//! - `bootstrap`: ModRaise, SubSum, [`Bootstrapper`] (levels, key plan and memory model,
//!   keys only for the steps used, each at the level where it is used) and
//!   [`bootstrap_params`].
//! - `schedule`: the level schedule of a run with bootstrapping ([`Schedule`]: where each
//!   bootstrap goes, the composite sign split across bootstraps, channels sharing a
//!   ciphertext), planned before any key.
//! - `infer`: the encrypted executor of small CNNs (packing, convolution by rotations,
//!   pooling, dense layer) and the per-image report cross-checked against plaintext runs.
//! - `graph`: residual networks (CIFAR ResNets, option-A shortcuts) compiled to a dataflow
//!   graph (padded and strided convolutions with BatchNorm folded, subsampling, channel
//!   padding, residual additions, global pooling + dense layer) and its level plan.
//! - `resnet`: the encrypted executor of that graph and [`plan_encrypted`] (levels,
//!   bootstraps, keys, memory and cost, before any key).
//!
//! # Scale management (exact)
//! Each level ℓ has a nominal scale Δ_ℓ with Δ_0 = 2^scale_bits and Δ_ℓ = √(Δ_{ℓ−1}·q_ℓ),
//! i.e. Δ_ℓ²/q_ℓ = Δ_{ℓ−1}: the product of two ciphertexts at scale Δ_ℓ, rescaled by q_ℓ, is
//! exactly at scale Δ_{ℓ−1}. A multiplication by a real constant c at level ℓ uses the integer
//! K = round(c·S) with S = q_ℓ·Δ_{ℓ−1}/s (s the ciphertext's scale), so that after rescaling
//! the scale is exactly Δ_{ℓ−1} again; the only error is the quantisation of c to K/S
//! (|c − K/S| ≤ 1/(2S) ≈ 2^−41). Bringing a ciphertext from level h down to l < h is a
//! modulus drop to l + 1 followed by such a multiplication by 1. So every ciphertext produced
//! by the evaluator at level ℓ carries scale Δ_ℓ, and additions never see mismatched scales;
//! scales are compared up to f64 rounding (relative 2^−40), and a real mismatch is an error.
//!
//! Security: parameters above the HomomorphicEncryption.org table are refused unless
//! `insecure(true)` is set, and [`CkksParams::security`] says which.
//!
//! This module does not construct polynomials (see `remez`, `approx`) and does not certify
//! anything: its errors are **measured** against plaintext runs.

mod bootstrap;
mod dft;
mod encapsulation;
mod encoding;
mod error;
mod eval;
mod evalmod;
mod graph;
mod hoist;
mod infer;
pub mod keys;
mod layers;
mod lintrans;
pub mod params;
mod polyeval;
mod pool;
mod report;
mod resnet;
mod ring;
mod schedule;
pub mod security;

pub use bootstrap::{
    available_memory_bytes, bootstrap_params, BootstrapConfig, BootstrapTimes, Bootstrapper,
    KeyMemory, KeyNeed,
};
pub use dft::{bit_reverse_index, coeff_to_slot_stages, slot_to_coeff_stages};
pub use encapsulation::{
    irwin_hall_two_sided_tail, sparse_k, EncapsulationKeys, EPHEMERAL_WEIGHT, LOG2_FAIL_PER_COEFF,
};
pub use encoding::{Complex, Encoder};
pub use error::CkksError;
pub use eval::{Ciphertext, CkksContext, Evaluator, Plaintext};
pub use evalmod::EvalModConfig;
pub use infer::{
    encrypted_levels, is_chain, run_encrypted, run_encrypted_with, EncryptedConfig, RunSetup,
    BOOTSTRAP_FROM_ALPHA, BOOT_SCALE_BITS, INSECURE_USER_LEVELS,
};
pub use keys::{GaloisKeys, KeySwitchKey, PublicKey, RelinKey, SecretKey};
pub use lintrans::{EncodedTransform, LinearTransform};
pub use params::{CkksParams, CkksParamsBuilder, SecurityLevel, HE_STANDARD_128};
pub use polyeval::{
    eval_plan, eval_plan_lazy, eval_sign, max2_scaled, relu_scaled, sign_plans, PlanTrace,
};
pub use pool::LimbPoolStats;
pub use report::{
    BootstrapSummary, EncryptedImage, EncryptedReport, LayerTiming, Packing, ParamsSummary,
    PerInputCheck, Timings,
};
pub use resnet::{
    plan_encrypted, CostEstimate, RunPlan, EST_BOOTSTRAP_S_2_16, EST_CONST_MULT_NS,
    EST_KEY_SWITCH_S_PER_PRIME_2_16,
};
pub use schedule::{
    block_groups, group_packing, pack_offsets, plan_relu, LayerSchedule, ReluSchedule, Schedule,
    BOOT_GAIN,
};

#[cfg(test)]
mod bootstrap_tests;
#[cfg(test)]
mod encapsulation_tests;
#[cfg(test)]
mod evalmod_tests;
#[cfg(test)]
mod pool_tests;
#[cfg(test)]
mod resnet_tests;
#[cfg(test)]
mod tests;
