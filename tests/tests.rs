//! polycert's integration tests: one binary, one module per capability. Tests that need
//! `../shared` (models, data) print a reason and return when it is absent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod bounds;
mod certify;
mod ci;
mod ckks;
mod cli;
mod firstorder;
mod fuzz;
mod imagenet;
mod interop;
mod nn;
mod report;
mod sign;
mod util;
