//! The network IR: a topologically ordered list of typed nodes over per-sample tensors.
//!
//! Every value has a per-sample [`Shape`] (the batch dimension N of ONNX is implicit and never
//! stored). Weights are kept in f32 exactly as in the model file; the engine converts them to
//! its working precision. Axes stored in ops are per-sample axes (ONNX axis − 1).

use super::data::Preprocess;

/// Index of a value (tensor) in [`Network::values`].
pub type ValueId = usize;
/// Index of a node in [`Network::nodes`].
pub type NodeId = usize;

/// A per-sample shape, e.g. `[3, 32, 32]` for a CIFAR image or `[10]` for logits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    /// Number of elements (product of the dimensions; 1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    /// `[C, H, W]` when the shape has rank 3.
    pub fn chw(&self) -> Option<(usize, usize, usize)> {
        match self.0.as_slice() {
            [c, h, w] => Some((*c, *h, *w)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A dense f32 constant in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions.
    pub dims: Vec<usize>,
    /// Values, `dims.iter().product()` of them.
    pub data: Vec<f32>,
}

/// A named value with its per-sample shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    /// The ONNX tensor name.
    pub name: String,
    /// Per-sample shape.
    pub shape: Shape,
}

/// 2-D convolution (ONNX `Conv`), weight `[C_out, C_in/groups, kH, kW]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    /// Kernel `[C_out, C_in/groups, kH, kW]`.
    pub weight: Tensor,
    /// Optional bias of length C_out.
    pub bias: Option<Vec<f32>>,
    /// Strides (H, W).
    pub strides: [usize; 2],
    /// Zero padding (top, left, bottom, right).
    pub pads: [usize; 4],
    /// Dilations (H, W).
    pub dilations: [usize; 2],
    /// Number of groups.
    pub groups: usize,
}

/// Inference-mode batch normalisation: y = γ(x − μ)/√(σ² + ε) + β per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    /// γ (scale).
    pub gamma: Vec<f32>,
    /// β (bias).
    pub beta: Vec<f32>,
    /// μ (running mean).
    pub mean: Vec<f32>,
    /// σ² (running variance).
    pub var: Vec<f32>,
    /// ε.
    pub eps: f32,
}

/// A 2-D pooling window (MaxPool / AveragePool).
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Kernel (kH, kW).
    pub kernel: [usize; 2],
    /// Strides (H, W).
    pub strides: [usize; 2],
    /// Padding (top, left, bottom, right); padded cells are ignored by MaxPool.
    pub pads: [usize; 4],
}

/// A fully connected layer y = W·x + b with `weight` `[out, in]` (Gemm is normalised to this
/// form: transposition, α and β folded in).
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: Tensor,
    /// Optional bias of length `out`.
    pub bias: Option<Vec<f32>>,
}

/// Strided slice of every per-sample axis: element `start + k·step` for k < the output size.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    /// First index per axis.
    pub starts: Vec<usize>,
    /// Step per axis (≥ 1).
    pub steps: Vec<usize>,
}

/// Constant padding of every per-sample axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Pad {
    /// Elements added before, per axis.
    pub begin: Vec<usize>,
    /// Elements added after, per axis.
    pub end: Vec<usize>,
    /// The fill value.
    pub value: f32,
}

