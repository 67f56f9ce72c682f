//! Dataset readers (CIFAR-10 binary, MNIST IDX, the ImageNet 224×224 record file) and input
//! preprocessing.
//!
//! CIFAR-10: records of 1 label byte + 3072 pixel bytes in CHW order, no header.
//! ImageNet 224×224 (`shared/data/imagenet/imagenet_val500_224.bin`): records of a 2-byte
//! little-endian label (0..=999) + 3·224·224 pixel bytes in CHW order, no header.
//! MNIST IDX: big-endian header (magic 0x00000803, count, rows, cols) then one byte per pixel;
//! labels in a companion file (magic 0x00000801, count, then one byte per label) found next to
//! the images by replacing `images-idx3` with `labels-idx1` in the file name.

use std::path::{Path, PathBuf};

use super::NnError;

/// Input preprocessing: x = (raw · scale − mean_c) / std_c per channel c (model metadata
/// `input_scale`, `input_mean`, `input_std`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Preprocess {
    /// Multiplier of the raw 0..255 pixel value.
    pub scale: f64,
    /// Per-channel mean (one value applies to every channel).
    pub mean: Vec<f64>,
    /// Per-channel standard deviation (one value applies to every channel).
    pub std: Vec<f64>,
}

impl Default for Preprocess {
    fn default() -> Self {
        Self {
            scale: 1.0,
            mean: vec![0.0],
            std: vec![1.0],
        }
    }
}

/// Parse a number written as a decimal or a fraction `a/b`.
fn parse_number(key: &str, s: &str) -> Result<f64, NnError> {
    let bad = |reason: &str| NnError::Preprocess {
        key: key.into(),
        value: s.into(),
        reason: reason.into(),
    };
    let t = s.trim();
    let v = if let Some((a, b)) = t.split_once('/') {
        let a: f64 = a
            .trim()
            .parse()
            .map_err(|_| bad("not a number or fraction a/b"))?;
        let b: f64 = b
            .trim()
            .parse()
            .map_err(|_| bad("not a number or fraction a/b"))?;
        if b == 0.0 {
            return Err(bad("division by zero"));
        }
        a / b
    } else {
        t.parse().map_err(|_| bad("not a number or fraction a/b"))?
    };
    if !v.is_finite() {
        return Err(bad("not finite"));
    }
    Ok(v)
}

impl Preprocess {
    /// Parse the three metadata strings (`input_scale` e.g. `1/255`; `input_mean` and
    /// `input_std` comma-separated, one value per channel or one for all).
    ///
    /// # Errors
    /// [`NnError::Preprocess`] for unparsable values, a zero or negative std or scale.
    pub fn parse(scale: &str, mean: &str, std: &str) -> Result<Self, NnError> {
        let scale_v = parse_number("input_scale", scale)?;
        if scale_v <= 0.0 {
            return Err(NnError::Preprocess {
                key: "input_scale".into(),
                value: scale.into(),
                reason: "must be > 0".into(),
            });
        }
        let list = |key: &str, s: &str| -> Result<Vec<f64>, NnError> {
            s.split(',').map(|p| parse_number(key, p)).collect()
        };
        let mean_v = list("input_mean", mean)?;
        let std_v = list("input_std", std)?;
        if std_v.iter().any(|&v| v <= 0.0) {
            return Err(NnError::Preprocess {
                key: "input_std".into(),
                value: std.into(),
                reason: "every value must be > 0".into(),
            });
        }
        Ok(Self {
            scale: scale_v,
            mean: mean_v,
            std: std_v,
        })
    }

    /// Check the per-channel lists against `channels`.
    ///
    /// # Errors
    /// [`NnError::Preprocess`] when a list has neither 1 nor `channels` entries.
    pub fn check_channels(&self, channels: usize) -> Result<(), NnError> {
        for (key, l) in [("input_mean", &self.mean), ("input_std", &self.std)] {
            if l.len() != 1 && l.len() != channels {
                return Err(NnError::Preprocess {
                    key: key.into(),
                    value: format!("{l:?}"),
                    reason: format!("needs 1 or {channels} values (one per input channel)"),
                });
            }
        }
        Ok(())
    }

