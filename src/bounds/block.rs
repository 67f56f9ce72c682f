//! The paper's blocks (§4): a network is decomposed into linear blocks (convolution with
//! batch normalisation folded, average pooling, fully connected layers and the shape ops
//! between them), ReLU, max-pooling, softmax, and residual blocks
//! y = ReLU(S(x) + G(x)) (a non-basic block) whose shortcut S is the identity, the option-A
//! subsample-and-pad (Slice with steps 2, 2 then channel Pad) or a 1×1 convolution.

use serde::{Deserialize, Serialize};

use super::BoundsError;
use crate::nn::{Network, NodeId, Op, ValueId};

/// The shortcut S of a residual block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shortcut {
    /// S(x) = x.
    Identity,
    /// Option A (He et al. 2016): subsample by a strided Slice, zero-pad the channels.
    OptionA,
    /// A 1×1 convolution (with batch normalisation folded).
    Conv1x1,
    /// Another chain of linear ops.
    Linear,
}

/// One block of the decomposition (paper §4), holding node indices of the network.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Block {
    /// An affine map x ↦ A·x + b: a chain of Conv, BatchNorm (folded into a preceding
    /// Conv), AveragePool, GlobalAveragePool, Gemm/MatMul, Add of a constant, and the shape
    /// ops Flatten, Reshape, Identity, Slice, Pad.
    Linear {
        /// The nodes, in order.
        nodes: Vec<NodeId>,
    },
    /// ReLU, replaced by r̃_α(x) = B·r_α(x/B).
    Relu {
        /// The node.
        node: NodeId,
    },
    /// Max pooling, replaced by M̃_{α,n} (Eq. 7).
    MaxPool {
        /// The node.
        node: NodeId,
        /// Window size n = kH·kW.
        window: usize,
    },
    /// Softmax (exact in F^α, ½-Lipschitz in the ∞-norm).
    Softmax {
        /// The node.
        node: NodeId,
    },
    /// Clip (exact, 1-Lipschitz). Not produced by the decomposition: F^α approximates Clip by
    /// two r̃_α, whose error this block does not model (a Clip node is an error).
    Clip {
        /// The node.
        node: NodeId,
    },
    /// y = ReLU(S(x) + G(x)) (or S(x) + G(x) when no ReLU follows the Add).
    Residual {
        /// Kind of S.
        shortcut: Shortcut,
        /// Blocks of S (empty for the identity).
        s: Vec<Block>,
        /// Blocks of G.
        g: Vec<Block>,
        /// The Add node.
        add: NodeId,
        /// The ReLU after the Add.
        relu: Option<NodeId>,
    },
}

fn is_linear(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv(_)
            | Op::BatchNorm(_)
            | Op::AvgPool { .. }
            | Op::GlobalAvgPool
            | Op::Gemm(_)
            | Op::MatMul(_)
            | Op::Add { constant: Some(_) }
            | Op::Flatten
            | Op::Reshape
            | Op::Identity
            | Op::Slice(_)
            | Op::Pad(_)
    )
}

fn is_join(op: &Op) -> bool {
    matches!(op, Op::Add { constant: None })
}

struct Walker<'a> {
    net: &'a Network,
    consumers: Vec<Vec<NodeId>>,
}

/// [`BoundsError::Unsupported`] naming node `id` of `net` (its name, or `#id`) and its op.
pub(super) fn node_unsupported(
    net: &Network,
    id: NodeId,
    reason: impl Into<String>,
) -> BoundsError {
    let n = net.nodes.get(id);
    BoundsError::Unsupported {
        node: n
            .map(|n| n.name.clone())
            .unwrap_or_else(|| format!("#{id}")),
        op: n.map(|n| n.op.op_type().to_string()).unwrap_or_default(),
        reason: reason.into(),
    }
}

