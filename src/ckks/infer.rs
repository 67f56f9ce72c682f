//! The encrypted executor: a chain of Conv (valid, stride 1) → ReLU → AveragePool 2×2 → … →
//! Flatten → Gemm (the `mnist_cnn_small` family) run on CKKS ciphertexts, replaying r̃_α with
//! the same composite sign polynomial and the same ranges B as the plaintext approximate
//! engine (`nn::Engine` with `ActivationPolicy::Approx`).
//!
//! # Packing
//! Image b of a batch occupies the slot block [b·blk, (b+1)·blk), blk = the power of two ≥ H·W,
//! pixel (y, x) at y·W + x (zero tail); one ciphertext per channel, shared by all images of the
//! batch (N/2 / blk images per ciphertext). A feature map lives on a grid of stride st: its
//! value (y, x) at st·(y·W + x). Then
//! - a valid k×k convolution is Σ_{ci,dy,dx} w·rot(x_ci, st·(dy·W + dx)): rotations by st·dx
//!   ("baby", keys st·1..st·(k−1)) and by st·W·dy ("giant", keys st·W·1..), either all on the
//!   inputs (cin·(k²−1) rotations) or giant steps on the outputs (cin·(k−1) + cout·(k−1)),
//!   whichever is fewer; the weighted sums are lazy integer multiplications (no rescale) and the
//!   bias is added before one rescale (1 level), then the result is multiplied by the 0/1 mask
//!   of valid output positions (1 level) so that no out-of-grid value reaches a polynomial;
//! - AveragePool 2×2 = x + rot(x, st), then + rot(·, st·W) (the 1/4 is folded into the next
//!   layer), the stride doubles;
//! - the dense layer multiplies each channel by a plaintext mask per logit (1 level), logits
//!   are interleaved by rotations of −d (d chosen so the shifted grids stay disjoint) and
//!   summed over the grid by log₂ rotations; logit k of image b lands on slot b·blk + k·d.
//!
//! # Folding the scalings
//! Every ciphertext holds κ·(true value); linear layers absorb 1/κ of their input and the κ of
//! their output into their plaintext constants. A convolution before a ReLU of range B outputs
//! u = x/B; the ReLU returns u·(1 + p_α(u)) = 2·r̃_α(x)/B (κ = 2/B); an average pool sums
//! (κ ← 4κ).
//!
//! # Levels
//! conv 2, ReLU sign depth + 1 (Table 1's depth), average pool 0, dense 1. The total is checked
//! against the parameters before any key is generated.
//!
//! Clip(min, max) (ReLU6 = Clip(0, 6)) is approximated in F^α as
//! min + r̃_α(x − min) − r̃_α(x − max) (`nn::SignKernel::clip_in_place_stats`): the two
//! r̃_α read the same ciphertext (shifted by a constant, no level) and are independent, so
//! they run side by side and the differences are additions: a Clip costs the sign depth + 1,
//! the same levels as one ReLU (twice its non-scalar multiplications). This executor does not
//! run Clip nodes yet (the chain compiler rejects them); the level count above is what it
//! would add.

#![expect(
    clippy::indexing_slicing,
    reason = "indices within shapes validated by the compiler pass"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

use crate::nn::{ActivationPolicy, Engine, Network, NodeId, RunStats, SignKernel};
use crate::poly::EvalPlan;
use crate::remez::CompositeSign;

use super::bootstrap::{
    available_memory_bytes, bootstrap_params, BootstrapConfig, Bootstrapper, KeyMemory, KeyNeed,
};
use super::eval::{Ciphertext, CkksContext, Evaluator};
use super::keys::{GaloisKeys, KeySwitchKey, PublicKey, RelinKey, SecretKey};
use super::layers::{compile, grid, layer_levels, logit_spacing, unsupported, Geo, Layer};
use super::params::CkksParams;
use super::polyeval::{eval_plan, max2_scaled, relu_scaled, sign_plans, sign_plans_scaled};
use super::report::{
    BootstrapSummary, EncryptedImage, EncryptedReport, LayerTiming, Packing, ParamsSummary, Timings,
};
use super::schedule::{plan_schedule, LayerSchedule, ReluSchedule, Schedule, BOOT_GAIN};
use super::CkksError;

/// Settings of an encrypted run.
#[derive(Debug, Clone, PartialEq)]
pub struct EncryptedConfig {
    /// α of Table 1.
    pub alpha: u32,
    /// log₂ N (15 or 16 for 128-bit parameters).
    pub log_n: u32,
    /// Accept parameters outside the HomomorphicEncryption.org table.
    pub insecure: bool,
    /// Seed of the ChaCha20 CSPRNG (keys and encryption randomness).
    pub seed: u64,
}

/// B' of Eq. (7) for a window of n values (`approx::b_prime`).
fn b_prime(alpha: u32, n: usize, b: f64) -> Result<f64, CkksError> {
    crate::approx::b_prime(alpha, n, b).map_err(|e| CkksError::BadParam {
        what: "B'".into(),
        value: e.to_string(),
        valid: "a defined B' (Eq. 7)".into(),
    })
}

pub(super) fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if v.get(best).is_some_and(|b| x > b) {
            best = i;
        }
    }
    best
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// The number of levels L the encrypted executor needs to run `net` with the composite sign
/// `sign` (conv 2, r̃_α the sign depth + 1, max-pooling twice that, average pooling 0,
/// dense 1; see the module docs), without generating any key: the cheap support check before
/// a run (e.g. to pick parameters with [`CkksParams::for_depth`]).
///
/// # Errors
/// [`CkksError::Unsupported`] for a network outside the supported chain (Conv → Relu →
/// pooling … → Flatten → Gemm).
pub fn encrypted_levels(net: &Network, sign: &CompositeSign) -> Result<usize, CkksError> {
    let (layers, _) = match compile(net) {
        Ok(c) => c,
        Err(e) => return graph_or(net, e).and_then(|()| super::resnet::graph_levels(net, sign)),
    };
    let sign_depth: usize = sign_plans(sign).iter().map(|p| p.depth() as usize).sum();
    Ok(layers.iter().map(|l| layer_levels(l, sign_depth + 1)).sum())
}

/// Whether `net` is a chain the MNIST-family executor runs (true), as opposed to a network
/// only the graph executor of `resnet` runs (residual networks) or none runs.
pub fn is_chain(net: &Network) -> bool {
    compile(net).is_ok()
}

/// Ok when the graph executor (`resnet`) runs `net`, which the chain compiler refused with
/// `chain_err`; else the error naming the offending node: the graph compiler's, unless the
/// network has pooling layers (which only the chain executor runs).
fn graph_or(net: &Network, chain_err: CkksError) -> Result<(), CkksError> {
    match super::graph::compile_graph(net) {
        Ok(_) => Ok(()),
        Err(e) => {
            let pools = net.nodes.iter().any(|n| {
                matches!(
                    n.op,
                    crate::nn::Op::AvgPool { .. } | crate::nn::Op::MaxPool(_)
                )
            });
            Err(if pools { chain_err } else { e })
        }
    }
}

/// The smallest α whose encrypted run bootstraps even when its levels fit without: at α = 14
/// the 35 levels fit N = 2^16 but only at a 2^40 scale, whose noise the stages {15, 27, 29}
/// amplify to garbage (README, "Encrypted inference"); bootstraps give the scale room.
pub const BOOTSTRAP_FROM_ALPHA: u32 = 14;

/// Parameters of an encrypted run and, when the network's levels do not fit them, the
/// bootstrapping that restores levels (`schedule` module docs).
#[derive(Debug, Clone)]
pub struct RunSetup {
    /// The CKKS parameters.
    pub params: CkksParams,
    /// Bootstrapping (None: the whole network must fit the levels of `params`).
    pub bootstrap: Option<BootstrapConfig>,
}

/// log₂ Δ_0 of [`RunSetup::bootstrapped`] at N ≥ 2^15: 2^54 below a 60-bit q_0 (the best
/// full-slot precision of the sparse-secret-encapsulated bootstrap measured at N = 2^16,
/// 22.9 bits; README "Sparse-secret encapsulation and lazy EvalMod").
pub const BOOT_SCALE_BITS: u32 = 54;

/// User levels of [`RunSetup::bootstrapped`] at INSECURE N < 2^15 when none are given: 5, the
/// fewest that leave a convolution (2 levels) and the next ReLU's input scaling (1) room after
/// a bootstrapped ReLU and its unpacking (`graph` module docs).
pub const INSECURE_USER_LEVELS: usize = 5;