    /// Apply to one raw image laid out channel-major (`channels` planes) into `out`.
    pub fn apply<T: super::Real>(&self, raw: &[u8], channels: usize, out: &mut Vec<T>) {
        out.clear();
        let plane = raw.len().checked_div(channels).unwrap_or(0);
        for (i, &p) in raw.iter().enumerate() {
            let c = i.checked_div(plane).unwrap_or(0);
            let m = self
                .mean
                .get(c)
                .or(self.mean.first())
                .copied()
                .unwrap_or(0.0);
            let s = self.std.get(c).or(self.std.first()).copied().unwrap_or(1.0);
            out.push(T::from_f64((f64::from(p) * self.scale - m) / s));
        }
    }
}

/// The on-disk layout of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum DataFormat {
    /// CIFAR-10 binary (label byte + 3072 CHW pixels per record).
    Cifar10,
    /// MNIST IDX images with a companion labels file.
    MnistIdx,
    /// ImageNet 224×224: a little-endian `u16` label (0..=999) + 3·224·224 CHW pixels per
    /// record (150,530 bytes), no header.
    Imagenet224,
}

impl DataFormat {
    /// The name used on the command line (`--format`).
    pub fn name(self) -> &'static str {
        match self {
            DataFormat::Cifar10 => "cifar10",
            DataFormat::MnistIdx => "mnist",
            DataFormat::Imagenet224 => "imagenet224",
        }
    }

    /// Parse a `--format` name (`cifar10`, `mnist`, `imagenet224`).
    ///
    /// # Errors
    /// [`NnError::Config`] for any other name.
    pub fn parse(s: &str) -> Result<Self, NnError> {
        [
            DataFormat::Cifar10,
            DataFormat::MnistIdx,
            DataFormat::Imagenet224,
        ]
        .into_iter()
        .find(|f| f.name() == s)
        .ok_or_else(|| NnError::Config {
            what: "data format".into(),
            value: s.into(),
            valid: "cifar10, mnist or imagenet224".into(),
        })
    }
}

/// A labelled image set, pixels kept as raw bytes (CHW per image).
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Where it was read from.
    pub path: PathBuf,
    /// The detected layout.
    pub format: DataFormat,
    /// Per-image shape `[C, H, W]`.
    pub shape: [usize; 3],
    pixels: Vec<u8>,
    labels: Vec<u16>,
}

const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;
const IMAGENET_PIXELS: usize = 3 * 224 * 224;
const IMAGENET_RECORD: usize = 2 + IMAGENET_PIXELS;
const IMAGENET_CLASSES: u16 = 1000;

fn read(path: &Path) -> Result<Vec<u8>, NnError> {
    std::fs::read(path).map_err(|source| NnError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(s))
}

impl Dataset {
    /// Read a dataset in `format`, or detected from the file when `format` is `None` by this
    /// rule (never a guess: an ambiguous file is an error):
    /// 1. IDX magic 0x00000803 in the first 4 bytes → MNIST IDX;
    /// 2. otherwise the length: a positive multiple of the CIFAR-10 record (3,073 bytes) and
    ///    not of the ImageNet 224×224 record (150,530 bytes) → CIFAR-10; a multiple of
    ///    150,530 and not of 3,073 → ImageNet 224×224; a multiple of both → error (pass the
    ///    format explicitly); of neither → the CIFAR-10 reader's truncation error, which
    ///    names both record sizes.
    ///
    /// # Errors
    /// [`NnError::Io`] when unreadable, [`NnError::Data`] for a truncated file, a bad magic
    /// number, a missing or mismatched labels file, a label outside the format's classes, or
    /// a length that fits both record layouts.
    pub fn open(path: &Path, format: Option<DataFormat>) -> Result<Self, NnError> {
        let bytes = read(path)?;
        let format = match format {
            Some(f) => f,
            None => detect(path, &bytes)?,
        };
        match format {
            DataFormat::Cifar10 => Self::from_cifar_bytes(path, &bytes),
            DataFormat::Imagenet224 => Self::from_imagenet224_bytes(path, &bytes),
            DataFormat::MnistIdx => {
                let labels_path = mnist_labels_path(path)?;
                let lbytes = read(&labels_path)?;
                Self::from_mnist_bytes(path, &bytes, &labels_path, &lbytes)
            }
        }
    }

