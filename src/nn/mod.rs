//! Networks: the IR, ONNX import, dataset readers and the plaintext engine (exact or with the
//! polynomial activations of paper §3).
//!
//! - [`Network`] is a topologically ordered graph of typed [`Node`]s ([`Op`]) with per-sample
//!   shapes (the batch dimension N is implicit). Later stages (error bounds, the CKKS
//!   executor) walk it: conv weights, batch-norm parameters and residual `Add`s are explicit.
//! - [`import_onnx`] / [`import_onnx_bytes`] read the CNN subset of ONNX (opset ≥ 11) with a
//!   hand-written protobuf schema ([`proto`]); an unsupported op or attribute is an error that
//!   names the node.
//! - [`Dataset`] reads the CIFAR-10 binary layout, MNIST IDX files and the ImageNet 224×224
//!   records with 2-byte labels ([`DataFormat`], detected by a rule that never guesses).
//! - [`Engine`] runs a network in f32 or f64 (direct convolution by a 16-channel × 6-pixel
//!   FMA tile kernel without im2col, batch norms folded into the convolutions, the ReLU after
//!   a convolution — exact or r̃_α — run on each tile in its output pass; `matrixmultiply`
//!   for f64 fully connected layers, an unpacked 16-lane product for f32 ones (a final one
//!   once per batch share in `run_batch`); depthwise and 1×1 convolutions by the kernels of
//!   `direct` (f32 depthwise on blocks of 8 channels, `dwblock`; f32 1×1 on blocks of 12
//!   channels × 32 pixels where the CPU has AVX-512F), convolutions with ≤ 32 taps (the
//!   ImageNet stem) as one im2col product on the 1×1 kernel (`im2col`), with the exact ReLU /
//!   Clip fused into their stores (`pointwise`) and output buffers reused across nodes and images;
//!   rayon across images) with an [`ActivationPolicy`]: exact, or the approximate ReLU
//!   r̃_α(x) = B·r_α(x/B) (§3, "Approximation range"), the approximate max-pooling
//!   M̃_{α,n} of Eq. (7) built from the tree of m_α of Eq. (6), and the approximate
//!   Clip(a, b) = a + r̃_α(x − a) − r̃_α(x − b) (ReLU6, two r̃_α with their own B; see
//!   [`Network::approx_sites`]).
//! - [`evaluate`] produces the measurements of Table 2: top-1 accuracy per α, the measured
//!   ‖F^α(x) − F(x)‖∞ (max and mean over the inputs) and per-layer counts of activation inputs
//!   outside [−B, B] (never clamped).
//!
//! Symbols: `alpha` = α, `b` = B, `b_prime` = B′ of Eq. (7).
//!
//! This module does not construct the sign polynomials (see `remez`, `approx`) and does not
//! certify anything: every figure produced here is **measured**.

mod activation;
mod data;
mod direct;
mod dwblock;
mod engine;
mod error;
mod eval;
mod gemm;
mod im2col;
mod import;
mod ir;
pub(crate) mod ops;
mod pointwise;
pub mod proto;
mod table2;

pub use activation::{ActivationPolicy, ClipRelu, RangePolicy, SignKernel};
pub use data::{DataFormat, Dataset, Preprocess};
pub(crate) use engine::bn_affine;
pub use engine::{Engine, Real, RunStats};
pub use error::NnError;
pub use eval::{calibrate, evaluate, AlphaResult, Calibration, EvalConfig, EvalReport, LayerRange};
pub use import::{import_onnx, import_onnx_bytes};
pub use ir::{
    clip_upper_key, ApproxSite, BatchNorm, Conv, Linear, Network, Node, NodeId, Op, Pad, Pool,
    Shape, SitePart, Slice, Tensor, ValueId, ValueInfo,
};
pub use table2::{table2, Precision, Table2Spec};
