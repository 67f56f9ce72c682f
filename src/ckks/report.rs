//! The report of an encrypted run ([`EncryptedReport`]): per-image decrypted, approximate and
//! exact logits, the measured CKKS error, agreement counts, the cross-check against a certified
//! network bound, and (separately, not deterministic) timings and memory.

use super::bootstrap::BootstrapConfig;
use super::params::CkksParams;
use super::schedule::Schedule;

/// The slot layout.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Packing {
    /// Slots per image block (power of two ≥ H·W).
    pub block: usize,
    /// Images per ciphertext (N/2 / block).
    pub images_per_ciphertext: usize,
    /// Row width W of the input.
    pub row: usize,
    /// Logit spacing d (logit k of an image at block offset k·d).
    pub logit_spacing: usize,
    /// Rotation steps with Galois keys.
    pub rotation_steps: Vec<i64>,
}

/// Time and levels of one layer (for one batch).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerTiming {
    /// Node name.
    pub node: String,
    /// Op type.
    pub op: String,
    /// Level before.
    pub level_in: usize,
    /// Level after.
    pub level_out: usize,
    /// Rotations performed.
    pub rotations: usize,
    /// Wall-clock seconds, summed over batches.
    pub seconds: f64,
}

/// Per-image results.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EncryptedImage {
    /// Index in the dataset.
    pub index: usize,
    /// The label.
    pub label: u16,
    /// Logits of the exact network F.
    pub exact_logits: Vec<f64>,
    /// Logits of the plaintext approximate network F^α (same p_α and B).
    pub approx_logits: Vec<f64>,
    /// Decrypted logits of the encrypted run.
    pub decrypted_logits: Vec<f64>,
    /// argmax of each.
    pub exact_class: usize,
    /// argmax of the approximate logits.
    pub approx_class: usize,
    /// argmax of the decrypted logits.
    pub decrypted_class: usize,
    /// Measured CKKS error: max_k |decrypted − approximate|.
    pub ckks_error: f64,
    /// max_k |decrypted − exact|.
    pub error_vs_exact: f64,
    /// max_k |approximate − exact|.
    pub approx_vs_exact: f64,
    /// Whether |decrypted − exact| ≤ certified network bound + measured CKKS error
    /// (None when no certified bound was supplied).
    pub within_bound: Option<bool>,
}

/// Timings and memory (not deterministic; kept apart from the results).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Timings {
    /// Key generation (secret, public, relinearisation, Galois).
    pub keygen_s: f64,
    /// Encoding and encryption of all batches.
    pub encrypt_s: f64,
    /// Per layer, summed over batches.
    pub layers: Vec<LayerTiming>,
    /// Decryption and decoding.
    pub decrypt_s: f64,
    /// Homomorphic evaluation of all batches.
    pub eval_s: f64,
    /// Evaluation time per batch (one ciphertext set).
    pub per_batch_s: f64,
    /// Evaluation time per image (batch time / images in the batch, averaged).
    pub per_image_s: f64,
    /// Bytes of the relinearisation and Galois keys.
    pub key_bytes: usize,
    /// Peak resident memory (VmHWM of /proc/self/status), MiB.
    pub peak_rss_mib: Option<f64>,
    /// Seconds spent in bootstraps (absent without bootstrapping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap_s: Option<f64>,
}

/// The report of an encrypted run, cross-checked against the plaintext runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EncryptedReport {
    /// Network name.
    pub model: String,
    /// α.
    pub alpha: u32,
    /// Degrees of p_α's components.
    pub degrees: Vec<u32>,
    /// Depth of r̃_α (Table 1's depth).
    pub relu_depth: u32,
    /// B per activation node (node name, B).
    pub ranges: Vec<(String, f64)>,
    /// The parameters.
    pub params: ParamsSummary,
    /// Levels the network needs.
    pub levels_needed: usize,
    /// Levels per layer (node, op, levels).
    pub level_plan: Vec<(String, String, usize)>,
    /// The slot layout.
    pub packing: Packing,
    /// Seed of the CSPRNG.
    pub seed: u64,
    /// Per-image results.
    pub images: Vec<EncryptedImage>,
    /// Images whose encrypted class equals the plaintext approximate class.
    pub agree_with_approx: usize,
    /// Images whose encrypted class equals the exact class.
    pub agree_with_exact: usize,
    /// Images whose encrypted class equals the label.
    pub correct: usize,
    /// Max over images of the measured CKKS error.
    pub max_ckks_error: f64,
    /// −log₂(max CKKS error): bits of precision of the decrypted logits.
    pub precision_bits: f64,
    /// Max over images of |decrypted − exact|.
    pub max_error_vs_exact: f64,
    /// The certified bound on ‖F^α(x) − F(x)‖∞ supplied by the caller (bounds module).
    pub certified_network_bound: Option<f64>,
    /// Whether every image is within the certified bound + its measured CKKS error.
    pub within_bound: Option<bool>,
    /// Bootstrapping (absent for a run without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<BootstrapSummary>,
    /// Timings and memory (excluded from deterministic output by the CLI's --no-timings).
    pub timings: Option<Timings>,
    /// Per-input certificates of the encrypted images (`polycert ckks --per-input`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_input: Option<Vec<PerInputCheck>>,
    /// Whether the noise margins η of `per_input` used the back-substituted site boxes
    /// (`polycert ckks --margin-rows`); omitted when they did not.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub margin_rows: bool,
}

