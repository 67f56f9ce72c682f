//! Fixed-width integers for the fast path of the fixed-point ball arithmetic
//! ([`super::fixed`]): [`Wide<N>`] is an N×64-bit two's-complement integer holding a midpoint
//! mantissa M (value M·2^−F) without heap allocation.
//!
//! Every operation here is **exact or refused**: it returns the same integer as the GMP
//! operation it replaces (`rug::Integer`: floor of a product shifted by F, floor of a
//! quotient by a dyadic, sums), or `None` when the result does not fit in N limbs. The caller
//! then falls back to the GMP path, so a midpoint computed by the fast path is bit-identical
//! to the one the GMP path computes at the same F, and nothing is ever rounded silently.
//! The binary64 views ([`Wide::to_f64_trunc`]) round toward zero as `Integer::to_f64`, so
//! every radius derived from them is bit-identical too.
//!
//! Symbols: `f` the fraction bits F, `k` a shift, `mag` a magnitude (|M| as N unsigned limbs,
//! least significant first).

use rug::integer::Order;
use rug::Integer;

use super::fixed::Frac;

/// Most limbs of a [`Wide`] that multiplies or divides (products use a 2·`MAX_LIMBS`
/// buffer; wider ones only add and shift).
pub(crate) const MAX_LIMBS: usize = 4;

/// An N×64-bit two's-complement integer, limbs least significant first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wide<const N: usize>(pub(crate) [u64; N]);

/// Magnitude of a [`Wide`] in a fixed buffer of 2·`MAX_LIMBS` limbs (products and shifted
/// numerators live here).
type Buf = [u64; 2 * MAX_LIMBS];

impl<const N: usize> Wide<N> {
    /// Zero.
    pub(crate) const ZERO: Self = Self([0; N]);

    /// Whether the value is negative (top bit set).
    pub(crate) fn is_negative(&self) -> bool {
        self.0.last().is_some_and(|&t| t >> 63 == 1)
    }

    /// −self modulo 2^(64N) (two's complement negation).
    fn wrapping_neg(&self) -> Self {
        let mut out = [0u64; N];
        let mut carry = true;
        for (o, &l) in out.iter_mut().zip(&self.0) {
            let (v, c) = (!l).overflowing_add(u64::from(carry));
            *o = v;
            carry = c;
        }
        Self(out)
    }

    /// |self| as N unsigned limbs (exact: the most negative value's magnitude 2^(64N−1) fits).
    fn magnitude(&self) -> [u64; N] {
        if self.is_negative() {
            self.wrapping_neg().0
        } else {
            self.0
        }
    }

    /// From a sign and a magnitude in `buf` (any length): `None` unless |v| < 2^(64N−1).
    fn from_sign_mag(neg: bool, mag: &[u64]) -> Option<Self> {
        if mag.iter().skip(N).any(|&l| l != 0) {
            return None;
        }
        let mut out = [0u64; N];
        for (o, &l) in out.iter_mut().zip(mag) {
            *o = l;
        }
        let v = Self(out);
        if v.is_negative() {
            return None;
        }
        Some(if neg { v.wrapping_neg() } else { v })
    }

    /// The exact value of a GMP integer, `None` when it needs more than N limbs
    /// (|M| ≥ 2^(64N−1)).
    pub(crate) fn from_integer(m: &Integer) -> Option<Self> {
        if m.significant_bits() >= 64 * u32::try_from(N).ok()? {
            return None;
        }
        let mut mag = [0u64; N];
        m.write_digits(&mut mag, Order::Lsf);
        Self::from_sign_mag(m.is_negative(), &mag)
    }

    /// The exact value as a GMP integer.
    pub(crate) fn to_integer(self) -> Integer {
        let v = Integer::from_digits(&self.magnitude(), Order::Lsf);
        if self.is_negative() {
            -v
        } else {
            v
        }
    }

    /// v·2^(64k) (v sign-extended), `None` when it does not fit.
    pub(crate) fn from_i128_shl_limbs(v: i128, k: usize) -> Option<Self> {
        if k + 2 > N {
            return None;
        }
        let fill = if v < 0 { u64::MAX } else { 0 };
        let mut out = [0u64; N];
        for (i, o) in out.iter_mut().enumerate() {
            *o = if i < k {
                0
            } else if i == k {
                v as u64
            } else if i == k + 1 {
                (v >> 64) as u64
            } else {
                fill
            };
        }
        Some(Self(out))
    }

