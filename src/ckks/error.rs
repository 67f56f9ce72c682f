//! Errors of the `ckks` module.

/// Errors of the `ckks` module: every message names the bad value and the valid range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CkksError {
    /// A parameter outside its valid range.
    #[error("CKKS parameter {what} = {value} is invalid; valid: {valid}")]
    BadParam {
        /// Which parameter.
        what: String,
        /// Its value.
        value: String,
        /// The valid range.
        valid: String,
    },
    /// log₂(QP) above the HomomorphicEncryption.org 128-bit bound without `--insecure`.
    #[error(
        "CKKS parameters N = 2^{log_n}, log2(QP) = {log_qp:.1} exceed the \
         HomomorphicEncryption.org 128-bit bound for ternary secrets ({max}); \
         pass --insecure to use them anyway"
    )]
    Insecure {
        /// log₂ N.
        log_n: u32,
        /// log₂(QP) of the parameters.
        log_qp: f64,
        /// The bound, or "none" for an N outside the table.
        max: String,
    },
    /// No NTT-friendly prime of the requested size.
    #[error("no {bits}-bit prime p ≡ 1 mod 2N = {two_n} left (need {count} distinct ones)")]
    NoPrime {
        /// Bit size.
        bits: u32,
        /// 2N.
        two_n: u64,
        /// How many were needed.
        count: usize,
    },
    /// An object made for other parameters.
    #[error("{what} belongs to other CKKS parameters (id {got:#x}, expected {expected:#x})")]
    ParamsMismatch {
        /// Which object.
        what: String,
        /// Its parameter id.
        got: u64,
        /// The evaluator's parameter id.
        expected: u64,
    },
    /// Keys generated from different secret keys.
    #[error(
        "{what} was generated for key set {got:#x}, but the evaluator uses key set {expected:#x}"
    )]
    KeyMismatch {
        /// Which key.
        what: String,
        /// Its key-set id.
        got: u64,
        /// The expected key-set id.
        expected: u64,
    },
    /// Operands at different levels (or a required level not available).
    #[error("{op}: level {got} but {expected} is required")]
    Level {
        /// Operation.
        op: String,
        /// Level found.
        got: usize,
        /// Level required.
        expected: String,
    },
    /// Operands at different scales.
    #[error("{op}: scale 2^{got:.6} does not match 2^{expected:.6}")]
    Scale {
        /// Operation.
        op: String,
        /// log₂ of the scale found.
        got: f64,
        /// log₂ of the scale required.
        expected: f64,
    },
    /// A rotation without its Galois key.
    #[error("no Galois key for rotation by {step} slots; generated steps: {available}")]
    MissingGaloisKey {
        /// The requested step.
        step: i64,
        /// The steps with keys.
        available: String,
    },
    /// Relinearisation without a relinearisation key.
    #[error("ciphertext multiplication needs a relinearisation key; none was given")]
    MissingRelinKey,
    /// Bootstrapping with sparse-secret encapsulation without its switching keys.
    #[error(
        "bootstrapping with sparse-secret encapsulation needs the s → s' and s' → s switching \
         keys; none were given (generate them with Bootstrapper::generate_keys or \
         Bootstrapper::add_encapsulation_keys)"
    )]
    MissingEncapsulationKeys,
    /// A ciphertext of unexpected size (number of components).
    #[error("{op}: ciphertext has {got} components, expected {expected}")]
    Size {
        /// Operation.
        op: String,
        /// Components found.
        got: usize,
        /// Components expected.
        expected: usize,
    },
    /// Encoding input too long or not finite / too large.
    #[error("encode: {what}")]
    Encode {
        /// What was wrong.
        what: String,
    },
    /// The decrypted value overflowed the base modulus q_0 (|m·Δ| ≥ q_0/2).
    #[error(
        "decode: the plaintext overflowed q_0 (residues mod q_0 and q_1 disagree); \
         values times the scale 2^{log_scale:.1} must stay below q_0/2 = 2^{log_half_q0:.1}"
    )]
    Overflow {
        /// log₂ of the scale.
        log_scale: f64,
        /// log₂(q_0/2).
        log_half_q0: f64,
    },
    /// The plan or network needs more levels than the parameters have.
    #[error("{what} needs {needed} levels but the parameters provide {available} (L = {available}); use larger parameters (--n 16), a smaller α, or fewer layers")]
    NotEnoughLevels {
        /// What needs the levels.
        what: String,
        /// Levels needed.
        needed: usize,
        /// Levels available.
        available: usize,
    },
    /// The replayed plan did not follow its own level model.
    #[error("plan op #{op}: ciphertext at level {got}, the plan's level model says {expected}")]
    LevelModel {
        /// Index of the op in the plan.
        op: usize,
        /// Actual level.
        got: usize,
        /// Level predicted by the plan.
        expected: usize,
    },
    /// A malformed evaluation plan.
    #[error("evaluation plan op #{op} refers to a value or constant that does not exist")]
    BadPlan {
        /// Index of the op.
        op: usize,
    },
    /// A network the encrypted executor cannot run.
    #[error("node {node:?} ({op}): {reason}")]
    Unsupported {
        /// Node name.
        node: String,
        /// Op type.
        op: String,
        /// Why.
        reason: String,
    },
    /// Keys that would not fit in the memory available.
    #[error(
        "{what} needs {needed_mib} MiB of evaluation keys but only {available_mib} MiB are \
         available; use fewer slots, a larger level budget or a machine with more memory"
    )]
    KeyMemory {
        /// What needs the keys.
        what: String,
        /// MiB the keys need (memory model).
        needed_mib: u64,
        /// MiB available.
        available_mib: u64,
    },
}
