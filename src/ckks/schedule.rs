//! The level schedule of an encrypted run with bootstrapping: where each bootstrap goes,
//! planned from the levels alone before any key is generated.
//!
//! # The model
//! A ciphertext fresh from encryption sits at the top level L; a bootstrap returns it at the
//! bootstrapper's output level O (`Bootstrapper::output_level`). Costs in levels (as in
//! `infer`'s module docs): convolution 2, r̃_α = u·(1 + p_α(u)) with p_α = p_k ∘ … ∘ p_1 the
//! depths d_1 … d_k of the components' plans plus 1 for the product, average pooling 0, dense 1,
//! and 1 for unpacking channels that shared a ciphertext (below).
//!
//! # The ReLU ([`plan_relu`])
//! Walking the components with the current level ℓ (starting at u's level ℓ_u):
//! - if ℓ_u < d_1, u itself is bootstrapped first (ℓ_u = ℓ = O);
//! - before component i, if ℓ < d_i, the value p_{i−1}(…) is bootstrapped (ℓ = O): the composite
//!   sign is split there; a component deeper than O cannot be evaluated at all (error);
//! - before the product, if ℓ < 1, p_α(u) is bootstrapped;
//! - the output is at min(ℓ, ℓ_u) − 1 (u is kept, at its level, for the product).
//!
//! This greedy walk bootstraps as late as possible, so it uses the fewest bootstraps for a
//! fixed order of operations (every bootstrap restores the same O).
//!
//! # The EvalMod input range
//! Bootstrapping recovers m from sin(2π·m/q_0), with relative bias (2π·m/q_0)²/6 on every
//! coefficient m of the message; the values fed here are p_i outputs in [−(1 + τ_i), 1 + τ_i]
//! (up to 2 at α = 14) or u ∈ [−1, 1], whose constant coefficient is their slot mean. Each
//! value is divided by [`BOOT_GAIN`] before the bootstrap (folded into the preceding
//! component's coefficients, or one constant multiplication of u, a level the modulus drop to
//! level 0 pays anyway) and multiplied back inside SlotToCoeff (a constant of its first
//! stage): the bias shrinks by BOOT_GAIN², the bootstrap's own additive error grows by
//! BOOT_GAIN.
//!
//! # Channels sharing a ciphertext ([`pack_offsets`])
//! One ciphertext per channel puts 20 images in 20 of 32 blocks; after a convolution the
//! valid grid of a channel covers only a part of each block. Channels are moved by rotations
//! onto disjoint shifted copies of the grid (offsets from [`pack_offsets`]) and added: no
//! level (the convolution already masked everything off its grid to 0). The ReLU then runs on
//! ⌈C / copies⌉ ciphertexts; afterwards each channel is cut out by a 0/1 mask (1 level) and
//! rotated back.
//!
//! # Block groups ([`block_groups`], [`group_packing`])
//! A batch of B images fills the blocks 0 … B − 1 of a ciphertext; the slots of the blocks
//! B … slots/block − 1 hold (noise-)zero after every node (the convolutions' masks, the
//! subsampling's mask and the unpacking's mask cover the B blocks only; the input is encrypted
//! with zeros there; a residual Add sums two such values). So the slots split into
//! m = ⌊slots / (B·block)⌋ block groups of B·block slots, and the bootstraps of a ReLU pack
//! k (in-block offsets) × g ≤ m (block groups) channels into one ciphertext: the k-channel
//! packs x_0 … x_{g−1} are combined by a Horner chain acc ← rot(acc, −B·block) + x_j (x_j moved
//! by j·B·block; g − 1 rotations, one key, no level), and unpacked by the chain
//! z_j = rot(z_{j−1}, B·block) (one key) before the existing mask of the grid copy in the B
//! blocks (still 1 level). The ReLU then runs on ⌈⌈C/k⌉ / m⌉ ciphertexts: for a batch of
//! 4 CIFAR images (m = 8) ResNet-20's stages need 2, 1 and 1 ciphertexts per ReLU instead of
//! 16, 8 and 4.

use serde::Serialize;

use super::layers::{grid, unsupported, Geo, Layer};
use super::CkksError;