impl RunSetup {
    /// The bootstrapping parameter set of `benches/bootstrap.rs` at N = 2^log_n: full slots
    /// with sparse-secret encapsulation ([`BootstrapConfig::encapsulated`]: 14 levels per
    /// bootstrap at N = 2^16 instead of the dense secret's 19), q_0 of 60 bits, as many user levels of
    /// [`BOOT_SCALE_BITS`] bits (50 below N = 2^15) as the 128-bit bound leaves (`user` when
    /// given; [`INSECURE_USER_LEVELS`] for `insecure` parameters below N = 2^15, where the
    /// bound leaves none), the bootstrapping primes, four special primes.
    ///
    /// # Errors
    /// As [`BootstrapConfig::encapsulated`] and [`bootstrap_params`] (e.g. N = 2^15 cannot hold a
    /// full-slot bootstrap within the 128-bit bound).
    pub fn bootstrapped(
        log_n: u32,
        user: Option<usize>,
        insecure: bool,
    ) -> Result<Self, CkksError> {
        let config = BootstrapConfig::encapsulated(1usize << log_n)?;
        Self::bootstrapped_with(config, log_n, user, insecure)
    }

    /// As [`RunSetup::bootstrapped`] with a given bootstrap configuration (e.g. the dense
    /// secret's [`BootstrapConfig::full`]); its levels are `config.depth()`. The scale rule is
    /// the same (Δ_0 = 2^[`BOOT_SCALE_BITS`], the encapsulated optimum, from N = 2^15 on).
    ///
    /// # Errors
    /// As [`bootstrap_params`].
    pub fn bootstrapped_with(
        config: BootstrapConfig,
        log_n: u32,
        user: Option<usize>,
        insecure: bool,
    ) -> Result<Self, CkksError> {
        let depth = config.depth();
        let scale = if log_n >= 15 { BOOT_SCALE_BITS } else { 50 };
        let user = user.or((insecure && log_n < 15).then_some(INSECURE_USER_LEVELS));
        let params = bootstrap_params(log_n, depth, scale, user, 4, insecure)?;
        Ok(Self {
            params,
            bootstrap: Some(config),
        })
    }

    /// Parameters for `net`: without bootstrapping ([`CkksParams::for_depth`]) when its levels
    /// fit N = 2^cfg.log_n, `force_bootstrap` is false and α < [`BOOTSTRAP_FROM_ALPHA`], else
    /// [`RunSetup::bootstrapped`] (when that does not fit N either, the error of
    /// [`CkksParams::for_depth`]).
    ///
    /// # Errors
    /// As [`encrypted_levels`], [`CkksParams::for_depth`] and [`RunSetup::bootstrapped`].
    pub fn choose(
        net: &Network,
        sign: &CompositeSign,
        cfg: &EncryptedConfig,
        force_bootstrap: bool,
    ) -> Result<Self, CkksError> {
        if force_bootstrap || cfg.alpha >= BOOTSTRAP_FROM_ALPHA {
            return Self::bootstrapped(cfg.log_n, None, cfg.insecure);
        }
        let levels = encrypted_levels(net, sign)?;
        match CkksParams::for_depth(cfg.log_n, levels, 20, cfg.insecure) {
            Ok(params) => Ok(Self {
                params,
                bootstrap: None,
            }),
            // Bootstrapping when it fits N; else the error without it (it names the fix).
            Err(e @ CkksError::NotEnoughLevels { .. }) => {
                Self::bootstrapped(cfg.log_n, None, cfg.insecure).map_err(|_| e)
            }
            Err(e) => Err(e),
        }
    }
}

/// Run `images` (preprocessed, per-sample input shape) encrypted and cross-check against the
/// plaintext exact and approximate engines.
///
/// `ranges` gives B per ReLU node (as for `ActivationPolicy::Approx`); `params` (or, when
/// `None`, parameters chosen by [`RunSetup::choose`]: [`CkksParams::for_depth`] for the
/// network's depth at N = 2^cfg.log_n, bootstrapping when it does not fit).
/// `certified_bound` is the certified ‖F^α − F‖∞ from the bounds module.
///
/// # Errors
/// [`CkksError::Unsupported`] for a network outside the supported chain,
/// [`CkksError::NotEnoughLevels`] before any key is generated when the network is deeper than
/// the parameters, [`CkksError::Insecure`] for insecure parameters without `insecure`; any
/// CKKS or plaintext engine error.
#[expect(
    clippy::too_many_arguments,
    reason = "one call from the CLI; every input is distinct"
)]
pub fn run_encrypted(
    net: &Arc<Network>,
    images: &[Vec<f64>],
    labels: &[u16],
    indices: &[usize],
    ranges: &BTreeMap<NodeId, f64>,
    sign: &CompositeSign,
    cfg: &EncryptedConfig,
    params: Option<CkksParams>,
    certified_bound: Option<f64>,
) -> crate::Result<EncryptedReport> {
    let setup = match params {
        Some(params) => RunSetup {
            params,
            bootstrap: None,
        },
        None => RunSetup::choose(net, sign, cfg, false)?,
    };
    run_encrypted_with(
        net,
        images,
        labels,
        indices,
        ranges,
        sign,
        cfg,
        setup,
        certified_bound,
        &mut |_| {},
    )
}