/// The per-input certificates of one encrypted image (bounds module, same α and B as the
/// run), cross-checked with the decrypted result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PerInputCheck {
    /// Index in the dataset.
    pub index: usize,
    /// Certified lower bound of ‖F^α(x) − F(x)‖∞ (trajectory certificate).
    pub certified_lo: f64,
    /// Certified upper bound of ‖F^α(x) − F(x)‖∞ (trajectory certificate).
    pub certified_hi: f64,
    /// The classes of F(x) and F^α(x) are both certified and equal.
    pub certified_unchanged: bool,
    /// ‖dec − F(x)‖∞ ≤ certified upper bound + measured CKKS error (triangle inequality).
    pub within: bool,
    /// log₂ of the certified noise margin η (every ReLU input perturbed by ≤ η·B keeps the
    /// class), when the image is certified unchanged and the margin was computed.
    pub log2_eta: Option<f64>,
}

/// The bootstrapping of a run: configuration, levels, the schedule, count and measured
/// precision (deterministic for a fixed seed; its time is in [`Timings::bootstrap_s`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BootstrapSummary {
    /// Slots, level budgets, EvalMod.
    pub config: BootstrapConfig,
    /// Levels one bootstrap consumes.
    pub depth: usize,
    /// The level a bootstrap restores.
    pub output_level: usize,
    /// Values are divided by this before a bootstrap and multiplied back inside it.
    pub gain: f64,
    /// Bootstraps performed (all batches).
    pub bootstraps: usize,
    /// Measured precision: min over bootstraps of −log₂ max_slots |out − gain·in| (decrypted).
    pub precision_bits: Option<f64>,
    /// Memory model of all keys (MiB), checked before key generation.
    pub key_model_mib: f64,
    /// Galois keys generated (bootstrapping and executor).
    pub galois_keys: usize,
    /// The level schedule.
    pub schedule: Schedule,
}

/// The parameters as reported.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ParamsSummary {
    /// log₂ N.
    pub log_n: u32,
    /// L.
    pub levels: usize,
    /// log₂(QP).
    pub log_qp: f64,
    /// Bits of each q_i.
    pub q_bits: Vec<f64>,
    /// Bits of each special prime.
    pub p_bits: Vec<f64>,
    /// log₂ Δ_0.
    pub scale_bits: u32,
    /// q-primes per key-switching digit.
    pub digit_size: usize,
    /// The security level.
    pub security: String,
}

impl ParamsSummary {
    /// Summarise parameters.
    pub fn of(p: &CkksParams) -> Self {
        Self {
            log_n: p.log_n(),
            levels: p.max_level(),
            log_qp: p.log_qp(),
            q_bits: p.q().iter().map(|&x| (x as f64).log2()).collect(),
            p_bits: p.p().iter().map(|&x| (x as f64).log2()).collect(),
            scale_bits: p.scale_bits(),
            digit_size: p.digit_size(),
            security: p.security().to_string(),
        }
    }
}

