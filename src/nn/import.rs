//! ONNX → [`Network`]: decode with the [`proto`](super::proto) schema, fold constants into the
//! ops, normalise axes to per-sample axes, and infer every value's shape from the input shape.

use std::collections::BTreeMap;
use std::path::Path;

use prost::Message;

use super::data::Preprocess;
use super::ir::{
    BatchNorm, Conv, Linear, Network, Node, Op, Pad, Pool, Shape, Slice, Tensor, ValueId, ValueInfo,
};
use super::proto::{attribute_type, data_type, AttributeProto, ModelProto, NodeProto, TensorProto};
use super::NnError;

/// Read and import an ONNX file.
///
/// # Errors
/// [`NnError::Io`] when unreadable; see [`import_onnx_bytes`].
pub fn import_onnx(path: &Path) -> Result<Network, NnError> {
    let bytes = std::fs::read(path).map_err(|source| NnError::Io {
        path: path.into(),
        source,
    })?;
    import_onnx_bytes(&bytes, &path.display().to_string())
}

/// Import ONNX model bytes (`origin` names the source in error messages).
///
/// # Errors
/// [`NnError::Decode`] for corrupt or truncated protobuf, [`NnError::Unsupported`] for an op,
/// attribute or data type outside the supported subset (naming the node),
/// [`NnError::BadModel`] for missing tensors or inconsistent shapes, [`NnError::Preprocess`]
/// for bad preprocessing metadata.
pub fn import_onnx_bytes(bytes: &[u8], origin: &str) -> Result<Network, NnError> {
    let model = ModelProto::decode(bytes).map_err(|e| NnError::Decode {
        origin: origin.into(),
        reason: e.to_string(),
    })?;
    let opset = model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .unwrap_or(0);
    if opset < 7 {
        return Err(NnError::BadModel {
            node: "model".into(),
            reason: format!(
                "{origin}: default-domain opset {opset}; supported opsets are 7 and later \
                 (tested with 11–13)"
            ),
        });
    }
    let graph = model.graph.as_ref().ok_or_else(|| NnError::BadModel {
        node: "model".into(),
        reason: format!("{origin}: model has no graph"),
    })?;
    let metadata: Vec<(String, String)> = model
        .metadata_props
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();

    let mut b = Builder {
        opset,
        values: Vec::new(),
        names: BTreeMap::new(),
        consts: BTreeMap::new(),
        nodes: Vec::new(),
    };
    for t in &graph.initializer {
        let c = Const::from_proto(t, &format!("initializer {:?}", t.name))?;
        b.consts.insert(t.name.clone(), c);
    }
    // The one activation input: the graph input that is not an initialiser.
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !b.consts.contains_key(&i.name))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(NnError::BadModel {
            node: "graph input".into(),
            reason: format!(
                "expected exactly one non-constant graph input, found {}",
                inputs.len()
            ),
        });
    };
    let shape = input_shape(input)?;
    let input_id = b.add_value(&input.name, Shape(shape));

    for (idx, n) in graph.node.iter().enumerate() {
        b.node(idx, n)?;
    }
    let [out] = graph.output.as_slice() else {
        return Err(NnError::BadModel {
            node: "graph output".into(),
            reason: format!(
                "expected exactly one graph output, found {}",
                graph.output.len()
            ),
        });
    };
    let output = *b.names.get(&out.name).ok_or_else(|| NnError::BadModel {
        node: "graph output".into(),
        reason: format!("output {:?} is not produced by any node", out.name),
    })?;

    let get = |k: &str| {
        metadata
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let preprocess = match (get("input_scale"), get("input_mean"), get("input_std")) {
        (None, None, None) => Preprocess::default(),
        (s, m, d) => Preprocess::parse(s.unwrap_or("1"), m.unwrap_or("0"), d.unwrap_or("1"))?,
    };
    let net = Network {
        name: graph.name.clone(),
        values: b.values,
        nodes: b.nodes,
        input: input_id,
        output,
        preprocess,
        metadata,
    };
    if let Some((c, _, _)) = net.input_shape().chw() {
        net.preprocess.check_channels(c)?;
    }
    Ok(net)
}

/// Largest number of elements per sample of any value (input or inferred): 2^26 (256 MiB of
/// f32). A hostile file may declare shapes far beyond its data; shapes are refused here,
/// before anything (a broadcast constant, an activation buffer) is allocated from them.
pub const MAX_VALUE_ELEMS: usize = 1 << 26;

/// The element count of `dims` when it is at most [`MAX_VALUE_ELEMS`].
fn checked_numel(dims: &[usize]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|n| *n <= MAX_VALUE_ELEMS)
}

fn input_shape(input: &super::proto::ValueInfoProto) -> Result<Vec<usize>, NnError> {
    let bad = |reason: String| NnError::BadModel {
        node: format!("graph input {:?}", input.name),
        reason,
    };
    let tt = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| bad("has no tensor type".into()))?;
    if tt.elem_type != data_type::FLOAT {
        return Err(bad(format!(
            "element type {} (supported: 1 = float32)",
            tt.elem_type
        )));
    }
    let dims = tt
        .shape
        .as_ref()
        .map(|s| s.dim.as_slice())
        .unwrap_or_default();
    if dims.len() < 2 {
        return Err(bad(format!(
            "rank {} (expected [N, …] with at least one per-sample dimension)",
            dims.len()
        )));
    }
    let mut out = Vec::new();
    for (i, d) in dims.iter().enumerate().skip(1) {
        match d.dim_value {
            Some(v) if v > 0 => out.push(usize::try_from(v).unwrap_or(0)),
            _ => {
                return Err(bad(format!(
                    "dimension {i} is {:?}; only the batch dimension (0) may be symbolic",
                    d.dim_param.as_deref().unwrap_or("unset")
                )))
            }
        }
    }
    if checked_numel(&out).is_none() {
        return Err(bad(format!(
            "per-sample shape {out:?} has more than {MAX_VALUE_ELEMS} elements"
        )));
    }
    Ok(out)
}