/// [`run_encrypted`] with the parameters and bootstrapping given (`setup`) and a progress
/// callback (the level schedule, the key memory model before key generation, each bootstrap's
/// time and measured precision with the projected remaining time).
///
/// With bootstrapping, the level schedule ([`Schedule`], `schedule` module docs) is planned
/// before any key is made; the Galois keys are those the schedule uses (the bootstrapper's
/// and the executor's rotations), each at the highest level it is used at, and their memory
/// model is checked against MemAvailable first.
///
/// # Errors
/// As [`run_encrypted`]; [`CkksError::KeyMemory`] when the keys' memory model exceeds the
/// available memory.
#[expect(
    clippy::too_many_arguments,
    reason = "one call from the CLI; every input is distinct"
)]
#[expect(clippy::too_many_lines, reason = "the per-layer executor loop")]
pub fn run_encrypted_with(
    net: &Arc<Network>,
    images: &[Vec<f64>],
    labels: &[u16],
    indices: &[usize],
    ranges: &BTreeMap<NodeId, f64>,
    sign: &CompositeSign,
    cfg: &EncryptedConfig,
    setup: RunSetup,
    certified_bound: Option<f64>,
    progress: &mut dyn FnMut(&str),
) -> crate::Result<EncryptedReport> {
    let (layers, (c0, h0, w0)) = match compile(net) {
        Ok(c) => c,
        Err(e) => {
            graph_or(net, e)?;
            return super::resnet::run_graph_encrypted(
                net,
                images,
                labels,
                indices,
                ranges,
                sign,
                cfg,
                setup,
                certified_bound,
                progress,
            );
        }
    };
    let plans: Vec<EvalPlan> = sign_plans(sign);
    let sign_depth: usize = plans.iter().map(|p| p.depth() as usize).sum();
    let relu_depth = sign_depth + 1;
    let levels_needed: usize = layers.iter().map(|l| layer_levels(l, relu_depth)).sum();
    let level_plan = layers
        .iter()
        .map(|l| {
            let (n, o) = l.name();
            (n.to_string(), o.to_string(), layer_levels(l, relu_depth))
        })
        .collect();
    let RunSetup {
        params,
        bootstrap: boot_config,
    } = setup;
    if boot_config.is_none() && params.max_level() < levels_needed {
        return Err(CkksError::NotEnoughLevels {
            what: format!("network {:?} at α = {}", net.name, cfg.alpha),
            needed: levels_needed,
            available: params.max_level(),
        }
        .into());
    }
    for l in &layers {
        if let Layer::Relu { node, id } | Layer::MaxPool { node, id } = l {
            if !ranges.get(id).is_some_and(|b| b.is_finite() && *b > 0.0) {
                return Err(
                    unsupported(node, l.name().1, "no finite range B > 0 for this node").into(),
                );
            }
        }
    }
    if images.len() != labels.len() || images.len() != indices.len() {
        return Err(CkksError::BadParam {
            what: "images/labels/indices".into(),
            value: format!("{}/{}/{}", images.len(), labels.len(), indices.len()),
            valid: "equal lengths".into(),
        }
        .into());
    }
    let slots = params.slots();
    let block = (h0 * w0).next_power_of_two();
    if block > slots {
        return Err(CkksError::BadParam {
            what: "image size".into(),
            value: format!("{h0}×{w0}"),
            valid: format!("H·W ≤ N/2 = {slots}"),
        }
        .into());
    }
    let per_ct = slots / block;
    // Geometry pass: rotation steps, final grid, logit spacing.
    let mut steps: Vec<i64> = Vec::new();
    let mut g = Geo {
        c: c0,
        h: h0,
        w: w0,
        st: 1,
    };
    let mut final_geo = g;
    let mut n_out = 0;
    let mut geos: Vec<Geo> = Vec::with_capacity(layers.len());
    for l in &layers {
        geos.push(g);
        match l {
            Layer::Conv { cin, cout, k, .. } => {
                if *cin != g.c || *k > g.h || *k > g.w {
                    return Err(unsupported(
                        l.name().0,
                        "Conv",
                        &format!("input [{}, {}, {}] does not fit", g.c, g.h, g.w),
                    )
                    .into());
                }
                for t in 1..*k {
                    steps.push((g.st * t) as i64);
                    steps.push((g.st * w0 * t) as i64);
                }
                g = Geo {
                    c: *cout,
                    h: g.h - k + 1,
                    w: g.w - k + 1,
                    st: g.st,
                };
            }
            Layer::AvgPool { .. } | Layer::MaxPool { .. } => {
                steps.push(g.st as i64);
                steps.push((g.st * w0) as i64);
                g = Geo {
                    c: g.c,
                    h: g.h / 2,
                    w: g.w / 2,
                    st: g.st * 2,
                };
            }
            Layer::Relu { .. } => {}
            Layer::Dense { w, out, .. } => {
                if w.len() != out * g.c * g.h * g.w
                    || !g.h.is_power_of_two()
                    || !g.w.is_power_of_two()
                {
                    return Err(unsupported(
                        l.name().0,
                        "Gemm",
                        &format!(
                            "input [{}, {}, {}] must match the weight and have power-of-two sides",
                            g.c, g.h, g.w
                        ),
                    )
                    .into());
                }
                final_geo = g;
                n_out = *out;
                let mut s = 1;
                while s < g.w {
                    steps.push((g.st * s) as i64);
                    s *= 2;
                }
                let mut s = 1;
                while s < g.h {
                    steps.push((g.st * w0 * s) as i64);
                    s *= 2;
                }
            }
        }
    }
    let out_grid = grid(final_geo, w0);
    let spacing = logit_spacing(&out_grid, n_out, block)
        .ok_or_else(|| unsupported("Gemm", "Gemm", "no logit spacing fits the image block"))?;
    steps.push(-(spacing as i64));
    steps.sort_unstable();
    steps.dedup();

    let (exact, approx) = references(net, images, cfg.alpha, sign, ranges)?;

    // The level schedule, before any key.
    let top_level = params.max_level();
    let boot_out = boot_config
        .as_ref()
        .map(|c| top_level.saturating_sub(c.cts_levels + c.eval_mod.depth() + c.stc_levels));
    let depths: Vec<usize> = plans.iter().map(|p| p.depth() as usize).collect();
    let schedule = plan_schedule(&layers, &geos, w0, block, &depths, top_level, boot_out)?;
    if boot_config.is_some() {
        progress(&schedule.to_string());
    }

    // Keys.
    let t0 = Instant::now();
    let ctx = CkksContext::new(params)?;
    let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed);
    let exec = exec_key_levels(&layers, &geos, &schedule, w0, spacing);
    let RunKeys {
        sk,
        pk,
        ev,
        key_bytes,
        boot,
    } = make_keys(
        &ctx,
        boot_config.as_ref(),
        &steps,
        &exec,
        &net.name,
        &mut rng,
        progress,
    )?;
    let keygen_s = t0.elapsed().as_secs_f64();
    let mut bstats = BootStats::default();
    let boot_total = schedule.bootstraps * images.len().div_ceil(per_ct);

    let mut timings: Vec<LayerTiming> = layers
        .iter()
        .map(|l| {
            let (n, o) = l.name();
            LayerTiming {
                node: n.into(),
                op: o.into(),
                level_in: 0,
                level_out: 0,
                rotations: 0,
                seconds: 0.0,
            }
        })
        .collect();
    let mut decrypted: Vec<Vec<f64>> = Vec::with_capacity(images.len());
    let (mut encrypt_s, mut eval_s, mut decrypt_s) = (0.0, 0.0, 0.0);
    let mut batches = 0usize;
    for batch in images.chunks(per_ct) {
        batches += 1;
        let t = Instant::now();
        let mut xs = encrypt_batch(&ctx, &pk, batch, (c0, h0, w0), block, &mut rng)?;
        encrypt_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut g = Geo {
            c: c0,
            h: h0,
            w: w0,
            st: 1,
        };
        let (mut kappa, mut offset) = (1.0f64, 0.0f64);
        let mut logits_ct = None;
        for (li, l) in layers.iter().enumerate() {
            let tl = Instant::now();
            let level_in = xs.first().map_or(0, Ciphertext::level);
            let mut rot = 0usize;
            match l {
                Layer::Conv {
                    w, b, cin, cout, k, ..
                } => {
                    // Output factor: 1/B of the next ReLU (else 1).
                    let k_out = match layers.get(li + 1) {
                        Some(Layer::Relu { id, .. }) => {
                            1.0 / ranges.get(id).copied().unwrap_or(1.0)
                        }
                        _ => 1.0,
                    };
                    let (cin, cout, k) = (*cin, *cout, *k);
                    let wf = |co: usize, ci: usize, ky: usize, kx: usize| {
                        w[((co * cin + ci) * k + ky) * k + kx] * k_out / kappa
                    };
                    let bias: Vec<f64> = (0..cout)
                        .map(|co| {
                            let s: f64 = w[co * cin * k * k..(co + 1) * cin * k * k].iter().sum();
                            k_out * (b[co] - s * offset / kappa)
                        })
                        .collect();
                    let ho = g.h - k + 1;
                    let wo = g.w - k + 1;
                    let st = g.st;
                    // Baby steps on the inputs: rot(x_ci, st·dx).
                    let baby: Vec<Vec<Ciphertext>> = xs
                        .par_iter()
                        .map(|x| {
                            (0..k)
                                .map(|dx| ev.rotate(x, (st * dx) as i64))
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .collect::<Result<_, _>>()?;
                    rot += cin * (k - 1);
                    let giant_on_outputs = cin * (k - 1) + cout * (k - 1) < cin * (k * k - 1);
                    let accs: Vec<Ciphertext> = if giant_on_outputs {
                        rot += cout * (k - 1);
                        (0..cout)
                            .into_par_iter()
                            .map(|co| {
                                let mut acc: Option<Ciphertext> = None;
                                for dy in 0..k {
                                    let mut t: Option<Ciphertext> = None;
                                    for (ci, bb) in baby.iter().enumerate() {
                                        for (dx, r) in bb.iter().enumerate() {
                                            let m = ev.mul_const_lazy(r, wf(co, ci, dy, dx))?;
                                            match &mut t {
                                                None => t = Some(m),
                                                Some(t) => ev.add_assign(t, &m)?,
                                            }
                                        }
                                    }
                                    let t = t.ok_or_else(|| {
                                        unsupported("conv", "Conv", "empty kernel")
                                    })?;
                                    let t = ev.rotate(&t, (st * w0 * dy) as i64)?;
                                    match &mut acc {
                                        None => acc = Some(t),
                                        Some(a) => ev.add_assign(a, &t)?,
                                    }
                                }
                                acc.ok_or_else(|| unsupported("conv", "Conv", "empty kernel"))
                            })
                            .collect::<Result<_, CkksError>>()?
                    } else {
                        rot += cin * k * (k - 1);
                        let mut accs: Vec<Option<Ciphertext>> = vec![None; cout];
                        for (ci, bb) in baby.iter().enumerate() {
                            for dy in 0..k {
                                let rs: Vec<Ciphertext> = bb
                                    .par_iter()
                                    .map(|r| ev.rotate(r, (st * w0 * dy) as i64))
                                    .collect::<Result<_, _>>()?;
                                accs.par_iter_mut().enumerate().try_for_each(|(co, acc)| {
                                    for (dx, r) in rs.iter().enumerate() {
                                        let m = ev.mul_const_lazy(r, wf(co, ci, dy, dx))?;
                                        match acc {
                                            None => *acc = Some(m),
                                            Some(a) => ev.add_assign(a, &m)?,
                                        }
                                    }
                                    Ok::<(), CkksError>(())
                                })?;
                            }
                        }
                        accs.into_iter()
                            .map(|a| a.ok_or_else(|| unsupported("conv", "Conv", "empty kernel")))
                            .collect::<Result<_, _>>()?
                    };
                    drop(baby);
                    let ng = Geo {
                        c: cout,
                        h: ho,
                        w: wo,
                        st,
                    };
                    let mut mask = vec![0.0; slots];
                    for b in 0..batch.len() {
                        for p in grid(ng, w0) {
                            mask[b * block + p] = 1.0;
                        }
                    }
                    xs = accs
                        .into_par_iter()
                        .zip(bias.par_iter())
                        .map(|(a, &bc)| {
                            let a = ev.add_const(&a, bc)?;
                            let a = ev.rescale(&a)?;
                            ev.mul_vec(&a, &mask)
                        })
                        .collect::<Result<_, CkksError>>()?;
                    g = ng;
                    kappa = k_out;
                    offset = 0.0;
                }
                Layer::Relu { id, node } => {
                    let b = ranges.get(id).copied().unwrap_or(1.0);
                    let booted = schedule
                        .layers
                        .get(li)
                        .and_then(|x| x.relu.as_ref())
                        .filter(|r| r.bootstraps() > 0);
                    if let (Some(r), Some((bs, _))) = (booted, boot.as_ref()) {
                        if matches!(layers.get(li + 1), Some(Layer::MaxPool { .. })) {
                            return Err(unsupported(
                                node,
                                "Relu",
                                "bootstrapping a ReLU that feeds a max pool is not implemented",
                            )
                            .into());
                        }
                        let ls = &schedule.layers[li];
                        let (packed, r1) = pack(&ev, &xs, ls)?;
                        let scales = r.component_scales(BOOT_GAIN);
                        let bplans = sign_plans_scaled(sign, &scales)?;
                        let mut outs = Vec::with_capacity(packed.len());
                        for u in &packed {
                            let mut bootf = |x: &Ciphertext| {
                                bstats.bootstrap(&ctx, &sk, &ev, bs, x, boot_total, progress)
                            };
                            outs.push(relu_bootstrapped(&ev, &bplans, r, u, &mut bootf)?);
                        }
                        drop(packed);
                        let (unpacked, r2) =
                            unpack(&ev, &outs, ls, g.c, &grid(g, w0), batch.len(), block)?;
                        rot += r1 + r2;
                        xs = unpacked;
                        (kappa, offset) = (2.0 / b, 0.0);
                        let tm = &mut timings[li];
                        tm.level_in = level_in;
                        tm.level_out = xs.first().map_or(0, Ciphertext::level);
                        tm.rotations = rot;
                        tm.seconds += tl.elapsed().as_secs_f64();
                        if tm.level_out != schedule.layers[li].level_out {
                            return Err(CkksError::LevelModel {
                                op: li,
                                got: tm.level_out,
                                expected: schedule.layers[li].level_out,
                            }
                            .into());
                        }
                        progress(&format!(
                            "{node} (Relu): level {level_in} → {}, {:.1} s",
                            tm.level_out, tm.seconds
                        ));
                        continue;
                    }
                    // Before a max pool: output r̃(x)/B' + 1/2 (Eq. 7's input), else 2r̃(x)/B.
                    let pool_b = match layers.get(li + 1) {
                        Some(Layer::MaxPool { id: pid, .. }) => {
                            let bp =
                                b_prime(cfg.alpha, 4, ranges.get(pid).copied().unwrap_or(1.0))?;
                            Some(bp)
                        }
                        _ => None,
                    };
                    let c = pool_b.map_or(1.0, |bp| b / (2.0 * bp));
                    xs = xs
                        .par_iter()
                        .map(|u| {
                            let r = relu_scaled(&ev, &plans, u, c)?;
                            if pool_b.is_some() {
                                ev.add_const(&r, 0.5)
                            } else {
                                Ok(r)
                            }
                        })
                        .collect::<Result<_, CkksError>>()?;
                    (kappa, offset) = match pool_b {
                        Some(bp) => (1.0 / bp, 0.5),
                        None => (2.0 / b, 0.0),
                    };
                }
                Layer::MaxPool { .. } => {
                    // M_{α,4}(x00, x01, x10, x11) = m(m(x00, x01), m(x10, x11)) (Eq. 6, the
                    // engine's row-major window order): m(v, rot(v, st)) holds m(x00, x01) at
                    // the window's position and m(x10, x11) st·W further.
                    rot += 2 * xs.len();
                    let st = g.st;
                    xs = xs
                        .par_iter()
                        .map(|v| {
                            let m1 = max2_scaled(&ev, &plans, v, &ev.rotate(v, st as i64)?, 0.5)?;
                            let m2 = ev.rotate(&m1, (st * w0) as i64)?;
                            max2_scaled(&ev, &plans, &m1, &m2, 0.5)
                        })
                        .collect::<Result<_, CkksError>>()?;
                    g = Geo {
                        c: g.c,
                        h: g.h / 2,
                        w: g.w / 2,
                        st: g.st * 2,
                    };
                    // The ciphertext holds M = x/B' + 1/2: κ, o unchanged.
                }
                Layer::AvgPool { .. } => {
                    rot += 2 * xs.len();
                    let st = g.st;
                    xs = xs
                        .par_iter()
                        .map(|x| {
                            let t = ev.add(x, &ev.rotate(x, st as i64)?)?;
                            ev.add(&t, &ev.rotate(&t, (st * w0) as i64)?)
                        })
                        .collect::<Result<_, CkksError>>()?;
                    g = Geo {
                        c: g.c,
                        h: g.h / 2,
                        w: g.w / 2,
                        st: g.st * 2,
                    };
                    kappa *= 4.0;
                    offset *= 4.0;
                }
                Layer::Dense { w, b, out, .. } => {
                    let dense = Dense {
                        w,
                        b,
                        out: *out,
                        kappa,
                        offset,
                        spacing,
                    };
                    let (z, r) = dense.apply(&ev, &xs, g, w0, block, batch.len())?;
                    rot += r;
                    logits_ct = Some(z);
                    xs = Vec::new();
                }
            }
            let tm = &mut timings[li];
            tm.level_in = level_in;
            tm.level_out = xs
                .first()
                .or(logits_ct.as_ref())
                .map_or(0, Ciphertext::level);
            tm.rotations = rot;
            tm.seconds += tl.elapsed().as_secs_f64();
            if boot.is_some() {
                let want = schedule.layers[li].level_out;
                if tm.level_out != want {
                    return Err(CkksError::LevelModel {
                        op: li,
                        got: tm.level_out,
                        expected: want,
                    }
                    .into());
                }
                let (n, o) = l.name();
                progress(&format!(
                    "{n} ({o}): level {level_in} → {}, {:.1} s",
                    tm.level_out, tm.seconds
                ));
            }
        }
        eval_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let z = logits_ct.ok_or_else(|| unsupported("output", "-", "no logits produced"))?;
        let z = ev.mod_drop(&z, 0)?;
        let vals = ctx.decrypt_decode(&sk, &z)?;
        for b in 0..batch.len() {
            decrypted.push((0..n_out).map(|o| vals[b * block + o * spacing]).collect());
        }
        decrypt_s += t.elapsed().as_secs_f64();
    }

    let ranges_used = layers
        .iter()
        .filter_map(|l| match l {
            Layer::Relu { node, id } | Layer::MaxPool { node, id } => {
                Some((node.clone(), ranges.get(id).copied().unwrap_or(f64::NAN)))
            }
            _ => None,
        })
        .collect();
    Ok(assemble_report(ReportParts {
        net,
        cfg,
        sign,
        relu_depth,
        ranges: ranges_used,
        params: ctx.params(),
        levels_needed,
        level_plan,
        packing: Packing {
            block,
            images_per_ciphertext: per_ct,
            row: w0,
            logit_spacing: spacing,
            rotation_steps: steps,
        },
        outputs: (&decrypted, &exact, &approx),
        labels,
        indices,
        certified_bound,
        boot: boot.as_ref(),
        bstats: &bstats,
        schedule: &schedule,
        layers: timings,
        clock: Clock {
            keygen_s,
            encrypt_s,
            eval_s,
            decrypt_s,
            batches,
            key_bytes,
        },
    }))
}

/// The logits of one image.
pub(super) type Logits = Vec<f64>;

/// Everything [`assemble_report`] puts together.
pub(super) struct ReportParts<'a> {
    pub net: &'a Network,
    pub cfg: &'a EncryptedConfig,
    pub sign: &'a CompositeSign,
    pub relu_depth: usize,
    pub ranges: Vec<(String, f64)>,
    pub params: &'a CkksParams,
    pub levels_needed: usize,
    pub level_plan: Vec<(String, String, usize)>,
    pub packing: Packing,
    /// Decrypted, exact and approximate logits per image.
    pub outputs: (&'a [Logits], &'a [Logits], &'a [Logits]),
    pub labels: &'a [u16],
    pub indices: &'a [usize],
    pub certified_bound: Option<f64>,
    pub boot: Option<&'a (Bootstrapper, KeyMemory)>,
    pub bstats: &'a BootStats,
    pub schedule: &'a Schedule,
    pub layers: Vec<LayerTiming>,
    pub clock: Clock,
}

/// Wall-clock totals of a run (seconds) and the keys' bytes.
pub(super) struct Clock {
    pub keygen_s: f64,
    pub encrypt_s: f64,
    pub eval_s: f64,
    pub decrypt_s: f64,
    pub batches: usize,
    pub key_bytes: usize,
}

/// The report of a run: per image the decrypted logits cross-checked against the plaintext
/// exact and approximate ones and the certified bound, the summaries.
pub(super) fn assemble_report(r: ReportParts<'_>) -> EncryptedReport {
    let (decrypted, exact, approx) = r.outputs;
    let mut out_images = Vec::with_capacity(decrypted.len());
    for (i, ((dec, ex), ap)) in decrypted.iter().zip(exact).zip(approx).enumerate() {
        let ckks_error = max_abs_diff(dec, ap);
        let error_vs_exact = max_abs_diff(dec, ex);
        out_images.push(EncryptedImage {
            index: r.indices.get(i).copied().unwrap_or(i),
            label: r.labels.get(i).copied().unwrap_or(0),
            exact_logits: ex.clone(),
            approx_logits: ap.clone(),
            decrypted_logits: dec.clone(),
            exact_class: argmax(ex),
            approx_class: argmax(ap),
            decrypted_class: argmax(dec),
            ckks_error,
            error_vs_exact,
            approx_vs_exact: max_abs_diff(ap, ex),
            within_bound: r.certified_bound.map(|b| error_vs_exact <= b + ckks_error),
        });
    }
    let max_ckks_error = out_images.iter().map(|i| i.ckks_error).fold(0.0, f64::max);
    let certified_bound = r.certified_bound;
    EncryptedReport {
        model: r.net.name.clone(),
        alpha: r.cfg.alpha,
        degrees: r.sign.degrees().iter().map(|d| d.0).collect(),
        relu_depth: r.relu_depth as u32,
        ranges: r.ranges,
        params: ParamsSummary::of(r.params),
        levels_needed: r.levels_needed,
        level_plan: r.level_plan,
        packing: r.packing,
        seed: r.cfg.seed,
        agree_with_approx: out_images
            .iter()
            .filter(|i| i.decrypted_class == i.approx_class)
            .count(),
        agree_with_exact: out_images
            .iter()
            .filter(|i| i.decrypted_class == i.exact_class)
            .count(),
        correct: out_images
            .iter()
            .filter(|i| i.decrypted_class == usize::from(i.label))
            .count(),
        max_ckks_error,
        precision_bits: -max_ckks_error.log2(),
        max_error_vs_exact: out_images
            .iter()
            .map(|i| i.error_vs_exact)
            .fold(0.0, f64::max),
        certified_network_bound: certified_bound,
        within_bound: certified_bound
            .map(|_| out_images.iter().all(|i| i.within_bound == Some(true))),
        images: out_images,
        bootstrap: r.boot.map(|(bs, mem)| BootstrapSummary {
            config: *bs.config(),
            depth: bs.depth(),
            output_level: bs.output_level(),
            gain: BOOT_GAIN,
            bootstraps: r.bstats.count,
            precision_bits: r.bstats.min_bits,
            key_model_mib: mem.total_bytes as f64 / f64::from(1u32 << 20),
            galois_keys: mem.keys.len(),
            schedule: r.schedule.clone(),
        }),
        timings: Some(Timings {
            bootstrap_s: r.boot.map(|_| r.bstats.seconds),
            keygen_s: r.clock.keygen_s,
            encrypt_s: r.clock.encrypt_s,
            layers: r.layers,
            decrypt_s: r.clock.decrypt_s,
            eval_s: r.clock.eval_s,
            per_batch_s: r.clock.eval_s / r.clock.batches.max(1) as f64,
            per_image_s: r.clock.eval_s / decrypted.len().max(1) as f64,
            key_bytes: r.clock.key_bytes,
            peak_rss_mib: peak_rss_mib(),
        }),
        per_input: None,
        margin_rows: false,
    }
}

/// Plaintext references of `images`: the exact network F and the approximate F^α (the same
/// p_α and ranges B as the encrypted run).
pub(super) fn references(
    net: &Arc<Network>,
    images: &[Vec<f64>],
    alpha: u32,
    sign: &CompositeSign,
    ranges: &BTreeMap<NodeId, f64>,
) -> crate::Result<(Vec<Logits>, Vec<Logits>)> {
    let approx_policy = ActivationPolicy::Approx {
        sign: SignKernel::new(alpha, sign.poly()),
        ranges: ranges.clone(),
    };
    let engine: Engine<f64> = Engine::new(Arc::clone(net));
    let mut exact = Vec::with_capacity(images.len());
    let mut approx = Vec::with_capacity(images.len());
    for x in images {
        let mut st = RunStats::default();
        exact.push(engine.run(x, &ActivationPolicy::Exact, &mut st)?);
        approx.push(engine.run(x, &approx_policy, &mut st)?);
    }
    Ok((exact, approx))
}

/// The keys of a run and, with bootstrapping, the bootstrapper and the keys' memory model.
pub(super) struct RunKeys {
    pub sk: SecretKey,
    pub pk: PublicKey,
    pub ev: Evaluator,
    pub key_bytes: usize,
    pub boot: Option<(Bootstrapper, KeyMemory)>,
}

/// Generate the keys: without bootstrapping the rotation keys of `steps` at the top level;
/// with it the bootstrapper's and the executor's `exec` (step, level), their memory model
/// printed and checked against MemAvailable first.
///
/// # Errors
/// [`CkksError::KeyMemory`] when the model exceeds the available memory; as
/// [`Bootstrapper::new`] and [`Evaluator::new`].
pub(super) fn make_keys(
    ctx: &Arc<CkksContext>,
    boot_config: Option<&BootstrapConfig>,
    steps: &[i64],
    exec: &[(i64, usize)],
    name: &str,
    rng: &mut ChaCha20Rng,
    progress: &mut dyn FnMut(&str),
) -> Result<RunKeys, CkksError> {
    let Some(bc) = boot_config else {
        let sk = SecretKey::generate(ctx, rng);
        let pk = PublicKey::generate(ctx, &sk, rng);
        let rk = RelinKey::generate(ctx, &sk, rng);
        let gk = GaloisKeys::generate(ctx, &sk, steps, rng);
        let key_bytes = rk.0.size_bytes() + gk.size_bytes();
        let ev = Evaluator::new(Arc::clone(ctx), Some(rk), gk)?;
        return Ok(RunKeys {
            sk,
            pk,
            ev,
            key_bytes,
            boot: None,
        });
    };
    let bs = Bootstrapper::new(ctx, *bc)?.with_output_gain(ctx, BOOT_GAIN)?;
    let mem = key_memory(ctx, &bs, exec);
    progress(&format!(
        "key memory model (the bootstrapping and the executor keys together), checked \
         before key generation:\n{mem}"
    ));
    let avail = available_memory_bytes().unwrap_or(u64::MAX);
    if mem.total_bytes > avail {
        return Err(CkksError::KeyMemory {
            what: format!("encrypted run of {name:?} with bootstrapping"),
            needed_mib: mem.total_bytes >> 20,
            available_mib: avail >> 20,
        });
    }
    let sk = SecretKey::generate(ctx, rng);
    let pk = PublicKey::generate(ctx, &sk, rng);
    let rk = RelinKey::generate(ctx, &sk, rng);
    let mut gk = GaloisKeys::default();
    let els: Vec<(usize, usize)> = mem.keys.iter().map(|k| (k.element, k.level)).collect();
    gk.generate_elements(ctx, &sk, &els, rng);
    bs.add_encapsulation_keys(ctx, &sk, &mut gk, rng)?;
    let key_bytes = rk.0.size_bytes() + gk.size_bytes();
    let ev = Evaluator::new(Arc::clone(ctx), Some(rk), gk)?;
    Ok(RunKeys {
        sk,
        pk,
        ev,
        key_bytes,
        boot: Some((bs, mem)),
    })
}

/// Encrypt a batch of images (module docs: image b in block b·`block`, pixel (y, x) at
/// y·W + x, one ciphertext per channel) at the top level.
///
/// # Errors
/// As [`CkksContext::encode`] and [`CkksContext::encrypt`].
pub(super) fn encrypt_batch(
    ctx: &CkksContext,
    pk: &PublicKey,
    batch: &[Vec<f64>],
    (c0, h0, w0): (usize, usize, usize),
    block: usize,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<Ciphertext>, CkksError> {
    let slots = ctx.params().slots();
    let top = ctx.params().max_level();
    let mut xs = Vec::with_capacity(c0);
    for c in 0..c0 {
        let mut v = vec![0.0; slots];
        for (b, img) in batch.iter().enumerate() {
            for y in 0..h0 {
                for x in 0..w0 {
                    v[b * block + y * w0 + x] = img[c * h0 * w0 + y * w0 + x];
                }
            }
        }
        let pt = ctx.encode(&v, top, ctx.params().scale(top))?;
        xs.push(ctx.encrypt(pk, &pt, rng)?);
    }
    Ok(xs)
}

/// The dense layer (module docs): logits y = W·(x/κ − offset) + b of a [C, H, W] map on its
/// grid, logit k of image b at slot b·blk + k·spacing.
pub(super) struct Dense<'a> {
    /// [out][c·h·w].
    pub w: &'a [f64],
    /// Bias.
    pub b: &'a [f64],
    /// Logits.
    pub out: usize,
    /// κ of the input.
    pub kappa: f64,
    /// Offset of the input (κ·x + offset is held).
    pub offset: f64,
    /// Logit spacing.
    pub spacing: usize,
}

impl Dense<'_> {
    /// Apply to the channels `xs` of a map of geometry `g` (row `w0`, image block `block`,
    /// `images` images): the logits ciphertext and the rotations performed. 1 level.
    ///
    /// # Errors
    /// As the evaluator's operations.
    pub(super) fn apply(
        &self,
        ev: &Evaluator,
        xs: &[Ciphertext],
        g: Geo,
        w0: usize,
        block: usize,
        images: usize,
    ) -> Result<(Ciphertext, usize), CkksError> {
        let ctx = ev.context();
        let slots = ctx.params().slots();
        let (w, b, kappa, offset, spacing) =
            (self.w, self.b, self.kappa, self.offset, self.spacing);
        let mut rot = 0;
        let nin = g.c * g.h * g.w;
        let gpos = grid(g, w0);
        let zs: Vec<Ciphertext> = (0..self.out)
            .into_par_iter()
            .map(|o| {
                let mut acc: Option<Ciphertext> = None;
                for (c, x) in xs.iter().enumerate() {
                    let mut m = vec![0.0; slots];
                    for bidx in 0..images {
                        for (j, &p) in gpos.iter().enumerate() {
                            m[bidx * block + p] = w[o * nin + c * g.h * g.w + j] / kappa;
                        }
                    }
                    let t = ev.mul_vec_lazy(x, &m)?;
                    match &mut acc {
                        None => acc = Some(t),
                        Some(a) => ev.add_assign(a, &t)?,
                    }
                }
                let a = acc.ok_or_else(|| unsupported("gemm", "Gemm", "no input channels"))?;
                ev.rescale(&a)
            })
            .collect::<Result<_, CkksError>>()?;
        // Interleave: z = z_0 + rot(z_1 + rot(… , −d), −d).
        let mut z: Option<Ciphertext> = None;
        for zk in zs.iter().rev() {
            z = Some(match z {
                None => zk.clone(),
                Some(acc) => {
                    rot += 1;
                    ev.add(zk, &ev.rotate(&acc, -(spacing as i64))?)?
                }
            });
        }
        let mut z = z.ok_or_else(|| unsupported("gemm", "Gemm", "no outputs"))?;
        let mut s = 1;
        while s < g.w {
            rot += 1;
            z = ev.add(&z, &ev.rotate(&z, (g.st * s) as i64)?)?;
            s *= 2;
        }
        let mut s = 1;
        while s < g.h {
            rot += 1;
            z = ev.add(&z, &ev.rotate(&z, (g.st * w0 * s) as i64)?)?;
            s *= 2;
        }
        let mut bv = vec![0.0; slots];
        for bidx in 0..images {
            for (o, &bo) in b.iter().enumerate() {
                let corr: f64 = (0..nin).map(|j| w[o * nin + j]).sum::<f64>() * offset / kappa;
                bv[bidx * block + o * spacing] = bo - corr;
            }
        }
        let pt = ctx.encode(&bv, z.level(), z.scale())?;
        Ok((ev.add_plain(&z, &pt)?, rot))
    }
}

