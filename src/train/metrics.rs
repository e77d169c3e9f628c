//! metrics.jsonl: one JSON object per logged step.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsLine {
    pub step: u64,
    /// mean training loss over the steps since the last line
    pub loss: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub baseline_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub accuracy: Option<f64>,
    pub grad_norm: f64,
    pub lr: f64,
    pub elapsed_s: f64,
    pub steps_per_s: f64,
    /// "floss" on the lines of flossing updates (then `loss` is the flossing
    /// loss, the mean of λ_i² over the flossed exponents); absent on training lines
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub phase: Option<String>,
    /// flossing updates so far
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub floss_updates: Option<u64>,
    /// the flossed Lyapunov exponents λ_1..λ_k (nats per step, estimated on the flossing trajectories)
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lyapunov: Option<Vec<f64>>,
    /// language modelling: the epoch, and exp(loss) (loss = nats per token)
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub epoch: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub perplexity: Option<f64>,
}

impl MetricsLine {
    pub fn is_training(&self) -> bool {
        self.phase.is_none()
    }
}

pub fn append(path: &Path, line: &MetricsLine) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(f, "{}", serde_json::to_string(line)?)?;
    Ok(())
}

pub fn read(path: &Path) -> Result<Vec<MetricsLine>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{} line {} is not a metrics object", path.display(), i + 1)))
        .collect()
}

/// Keep only lines up to `step` (a resumed run rewrites what came after its checkpoint).
pub fn truncate_after(path: &Path, step: u64) -> Result<()> {
    let lines: Vec<MetricsLine> = read(path)?.into_iter().filter(|l| l.step <= step).collect();
    let mut text = String::new();
    for l in &lines {
        text.push_str(&serde_json::to_string(l)?);
        text.push('\n');
    }
    super::checkpoint::write_atomic(path, text.as_bytes())
}
