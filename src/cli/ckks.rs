//! `polycert ckks`: encrypted inference of a small CNN under RNS-CKKS, cross-checked against
//! the plaintext exact and approximate networks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Args;

use polycert::bounds::{
    BoundedNetwork, MarginCertifier, PolyErrors, TrajectoryBound, TrajectoryCertifier, PRECISIONS,
};
use polycert::ckks::{
    available_memory_bytes, plan_encrypted, run_encrypted_with, EncryptedConfig, PerInputCheck,
    RunSetup,
};
use polycert::nn::{calibrate, import_onnx, Dataset, Engine, Network, NodeId, RangePolicy};
use polycert::remez::table1_sign;
use polycert::report::write_atomic;

use super::Outcome;

/// Arguments of `polycert ckks`.
#[derive(Debug, Args)]
pub struct CkksArgs {
    /// ONNX model: a Conv → Relu → AveragePool … → Gemm chain (e.g. mnist_cnn_small.onnx) or a
    /// CIFAR ResNet with option-A shortcuts (e.g. resnet20_cifar10.onnx).
    #[arg(long)]
    pub model: PathBuf,
    /// MNIST IDX images (labels file next to it) or another dataset file.
    #[arg(long)]
    pub data: PathBuf,
    /// Precision parameter α of Table 1 (4..=14).
    #[arg(long, default_value_t = 14)]
    pub alpha: u32,
    /// Number of test images (from --start). Residual networks run them in batches of
    /// min(images, slots/block); a smaller batch packs more channels per bootstrap (the free
    /// blocks), and --plan-only plans for that batch size.
    #[arg(long, default_value_t = 20)]
    pub images: usize,
    /// First image index.
    #[arg(long, default_value_t = 0)]
    pub start: usize,
    /// log₂ N: 15 or 16 (128-bit parameters), or smaller with --insecure.
    #[arg(long, default_value_t = 16)]
    pub n: u32,
    /// Accept parameters outside the HomomorphicEncryption.org 128-bit table.
    #[arg(long)]
    pub insecure: bool,
    /// Seed of the ChaCha20 CSPRNG (keys, encryption noise).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// B = calibrated max |ReLU input| × margin (≥ 1).
    #[arg(long, default_value_t = 1.05)]
    pub margin: f64,
    /// Calibrate B on the first K images of --data (default: all).
    #[arg(long)]
    pub calib_limit: Option<usize>,
    /// Certified bound on ‖F^α(x) − F(x)‖∞ to cross-check against (default: the Theorem 3/4
    /// global bound of the bounds module for this model, α and B, from the checked
    /// certificate in --proofs).
    #[arg(long)]
    pub certified_bound: Option<f64>,
    /// Folder of the certificates `table1-alphaNN.json` (re-checked before use; certified in
    /// memory when the file is absent).
    #[arg(long, default_value = "proofs")]
    pub proofs: PathBuf,
    /// Bootstrap (N = 2^16 bootstrapping parameter set: 128-bit, Δ_0 = 2^57) even when the
    /// levels would fit without; bootstrapping is automatic when they do not, and from α = 14
    /// on (its stages amplify the noise of the small scale 35 levels leave).
    #[arg(long)]
    pub bootstrap: bool,
    /// Print the plan of a residual network's run (levels per node, bootstraps, rotation keys,
    /// the key memory model against the available memory, a cost estimate) and stop: no key
    /// is generated (at N = 2^16 the bootstrapper's DFT diagonals, 2.5 GiB, are encoded for
    /// the key model).
    #[arg(long)]
    pub plan_only: bool,
    /// Also certify each image with the trajectory certificate of the bounds module (same α
    /// and B): a certified enclosure of ‖F^α(x) − F(x)‖∞ per image, cross-checked with the
    /// decrypted result (the global Theorem 3/4 bound of a deep network is far too large to
    /// say anything).
    #[arg(long)]
    pub per_input: bool,
    /// With `--per-input`: also the certified noise margin η of every certified-unchanged
    /// image (tens of seconds per image on a CIFAR ResNet).
    #[arg(long, requires = "per_input")]
    pub noise_margin: bool,
    /// With `--noise-margin`: also bound the site inputs of the last stage by
    /// back-substitution (as `polycert bound --margin-rows`: η ~2.4 octaves larger on
    /// ResNet-20 at ~3.5× the cost; recorded in the report). Without it η comes from the
    /// forward and relational boxes alone, as `polycert bound --noise-margin`.
    #[arg(long, requires = "noise_margin")]
    pub margin_rows: bool,
    /// Omit timings and memory (byte-identical JSON for a fixed seed).
    #[arg(long)]
    pub no_timings: bool,
    /// Print JSON to stdout instead of the Markdown summary.
    #[arg(long)]
    pub json: bool,
    /// Write the JSON report to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the Markdown report to this file.
    #[arg(long)]
    pub out_md: Option<PathBuf>,
}