/// Rotation keys (step, level) the executor uses with bootstrapping: each at the level of
/// the layer input it rotates (the dense layer rotates after its rescale; unpacking after its
/// mask).
fn exec_key_levels(
    layers: &[Layer],
    geos: &[Geo],
    schedule: &Schedule,
    w0: usize,
    spacing: usize,
) -> Vec<(i64, usize)> {
    let mut out = Vec::new();
    for ((l, g), ls) in layers.iter().zip(geos).zip(&schedule.layers) {
        let (st, lin) = (g.st as i64, ls.level_in);
        let w = w0 as i64;
        match l {
            Layer::Conv { k, .. } => {
                for t in 1..*k as i64 {
                    out.push((st * t, lin));
                    out.push((st * w * t, lin));
                }
            }
            Layer::AvgPool { .. } | Layer::MaxPool { .. } => {
                out.push((st, lin));
                out.push((st * w, lin));
            }
            Layer::Relu { .. } => {
                for &o in ls.pack_offsets.iter().filter(|&&o| o != 0) {
                    out.push((-(o as i64), lin));
                    out.push((o as i64, ls.level_out));
                }
            }
            Layer::Dense { .. } => {
                let l1 = lin.saturating_sub(1);
                let mut s = 1;
                while s < g.w {
                    out.push((st * s as i64, l1));
                    s *= 2;
                }
                let mut s = 1;
                while s < g.h {
                    out.push((st * w * s as i64, l1));
                    s *= 2;
                }
                out.push((-(spacing as i64), l1));
            }
        }
    }
    out
}