    /// self + o, `None` on overflow.
    pub(crate) fn checked_add(&self, o: &Self) -> Option<Self> {
        let mut out = [0u64; N];
        let mut carry = false;
        for ((r, &a), &b) in out.iter_mut().zip(&self.0).zip(&o.0) {
            let (s1, c1) = a.overflowing_add(b);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *r = s2;
            carry = c1 || c2;
        }
        let r = Self(out);
        // Overflow iff both operands have the same sign and the result another.
        let (sa, sb, sr) = (self.is_negative(), o.is_negative(), r.is_negative());
        (sa != sb || sa == sr).then_some(r)
    }

    /// self − o, `None` on overflow.
    pub(crate) fn checked_sub(&self, o: &Self) -> Option<Self> {
        let mut out = [0u64; N];
        let mut borrow = false;
        for ((r, &a), &b) in out.iter_mut().zip(&self.0).zip(&o.0) {
            let (d1, b1) = a.overflowing_sub(b);
            let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
            *r = d2;
            borrow = b1 || b2;
        }
        let r = Self(out);
        // Overflow iff the operands have different signs and the result has o's sign.
        let (sa, sb, sr) = (self.is_negative(), o.is_negative(), r.is_negative());
        (sa == sb || sa == sr).then_some(r)
    }

    /// ⌊self·2^−k⌋ (arithmetic shift right, rounding toward −∞, as `Integer >>=`).
    pub(crate) fn shr_floor(&self, k: u32) -> Self {
        let fill = if self.is_negative() { u64::MAX } else { 0 };
        let limbs = usize::try_from(k / 64).unwrap_or(usize::MAX);
        let bits = k % 64;
        let mut out = [fill; N];
        for (i, o) in out.iter_mut().enumerate() {
            let lo = i.checked_add(limbs).and_then(|j| self.0.get(j)).copied();
            let Some(lo) = lo else { break };
            let hi = self.0.get(i + limbs + 1).copied().unwrap_or(fill);
            *o = if bits == 0 {
                lo
            } else {
                (lo >> bits) | (hi << (64 - bits))
            };
        }
        Self(out)
    }

