//! One interface over the two ways to run a model: the CPU reference and
//! the GPU kernels. The training loop, eval and tests are written against it.

use super::optim::Hyper;
use crate::tasks::Batch;
use anyhow::Result;

#[derive(Clone, Copy, Debug)]
pub struct StepOut {
    pub loss: f32,
    /// global gradient norm before clipping
    pub grad_norm: f32,
}

pub trait Backend {
    /// e.g. "cpu" or "gpu: llvmpipe (vulkan, cpu, llvmpipe)"
    fn describe(&self) -> String;
    /// forward, loss, backward, clip, update; only the loss comes back
    fn train_step(&mut self, batch: &Batch, h: &Hyper) -> Result<StepOut>;
    /// loss and gradients without an update
    fn gradients(&mut self, batch: &Batch) -> Result<(f32, Vec<f32>)>;
    /// clip and apply gradients computed elsewhere (flossing); returns their norm
    fn apply_gradients(&mut self, grads: &[f32], h: &Hyper) -> Result<f32>;
    /// loss and outputs `(T·B, O)` flattened
    fn evaluate(&mut self, batch: &Batch) -> Result<(f32, Vec<f32>)>;
    /// forward and loss only, no outputs brought back (what `longmem bench`
    /// times as a forward pass)
    fn forward_loss(&mut self, batch: &Batch) -> Result<f32> {
        Ok(self.evaluate(batch)?.0)
    }
    fn params(&self) -> Result<Vec<f32>>;
    /// optimizer state: first and second moment (or momentum) buffers
    fn optim_state(&self) -> Result<(Vec<f32>, Vec<f32>)>;
    fn load(&mut self, params: &[f32], m: &[f32], v: &[f32]) -> Result<()>;
    /// the device, for work that has its own GPU kernels (flossing)
    fn gpu(&self) -> Option<std::sync::Arc<crate::gpu::GpuContext>> {
        None
    }
}