/// The supported operators.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Op {
    /// Convolution.
    Conv(Conv),
    /// Batch normalisation (inference mode).
    BatchNorm(BatchNorm),
    /// ReLU(x) = max(x, 0); replaced by r̃_α in approximate evaluation.
    Relu,
    /// min(max(x, min), max) (e.g. ReLU6).
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// Max pooling; replaced by M̃_{α,k²} (Eq. 7) in approximate evaluation.
    MaxPool(Pool),
    /// Average pooling.
    AvgPool {
        /// The window.
        pool: Pool,
        /// Whether padded cells count in the divisor.
        count_include_pad: bool,
    },
    /// Mean over H and W, output `[C, 1, 1]`.
    GlobalAvgPool,
    /// Elementwise sum of two values (residual connection), or of a value and a constant
    /// already broadcast to the value's shape (ONNX `Sub` of a constant, x − c, is imported as
    /// x + (−c): the same correctly rounded value).
    Add {
        /// `Some` when the second operand is a constant.
        constant: Option<Tensor>,
    },
    /// Elementwise product x·c with a constant already broadcast to the value's shape (ONNX
    /// `Mul` with one constant operand).
    Mul {
        /// The factor c, broadcast.
        constant: Tensor,
    },
    /// Elementwise quotient x / c by a constant already broadcast to the value's shape (ONNX
    /// `Div` with a constant divisor; no entry of c is zero). Kept as a division, not a
    /// product with 1/c, so that the result is the correctly rounded x / c of ONNX.
    Div {
        /// The divisor c, broadcast.
        constant: Tensor,
    },
    /// ONNX Gemm, normalised.
    Gemm(Linear),
    /// ONNX MatMul with a constant right-hand side, normalised (no bias).
    MatMul(Linear),
    /// Flatten to `[numel]`.
    Flatten,
    /// Reshape (the output shape is the node's output value shape).
    Reshape,
    /// Strided slice.
    Slice(Slice),
    /// Constant padding.
    Pad(Pad),
    /// Concatenation along a per-sample axis.
    Concat {
        /// Per-sample axis.
        axis: usize,
    },
    /// Softmax along a per-sample axis.
    Softmax {
        /// Per-sample axis.
        axis: usize,
    },
    /// Copy.
    Identity,
}

impl Op {
    /// The ONNX op type this node came from.
    pub fn op_type(&self) -> &'static str {
        match self {
            Op::Conv(_) => "Conv",
            Op::BatchNorm(_) => "BatchNormalization",
            Op::Relu => "Relu",
            Op::Clip { .. } => "Clip",
            Op::MaxPool(_) => "MaxPool",
            Op::AvgPool { .. } => "AveragePool",
            Op::GlobalAvgPool => "GlobalAveragePool",
            Op::Add { .. } => "Add",
            Op::Mul { .. } => "Mul",
            Op::Div { .. } => "Div",
            Op::Gemm(_) => "Gemm",
            Op::MatMul(_) => "MatMul",
            Op::Flatten => "Flatten",
            Op::Reshape => "Reshape",
            Op::Slice(_) => "Slice",
            Op::Pad(_) => "Pad",
            Op::Concat { .. } => "Concat",
            Op::Softmax { .. } => "Softmax",
            Op::Identity => "Identity",
        }
    }

    /// Whether approximate evaluation replaces this node by a polynomial (ReLU, max-pool).
    pub fn is_nonpolynomial_activation(&self) -> bool {
        matches!(self, Op::Relu | Op::MaxPool(_))
    }
}

/// One operator application.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The ONNX node name (or `#index` when the model left it empty).
    pub name: String,
    /// The operator with its parameters.
    pub op: Op,
    /// Input values (activations only; constants are folded into `op`).
    pub inputs: Vec<ValueId>,
    /// The output value.
    pub output: ValueId,
}

/// A feed-forward network: values, nodes in topological order, one input, one output.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// Graph name.
    pub name: String,
    /// All values; `values[input]` is the graph input.
    pub values: Vec<ValueInfo>,
    /// Nodes in topological order (each node's inputs are computed before it).
    pub nodes: Vec<Node>,
    /// The graph input value.
    pub input: ValueId,
    /// The graph output value.
    pub output: ValueId,
    /// Input preprocessing from the model metadata (identity when absent).
    pub preprocess: Preprocess,
    /// `metadata_props` of the model, in file order.
    pub metadata: Vec<(String, String)>,
}

