//! The CPU backend: the reference model in f32 with the CPU optimizer.

use super::backend::{Backend, StepOut};
use super::loss::{batch_loss, batch_loss_and_grad, batch_loss_norm, class_loss_and_grad};
use super::optim::{apply, Hyper};
use crate::models::{input::check_tokens, Model};
use crate::real::Real;
use crate::tasks::{Batch, Target};
use anyhow::{ensure, Result};
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3};
use std::borrow::Cow;

pub struct CpuBackend {
    pub model: Model,
    params: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    /// the state the previous batch left for the next (truncated BPTT over
    /// streams): its last, or the one at its `carry_at`
    carried: Option<Array2<f32>>,
}

impl CpuBackend {
    pub fn new(model: Model, params: Vec<f32>) -> Result<Self> {
        ensure!(params.len() == model.layout().len(), "parameter vector has the wrong length");
        let n = params.len();
        Ok(CpuBackend { model, params, m: vec![0.0; n], v: vec![0.0; n], carried: None })
    }

    /// The state the previous batch left (see `carried`), kept for a batch that carries
    /// its state on (None before the first batch).
    pub fn carried_state(&self) -> Option<&Array2<f32>> {
        self.carried.as_ref()
    }

    /// The batch's initial state: the carried one when asked for and of the
    /// right shape, else the model's own (zeros or a learned h0); and
    /// whether it is the model's own.
    fn initial_state(&self, batch: &Batch) -> Result<(Array2<f32>, bool)> {
        check_input(&self.model, batch)?;
        let shape = (batch.batch(), self.model.state_width());
        Ok(match &self.carried {
            Some(c) if batch.carry_state && c.dim() == shape => (c.clone(), false),
            _ => (self.model.initial_states(&self.params, batch.batch()), true),
        })
    }
}

impl CpuBackend {
    /// The fast f32 path where the family has one, else the reference.
    fn loss_grads(&self, batch: &Batch, h0: ArrayView2<f32>, own: bool) -> (f32, Vec<f32>, Array2<f32>, Array2<f32>) {
        if crate::cpu_fast::supports(&self.model) {
            crate::cpu_fast::loss_grads_from(&self.model, &self.params, batch, h0, own)
        } else {
            loss_grads_from(&self.model, &self.params, batch, h0, own)
        }
    }
}

/// Token ids must index the model's input width.
pub fn check_input(model: &Model, batch: &Batch) -> Result<()> {
    if let Some(at) = batch.carry_at {
        ensure!(at <= batch.seq_len(), "batch carries the state after step {at} of {}", batch.seq_len());
    }
    if let Some(fb) = &batch.feedback {
        ensure!(matches!(model, Model::Warp(_)), "fed-back predictions (--forcing < 1) are for --model warp, not {}", model.kind().name());
        ensure!(fb.len() == batch.seq_len() * batch.batch(), "batch has {} feedback flags for {} rows", fb.len(), batch.seq_len() * batch.batch());
        let (i, o) = (model.dims().input, model.dims().output);
        ensure!(o == i || o == 2 * i, "fed-back predictions need outputs that predict the inputs (their means)");
    }
    if let Some(ids) = &batch.tokens {
        ensure!(ids.len() == batch.seq_len() * batch.batch(), "batch has {} token ids for {} rows", ids.len(), batch.seq_len() * batch.batch());
        check_tokens(ids, model.dims().input)?;
    } else {
        ensure!(batch.x.dim().2 == model.dims().input, "batch inputs have width {}, the model takes {}", batch.x.dim().2, model.dims().input);
    }
    Ok(())
}

/// Loss, gradients and outputs of `model` on `batch` from the model's own
/// initial states (zeros, or a learned h0) in any precision.
pub fn loss_grads<F: Real>(model: &Model, p: &[F], batch: &Batch) -> (F, Vec<F>, Array2<F>) {
    let h0 = model.initial_states(p, batch.batch());
    let (loss, grads, y, _) = loss_grads_from(model, p, batch, h0.view(), true);
    (loss, grads, y)
}

/// Leading time steps of a token batch with class targets whose rows all
/// have mask 0 (the context of an overlapping language-model window): no
/// output of theirs is scored, so the training passes skip their readout.
pub fn unscored_lead(batch: &Batch) -> usize {
    if batch.tokens.is_none() || !matches!(batch.target, Target::Classes(_)) {
        return 0;
    }
    let b = batch.batch();
    (0..batch.seq_len()).take_while(|&t| batch.mask[t * b..(t + 1) * b].iter().all(|&m| m == 0.0)).count()
}

