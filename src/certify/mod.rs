//! Interval-arithmetic proofs (inari, outward rounding) of the claims made about a composite
//! sign polynomial: (β, ε)-closeness, condition (1) for m_α, enclosures, Theorem 2 constants.