    /// ⌊self·o·2^−F⌋ exactly (the fixed-point product of [`super::fixed::mul_fixed`]),
    /// `None` when the result does not fit.
    #[expect(
        clippy::indexing_slicing,
        reason = "hot; i < la ≤ N, j < lb ≤ N and i + lb < 2·MAX_LIMBS (N ≤ MAX_LIMBS)"
    )]
    pub(crate) fn mul_shr_floor(&self, o: &Self, f: Frac) -> Option<Self> {
        if N > MAX_LIMBS {
            return None;
        }
        let (ma, mb) = (self.magnitude(), o.magnitude());
        let la = used_limbs(&ma);
        let lb = used_limbs(&mb);
        let mut prod: Buf = [0; 2 * MAX_LIMBS];
        // Schoolbook product of the magnitudes (la·lb 64×64→128-bit partial products; each
        // a·b + p + carry ≤ (2^64 − 1)² + 2·(2^64 − 1) = 2^128 − 1 fits in a u128).
        for i in 0..la {
            let a = u128::from(ma[i]);
            let mut carry = 0u128;
            for j in 0..lb {
                let t = a * u128::from(mb[j]) + u128::from(prod[i + j]) + carry;
                prod[i + j] = t as u64;
                carry = t >> 64;
            }
            prod[i + lb] = carry as u64;
        }
        let neg = self.is_negative() != o.is_negative();
        // q = ⌊P·2^−F⌋ limb by limb; it fits iff no bit of P at or above F + 64N − 1 is set.
        let (kl, kb) = ((f.0 / 64) as usize, f.0 % 64);
        if prod.iter().skip(kl + N + 1).any(|&l| l != 0) {
            return None;
        }
        let at = |j: usize| prod.get(j).copied().unwrap_or(0);
        let mut q = [0u64; N];
        for (i, o) in q.iter_mut().enumerate() {
            *o = if kb == 0 {
                at(i + kl)
            } else {
                (at(i + kl) >> kb) | (at(i + kl + 1) << (64 - kb))
            };
        }
        let spill = if kb == 0 {
            at(kl + N)
        } else {
            at(kl + N) >> kb
        };
        if spill != 0 || q.last().is_some_and(|&t| t >> 63 == 1) {
            return None;
        }
        let mut r = Self(q);
        if neg {
            let inexact = prod.iter().take(kl).any(|&l| l != 0)
                || (kb != 0 && at(kl) & ((1u64 << kb) - 1) != 0);
            // ⌊−P·2^−F⌋ = −⌈P·2^−F⌉ = −(q + [P·2^−F not an integer]).
            r = r.wrapping_neg();
            if inexact {
                r = r.checked_add(&Self::from_i128_shl_limbs(-1, 0)?)?;
            }
        }
        Some(r)
    }

    /// ⌊self / c⌋ with c = cm·2^ce > 0 an exact dyadic (as
    /// [`super::fixed::div_dyadic_floor`]), `None` when it does not fit or cm ≥ 2^64.
    pub(crate) fn div_dyadic_floor(&self, c: &(Integer, i32)) -> Option<Self> {
        if N > MAX_LIMBS {
            return None;
        }
        // c = d·2^ce with d < 2^64 (an integer-valued c may carry trailing zeros in cm).
        let (d, ce) = match c.0.to_u64() {
            Some(d) => (d, c.1),
            None => {
                let tz = c.0.find_one(0)?;
                let d = Integer::from(&c.0 >> tz).to_u64()?;
                (d, c.1.checked_add(i32::try_from(tz).ok()?)?)
            }
        };
        if d == 0 {
            return None;
        }
        let ce = &ce;
        let mag = self.magnitude();
        // |M|·2^k in the buffer (k = max(−ce, 0)), then ⌊·/2^s⌋ (s = max(ce, 0)), then ⌊·/cm⌋.
        let k = usize::try_from((-ce).max(0)).ok()?;
        let (kl, kb) = (k / 64, k % 64);
        let mut num: Buf = [0; 2 * MAX_LIMBS];
        for (i, &l) in mag.iter().enumerate() {
            if l == 0 {
                continue;
            }
            let lo = l << kb;
            let hi = if kb == 0 { 0 } else { l >> (64 - kb) };
            *num.get_mut(i + kl)? |= lo;
            if hi != 0 {
                *num.get_mut(i + kl + 1)? |= hi;
            }
        }
        let (mut q, inexact_shift) = shr_mag(&num, ce.max(&0).unsigned_abs());
        let mut rem = 0u64;
        let top = used_limbs(&q);
        for l in q.iter_mut().take(top).rev() {
            let cur = (u128::from(rem) << 64) | u128::from(*l);
            *l = (cur / u128::from(d)) as u64;
            rem = (cur % u128::from(d)) as u64;
        }
        let neg = self.is_negative();
        if neg && (inexact_shift || rem != 0) {
            inc_mag(&mut q)?;
        }
        Self::from_sign_mag(neg, &q)
    }

    /// The binary64 bit pattern of t·2^−F, where t is |self| rounded toward zero to 53
    /// significant bits (so t·2^−F is exact and normal), or `None` when self = 0 or
    /// t·2^−F is not a normal binary64 at least two ulps away from the subnormal and
    /// infinite ranges (the callers then take the general path).
    ///
    /// Derivation: with nb the bit length of |self|, t = ⌊|self|·2^(53−nb)⌋·2^(nb−53); its
    /// binary64 has biased exponent nb − 1 + 1023 and the 52 bits below the leading one as
    /// fraction, and the exact scaling by 2^−F subtracts F from the biased exponent.
    pub(crate) fn abs_scaled_bits(&self, f: Frac) -> Option<u64> {
        let mag = self.magnitude();
        let l = used_limbs(&mag);
        let top = *mag.get(l.checked_sub(1)?)?;
        let lz = top.leading_zeros();
        let below = if l >= 2 {
            mag.get(l - 2).copied().unwrap_or(0)
        } else {
            0
        };
        // The 64 leading bits of |self|, left-aligned (the leading one at bit 63).
        let lead = if lz == 0 {
            top
        } else {
            (top << lz) | (below >> (64 - lz))
        };
        let frac52 = (lead >> 11) & ((1u64 << 52) - 1);
        let nb = 64 * (l as u64 - 1) + u64::from(64 - lz);
        let e = (nb + 1022).checked_sub(u64::from(f.0))?;
        (2..=2045).contains(&e).then_some((e << 52) | frac52)
    }

    /// The value rounded toward zero to binary64, as `Integer::to_f64` (so every bound
    /// derived from it is the GMP path's).
    pub(crate) fn to_f64_trunc(self) -> f64 {
        let mag = self.magnitude();
        let l = used_limbs(&mag);
        if l == 0 {
            return 0.0;
        }
        let top = mag.get(l - 1).copied().unwrap_or(0);
        let nb = 64 * (l as u32 - 1) + (64 - top.leading_zeros());
        // The 53 leading bits (truncated), as an integer t, and the scale 2^(nb − 53).
        let v = if nb <= 53 {
            top as f64
        } else {
            let sh = nb - 53;
            let t = bits_at(&mag, sh);
            // t < 2^53 is exact, and the scaling by a power of two is exact (nb ≤ 512).
            t as f64 * super::fixed::pow2(i32::try_from(sh).unwrap_or(1023))
        };
        if self.is_negative() {
            -v
        } else {
            v
        }
    }
}

