//! The CKKS section of the report (`polycert report --models DIR --data DIR`, issue 7): the
//! approximate networks F^α (paper §3, r̃_α and M̃_{α,n} of Eq. 7) run on RNS-CKKS
//! ciphertexts ([`crate::ckks::run_encrypted`]) for the first K images of each supported
//! model's data file, with per image the encrypted, plaintext approximate and exact classes,
//! the **measured** CKKS noise ‖dec − F^α(x)‖∞ and error ‖dec − F(x)‖∞, next to the
//! **certified** bounds on ‖F^α(x) − F(x)‖∞ of the bounds module: the global Theorem 3/4 bound
//! C·2^−α and the per-input bound (certified only for images that pass the range check).
//!
//! Since the certified bounds are about F^α itself, the decrypted result is compared with them
//! through the triangle inequality ‖dec − F‖∞ ≤ ‖F^α − F‖∞ + ‖dec − F^α‖∞: the certified
//! bound plus the measured CKKS noise.
//!
//! Parameters are chosen by [`RunSetup::choose`]: [`crate::ckks::CkksParams::for_depth`] for
//! the network's depth at N = 2^[`CkksReportConfig::log_n`], with bootstrapping
//! ([`RunSetup::bootstrapped`]) from α = [`crate::ckks::BOOTSTRAP_FROM_ALPHA`] on or when the
//! levels do not fit; they must pass the HomomorphicEncryption.org 128-bit check (only tests set
//! [`CkksReportConfig::insecure`]; the section then says so in bold). A model the encrypted
//! executor does not support, or one that fits neither, is listed with the reason and skipped
//! before any key is generated.
//!
//! Deterministic: keys and encryption randomness come from a ChaCha20 CSPRNG seeded with
//! [`CkksReportConfig::seed`]; timings and memory are left out of the section (the caller
//! receives them separately).

use std::sync::Arc;

use serde_json::{json, Value};

use super::network::file_name;
use super::{Evidence, LegendPos, LinePlot, MdTable, NetworkReportConfig, Section, Series};
use crate::bounds::{BoundConfig, PolyErrors, ALPHAS};
use crate::ckks::{
    encrypted_levels, is_chain, run_encrypted_with, CkksError, EncryptedConfig, EncryptedReport,
    RunSetup, Timings,
};
use crate::nn::{import_onnx, Dataset, NnError, SignKernel};
use crate::remez::table1_sign;

/// Default α of the CKKS section (as in `reports/ckks_mnist.md`: α = 13 is the largest α
/// whose encrypted run decrypts correctly at N = 2^16 with a 2^40 scale).
pub const DEFAULT_CKKS_ALPHA: u32 = 13;
/// Default number of images per model (one ciphertext holds 32 MNIST images at N = 2^16, so
/// the run costs one batch whatever K ≤ 32).
pub const DEFAULT_CKKS_IMAGES: usize = 8;
/// Default seed of the CKKS section's CSPRNG.
pub const DEFAULT_CKKS_SEED: u64 = 1;

/// What the CKKS section covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CkksReportConfig {
    /// Images per model: the first K of each data file (K ≥ 1).
    pub images: usize,
    /// α of Table 1 (4..=14, the α with committed certificates).
    pub alpha: u32,
    /// Seed of the ChaCha20 CSPRNG (keys, encryption noise).
    pub seed: u64,
    /// log₂ N of the ring (16 by default: the 128-bit table then allows log₂ QP ≤ 1772).
    pub log_n: u32,
    /// Accept parameters outside the 128-bit table (small rings for tests only; the CLI never
    /// sets it, and the section states the security level of every run).
    pub insecure: bool,
}

impl Default for CkksReportConfig {
    fn default() -> Self {
        Self {
            images: DEFAULT_CKKS_IMAGES,
            alpha: DEFAULT_CKKS_ALPHA,
            seed: DEFAULT_CKKS_SEED,
            log_n: 16,
            insecure: false,
        }
    }
}

