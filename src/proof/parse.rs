//! Exact parsing of the numbers in a certificate: decimals (`-1.25e-3`) and fractions `n/d`,
//! into `num-rational` big rationals (no rounding).

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::Zero;

fn parse_decimal(s: &str) -> Option<BigRational> {
    let t = s.trim();
    let (mant, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t.get(i + 1..)?.parse::<i64>().ok()?),
        None => (t, 0),
    };
    let (neg, body) = match mant.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, mant.strip_prefix('+').unwrap_or(mant)),
    };
    let (ip, fp) = body.split_once('.').unwrap_or((body, ""));
    if (ip.is_empty() && fp.is_empty())
        || !ip.bytes().all(|b| b.is_ascii_digit())
        || !fp.bytes().all(|b| b.is_ascii_digit())
        || exp.unsigned_abs() > 20_000
        || body.len() > 20_000
    {
        return None;
    }
    let digits = format!("{ip}{fp}");
    let mut n: BigInt = if digits.is_empty() {
        BigInt::zero()
    } else {
        digits.parse().ok()?
    };
    if neg {
        n = -n;
    }
    let scale = exp - i64::try_from(fp.len()).ok()?;
    let p = num_traits::pow(
        BigInt::from(10),
        usize::try_from(scale.unsigned_abs()).ok()?,
    );
    Some(if scale >= 0 {
        BigRational::from_integer(n * p)
    } else {
        BigRational::new(n, p)
    })
}

/// `m p e` = m·2^e (m a decimal integer, e an integer): exact dyadic box endpoints.
fn parse_dyadic(s: &str) -> Option<BigRational> {
    let (m, e) = s.split_once('p')?;
    let m: BigInt = m.trim().parse().ok()?;
    let e: i64 = e.trim().parse().ok()?;
    if e.unsigned_abs() > 20_000 {
        return None;
    }
    let p = BigInt::from(1) << e.unsigned_abs();
    Some(if e >= 0 {
        BigRational::from_integer(m * p)
    } else {
        BigRational::new(m, p)
    })
}

/// Parse a decimal, `n/d` or `m p e` (= m·2^e) string exactly; `None` when it is not a
/// finite number.
pub(crate) fn parse_exact(s: &str) -> Option<BigRational> {
    if s.contains('p') {
        return parse_dyadic(s);
    }
    if let Some((n, d)) = s.split_once('/') {
        let n = parse_decimal(n)?;
        let d = parse_decimal(d)?;
        if d.is_zero() {
            return None;
        }
        return Some(n / d);
    }
    parse_decimal(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_traits::One;

    #[test]
    fn parses_decimals_and_fractions_exactly() {
        let q = |n: i64, d: i64| BigRational::new(BigInt::from(n), BigInt::from(d));
        assert_eq!(parse_exact("0.375"), Some(q(3, 8)));
        assert_eq!(parse_exact("-1.5e-2"), Some(q(-3, 200)));
        assert_eq!(
            parse_exact("6.0400000000000001e-2"),
            Some(q(60400000000000001, 1_000_000_000_000_000_000))
        );
        assert_eq!(parse_exact("17/3"), Some(q(17, 3)));
        assert_eq!(parse_exact("3p-3"), Some(q(3, 8)));
        assert_eq!(parse_exact("-5p2"), Some(q(-20, 1)));
        assert_eq!(parse_exact("1"), Some(BigRational::one()));
        for bad in [
            "", "x", "1/0", "1.2.3", "--1", "1e", "nan", "inf", "1.5p3", "p3", "1p",
        ] {
            assert_eq!(parse_exact(bad), None, "{bad}");
        }
    }
}
