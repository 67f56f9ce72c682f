//! The layer chain the encrypted executor runs (compiled from the network IR) and the slot
//! geometry of the packing (see `infer`'s module docs).

use crate::nn::{Network, NodeId, Op};

use super::CkksError;

#[derive(Debug, Clone)]
pub(crate) enum Layer {
    Conv {
        node: String,
        /// [co][ci][ky][kx]
        w: Vec<f64>,
        b: Vec<f64>,
        cin: usize,
        cout: usize,
        k: usize,
    },
    Relu {
        node: String,
        id: NodeId,
    },
    AvgPool {
        node: String,
    },
    MaxPool {
        node: String,
        id: NodeId,
    },
    Dense {
        node: String,
        /// [out][in]
        w: Vec<f64>,
        b: Vec<f64>,
        out: usize,
    },
}

impl Layer {
    pub(crate) fn name(&self) -> (&str, &'static str) {
        match self {
            Layer::Conv { node, .. } => (node, "Conv"),
            Layer::Relu { node, .. } => (node, "Relu"),
            Layer::AvgPool { node } => (node, "AveragePool"),
            Layer::MaxPool { node, .. } => (node, "MaxPool"),
            Layer::Dense { node, .. } => (node, "Gemm"),
        }
    }
}

pub(crate) fn unsupported(node: &str, op: &str, reason: &str) -> CkksError {
    CkksError::Unsupported {
        node: node.into(),
        op: op.into(),
        reason: reason.into(),
    }
}

/// Turn the network into the chain the executor supports.
/// The compiled chain and the input shape (C, H, W).
pub(crate) type Compiled = (Vec<Layer>, (usize, usize, usize));

pub(crate) fn compile(net: &Network) -> Result<Compiled, CkksError> {
    let (c0, h0, w0) = net
        .input_shape()
        .chw()
        .ok_or_else(|| unsupported("input", "-", "input must have shape [C, H, W]"))?;
    let mut layers = Vec::new();
    let mut cur = net.input;
    for (id, n) in net.nodes.iter().enumerate() {
        let op = n.op.op_type();
        if n.inputs.first() != Some(&cur) || n.inputs.len() != 1 {
            return Err(unsupported(
                &n.name,
                op,
                "the executor runs a chain: each node must read only the previous node's output",
            ));
        }
        cur = n.output;
        match &n.op {
            Op::Conv(c) => {
                let d = &c.weight.dims;
                let (co, ci, kh, kw) = match d.as_slice() {
                    [a, b, c, e] => (*a, *b, *c, *e),
                    _ => return Err(unsupported(&n.name, op, "weight must be 4-D")),
                };
                if c.strides != [1, 1]
                    || c.pads != [0; 4]
                    || c.dilations != [1, 1]
                    || c.groups != 1
                    || kh != kw
                {
                    return Err(unsupported(&n.name, op, "only valid (unpadded) square convolutions with stride 1, dilation 1, one group"));
                }
                layers.push(Layer::Conv {
                    node: n.name.clone(),
                    w: c.weight.data.iter().map(|&x| f64::from(x)).collect(),
                    b: c.bias.as_ref().map_or_else(
                        || vec![0.0; co],
                        |b| b.iter().map(|&x| f64::from(x)).collect(),
                    ),
                    cin: ci,
                    cout: co,
                    k: kh,
                });
            }
            Op::Relu => layers.push(Layer::Relu {
                node: n.name.clone(),
                id,
            }),
            Op::AvgPool { pool, .. } => {
                if pool.kernel != [2, 2] || pool.strides != [2, 2] || pool.pads != [0; 4] {
                    return Err(unsupported(
                        &n.name,
                        op,
                        "only 2×2 average pooling with stride 2, no padding",
                    ));
                }
                layers.push(Layer::AvgPool {
                    node: n.name.clone(),
                });
            }
            Op::Flatten | Op::Reshape | Op::Identity => {}
            Op::Gemm(l) | Op::MatMul(l) => {
                let (out, _) = match l.weight.dims.as_slice() {
                    [a, b] => (*a, *b),
                    _ => return Err(unsupported(&n.name, op, "weight must be 2-D")),
                };
                layers.push(Layer::Dense {
                    node: n.name.clone(),
                    w: l.weight.data.iter().map(|&x| f64::from(x)).collect(),
                    b: l.bias.as_ref().map_or_else(
                        || vec![0.0; out],
                        |b| b.iter().map(|&x| f64::from(x)).collect(),
                    ),
                    out,
                });
            }
            Op::MaxPool(pool) => {
                if pool.kernel != [2, 2] || pool.strides != [2, 2] || pool.pads != [0; 4] {
                    return Err(unsupported(
                        &n.name,
                        op,
                        "only 2×2 max pooling with stride 2, no padding",
                    ));
                }
                if !matches!(layers.last(), Some(Layer::Relu { .. })) {
                    return Err(unsupported(&n.name, op, "max pooling must follow a ReLU (its 1/B' and +1/2 are folded into the ReLU)"));
                }
                layers.push(Layer::MaxPool {
                    node: n.name.clone(),
                    id,
                });
            }
            _ => {
                return Err(unsupported(
                    &n.name,
                    op,
                    "operator not supported by the encrypted executor",
                ))
            }
        }
    }
    if cur != net.output {
        return Err(unsupported(
            "output",
            "-",
            "the chain does not end at the graph output",
        ));
    }
    match layers.last() {
        Some(Layer::Dense { .. }) => {}
        _ => {
            return Err(unsupported(
                "output",
                "-",
                "the network must end with a Gemm",
            ))
        }
    }
    if layers
        .iter()
        .filter(|l| matches!(l, Layer::Dense { .. }))
        .count()
        != 1
    {
        return Err(unsupported(
            "Gemm",
            "Gemm",
            "exactly one dense layer (the last) is supported",
        ));
    }
    Ok((layers, (c0, h0, w0)))
}

/// Levels each layer consumes for a ReLU of depth `relu_depth`.
pub(crate) fn layer_levels(l: &Layer, relu_depth: usize) -> usize {
    match l {
        Layer::Conv { .. } => 2,
        Layer::Relu { .. } => relu_depth,
        Layer::AvgPool { .. } => 0,
        Layer::MaxPool { .. } => 2 * relu_depth,
        Layer::Dense { .. } => 1,
    }
}

/// Geometry of a feature map.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geo {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub st: usize,
}

/// The grid positions of a (h, w, st) map relative to the block start.
pub(crate) fn grid(g: Geo, row: usize) -> Vec<usize> {
    let mut v = Vec::new();
    for y in 0..g.h {
        for x in 0..g.w {
            v.push(g.st * (y * row + x));
        }
    }
    v
}

/// Smallest spacing d with (G + j·d) ∩ G = ∅ for 0 < |j| < n and (n−1)·d + max G < block.
pub(crate) fn logit_spacing(g: &[usize], n: usize, block: usize) -> Option<usize> {
    let set: std::collections::HashSet<usize> = g.iter().copied().collect();
    let maxg = g.iter().copied().max().unwrap_or(0);
    (1..block).find(|&d| {
        (n - 1) * d + maxg < block && (1..n).all(|j| g.iter().all(|&p| !set.contains(&(p + j * d))))
    })
}