/// The first 4 bytes of a `chunks_exact(4)` chunk (zeros if shorter, which cannot happen).
fn arr4(c: &[u8]) -> [u8; 4] {
    c.try_into().unwrap_or([0; 4])
}

/// The first 8 bytes of a `chunks_exact(8)` chunk.
fn arr8(c: &[u8]) -> [u8; 8] {
    c.try_into().unwrap_or([0; 8])
}

/// A constant tensor (initialiser or `Constant` node output).
#[derive(Debug, Clone)]
struct Const {
    dims: Vec<usize>,
    f: Vec<f32>,
    i: Vec<i64>,
}

impl Const {
    fn from_proto(t: &TensorProto, what: &str) -> Result<Self, NnError> {
        let bad = |reason: String| NnError::BadModel {
            node: what.into(),
            reason,
        };
        if t.data_location == 1 {
            return Err(bad(
                "external data is not supported (store weights inline)".into()
            ));
        }
        let dims: Vec<usize> = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}"))))
            .collect::<Result<_, _>>()?;
        let n: usize = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| bad(format!("dims {dims:?}: element count overflows")))?;
        let raw = &t.raw_data;
        let width = match t.data_type {
            data_type::DOUBLE | data_type::INT64 => 8,
            _ => 4,
        };
        if !raw.len().is_multiple_of(width) {
            return Err(bad(format!(
                "raw_data has {} bytes, not a multiple of the element size {width}",
                raw.len()
            )));
        }
        let (f, i): (Vec<f32>, Vec<i64>) = match t.data_type {
            data_type::FLOAT => {
                let f = if raw.is_empty() {
                    t.float_data.clone()
                } else {
                    raw.chunks_exact(4)
                        .map(|c| f32::from_le_bytes(arr4(c)))
                        .collect()
                };
                (f, Vec::new())
            }
            data_type::DOUBLE => {
                let d: Vec<f64> = if raw.is_empty() {
                    t.double_data.clone()
                } else {
                    raw.chunks_exact(8)
                        .map(|c| f64::from_le_bytes(arr8(c)))
                        .collect()
                };
                #[expect(clippy::cast_possible_truncation, reason = "f64 weights used in f32")]
                let f = d.iter().map(|&v| v as f32).collect();
                (f, Vec::new())
            }
            data_type::INT64 => {
                let i: Vec<i64> = if raw.is_empty() {
                    t.int64_data.clone()
                } else {
                    raw.chunks_exact(8)
                        .map(|c| i64::from_le_bytes(arr8(c)))
                        .collect()
                };
                (Vec::new(), i)
            }
            data_type::INT32 => {
                let i: Vec<i64> = if raw.is_empty() {
                    t.int32_data.iter().map(|&v| i64::from(v)).collect()
                } else {
                    raw.chunks_exact(4)
                        .map(|c| i64::from(i32::from_le_bytes(arr4(c))))
                        .collect()
                };
                (Vec::new(), i)
            }
            other => {
                return Err(bad(format!(
                    "data type {other} (supported: 1 float32, 6 int32, 7 int64, 11 float64)"
                )))
            }
        };
        if let Some((k, v)) = f.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(bad(format!(
                "element {k} is {v}: not finite (NaN, ±inf, or a float64 beyond the float32 range)"
            )));
        }
        let len = f.len().max(i.len());
        if len != n || (f.is_empty() && i.is_empty() && n != 0) {
            return Err(bad(format!(
                "dims {dims:?} need {n} values, found {len} (truncated or inconsistent data)"
            )));
        }
        Ok(Self { dims, f, i })
    }

    fn is_int(&self) -> bool {
        !self.i.is_empty() || self.f.is_empty()
    }

    fn ints(&self) -> Vec<i64> {
        if self.is_int() {
            self.i.clone()
        } else {
            #[expect(clippy::cast_possible_truncation, reason = "integral float constants")]
            self.f.iter().map(|&v| v as i64).collect()
        }
    }

    fn floats(&self) -> Vec<f32> {
        if self.is_int() {
            #[expect(clippy::cast_precision_loss, reason = "small integer constants")]
            self.i.iter().map(|&v| v as f32).collect()
        } else {
            self.f.clone()
        }
    }

    fn tensor(&self) -> Tensor {
        Tensor {
            dims: self.dims.clone(),
            data: self.floats(),
        }
    }
}

struct Builder {
    opset: i64,
    values: Vec<ValueInfo>,
    names: BTreeMap<String, ValueId>,
    consts: BTreeMap<String, Const>,
    nodes: Vec<Node>,
}

/// Context for one node: name, op type, attributes; builds errors that name the node.
struct Ctx<'a> {
    name: String,
    n: &'a NodeProto,
}