    /// Parse ImageNet 224×224 record bytes (u16 LE label + 150,528 CHW pixels per record).
    ///
    /// # Errors
    /// [`NnError::Data`] when the length is not a positive multiple of 150,530 (naming the
    /// record the file ends in and its missing bytes) or a label is outside 0..=999 (naming
    /// the record and its byte offset).
    pub fn from_imagenet224_bytes(path: &Path, bytes: &[u8]) -> Result<Self, NnError> {
        let rem = bytes.len() % IMAGENET_RECORD;
        if bytes.is_empty() || rem != 0 {
            return Err(NnError::Data {
                path: path.into(),
                reason: format!(
                    "ImageNet 224×224 records: length {} is not a positive multiple of the record \
                     size {IMAGENET_RECORD} (2-byte label + 3×224×224 pixels); record {} is \
                     truncated ({} of its bytes present, {} missing)",
                    bytes.len(),
                    bytes.len() / IMAGENET_RECORD,
                    rem,
                    if bytes.is_empty() {
                        IMAGENET_RECORD
                    } else {
                        IMAGENET_RECORD - rem
                    }
                ),
            });
        }
        let n = bytes.len() / IMAGENET_RECORD;
        let mut pixels = Vec::with_capacity(n * IMAGENET_PIXELS);
        let mut labels = Vec::with_capacity(n);
        for (i, rec) in bytes.chunks_exact(IMAGENET_RECORD).enumerate() {
            let (l, px) = rec.split_at(2);
            let label = u16::from_le_bytes([
                l.first().copied().unwrap_or(0xff),
                l.get(1).copied().unwrap_or(0xff),
            ]);
            if label >= IMAGENET_CLASSES {
                return Err(NnError::Data {
                    path: path.into(),
                    reason: format!(
                        "record {i} (byte offset {}): label {label}, expected 0..=999 (is this \
                         really the 2-byte-label ImageNet layout?)",
                        i * IMAGENET_RECORD
                    ),
                });
            }
            labels.push(label);
            pixels.extend_from_slice(px);
        }
        Ok(Self {
            path: path.into(),
            format: DataFormat::Imagenet224,
            shape: [3, 224, 224],
            pixels,
            labels,
        })
    }