/// Limbs up to the most significant non-zero one.
fn used_limbs(mag: &[u64]) -> usize {
    mag.iter().rposition(|&l| l != 0).map_or(0, |p| p + 1)
}

/// The 53 bits of `mag` starting at bit `sh` (the caller knows bit sh + 52 is the top one).
fn bits_at(mag: &[u64], sh: u32) -> u64 {
    let (li, b) = ((sh / 64) as usize, sh % 64);
    let lo = mag.get(li).copied().unwrap_or(0) >> b;
    let hi = if b == 0 {
        0
    } else {
        mag.get(li + 1).copied().unwrap_or(0) << (64 - b)
    };
    (lo | hi) & ((1u64 << 53) - 1)
}

/// ⌊mag·2^−k⌋ and whether a non-zero bit was shifted out.
#[expect(
    clippy::indexing_slicing,
    reason = "hot; indices below the buffer length"
)]
fn shr_mag(mag: &Buf, k: u32) -> (Buf, bool) {
    const B: usize = 2 * MAX_LIMBS;
    let limbs = (k / 64) as usize;
    let bits = k % 64;
    let mut out: Buf = [0; B];
    if limbs >= B {
        return (out, mag.iter().any(|&l| l != 0));
    }
    let mut inexact = mag[..limbs].iter().any(|&l| l != 0);
    if bits == 0 {
        out[..B - limbs].copy_from_slice(&mag[limbs..]);
    } else {
        inexact |= mag[limbs] & ((1u64 << bits) - 1) != 0;
        for i in 0..B - limbs {
            let hi = if i + limbs + 1 < B {
                mag[i + limbs + 1]
            } else {
                0
            };
            out[i] = (mag[i + limbs] >> bits) | (hi << (64 - bits));
        }
    }
    (out, inexact)
}