/// The factor a value is divided by before a bootstrap and multiplied by after it (module
/// docs: the EvalMod input range). 16 balances the sine's cubic bias (∝ 1/gain²) against the
/// amplified bootstrap error (∝ gain) for values up to 2 whose slot mean is up to a third of
/// their range.
pub const BOOT_GAIN: f64 = 16.0;

/// Where the bootstraps of one ReLU go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReluSchedule {
    /// Level of u = x/B at the ReLU's input.
    pub level_in: usize,
    /// u is bootstrapped before p_1 (its level is below p_1's depth).
    pub boot_input: bool,
    /// Indices i ≥ 1 of the components p_{i+1} preceded by a bootstrap (0-based: a bootstrap
    /// between component i − 1 and component i).
    pub boot_before: Vec<usize>,
    /// p_α(u) is bootstrapped before the product u·(1 + p_α(u)).
    pub boot_product: bool,
    /// Level of p_i's output, per component.
    pub component_levels: Vec<usize>,
    /// Level of the output r̃_α (before any unpacking).
    pub level_out: usize,
}

impl ReluSchedule {
    /// Bootstraps per ciphertext.
    pub fn bootstraps(&self) -> usize {
        usize::from(self.boot_input) + self.boot_before.len() + usize::from(self.boot_product)
    }

    /// The factor of each component's polynomial: 1/`gain` where a bootstrap follows it
    /// ([`ReluSchedule::boot_after`]), else 1 (for `polyeval::sign_plans_scaled`).
    pub fn component_scales(&self, gain: f64) -> Vec<f64> {
        (0..self.component_levels.len())
            .map(|i| if self.boot_after(i) { 1.0 / gain } else { 1.0 })
            .collect()
    }

    /// Whether a bootstrap follows component i (its output is divided by [`BOOT_GAIN`]).
    pub fn boot_after(&self, i: usize) -> bool {
        self.boot_before.contains(&(i + 1))
            || (self.boot_product && i + 1 == self.component_levels.len())
    }
}

/// Plan one ReLU whose input u is at `level_in` (module docs), the components' depths
/// `depths`, bootstraps restoring level `boot_out` (None: no bootstrapping).
///
/// # Errors
/// [`CkksError::NotEnoughLevels`] when a component is deeper than `boot_out`, when the levels
/// do not suffice and there is no bootstrapping, or when u must be bootstrapped from level 0
/// (no level left to scale it into the EvalMod range).
pub fn plan_relu(
    level_in: usize,
    depths: &[usize],
    boot_out: Option<usize>,
) -> Result<ReluSchedule, CkksError> {
    plan_relu_with(level_in, depths, boot_out, false)
}

/// [`plan_relu`], with u bootstrapped first whenever `force_input` (with bootstrapping): the
/// output then leaves at O − 1 instead of below u's level, worth a bootstrap when u is low
/// (`graph::plan_graph`).
///
/// # Errors
/// As [`plan_relu`].
pub(crate) fn plan_relu_with(
    level_in: usize,
    depths: &[usize],
    boot_out: Option<usize>,
    force_input: bool,
) -> Result<ReluSchedule, CkksError> {
    let total: usize = depths.iter().sum::<usize>() + 1;
    let short = |what: String, needed: usize, available: usize| CkksError::NotEnoughLevels {
        what,
        needed,
        available,
    };
    let Some(o) = boot_out else {
        if level_in < total {
            return Err(short("r̃_α without bootstrapping".into(), total, level_in));
        }
        let mut l = level_in;
        let component_levels = depths
            .iter()
            .map(|d| {
                l -= d;
                l
            })
            .collect();
        return Ok(ReluSchedule {
            level_in,
            boot_input: false,
            boot_before: Vec::new(),
            boot_product: false,
            component_levels,
            level_out: level_in - total,
        });
    };
    if let Some((i, &d)) = depths.iter().enumerate().find(|(_, &d)| d > o) {
        return Err(short(
            format!("component {} of p_α between two bootstraps", i + 1),
            d,
            o,
        ));
    }
    if o < 1 {
        return Err(short(
            "the product u·(1 + p_α(u)) after a bootstrap".into(),
            1,
            o,
        ));
    }
    let mut lu = level_in;
    let mut l = level_in;
    let mut boot_input = false;
    if force_input || depths.first().is_some_and(|&d| l < d) {
        if level_in < 1 {
            return Err(short(
                "scaling u into the EvalMod range before its bootstrap".into(),
                1,
                level_in,
            ));
        }
        boot_input = true;
        lu = o;
        l = o;
    }
    let mut boot_before = Vec::new();
    let mut component_levels = Vec::with_capacity(depths.len());
    for (i, &d) in depths.iter().enumerate() {
        if l < d {
            boot_before.push(i);
            l = o;
        }
        l -= d;
        component_levels.push(l);
    }
    let boot_product = l < 1;
    if boot_product {
        l = o;
    }
    Ok(ReluSchedule {
        level_in,
        boot_input,
        boot_before,
        boot_product,
        component_levels,
        level_out: l.min(lu) - 1,
    })
}