/// The readout and loss of `states` `(T + 1, B, S)` over the scored steps
/// (from [`unscored_lead`] on): the loss, dL/d(states 1..=T) (zero for the
/// skipped steps), and the outputs of the scored steps. Adds the readout's
/// parameter gradients to `grads`.
pub fn readout_loss<F: Real>(model: &Model, p: &[F], states: ArrayView3<F>, dense: Option<ArrayView3<F>>, batch: &Batch, grads: &mut [F]) -> (F, Array3<F>, Array2<F>) {
    let skip = unscored_lead(batch);
    let rows = skip * batch.batch();
    let tail = states.slice(s![skip.., .., ..]);
    let y = model.readout_forward_x(p, tail, dense);
    let norm = batch_loss_norm(batch, y.dim().1);
    let target = match &batch.target {
        Target::Classes(c) if skip > 0 => Cow::Owned(Target::Classes(c[rows..].to_vec())),
        t => Cow::Borrowed(t),
    };
    let (loss, dy) = class_loss_and_grad(&y, &target, &batch.mask[rows..], norm);
    // Steps whose dL/dy is exactly zero in every row (the adding problem's
    // and pixel MNIST's all but the last) add nothing through the readout:
    // its backward starts at the first step with a gradient. (Not WARP,
    // whose decoder also reads the inputs.)
    let b = batch.batch();
    let quiet = if matches!(model, Model::Warp(_)) { 0 } else { zero_lead(&dy, b) };
    let d_tail = if quiet == 0 {
        model.readout_backward(p, tail, dense, &dy, grads)
    } else {
        model.readout_backward(p, tail.slice(s![quiet.., .., ..]), None, &dy.slice(s![quiet * b.., ..]).to_owned(), grads)
    };
    let lead = skip + quiet;
    if lead == 0 {
        return (loss, d_tail, y);
    }
    let (t, w) = (batch.seq_len(), d_tail.dim().2);
    let mut d_states = Array3::zeros((t, b, w));
    d_states.slice_mut(s![lead.., .., ..]).assign(&d_tail);
    (loss, d_states, y)
}

/// Leading steps (of `b` rows each) whose rows of dL/dy are all exactly zero.
fn zero_lead<F: Real>(dy: &Array2<F>, b: usize) -> usize {
    if b == 0 {
        return 0;
    }
    // at least one step is kept, so the backward never sees an empty batch
    let steps = (dy.dim().0 / b).saturating_sub(1);
    (0..steps).take_while(|&t| dy.slice(s![t * b..(t + 1) * b, ..]).iter().all(|&v| v == F::zero())).count()
}

/// As [`loss_grads`] from the initial state `h0`; also returns the state
/// the next batch carries on from (the last, unless `batch.carry_at` says
/// otherwise). `own_start`: h0 is the model's own, so a learned h0 gets
/// dL/dh0. The outputs are those of the scored steps ([`readout_loss`]).
pub fn loss_grads_from<F: Real>(model: &Model, p: &[F], batch: &Batch, h0: ArrayView2<F>, own_start: bool) -> (F, Vec<F>, Array2<F>, Array2<F>) {
    let x = batch.x.mapv(F::from_f32);
    if let (Some(fb), Model::Warp(w)) = (&batch.feedback, model) {
        let tr = w.forward_ar(p, x.view(), fb);
        let (loss, dy) = batch_loss_and_grad(&tr.y, batch);
        let mut grads = vec![F::zero(); p.len()];
        w.backward_ar(p, x.view(), fb, &tr, dy.view(), &mut grads);
        let last = tr.states.slice(s![batch.carry_step(), .., ..]).to_owned();
        return (loss, grads, tr.y, last);
    }
    let input = batch.input(&x);
    let states = model.forward(p, input, h0);
    let dense = batch.tokens.is_none().then(|| x.view());
    let mut grads = vec![F::zero(); p.len()];
    let (loss, d_states, y) = readout_loss(model, p, states.view(), dense, batch, &mut grads);
    let dh0 = model.backward(p, input, states.view(), d_states.view(), &mut grads);
    if let (true, Some(v)) = (own_start, model.learned_h0()) {
        for (g, d) in grads[v.range()].iter_mut().zip(dh0.sum_axis(ndarray::Axis(0)).iter()) {
            *g = *g + *d;
        }
    }
    let last = states.slice(s![batch.carry_step(), .., ..]).to_owned();
    (loss, grads, y, last)
}

impl Backend for CpuBackend {
    fn describe(&self) -> String {
        let path = if crate::cpu_fast::supports(&self.model) { "fast f32 path" } else { "reference path" };
        format!("cpu ({path})")
    }

    fn train_step(&mut self, batch: &Batch, h: &Hyper) -> Result<StepOut> {
        let (h0, own) = self.initial_state(batch)?;
        let (loss, grads, _, last) = self.loss_grads(batch, h0.view(), own);
        self.carried = Some(last);
        let grad_norm = apply(h, &mut self.params, &grads, &mut self.m, &mut self.v);
        Ok(StepOut { loss, grad_norm })
    }

    fn gradients(&mut self, batch: &Batch) -> Result<(f32, Vec<f32>)> {
        let (h0, own) = self.initial_state(batch)?;
        let (loss, grads, _, last) = self.loss_grads(batch, h0.view(), own);
        self.carried = Some(last);
        Ok((loss, grads))
    }

    fn apply_gradients(&mut self, grads: &[f32], h: &Hyper) -> Result<f32> {
        ensure!(grads.len() == self.params.len(), "gradient vector has the wrong length");
        Ok(apply(h, &mut self.params, grads, &mut self.m, &mut self.v))
    }

    fn evaluate(&mut self, batch: &Batch) -> Result<(f32, Vec<f32>)> {
        let (h0, _) = self.initial_state(batch)?;
        if let (Some(fb), Model::Warp(w)) = (&batch.feedback, &self.model) {
            let tr = w.forward_ar(&self.params, batch.x.view(), fb);
            return Ok((batch_loss(&tr.y, batch), tr.y.into_raw_vec_and_offset().0));
        }
        let states = if crate::cpu_fast::supports(&self.model) {
            crate::cpu_fast::forward(&self.model, &self.params, batch, h0.view()).states
        } else {
            self.model.forward(&self.params, batch.input(&batch.x), h0.view())
        };
        self.carried = Some(states.slice(s![batch.carry_step(), .., ..]).to_owned());
        let y = self.model.readout_forward_x(&self.params, states.view(), batch.tokens.is_none().then(|| batch.x.view()));
        let loss = batch_loss(&y, batch);
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
