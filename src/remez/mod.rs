//! Multi-precision Remez exchange for odd minimax approximations of sgn(x), the composite
//! construction of Lee–Lee–No–Kim (paper §2.2, Table 1), the degree optimizer and the ζ search.