/// The memory model of all keys of a bootstrapped run: the bootstrapper's Galois keys merged
/// with the executor's `(step, level)` (one key per Galois element, at the highest level it is
/// used at) and the relinearisation key.
pub(super) fn key_memory(ctx: &CkksContext, bs: &Bootstrapper, exec: &[(i64, usize)]) -> KeyMemory {
    let base = bs.key_memory(ctx);
    let enc = ctx.encoder();
    let mut need: BTreeMap<usize, (Option<i64>, usize)> = base
        .keys
        .iter()
        .map(|k| (k.element, (k.step, k.level)))
        .collect();
    for &(step, level) in exec {
        let g = enc.galois_element(step);
        if g == 1 {
            continue;
        }
        let e = need.entry(g).or_insert((Some(step), level));
        e.1 = e.1.max(level);
    }
    let keys: Vec<KeyNeed> = need
        .into_iter()
        .map(|(element, (step, level))| KeyNeed {
            element,
            step,
            level,
            bytes: KeySwitchKey::model_bytes(ctx.params(), level),
        })
        .collect();
    // What the bootstrapper's model holds besides its Galois and relinearisation keys (the
    // sparse-secret encapsulation keys).
    let extra = base
        .total_bytes
        .saturating_sub(base.keys.iter().map(|k| k.bytes).sum::<u64>() + base.relin_bytes);
    let total_bytes = keys.iter().map(|k| k.bytes).sum::<u64>() + base.relin_bytes + extra;
    KeyMemory {
        keys,
        relin_bytes: base.relin_bytes,
        total_bytes,
        matrix_bytes: base.matrix_bytes,
        pool_bytes: base.pool_bytes,
    }
}

