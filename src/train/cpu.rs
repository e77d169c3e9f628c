//! The CPU backend: the reference model in f32 with the CPU optimizer.

use super::backend::{Backend, StepOut};
use super::loss::batch_loss_and_grad;
use super::optim::{apply, Hyper};
use crate::models::{readout, Model};
use crate::tasks::Batch;
use anyhow::{ensure, Result};
use ndarray::Array2;

pub struct CpuBackend {
    pub model: Model,
    params: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl CpuBackend {
    pub fn new(model: Model, params: Vec<f32>) -> Result<Self> {
        ensure!(params.len() == model.layout().len(), "parameter vector has the wrong length");
        let n = params.len();
        Ok(CpuBackend { model, params, m: vec![0.0; n], v: vec![0.0; n] })
    }
}

/// Loss, gradients and outputs of `model` on `batch` in any precision.
pub fn loss_grads<F: crate::real::Real>(model: &Model, p: &[F], batch: &Batch) -> (F, Vec<F>, Array2<F>) {
    let x = batch.x.mapv(F::from_f32);
    let (_, b, _) = x.dim();
    let h0 = Array2::zeros((b, model.state_width()));
    let states = model.forward(p, x.view(), h0.view());
    let layout = model.layout();
    let y = readout::forward(p, layout, states.view(), model.readout_width());
    let (loss, dy) = batch_loss_and_grad(&y, batch);
    let mut grads = vec![F::zero(); p.len()];
    let d_states = readout::backward(p, layout, states.view(), model.readout_width(), &dy, &mut grads);
    model.backward(p, x.view(), states.view(), d_states.view(), &mut grads);
    (loss, grads, y)
}

impl Backend for CpuBackend {
    fn describe(&self) -> String {
        "cpu (reference path)".to_string()
    }

    fn train_step(&mut self, batch: &Batch, h: &Hyper) -> Result<StepOut> {
        let (loss, grads, _) = loss_grads(&self.model, &self.params, batch);
        let grad_norm = apply(h, &mut self.params, &grads, &mut self.m, &mut self.v);
        Ok(StepOut { loss, grad_norm })
    }

    fn gradients(&mut self, batch: &Batch) -> Result<(f32, Vec<f32>)> {
        let (loss, grads, _) = loss_grads(&self.model, &self.params, batch);
        Ok((loss, grads))
    }

    fn apply_gradients(&mut self, grads: &[f32], h: &Hyper) -> Result<f32> {
        ensure!(grads.len() == self.params.len(), "gradient vector has the wrong length");
        Ok(apply(h, &mut self.params, grads, &mut self.m, &mut self.v))
    }

    fn evaluate(&mut self, batch: &Batch) -> Result<(f32, Vec<f32>)> {
        let x = batch.x.view();
        let h0 = Array2::zeros((batch.batch(), self.model.state_width()));
        let states = self.model.forward(&self.params, x, h0.view());
        let y = readout::forward(&self.params, self.model.layout(), states.view(), self.model.readout_width());
        let (loss, _) = batch_loss_and_grad(&y, batch);
        Ok((loss, y.into_raw_vec_and_offset().0))
    }

    fn params(&self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn optim_state(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        Ok((self.m.clone(), self.v.clone()))
    }

    fn load(&mut self, params: &[f32], m: &[f32], v: &[f32]) -> Result<()> {
        let n = self.params.len();
        ensure!(params.len() == n && m.len() == n && v.len() == n, "state vectors do not match the model's parameter count {n}");
        self.params.copy_from_slice(params);
        self.m.copy_from_slice(m);
        self.v.copy_from_slice(v);
        Ok(())
    }
}
