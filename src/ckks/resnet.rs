//! The encrypted executor of residual networks (CIFAR ResNet-20/32/44 with option-A
//! shortcuts): the graph of `graph` (packing, convolutions with zero padding and stride 2,
//! subsampling, channel padding, residual additions, global average pooling and the dense
//! layer) run on CKKS ciphertexts with r̃_α (paper Eq. 4) at every ReLU, bootstrapped inside
//! the composite sign where the levels run out (`schedule`), and cross-checked against the
//! plaintext exact and approximate engines (`nn::Engine`).
//!
//! [`plan_encrypted`] is the plan alone (levels per node, bootstraps, rotation keys, their
//! memory model and a cost estimate), made without any key.

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

use crate::nn::{Network, NodeId};
use crate::poly::EvalPlan;
use crate::remez::CompositeSign;

use super::bootstrap::{Bootstrapper, KeyMemory};
use super::eval::{Ciphertext, CkksContext, Evaluator};
use super::graph::{compile_graph, conv_steps, plan_graph, same_kappa, GOp, Graph, GraphPlan};
use super::infer::{
    assemble_report, encrypt_batch, key_memory, make_keys, pack, references, relu_bootstrapped,
    unpack, BootStats, Clock, Dense, EncryptedConfig, ReportParts, RunKeys, RunSetup,
};
use super::layers::{grid, unsupported, Geo};
use super::polyeval::{relu_scaled, sign_plans, sign_plans_scaled};
use super::report::{EncryptedReport, LayerTiming, Packing};
use super::schedule::{Schedule, BOOT_GAIN};
use super::CkksError;

/// Seconds of one bootstrap at N = 2^16 (full slots, sparse-secret encapsulation, 128-bit,
/// 2 threads, quiet machine; measured by `cargo bench --bench bootstrap -- --test` on
/// 2026-12-06, README "Sparse-secret encapsulation and lazy EvalMod"), the unit of the cost
/// estimate.
pub const EST_BOOTSTRAP_S_2_16: f64 = 25.6;

/// Assumed seconds of one key switch (rotation or relinearisation) per RNS prime of the
/// ciphertext at N = 2^16, 2 threads: 0.2 s at 25 primes (OpenFHE's multiplication with
/// relinearisation at N = 2^16, issue 14's anchors; not measured for this crate).
pub const EST_KEY_SWITCH_S_PER_PRIME_2_16: f64 = 0.008;

/// Assumed nanoseconds per coefficient of a product of a ciphertext by a plaintext constant
/// (two polynomials, one multiply-reduce per residue coefficient).
pub const EST_CONST_MULT_NS: f64 = 1.0;

/// The cost estimate of a plan (module docs; from the measured bootstrap time and assumed
/// per-operation costs, scaled linearly in N; not a measurement).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CostEstimate {
    /// Bootstraps per batch.
    pub bootstraps: usize,
    /// Key switches per batch outside bootstraps.
    pub key_switches: usize,
    /// Plaintext-constant products per batch.
    pub const_mults: usize,
    /// Estimated seconds of the bootstraps per batch.
    pub bootstrap_s: f64,
    /// Estimated seconds of everything else per batch.
    pub other_s: f64,
    /// Images per batch.
    pub images_per_batch: usize,
}

impl CostEstimate {
    /// Estimated seconds per batch.
    pub fn batch_s(&self) -> f64 {
        self.bootstrap_s + self.other_s
    }
}

/// The plan of an encrypted run of a residual network (levels per node, bootstraps, keys,
/// memory, cost), made before any key ([`plan_encrypted`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunPlan {
    /// Network name.
    pub model: String,
    /// log₂ N.
    pub log_n: u32,
    /// The level schedule.
    pub schedule: Schedule,
    /// The executor's rotation keys: (step, highest level used at).
    pub rotation_keys: Vec<(i64, usize)>,
    /// The memory model of all keys (bootstrapping and executor), when the bootstrapper was
    /// built.
    pub key_memory: Option<KeyMemory>,
    /// Slots per image block.
    pub block: usize,
    /// The cost estimate.
    pub cost: CostEstimate,
}

