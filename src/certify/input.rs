//! Reading polynomials someone else ships: a degree file and a coefficient file (plain text,
//! power or Chebyshev basis), a `polycert-poly/1` JSON file (see [`crate::poly::PolyFile`]),
//! or one of our own certificate files. Every error names the file and the line or the place.
//!
//! The polynomial is taken exactly as written: even coefficients are kept (a p that is not
//! odd is certified as such, see [`RationalComposite::from_power_basis`]), and Chebyshev
//! components are converted to the power basis in exact rational arithmetic, so the certified
//! polynomial is the written one. Each file's SHA-256 goes into the certificate.

use std::path::Path;

use rug::Rational;

use super::claims::{rational_text, RationalComposite, SourceFile};
use super::CertifyError;
use crate::poly::{
    chebyshev_to_power_exact, parse_decimal_rational, ComponentRecord, PolyFile,
    CONVENTION_OPENFHE, CONVENTION_STANDARD, POLY_FORMAT,
};

/// Largest component degree accepted in the power basis.
pub const MAX_DEGREE: u32 = 1023;

/// Largest component degree accepted in the Chebyshev basis (the exact conversion costs
/// O(d²) big-rational operations).
pub const MAX_CHEBYSHEV_DEGREE: u32 = 255;

fn input_err(file: &Path, line: usize, message: String) -> CertifyError {
    CertifyError::Input {
        file: file.display().to_string(),
        line,
        message,
    }
}

/// The file's text and its identity (path, SHA-256 of the bytes, how it was read).
fn read(file: &Path, form: &str) -> Result<(String, SourceFile), CertifyError> {
    let bytes = std::fs::read(file).map_err(|e| input_err(file, 0, format!("cannot read: {e}")))?;
    let sha256 = crate::proof::sha256_hex(&bytes);
    let text = String::from_utf8(bytes).map_err(|e| {
        let upto = e
            .as_bytes()
            .get(..e.utf8_error().valid_up_to())
            .unwrap_or(&[]);
        let line = upto.iter().filter(|b| **b == b'\n').count() + 1;
        input_err(file, line, "not UTF-8 text".to_string())
    })?;
    Ok((
        text,
        SourceFile {
            file: file.display().to_string(),
            sha256,
            form: form.to_string(),
        },
    ))
}

/// Parse an exact number: a decimal (`-1.5e-3`) or a fraction `n/d`.
pub(crate) fn parse_exact(s: &str) -> Option<Rational> {
    if let Some((n, d)) = s.split_once('/') {
        let n = parse_decimal_rational(n).ok()?;
        let d = parse_decimal_rational(d).ok()?;
        if d == 0 {
            return None;
        }
        return Some(n / d);
    }
    parse_decimal_rational(s).ok()
}

/// The basis of the components of a text coefficient file.
#[derive(Debug, Clone, PartialEq)]
pub enum Basis {
    /// c_0 … c_d of q(y) = Σ c_j y^j.
    Power,
    /// c_0 … c_d of q(y) = Σ c_k T_k((2y − lo − hi)/(hi − lo)) (standard convention), every
    /// component on the same interval [lo, hi].
    Chebyshev {
        /// Left end of the interval.
        lo: Rational,
        /// Right end of the interval.
        hi: Rational,
    },
}

/// A polynomial read from files, with the files' identities.
#[derive(Debug, Clone, PartialEq)]
pub struct ShippedPoly {
    /// The polynomial exactly as written (power basis).
    pub poly: RationalComposite,
    /// The files it was read from.
    pub sources: Vec<SourceFile>,
}

