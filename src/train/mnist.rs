//! Evaluation of pixel-MNIST runs: loss and accuracy over whole splits
//! (validation: the last 5,000 training images; test: the 10,000 test
//! images), read in order in batches of the run's `--batch`. Training itself
//! is `train::run`'s loop, which samples its minibatches through the task.

use super::backend::Backend;
use super::checkpoint::Checkpoint;
use super::lm::{SplitCounts, SplitFigures};
use super::loss::accuracy;
use super::run::{backend, CHECKPOINT_FILE};
use crate::config::TrainConfig;
use crate::data::mnist::{self, Mnist, Split, CLASSES};
use crate::device::Engine;
use crate::models::{Dims, Model};
use crate::tasks::mnist::{batch, permutation, train_valid};
use crate::tasks::TaskKind;
use anyhow::{ensure, Context, Result};
use serde::Serialize;
use std::path::Path;

#[derive(Clone, Debug, Serialize)]
pub struct MnistEval {
    pub accuracy: SplitFigures,
    /// mean cross-entropy per image (nats)
    pub loss: SplitFigures,
    pub examples: SplitCounts,
    pub permuted: bool,
    pub step: u64,
    pub batch: usize,
    pub device: String,
}

/// Mean loss and accuracy over every image of `set`, in order.
pub fn split_metrics(be: &mut dyn Backend, set: &Mnist, perm: Option<&[u16]>, batch_size: usize) -> Result<(f64, f64)> {
    ensure!(batch_size > 0 && !set.is_empty(), "nothing to evaluate: {} images in batches of {batch_size}", set.len());
    let (mut loss, mut hits) = (0.0, 0.0);
    let idx: Vec<usize> = (0..set.len()).collect();
    for chunk in idx.chunks(batch_size) {
        let b = batch(set, chunk, perm);
        let (l, y) = be.evaluate(&b)?;
        ensure!(l.is_finite(), "the model's loss is not finite on images {}..{}", chunk[0], chunk[0] + chunk.len());
        // the batch loss is a mean over its images: weigh it by their number
        loss += l as f64 * chunk.len() as f64;
        hits += accuracy(&y, CLASSES, &b.target, &b.metric_mask).unwrap_or(0.0) * chunk.len() as f64;
    }
    let n = set.len() as f64;
    Ok((loss / n, hits / n))
}

/// Validation and test loss and accuracy of a run's checkpoint.
pub fn evaluate(dir: &Path, cfg: &TrainConfig, engine: &Engine) -> Result<MnistEval> {
    ensure!(cfg.task.is_mnist(), "{} is not an MNIST run", dir.display());
    let data = Path::new(cfg.data.as_deref().context("the run's config names no --data folder for its MNIST images")?);
    let dims = Dims { input: 1, hidden: cfg.hidden, output: CLASSES };
    let model = Model::build(cfg.model, dims, &cfg.model_options())?;
    let ck = Checkpoint::load(&model, &dir.join(CHECKPOINT_FILE))?;
    let mut be = backend(engine, model, ck.params, cfg)?;
    let permuted = cfg.task == TaskKind::Pmnist;
    let perm = permuted.then(|| permutation(cfg.perm_seed));
    let (_, valid) = train_valid(data)?;
    let test = mnist::load(data, Split::Test)?;
    let (vl, va) = split_metrics(be.as_mut(), &valid, perm.as_deref(), cfg.batch)?;
    let (tl, ta) = split_metrics(be.as_mut(), &test, perm.as_deref(), cfg.batch)?;
    Ok(MnistEval {
        accuracy: SplitFigures { valid: va, test: ta },
        loss: SplitFigures { valid: vl, test: tl },
        examples: SplitCounts { valid: valid.len(), test: test.len() },
        permuted,
        step: ck.step,
        batch: cfg.batch,
        device: engine.describe(),
    })
}