impl EncryptedReport {
    /// A Markdown summary: parameters, per-image table, agreement, errors, timings.
    pub fn to_markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Encrypted inference (CKKS): {} at α = {}\n",
            self.model, self.alpha
        );
        let p = &self.params;
        let _ = writeln!(
            s,
            "Parameters: N = 2^{}, L = {} levels, log2(QP) = {:.1}, scale 2^{}, digit size {}, security: **{}**. \
             Levels needed: {} (r̃_α depth {}, degrees {:?}). Packing: {} images per ciphertext, blocks of {} slots, \
             logit spacing {}. Seed {}.\n",
            p.log_n, p.levels, p.log_qp, p.scale_bits, p.digit_size, p.security, self.levels_needed,
            self.relu_depth, self.degrees, self.packing.images_per_ciphertext, self.packing.block,
            self.packing.logit_spacing, self.seed
        );
        let _ = writeln!(
            s,
            "Ranges B: {}\n",
            self.ranges
                .iter()
                .map(|(n, b)| format!("{n} = {b:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(s, "| image | label | exact | approx | encrypted | CKKS error | \\|dec − exact\\| | within bound |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for i in &self.images {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.3e} | {:.3e} | {} |",
                i.index,
                i.label,
                i.exact_class,
                i.approx_class,
                i.decrypted_class,
                i.ckks_error,
                i.error_vs_exact,
                i.within_bound.map_or("–".to_string(), |b| b.to_string())
            );
        }
        let n = self.images.len();
        let _ = writeln!(
            s,
            "\nEncrypted class = plaintext approximate class: **{}/{n}**; = exact class: {}/{n}; = label: {}/{n}.\n\
             Measured CKKS error (max over images of max_k |decrypted − approximate|): **{:.3e}** ({:.1} bits). \
             Max |decrypted − exact|: {:.3e}. Certified network bound: {}; within bound + CKKS error: {}.\n",
            self.agree_with_approx, self.agree_with_exact, self.correct, self.max_ckks_error, self.precision_bits,
            self.max_error_vs_exact,
            self.certified_network_bound.map_or("not supplied (bounds module)".to_string(), |b| format!("{b:.4e}")),
            self.within_bound.map_or("–".to_string(), |b| b.to_string())
        );
        if let Some(pi) = &self.per_input {
            let _ = writeln!(
                s,
                "## Per-input certificates (certified) against the encrypted run (measured)\n\n\
                 Trajectory certificate of each image at the same α and B (`polycert bound --per-input`): \
                 a certified enclosure [lo, hi] of ‖F^α(x) − F(x)‖∞ and whether both classes are certified \
                 equal; *within*: ‖dec − F‖∞ ≤ hi + the measured CKKS error. η: the certified noise margin \
                 (every ReLU input perturbed by at most η·B keeps the class), to be read against the \
                 measured per-activation CKKS noise (bootstrap precision in the Bootstrapping section below: 2^−bits of the bootstrap's \
                 input range): the margin covers the run only where η·B exceeds that noise.{}\n",
                if self.margin_rows {
                    " η with the back-substituted site boxes of the last stage (`--margin-rows`)."
                } else {
                    ""
                }
            );
            let _ = writeln!(
                s,
                "| image | certified ‖F^α − F‖∞ ∈ | certified unchanged | ‖dec − F‖∞ | within | log₂ η |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|");
            for c in pi {
                let dec = self
                    .images
                    .iter()
                    .find(|i| i.index == c.index)
                    .map_or("–".to_string(), |i| format!("{:.3e}", i.error_vs_exact));
                let _ = writeln!(
                    s,
                    "| {} | [{:.4e}, {:.4e}] | {} | {} | {} | {} |",
                    c.index,
                    c.certified_lo,
                    c.certified_hi,
                    c.certified_unchanged,
                    dec,
                    c.within,
                    c.log2_eta.map_or("–".to_string(), |e| format!("{e:.2}"))
                );
            }
            let _ = writeln!(s);
        }
        if let Some(b) = &self.bootstrap {
            let c = &b.config;
            let _ = writeln!(
                s,
                "## Bootstrapping\n\n{} bootstraps ({} per batch): full slots ({}), CoeffToSlot/SlotToCoeff level budget {}/{}, \
                 EvalMod K = {}, degree {}, {} double angles; {} levels per bootstrap, restored level {}; values divided by {} \
                 before each bootstrap and multiplied back inside it. Measured bootstrap precision (min over bootstraps, all \
                 slots, decrypted against the decrypted input): {}. Keys: {} Galois keys + relinearisation, memory model {:.0} MiB.\n",
                b.bootstraps,
                b.schedule.bootstraps,
                c.slots,
                c.cts_levels,
                c.stc_levels,
                c.eval_mod.k,
                c.eval_mod.degree,
                c.eval_mod.double_angles,
                b.depth,
                b.output_level,
                b.gain,
                b.precision_bits.map_or("–".to_string(), |x| format!("{x:.1} bits")),
                b.galois_keys,
                b.key_model_mib
            );
            let _ = writeln!(s, "```text\n{}```\n", b.schedule);
        }
        if let Some(t) = &self.timings {
            let _ = writeln!(s, "## Timings (measured, this machine)\n");
            let _ = writeln!(
                s,
                "| layer | op | level in → out | rotations (per batch) | seconds (all batches) |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|");
            for l in &t.layers {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} → {} | {} | {:.2} |",
                    l.node, l.op, l.level_in, l.level_out, l.rotations, l.seconds
                );
            }
            let _ = writeln!(
                s,
                "\nKey generation {:.1} s, encryption {:.2} s, evaluation {:.1} s ({:.1} s per batch, {:.2} s per image), \
                 decryption {:.2} s. Keys {:.0} MiB; peak RSS {}.",
                t.keygen_s, t.encrypt_s, t.eval_s, t.per_batch_s, t.per_image_s, t.decrypt_s,
                t.key_bytes as f64 / 1048576.0,
                t.peak_rss_mib.map_or("n/a".to_string(), |m| format!("{m:.0} MiB"))
            );
            if let Some(bt) = t.bootstrap_s {
                let nb = self.bootstrap.as_ref().map_or(0, |b| b.bootstraps);
                let _ = writeln!(
                    s,
                    "Bootstraps: {bt:.1} s in all ({:.1} s each, {:.0}% of the evaluation).",
                    bt / nb.max(1) as f64,
                    100.0 * bt / t.eval_s.max(f64::MIN_POSITIVE)
                );
            }
        }
        s
    }
}
