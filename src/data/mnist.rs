//! MNIST in its IDX format, gzip-compressed as distributed:
//! `train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`,
//! `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz` in one folder.
//!
//! IDX: a big-endian header, then the raw bytes. Images: magic 2051, count,
//! rows, cols, then count·rows·cols pixels (0..=255, row by row). Labels:
//! magic 2049, count, then count bytes. Every defect of a file is an error
//! naming the file: the data comes from the user, so nothing here panics.

use anyhow::{bail, ensure, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

pub const ROWS: usize = 28;
pub const COLS: usize = 28;
/// Pixels of one image, the length of a pixel-by-pixel sequence.
pub const PIXELS: usize = ROWS * COLS;
pub const CLASSES: usize = 10;

const IMAGES_MAGIC: u32 = 2051;
const LABELS_MAGIC: u32 = 2049;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// the 60,000 training images (the tasks hold out the last 5,000 as validation)
    Train,
    /// the 10,000 test images
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }

    pub fn image_file(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}-images-idx3-ubyte.gz", self.prefix()))
    }

    pub fn label_file(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}-labels-idx1-ubyte.gz", self.prefix()))
    }
}

/// One split: `images[i·784 .. (i+1)·784]` is image i, row by row.
#[derive(Clone, PartialEq, Eq)]
pub struct Mnist {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

// 47 MB of pixels do not belong in a Debug line
impl std::fmt::Debug for Mnist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mnist {{ {} images }}", self.len())
    }
}

impl Mnist {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * PIXELS..(i + 1) * PIXELS]
    }
}

/// Loads one split from `dir`, checking both files fully.
pub fn load(dir: &Path, split: Split) -> Result<Mnist> {
    let (img_path, lab_path) = (split.image_file(dir), split.label_file(dir));
    let images = parse_images(&gunzip(&img_path)?).with_context(|| format!("{} is not an MNIST image file", img_path.display()))?;
    let labels = parse_labels(&gunzip(&lab_path)?).with_context(|| format!("{} is not an MNIST label file", lab_path.display()))?;
    let n = images.len() / PIXELS;
    ensure!(
        n == labels.len(),
        "{} holds {n} images but {} holds {} labels",
        img_path.display(),
        lab_path.display(),
        labels.len()
    );
    Ok(Mnist { images, labels })
}

