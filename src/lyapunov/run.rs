//! `longmem lyapunov`: a spectrum for a fresh model or a run's checkpoint,
//! written as lyapunov.json and lyapunov.svg.

use super::{Drive, LyapunovConfig, Spectrum};
use crate::config::TrainConfig;
use crate::device::Engine;
use crate::models::Model;
use crate::rng::Rng;
use crate::train::checkpoint::Checkpoint;
use crate::train::checkpoint::write_atomic;
use crate::train::run::{build_model, CHECKPOINT_FILE, CONFIG_FILE};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;

pub const JSON_FILE: &str = "lyapunov.json";
pub const PLOT_FILE: &str = "lyapunov.svg";

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub spectrum: Spectrum,
    pub settings: LyapunovConfig,
    pub model: String,
    pub hidden: usize,
    /// the run directory the parameters came from, if any
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    pub device: String,
}

/// The model and parameters: a run's checkpoint, or a fresh model initialised
/// exactly as `longmem train` would with this config.
pub fn load_model(run: Option<&Path>, fresh: &TrainConfig) -> Result<(TrainConfig, Model, Vec<f32>)> {
    match run {
        Some(dir) => {
            let cfg = TrainConfig::load(&dir.join(CONFIG_FILE)).with_context(|| format!("{} is not a run directory", dir.display()))?;
            let (_, model) = build_model(&cfg)?;
            let ck = Checkpoint::load(&model, &dir.join(CHECKPOINT_FILE))?;
            Ok((cfg, model, ck.params))
        }
        None => {
            let mut cfg = fresh.clone();
            cfg.resolve();
            cfg.validate()?;
            let (_, model) = build_model(&cfg)?;
            let p = cfg.initial_params(&model, &mut Rng::stream(cfg.seed, crate::train::run::STREAM_INIT));
            Ok((cfg, model, p))
        }
    }
}

pub fn compute(engine: &Engine, model: &Model, params: &[f32], train_cfg: &TrainConfig, lcfg: &LyapunovConfig) -> Result<Spectrum> {
    let task = train_cfg.task()?;
    let drive = Drive { cfg: lcfg, task: Some(&task), input_width: model.dims().input };
    match engine {
        Engine::Cpu => super::cpu::spectrum(model, params, &drive, lcfg),
        Engine::Gpu(ctx) => super::gpu::spectrum(ctx, model, params, &drive, lcfg),
    }
}

pub fn write(out: &Path, report: &Report) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    write_atomic(&out.join(JSON_FILE), serde_json::to_string_pretty(report)?.as_bytes())?;
    let title = format!("Lyapunov spectrum: {} N = {}, k = {}, {} steps", report.model, report.hidden, report.spectrum.k, report.spectrum.steps);
    crate::plot::lyapunov_svg(&out.join(PLOT_FILE), &report.spectrum, &title)
}