/// Count, time and measured precision of the bootstraps of a run.
#[derive(Debug, Default)]
pub(super) struct BootStats {
    pub count: usize,
    pub seconds: f64,
    pub min_bits: Option<f64>,
}

impl BootStats {
    /// Bootstrap x (holding v/[`BOOT_GAIN`]) with `bs` (whose output gain restores v); the
    /// precision is measured by decrypting both sides: −log₂ max_slots |out − gain·in|.
    #[expect(
        clippy::too_many_arguments,
        reason = "the run's context, passed through"
    )]
    pub(super) fn bootstrap(
        &mut self,
        ctx: &CkksContext,
        sk: &SecretKey,
        ev: &Evaluator,
        bs: &Bootstrapper,
        x: &Ciphertext,
        total: usize,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Ciphertext, CkksError> {
        let vin = ctx.decrypt_decode(sk, x)?;
        let t = Instant::now();
        let y = bs.bootstrap(ev, x)?;
        let dt = t.elapsed().as_secs_f64();
        let vout = ctx.decrypt_decode(sk, &y)?;
        let err = vout
            .iter()
            .zip(&vin)
            .map(|(o, i)| (o - BOOT_GAIN * i).abs())
            .fold(0.0, f64::max);
        let bits = -err.log2();
        self.count += 1;
        self.seconds += dt;
        self.min_bits = Some(self.min_bits.map_or(bits, |b| b.min(bits)));
        let left = total.saturating_sub(self.count) as f64 * self.seconds / self.count as f64;
        progress(&format!(
            "bootstrap {}/{total}: {dt:.1} s, level {} → {}, precision {bits:.1} bits \
             (measured, all slots); projected remaining bootstrap time {left:.0} s",
            self.count,
            x.level(),
            y.level()
        ));
        Ok(y)
    }
}