impl std::fmt::Display for RunPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "plan of the encrypted run of {:?} at N = 2^{} ({} slots per image, {} images per batch):",
            self.model, self.log_n, self.block, self.cost.images_per_batch
        )?;
        write!(f, "{}", self.schedule)?;
        let lv: BTreeMap<usize, usize> =
            self.rotation_keys
                .iter()
                .fold(BTreeMap::new(), |mut m, &(_, l)| {
                    *m.entry(l).or_insert(0) += 1;
                    m
                });
        writeln!(
            f,
            "executor rotation keys: {} (by level: {lv:?})",
            self.rotation_keys.len()
        )?;
        match &self.key_memory {
            Some(m) => writeln!(
                f,
                "key memory model (bootstrapping and executor keys):\n{m}"
            )?,
            None => writeln!(f, "key memory model: not computed (no bootstrapper built)")?,
        }
        let c = &self.cost;
        writeln!(
            f,
            "cost estimate per batch (not measured: {} bootstraps × {:.1} s scaled to N, {} key \
             switches, {} constant products at assumed unit costs): {:.0} s bootstraps + {:.0} s \
             other = {:.0} s, {:.0} s per image at {} images per batch",
            c.bootstraps,
            EST_BOOTSTRAP_S_2_16,
            c.key_switches,
            c.const_mults,
            c.bootstrap_s,
            c.other_s,
            c.batch_s(),
            c.batch_s() / c.images_per_batch.max(1) as f64,
            c.images_per_batch
        )
    }
}

/// Levels of `net` without bootstrapping (its longest path), for [`RunSetup::choose`].
///
/// # Errors
/// As [`compile_graph`].
pub(super) fn graph_levels(net: &Network, sign: &CompositeSign) -> Result<usize, CkksError> {
    let g = compile_graph(net)?;
    let plans = sign_plans(sign);
    let depths: Vec<usize> = plans.iter().map(|p| p.depth() as usize).collect();
    let ranges: BTreeMap<NodeId, f64> = g
        .nodes
        .iter()
        .filter_map(|n| match n.op {
            GOp::Relu { id } => Some((id, 1.0)),
            _ => None,
        })
        .collect();
    let (block, w0) = layout(&g);
    Ok(plan_graph(
        &g,
        &ranges,
        &depths,
        0,
        usize::MAX / 2,
        None,
        block,
        w0,
        1,
        block,
    )?
    .levels_needed)
}

fn layout(g: &Graph) -> (usize, usize) {
    ((g.input.h * g.input.w).next_power_of_two(), g.input.w)
}

/// The images of a batch of a run on `images` images: all of them, at most slots/block.
fn batch_images(setup: &RunSetup, block: usize, images: usize) -> usize {
    images.clamp(1, (setup.params.slots() / block.max(1)).max(1))
}

/// Everything the plan needs from the parameters, for batches of `images` images.
fn plan_for(
    g: &Graph,
    ranges: &BTreeMap<NodeId, f64>,
    plans: &[EvalPlan],
    setup: &RunSetup,
    images: usize,
) -> Result<GraphPlan, CkksError> {
    let depths: Vec<usize> = plans.iter().map(|p| p.depth() as usize).collect();
    let mults: usize = plans.iter().map(|p| p.nonscalar_mults() as usize).sum();
    let top = setup.params.max_level();
    let boot_out = setup
        .bootstrap
        .as_ref()
        .map(|c| top.saturating_sub(c.cts_levels + c.eval_mod.depth() + c.stc_levels));
    let (block, w0) = layout(g);
    if block > setup.params.slots() {
        return Err(CkksError::BadParam {
            what: "image size".into(),
            value: format!("{}×{}", g.input.h, g.input.w),
            valid: format!("H·W ≤ N/2 = {}", setup.params.slots()),
        });
    }
    let slots = setup.params.slots();
    plan_graph(
        g,
        ranges,
        &depths,
        mults,
        top,
        boot_out,
        block,
        w0,
        batch_images(setup, block, images),
        slots,
    )
}

fn estimate(plan: &GraphPlan, setup: &RunSetup, per_ct: usize) -> CostEstimate {
    let n = setup.params.n() as f64;
    let f = n / 65536.0;
    let k = setup.params.p().len();
    let ks: usize = plan.key_switches.values().sum();
    let ks_s: f64 = plan
        .key_switches
        .iter()
        .map(|(&l, &c)| c as f64 * (l + 1 + k) as f64 * EST_KEY_SWITCH_S_PER_PRIME_2_16 * f)
        .sum();
    let cm: usize = plan.const_mults.values().sum();
    let cm_s: f64 = plan
        .const_mults
        .iter()
        .map(|(&l, &c)| c as f64 * 2.0 * n * (l + 1) as f64 * EST_CONST_MULT_NS * 1e-9)
        .sum();
    CostEstimate {
        bootstraps: plan.schedule.bootstraps,
        key_switches: ks,
        const_mults: cm,
        bootstrap_s: plan.schedule.bootstraps as f64 * EST_BOOTSTRAP_S_2_16 * f,
        other_s: ks_s + cm_s,
        images_per_batch: per_ct,
    }
}

