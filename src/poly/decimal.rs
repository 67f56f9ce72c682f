//! Exact conversions between dyadic rug `Float`s, rationals and decimal strings.

use rug::{Float, Integer, Rational};

use super::PolyError;

/// The exact finite decimal expansion of a finite dyadic `Float` m·2^e (no rounding: for
/// e < 0, m·2^e = m·5^(−e) / 10^(−e), a finite decimal with −e fractional digits at most).
///
/// Non-finite values are printed as `nan`, `inf` or `-inf`.
pub fn exact_decimal(x: &Float) -> String {
    let Some(q) = x.to_rational() else {
        return x.to_string();
    };
    rational_to_exact_decimal(&q)
}

/// Decimal expansion of a rational whose denominator is a power of two (always finite).
fn rational_to_exact_decimal(q: &Rational) -> String {
    let neg = *q < 0;
    let num = Integer::from(q.numer().abs_ref());
    let den = q.denom().clone();
    // den = 2^k; value = num·5^k / 10^k.
    let k = den.significant_bits().saturating_sub(1);
    let scaled = num * Integer::from(Integer::u_pow_u(5, k));
    let mut digits = scaled.to_string();
    let k = k as usize;
    if digits.len() <= k {
        let pad = "0".repeat(k + 1 - digits.len());
        digits = pad + &digits;
    }
    let split = digits.len() - k;
    let (int_part, frac_part) = digits.split_at(split);
    let frac_trim = frac_part.trim_end_matches('0');
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(int_part);
    if !frac_trim.is_empty() {
        out.push('.');
        out.push_str(frac_trim);
    }
    out
}

/// Parse a decimal number (`-12.5`, `3e-4`, `1.25E+2`) into the exact rational it denotes.
///
/// # Errors
/// [`PolyError::BadNumber`] when `s` is not a finite decimal number.
pub fn parse_decimal_rational(s: &str) -> Result<Rational, PolyError> {
    let t = s.trim();
    let bad = || PolyError::BadNumber(s.to_string());
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => {
            let (m, e) = t.split_at(i);
            let e = e.get(1..).ok_or_else(bad)?;
            let e: i64 = e.parse().map_err(|_| bad())?;
            (m, e)
        }
        None => (t, 0),
    };
    let (neg, body) = match mantissa.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (ip, fp) = match body.split_once('.') {
        Some((a, b)) => (a, b),
        None => (body, ""),
    };
    if (ip.is_empty() && fp.is_empty())
        || !ip.bytes().all(|b| b.is_ascii_digit())
        || !fp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    if exp.unsigned_abs() > 100_000 || fp.len() > 100_000 {
        return Err(bad());
    }
    let all = format!("{ip}{fp}");
    let mut n =
        Integer::from_str_radix(if all.is_empty() { "0" } else { &all }, 10).map_err(|_| bad())?;
    if neg {
        n = -n;
    }
    let scale = exp - fp.len() as i64;
    let pow10 = |k: i64| {
        Integer::from(Integer::u_pow_u(
            10,
            u32::try_from(k.unsigned_abs()).unwrap_or(u32::MAX),
        ))
    };
    let q = if scale >= 0 {
        Rational::from(n * pow10(scale))
    } else {
        Rational::from((n, pow10(scale)))
    };
    Ok(q)
}

/// The dyadic `Float` equal to `q` exactly, or `None` when `q`'s denominator is not a power
/// of two. The precision is the number of significant bits of the numerator (at least 2).
pub fn rational_to_dyadic(q: &Rational) -> Option<Float> {
    let den = q.denom();
    if !den.is_power_of_two() {
        return None;
    }
    let bits = q.numer().significant_bits().max(2);
    let f = Float::with_val(bits, q);
    // Exactness check (the precision above suffices, but verify rather than assume).
    (f.to_rational().as_ref() == Some(q)).then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_decimal_of_dyadics() {
        assert_eq!(exact_decimal(&Float::with_val(53, 0.5)), "0.5");
        assert_eq!(exact_decimal(&Float::with_val(53, -0.375)), "-0.375");
        assert_eq!(exact_decimal(&Float::with_val(53, 3)), "3");
        assert_eq!(exact_decimal(&Float::with_val(53, 0)), "0");
        // 2^-10 = 0.0009765625
        assert_eq!(
            exact_decimal(&Float::with_val(53, 2f64.powi(-10))),
            "0.0009765625"
        );
    }

    #[test]
    fn decimal_round_trip_is_exact() {
        let x = Float::with_val(
            300,
            Float::parse("1.2345678901234567890123456789e-3").unwrap(),
        ) / 7;
        let s = exact_decimal(&x);
        let q = parse_decimal_rational(&s).unwrap();
        let back = rational_to_dyadic(&q).unwrap();
        assert_eq!(back, x);
    }

    #[test]
    fn parse_rejects_garbage() {
        for s in ["", "abc", "1.2.3", "--1", "1e", "e5", "."] {
            assert!(parse_decimal_rational(s).is_err(), "{s:?}");
        }
        assert_eq!(
            parse_decimal_rational("-1.5e2").unwrap(),
            Rational::from(-150)
        );
        assert_eq!(
            parse_decimal_rational("25E-2").unwrap(),
            Rational::from((1, 4))
        );
    }

    #[test]
    fn non_dyadic_is_refused() {
        assert!(rational_to_dyadic(&Rational::from((1, 10))).is_none());
    }
}
