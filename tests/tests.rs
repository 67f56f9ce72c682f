//! The single integration-test binary (one `mod` per capability).

mod certify;