/// The plan of an encrypted run of the residual network `net` with `setup` on `images` images
/// (batches of min(`images`, slots/block) images: a smaller batch packs more channels per
/// bootstrap, `schedule` module docs) (levels per node, bootstraps, rotation keys, cost
/// estimate), without any key. With `key_model` and
/// bootstrapping, the bootstrapper is built (its DFT diagonals are encoded: 2.5 GiB and a few
/// seconds at N = 2^16, no key) to add the memory model of all keys.
///
/// # Errors
/// [`CkksError::Unsupported`] naming a node outside the supported graph;
/// [`CkksError::NotEnoughLevels`] naming the node that does not fit.
pub fn plan_encrypted(
    net: &Network,
    ranges: &BTreeMap<NodeId, f64>,
    sign: &CompositeSign,
    setup: &RunSetup,
    images: usize,
    key_model: bool,
) -> Result<RunPlan, CkksError> {
    let g = compile_graph(net)?;
    let plans = sign_plans(sign);
    let plan = plan_for(&g, ranges, &plans, setup, images)?;
    let (block, _) = layout(&g);
    let per_ct = batch_images(setup, block, images);
    let key_memory = match (&setup.bootstrap, key_model) {
        (Some(bc), true) => {
            let ctx = CkksContext::new(setup.params.clone())?;
            let bs = Bootstrapper::new(&ctx, *bc)?;
            Some(key_memory(&ctx, &bs, &plan.keys))
        }
        _ => None,
    };
    Ok(RunPlan {
        model: net.name.clone(),
        log_n: setup.params.log_n(),
        cost: estimate(&plan, setup, per_ct),
        schedule: plan.schedule,
        rotation_keys: plan.keys,
        key_memory,
        block,
    })
}

/// The values of a batch: per channel a ciphertext, or None for a channel known to be 0.
type Chans = Vec<Option<Ciphertext>>;

fn present(xs: &Chans, node: &str, op: &str) -> Result<Vec<Ciphertext>, CkksError> {
    xs.iter()
        .map(|x| {
            x.clone()
                .ok_or_else(|| unsupported(node, op, "an input channel is absent (zero)"))
        })
        .collect()
}

fn level_of(xs: &Chans) -> usize {
    xs.iter()
        .flatten()
        .map(Ciphertext::level)
        .next()
        .unwrap_or(0)
}

/// The 0/1 mask of the grid `g` (row `w0`) in every image block of a batch.
fn grid_mask(g: Geo, w0: usize, block: usize, images: usize, slots: usize) -> Vec<f64> {
    let mut m = vec![0.0; slots];
    let pos = grid(g, w0);
    for b in 0..images {
        for &p in &pos {
            m[b * block + p] = 1.0;
        }
    }
    m
}

/// The executor's shared state for one run.
struct Exec<'a> {
    ev: &'a Evaluator,
    w0: usize,
    block: usize,
    slots: usize,
}

