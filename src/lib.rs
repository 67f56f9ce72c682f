#![doc = include_str!("../README.md")]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod approx;
pub mod bounds;
pub mod certify;
pub mod ckks;
pub mod error;
pub mod nn;
pub mod poly;
pub mod proof;
pub mod remez;
pub mod report;

pub use error::{Error, Result};