/// Offsets o (increasing, the first 0) such that the copies grid + o are pairwise disjoint
/// and inside [0, block): greedy, each offset the smallest that fits.
pub fn pack_offsets(grid: &[usize], block: usize) -> Vec<usize> {
    let Some(&span) = grid.iter().max() else {
        return vec![0];
    };
    let mut used = vec![false; block];
    let mut out = Vec::new();
    for o in 0..block.saturating_sub(span) {
        if grid
            .iter()
            .all(|&p| !used.get(p + o).copied().unwrap_or(true))
        {
            for &p in grid {
                if let Some(u) = used.get_mut(p + o) {
                    *u = true;
                }
            }
            out.push(o);
        }
    }
    out
}

/// The block groups m = ⌊`slots` / (`images`·`block`)⌋ of a batch of `images` images in
/// blocks of `block` slots (module docs; at least 1).
pub fn block_groups(slots: usize, block: usize, images: usize) -> usize {
    (slots / (images.max(1) * block.max(1))).max(1)
}

/// The packing of `channels` channels with `k` channels per block and at most `m` block
/// groups (module docs): (g, ciphertexts), the ⌈channels/k⌉ k-channel packs spread evenly
/// over ⌈⌈channels/k⌉ / m⌉ ciphertexts of g ≤ m block groups each (the last may hold fewer).
pub fn group_packing(channels: usize, k: usize, m: usize) -> (usize, usize) {
    let packs = channels.div_ceil(k.max(1));
    let cts = packs.div_ceil(m.max(1));
    (packs.div_ceil(cts.max(1)).max(1), cts)
}

/// One layer in the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerSchedule {
    /// Node name.
    pub node: String,
    /// Op type.
    pub op: String,
    /// Level of the input.
    pub level_in: usize,
    /// Level of the output.
    pub level_out: usize,
    /// Ciphertexts the layer works on per batch (channels, or packed ciphertexts).
    pub ciphertexts: usize,
    /// For a ReLU: its bootstraps.
    pub relu: Option<ReluSchedule>,
    /// For a ReLU with bootstraps: the slot offsets of the channels sharing a ciphertext
    /// inside an image block (k = offsets.len() channels per block).
    pub pack_offsets: Vec<usize>,
    /// For a ReLU with bootstraps: the block groups a packed ciphertext holds (module docs:
    /// block groups; 1 when none are used). Channel c is in ciphertext c / (k·g), block group
    /// j = (c mod k·g) / k, at offset offsets[c mod k].
    pub block_groups: usize,
    /// Slots between two block groups (B·block, B the images of a batch; 0 without groups).
    pub group_stride: usize,
    /// Bootstraps per batch in this layer.
    pub bootstraps: usize,
}