/// Read `DEG_FILE` (one component degree 1..=1023 per line, application order) and
/// `COEFF_FILE` (per component its d+1 coefficients c_0, …, c_d in ascending order, one
/// decimal number or `n/d` per line, in `basis`). Blank lines are ignored. Even-power
/// coefficients are kept exactly as written (the published files leave them at ≈ ±1e−46).
///
/// # Errors
/// [`CertifyError::Input`] with file and line for unreadable files, non-numbers, degrees out
/// of range, too few or too many coefficients, and an empty Chebyshev interval.
pub fn read_coeff_files(
    deg_file: &Path,
    coeff_file: &Path,
    basis: &Basis,
) -> Result<ShippedPoly, CertifyError> {
    let (deg_text, deg_src) = read(deg_file, "degrees")?;
    let max = match basis {
        Basis::Power => MAX_DEGREE,
        Basis::Chebyshev { .. } => MAX_CHEBYSHEV_DEGREE,
    };
    let mut degrees = Vec::new();
    for (i, line) in deg_text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let d: u32 = t.parse().map_err(|_| {
            input_err(
                deg_file,
                i + 1,
                format!("{t:?} is not a degree; expected an integer 1..={max}"),
            )
        })?;
        if d == 0 || d > max {
            return Err(input_err(
                deg_file,
                i + 1,
                format!("degree {d} is invalid; expected an integer 1..={max}"),
            ));
        }
        degrees.push(d);
    }
    if degrees.is_empty() {
        return Err(input_err(
            deg_file,
            0,
            "no degrees; expected one degree per line".into(),
        ));
    }
    let (form, cheb) = match basis {
        Basis::Power => ("power-text".to_string(), None),
        Basis::Chebyshev { lo, hi } => {
            if lo >= hi {
                return Err(input_err(
                    coeff_file,
                    0,
                    format!(
                        "Chebyshev interval [{}, {}] is empty; expected lo < hi",
                        rational_text(lo),
                        rational_text(hi)
                    ),
                ));
            }
            (
                format!(
                    "chebyshev-text [{}, {}]",
                    rational_text(lo),
                    rational_text(hi)
                ),
                Some((lo, hi)),
            )
        }
    };
    let (coeff_text, coeff_src) = read(coeff_file, &form)?;
    let mut values = coeff_text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let total: usize = degrees.iter().map(|d| *d as usize + 1).sum();
    let mut comps = Vec::new();
    let mut seen = 0usize;
    let mut last_line = 0usize;
    for (k, d) in degrees.iter().enumerate() {
        let mut all = Vec::with_capacity(*d as usize + 1);
        for j in 0..=*d as usize {
            let Some((i, line)) = values.next() else {
                return Err(input_err(
                    coeff_file,
                    last_line,
                    format!(
                        "file ends after {seen} coefficients; degrees {degrees:?} need {total} (component {}, coefficient {j} missing)",
                        k + 1
                    ),
                ));
            };
            last_line = i + 1;
            seen += 1;
            let t = line.trim();
            let q = parse_exact(t).ok_or_else(|| {
                input_err(
                    coeff_file,
                    i + 1,
                    format!(
                        "{t:?} is not a decimal number or fraction n/d (component {}, coefficient {j})",
                        k + 1
                    ),
                )
            })?;
            all.push(q);
        }
        if let Some((lo, hi)) = cheb {
            all = chebyshev_to_power_exact(&all, lo, hi, false)
                .ok_or_else(|| input_err(coeff_file, 0, "empty Chebyshev interval".to_string()))?;
        }
        comps.push(all);
    }
    if let Some((i, _)) = values.next() {
        return Err(input_err(
            coeff_file,
            i + 1,
            format!("extra coefficient: degrees need exactly {total} numbers"),
        ));
    }
    Ok(ShippedPoly {
        poly: RationalComposite::from_power_basis(comps)?,
        sources: vec![deg_src, coeff_src],
    })
}

