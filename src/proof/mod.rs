//! Certificate file format and the independent exact-rational checker. Must not import `rug`,
//! `inari` or `certify`: it is the second, independent opinion.