impl Walker<'_> {
    fn node_err(&self, id: NodeId, reason: impl Into<String>) -> BoundsError {
        node_unsupported(self.net, id, reason)
    }

    fn cons(&self, v: ValueId) -> &[NodeId] {
        self.consumers.get(v).map(Vec::as_slice).unwrap_or(&[])
    }

    fn op(&self, id: NodeId) -> Option<&Op> {
        self.net.nodes.get(id).map(|n| &n.op)
    }

    fn output(&self, id: NodeId) -> ValueId {
        self.net.nodes.get(id).map_or(usize::MAX, |n| n.output)
    }

    /// Follow a residual branch from `first` to the joining Add; returns the branch's nodes
    /// (without the Add) and the Add. A branch that is directly the Add is empty.
    fn branch(&self, first: NodeId) -> Result<(Vec<NodeId>, NodeId), BoundsError> {
        let mut path = Vec::new();
        let mut n = first;
        loop {
            if self.op(n).is_some_and(is_join) {
                return Ok((path, n));
            }
            path.push(n);
            match self.cons(self.output(n)) {
                [next] => n = *next,
                _ => {
                    return Err(self.node_err(
                        n,
                        "a residual branch must be a chain ending at an Add (nested forks are not supported)",
                    ))
                }
            }
        }
    }

    /// Decompose the chain that starts with `first` (reading `v`) and ends when `stop` is
    /// produced.
    fn walk(
        &self,
        mut v: ValueId,
        mut first: Option<NodeId>,
        stop: ValueId,
    ) -> Result<Vec<Block>, BoundsError> {
        let mut blocks = Vec::new();
        while v != stop {
            let cons: Vec<NodeId> = match first.take() {
                Some(f) => vec![f],
                None => self.cons(v).to_vec(),
            };
            match cons.as_slice() {
                [] => {
                    return Err(BoundsError::Unsupported {
                        node: self
                            .net
                            .values
                            .get(v)
                            .map(|x| x.name.clone())
                            .unwrap_or_default(),
                        op: "value".into(),
                        reason: "no node reads this value before the output is reached".into(),
                    })
                }
                [n] => {
                    let n = *n;
                    let op = self.op(n).ok_or_else(|| self.node_err(n, "missing node"))?;
                    if is_linear(op) {
                        let mut nodes = vec![n];
                        let mut w = self.output(n);
                        while w != stop {
                            match self.cons(w) {
                                [m] if self.op(*m).is_some_and(is_linear) => {
                                    nodes.push(*m);
                                    w = self.output(*m);
                                }
                                _ => break,
                            }
                        }
                        blocks.push(Block::Linear { nodes });
                        v = w;
                        continue;
                    }
                    blocks.push(match op {
                        Op::Relu => Block::Relu { node: n },
                        Op::MaxPool(p) => Block::MaxPool {
                            node: n,
                            window: p.kernel[0] * p.kernel[1],
                        },
                        Op::Softmax { .. } => Block::Softmax { node: n },
                        Op::Clip { .. } => {
                            return Err(self.node_err(n, "Clip is approximated in F^α by min + r̃_α(x − min) − r̃_α(x − max) (two approximate ReLUs, nn::SignKernel::clip_in_place_stats); the block bound does not model that error yet"))
                        }
                        Op::Add { constant: None } => {
                            return Err(self.node_err(n, "an Add of two values outside a residual block (its operands must fork from one value)"))
                        }
                        other => {
                            return Err(self.node_err(
                                n,
                                format!("{} is not a linear, ReLU, max-pool, softmax or residual block", other.op_type()),
                            ))
                        }
                    });
                    v = self.output(n);
                }
                [a, b] => {
                    let (pa, add_a) = self.branch(*a)?;
                    let (pb, add_b) = self.branch(*b)?;
                    if add_a != add_b {
                        return Err(
                            self.node_err(*a, "the two branches of a fork must meet at one Add")
                        );
                    }
                    let add = add_a;
                    // S is the shorter branch.
                    let (ps, pg) = if pa.len() <= pb.len() {
                        (pa, pb)
                    } else {
                        (pb, pa)
                    };
                    let ops: Vec<&Op> = ps.iter().filter_map(|&i| self.op(i)).collect();
                    let shortcut = match ops.as_slice() {
                        [] => Shortcut::Identity,
                        [Op::Slice(_), Op::Pad(_)] => Shortcut::OptionA,
                        [Op::Conv(c)] | [Op::Conv(c), Op::BatchNorm(_)]
                            if c.weight.dims.get(2..4) == Some(&[1, 1]) =>
                        {
                            Shortcut::Conv1x1
                        }
                        _ => Shortcut::Linear,
                    };
                    let s_end = ps.last().map_or(v, |&i| self.output(i));
                    let s = match ps.first() {
                        Some(&f) => self.walk(v, Some(f), s_end)?,
                        None => Vec::new(),
                    };
                    if s.iter().any(|bl| !matches!(bl, Block::Linear { .. })) {
                        return Err(
                            self.node_err(add, "the shortcut S of a residual block must be linear")
                        );
                    }
                    let g_first = pg.first().copied().ok_or_else(|| {
                        self.node_err(add, "both operands of the Add are the same value")
                    })?;
                    let g_end = pg.last().map_or(v, |&i| self.output(i));
                    let g = self.walk(v, Some(g_first), g_end)?;
                    let mut out = self.output(add);
                    let relu = match self.cons(out) {
                        [r] if out != stop && self.op(*r) == Some(&Op::Relu) => {
                            out = self.output(*r);
                            Some(*r)
                        }
                        _ => None,
                    };
                    blocks.push(Block::Residual {
                        shortcut,
                        s,
                        g,
                        add,
                        relu,
                    });
                    v = out;
                }
                [n, ..] => {
                    return Err(self.node_err(*n, "a value read by more than two nodes"));
                }
            }
        }
        Ok(blocks)
    }
}

/// Decompose a network into the paper's blocks (§4), in order from input to output.
///
/// # Errors
/// [`BoundsError::Unsupported`] naming the node where the graph leaves the supported shapes
/// (an op outside the block kinds, a fork that is not a residual block, nested forks,
/// Concat).
pub fn decompose(net: &Network) -> Result<Vec<Block>, BoundsError> {
    let mut consumers = vec![Vec::new(); net.values.len()];
    for (i, n) in net.nodes.iter().enumerate() {
        for &v in &n.inputs {
            if let Some(c) = consumers.get_mut(v) {
                if !c.contains(&i) {
                    c.push(i);
                }
            }
        }
    }
    let w = Walker { net, consumers };
    w.walk(net.input, None, net.output)
}

impl Block {
    /// Short kind name: `linear`, `relu`, `maxpool`, `softmax`, `clip`, `residual`.
    pub fn kind(&self) -> &'static str {
        match self {
            Block::Linear { .. } => "linear",
            Block::Relu { .. } => "relu",
            Block::MaxPool { .. } => "maxpool",
            Block::Softmax { .. } => "softmax",
            Block::Clip { .. } => "clip",
            Block::Residual { .. } => "residual",
        }
    }

    /// Every node of the block, in order.
    pub fn nodes(&self) -> Vec<NodeId> {
        match self {
            Block::Linear { nodes } => nodes.clone(),
            Block::Relu { node }
            | Block::MaxPool { node, .. }
            | Block::Softmax { node }
            | Block::Clip { node } => vec![*node],
            Block::Residual {
                s, g, add, relu, ..
            } => {
                let mut v: Vec<NodeId> = s.iter().chain(g).flat_map(Block::nodes).collect();
                v.push(*add);
                v.extend(relu);
                v
            }
        }
    }
}