/// Read a `polycert-poly/1` JSON file (see [`crate::poly::PolyFile`]): per component the power
/// or Chebyshev coefficients (Chebyshev on the stated interval, in the file's convention),
/// converted exactly to the power basis.
///
/// # Errors
/// [`CertifyError::Input`] naming the file and line (JSON syntax) or the component and
/// coefficient (`components[k].coeffs[j]`).
pub fn read_poly_json(file: &Path) -> Result<ShippedPoly, CertifyError> {
    let (text, src) = read(file, "json")?;
    let pf: PolyFile = serde_json::from_str(&text)
        .map_err(|e| input_err(file, e.line(), format!("not a {POLY_FORMAT} file: {e}")))?;
    if pf.format != POLY_FORMAT {
        return Err(input_err(
            file,
            0,
            format!("format {:?} is not {POLY_FORMAT:?}", pf.format),
        ));
    }
    let half_c0 = match pf.convention.as_deref() {
        None | Some(CONVENTION_STANDARD) => false,
        Some(CONVENTION_OPENFHE) => true,
        Some(other) => {
            return Err(input_err(
                file,
                0,
                format!(
                    "convention {other:?} is unknown; expected {CONVENTION_STANDARD:?} or {CONVENTION_OPENFHE:?}"
                ),
            ))
        }
    };
    if pf.components.is_empty() {
        return Err(input_err(file, 0, "no components".to_string()));
    }
    let comps = pf
        .components
        .iter()
        .enumerate()
        .map(|(k, c)| component_power(file, k, c, half_c0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ShippedPoly {
        poly: RationalComposite::from_power_basis(comps)?,
        sources: vec![src],
    })
}

fn component_power(
    file: &Path,
    k: usize,
    c: &ComponentRecord,
    half_c0: bool,
) -> Result<Vec<Rational>, CertifyError> {
    let at = |what: String| input_err(file, 0, format!("components[{k}]: {what}"));
    let cheb = match c.basis.as_str() {
        "power" => false,
        "chebyshev" => true,
        other => {
            return Err(at(format!(
                "basis {other:?} is unknown; expected \"power\" or \"chebyshev\""
            )))
        }
    };
    let max = if cheb {
        MAX_CHEBYSHEV_DEGREE
    } else {
        MAX_DEGREE
    } as usize;
    if c.coeffs.len() < 2 || c.coeffs.len() > max + 1 {
        return Err(at(format!(
            "{} coefficients; expected 2..={} (degree 1..={max})",
            c.coeffs.len(),
            max + 1
        )));
    }
    if let Some(d) = c.degree {
        if d as usize + 1 != c.coeffs.len() {
            return Err(at(format!(
                "degree {d} but {} coefficients (expected degree + 1)",
                c.coeffs.len()
            )));
        }
    }
    let mut q = Vec::with_capacity(c.coeffs.len());
    for (j, s) in c.coeffs.iter().enumerate() {
        q.push(parse_exact(s).ok_or_else(|| {
            at(format!(
                "coeffs[{j}] = {s:?} is not a decimal number or fraction n/d"
            ))
        })?);
    }
    if !cheb {
        if c.interval.is_some() {
            return Err(at("a power-basis component takes no interval".into()));
        }
        return Ok(q);
    }
    let Some([a, b]) = &c.interval else {
        return Err(at("a Chebyshev component needs \"interval\": [a, b]".into()));
    };
    let (Some(qa), Some(qb)) = (parse_exact(a), parse_exact(b)) else {
        return Err(at(format!(
            "interval [{a:?}, {b:?}] is not two exact numbers"
        )));
    };
    chebyshev_to_power_exact(&q, &qa, &qb, half_c0)
        .ok_or_else(|| at(format!("interval [{a}, {b}] is empty; expected a < b")))
}

/// Read the polynomial, α and ζ from one of our certificate files (`polycert-certificate/1`):
/// the odd `components`, or all `coefficients` of a polynomial that is not odd.
///
/// # Errors
/// [`CertifyError::Input`] with file and line for unreadable or malformed files.
pub fn read_json_certificate(file: &Path) -> Result<(ShippedPoly, u32, Rational), CertifyError> {
    let (text, src) = read(file, "certificate")?;
    let cert = crate::proof::decode(&file.display().to_string(), &text).map_err(|e| match e {
        crate::proof::ProofError::Malformed { line, message, .. } => input_err(file, line, message),
        other => input_err(file, 0, other.to_string()),
    })?;
    let general = cert.coefficients.is_some();
    let mut comps = Vec::new();
    for (k, c) in cert
        .coefficients
        .as_ref()
        .unwrap_or(&cert.components)
        .iter()
        .enumerate()
    {
        let mut odd = Vec::new();
        for (j, s) in c.iter().enumerate() {
            odd.push(parse_exact(s).ok_or_else(|| {
                input_err(
                    file,
                    0,
                    format!(
                        "{}[{k}][{j}] = {s:?} is not an exact number",
                        if general {
                            "coefficients"
                        } else {
                            "components"
                        }
                    ),
                )
            })?);
        }
        comps.push(odd);
    }
    let zeta = parse_exact(&cert.zeta).ok_or_else(|| {
        input_err(
            file,
            0,
            format!("zeta = {:?} is not an exact number", cert.zeta),
        )
    })?;
    let poly = if general {
        RationalComposite::from_power_basis(comps)?
    } else {
        RationalComposite::new(comps)?
    };
    Ok((
        ShippedPoly {
            poly,
            sources: vec![src],
        },
        cert.alpha,
        zeta,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_a_valid_pair_and_names_lines_of_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = write(dir.path(), "deg", "3\n3\n");
        let c = write(dir.path(), "c", "0\n1.5\n0\n-0.5\n0\n1.5\n0\n-0.5\n");
        let p = read_coeff_files(&d, &c, &Basis::Power).unwrap().poly;
        assert_eq!(p.degrees(), vec![3, 3]);
        let bad = write(dir.path(), "c2", "0\n1.5\n0\n-0.5\n0\nabc\n0\n-0.5\n");
        let e = read_coeff_files(&d, &bad, &Basis::Power)
            .unwrap_err()
            .to_string();
        assert!(e.contains("c2:6:") && e.contains("abc"), "{e}");
        let short = write(dir.path(), "c3", "0\n1.5\n0\n-0.5\n0\n");
        let e = read_coeff_files(&d, &short, &Basis::Power)
            .unwrap_err()
            .to_string();
        assert!(e.contains("c3:5:") && e.contains("need 8"), "{e}");
        let long = write(dir.path(), "c4", "0\n1.5\n0\n-0.5\n0\n1.5\n0\n-0.5\n7\n");
        let e = read_coeff_files(&d, &long, &Basis::Power)
            .unwrap_err()
            .to_string();
        assert!(e.contains("c4:9:") && e.contains("extra"), "{e}");
        // Even coefficients are kept as written (issue 16), not refused and not dropped.
        let even = write(dir.path(), "c5", "0\n1.5\n0.1\n-0.5\n0\n1.5\n0\n-0.5\n");
        let p = read_coeff_files(&d, &even, &Basis::Power).unwrap().poly;
        assert!(!p.is_odd());
        assert_eq!(p.power_coeffs()[0][2], Rational::from((1, 10)));
        let d2 = write(dir.path(), "deg2", "3\n0\n");
        let e = read_coeff_files(&d2, &c, &Basis::Power)
            .unwrap_err()
            .to_string();
        assert!(e.contains("deg2:2:") && e.contains("1..=1023"), "{e}");
    }
}