impl Ctx<'_> {
    fn unsupported(&self, what: impl Into<String>) -> NnError {
        NnError::Unsupported {
            node: self.name.clone(),
            op_type: self.n.op_type.clone(),
            what: what.into(),
        }
    }
    fn bad(&self, reason: impl Into<String>) -> NnError {
        NnError::BadModel {
            node: self.name.clone(),
            reason: format!("{}: {}", self.n.op_type, reason.into()),
        }
    }
    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.n.attribute.iter().find(|a| a.name == name)
    }
    fn int(&self, name: &str, default: i64) -> Result<i64, NnError> {
        match self.attr(name) {
            None => Ok(default),
            Some(a) if a.r#type == attribute_type::INT || a.r#type == 0 => Ok(a.i),
            Some(a) => Err(self.bad(format!(
                "attribute {name} has type {}, expected INT",
                a.r#type
            ))),
        }
    }
    fn float(&self, name: &str, default: f32) -> Result<f32, NnError> {
        match self.attr(name) {
            None => Ok(default),
            Some(a) if a.r#type == attribute_type::FLOAT || a.r#type == 0 => Ok(a.f),
            Some(a) => Err(self.bad(format!(
                "attribute {name} has type {}, expected FLOAT",
                a.r#type
            ))),
        }
    }
    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, NnError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) if a.r#type == attribute_type::INTS || a.r#type == 0 => {
                Ok(Some(a.ints.clone()))
            }
            Some(a) => Err(self.bad(format!(
                "attribute {name} has type {}, expected INTS",
                a.r#type
            ))),
        }
    }
    fn string(&self, name: &str) -> Result<Option<String>, NnError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) if a.r#type == attribute_type::STRING || a.r#type == 0 => {
                Ok(Some(String::from_utf8_lossy(&a.s).into_owned()))
            }
            Some(a) => Err(self.bad(format!(
                "attribute {name} has type {}, expected STRING",
                a.r#type
            ))),
        }
    }
    /// Reject attributes not in `known`.
    fn only_attrs(&self, known: &[&str]) -> Result<(), NnError> {
        for a in &self.n.attribute {
            if !known.contains(&a.name.as_str()) {
                return Err(self.unsupported(format!(
                    "attribute {:?} (supported: {})",
                    a.name,
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }
    fn input_name(&self, i: usize) -> Option<&str> {
        self.n
            .input
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

fn to_usize(ctx: &Ctx<'_>, what: &str, v: &[i64], min: i64) -> Result<Vec<usize>, NnError> {
    v.iter()
        .map(|&x| {
            if x < min {
                Err(ctx.unsupported(format!("{what} value {x} (must be ≥ {min})")))
            } else {
                usize::try_from(x).map_err(|_| ctx.bad(format!("{what} value {x} too large")))
            }
        })
        .collect()
}

fn pair(
    ctx: &Ctx<'_>,
    what: &str,
    v: Option<Vec<i64>>,
    default: usize,
) -> Result<[usize; 2], NnError> {
    match v {
        None => Ok([default, default]),
        Some(v) => match to_usize(ctx, what, &v, 1)?.as_slice() {
            [a, b] => Ok([*a, *b]),
            other => Err(ctx.unsupported(format!("{what} {other:?} (only 2-D, two values)"))),
        },
    }
}

fn pads4(ctx: &Ctx<'_>) -> Result<[usize; 4], NnError> {
    if let Some(a) = ctx.string("auto_pad")? {
        if a != "NOTSET" && a != "VALID" {
            return Err(ctx.unsupported(format!(
                "attribute auto_pad = {a:?} (supported: NOTSET, VALID)"
            )));
        }
    }
    match ctx.ints("pads")? {
        None => Ok([0; 4]),
        Some(v) => match to_usize(ctx, "pads", &v, 0)?.as_slice() {
            // ONNX order: (top, left, bottom, right) = (x1_begin, x2_begin, x1_end, x2_end).
            [t, l, b, r] => Ok([*t, *l, *b, *r]),
            other => Err(ctx.unsupported(format!("pads {other:?} (only 2-D, four values)"))),
        },
    }
}

/// Output size of a 2-D window op along one axis.
fn window_out(
    ctx: &Ctx<'_>,
    size: usize,
    k: usize,
    s: usize,
    d: usize,
    p0: usize,
    p1: usize,
) -> Result<usize, NnError> {
    let eff = d * (k - 1) + 1;
    let padded = size + p0 + p1;
    if eff > padded {
        return Err(ctx.bad(format!(
            "kernel extent {eff} exceeds padded input size {padded}"
        )));
    }
    Ok((padded - eff) / s + 1)
}

impl Builder {
    fn add_value(&mut self, name: &str, shape: Shape) -> ValueId {
        let id = self.values.len();
        self.values.push(ValueInfo {
            name: name.into(),
            shape,
        });
        self.names.insert(name.into(), id);
        id
    }

    fn value(&self, ctx: &Ctx<'_>, i: usize) -> Result<(ValueId, Shape), NnError> {
        let name = ctx
            .input_name(i)
            .ok_or_else(|| ctx.bad(format!("missing input {i}")))?;
        if self.consts.contains_key(name) {
            return Err(ctx.unsupported(format!(
                "constant tensor {name:?} as input {i} (an activation is expected here)"
            )));
        }
        let id = *self.names.get(name).ok_or_else(|| {
            ctx.bad(format!(
                "input {i} {name:?} is not defined before this node"
            ))
        })?;
        let shape = self
            .values
            .get(id)
            .map(|v| v.shape.clone())
            .unwrap_or(Shape(vec![]));
        Ok((id, shape))
    }

    fn constant(&self, ctx: &Ctx<'_>, i: usize) -> Result<Option<&Const>, NnError> {
        match ctx.input_name(i) {
            None => Ok(None),
            Some(name) => match self.consts.get(name) {
                Some(c) => Ok(Some(c)),
                None if self.names.contains_key(name) => Err(ctx.unsupported(format!(
                    "computed tensor {name:?} as input {i} (must be an initialiser or Constant)"
                ))),
                None => Err(ctx.bad(format!("input {i} {name:?} is not defined"))),
            },
        }
    }

    fn required_const(&self, ctx: &Ctx<'_>, i: usize, what: &str) -> Result<Const, NnError> {
        self.constant(ctx, i)?
            .cloned()
            .ok_or_else(|| ctx.bad(format!("missing input {i} ({what})")))
    }

    fn push(
        &mut self,
        ctx: &Ctx<'_>,
        op: Op,
        inputs: Vec<ValueId>,
        shape: Shape,
    ) -> Result<(), NnError> {
        let out = ctx
            .n
            .output
            .first()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ctx.bad("has no output"))?;
        for extra in ctx.n.output.iter().skip(1) {
            if !extra.is_empty() {
                return Err(ctx.unsupported(format!("second output {extra:?}")));
            }
        }
        if shape.0.contains(&0) {
            return Err(ctx.bad(format!("output shape {shape} has an empty dimension")));
        }
        if checked_numel(&shape.0).is_none() {
            return Err(ctx.bad(format!(
                "output shape {shape} has more than {MAX_VALUE_ELEMS} elements per sample"
            )));
        }
        let output = self.add_value(out, shape);
        self.nodes.push(Node {
            name: ctx.name.clone(),
            op,
            inputs,
            output,
        });
        Ok(())
    }

    /// Per-sample axis from an ONNX axis over a tensor of per-sample rank `rank`.
    fn axis(ctx: &Ctx<'_>, axis: i64, rank: usize) -> Result<usize, NnError> {
        let full = i64::try_from(rank + 1).unwrap_or(i64::MAX);
        let a = if axis < 0 { axis + full } else { axis };
        if a <= 0 || a >= full {
            return Err(ctx.unsupported(format!(
                "axis {axis} (must address a non-batch axis, 1..{full} or -{}..-1)",
                full - 1
            )));
        }
        usize::try_from(a - 1).map_err(|_| ctx.bad("axis"))
    }

    #[expect(clippy::too_many_lines, reason = "one arm per ONNX op")]
    fn node(&mut self, idx: usize, n: &NodeProto) -> Result<(), NnError> {
        let ctx = Ctx {
            name: if n.name.is_empty() {
                // Unnamed node: its index and first output name (e.g. `#9:layer1.0.r1`).
                format!("#{idx}:{}", n.output.first().map_or("", String::as_str))
            } else {
                n.name.clone()
            },
            n,
        };
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            return Err(ctx.unsupported(format!("operator domain {:?}", n.domain)));
        }
        match n.op_type.as_str() {
            "Constant" => {
                ctx.only_attrs(&["value"])?;
                let t = ctx
                    .attr("value")
                    .and_then(|a| a.t.as_ref())
                    .ok_or_else(|| ctx.unsupported("Constant without a tensor `value`"))?;
                let c = Const::from_proto(t, &ctx.name)?;
                let out = n.output.first().cloned().unwrap_or_default();
                self.consts.insert(out, c);
                Ok(())
            }
            "Conv" => {
                ctx.only_attrs(&[
                    "auto_pad",
                    "dilations",
                    "group",
                    "kernel_shape",
                    "pads",
                    "strides",
                ])?;
                let (x, s) = self.value(&ctx, 0)?;
                let w = self.required_const(&ctx, 1, "weight")?;
                let Some((c, h, wd)) = s.chw() else {
                    return Err(
                        ctx.unsupported(format!("input shape {s} (only [C, H, W] per sample)"))
                    );
                };
                let [co, ci_g, kh, kw] = w.dims.as_slice() else {
                    return Err(
                        ctx.unsupported(format!("weight dims {:?} (only 2-D kernels)", w.dims))
                    );
                };
                let groups = usize::try_from(ctx.int("group", 1)?)
                    .ok()
                    .filter(|&g| g >= 1)
                    .ok_or_else(|| ctx.bad("group must be ≥ 1"))?;
                if ci_g * groups != c || co % groups != 0 {
                    return Err(ctx.bad(format!(
                        "weight {:?} with group {groups} does not fit {c} input channels",
                        w.dims
                    )));
                }
                if let Some(k) = ctx.ints("kernel_shape")? {
                    if to_usize(&ctx, "kernel_shape", &k, 1)? != vec![*kh, *kw] {
                        return Err(ctx.bad(format!(
                            "kernel_shape {k:?} disagrees with weight {:?}",
                            w.dims
                        )));
                    }
                }
                let strides = pair(&ctx, "strides", ctx.ints("strides")?, 1)?;
                let dilations = pair(&ctx, "dilations", ctx.ints("dilations")?, 1)?;
                let pads = pads4(&ctx)?;
                let bias = match self.constant(&ctx, 2)? {
                    None => None,
                    Some(b) if b.dims.iter().product::<usize>() == *co => Some(b.floats()),
                    Some(b) => {
                        return Err(ctx.bad(format!("bias dims {:?}, expected [{co}]", b.dims)))
                    }
                };
                let ho = window_out(&ctx, h, *kh, strides[0], dilations[0], pads[0], pads[2])?;
                let wo = window_out(&ctx, wd, *kw, strides[1], dilations[1], pads[1], pads[3])?;
                let op = Op::Conv(Conv {
                    weight: w.tensor(),
                    bias,
                    strides,
                    pads,
                    dilations,
                    groups,
                });
                self.push(&ctx, op, vec![x], Shape(vec![*co, ho, wo]))
            }
            "BatchNormalization" => {
                ctx.only_attrs(&["epsilon", "momentum", "spatial", "training_mode"])?;
                if ctx.int("training_mode", 0)? != 0 {
                    return Err(ctx.unsupported("training_mode = 1 (inference only)"));
                }
                let (x, s) = self.value(&ctx, 0)?;
                let c = s.0.first().copied().unwrap_or(0);
                let mut p = Vec::new();
                for (i, what) in [(1, "scale"), (2, "B"), (3, "mean"), (4, "var")] {
                    let t = self.required_const(&ctx, i, what)?;
                    if t.dims.iter().product::<usize>() != c {
                        return Err(ctx.bad(format!("{what} dims {:?}, expected [{c}]", t.dims)));
                    }
                    p.push(t.floats());
                }
                let eps = ctx.float("epsilon", 1e-5)?;
                let mut it = p.into_iter();
                let (Some(gamma), Some(beta), Some(mean), Some(var)) =
                    (it.next(), it.next(), it.next(), it.next())
                else {
                    return Err(ctx.bad("parameters"));
                };
                if var.iter().any(|&v| {
                    (f64::from(v) + f64::from(eps)).partial_cmp(&0.0)
                        != Some(std::cmp::Ordering::Greater)
                }) {
                    return Err(ctx.bad("var + epsilon must be > 0 for every channel"));
                }
                self.push(
                    &ctx,
                    Op::BatchNorm(BatchNorm {
                        gamma,
                        beta,
                        mean,
                        var,
                        eps,
                    }),
                    vec![x],
                    s,
                )
            }
            "Relu" | "Identity" => {
                ctx.only_attrs(&[])?;
                let (x, s) = self.value(&ctx, 0)?;
                let op = if n.op_type == "Relu" {
                    Op::Relu
                } else {
                    Op::Identity
                };
                self.push(&ctx, op, vec![x], s)
            }
            "Clip" => {
                let (x, s) = self.value(&ctx, 0)?;
                let (min, max) = if self.opset >= 11 {
                    ctx.only_attrs(&[])?;
                    let get = |i: usize, d: f32| -> Result<f32, NnError> {
                        match self.constant(&ctx, i)? {
                            None => Ok(d),
                            Some(c) => c
                                .floats()
                                .first()
                                .copied()
                                .ok_or_else(|| ctx.bad("empty min/max")),
                        }
                    };
                    (get(1, f32::NEG_INFINITY)?, get(2, f32::INFINITY)?)
                } else {
                    ctx.only_attrs(&["min", "max"])?;
                    (
                        ctx.float("min", f32::NEG_INFINITY)?,
                        ctx.float("max", f32::INFINITY)?,
                    )
                };
                if min > max {
                    return Err(ctx.bad(format!("min {min} > max {max}")));
                }
                self.push(&ctx, Op::Clip { min, max }, vec![x], s)
            }
            "MaxPool" | "AveragePool" => {
                ctx.only_attrs(&[
                    "auto_pad",
                    "ceil_mode",
                    "count_include_pad",
                    "dilations",
                    "kernel_shape",
                    "pads",
                    "storage_order",
                    "strides",
                ])?;
                let (x, s) = self.value(&ctx, 0)?;
                let Some((c, h, w)) = s.chw() else {
                    return Err(
                        ctx.unsupported(format!("input shape {s} (only [C, H, W] per sample)"))
                    );
                };
                if ctx.int("ceil_mode", 0)? != 0 {
                    return Err(ctx.unsupported("attribute ceil_mode = 1 (supported: 0)"));
                }
                if pair(&ctx, "dilations", ctx.ints("dilations")?, 1)? != [1, 1] {
                    return Err(ctx.unsupported("dilations ≠ 1 in pooling"));
                }
                let kernel = pair(
                    &ctx,
                    "kernel_shape",
                    Some(
                        ctx.ints("kernel_shape")?
                            .ok_or_else(|| ctx.bad("missing kernel_shape"))?,
                    ),
                    1,
                )?;
                let strides = pair(&ctx, "strides", ctx.ints("strides")?, 1)?;
                let pads = pads4(&ctx)?;
                let ho = window_out(&ctx, h, kernel[0], strides[0], 1, pads[0], pads[2])?;
                let wo = window_out(&ctx, w, kernel[1], strides[1], 1, pads[1], pads[3])?;
                let pool = Pool {
                    kernel,
                    strides,
                    pads,
                };
                let op = if n.op_type == "MaxPool" {
                    Op::MaxPool(pool)
                } else {
                    Op::AvgPool {
                        pool,
                        count_include_pad: ctx.int("count_include_pad", 0)? != 0,
                    }
                };
                self.push(&ctx, op, vec![x], Shape(vec![c, ho, wo]))
            }
            "GlobalAveragePool" => {
                ctx.only_attrs(&[])?;
                let (x, s) = self.value(&ctx, 0)?;
                let Some((c, _, _)) = s.chw() else {
                    return Err(
                        ctx.unsupported(format!("input shape {s} (only [C, H, W] per sample)"))
                    );
                };
                self.push(&ctx, Op::GlobalAvgPool, vec![x], Shape(vec![c, 1, 1]))
            }
            "Add" => {
                ctx.only_attrs(&[])?;
                let names = (ctx.input_name(0), ctx.input_name(1));
                let (Some(a), Some(b)) = names else {
                    return Err(ctx.bad("needs two inputs"));
                };
                match (self.consts.contains_key(a), self.consts.contains_key(b)) {
                    (false, false) => {
                        let (x, sx) = self.value(&ctx, 0)?;
                        let (y, sy) = self.value(&ctx, 1)?;
                        if sx != sy {
                            return Err(ctx.unsupported(format!(
                                "broadcasting between activations of shapes {sx} and {sy} (must be equal)"
                            )));
                        }
                        self.push(&ctx, Op::Add { constant: None }, vec![x, y], sx)
                    }
                    (true, true) => Err(ctx.unsupported("Add of two constants")),
                    (ca, _) => {
                        let (vi, ci) = if ca { (1, 0) } else { (0, 1) };
                        let (x, s) = self.value(&ctx, vi)?;
                        let c = self.required_const(&ctx, ci, "addend")?;
                        let t = broadcast(&ctx, &c, &s)?;
                        self.push(&ctx, Op::Add { constant: Some(t) }, vec![x], s)
                    }
                }
            }
            "Sub" | "Mul" | "Div" => {
                ctx.only_attrs(&[])?;
                let (Some(a), Some(b)) = (ctx.input_name(0), ctx.input_name(1)) else {
                    return Err(ctx.bad("needs two inputs"));
                };
                let (ca, cb) = (self.consts.contains_key(a), self.consts.contains_key(b));
                let (vi, ci) = match (ca, cb) {
                    (false, true) => (0, 1),
                    (true, false) if n.op_type == "Mul" => (1, 0),
                    (true, false) => {
                        return Err(ctx.unsupported(format!(
                            "constant {a:?} as the first operand (supported: activation {} \
                             constant)",
                            if n.op_type == "Sub" { "−" } else { "÷" }
                        )))
                    }
                    (false, false) => {
                        return Err(ctx.unsupported(
                            "two activation operands (supported: one operand a constant)",
                        ))
                    }
                    (true, true) => {
                        return Err(ctx.unsupported(format!("{} of two constants", n.op_type)))
                    }
                };
                let (x, s) = self.value(&ctx, vi)?;
                let c = self.required_const(&ctx, ci, "constant operand")?;
                let mut t = broadcast(&ctx, &c, &s)?;
                let op = match n.op_type.as_str() {
                    "Sub" => {
                        // x − c = x + (−c) exactly (negation is exact, both round once).
                        for v in &mut t.data {
                            *v = -*v;
                        }
                        Op::Add { constant: Some(t) }
                    }
                    "Mul" => Op::Mul { constant: t },
                    _ => {
                        if let Some(z) = c.floats().iter().position(|&v| v == 0.0) {
                            return Err(ctx.bad(format!(
                                "divisor {:?} has a zero at flat index {z}",
                                ctx.input_name(ci).unwrap_or("")
                            )));
                        }
                        Op::Div { constant: t }
                    }
                };
                self.push(&ctx, op, vec![x], s)
            }
            "Gemm" => {
                ctx.only_attrs(&["alpha", "beta", "transA", "transB"])?;
                if ctx.int("transA", 0)? != 0 {
                    return Err(ctx.unsupported("attribute transA = 1 (supported: 0)"));
                }
                let (x, s) = self.value(&ctx, 0)?;
                let [k] = s.0.as_slice() else {
                    return Err(ctx.unsupported(format!(
                        "input shape {s} (Gemm needs [N, K]; add a Flatten)"
                    )));
                };
                let w = self.required_const(&ctx, 1, "B")?;
                let alpha = ctx.float("alpha", 1.0)?;
                let beta = ctx.float("beta", 1.0)?;
                let weight = linear_weight(&ctx, &w, *k, ctx.int("transB", 0)? != 0, alpha)?;
                let m = weight.dims.first().copied().unwrap_or(0);
                let bias = match self.constant(&ctx, 2)? {
                    None => None,
                    Some(c) => {
                        let numel: usize = c.dims.iter().product();
                        let lead_ok = c.dims.iter().rev().skip(1).all(|&d| d == 1);
                        let f = c.floats();
                        if numel == m && lead_ok {
                            Some(f.iter().map(|v| v * beta).collect())
                        } else if numel == 1 {
                            Some(vec![f.first().copied().unwrap_or(0.0) * beta; m])
                        } else {
                            return Err(ctx.unsupported(format!(
                                "bias C dims {:?} (supported: [{m}], [1, {m}] or scalar)",
                                c.dims
                            )));
                        }
                    }
                };
                self.push(
                    &ctx,
                    Op::Gemm(Linear { weight, bias }),
                    vec![x],
                    Shape(vec![m]),
                )
            }
            "MatMul" => {
                ctx.only_attrs(&[])?;
                let (x, s) = self.value(&ctx, 0)?;
                let [k] = s.0.as_slice() else {
                    return Err(ctx.unsupported(format!("input shape {s} (MatMul needs [N, K])")));
                };
                let w = self.required_const(&ctx, 1, "B")?;
                let weight = linear_weight(&ctx, &w, *k, false, 1.0)?;
                let m = weight.dims.first().copied().unwrap_or(0);
                self.push(
                    &ctx,
                    Op::MatMul(Linear { weight, bias: None }),
                    vec![x],
                    Shape(vec![m]),
                )
            }
            "Flatten" => {
                ctx.only_attrs(&["axis"])?;
                let (x, s) = self.value(&ctx, 0)?;
                let axis = ctx.int("axis", 1)?;
                let full = i64::try_from(s.0.len() + 1).unwrap_or(0);
                if axis != 1 && axis != 1 - full {
                    return Err(ctx.unsupported(format!("attribute axis = {axis} (supported: 1)")));
                }
                self.push(&ctx, Op::Flatten, vec![x], Shape(vec![s.numel()]))
            }
            "Reshape" => {
                ctx.only_attrs(&["allowzero"])?;
                if ctx.int("allowzero", 0)? != 0 {
                    return Err(ctx.unsupported("attribute allowzero = 1 (supported: 0)"));
                }
                let (x, s) = self.value(&ctx, 0)?;
                let target = self.required_const(&ctx, 1, "shape")?.ints();
                let shape = reshape_target(&ctx, &target, &s)?;
                self.push(&ctx, Op::Reshape, vec![x], shape)
            }
            "Slice" => {
                let (x, s) = self.value(&ctx, 0)?;
                let (starts, ends, axes, steps) = if self.opset >= 10 {
                    ctx.only_attrs(&[])?;
                    let starts = self.required_const(&ctx, 1, "starts")?.ints();
                    let ends = self.required_const(&ctx, 2, "ends")?.ints();
                    let axes = self.constant(&ctx, 3)?.map(Const::ints);
                    let steps = self.constant(&ctx, 4)?.map(Const::ints);
                    (starts, ends, axes, steps)
                } else {
                    ctx.only_attrs(&["starts", "ends", "axes"])?;
                    (
                        ctx.ints("starts")?.unwrap_or_default(),
                        ctx.ints("ends")?.unwrap_or_default(),
                        ctx.ints("axes")?,
                        None,
                    )
                };
                let rank = s.0.len();
                let full = i64::try_from(rank + 1).unwrap_or(0);
                let axes =
                    axes.unwrap_or_else(|| (0..i64::try_from(starts.len()).unwrap_or(0)).collect());
                let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
                if ends.len() != starts.len()
                    || axes.len() != starts.len()
                    || steps.len() != starts.len()
                {
                    return Err(ctx.bad("starts, ends, axes and steps must have equal lengths"));
                }
                let mut sl = Slice {
                    starts: vec![0; rank],
                    steps: vec![1; rank],
                };
                let mut out = s.0.clone();
                for (((&st, &en), &ax), &sp) in starts.iter().zip(&ends).zip(&axes).zip(&steps) {
                    let a = if ax < 0 { ax + full } else { ax };
                    if a == 0 {
                        if st == 0 && sp == 1 && en >= i64::from(i32::MAX) {
                            continue;
                        }
                        return Err(ctx.unsupported("slicing the batch axis"));
                    }
                    if sp < 1 {
                        return Err(ctx.unsupported(format!("step {sp} (supported: ≥ 1)")));
                    }
                    let a = Self::axis(&ctx, a, rank)?;
                    let dim = i64::try_from(s.0.get(a).copied().unwrap_or(0)).unwrap_or(0);
                    // ONNX semantics: negative indices count from the end; then clamp to [0, dim].
                    let norm = |v: i64| (if v < 0 { v + dim } else { v }).clamp(0, dim);
                    let (b, e) = (norm(st), norm(en));
                    let len = if e > b { (e - b + sp - 1) / sp } else { 0 };
                    if let (Some(o), Some(ss), Some(sst)) =
                        (out.get_mut(a), sl.starts.get_mut(a), sl.steps.get_mut(a))
                    {
                        *o = usize::try_from(len).unwrap_or(0);
                        *ss = usize::try_from(b).unwrap_or(0);
                        *sst = usize::try_from(sp).unwrap_or(1);
                    }
                }
                self.push(&ctx, Op::Slice(sl), vec![x], Shape(out))
            }
            "Pad" => {
                let (x, s) = self.value(&ctx, 0)?;
                if let Some(m) = ctx.string("mode")? {
                    if m != "constant" {
                        return Err(ctx
                            .unsupported(format!("attribute mode = {m:?} (supported: constant)")));
                    }
                }
                let (pads, value) = if self.opset >= 11 {
                    ctx.only_attrs(&["mode"])?;
                    if ctx.input_name(3).is_some() {
                        return Err(ctx.unsupported("input `axes` (pad every axis instead)"));
                    }
                    let pads = self.required_const(&ctx, 1, "pads")?.ints();
                    let v = match self.constant(&ctx, 2)? {
                        None => 0.0,
                        Some(c) => c.floats().first().copied().unwrap_or(0.0),
                    };
                    (pads, v)
                } else {
                    ctx.only_attrs(&["mode", "pads", "value"])?;
                    (
                        ctx.ints("pads")?.unwrap_or_default(),
                        ctx.float("value", 0.0)?,
                    )
                };
                let rank = s.0.len();
                if pads.len() != 2 * (rank + 1) {
                    return Err(ctx.bad(format!(
                        "pads has {} values, expected {}",
                        pads.len(),
                        2 * (rank + 1)
                    )));
                }
                let p = to_usize(&ctx, "pads", &pads, 0)?;
                let (begin, end) = p.split_at(rank + 1);
                if begin.first() != Some(&0) || end.first() != Some(&0) {
                    return Err(ctx.unsupported("padding the batch axis"));
                }
                let begin = begin.get(1..).unwrap_or_default().to_vec();
                let end = end.get(1..).unwrap_or_default().to_vec();
                let out =
                    s.0.iter()
                        .zip(begin.iter().zip(&end))
                        .map(|(d, (b, e))| d + b + e)
                        .collect();
                self.push(
                    &ctx,
                    Op::Pad(Pad { begin, end, value }),
                    vec![x],
                    Shape(out),
                )
            }
            "Concat" => {
                ctx.only_attrs(&["axis"])?;
                let (x0, s0) = self.value(&ctx, 0)?;
                let axis = Self::axis(&ctx, ctx.int("axis", 1)?, s0.0.len())?;
                let mut ids = vec![x0];
                let mut out = s0.0.clone();
                for i in 1..n.input.len() {
                    let (x, s) = self.value(&ctx, i)?;
                    let ok = s.0.len() == s0.0.len()
                        && s.0
                            .iter()
                            .zip(&s0.0)
                            .enumerate()
                            .all(|(j, (a, b))| j == axis || a == b);
                    if !ok {
                        return Err(ctx.bad(format!(
                            "input {i} shape {s} does not match {s0} off axis {}",
                            axis + 1
                        )));
                    }
                    if let (Some(o), Some(d)) = (out.get_mut(axis), s.0.get(axis)) {
                        *o += d;
                    }
                    ids.push(x);
                }
                self.push(&ctx, Op::Concat { axis }, ids, Shape(out))
            }
            "Softmax" => {
                ctx.only_attrs(&["axis"])?;
                let (x, s) = self.value(&ctx, 0)?;
                let default = if self.opset >= 13 { -1 } else { 1 };
                let axis = Self::axis(&ctx, ctx.int("axis", default)?, s.0.len())?;
                if self.opset < 13 && axis + 1 != s.0.len() {
                    return Err(
                        ctx.unsupported("pre-opset-13 Softmax over more than the last axis")
                    );
                }
                self.push(&ctx, Op::Softmax { axis }, vec![x], s)
            }
            other => Err(ctx.unsupported(format!(
                "operator {other:?} (supported: Conv, BatchNormalization, Relu, Clip, MaxPool, \
                 AveragePool, GlobalAveragePool, Add, Sub, Mul, Div, Gemm, MatMul, Flatten, \
                 Reshape, Slice, Pad, Concat, Softmax, Identity, Constant)"
            ))),
        }
    }
}

/// Normalise a Gemm/MatMul right-hand side to `[out, in]`, scaled by `alpha`.
fn linear_weight(
    ctx: &Ctx<'_>,
    w: &Const,
    k: usize,
    trans_b: bool,
    alpha: f32,
) -> Result<Tensor, NnError> {
    let [r, c] = w.dims.as_slice() else {
        return Err(ctx.unsupported(format!("weight dims {:?} (only 2-D)", w.dims)));
    };
    let (r, c) = (*r, *c);
    let f = w.floats();
    let (m, data) = if trans_b {
        if c != k {
            return Err(ctx.bad(format!(
                "B is [{r}, {c}] (transB = 1) but the input has {k} features"
            )));
        }
        (r, f.iter().map(|v| v * alpha).collect())
    } else {
        if r != k {
            return Err(ctx.bad(format!("B is [{r}, {c}] but the input has {k} features")));
        }
        let mut t = vec![0.0f32; r * c];
        for i in 0..r {
            for j in 0..c {
                if let (Some(d), Some(s)) = (t.get_mut(j * r + i), f.get(i * c + j)) {
                    *d = s * alpha;
                }
            }
        }
        (c, t)
    };
    Ok(Tensor {
        dims: vec![m, k],
        data,
    })
}

/// Broadcast a constant (numpy rules, against `[1, per-sample…]`) to the per-sample shape.
fn broadcast(ctx: &Ctx<'_>, c: &Const, s: &Shape) -> Result<Tensor, NnError> {
    let mut full = vec![1usize];
    full.extend(&s.0);
    if c.dims.len() > full.len() {
        return Err(ctx.unsupported(format!(
            "constant of rank {} added to rank {}",
            c.dims.len(),
            full.len()
        )));
    }
    let off = full.len() - c.dims.len();
    let mut cd = vec![1usize; off];
    cd.extend(&c.dims);
    for (a, b) in cd.iter().zip(&full) {
        if *a != 1 && a != b {
            return Err(ctx.unsupported(format!(
                "constant dims {:?} do not broadcast to {s}",
                c.dims
            )));
        }
    }
    let f = c.floats();
    let rank = s.0.len();
    let cdims = cd.get(1..).unwrap_or_default();
    let n = s.numel();
    let mut data = Vec::with_capacity(n);
    let mut idx = vec![0usize; rank];
    for _ in 0..n {
        let mut off = 0usize;
        for (j, &i) in idx.iter().enumerate() {
            let d = cdims.get(j).copied().unwrap_or(1);
            off = off * d + if d == 1 { 0 } else { i };
        }
        data.push(f.get(off).copied().unwrap_or(0.0));
        for j in (0..rank).rev() {
            if let (Some(i), Some(&d)) = (idx.get_mut(j), s.0.get(j)) {
                *i += 1;
                if *i < d {
                    break;
                }
                *i = 0;
            }
        }
    }
    Ok(Tensor {
        dims: s.0.clone(),
        data,
    })
}

fn reshape_target(ctx: &Ctx<'_>, target: &[i64], s: &Shape) -> Result<Shape, NnError> {
    let Some((&first, rest)) = target.split_first() else {
        return Err(ctx.unsupported("reshape to a scalar"));
    };
    if first != 0 && first != -1 {
        return Err(ctx.unsupported(format!(
            "target shape {target:?}: the first (batch) entry must be 0 or -1"
        )));
    }
    if first == -1 && rest.contains(&-1) {
        return Err(ctx.bad(format!("target shape {target:?} has two -1 entries")));
    }
    let mut out = Vec::new();
    let mut infer = None;
    for (i, &d) in rest.iter().enumerate() {
        match d {
            0 => out.push(
                s.0.get(i)
                    .copied()
                    .ok_or_else(|| ctx.bad(format!("0 at position {} beyond input rank", i + 1)))?,
            ),
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            d if d > 0 => out.push(usize::try_from(d).unwrap_or(0)),
            d => return Err(ctx.bad(format!("target shape {target:?} has invalid entry {d}"))),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || !s.numel().is_multiple_of(known) {
            return Err(ctx.bad(format!("cannot reshape {s} to {target:?}")));
        }
        if let Some(o) = out.get_mut(i) {
            *o = s.numel() / known;
        }
    }
    if out.iter().product::<usize>() != s.numel() {
        return Err(ctx.bad(format!(
            "cannot reshape {s} ({} values) to {target:?}",
            s.numel()
        )));
    }
    Ok(Shape(out))
}