impl Exec<'_> {
    /// A convolution (`graph` module docs): hoisted rotations of each input, masked per
    /// kernel offset (1 level), weighted sums with the bias on the output grid (1 level).
    #[expect(clippy::too_many_arguments, reason = "the convolution's parameters")]
    fn conv(
        &self,
        xs: &Chans,
        gin: Geo,
        gout: Geo,
        (w, b): (&[f64], &[f64]),
        (k, pad, stride): (usize, usize, usize),
        (kin, kout): (f64, f64),
        images: usize,
    ) -> Result<(Chans, usize), CkksError> {
        let ev = self.ev;
        let ctx = ev.context();
        let cin = gin.c;
        let cout = gout.c;
        let steps = conv_steps(k, pad, gin.st, self.w0);
        let lin = level_of(xs);
        let first = xs
            .iter()
            .flatten()
            .next()
            .ok_or_else(|| unsupported("conv", "Conv", "no input channel"))?;
        // Masks M_{dy,dx}: output (y′, x′) whose read (s·y′ − p + dy, s·x′ − p + dx) is inside.
        let s_mask = ev.next_factor(first, "mul_plain")?;
        let masks = (0..k * k)
            .into_par_iter()
            .map(|t| {
                let (dy, dx) = (t / k, t % k);
                let mut m = vec![0.0; self.slots];
                for y in 0..gout.h {
                    let ry = (stride * y + dy) as i64 - pad as i64;
                    if ry < 0 || ry >= gin.h as i64 {
                        continue;
                    }
                    for x in 0..gout.w {
                        let rx = (stride * x + dx) as i64 - pad as i64;
                        if rx < 0 || rx >= gin.w as i64 {
                            continue;
                        }
                        let p = gout.st * (y * self.w0 + x);
                        for bi in 0..images {
                            m[bi * self.block + p] = 1.0;
                        }
                    }
                }
                ctx.encode(&m, lin, s_mask)
            })
            .collect::<Result<Vec<_>, CkksError>>()?;
        let rot_steps: Vec<i64> = steps.iter().copied().filter(|&s| s != 0).collect();
        let mut rot = 0;
        let mut accs: Vec<Option<Ciphertext>> = vec![None; cout];
        for (ci, x) in xs.iter().enumerate() {
            let Some(x) = x else { continue };
            let rots = ev.rotate_hoisted(x, &rot_steps)?;
            rot += rot_steps.len();
            let mut it = rots.into_iter();
            let shifted: Vec<Ciphertext> = steps
                .iter()
                .map(|&s| {
                    if s == 0 {
                        Ok(x.clone())
                    } else {
                        it.next()
                            .ok_or_else(|| unsupported("conv", "Conv", "missing rotation"))
                    }
                })
                .collect::<Result<_, _>>()?;
            let masked: Vec<Ciphertext> = shifted
                .par_iter()
                .zip(masks.par_iter())
                .map(|(r, m)| ev.rescale(&ev.mul_plain_lazy(r, m)?))
                .collect::<Result<_, CkksError>>()?;
            accs.par_iter_mut().enumerate().try_for_each(|(co, acc)| {
                for (t, r) in masked.iter().enumerate() {
                    let wt = w[(co * cin + ci) * k * k + t] * kout / kin;
                    let m = ev.mul_const_lazy(r, wt)?;
                    match acc {
                        None => *acc = Some(m),
                        Some(a) => ev.add_assign(a, &m)?,
                    }
                }
                Ok::<(), CkksError>(())
            })?;
        }
        let gmask = grid_mask(gout, self.w0, self.block, images, self.slots);
        let out = accs
            .into_par_iter()
            .enumerate()
            .map(|(co, a)| {
                let a = a.ok_or_else(|| unsupported("conv", "Conv", "no input channel"))?;
                let a = ev.rescale(&a)?;
                let bv: Vec<f64> = gmask.iter().map(|&m| m * b[co] * kout).collect();
                let pt = ctx.encode(&bv, a.level(), a.scale())?;
                Ok(Some(ev.add_plain(&a, &pt)?))
            })
            .collect::<Result<Chans, CkksError>>()?;
        Ok((out, rot))
    }
}

