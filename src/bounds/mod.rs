//! Error propagation (paper §4): Lemma 1 propagation functions, the Theorem 3 composition and
//! the Theorem 4 constant C, plus per-input elementwise bounds. Accepts only certified
//! polynomial errors.
