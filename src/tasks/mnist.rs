//! Pixel-by-pixel MNIST: an image is read as 784 time steps of one input,
//! pixel/255, row by row; permuted MNIST reads the pixels in one fixed
//! random order instead (a permutation drawn from `perm_seed`, the same in
//! training and evaluation). Ten classes, softmax cross-entropy and accuracy
//! on the last step only.
//!
//! Splits: the last 5,000 of the 60,000 training images are held out as the
//! validation split; training samples from the first 55,000 (or the first N
//! of them with `train_examples`); the 10,000 test images are the test split.

use super::{Batch, Target};
use crate::data::mnist::{self, Mnist, Split, CLASSES, PIXELS};
use crate::rng::Rng;
use anyhow::{ensure, Result};
use ndarray::Array3;
use std::path::Path;

/// Training images held out (the last ones of the training file) for validation.
pub const VALID_IMAGES: usize = 5_000;

/// Time step t reads pixel `perm[t]` of the image.
pub fn permutation(seed: u64) -> Vec<u16> {
    let mut p: Vec<u16> = (0..PIXELS as u16).collect();
    let mut rng = Rng::seed(seed);
    // Fisher–Yates
    for i in (1..PIXELS).rev() {
        p.swap(i, rng.below(i + 1));
    }
    p
}

/// The training images a run samples from, and the order it reads pixels in.
#[derive(Clone, Debug, PartialEq)]
pub struct PixelMnist {
    pub train: Mnist,
    /// `None`: row by row (mnist); `Some`: permuted (pmnist)
    pub perm: Option<Vec<u16>>,
}

/// The training file split into (training part, validation part).
pub fn train_valid(dir: &Path) -> Result<(Mnist, Mnist)> {
    let all = mnist::load(dir, Split::Train)?;
    let n = all.len();
    ensure!(n > VALID_IMAGES, "{} holds {n} training images; holding out {VALID_IMAGES} for validation needs more", Split::Train.image_file(dir).display());
    let cut = n - VALID_IMAGES;
    let valid = Mnist { images: all.images[cut * PIXELS..].to_vec(), labels: all.labels[cut..].to_vec() };
    let mut train = all;
    train.images.truncate(cut * PIXELS);
    train.labels.truncate(cut);
    Ok((train, valid))
}

impl PixelMnist {
    /// Loads the training part of `dir`'s training file, cut to its first
    /// `train_examples` images when given.
    pub fn load(dir: &Path, permuted: bool, perm_seed: u64, train_examples: Option<usize>) -> Result<Self> {
        let (mut train, _) = train_valid(dir)?;
        if let Some(n) = train_examples {
            ensure!(n >= 1 && n <= train.len(), "--train-examples must be in 1..={} (the training images less the {VALID_IMAGES} held out), got {n}", train.len());
            train.images.truncate(n * PIXELS);
            train.labels.truncate(n);
        }
        Ok(PixelMnist { train, perm: permuted.then(|| permutation(perm_seed)) })
    }

    /// `b` training images drawn uniformly with replacement from `rng`.
    pub fn sample(&self, b: usize, rng: &mut Rng) -> Batch {
        let idx: Vec<usize> = (0..b).map(|_| rng.below(self.train.len())).collect();
        batch(&self.train, &idx, self.perm.as_deref())
    }
}

/// Images `idx` of `set` as one batch: x `(784, B, 1)`, the label as the
/// target of the last step, the only row that weighs in the loss and counts
/// for accuracy.
pub fn batch(set: &Mnist, idx: &[usize], perm: Option<&[u16]>) -> Batch {
    let b = idx.len();
    let mut x = Array3::zeros((PIXELS, b, 1));
    let rows = PIXELS * b;
    let mut cls = vec![0u32; rows];
    let mut mask = vec![0f32; rows];
    for (j, &i) in idx.iter().enumerate() {
        let img = set.image(i);
        for t in 0..PIXELS {
            let p = perm.map_or(t, |p| p[t] as usize);
            x[[t, j, 0]] = img[p] as f32 / 255.0;
        }
        let last = (PIXELS - 1) * b + j;
        cls[last] = set.labels[i] as u32;
        mask[last] = 1.0;
    }
    Batch { x, target: Target::Classes(cls), mask: mask.clone(), metric_mask: mask, loss_norm: None, tokens: None, carry_state: false, feedback: None, carry_at: None }
}