/// The schedule of a run: levels per layer and the bootstraps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// The top level L (fresh ciphertexts).
    pub top: usize,
    /// The level bootstraps restore (None: no bootstrapping).
    pub boot_output_level: Option<usize>,
    /// Per layer.
    pub layers: Vec<LayerSchedule>,
    /// Bootstraps per batch.
    pub bootstraps: usize,
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "level schedule: top level {}, bootstraps restore level {}; {} bootstraps per batch",
            self.top,
            self.boot_output_level
                .map_or_else(|| "– (none)".to_string(), |o| o.to_string()),
            self.bootstraps
        )?;
        for l in &self.layers {
            write!(
                f,
                "  {:<12} {:<12} level {:>2} → {:>2}, {:>2} ciphertexts",
                l.node, l.op, l.level_in, l.level_out, l.ciphertexts
            )?;
            if let Some(r) = &l.relu {
                if r.bootstraps() > 0 {
                    write!(
                        f,
                        "; components end at levels {:?}; bootstrap{}{}{} ({} per ciphertext, {} in all); {} channels per ciphertext ({} per block × {} block group{})",
                        r.component_levels,
                        if r.boot_input { " u," } else { "" },
                        r.boot_before
                            .iter()
                            .map(|i| format!(" before p_{},", i + 1))
                            .collect::<String>(),
                        if r.boot_product { " p_α(u) before the product" } else { "" },
                        r.bootstraps(),
                        l.bootstraps,
                        l.pack_offsets.len() * l.block_groups.max(1),
                        l.pack_offsets.len(),
                        l.block_groups.max(1),
                        if l.block_groups > 1 { "s" } else { "" }
                    )?;
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Plan the levels of `layers` (input geometry of each layer in `geos`, row width `w0`, image
/// block `block`) from the top level `top`, the components' depths `depths` and the
/// bootstraps' output level `boot_out` (module docs).
///
/// # Errors
/// [`CkksError::NotEnoughLevels`] naming the layer that does not fit (convolutions, max
/// pooling and the dense layer are never preceded by a bootstrap: their input must be high
/// enough); [`CkksError::Unsupported`] for a ReLU needing a bootstrap that does not follow a
/// convolution (its off-grid slots are not known to be 0).
pub(crate) fn plan_schedule(
    layers: &[Layer],
    geos: &[Geo],
    w0: usize,
    block: usize,
    depths: &[usize],
    top: usize,
    boot_out: Option<usize>,
) -> Result<Schedule, CkksError> {
    let relu_depth = depths.iter().sum::<usize>() + 1;
    let mut l = top;
    let mut out = Vec::with_capacity(layers.len());
    let mut total = 0;
    for (i, layer) in layers.iter().enumerate() {
        let (node, op) = layer.name();
        let g = geos
            .get(i)
            .copied()
            .ok_or_else(|| unsupported(node, op, "no geometry"))?;
        let need = |n: usize, l: usize| {
            if l < n {
                Err(CkksError::NotEnoughLevels {
                    what: format!("{op} node {node:?} (its input is never bootstrapped)"),
                    needed: n,
                    available: l,
                })
            } else {
                Ok(l - n)
            }
        };
        let mut relu = None;
        let mut offsets = Vec::new();
        let mut cts = g.c;
        let mut boots = 0;
        let lin = l;
        match layer {
            Layer::Conv { .. } => l = need(2, l)?,
            Layer::AvgPool { .. } => {}
            Layer::MaxPool { .. } => l = need(2 * relu_depth, l)?,
            Layer::Dense { .. } => l = need(1, l)?,
            Layer::Relu { .. } => {
                let r = plan_relu(l, depths, boot_out)?;
                l = r.level_out;
                if r.bootstraps() > 0 {
                    if !matches!(
                        i.checked_sub(1).and_then(|j| layers.get(j)),
                        Some(Layer::Conv { .. })
                    ) {
                        return Err(unsupported(
                            node,
                            op,
                            "a ReLU that needs bootstrapping must follow a convolution",
                        ));
                    }
                    offsets = pack_offsets(&grid(g, w0), block);
                    cts = g.c.div_ceil(offsets.len().max(1));
                    boots = cts * r.bootstraps();
                    l = need(1, l)?;
                }
                relu = Some(r);
            }
        }
        total += boots;
        out.push(LayerSchedule {
            node: node.to_string(),
            op: op.to_string(),
            level_in: lin,
            level_out: l,
            ciphertexts: cts,
            relu,
            pack_offsets: offsets,
            block_groups: 1,
            group_stride: 0,
            bootstraps: boots,
        });
    }
    Ok(Schedule {
        top,
        boot_output_level: boot_out,
        layers: out,
        bootstraps: total,
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    /// α = 14 (degrees 15, 27, 29: depths 4, 5, 5) at the MNIST run's second ReLU: u at level
    /// 5, bootstraps restore level 5 (N = 2^16, Δ_0 = 2^57, four special primes).
    #[test]
    fn relu_split_alpha14_from_level_5() {
        let r = plan_relu(5, &[4, 5, 5], Some(5)).unwrap();
        assert!(!r.boot_input);
        assert_eq!(r.boot_before, vec![1, 2]);
        assert!(r.boot_product);
        assert_eq!(r.component_levels, vec![1, 0, 0]);
        assert_eq!(r.level_out, 4);
        assert_eq!(r.bootstraps(), 3);
        assert!(!r.boot_after(0) || r.boot_before.contains(&1));
        assert!(r.boot_after(0) && r.boot_after(1) && r.boot_after(2));
        assert_eq!(r.component_scales(16.0), vec![0.0625; 3]);
    }

    #[test]
    fn relu_without_bootstraps_when_levels_suffice() {
        let r = plan_relu(22, &[4, 5, 5], Some(5)).unwrap();
        assert_eq!(r.bootstraps(), 0);
        assert_eq!(r.component_levels, vec![18, 13, 8]);
        assert_eq!(r.level_out, 7);
        assert!(!r.boot_after(2));
        // Same without a bootstrapper; one level short is an error naming the need.
        assert_eq!(plan_relu(22, &[4, 5, 5], None).unwrap(), r);
        let e = plan_relu(14, &[4, 5, 5], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            CkksError::NotEnoughLevels {
                what: "r̃_α without bootstrapping".into(),
                needed: 15,
                available: 14
            }
            .to_string()
        );
    }

    #[test]
    fn relu_bootstraps_u_when_below_the_first_depth() {
        // u at level 3 < d_1 = 4: u is bootstrapped, then the walk restarts at O = 6.
        let r = plan_relu(3, &[4, 5], Some(6)).unwrap();
        assert!(r.boot_input);
        assert_eq!(r.boot_before, vec![1]);
        assert_eq!(r.component_levels, vec![2, 1]);
        assert!(!r.boot_product);
        assert_eq!(r.level_out, 0);
        // From level 0, u cannot be scaled into the EvalMod range.
        assert!(plan_relu(0, &[4, 5], Some(6)).is_err());
        // A component deeper than the restored level cannot run.
        let e = plan_relu(10, &[4, 7], Some(6)).unwrap_err();
        assert!(e.to_string().contains("component 2"), "{e}");
    }

    /// Property over many inputs: no level ever goes below 0, every bootstrap is needed (the
    /// level before it is below the next step's depth), and the levels follow the depths.
    #[test]
    fn relu_levels_never_negative_and_bootstraps_are_needed() {
        let comps: [&[usize]; 4] = [&[4, 4, 5], &[4, 5, 5], &[3, 3, 3, 3, 4], &[5]];
        for depths in comps {
            for o in 5..9 {
                for lin in 1..30 {
                    let r = plan_relu(lin, depths, Some(o)).unwrap();
                    let mut l = if r.boot_input { o } else { lin };
                    for (i, &d) in depths.iter().enumerate() {
                        if r.boot_before.contains(&i) {
                            assert!(l < d, "needless bootstrap before p_{}", i + 1);
                            l = o;
                        }
                        assert!(l >= d);
                        l -= d;
                        assert_eq!(r.component_levels[i], l);
                    }
                    if r.boot_product {
                        assert_eq!(l, 0);
                        l = o;
                    }
                    let lu = if r.boot_input { o } else { lin };
                    assert_eq!(r.level_out + 1, l.min(lu));
                }
            }
        }
    }

    #[test]
    fn pack_offsets_are_disjoint_copies_inside_the_block() {
        // The MNIST run's second ReLU: an 8×8 grid of stride 2 on rows of 28, blocks of 1024.
        let g: Vec<usize> = (0..8)
            .flat_map(|y| (0..8).map(move |x| 2 * (y * 28 + x)))
            .collect();
        let offs = pack_offsets(&g, 1024);
        // Independent computation (the same greedy rule in a few lines of Python): 12 copies,
        // so the 16 channels of the MNIST run share 2 ciphertexts.
        assert_eq!(
            offs,
            vec![0, 1, 16, 17, 32, 33, 440, 441, 456, 457, 472, 473]
        );
        let mut seen = std::collections::BTreeSet::new();
        for o in &offs {
            for p in &g {
                assert!(p + o < 1024);
                assert!(seen.insert(p + o), "overlap at {}", p + o);
            }
        }
        // A grid filling more than half of the block has a single copy.
        let dense: Vec<usize> = (0..600).collect();
        assert_eq!(pack_offsets(&dense, 1024), vec![0]);
    }
}
