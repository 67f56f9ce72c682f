//! Error propagation (paper §4): the Lemma 1 propagation functions of the paper's blocks,
//! their Theorem 3 composition into the Theorem 4 constant C with
//! ‖F^α(x) − F(x)‖∞ ≤ C·2^−α, and — beyond the paper — per-input elementwise bounds with a
//! range check and certified-unchanged predictions.
//!
//! - [`decompose`] splits a [`crate::nn::Network`] into [`Block`]s: linear (conv with batch
//!   norm folded, average pooling, fully connected), ReLU, max-pooling, softmax and residual
//!   blocks y = ReLU(S(x) + G(x)) ([`Shortcut`]: identity, option A, 1×1 conv).
//! - Lemma 1 with the range scaling of §3: linear E(e) = ‖A‖∞·e; ReLU E(e) = B·s + e;
//!   max-pooling E(e) = ⌈log₂ n⌉·B′·s + e (Eq. 7, written as B·(Theorem 2 constant)); softmax
//!   E(e) = e/2; residual E(e) = E_ReLU(E_S(e) + E_G(e)). Here s is the **certified**
//!   sup |r_α − ReLU| of the checked certificate ([`PolyErrors`]), never the nominal 2^−α.
//! - [`BoundedNetwork::global`] composes them ([`GlobalBound`], with the per-block table);
//!   [`BoundedNetwork::per_input`] propagates elementwise bounds for one input
//!   ([`PerInputBound`]); [`bound_report`] runs both over a dataset next to the measured
//!   error of the f64 engine ([`BoundReport`]); [`smallest_alpha`] answers `--target-error`.
//! - [`FirstOrderNetwork`] computes the first-order limit of box-based certificates (a
//!   linearisation, not a certificate): L_j(α) = Σ_a Σ_i |(e_t − e_j)ᵀJ_a|_i·E_{a,i}(α) from
//!   vector-Jacobian products of the exact network; [`first_order_report`] runs it over a
//!   dataset ([`FirstOrderReport`]).
//!
//! Every bound is rounded upward (see `round`) and is **certified** under the stated
//! hypothesis: every ReLU / max-pool input of F^α lies in [−B, B] (checked per input by the
//! range check; inputs that fail it get no certificate and are counted). Errors of the
//! polynomial itself are certified in exact arithmetic (the committed certificates are
//! `arith = exact`), so the bounds are about F^α evaluated exactly; the f64 evaluation of
//! F^α by the engine is what the **measured** error uses.
//!
//! Symbols: `alpha` α, `b` B, `b_prime` B′ (Eq. 7), `e` error bounds, `r` the rounding
//! enclosure of the f64 forward pass.

mod block;
mod error;
mod firstorder;
mod firstorder_report;
mod fixed;
mod margin;
mod margin_lin;
mod margin_pool;
mod margin_rel;
mod margin_rows;
#[cfg(test)]
mod margin_rows_tests;
mod margin_slope;
#[cfg(test)]
mod margin_tests;
mod network;
mod polyerr;
mod report;
mod round;
mod trajectory;
mod trajectory_ops;
mod trajectory_report;
#[cfg(test)]
mod trajectory_tests;
mod wide;

pub use block::{decompose, Block, Shortcut};
pub use error::BoundsError;
pub use firstorder::{FirstOrderLimit, FirstOrderNetwork, Vjp};
pub use firstorder_report::{
    first_order_markdown, first_order_report, FirstOrderAlpha, FirstOrderReport,
};
pub use fixed::Frac;
pub use margin::{MarginCertifier, NoiseMargin};
pub use margin_rows::{ROW_BUDGET, WINDOW_SITES};
pub use network::{BlockRow, BlockTrace, BoundedNetwork, GlobalBound, PerInputBound};
pub use polyerr::{PolyErrors, ALPHAS};
pub use report::{
    bound_report, bounds_markdown, merge_bound_reports, ranges_for, read_bound_reports,
    smallest_alpha, AlphaBound, BlockDiag, BoundConfig, BoundReport, DataStats, Shard, TargetAlpha,
};
pub use trajectory::{
    ApproxRun, TrajectoryBound, TrajectoryCertifier, TrajectoryNetwork, PRECISIONS,
};
pub use trajectory_report::{MarginStats, PerInputMethod, TrajectoryImage, TrajectoryStats};

/// Deserialises an `f64` that serde_json wrote as `null` (NaN and ±∞ have no JSON form) back
/// as NaN, so that the reports read by [`read_bound_reports`] serialise to the same bytes.
fn nan_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::Deserialize as _;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// An `f64` in JSON without loss: a finite value as a number (exact with serde_json's
/// `float_roundtrip`), NaN and ±∞ as the strings `"NaN"`, `"inf"`, `"-inf"`. Used for the
/// per-image records that `polycert bound --merge` recombines, where NaN and +∞ mean
/// different things (e.g. a non-finite measured error).
mod lossless_f64 {
    use serde::{Deserialize as _, Deserializer, Serializer};

    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Num(f64),
        Text(String),
    }

    fn from_repr<E: serde::de::Error>(r: Repr) -> Result<f64, E> {
        match r {
            Repr::Num(x) => Ok(x),
            Repr::Text(t) => match t.as_str() {
                "NaN" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                _ => Err(E::custom(format!(
                    "expected a number, \"NaN\", \"inf\" or \"-inf\", found {t:?}"
                ))),
            },
        }
    }

    fn text(x: f64) -> &'static str {
        if x.is_nan() {
            "NaN"
        } else if x > 0.0 {
            "inf"
        } else {
            "-inf"
        }
    }

    pub(super) fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else {
            s.serialize_str(text(*x))
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        from_repr(Repr::deserialize(d)?)
    }

    /// The same for `Option<f64>` (`None` as JSON `null`).
    pub(super) mod opt {
        use serde::{Deserialize as _, Deserializer, Serializer};

        pub(in super::super) fn serialize<S: Serializer>(
            x: &Option<f64>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match x {
                None => s.serialize_none(),
                Some(v) if v.is_finite() => s.serialize_some(v),
                Some(v) => s.serialize_some(super::text(*v)),
            }
        }

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<f64>, D::Error> {
            Option::<super::Repr>::deserialize(d)?
                .map(super::from_repr)
                .transpose()
        }
    }
}