fn gunzip(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    // the decoder checks the gzip trailer (CRC and length): a cut or
    // damaged file fails here rather than giving wrong pixels
    flate2::read::GzDecoder::new(std::io::BufReader::new(file))
        .read_to_end(&mut out)
        .with_context(|| format!("{} is not a readable gzip file (truncated or corrupt?)", path.display()))?;
    Ok(out)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The pixels of an uncompressed IDX image file.
pub fn parse_images(bytes: &[u8]) -> Result<Vec<u8>> {
    // the magic first: a file of the wrong kind should say so, however short
    ensure!(bytes.len() >= 4, "header truncated: {} bytes, an image file's header has 16", bytes.len());
    let magic = be_u32(bytes, 0);
    ensure!(magic == IMAGES_MAGIC, "bad magic number {magic} (an image file has {IMAGES_MAGIC}{})", if magic == LABELS_MAGIC { "; this is a label file" } else { "" });
    ensure!(bytes.len() >= 16, "header truncated: {} bytes, an image file's header has 16", bytes.len());
    let (n, rows, cols) = (be_u32(bytes, 4) as usize, be_u32(bytes, 8) as usize, be_u32(bytes, 12) as usize);
    ensure!((rows, cols) == (ROWS, COLS), "images are {rows}x{cols}, expected {ROWS}x{COLS}");
    check_len(bytes.len() - 16, n * PIXELS, n, "images")?;
    Ok(bytes[16..].to_vec())
}

/// The labels of an uncompressed IDX label file.
pub fn parse_labels(bytes: &[u8]) -> Result<Vec<u8>> {
    // the magic first: a file of the wrong kind should say so, however short
    ensure!(bytes.len() >= 4, "header truncated: {} bytes, a label file's header has 8", bytes.len());
    let magic = be_u32(bytes, 0);
    ensure!(magic == LABELS_MAGIC, "bad magic number {magic} (a label file has {LABELS_MAGIC}{})", if magic == IMAGES_MAGIC { "; this is an image file" } else { "" });
    ensure!(bytes.len() >= 8, "header truncated: {} bytes, a label file's header has 8", bytes.len());
    let n = be_u32(bytes, 4) as usize;
    check_len(bytes.len() - 8, n, n, "labels")?;
    let labels = bytes[8..].to_vec();
    if let Some(i) = labels.iter().position(|&l| l as usize >= CLASSES) {
        bail!("label {i} is {}, not a digit 0..=9", labels[i]);
    }
    Ok(labels)
}

fn check_len(have: usize, want: usize, n: usize, what: &str) -> Result<()> {
    if have < want {
        bail!("truncated: the header announces {n} {what} ({want} bytes of data) but only {have} bytes follow");
    }
    if have > want {
        bail!("{} bytes after the {n} {what} the header announces", have - want);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    pub fn idx_images(n: usize, rows: u32, cols: u32, pixel: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [IMAGES_MAGIC, n as u32, rows, cols] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        for i in 0..n {
            for p in 0..(rows * cols) as usize {
                b.push(pixel(i, p));
            }
        }
        b
    }

    pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [LABELS_MAGIC, labels.len() as u32] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(labels);
        b
    }

    pub fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// A fresh folder under the system temp dir.
    pub fn tmp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("longmem-mnist-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Writes a split of `labels.len()` images whose pixel p of image i is (i + p) mod 256.
    pub fn write_split(dir: &Path, split: Split, labels: &[u8]) {
        std::fs::write(split.image_file(dir), gzip(&idx_images(labels.len(), 28, 28, |i, p| ((i + p) % 256) as u8))).unwrap();
        std::fs::write(split.label_file(dir), gzip(&idx_labels(labels))).unwrap();
    }

    fn err(dir: &Path, split: Split) -> String {
        format!("{:#}", load(dir, split).unwrap_err())
    }

    #[test]
    fn loads_a_tiny_split() {
        let dir = tmp_dir("ok");
        write_split(&dir, Split::Test, &[3, 1, 4, 1, 5]);
        let m = load(&dir, Split::Test).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m.labels, vec![3, 1, 4, 1, 5]);
        assert_eq!(m.images.len(), 5 * PIXELS);
        assert_eq!(m.image(2)[0], 2);
        assert_eq!(m.image(2)[300], (302 % 256) as u8);
        assert_eq!(format!("{m:?}"), "Mnist { 5 images }");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tmp_dir("missing");
        let e = err(&dir, Split::Train);
        assert!(e.contains("train-images-idx3-ubyte.gz") && e.contains("cannot open"), "{e}");
        // images present, labels missing
        std::fs::write(Split::Train.image_file(&dir), gzip(&idx_images(2, 28, 28, |_, _| 0))).unwrap();
        let e = err(&dir, Split::Train);
        assert!(e.contains("train-labels-idx1-ubyte.gz"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn corrupt_files_are_errors_naming_the_file_and_the_defect() {
        let dir = tmp_dir("corrupt");
        let labels = [0u8, 1, 2];
        let good_images = idx_images(3, 28, 28, |_, p| p as u8);
        // what, images file, labels file, the file the error names, words in the message
        type Case = (&'static str, Vec<u8>, Vec<u8>, &'static str, &'static str);
        let cases: Vec<Case> = vec![
            ("bad image magic", gzip(&idx_labels(&labels)), gzip(&idx_labels(&labels)), "t10k-images", "bad magic number 2049"),
            ("bad label magic", gzip(&good_images), gzip(&good_images), "t10k-labels", "bad magic number 2051"),
            ("wrong size", gzip(&idx_images(3, 28, 27, |_, _| 0)), gzip(&idx_labels(&labels)), "t10k-images", "28x27"),
            ("truncated pixels", gzip(&good_images[..good_images.len() - 1]), gzip(&idx_labels(&labels)), "t10k-images", "truncated"),
            ("truncated header", gzip(&good_images[..10]), gzip(&idx_labels(&labels)), "t10k-images", "header truncated"),
            ("empty file", gzip(&[]), gzip(&idx_labels(&labels)), "t10k-images", "header truncated: 0 bytes"),
            ("truncated label header", gzip(&good_images), gzip(&idx_labels(&labels)[..6]), "t10k-labels", "header truncated: 6 bytes"),
            ("extra bytes", gzip(&[good_images.clone(), vec![0]].concat()), gzip(&idx_labels(&labels)), "t10k-images", "1 bytes after"),
            ("truncated labels", gzip(&good_images), gzip(&idx_labels(&labels)[..10]), "t10k-labels", "truncated"),
            ("label out of range", gzip(&good_images), gzip(&idx_labels(&[0, 10, 2])), "t10k-labels", "label 1 is 10"),
            ("counts differ", gzip(&good_images), gzip(&idx_labels(&[0, 1])), "t10k-labels", "3 images but"),
            ("not gzip", good_images.clone(), gzip(&idx_labels(&labels)), "t10k-images", "gzip"),
            ("cut gzip stream", gzip(&good_images)[..200].to_vec(), gzip(&idx_labels(&labels)), "t10k-images", "gzip"),
        ];
        for (what, img, lab, file, words) in cases {
            std::fs::write(Split::Test.image_file(&dir), img).unwrap();
            std::fs::write(Split::Test.label_file(&dir), lab).unwrap();
            let e = err(&dir, Split::Test);
            assert!(e.contains(file) && e.contains(words), "{what}: the error does not name {file} and '{words}': {e}");
        }
        // a flipped byte inside the compressed data: the CRC catches it if inflating does not
        let mut z = gzip(&good_images);
        let mid = z.len() / 2;
        z[mid] ^= 0x55;
        std::fs::write(Split::Test.image_file(&dir), z).unwrap();
        std::fs::write(Split::Test.label_file(&dir), gzip(&idx_labels(&labels))).unwrap();
        assert!(load(&dir, Split::Test).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