/// Handle `polycert ckks`.
pub fn run(a: &CkksArgs, quiet: bool) -> anyhow::Result<Outcome> {
    if a.images == 0 {
        bail!("--images 0: give at least one image");
    }
    let net =
        Arc::new(import_onnx(&a.model).with_context(|| format!("model {}", a.model.display()))?);
    let data = Dataset::open(&a.data, None)?;
    if a.start + a.images > data.len() {
        bail!(
            "--start {} --images {}: the data file {} has {} images",
            a.start,
            a.images,
            a.data.display(),
            data.len()
        );
    }
    let sign = table1_sign(a.alpha).with_context(|| format!("--alpha {}", a.alpha))?;
    let engine: Engine<f64> = Engine::new(Arc::clone(&net));
    if !quiet {
        eprintln!(
            "calibrating B on {} images…",
            a.calib_limit.unwrap_or(data.len())
        );
    }
    let mut cal = calibrate(&engine, &data, a.calib_limit)?;
    let ranges = cal.choose(RangePolicy::PerLayer { margin: a.margin })?;
    let cfg = EncryptedConfig {
        alpha: a.alpha,
        log_n: a.n,
        insecure: a.insecure,
        seed: a.seed,
    };
    if a.plan_only {
        let setup = RunSetup::choose(&net, &sign, &cfg, a.bootstrap)?;
        let plan = plan_encrypted(&net, &ranges, &sign, &setup, a.images, true)?;
        if a.json {
            out!("{}", serde_json::to_string_pretty(&plan)? + "\n")?;
        } else {
            out!("{plan}")?;
            if let (Some(m), Some(avail)) = (&plan.key_memory, available_memory_bytes()) {
                let need = m.total_bytes + m.matrix_bytes + m.pool_bytes;
                out!(
                    "keys + DFT diagonals + limb pool cap {} MiB against {} MiB available: {}\n",
                    need >> 20,
                    avail >> 20,
                    if need <= avail {
                        "fits"
                    } else if m.total_bytes > avail {
                        "does not fit (the run refuses: the keys alone exceed it)"
                    } else {
                        "does not fit (the run checks the keys alone and starts)"
                    }
                )?;
            }
        }
        return Ok(Outcome::Ok);
    }
    let pe = if a.certified_bound.is_none() || a.per_input {
        Some(
            PolyErrors::load_or_certify(&a.proofs, a.alpha)
                .with_context(|| format!("certificate for α = {}", a.alpha))?,
        )
    } else {
        None
    };
    let certified_bound = match (a.certified_bound, &pe) {
        (Some(b), _) => b,
        (None, Some(pe)) => {
            BoundedNetwork::new(Arc::clone(&net))?
                .global(pe, &ranges)?
                .bound
        }
        (None, None) => bail!("internal: no certificate loaded for the global bound"),
    };
    let mut images = Vec::with_capacity(a.images);
    let mut labels = Vec::with_capacity(a.images);
    let indices: Vec<usize> = (a.start..a.start + a.images).collect();
    for &i in &indices {
        let raw = data
            .image(i)
            .with_context(|| format!("image {i} of {}", a.data.display()))?;
        let mut x = Vec::new();
        net.preprocess.apply(raw, data.shape[0], &mut x);
        images.push(x);
        labels.push(data.label(i).unwrap_or(0));
    }
    // Certified before the (long) encrypted run, so that a failure shows at once.
    let per_input = match (&pe, a.per_input) {
        (Some(pe), true) => {
            if !quiet {
                eprintln!("per-input certificates of {} images…", images.len());
            }
            Some(per_input_certificates(
                &net,
                pe,
                &ranges,
                &images,
                &indices,
                a.noise_margin.then_some(a.margin_rows),
            )?)
        }
        _ => None,
    };
    if !quiet {
        eprintln!(
            "encrypted run: {} images, α = {}, N = 2^{}…",
            a.images, a.alpha, a.n
        );
    }
    let setup = RunSetup::choose(&net, &sign, &cfg, a.bootstrap)?;
    if !quiet && setup.bootstrap.is_some() {
        eprintln!(
            "bootstrapping: L = {}, log2 QP = {:.1}, {}",
            setup.params.max_level(),
            setup.params.log_qp(),
            setup.params.security()
        );
    }
    let mut progress = |m: &str| {
        if !quiet {
            eprintln!("{m}");
        }
    };
    let mut rep = run_encrypted_with(
        &net,
        &images,
        &labels,
        &indices,
        &ranges,
        &sign,
        &cfg,
        setup,
        Some(certified_bound),
        &mut progress,
    )?;
    if a.no_timings {
        rep.timings = None;
    }
    if let Some(certs) = per_input {
        let checks = certs
            .into_iter()
            .map(|(index, tb, eta)| {
                let within = rep
                    .images
                    .iter()
                    .find(|i| i.index == index)
                    .is_some_and(|i| i.error_vs_exact <= tb.hi + i.ckks_error);
                PerInputCheck {
                    index,
                    certified_lo: tb.lo,
                    certified_hi: tb.hi,
                    certified_unchanged: tb.unchanged,
                    within,
                    log2_eta: eta,
                }
            })
            .collect::<Vec<_>>();
        if checks.iter().any(|c| !c.within) {
            rep.within_bound = Some(false);
        }
        rep.per_input = Some(checks);
        rep.margin_rows = a.noise_margin && a.margin_rows;
    }
    let json = serde_json::to_string_pretty(&rep)? + "\n";
    let md = rep.to_markdown();
    if let Some(p) = &a.out {
        write_atomic(p, json.as_bytes())?;
    }
    if let Some(p) = &a.out_md {
        write_atomic(p, md.as_bytes())?;
    }
    if a.json {
        out!("{json}")?;
    } else {
        out!("{md}")?;
    }
    let ok = rep.agree_with_approx == rep.images.len() && rep.within_bound != Some(false);
    Ok(if ok { Outcome::Ok } else { Outcome::Failed })
}

