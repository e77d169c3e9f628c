//! Gradient flossing inside training: updates that push the leading
//! Lyapunov exponents toward zero, before training, in bursts, or added to
//! every step with a weight. The flossing gradient is the exact one
//! (through the tangent dynamics and every QR): on the CPU backend the f64
//! reference `lyapunov::floss`, on the GPU backend its f32 kernels
//! `lyapunov::floss_gpu`; either way the backend's optimizer applies it.

use super::backend::Backend;
use super::optim::Hyper;
use crate::config::TrainConfig;
use crate::lyapunov::floss::floss_loss_grad;
use crate::models::Model;
use crate::rng::Rng;
use crate::tasks::Task;
use anyhow::Result;
use ndarray::{Array2, Array3};

const STREAM_FLOSS: u64 = 0xF1055;

pub struct FlossResult {
    /// mean of λ_i² over the flossed exponents
    pub loss: f64,
    /// λ_1..λ_k averaged over the trajectories
    pub exponents: Vec<f64>,
    pub grads: Vec<f32>,
}

/// The flossing loss and gradient at the backend's current parameters, on
/// trajectories driven by the task's inputs. `tag` picks the random draw
/// (inputs, tangent vectors) so a resumed run repeats it exactly.
pub fn floss_gradient(be: &dyn Backend, model: &Model, task: &Task, cfg: &TrainConfig, tag: u64) -> Result<FlossResult> {
    let b = if cfg.floss_trajectories == 0 { cfg.batch } else { cfg.floss_trajectories };
    let n = model.state_width();
    let len = cfg.floss_transient + cfg.floss_len;
    let mut rng = Rng::stream(cfg.seed ^ STREAM_FLOSS, tag);
    let x: Array3<f64> = task.input_stream(b, len, &mut rng).mapv(|v| v as f64);
    let h0 = Array2::<f64>::zeros((b, n));
    let q0: Vec<Array2<f64>> = (0..b).map(|_| crate::cpu::random_orthonormal(n, cfg.floss_k, &mut rng)).collect();
    let params = be.params()?;
    if let Some(ctx) = be.gpu() {
        let q0: Vec<Array2<f32>> = q0.iter().map(|q| q.mapv(|v| v as f32)).collect();
        let out = crate::lyapunov::floss_gpu::floss_loss_grad_gpu(&ctx, model, &params, x.mapv(|v| v as f32).view(), h0.mapv(|v| v as f32).view(), &q0, cfg.floss_transient)?;
        return Ok(FlossResult { loss: out.loss as f64, exponents: out.exponents.iter().map(|&v| v as f64).collect(), grads: out.grads });
    }
    let p: Vec<f64> = params.iter().map(|&v| v as f64).collect();
    let out = floss_loss_grad(model, &p, x.view(), h0.view(), &q0, cfg.floss_transient)?;
    Ok(FlossResult { loss: out.loss, exponents: out.exponents, grads: out.grads.iter().map(|&g| g as f32).collect() })
}

/// One flossing update: returns what it measured before the update.
pub fn floss_update(be: &mut dyn Backend, model: &Model, task: &Task, cfg: &TrainConfig, tag: u64, h: &Hyper) -> Result<FlossResult> {
    let r = floss_gradient(be, model, task, cfg, tag)?;
    if !r.loss.is_finite() || r.grads.iter().any(|g| !g.is_finite()) {
        anyhow::bail!("the flossing loss became {} (flossing update {tag}); lower --lr or --floss-len", r.loss);
    }
    be.apply_gradients(&r.grads, h)?;
    Ok(r)
}
