//! One call for the `eval` subcommand: import the model, read the data, build p_α for every
//! requested α from Table 1 (`remez::table1_sign`), calibrate B, and evaluate (Table 2).

use std::path::PathBuf;
use std::sync::Arc;

use super::activation::{RangePolicy, SignKernel};
use super::data::{DataFormat, Dataset, Preprocess};
use super::engine::{Engine, Real};
use super::eval::{calibrate, evaluate, EvalConfig, EvalReport};
use super::import::import_onnx;
use super::NnError;

/// Working precision of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Precision {
    /// f32 (weights as stored).
    F32,
    /// f64.
    F64,
}

/// Everything `polycert eval` needs.
#[derive(Debug, Clone)]
pub struct Table2Spec {
    /// ONNX model.
    pub model: PathBuf,
    /// Evaluation data.
    pub data: PathBuf,
    /// Data layout (detected when `None`).
    pub format: Option<DataFormat>,
    /// Precision parameters α (each in 4..=14).
    pub alphas: Vec<u32>,
    /// Evaluate only `limit` images: the first ones, or (with `evenly`) spread evenly over
    /// the file (see [`Dataset::select_evenly`]).
    pub limit: Option<usize>,
    /// With `limit`: take images spread evenly over the file instead of the first ones.
    pub evenly: bool,
    /// How B is chosen.
    pub range: RangePolicy,
    /// Calibration data (defaults to the evaluation data).
    pub calib: Option<PathBuf>,
    /// Calibrate on only the first `calib_limit` images (defaults to `limit`).
    pub calib_limit: Option<usize>,
    /// Overrides the model's preprocessing metadata.
    pub preprocess: Option<Preprocess>,
    /// Engine precision.
    pub precision: Precision,
    /// Streaming chunk size.
    pub chunk: usize,
}

/// Run the Table 2 evaluation described by `spec`; `progress(done, total)` is called while
/// it runs.
///
/// # Errors
/// Import, data, α (outside 4..=14) or engine errors.
pub fn table2(
    spec: &Table2Spec,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> crate::Result<EvalReport> {
    let mut net = import_onnx(&spec.model)?;
    if let Some(p) = &spec.preprocess {
        if let Some((c, _, _)) = net.input_shape().chw() {
            p.check_channels(c)?;
        }
        net.preprocess = p.clone();
    }
    net.name = spec
        .model
        .file_name()
        .map_or_else(|| net.name.clone(), |n| n.to_string_lossy().into_owned());
    let mut data = Dataset::open(&spec.data, spec.format)?;
    if let (true, Some(k)) = (spec.evenly, spec.limit) {
        data.select_evenly(k);
    }
    let mut signs = Vec::new();
    for &alpha in &spec.alphas {
        let s = crate::remez::table1_sign(alpha)?;
        let degrees = s.degrees().iter().map(|d| d.0 as usize).collect();
        signs.push((SignKernel::new(alpha, s.poly()), degrees));
    }
    let net = Arc::new(net);
    match spec.precision {
        Precision::F32 => run::<f32>(spec, Engine::new(net), &data, &signs, progress),
        Precision::F64 => run::<f64>(spec, Engine::new(net), &data, &signs, progress),
    }
}

fn run<T: Real>(
    spec: &Table2Spec,
    engine: Engine<T>,
    data: &Dataset,
    signs: &[(SignKernel, Vec<usize>)],
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> crate::Result<EvalReport> {
    let (ranges, calib) = if let RangePolicy::Fixed(b) = spec.range {
        if !(b.is_finite() && b > 0.0) {
            return Err(NnError::Config {
                what: "B".into(),
                value: b.to_string(),
                valid: "a finite B > 0, or auto".into(),
            }
            .into());
        }
        // Every approximation site, the ReLUs of each Clip included.
        let r = engine
            .network()
            .approx_sites()
            .into_iter()
            .map(|s| (s.key, b))
            .collect();
        (r, None)
    } else {
        let cdata;
        let cd = match &spec.calib {
            Some(p) => {
                cdata = Dataset::open(p, spec.format)?;
                &cdata
            }
            None => data,
        };
        progress("calibrating", 0, 0);
        let mut c = calibrate(&engine, cd, spec.calib_limit.or(spec.limit))?;
        let r = c.choose(spec.range)?;
        (r, Some(c))
    };
    let n = spec.limit.map_or(data.len(), |l| l.min(data.len()));
    let cfg = EvalConfig {
        limit: spec.limit,
        chunk: spec.chunk,
    };
    let rep = evaluate(
        &engine,
        data,
        signs,
        &ranges,
        spec.range,
        calib.as_ref(),
        &cfg,
        &|d| {
            progress("evaluating", d, n);
        },
    )?;
    Ok(rep)
}
