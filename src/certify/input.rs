//! Reading polynomials someone else ships: a degree file and a coefficient file (plain text),
//! or one of our own certificate files. Every error names the file and the line.

use std::path::Path;

use rug::Rational;

use super::claims::RationalComposite;
use super::CertifyError;
use crate::poly::parse_decimal_rational;

fn input_err(file: &Path, line: usize, message: String) -> CertifyError {
    CertifyError::Input {
        file: file.display().to_string(),
        line,
        message,
    }
}

fn read(file: &Path) -> Result<String, CertifyError> {
    std::fs::read_to_string(file).map_err(|e| input_err(file, 0, format!("cannot read: {e}")))
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

/// Read `DEG_FILE` (one odd component degree per line, application order) and `COEFF_FILE`
/// (per component, its d+1 power-basis coefficients c_0, …, c_d in ascending order, one
/// decimal number per line; even-power coefficients must be zero). Blank lines are ignored.
///
/// # Errors
/// [`CertifyError::Input`] with file and line for unreadable files, non-numbers, even or zero
/// degrees, non-zero even coefficients, and too few or too many coefficients.
pub fn read_coeff_files(
    deg_file: &Path,
    coeff_file: &Path,
) -> Result<RationalComposite, CertifyError> {
    let deg_text = read(deg_file)?;
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
                format!("{t:?} is not a degree; expected an odd integer 1..=1023"),
            )
        })?;
        if d.is_multiple_of(2) || d > 1023 {
            return Err(input_err(
                deg_file,
                i + 1,
                format!("degree {d} is invalid; expected an odd integer 1..=1023"),
            ));
        }
        degrees.push((d, i + 1));
    }
    if degrees.is_empty() {
        return Err(input_err(
            deg_file,
            0,
            "no degrees; expected one odd degree per line".into(),
        ));
    }
    let coeff_text = read(coeff_file)?;
    let mut values = coeff_text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let total: usize = degrees.iter().map(|(d, _)| *d as usize + 1).sum();
    let mut comps = Vec::new();
    let mut seen = 0usize;
    let mut last_line = 0usize;
    for (k, (d, _)) in degrees.iter().enumerate() {
        let mut odd = Vec::new();
        for j in 0..=*d as usize {
            let Some((i, line)) = values.next() else {
                return Err(input_err(
                    coeff_file,
                    last_line,
                    format!(
                        "file ends after {seen} coefficients; degrees {:?} need {total} (component {}, x^{j} missing)",
                        degrees.iter().map(|(d, _)| *d).collect::<Vec<_>>(),
                        k + 1
                    ),
                ));
            };
            last_line = i + 1;
            seen += 1;
            let t = line.trim();
            let q = parse_decimal_rational(t).map_err(|_| {
                input_err(
                    coeff_file,
                    i + 1,
                    format!("{t:?} is not a decimal number (component {}, x^{j})", k + 1),
                )
            })?;
            if j % 2 == 0 {
                if q != 0 {
                    return Err(input_err(
                        coeff_file,
                        i + 1,
                        format!(
                            "component {} is not odd: coefficient of x^{j} is {t}, expected 0",
                            k + 1
                        ),
                    ));
                }
            } else {
                odd.push(q);
            }
        }
        comps.push(odd);
    }
    if let Some((i, _)) = values.next() {
        return Err(input_err(
            coeff_file,
            i + 1,
            format!("extra coefficient: degrees need exactly {total} numbers"),
        ));
    }
    RationalComposite::new(comps)
}

/// Read the polynomial, α and ζ from one of our certificate files (`polycert-certificate/1`).
///
/// # Errors
/// [`CertifyError::Input`] with file and line for unreadable or malformed files.
pub fn read_json_certificate(
    file: &Path,
) -> Result<(RationalComposite, u32, Rational), CertifyError> {
    let text = read(file)?;
    let cert = crate::proof::decode(&file.display().to_string(), &text).map_err(|e| match e {
        crate::proof::ProofError::Malformed { line, message, .. } => input_err(file, line, message),
        other => input_err(file, 0, other.to_string()),
    })?;
    let mut comps = Vec::new();
    for (k, c) in cert.components.iter().enumerate() {
        let mut odd = Vec::new();
        for (j, s) in c.iter().enumerate() {
            odd.push(parse_exact(s).ok_or_else(|| {
                input_err(
                    file,
                    0,
                    format!("components[{k}][{j}] = {s:?} is not an exact number"),
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
    Ok((RationalComposite::new(comps)?, cert.alpha, zeta))
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
        let p = read_coeff_files(&d, &c).unwrap();
        assert_eq!(p.degrees(), vec![3, 3]);
        let bad = write(dir.path(), "c2", "0\n1.5\n0\n-0.5\n0\nabc\n0\n-0.5\n");
        let e = read_coeff_files(&d, &bad).unwrap_err().to_string();
        assert!(e.contains("c2:6:") && e.contains("abc"), "{e}");
        let short = write(dir.path(), "c3", "0\n1.5\n0\n-0.5\n0\n");
        let e = read_coeff_files(&d, &short).unwrap_err().to_string();
        assert!(e.contains("c3:5:") && e.contains("need 8"), "{e}");
        let long = write(dir.path(), "c4", "0\n1.5\n0\n-0.5\n0\n1.5\n0\n-0.5\n7\n");
        let e = read_coeff_files(&d, &long).unwrap_err().to_string();
        assert!(e.contains("c4:9:") && e.contains("extra"), "{e}");
        let even = write(dir.path(), "c5", "0\n1.5\n0.1\n-0.5\n0\n1.5\n0\n-0.5\n");
        let e = read_coeff_files(&d, &even).unwrap_err().to_string();
        assert!(e.contains("c5:3:") && e.contains("not odd"), "{e}");
        let d2 = write(dir.path(), "deg2", "3\n4\n");
        let e = read_coeff_files(&d2, &c).unwrap_err().to_string();
        assert!(e.contains("deg2:2:") && e.contains("odd"), "{e}");
    }
}