/// Timings and memory of one model's encrypted run (measured on this machine, not
/// deterministic, hence not part of the section).
#[derive(Debug, Clone, PartialEq)]
pub struct CkksTiming {
    /// Model file name.
    pub model: String,
    /// The run's timings (key generation, evaluation per batch and per image, peak RSS).
    pub timings: Timings,
}

fn config_error(what: &str, value: String, valid: &str) -> crate::Error {
    NnError::Config {
        what: what.into(),
        value,
        valid: valid.into(),
    }
    .into()
}

/// The file stem as a plot id (letters, digits, `-`, `_`).
fn plot_id(stem: &str) -> String {
    let s: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("ckks_error_{s}")
}

/// Positive, finite points only (a log axis cannot show the others; they stay in the JSON).
fn drawable(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    points.filter(|(_, y)| y.is_finite() && *y > 0.0).collect()
}

fn sci(x: f64) -> String {
    format!("{x:.3e}")
}

/// One model's encrypted run with its certified bounds.
struct ModelRun {
    json: Value,
    markdown: String,
    plot: LinePlot,
    timing: Option<CkksTiming>,
}

/// Run one supported model; `Ok(Err(reason))` when it is skipped.
#[expect(
    clippy::too_many_lines,
    reason = "one model: run, JSON, table and plot"
)]
fn run_model(
    net_cfg: &NetworkReportConfig,
    cfg: &CkksReportConfig,
    md: &super::ModelData,
    progress: &mut dyn FnMut(&str),
) -> crate::Result<Result<ModelRun, String>> {
    let name = file_name(&md.model);
    let stem = name.trim_end_matches(".onnx").to_string();
    let net = Arc::new(import_onnx(&md.model)?);
    let sign = table1_sign(cfg.alpha)?;
    // Cheap checks first: no calibration, no key before we know the model runs.
    let levels = match encrypted_levels(&net, &sign) {
        Ok(l) => l,
        Err(e @ CkksError::Unsupported { .. }) => {
            return Ok(Err(format!("not supported by the encrypted executor: {e}")))
        }
        Err(e) => return Err(e.into()),
    };
    if !is_chain(&net) {
        return Ok(Err(
            "a residual network: `polycert ckks` runs it encrypted (graph executor), but not \
             inside the report: at 128-bit parameters one batch takes hours (issue 14)"
                .into(),
        ));
    }
    let enc_cfg = EncryptedConfig {
        alpha: cfg.alpha,
        log_n: cfg.log_n,
        insecure: cfg.insecure,
        seed: cfg.seed,
    };
    let setup = match RunSetup::choose(&net, &sign, &enc_cfg, false) {
        Ok(s) => s,
        Err(CkksError::NotEnoughLevels { available, .. }) => {
            return Ok(Err(format!(
                "needs {levels} levels at α = {}; parameters at N = 2^{} within the 128-bit \
                 HomomorphicEncryption.org bound hold at most {available}, and bootstrapping \
                 does not fit them either",
                cfg.alpha, cfg.log_n
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let bootstrapped = setup.bootstrap.is_some();
    progress(&format!("CKKS, {name}: choosing B"));
    let data_rel = md
        .data
        .strip_prefix(&net_cfg.data)
        .map_or_else(|_| file_name(&md.data), |p| p.display().to_string());
    // B as in the other network sections (calibrated with the report's range policy), here on
    // the whole data file so that it does not depend on K.
    let (bn, ranges) = crate::bounds::ranges_for(&BoundConfig {
        model: md.model.clone(),
        alphas: vec![cfg.alpha],
        proofs: net_cfg.proofs.clone(),
        range: net_cfg.range,
        calib: None,
        calib_limit: None,
        data: Some(md.data.clone()),
        limit: None,
        per_input: false,
        method: crate::bounds::PerInputMethod::Elementwise,
        noise_margin: false,
        margin_rows: false,
        shard: None,
        evenly: false,
    })?;
    let pe = PolyErrors::load_or_certify(&net_cfg.proofs, cfg.alpha)?;
    let global = bn.global(&pe, &ranges)?;
    // The certified bounds are about the certificate's polynomial: check that the encrypted
    // run evaluates the same one (coefficients rounded to binary64 alike).
    let same_poly = pe.sign_kernel()? == SignKernel::new(cfg.alpha, sign.poly());
    let data = Dataset::open(&md.data, None)?;
    if cfg.images > data.len() {
        return Err(config_error(
            "--ckks-images",
            cfg.images.to_string(),
            &format!("at most the {} images of {}", data.len(), md.data.display()),
        ));
    }
    let indices: Vec<usize> = (0..cfg.images).collect();
    let mut xs = Vec::with_capacity(cfg.images);
    let mut labels = Vec::with_capacity(cfg.images);
    let mut per_input = Vec::with_capacity(cfg.images);
    for &i in &indices {
        let raw = data.image(i).ok_or_else(|| {
            config_error(
                "image index",
                i.to_string(),
                &format!("< {} images of {}", data.len(), md.data.display()),
            )
        })?;
        let mut x = Vec::new();
        net.preprocess.apply(raw, data.shape[0], &mut x);
        per_input.push(bn.per_input(&pe, &ranges, &x)?);
        xs.push(x);
        labels.push(data.label(i).unwrap_or(0));
    }
    progress(&format!(
        "CKKS, {name}: encrypted run of {} images, α = {}, N = 2^{}",
        cfg.images, cfg.alpha, cfg.log_n
    ));
    let run = run_encrypted_with(
        &net,
        &xs,
        &labels,
        &indices,
        &ranges,
        &sign,
        &enc_cfg,
        setup,
        Some(global.bound),
        progress,
    );
    let mut rep: EncryptedReport = match run {
        Ok(r) => r,
        // The level schedule with bootstraps is planned before any key: a layer whose input is
        // never bootstrapped (e.g. max pooling) may not fit.
        Err(crate::Error::Ckks(e @ CkksError::NotEnoughLevels { .. })) if bootstrapped => {
            return Ok(Err(format!(
                "needs more levels at α = {} than the bootstrapped parameters at N = 2^{} \
                 give: {e}",
                cfg.alpha, cfg.log_n
            )))
        }
        Err(e) => return Err(e),
    };
    let timing = rep.timings.take().map(|timings| CkksTiming {
        model: name.clone(),
        timings,
    });

    let g = global.bound;
    let mut rows = Vec::new();
    let mut t = MdTable::new(&[
        "image",
        "label",
        "exact class",
        "F^α class",
        "encrypted class",
        "‖dec − F^α‖∞ (measured)",
        "‖dec − F‖∞ (measured)",
        "‖F^α − F‖∞ (measured)",
        "per-input bound (certified)",
        "global bound (certified)",
    ]);
    let (mut approx_ok, mut approx_checked, mut dec_ok) = (0usize, 0usize, 0usize);
    for (im, pb) in rep.images.iter().zip(&per_input) {
        let pib = pb.in_range.then_some(pb.bound);
        let approx_within = pib.map(|b| im.approx_vs_exact <= b);
        if let Some(ok) = approx_within {
            approx_checked += 1;
            approx_ok += usize::from(ok);
        }
        // Triangle inequality: ‖dec − F‖ ≤ ‖F^α − F‖ + ‖dec − F^α‖ ≤ bound + measured noise,
        // with the tighter certified bound: the per-input one when the image passes its range
        // check, else the global one.
        let tight = pib.unwrap_or(g).min(g);
        let dec_within = im.error_vs_exact <= tight + im.ckks_error;
        dec_ok += usize::from(dec_within);
        rows.push(json!({
            "index": im.index,
            "label": im.label,
            "class": {
                "evidence": Evidence::Measured,
                "exact": im.exact_class,
                "approx": im.approx_class,
                "encrypted": im.decrypted_class,
            },
            "measured": {
                "ckks_noise_linf": im.ckks_error,
                "dec_vs_exact_linf": im.error_vs_exact,
                "approx_vs_exact_linf": im.approx_vs_exact,
            },
            "certified": {
                "global_bound": g,
                "per_input_bound": pib,
                "in_range": pb.in_range,
                "out_of_range_entries": pb.out_of_range,
                "unchanged": pb.unchanged,
            },
            "checks": {
                "approx_vs_exact_within_per_input": approx_within,
                "dec_vs_exact_within_bound_plus_noise": dec_within,
            },
        }));
        t.row(&[
            im.index.to_string(),
            im.label.to_string(),
            im.exact_class.to_string(),
            im.approx_class.to_string(),
            im.decrypted_class.to_string(),
            sci(im.ckks_error),
            sci(im.error_vs_exact),
            sci(im.approx_vs_exact),
            pib.map_or_else(|| "— (range check failed)".into(), sci),
            sci(g),
        ]);
    }
    let n = rep.images.len();
    let p = &rep.params;
    let max_approx = rep
        .images
        .iter()
        .map(|i| i.approx_vs_exact)
        .fold(0.0, f64::max);
    let json = json!({
        "model": name,
        "data": data_rel,
        "alpha": rep.alpha,
        "degrees": rep.degrees,
        "relu_depth": rep.relu_depth,
        "levels_needed": rep.levels_needed,
        "params": rep.params,
        "images_per_ciphertext": rep.packing.images_per_ciphertext,
        "seed": rep.seed,
        "ranges": rep.ranges,
        "range_policy": net_cfg.range,
        "polynomial_matches_certificate": same_poly,
        "certified": {
            "global_bound": g,
            "c": global.c,
            "certificate": pe.source(),
        },
        "measured": {
            "images": n,
            "encrypted_equals_approx": rep.agree_with_approx,
            "encrypted_equals_exact": rep.agree_with_exact,
            "encrypted_equals_label": rep.correct,
            "max_ckks_noise_linf": rep.max_ckks_error,
            "precision_bits": rep.precision_bits,
            "max_dec_vs_exact_linf": rep.max_error_vs_exact,
            "max_approx_vs_exact_linf": max_approx,
        },
        "checks": {
            "in_range_images": approx_checked,
            "approx_vs_exact_within_per_input": approx_ok,
            "dec_vs_exact_within_bound_plus_noise": dec_ok,
        },
        "images": rows,
    });
    let mut md_text = format!(
        "### {name} (α = {}, N = 2^{})\n\nParameters: N = 2^{}, L = {} levels (needed {}), \
         log₂ QP = {:.1}, scale 2^{}, security: **{}**; {} images per ciphertext; seed {}; \
         degrees {:?}. B per activation: {}. The encrypted polynomial {} the certificate's \
         ({}).\n\n",
        rep.alpha,
        p.log_n,
        p.log_n,
        p.levels,
        rep.levels_needed,
        p.log_qp,
        p.scale_bits,
        p.security,
        rep.packing.images_per_ciphertext,
        rep.seed,
        rep.degrees,
        rep.ranges
            .iter()
            .map(|(node, b)| format!("{node} = {b:.4}"))
            .collect::<Vec<_>>()
            .join(", "),
        if same_poly { "is" } else { "**differs from**" },
        pe.source(),
    );
    md_text.push_str(&t.render());
    md_text.push_str(&format!(
        "\nEncrypted class = F^α class on **{}/{n}**, = exact class on {}/{n}, = label on \
         {}/{n} (measured). Max CKKS noise ‖dec − F^α‖∞ {} ({:.1} bits), max ‖dec − F‖∞ {} \
         (measured); certified global bound C·2^−α = {} (C = {:.4}). ‖F^α − F‖∞ within the \
         per-input bound on {approx_ok}/{approx_checked} in-range images; ‖dec − F‖∞ within \
         the certified bound + measured noise on {dec_ok}/{n}.\n\n",
        rep.agree_with_approx,
        rep.agree_with_exact,
        rep.correct,
        sci(rep.max_ckks_error),
        rep.precision_bits,
        sci(rep.max_error_vs_exact),
        sci(g),
        global.c,
    ));
    let idx = |i: usize| rep.images.get(i).map_or(0.0, |im| im.index as f64);
    let mut series = vec![
        Series::new(
            "measured ‖dec − F‖∞",
            drawable(
                rep.images
                    .iter()
                    .map(|im| (im.index as f64, im.error_vs_exact)),
            ),
        ),
        Series::new(
            "measured ‖dec − F^α‖∞ (CKKS noise)",
            drawable(rep.images.iter().map(|im| (im.index as f64, im.ckks_error))),
        ),
        Series {
            dashed: true,
            ..Series::new(
                "certified per-input bound on ‖F^α − F‖∞",
                drawable(
                    per_input
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| b.in_range)
                        .map(|(i, b)| (idx(i), b.bound)),
                ),
            )
        },
        Series {
            dashed: true,
            // A single image gives a zero-length line: show its point instead.
            markers: n < 2,
            ..Series::new(
                "certified global bound C·2^−α",
                drawable([(idx(0), g), (idx(n.saturating_sub(1)), g)].into_iter()),
            )
        },
    ];
    series.retain(|s| !s.points.is_empty());
    let plot = LinePlot {
        id: plot_id(&stem),
        title: format!(
            "{stem}, CKKS at α = {}, N = 2^{}: error per image",
            rep.alpha, p.log_n
        ),
        x_label: "image index".into(),
        y_label: "‖·‖∞ over the logits".into(),
        log_x: false,
        log_y: true,
        series,
        evidence: Evidence::Mixed,
        // Bounds run along the top, measured errors along the bottom.
        legend: LegendPos::MiddleRight,
    };
    Ok(Ok(ModelRun {
        json,
        markdown: md_text,
        plot,
        timing,
    }))
}

/// The CKKS section: for every model of `net_cfg.models` that the encrypted executor supports
/// at α = `cfg.alpha` within 128-bit parameters, the encrypted run of the first `cfg.images`
/// images against the plaintext networks and the certified bounds, with one plot per model;
/// other models are listed with the reason they were skipped. Returns the section and the
/// (non-deterministic) timings of each run.
///
/// # Errors
/// A bad configuration (`cfg.images` 0 or beyond the data file, α without a certificate), as
/// [`super::match_models`], [`crate::bounds::ranges_for`] and
/// [`crate::ckks::run_encrypted`].
pub fn ckks_section(
    net_cfg: &NetworkReportConfig,
    cfg: &CkksReportConfig,
    progress: &mut dyn FnMut(&str),
) -> crate::Result<(Section, Vec<CkksTiming>)> {
    if cfg.images == 0 {
        return Err(config_error(
            "--ckks-images",
            "0".into(),
            "at least 1 (0 skips the CKKS section)",
        ));
    }
    if !ALPHAS.contains(&cfg.alpha) {
        return Err(config_error(
            "--ckks-alpha",
            cfg.alpha.to_string(),
            "an α in 4..=14 (Table 1 with a committed certificate)",
        ));
    }
    let mut models = Vec::new();
    let mut skipped: Vec<Value> = Vec::new();
    let mut plots = Vec::new();
    let mut timings = Vec::new();
    let mut body = String::new();
    for m in super::match_models(net_cfg)? {
        let name = file_name(&m.model);
        match run_model(net_cfg, cfg, &m, progress)? {
            Ok(run) => {
                models.push(run.json);
                body.push_str(&run.markdown);
                plots.push(run.plot);
                timings.extend(run.timing);
            }
            Err(reason) => skipped.push(json!({"model": name, "reason": reason})),
        }
    }
    let mut md = format!(
        "Encrypted inference under RNS-CKKS (`src/ckks`): the approximate network F^α (r̃_α \
         and M̃_{{α,n}} of Eq. 7 with the Table 1 polynomial of α = {alpha} and the same B as \
         the plaintext engine) on the first {k} images of each supported model's data file, \
         seed {seed}. Per image: the classes of the exact network F, of the plaintext F^α and \
         of the decryption; the **measured** CKKS noise ‖dec − F^α(x)‖∞ and error \
         ‖dec − F(x)‖∞; the **certified** bounds on ‖F^α(x) − F(x)‖∞ (global Theorem 3/4 \
         bound C·2^−α; per-input bound of the bounds module, certified only when the image \
         passes its range check). The decryption is within certified bound + measured noise \
         by the triangle inequality. Timings are measured and machine-dependent, so they are \
         not in this report (see `reports/ckks_mnist.md`).\n\n",
        alpha = cfg.alpha,
        k = cfg.images,
        seed = cfg.seed,
    );
    md.push_str(&body);
    if !skipped.is_empty() {
        md.push_str("Skipped models:\n\n");
        for s in &skipped {
            md.push_str(&format!(
                "- {}: {}\n",
                s["model"].as_str().unwrap_or_default(),
                s["reason"].as_str().unwrap_or_default()
            ));
        }
    }
    let data = json!({
        "alpha": cfg.alpha,
        "images_per_model": cfg.images,
        "seed": cfg.seed,
        "log_n": cfg.log_n,
        "models": models,
        "skipped": skipped,
    });
    Ok((
        Section {
            id: "ckks".into(),
            title: "Encrypted inference (CKKS) against the certified bounds".into(),
            evidence: Evidence::Mixed,
            markdown: md,
            data,
            plots,
        },
        timings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_ids_use_only_safe_characters() {
        assert_eq!(plot_id("mnist_cnn_small"), "ckks_error_mnist_cnn_small");
        assert_eq!(plot_id("a.b c"), "ckks_error_a_b_c");
    }

    #[test]
    fn only_positive_finite_points_are_drawn() {
        let pts = drawable(
            [
                (0.0, 1e-3),
                (1.0, 0.0),
                (2.0, f64::NAN),
                (3.0, f64::INFINITY),
                (4.0, 2.0),
            ]
            .into_iter(),
        );
        assert_eq!(pts, vec![(0.0, 1e-3), (4.0, 2.0)]);
    }

    /// α = 13 runs the small MNIST CNN without bootstrapping (its 33 levels fit N = 2^16,
    /// `reports/ckks_mnist.md`); α = 14 bootstraps with the parameter set of
    /// `reports/ckks_mnist_alpha14.md` (L = 24, Δ_0 = 2^57, 128-bit) although its 35 levels
    /// fit; the max-pooling model at α = 13 (beyond N = 2^16 without bootstrapping, README)
    /// falls back to bootstrapping. Only the choice, no encrypted run.
    #[test]
    fn ckks_section_bootstraps_from_alpha_14() {
        let models = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/models");
        if !models.is_dir() {
            eprintln!("skipping: {} is absent", models.display());
            return;
        }
        let setup = |model: &str, alpha: u32| {
            let net = import_onnx(&models.join(model)).unwrap();
            let cfg = EncryptedConfig {
                alpha,
                log_n: 16,
                insecure: false,
                seed: 1,
            };
            RunSetup::choose(&net, &table1_sign(alpha).unwrap(), &cfg, false).unwrap()
        };
        let s13 = setup("mnist_cnn_small.onnx", 13);
        assert!(s13.bootstrap.is_none());
        let s14 = setup("mnist_cnn_small.onnx", 14);
        let b = s14.bootstrap.expect("α = 14 bootstraps");
        assert_eq!(b.slots, 1 << 15);
        // Sparse-secret encapsulation: 14 bootstrap levels (CtS 3, EvalMod 8, StC 3) of 60 bits,
        // q_0 60, four 61-bit special primes: ⌊(1772 − 1 − 60 − 14·60 − 4·61)/54⌋ = 11 user
        // levels of Δ_0 = 2^54, so L = 11 + 14 = 25.
        assert_eq!(s14.params.max_level(), 25);
        assert_eq!(s14.params.scale(0), 2f64.powi(54));
        assert!(s14.params.log_qp() <= 1772.0);
        let pool = setup("mnist_cnn_small_maxpool.onnx", 13);
        assert!(pool.bootstrap.is_some());
        assert_eq!(crate::ckks::BOOTSTRAP_FROM_ALPHA, 14);
    }

    #[test]
    fn defaults_are_secure_and_match_the_committed_ckks_report() {
        let c = CkksReportConfig::default();
        assert_eq!((c.alpha, c.log_n, c.insecure), (13, 16, false));
        assert!(c.images > 0 && c.images <= 32);
    }
}