/// mag + 1, `None` on overflow of the buffer.
fn inc_mag(mag: &mut Buf) -> Option<()> {
    for l in mag.iter_mut() {
        let (v, c) = l.overflowing_add(1);
        *l = v;
        if !c {
            return Some(());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type W = Wide<4>;

    fn int(bits: u32, seed: &[u64], neg: bool) -> Integer {
        let mut v = Integer::from_digits(seed, Order::Lsf);
        v.keep_bits_mut(bits);
        if neg {
            -v
        } else {
            v
        }
    }

    fn arb_int() -> impl Strategy<Value = Integer> {
        (
            0u32..=254,
            prop::array::uniform4(any::<u64>()),
            any::<bool>(),
        )
            .prop_map(|(b, s, n)| int(b, &s, n))
    }

    #[test]
    fn bounds_of_edge_values_match_gmp() {
        // Powers of two (the one-ulp steps cross a binade), all-ones mantissas (the step up
        // carries into the exponent), 53- and 54-bit values (truncation), zero, ±1, at F
        // where t·2^−F is near the subnormal range (general path) and away from it.
        use super::super::fixed::{fixed_bounds, fixed_mag, FixedMid};
        let mut vals = vec![Integer::new(), Integer::from(1), Integer::from(-1)];
        for k in [1u32, 52, 53, 54, 63, 64, 65, 127, 128, 191, 192, 200, 254] {
            let p = Integer::from(1) << k;
            vals.extend([
                p.clone(),
                Integer::from(&p - 1u32),
                Integer::from(&p + 1u32),
            ]);
        }
        let neg: Vec<Integer> = vals.iter().map(|v| Integer::from(-v)).collect();
        vals.extend(neg);
        for v in &vals {
            let w = W::from_integer(v).unwrap();
            for f in [
                0u32, 64, 128, 192, 256, 1020, 1021, 1022, 1023, 1024, 1075, 1100,
            ] {
                let (lo, hi) = FixedMid::bounds(&w, Frac(f));
                let (glo, ghi) = fixed_bounds(v, Frac(f));
                assert_eq!(
                    (lo.to_bits(), hi.to_bits()),
                    (glo.to_bits(), ghi.to_bits()),
                    "{v} F {f}"
                );
                assert_eq!(
                    FixedMid::mag(&w, Frac(f)).to_bits(),
                    fixed_mag(v, Frac(f)).to_bits()
                );
            }
        }
    }

    #[test]
    fn edge_values_round_trip_and_refuse() {
        let max = (Integer::from(1) << 255u32) - 1u32;
        for v in [
            Integer::new(),
            Integer::from(-1),
            Integer::from(u64::MAX),
            -Integer::from(u64::MAX),
            max.clone(),
            -max.clone(),
        ] {
            assert_eq!(W::from_integer(&v).unwrap().to_integer(), v);
        }
        assert!(W::from_integer(&(max.clone() + 1u32)).is_none());
        assert!(W::from_integer(&(-max.clone() - 1u32)).is_none());
        let big = W::from_integer(&(Integer::from(1) << 254u32)).unwrap();
        assert!(big.checked_add(&big).is_none());
        let top = W::from_integer(&max).unwrap();
        let one = W::from_integer(&Integer::from(1)).unwrap();
        assert!(top.checked_sub(&one.wrapping_neg()).is_none());
        assert!(top.wrapping_neg().checked_sub(&one).is_some());
        assert!(top
            .wrapping_neg()
            .checked_sub(&one)
            .unwrap()
            .checked_sub(&one)
            .is_none());
        assert!(big.mul_shr_floor(&big, Frac(200)).is_none());
        assert_eq!(
            big.mul_shr_floor(&big, Frac(256)).unwrap().to_integer(),
            Integer::from(1) << 252u32
        );
    }

    proptest! {
        // Oracle: rug's GMP integers (the operations the GMP path performs).
        #[test]
        fn ops_match_gmp_or_refuse(a in arb_int(), b in arb_int(), f in 0u32..300, k in 0u32..300) {
            let (wa, wb) = (W::from_integer(&a).unwrap(), W::from_integer(&b).unwrap());
            prop_assert_eq!(wa.to_integer(), a.clone());
            prop_assert_eq!(wa.is_negative(), a.is_negative());
            prop_assert_eq!(wa.to_f64_trunc().to_bits(), a.to_f64().to_bits());
            let fits = |v: &Integer| W::from_integer(v).is_some();
            let s = Integer::from(&a + &b);
            match wa.checked_add(&wb) {
                Some(r) => prop_assert_eq!(r.to_integer(), s),
                None => prop_assert!(!fits(&s)),
            }
            let d = Integer::from(&a - &b);
            match wa.checked_sub(&wb) {
                Some(r) => prop_assert_eq!(r.to_integer(), d),
                None => prop_assert!(!fits(&d)),
            }
            let p = super::super::fixed::mul_fixed(&a, &b, Frac(f));
            match wa.mul_shr_floor(&wb, Frac(f)) {
                Some(r) => prop_assert_eq!(r.to_integer(), p),
                None => prop_assert!(!fits(&p)),
            }
            prop_assert_eq!(wa.shr_floor(k).to_integer(), Integer::from(&a >> k));
        }

        // Oracle: the GMP path's enclosure `fixed_bounds` (to_f64, then one ulp out) and
        // magnitude `fixed_mag`; the fast bit-pattern form must equal them bit for bit, at
        // every F (including F > 1022 and values near the subnormal range: general path).
        #[test]
        fn bounds_and_mag_match_gmp_bit_for_bit(
            a in arb_int(),
            f in prop_oneof![0u32..300, 1000u32..1300],
        ) {
            use super::super::fixed::{fixed_bounds, fixed_mag, FixedMid};
            let w = W::from_integer(&a).unwrap();
            let (lo, hi) = FixedMid::bounds(&w, Frac(f));
            let (glo, ghi) = fixed_bounds(&a, Frac(f));
            prop_assert_eq!((lo.to_bits(), hi.to_bits()), (glo.to_bits(), ghi.to_bits()));
            prop_assert_eq!(FixedMid::mag(&w, Frac(f)).to_bits(), fixed_mag(&a, Frac(f)).to_bits());
        }

        #[test]
        fn dyadic_division_matches_gmp(a in arb_int(), x in -1e6f64..1e6, e in -60i32..60) {
            let c = x.abs() * super::super::fixed::pow2(e);
            prop_assume!(c > 0.0);
            let cd = super::super::fixed::dyadic_of_f64(c).unwrap();
            let q = super::super::fixed::div_dyadic_floor(&a, &cd);
            match W::from_integer(&a).unwrap().div_dyadic_floor(&cd) {
                Some(r) => prop_assert_eq!(r.to_integer(), q),
                None => prop_assert!(W::from_integer(&q).is_none()),
            }
        }
    }
}