/// Images as series for completion: each `(784, 1)`, pixel/255, row by row.
pub fn image_series(set: &Mnist, limit: Option<usize>) -> Vec<ndarray::Array2<f32>> {
    let n = limit.map_or(set.len(), |l| l.min(set.len()));
    (0..n).map(|i| ndarray::Array2::from_shape_fn((PIXELS, 1), |(t, _)| set.image(i)[t] as f32 / 255.0)).collect()
}

/// A memoryless model can do no better than the class prior; ln 10 is the
/// uniform guess's loss (MNIST's classes are nearly balanced).
pub fn baseline_loss() -> f64 {
    (CLASSES as f64).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::mnist::tests::{tmp_dir, write_split};

    #[test]
    fn permutation_is_a_fixed_permutation_of_the_pixels() {
        let p = permutation(7);
        assert_eq!(p, permutation(7));
        assert_ne!(p, permutation(8));
        let mut s = p.clone();
        s.sort();
        assert_eq!(s, (0..PIXELS as u16).collect::<Vec<_>>());
        assert!(p.iter().enumerate().filter(|(i, &v)| *i == v as usize).count() < 20, "hardly shuffled");
    }

    #[test]
    fn holds_out_the_last_images_and_cuts_the_training_part() {
        let dir = tmp_dir("split");
        let labels: Vec<u8> = (0..VALID_IMAGES + 30).map(|i| (i % 10) as u8).collect();
        write_split(&dir, Split::Train, &labels);
        let (train, valid) = train_valid(&dir).unwrap();
        assert_eq!((train.len(), valid.len()), (30, VALID_IMAGES));
        // image i's first pixel is i mod 256 in the synthetic files
        assert_eq!(valid.image(0)[0], 30);
        assert_eq!(valid.labels[0], 0);
        let m = PixelMnist::load(&dir, false, 0, Some(12)).unwrap();
        assert_eq!(m.train.len(), 12);
        for bad in [0, 31] {
            let e = format!("{:#}", PixelMnist::load(&dir, false, 0, Some(bad)).unwrap_err());
            assert!(e.contains("--train-examples") && e.contains("1..=30"), "{e}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn batches_read_pixels_in_order_or_permuted() {
        let dir = tmp_dir("batch");
        let labels: Vec<u8> = (0..VALID_IMAGES + 40).map(|i| (i * 7 % 10) as u8).collect();
        write_split(&dir, Split::Train, &labels);
        let plain = PixelMnist::load(&dir, false, 0, None).unwrap();
        let perm = PixelMnist::load(&dir, true, 3, None).unwrap();
        let (a, b) = (plain.sample(6, &mut Rng::seed(1)), perm.sample(6, &mut Rng::seed(1)));
        assert_eq!(a.x.dim(), (PIXELS, 6, 1));
        let p = perm.perm.as_ref().unwrap();
        let Target::Classes(cls) = &a.target else { panic!() };
        for j in 0..6 {
            // the sampled image: its first pixel is its index (mod 256)
            let i = (a.x[[0, j, 0]] * 255.0).round() as usize;
            for (t, &pt) in p.iter().enumerate() {
                assert_eq!(a.x[[t, j, 0]], plain.train.image(i)[t] as f32 / 255.0);
                assert_eq!(b.x[[t, j, 0]], a.x[[pt as usize, j, 0]], "permuted step {t} is plain step perm[t]");
            }
            let last = (PIXELS - 1) * 6 + j;
            assert_eq!(cls[last], labels[i] as u32);
            assert_eq!((a.mask[last], a.metric_mask[last]), (1.0, 1.0));
        }
        assert_eq!(a.mask.iter().sum::<f32>(), 6.0);
        assert_eq!(a.target, b.target);
        std::fs::remove_dir_all(&dir).ok();
    }
}