impl Network {
    /// Per-sample input shape.
    pub fn input_shape(&self) -> &Shape {
        // `input` is created by the importer as a valid index; fall back defensively.
        self.values
            .get(self.input)
            .map_or(&EMPTY_SHAPE, |v| &v.shape)
    }

    /// Per-sample output shape.
    pub fn output_shape(&self) -> &Shape {
        self.values
            .get(self.output)
            .map_or(&EMPTY_SHAPE, |v| &v.shape)
    }

    /// Shape of a value.
    pub fn shape(&self, v: ValueId) -> &Shape {
        self.values.get(v).map_or(&EMPTY_SHAPE, |v| &v.shape)
    }

    /// Nodes replaced by polynomials in approximate evaluation (ReLU and MaxPool), in graph
    /// order. Clip nodes are left out: they are approximated only where a policy gives ranges
    /// for their ReLUs (see [`Network::approx_sites`]).
    pub fn activation_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.op.is_nonpolynomial_activation())
            .map(|(i, _)| i)
            .collect()
    }

    /// The polynomial replacements of F^α in graph order: one per ReLU and MaxPool node, and
    /// for each Clip(min, max) node one ReLU per finite bound, since
    /// Clip(x) = min + ReLU(x − min) − ReLU(x − max) (ReLU6(x) = ReLU(x) − ReLU(x − 6)), each
    /// ReLU replaced by r̃_α with its own range B (see `SignKernel::clip_in_place_stats`).
    pub fn approx_sites(&self) -> Vec<ApproxSite> {
        let mut out = Vec::new();
        for (node, n) in self.nodes.iter().enumerate() {
            match &n.op {
                Op::Relu | Op::MaxPool(_) => out.push(ApproxSite {
                    key: node,
                    node,
                    part: SitePart::Whole,
                }),
                Op::Clip { min, max } => {
                    if min.is_finite() {
                        out.push(ApproxSite {
                            key: node,
                            node,
                            part: SitePart::ClipLower(*min),
                        });
                    }
                    if max.is_finite() {
                        out.push(ApproxSite {
                            key: clip_upper_key(node),
                            node,
                            part: SitePart::ClipUpper(*max),
                        });
                    }
                }
                _ => {}
            }
        }
        out
    }
}

/// The key of the second ReLU of a Clip node, ReLU(x − max), in range and statistics maps
/// (`ActivationPolicy::Approx::ranges`, `RunStats`): `usize::MAX − node`, which no node index
/// reaches. The node's own index keys its first ReLU, ReLU(x − min) (or its only one).
#[must_use]
pub const fn clip_upper_key(node: NodeId) -> NodeId {
    usize::MAX - node
}

/// Which part of a node a polynomial replaces (see [`Network::approx_sites`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SitePart {
    /// The whole node: r̃_α for a ReLU, M̃_{α,n} (Eq. 7) for a MaxPool.
    Whole,
    /// ReLU(x − min) of a Clip with this finite `min`.
    ClipLower(f32),
    /// ReLU(x − max) of a Clip with this finite `max`.
    ClipUpper(f32),
}

/// One polynomial replacement in F^α.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApproxSite {
    /// Key of its range B and statistics: the node index, or [`clip_upper_key`] for the
    /// second ReLU of a Clip.
    pub key: NodeId,
    /// The node.
    pub node: NodeId,
    /// What it replaces.
    pub part: SitePart,
}

impl ApproxSite {
    /// The op label of reports: `Relu`, `MaxPool`, `Clip: ReLU(x − 0)`, `Clip: ReLU(x − 6)`.
    pub fn label(&self, net: &Network) -> String {
        let op = net.nodes.get(self.node).map_or("?", |n| n.op.op_type());
        match self.part {
            SitePart::Whole => op.to_string(),
            SitePart::ClipLower(a) | SitePart::ClipUpper(a) => format!("{op}: ReLU(x − {a})"),
        }
    }
}

static EMPTY_SHAPE: Shape = Shape(Vec::new());