/// r̃_α(x)·2/B = u·(1 + p_α(u)) with the bootstraps of `r` (`schedule` module docs); `plans`
/// are the components, each already divided by the bootstrap gain where a bootstrap follows
/// it; `boot` bootstraps (restoring the gain).
pub(super) fn relu_bootstrapped(
    ev: &Evaluator,
    plans: &[EvalPlan],
    r: &ReluSchedule,
    u: &Ciphertext,
    boot: &mut dyn FnMut(&Ciphertext) -> Result<Ciphertext, CkksError>,
) -> Result<Ciphertext, CkksError> {
    let uu = if r.boot_input {
        boot(&ev.mul_const(u, 1.0 / BOOT_GAIN)?)?
    } else {
        u.clone()
    };
    let mut cur = uu.clone();
    for (i, p) in plans.iter().enumerate() {
        if r.boot_before.contains(&i) {
            cur = boot(&cur)?;
        }
        cur = eval_plan(ev, p, &cur)?.0;
    }
    if r.boot_product {
        cur = boot(&cur)?;
    }
    let l = cur.level().min(uu.level());
    let prod = ev.mul(&ev.adjust_to(&uu, l)?, &ev.adjust_to(&cur, l)?)?;
    let u2 = ev.adjust_to(&uu, prod.level())?;
    ev.add(&prod, &u2)
}

/// Channels sharing ciphertexts (`schedule` module docs, channel sharing and block groups):
/// channel c (zero off its grid and outside the batch's blocks) moved to offset
/// offs[c mod k] of block group j = (c mod k·g) / k of ciphertext ⌊c / (k·g)⌋, k = offs.len()
/// and g = `ls.block_groups`, offs = `ls.pack_offsets`: the k-channel packs by rotations by
/// −o, then the block groups by the Horner chain acc ← rot(acc, −stride) + x_j. No level.
/// Returns the ciphertexts and the rotations performed.
pub(super) fn pack(
    ev: &Evaluator,
    xs: &[Ciphertext],
    ls: &LayerSchedule,
) -> Result<(Vec<Ciphertext>, usize), CkksError> {
    let offs = &ls.pack_offsets;
    let per = offs.len().max(1);
    let mut rot = 0;
    let mut subs = Vec::with_capacity(xs.len().div_ceil(per));
    for grp in xs.chunks(per) {
        let parts: Vec<Ciphertext> = grp
            .par_iter()
            .zip(offs.par_iter())
            .map(|(x, &o)| {
                if o == 0 {
                    Ok(x.clone())
                } else {
                    ev.rotate(x, -(o as i64))
                }
            })
            .collect::<Result<_, CkksError>>()?;
        rot += offs.iter().take(grp.len()).filter(|&&o| o != 0).count();
        let mut it = parts.into_iter();
        let mut acc = it
            .next()
            .ok_or_else(|| unsupported("pack", "Relu", "no channels"))?;
        for p in it {
            ev.add_assign(&mut acc, &p)?;
        }
        subs.push(acc);
    }
    let g = ls.block_groups.max(1);
    if g == 1 {
        return Ok((subs, rot));
    }
    let step = -(ls.group_stride as i64);
    let out = subs
        .par_chunks(g)
        .map(|grp| {
            let mut it = grp.iter().rev();
            let mut acc = it
                .next()
                .cloned()
                .ok_or_else(|| unsupported("pack", "Relu", "no channels"))?;
            for x in it {
                acc = ev.rotate(&acc, step)?;
                ev.add_assign(&mut acc, x)?;
            }
            Ok(acc)
        })
        .collect::<Result<Vec<_>, CkksError>>()?;
    rot += subs.len() - out.len();
    Ok((out, rot))
}

