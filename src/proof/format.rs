//! The versioned certificate file format `polycert-certificate/1` (JSON, exact decimal or
//! `n/d` rational strings, a SHA-256 digest over the canonical encoding).
//!
//! Layout (keys in this order, so output is byte-identical for identical inputs):
//! `format`, `alpha`, `zeta`, `eps`, `arith`, `degrees`, `components` (per component, the odd
//! power-basis coefficients c_1, c_3, …, c_d as exact strings), `claims`, `digest`.
//! Each claim lists the boxes `[x_lo, x_hi, f_upper]` that partition its domain.
//!
//! Optional keys (absent from certificates of odd polynomials of our own, whose bytes are
//! unchanged), between `components` and `claims`: `coefficients` (every power-basis
//! coefficient c_0 … c_d per component, for a polynomial that is not odd; `components` is then
//! empty), `odd_part_of` (with `--odd-part`: the shipped polynomial's coefficients c_0 … c_d,
//! whose odd part `components` is) and `sources` (input files with their SHA-256).

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ProofError;

/// The format tag every certificate carries.
pub const FORMAT: &str = "polycert-certificate/1";

/// A certificate file (see the module docs for the meaning of every field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// Precision parameter α (Table 1).
    pub alpha: u32,
    /// Max function factor ζ (Table 1), exact.
    pub zeta: String,
    /// ε = ζ·2^−α, exact.
    pub eps: String,
    /// Arithmetic the claims refer to: `exact`, `f64` or `f32`.
    pub arith: String,
    /// Component degrees in application order (p_1 first).
    pub degrees: Vec<u32>,
    /// Odd coefficients `[c_1, c_3, …, c_d]` of each component, exact (empty when
    /// `coefficients` is given).
    pub components: Vec<Vec<String>>,
    /// For a polynomial that is not odd: all coefficients `[c_0, c_1, …, c_d]` of each
    /// component, exact, as written in the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coefficients: Option<Vec<Vec<String>>>,
    /// With `--odd-part`: all coefficients `[c_0, …, c_d]` of each component of the shipped
    /// polynomial whose odd part `components` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub odd_part_of: Option<Vec<Vec<String>>>,
    /// The input files the polynomial was read from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceRecord>,
    /// The claims with their evidence.
    pub claims: Vec<ClaimRecord>,
    /// `sha256:` + hex digest of the file with this field set to the empty string.
    pub digest: String,
}

/// An input file of a certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRecord {
    /// The path as given on the command line.
    pub file: String,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// How it was read: `degrees`, `power-text`, `chebyshev-text [lo, hi]`, `json`.
    pub form: String,
}

/// One claim: a supremum bound of a function of x over a domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRecord {
    /// Claim identifier: `closeness`, `condition1`, `enclosure`, `theorem1_relu`,
    /// `maxpool_n4`, `maxpool_n9`, `float_relu`.
    pub id: String,
    /// Human-readable statement, citing the paper.
    pub statement: String,
    /// The function whose supremum is bounded.
    pub function: String,
    /// Domain of x, `[lo, hi]`, exact.
    pub domain: [String; 2],
    /// The claimed bound (exact).
    pub bound: String,
    /// Certified supremum `[lo, hi]`: `lo` is attained at `witness`, `hi` is an upper bound.
    pub certified_sup: [String; 2],
    /// Point where the lower end of `certified_sup` is attained (when one is claimed).
    pub witness: Option<String>,
    /// `holds` (hi ≤ bound) or `refuted` (lo > bound).
    pub verdict: String,
    /// For a claim derived from another one by exact arithmetic, the source claim's id.
    pub derived_from: Option<String>,
    /// Boxes `[x_lo, x_hi, f_upper]` partitioning the domain, in increasing order.
    pub boxes: Vec<[String; 3]>,
}

/// The digest of `file` (its `digest` field is ignored): `sha256:` + lower-case hex of the
/// SHA-256 of the compact JSON encoding with `digest` set to `""`.
///
/// # Errors
/// [`ProofError::Encode`] when serialisation fails (it does not for these types).
pub fn digest_of(file: &CertificateFile) -> Result<String, ProofError> {
    let mut copy = file.clone();
    copy.digest = String::new();
    let bytes = serde_json::to_vec(&copy).map_err(|e| ProofError::Encode(e.to_string()))?;
    Ok(format!("sha256:{}", sha256_hex(&bytes)))
}

/// Lower-case hex SHA-256 of `bytes` (64 characters).
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(64);
    for b in Sha256::digest(bytes) {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// Fill in the digest and encode as pretty JSON (deterministic, trailing newline).
///
/// # Errors
/// [`ProofError::Encode`] when serialisation fails.
pub fn encode(file: &mut CertificateFile) -> Result<String, ProofError> {
    file.digest = digest_of(file)?;
    let s = serde_json::to_string_pretty(file).map_err(|e| ProofError::Encode(e.to_string()))?;
    let mut out = collapse_short_arrays(&s);
    out.push('\n');
    Ok(out)
}

/// Put arrays of at most three scalars (boxes, domains, certified sups) on one line.
fn collapse_short_arrays(pretty: &str) -> String {
    let lines: Vec<&str> = pretty.lines().collect();
    let mut out = String::with_capacity(pretty.len());
    let mut i = 0;
    while let Some(line) = lines.get(i) {
        if line.ends_with('[') {
            let mut k = 1;
            let mut items = Vec::new();
            while let Some(l) = lines.get(i + k) {
                let t = l.trim();
                if t == "]" || t == "]," {
                    break;
                }
                if t.ends_with('[') || t.ends_with('{') || items.len() == 3 {
                    items.clear();
                    break;
                }
                items.push(t);
                k += 1;
            }
            let close = lines.get(i + k).map(|l| l.trim());
            if !items.is_empty() && matches!(close, Some("]") | Some("],")) {
                out.push_str(line);
                out.push_str(&items.join(" "));
                out.push_str(close.unwrap_or("]"));
                out.push('\n');
                i += k + 1;
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
        i += 1;
    }
    out.pop();
    out
}

/// Write `text` to `path` atomically (temporary file in the same folder, then rename).
///
/// # Errors
/// [`ProofError::Io`] naming the path.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), ProofError> {
    let io = |e: std::io::Error| ProofError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "certificate".to_string());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// Parse a certificate from JSON text; `file` names the source in errors.
///
/// # Errors
/// [`ProofError::Malformed`] with the file, line and column of the problem.
pub fn decode(file: &str, text: &str) -> Result<CertificateFile, ProofError> {
    serde_json::from_str(text).map_err(|e| ProofError::Malformed {
        file: file.to_string(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}
