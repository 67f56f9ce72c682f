//! RNS-CKKS: encoding, keys, homomorphic operations and an encrypted executor of the network IR.