/// Run the residual network `net` encrypted (as [`super::run_encrypted_with`], which
/// dispatches here for graphs that are not chains).
///
/// # Errors
/// As [`super::run_encrypted_with`].
#[expect(
    clippy::too_many_arguments,
    reason = "one call from the dispatcher; every input is distinct"
)]
#[expect(clippy::too_many_lines, reason = "the per-node executor loop")]
pub(super) fn run_graph_encrypted(
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
    let g = compile_graph(net)?;
    let plans = sign_plans(sign);
    let relu_depth = plans.iter().map(|p| p.depth() as usize).sum::<usize>() + 1;
    if images.len() != labels.len() || images.len() != indices.len() {
        return Err(CkksError::BadParam {
            what: "images/labels/indices".into(),
            value: format!("{}/{}/{}", images.len(), labels.len(), indices.len()),
            valid: "equal lengths".into(),
        }
        .into());
    }
    let plan = plan_for(&g, ranges, &plans, &setup, images.len())?;
    let (block, w0) = layout(&g);
    let slots = setup.params.slots();
    let per_ct = slots / block;
    let batch_size = batch_images(&setup, block, images.len());
    let (exact, approx) = references(net, images, cfg.alpha, sign, ranges)?;
    progress(&plan.schedule.to_string());
    progress(&format!(
        "cost estimate (not measured, see `plan_encrypted`): {:.0} s per batch of {batch_size}",
        estimate(&plan, &setup, batch_size).batch_s()
    ));

    let t0 = Instant::now();
    let RunSetup {
        params,
        bootstrap: boot_config,
    } = setup;
    let ctx = CkksContext::new(params)?;
    let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed);
    let steps: Vec<i64> = plan.keys.iter().map(|&(s, _)| s).collect();
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
        &plan.keys,
        &net.name,
        &mut rng,
        progress,
    )?;
    let keygen_s = t0.elapsed().as_secs_f64();
    let boot_total = plan.schedule.bootstraps * images.len().div_ceil(per_ct);
    let mut bstats = BootStats::default();
    let exec = Exec {
        ev: &ev,
        w0,
        block,
        slots,
    };
    let mut timings: Vec<LayerTiming> = g
        .nodes
        .iter()
        .map(|n| LayerTiming {
            node: n.node.clone(),
            op: n.op_name().into(),
            level_in: 0,
            level_out: 0,
            rotations: 0,
            seconds: 0.0,
        })
        .collect();
    // Last reader of each value (values are dropped after it).
    let mut last_use = vec![0usize; g.nodes.len() + 1];
    for (i, n) in g.nodes.iter().enumerate() {
        for &v in &n.inputs {
            last_use[v] = i;
        }
    }
    let mut decrypted: Vec<Vec<f64>> = Vec::with_capacity(images.len());
    let (mut encrypt_s, mut eval_s, mut decrypt_s) = (0.0, 0.0, 0.0);
    let mut batches = 0usize;
    let mut n_out = 0;
    for batch in images.chunks(per_ct) {
        batches += 1;
        let t = Instant::now();
        let input = encrypt_batch(
            &ctx,
            &pk,
            batch,
            (g.input.c, g.input.h, g.input.w),
            block,
            &mut rng,
        )?;
        encrypt_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut vals: Vec<Option<Chans>> = vec![None; g.nodes.len() + 1];
        vals[0] = Some(input.into_iter().map(Some).collect());
        let mut logits = None;
        for (i, n) in g.nodes.iter().enumerate() {
            let tl = Instant::now();
            let x = n.inputs.first().copied().unwrap_or(0);
            let xs = vals[x]
                .as_ref()
                .ok_or_else(|| unsupported(&n.node, n.op_name(), "input value not computed"))?;
            let (gin, kin, kout) = (g.geo(x), plan.kappa[x], plan.kappa[i + 1]);
            let level_in = level_of(xs);
            let mut rot = 0;
            let out: Chans = match &n.op {
                GOp::Conv {
                    w,
                    b,
                    k,
                    pad,
                    stride,
                    ..
                } => {
                    let (y, r) = exec.conv(
                        xs,
                        gin,
                        n.geo,
                        (w, b),
                        (*k, *pad, *stride),
                        (kin, kout),
                        batch.len(),
                    )?;
                    rot += r;
                    y
                }
                GOp::Relu { id } => {
                    let b = ranges.get(id).copied().unwrap_or(1.0);
                    let xs = present(xs, &n.node, "Relu")?;
                    let us: Vec<Ciphertext> = if same_kappa(kin, 1.0 / b) {
                        xs
                    } else {
                        xs.par_iter()
                            .map(|x| ev.mul_const(x, 1.0 / (b * kin)))
                            .collect::<Result<_, CkksError>>()?
                    };
                    let ls = &plan.schedule.layers[i];
                    let booted = ls.relu.as_ref().filter(|r| r.bootstraps() > 0);
                    match (booted, boot.as_ref()) {
                        (Some(r), Some((bs, _))) => {
                            let (packed, r1) = pack(&ev, &us, ls)?;
                            let bplans = sign_plans_scaled(sign, &r.component_scales(BOOT_GAIN))?;
                            let mut outs = Vec::with_capacity(packed.len());
                            for u in &packed {
                                let mut bootf = |c: &Ciphertext| {
                                    bstats.bootstrap(&ctx, &sk, &ev, bs, c, boot_total, progress)
                                };
                                outs.push(relu_bootstrapped(&ev, &bplans, r, u, &mut bootf)?);
                            }
                            let (un, r2) =
                                unpack(&ev, &outs, ls, gin.c, &grid(gin, w0), batch.len(), block)?;
                            rot += r1 + r2;
                            un.into_iter().map(Some).collect()
                        }
                        _ => us
                            .par_iter()
                            .map(|u| relu_scaled(&ev, &plans, u, 1.0).map(Some))
                            .collect::<Result<_, CkksError>>()?,
                    }
                }
                GOp::Subsample => {
                    let m = grid_mask(n.geo, w0, block, batch.len(), slots);
                    xs.par_iter()
                        .map(|x| x.as_ref().map(|x| ev.mul_vec(x, &m)).transpose())
                        .collect::<Result<_, CkksError>>()?
                }
                GOp::ChannelPad { before } => {
                    let mut y: Chans = vec![None; *before];
                    y.extend(xs.iter().cloned());
                    y.resize(n.geo.c, None);
                    y
                }
                GOp::Add => {
                    let lout = plan.schedule.layers[i].level_out;
                    let mut ops: Vec<Chans> = Vec::with_capacity(2);
                    for &v in &n.inputs {
                        let a = vals[v].as_ref().ok_or_else(|| {
                            unsupported(&n.node, "Add", "input value not computed")
                        })?;
                        let kv = plan.kappa[v];
                        ops.push(
                            a.par_iter()
                                .map(|c| {
                                    c.as_ref()
                                        .map(|c| {
                                            let c = if same_kappa(kv, kout) {
                                                c.clone()
                                            } else {
                                                ev.mul_const(c, kout / kv)?
                                            };
                                            ev.adjust_to(&c, lout)
                                        })
                                        .transpose()
                                })
                                .collect::<Result<_, CkksError>>()?,
                        );
                    }
                    let (a, b) = (&ops[0], &ops[1]);
                    a.par_iter()
                        .zip(b.par_iter())
                        .map(|(p, q)| match (p, q) {
                            (Some(p), Some(q)) => ev.add(p, q).map(Some),
                            (Some(p), None) | (None, Some(p)) => Ok(Some(p.clone())),
                            (None, None) => Ok(None),
                        })
                        .collect::<Result<_, CkksError>>()?
                }
                GOp::Dense { w, b, out } => {
                    let xs = present(xs, &n.node, "Gemm")?;
                    let dense = Dense {
                        w,
                        b,
                        out: *out,
                        kappa: kin,
                        offset: 0.0,
                        spacing: plan.spacing,
                    };
                    let (z, r) = dense.apply(&ev, &xs, gin, w0, block, batch.len())?;
                    rot += r;
                    n_out = *out;
                    logits = Some(z.clone());
                    vec![Some(z)]
                }
            };
            let lout = level_of(&out);
            let want = plan.schedule.layers[i].level_out;
            if lout != want {
                return Err(CkksError::LevelModel {
                    op: i,
                    got: lout,
                    expected: want,
                }
                .into());
            }
            vals[i + 1] = Some(out);
            for &v in &n.inputs {
                if last_use[v] == i {
                    vals[v] = None;
                }
            }
            let tm = &mut timings[i];
            tm.level_in = level_in;
            tm.level_out = lout;
            tm.rotations += rot;
            tm.seconds += tl.elapsed().as_secs_f64();
            progress(&format!(
                "{} ({}): level {level_in} → {lout}, {:.1} s",
                n.node,
                n.op_name(),
                tl.elapsed().as_secs_f64()
            ));
        }
        eval_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let z = logits.ok_or_else(|| unsupported("output", "-", "no logits produced"))?;
        let z = ev.mod_drop(&z, 0)?;
        let v = ctx.decrypt_decode(&sk, &z)?;
        for b in 0..batch.len() {
            decrypted.push(
                (0..n_out)
                    .map(|o| v[b * block + o * plan.spacing])
                    .collect(),
            );
        }
        decrypt_s += t.elapsed().as_secs_f64();
    }
    let ranges_used = g
        .nodes
        .iter()
        .filter_map(|n| match n.op {
            GOp::Relu { id } => {
                Some((n.node.clone(), ranges.get(&id).copied().unwrap_or(f64::NAN)))
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
        levels_needed: plan.levels_needed,
        level_plan: plan.level_plan.clone(),
        packing: Packing {
            block,
            images_per_ciphertext: per_ct,
            row: w0,
            logit_spacing: plan.spacing,
            rotation_steps: steps,
        },
        outputs: (&decrypted, &exact, &approx),
        labels,
        indices,
        certified_bound,
        boot: boot.as_ref(),
        bstats: &bstats,
        schedule: &plan.schedule,
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
