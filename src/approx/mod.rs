//! Approximate ReLU and max-pooling (paper §3): r_α (Eq. 4), m_α, M_{α,n} (Eq. 6) and the
//! range scalings r̃_α(x) = B·r_α(x/B) and M̃_{α,n} with B' (Eq. 7). Does not own the sign
//! polynomial itself (see `remez`).