    /// Parse CIFAR-10 binary bytes.
    ///
    /// # Errors
    /// [`NnError::Data`] when the length is not a positive multiple of 3073 or a label is
    /// outside 0..=9.
    pub fn from_cifar_bytes(path: &Path, bytes: &[u8]) -> Result<Self, NnError> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(CIFAR_RECORD) {
            return Err(NnError::Data {
                path: path.into(),
                reason: format!(
                    "CIFAR-10 binary: length {} is not a positive multiple of the record size \
                     {CIFAR_RECORD} (1 label byte + 3072 pixels); truncated or not CIFAR data",
                    bytes.len()
                ),
            });
        }
        let n = bytes.len() / CIFAR_RECORD;
        let mut pixels = Vec::with_capacity(n * 3072);
        let mut labels = Vec::with_capacity(n);
        for (i, rec) in bytes.chunks_exact(CIFAR_RECORD).enumerate() {
            let (l, px) = rec.split_at(1);
            let label = l.first().copied().unwrap_or(255);
            if label > 9 {
                return Err(NnError::Data {
                    path: path.into(),
                    reason: format!(
                        "record {i} (byte offset {}): label {label}, expected 0..=9",
                        i * CIFAR_RECORD
                    ),
                });
            }
            labels.push(u16::from(label));
            pixels.extend_from_slice(px);
        }
        Ok(Self {
            path: path.into(),
            format: DataFormat::Cifar10,
            shape: [3, 32, 32],
            pixels,
            labels,
        })
    }

    /// Parse MNIST IDX image and label bytes.
    ///
    /// # Errors
    /// [`NnError::Data`] for a bad magic number, a truncated file, mismatched counts or a
    /// label outside 0..=9.
    pub fn from_mnist_bytes(
        path: &Path,
        images: &[u8],
        labels_path: &Path,
        labels: &[u8],
    ) -> Result<Self, NnError> {
        let bad = |p: &Path, reason: String| NnError::Data {
            path: p.into(),
            reason,
        };
        let magic = be_u32(images, 0);
        if magic != Some(0x0000_0803) {
            return Err(bad(
                path,
                format!("IDX images: magic {magic:08x?}, expected 0x00000803"),
            ));
        }
        let (Some(n), Some(rows), Some(cols)) =
            (be_u32(images, 4), be_u32(images, 8), be_u32(images, 12))
        else {
            return Err(bad(path, "IDX images: header shorter than 16 bytes".into()));
        };
        let (n, rows, cols) = (n as usize, rows as usize, cols as usize);
        // Checked: a hostile header may declare counts whose product overflows.
        let expect = n
            .checked_mul(rows)
            .and_then(|v| v.checked_mul(cols))
            .and_then(|v| v.checked_add(16));
        if expect != Some(images.len()) || n == 0 {
            let expect =
                expect.map_or_else(|| "more than usize::MAX".to_string(), |v| v.to_string());
            return Err(bad(
                path,
                format!(
                    "IDX images: {} bytes, header ({n} images of {rows}×{cols}) implies {expect}",
                    images.len()
                ),
            ));
        }
        let lmagic = be_u32(labels, 0);
        if lmagic != Some(0x0000_0801) {
            return Err(bad(
                labels_path,
                format!("IDX labels: magic {lmagic:08x?}, expected 0x00000801"),
            ));
        }
        let ln = be_u32(labels, 4).map(|v| v as usize);
        if ln != Some(n) || labels.len() != 8 + n {
            return Err(bad(
                labels_path,
                format!(
                    "IDX labels: {} bytes with count {ln:?}, expected {n} labels ({} bytes) to \
                     match {}",
                    labels.len(),
                    8 + n,
                    path.display()
                ),
            ));
        }
        let lab: Vec<u16> = labels
            .get(8..)
            .unwrap_or(&[])
            .iter()
            .map(|&l| u16::from(l))
            .collect();
        if let Some((i, l)) = lab.iter().enumerate().find(|(_, &l)| l > 9) {
            return Err(bad(
                labels_path,
                format!("label {i} is {l}, expected 0..=9"),
            ));
        }
        Ok(Self {
            path: path.into(),
            format: DataFormat::MnistIdx,
            shape: [1, rows, cols],
            pixels: images.get(16..).unwrap_or(&[]).to_vec(),
            labels: lab,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Keep only the first `k` images.
    pub fn truncate(&mut self, k: usize) {
        if k < self.len() {
            self.labels.truncate(k);
            self.pixels.truncate(k * self.image_len());
        }
    }

    /// Keep `k` images spread evenly over the file: indices ⌊i·n/k⌋ for i < k (n images).
    /// Useful for files sorted by class (the CIFAR-10 JPEG copy), where the first `k` images
    /// would all share one label. Keeps everything when `k ≥ n`.
    pub fn select_evenly(&mut self, k: usize) {
        let n = self.len();
        if k >= n {
            return;
        }
        let l = self.image_len();
        let mut pixels = Vec::with_capacity(k * l);
        let mut labels = Vec::with_capacity(k);
        for i in 0..k {
            let j = i * n / k;
            if let (Some(img), Some(lab)) = (self.image(j), self.label(j)) {
                pixels.extend_from_slice(img);
                labels.push(lab);
            }
        }
        self.pixels = pixels;
        self.labels = labels;
    }

    /// Values per image (C·H·W).
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Raw bytes of image `i` (CHW), `None` past the end.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let l = self.image_len();
        self.pixels.get(i * l..(i + 1) * l)
    }

    /// Label (class index) of image `i`.
    pub fn label(&self, i: usize) -> Option<u16> {
        self.labels.get(i).copied()
    }

    /// All labels.
    pub fn labels(&self) -> &[u16] {
        &self.labels
    }
}

/// The format of a file by the rule of [`Dataset::open`].
fn detect(path: &Path, bytes: &[u8]) -> Result<DataFormat, NnError> {
    if be_u32(bytes, 0) == Some(0x0000_0803) {
        return Ok(DataFormat::MnistIdx);
    }
    detect_by_length(path, bytes.len())
}

/// Step 2 of the rule of [`Dataset::open`]: the format of a file of `n` bytes without IDX magic.
fn detect_by_length(path: &Path, n: usize) -> Result<DataFormat, NnError> {
    let cifar = n > 0 && n.is_multiple_of(CIFAR_RECORD);
    let imagenet = n > 0 && n.is_multiple_of(IMAGENET_RECORD);
    match (cifar, imagenet) {
        (true, true) => Err(NnError::Data {
            path: path.into(),
            reason: format!(
                "length {n} fits both the CIFAR-10 ({CIFAR_RECORD}-byte) and the ImageNet \
                 224×224 ({IMAGENET_RECORD}-byte) record layouts; pass the format explicitly \
                 (--format cifar10 or --format imagenet224)"
            ),
        }),
        (false, true) => Ok(DataFormat::Imagenet224),
        (true, false) => Ok(DataFormat::Cifar10),
        (false, false) => Err(NnError::Data {
            path: path.into(),
            reason: format!(
                "length {n} is a positive multiple of neither the CIFAR-10 record \
                 ({CIFAR_RECORD} bytes) nor the ImageNet 224×224 record ({IMAGENET_RECORD} \
                 bytes), and the file has no IDX magic; truncated, or not a supported layout"
            ),
        }),
    }
}

/// `…/t10k-images-idx3-ubyte` → `…/t10k-labels-idx1-ubyte`.
fn mnist_labels_path(images: &Path) -> Result<PathBuf, NnError> {
    let name = images
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if !name.contains("images-idx3") {
        return Err(NnError::Data {
            path: images.into(),
            reason: "MNIST IDX images: cannot locate the labels file (expected a name containing \
                     `images-idx3`, whose labels file has `labels-idx1` in its place)"
                .into(),
        });
    }
    Ok(images.with_file_name(name.replace("images-idx3", "labels-idx1")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_evenly_spreads_over_a_class_sorted_file() {
        // 20 CIFAR records sorted by class (2 per class), pixel 0 holds the record index.
        let mut bytes = Vec::new();
        for i in 0..20u8 {
            bytes.push(i / 2);
            let mut px = vec![0u8; 3072];
            px[0] = i;
            bytes.extend_from_slice(&px);
        }
        let mut d = Dataset::from_cifar_bytes(Path::new("mem"), &bytes).unwrap();
        d.select_evenly(5);
        assert_eq!(d.len(), 5);
        assert_eq!(d.labels(), &[0, 2, 4, 6, 8]);
        let firsts: Vec<u8> = (0..5).map(|i| d.image(i).unwrap()[0]).collect();
        assert_eq!(firsts, vec![0, 4, 8, 12, 16]);
        d.select_evenly(50);
        assert_eq!(d.len(), 5);
    }

    #[test]
    fn preprocess_parses_fractions_and_lists() {
        let p = Preprocess::parse("1/255", "0.485,0.456,0.406", "0.229,0.224,0.225").unwrap();
        assert_eq!(p.scale, 1.0 / 255.0);
        assert_eq!(p.mean.len(), 3);
        p.check_channels(3).unwrap();
        assert!(p.check_channels(1).is_err());
        assert!(Preprocess::parse("1/0", "0", "1").is_err());
        assert!(Preprocess::parse("x", "0", "1").is_err());
        assert!(Preprocess::parse("1", "0", "0").is_err());
        let mut out: Vec<f64> = Vec::new();
        let p = Preprocess::parse("2", "1,2", "1,4").unwrap();
        p.apply(&[1, 3, 5, 7], 2, &mut out);
        assert_eq!(out, vec![1.0, 5.0, 2.0, 3.0]);
    }

    #[test]
    fn cifar_rejects_truncated_and_bad_labels() {
        let p = Path::new("x.bin");
        let mut rec = vec![3u8];
        rec.extend(std::iter::repeat_n(7u8, 3072));
        let d = Dataset::from_cifar_bytes(p, &rec).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d.label(0), Some(3));
        assert_eq!(d.image(0).unwrap().len(), 3072);
        let e = Dataset::from_cifar_bytes(p, &rec[..100]).unwrap_err();
        assert!(e.to_string().contains("not a positive multiple"), "{e}");
        rec[0] = 12;
        let e = Dataset::from_cifar_bytes(p, &rec).unwrap_err();
        assert!(e.to_string().contains("label 12"), "{e}");
    }

    /// `n` ImageNet records with labels `labels[i]` and pixel 0 of record i equal to i.
    fn imagenet_bytes(labels: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        for (i, l) in labels.iter().enumerate() {
            b.extend_from_slice(&l.to_le_bytes());
            let mut px = vec![0u8; IMAGENET_PIXELS];
            px[0] = i as u8;
            px[IMAGENET_PIXELS - 1] = 200;
            b.extend_from_slice(&px);
        }
        b
    }

    #[test]
    fn imagenet_reads_two_byte_labels() {
        let b = imagenet_bytes(&[999, 0, 258]);
        let d = Dataset::from_imagenet224_bytes(Path::new("v.bin"), &b).unwrap();
        assert_eq!(
            (d.len(), d.shape, d.format),
            (3, [3, 224, 224], DataFormat::Imagenet224)
        );
        // 258 = 0x0102: the low byte first.
        assert_eq!(d.labels(), &[999, 0, 258]);
        assert_eq!(d.image(2).unwrap()[0], 2);
        assert_eq!(d.image(1).unwrap()[IMAGENET_PIXELS - 1], 200);
        assert_eq!(
            detect(Path::new("v.bin"), &b).unwrap(),
            DataFormat::Imagenet224
        );
    }

    #[test]
    fn imagenet_rejects_truncated_and_inconsistent_files() {
        let p = Path::new("/d/v.bin");
        let b = imagenet_bytes(&[1, 2]);
        let e = Dataset::from_imagenet224_bytes(p, &b[..b.len() - 3]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/d/v.bin: ImageNet 224×224 records: length 301057 is not a positive multiple of the \
             record size 150530 (2-byte label + 3×224×224 pixels); record 1 is truncated \
             (150527 of its bytes present, 3 missing)"
        );
        let e = Dataset::from_imagenet224_bytes(p, &[]).unwrap_err();
        assert!(e.to_string().contains("length 0"), "{e}");
        let mut bad = b.clone();
        bad[IMAGENET_RECORD] = 0xe8; // 1000 = 0x03e8
        bad[IMAGENET_RECORD + 1] = 0x03;
        let e = Dataset::from_imagenet224_bytes(p, &bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/d/v.bin: record 1 (byte offset 150530): label 1000, expected 0..=999 (is this \
             really the 2-byte-label ImageNet layout?)"
        );
        // A CIFAR-10 file read as ImageNet (and the reverse) fails on the length.
        let cifar = vec![0u8; CIFAR_RECORD * 2];
        assert!(Dataset::from_imagenet224_bytes(p, &cifar).is_err());
        assert!(Dataset::from_cifar_bytes(p, &b).is_err());
    }

    #[test]
    fn detection_never_guesses() {
        let p = Path::new("f.bin");
        assert_eq!(
            detect(p, &vec![0u8; CIFAR_RECORD * 3]).unwrap(),
            DataFormat::Cifar10
        );
        assert_eq!(
            detect(p, &vec![0u8; IMAGENET_RECORD]).unwrap(),
            DataFormat::Imagenet224
        );
        // A length that is a multiple of both record sizes is refused, not guessed.
        let e = detect_by_length(p, CIFAR_RECORD * IMAGENET_RECORD)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fits both") && e.contains("--format"), "{e}");
        let e = detect(p, &vec![0u8; 1000]).unwrap_err().to_string();
        assert!(e.contains("length 1000") && e.contains("150530"), "{e}");
        assert_eq!(
            DataFormat::parse("imagenet224").unwrap(),
            DataFormat::Imagenet224
        );
        assert_eq!(
            DataFormat::parse("jpeg").unwrap_err().to_string(),
            "data format = jpeg: cifar10, mnist or imagenet224"
        );
    }

    #[test]
    fn mnist_checks_header_and_counts() {
        let mut img = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        img.extend([1, 2, 3, 4, 5, 6, 7, 8]);
        let lab = vec![0, 0, 8, 1, 0, 0, 0, 2, 4, 9];
        let d = Dataset::from_mnist_bytes(Path::new("a"), &img, Path::new("b"), &lab).unwrap();
        assert_eq!(d.shape, [1, 2, 2]);
        assert_eq!(d.image(1), Some(&[5u8, 6, 7, 8][..]));
        assert_eq!(d.labels(), &[4, 9]);
        assert!(
            Dataset::from_mnist_bytes(Path::new("a"), &img[..20], Path::new("b"), &lab).is_err()
        );
        assert!(
            Dataset::from_mnist_bytes(Path::new("a"), &img, Path::new("b"), &lab[..9]).is_err()
        );
        assert_eq!(
            mnist_labels_path(Path::new("/d/t10k-images-idx3-ubyte")).unwrap(),
            PathBuf::from("/d/t10k-labels-idx1-ubyte")
        );
    }
}
