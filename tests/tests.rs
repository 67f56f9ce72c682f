//! polycert's integration tests: one binary, one module per capability. Tests that need
//! `../shared` (models, data) print a reason and return when it is absent.

mod ci;
mod nn;
mod util;