/// The inverse of [`pack`]: block group j of a packed ciphertext brought back by the chain
/// z_j = rot(z_{j−1}, stride), then channel c cut out of it by the 0/1 mask of its grid copy
/// in the `images` blocks (1 level) and rotated back to offset 0.
pub(super) fn unpack(
    ev: &Evaluator,
    packed: &[Ciphertext],
    ls: &LayerSchedule,
    channels: usize,
    grid: &[usize],
    images: usize,
    block: usize,
) -> Result<(Vec<Ciphertext>, usize), CkksError> {
    let offs = &ls.pack_offsets;
    let k = offs.len().max(1);
    let g = ls.block_groups.max(1);
    let per = k * g;
    let slots = ev.context().params().slots();
    let packs = channels.div_ceil(k);
    let shifted = packed
        .par_iter()
        .enumerate()
        .map(|(t, ct)| {
            let gt = packs.saturating_sub(t * g).clamp(1, g);
            let mut zs = Vec::with_capacity(gt);
            zs.push(ct.clone());
            for j in 1..gt {
                let z = ev.rotate(&zs[j - 1], ls.group_stride as i64)?;
                zs.push(z);
            }
            Ok(zs)
        })
        .collect::<Result<Vec<_>, CkksError>>()?;
    let out = (0..channels)
        .into_par_iter()
        .map(|c| {
            let r = c % per;
            let o = offs.get(r % k).copied().unwrap_or(0);
            let ct = shifted
                .get(c / per)
                .and_then(|zs| zs.get(r / k))
                .ok_or_else(|| unsupported("unpack", "Relu", "missing packed ciphertext"))?;
            let mut mask = vec![0.0; slots];
            for b in 0..images {
                for &p in grid {
                    mask[b * block + p + o] = 1.0;
                }
            }
            let y = ev.mul_vec(ct, &mask)?;
            if o == 0 {
                Ok(y)
            } else {
                ev.rotate(&y, o as i64)
            }
        })
        .collect::<Result<Vec<_>, CkksError>>()?;
    let rot = (0..channels)
        .filter(|c| offs.get(c % k).is_some_and(|&o| o != 0))
        .count()
        + shifted.iter().map(|zs| zs.len() - 1).sum::<usize>();
    Ok((out, rot))
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use rand::Rng;

    use super::*;
    use crate::remez::table1_sign;

    /// The bootstrapped r̃_α on one ciphertext (INSECURE N = 2^10, 3 user levels: bootstraps
    /// restore level 3; α = 6, depths 2 and 3) against u·(1 + p_α(u)) in f64, from two input
    /// levels: level 1 (u itself bootstrapped, a split before p_2, p_α(u) bootstrapped before
    /// the product) and level 5 (only p_α(u) bootstrapped).
    #[test]
    fn relu_bootstrapped_equals_plaintext_insecure() {
        let setup = RunSetup::bootstrapped(10, Some(3), true).unwrap();
        let ctx = CkksContext::new(setup.params).unwrap();
        let bs = Bootstrapper::new(&ctx, setup.bootstrap.unwrap())
            .unwrap()
            .with_output_gain(&ctx, BOOT_GAIN)
            .unwrap();
        assert_eq!(bs.output_level(), 3);
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let sk = SecretKey::generate(&ctx, &mut rng);
        let pk = PublicKey::generate(&ctx, &sk, &mut rng);
        let rk = RelinKey::generate(&ctx, &sk, &mut rng);
        let gk = bs.generate_keys(&ctx, &sk, u64::MAX, &mut rng).unwrap();
        let ev = Evaluator::new(Arc::clone(&ctx), Some(rk), gk).unwrap();
        let sign = table1_sign(6).unwrap();
        let plain = sign_plans(&sign);
        let depths: Vec<usize> = plain.iter().map(|p| p.depth() as usize).collect();
        assert_eq!(depths, vec![2, 3]);
        let slots = ctx.params().slots();
        let u: Vec<f64> = (0..slots).map(|_| rng.random_range(-1.0..1.0)).collect();
        let want: Vec<f64> = u
            .iter()
            .map(|&x| {
                let p = plain.iter().fold(x, |v, pl| pl.eval(&v));
                x * (1.0 + p)
            })
            .collect();
        let top = ctx.params().max_level();
        let pt = ctx.encode(&u, top, ctx.params().scale(top)).unwrap();
        let ct = ctx.encrypt(&pk, &pt, &mut rng).unwrap();
        for (lin, boot_input, boot_before, boot_product, out) in
            [(1, true, vec![1], true, 2), (5, false, vec![], true, 2)]
        {
            let r = crate::ckks::plan_relu(lin, &depths, Some(3)).unwrap();
            assert_eq!(
                (
                    r.boot_input,
                    r.boot_before.clone(),
                    r.boot_product,
                    r.level_out
                ),
                (boot_input, boot_before, boot_product, out)
            );
            let scales = r.component_scales(BOOT_GAIN);
            let plans = sign_plans_scaled(&sign, &scales).unwrap();
            let mut stats = BootStats::default();
            let x = ev.adjust_to(&ct, lin).unwrap();
            let y = relu_bootstrapped(&ev, &plans, &r, &x, &mut |c: &Ciphertext| {
                stats.bootstrap(&ctx, &sk, &ev, &bs, c, r.bootstraps(), &mut |_| {})
            })
            .unwrap();
            assert_eq!(y.level(), out);
            assert_eq!(stats.count, r.bootstraps());
            let got = ctx.decrypt_decode(&sk, &y).unwrap();
            let err = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs())
                .fold(0.0, f64::max);
            // A wrong gain or a mis-scaled component is off by O(1); measured 1.1e-6 and
            // 4.9e-7 (seed 7).
            assert!(err < 1e-4, "level {lin}: max error {err:e}");
            eprintln!(
                "u at level {lin}: {} bootstraps (≥ {:.1} bits), max |dec − u(1 + p(u))| = {err:.2e}",
                stats.count,
                stats.min_bits.unwrap()
            );
        }
    }

    /// pack ∘ unpack is the identity on random channels across several block groups
    /// (INSECURE N = 2^10, 512 slots, 64-slot blocks, the 4×4 grid of stride 2 on rows of 8:
    /// offsets 0, 1, 8, 9). 19 channels: with B = 2 images there are 4 block groups, 5 packs of
    /// 4 channels over 2 ciphertexts of 3 groups (the second holds 2, the last pack 3
    /// channels); with B = 1, 8 groups, one ciphertext of 5 groups. The packed slots are
    /// checked against the layout computed here (channel c at j·B·64 + b·64 + p + o), and each
    /// unpacked channel against its input, 1 level lower.
    #[test]
    fn pack_unpack_across_block_groups_is_identity_insecure() {
        let params = CkksParams::for_depth(10, 2, 20, true).unwrap();
        let ctx = CkksContext::new(params).unwrap();
        let slots = ctx.params().slots();
        assert_eq!(slots, 512);
        let (block, w0) = (64, 8);
        let geo = Geo {
            c: 19,
            h: 4,
            w: 4,
            st: 2,
        };
        let g = grid(geo, w0);
        let offs = crate::ckks::pack_offsets(&g, block);
        assert_eq!(offs, vec![0, 1, 8, 9]);
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let sk = SecretKey::generate(&ctx, &mut rng);
        let pk = PublicKey::generate(&ctx, &sk, &mut rng);
        let top = ctx.params().max_level();
        for (images, groups, cts) in [(2usize, 3usize, 2usize), (1, 5, 1)] {
            let m = crate::ckks::block_groups(slots, block, images);
            assert_eq!(m, 8 / images);
            assert_eq!(
                crate::ckks::group_packing(geo.c, offs.len(), m),
                (groups, cts)
            );
            let stride = images * block;
            let mut steps: Vec<i64> = vec![-(stride as i64), stride as i64];
            for &o in &offs[1..] {
                steps.extend([-(o as i64), o as i64]);
            }
            let gk = GaloisKeys::generate(&ctx, &sk, &steps, &mut rng);
            let ev = Evaluator::new(Arc::clone(&ctx), None, gk).unwrap();
            let vals: Vec<Vec<f64>> = (0..geo.c)
                .map(|_| {
                    let mut v = vec![0.0; slots];
                    for b in 0..images {
                        for &p in &g {
                            v[b * block + p] = rng.random_range(-1.0..1.0);
                        }
                    }
                    v
                })
                .collect();
            let xs: Vec<Ciphertext> = vals
                .iter()
                .map(|v| {
                    let pt = ctx.encode(v, top, ctx.params().scale(top)).unwrap();
                    ctx.encrypt(&pk, &pt, &mut rng).unwrap()
                })
                .collect();
            let ls = LayerSchedule {
                node: "r".into(),
                op: "Relu".into(),
                level_in: top,
                level_out: top - 1,
                ciphertexts: cts,
                relu: None,
                pack_offsets: offs.clone(),
                block_groups: groups,
                group_stride: stride,
                bootstraps: 0,
            };
            let (packed, r1) = pack(&ev, &xs, &ls).unwrap();
            assert_eq!(packed.len(), cts);
            // 14 channels (c mod 4 ≠ 0) off offset 0, and 5 packs − `cts` chain steps.
            assert_eq!(r1, 14 + 5 - cts);
            let mut want = vec![vec![0.0; slots]; cts];
            for (c, v) in vals.iter().enumerate() {
                let (t, r) = (c / (4 * groups), c % (4 * groups));
                let (j, o) = (r / 4, offs[r % 4]);
                for b in 0..images {
                    for &p in &g {
                        let s = j * stride + b * block + p + o;
                        assert_eq!(want[t][s], 0.0, "copies overlap at slot {s}");
                        want[t][s] = v[b * block + p];
                    }
                }
            }
            let dec_err = |ct: &Ciphertext, w: &[f64]| {
                let got = ctx.decrypt_decode(&sk, ct).unwrap();
                got.iter()
                    .zip(w)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max)
            };
            for (ct, w) in packed.iter().zip(&want) {
                assert_eq!(ct.level(), top);
                let err = dec_err(ct, w);
                assert!(err < 1e-3, "B = {images}: packed layout off by {err:e}");
            }
            let (un, r2) = unpack(&ev, &packed, &ls, geo.c, &g, images, block).unwrap();
            assert_eq!(un.len(), geo.c);
            assert_eq!(r2, r1);
            let mut worst = 0.0f64;
            for (c, (y, v)) in un.iter().zip(&vals).enumerate() {
                assert_eq!(y.level(), top - 1);
                let err = dec_err(y, v);
                worst = worst.max(err);
                // A wrong group, offset or mask moves values of size ~1; measured 1.2e-7 and
                // 1.4e-7 (seed 11).
                assert!(err < 1e-3, "B = {images}, channel {c}: max error {err:e}");
            }
            eprintln!("B = {images}: pack ∘ unpack max error {worst:.2e}");
        }
    }
}