/// One image's trajectory certificate and (optionally) its certified noise margin log₂ η.
type ImageCertificate = (usize, TrajectoryBound, Option<f64>);

/// The trajectory certificate (and optionally the noise margin) of every image at the run's
/// α and B. `noise_margin`: `None` for no margin, `Some(rows)` for the margin with
/// (`true`) or without the back-substituted site boxes of `bounds::margin_rows`.
fn per_input_certificates(
    net: &Arc<Network>,
    pe: &PolyErrors,
    ranges: &BTreeMap<NodeId, f64>,
    images: &[Vec<f64>],
    indices: &[usize],
    noise_margin: Option<bool>,
) -> anyhow::Result<Vec<ImageCertificate>> {
    let pes = std::slice::from_ref(pe);
    let tc = TrajectoryCertifier::new(Arc::clone(net), pes, ranges.clone(), &PRECISIONS)?;
    let mc = match noise_margin {
        Some(rows) => {
            Some(MarginCertifier::new(Arc::clone(net), pes, ranges.clone())?.with_rows(rows))
        }
        None => None,
    };
    images
        .iter()
        .zip(indices)
        .map(|(x, &index)| {
            let (tb, run) = tc
                .certify_near_recording(x, None, mc.is_some())
                .with_context(|| format!("trajectory certificate of image {index}"))?
                .into_iter()
                .next()
                .context("trajectory certificate: no result")?;
            let eta = match &mc {
                Some(mc) if tb.unchanged => mc
                    .margin_from(&tc, x, &tb, run)
                    .with_context(|| format!("noise margin of image {index}"))?
                    .map(|m| m.log2_eta),
                _ => None,
            };
            Ok((index, tb, eta))
        })
        .collect()
}
