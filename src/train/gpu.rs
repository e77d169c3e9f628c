//! The GPU backend: a whole training step recorded once per (T, B) shape and
//! replayed; the batch goes up, the loss and gradient norm come back.

use super::backend::{Backend, StepOut};
use super::loss::batch_loss_norm;
use super::optim::Hyper;
use crate::gpu::ops::{self, Dispatch, LossBuffers, Mat, OptBuffers, OptUniform};
use crate::gpu::GpuContext;
use crate::models::{FamilyPlan, Model, ScanOptions, SeqIo};
use crate::tasks::{Batch, Target};
use anyhow::{ensure, Result};
use std::collections::HashMap;
use std::sync::Arc;

/// (T, B, cross-entropy, token inputs)
/// (T, B, the loss kernel's kind, token inputs)
/// (T, B, loss kind, token inputs, autoregressive)
type PlanKey = (usize, usize, u32, bool, bool);

struct ShapePlan {
    rows: usize,
    /// token ids in `x`, CSR lists in `csr`
    tokens: bool,
    csr: wgpu::Buffer,
    /// the state carried to the next batch of this batch size when it asks
    carry: wgpu::Buffer,
    carry_in: bool,
    /// byte offset in `states` of the state the next batch carries on from
    carry_out: u64,
    /// bytes of one state slot (B·S f32)
    slot_bytes: u64,
    outs: usize,
    loss_kind: u32,
    x: wgpu::Buffer,
    cls: wgpu::Buffer,
    tgt: wgpu::Buffer,
    mask: wgpu::Buffer,
    /// autoregressive: 1 per row where the input is the previous prediction
    fb: wgpu::Buffer,
    pub states: wgpu::Buffer,
    y: wgpu::Buffer,
    forward: Vec<Dispatch>,
    loss: Vec<Dispatch>,
    loss_ub: wgpu::Buffer,
    backward: Vec<Dispatch>,
    update: Vec<Dispatch>,
    opt_ub: wgpu::Buffer,
    family: FamilyPlan,
    _keep: Vec<wgpu::Buffer>,
    _readout: Option<crate::models::warp::gpu::ReadoutPlan>,
}

pub struct GpuBackend {
    pub ctx: Arc<GpuContext>,
    pub model: Model,
    pub scan: ScanOptions,
    params: wgpu::Buffer,
    grads: wgpu::Buffer,
    m: wgpu::Buffer,
    v: wgpu::Buffer,
    /// [loss, grad_norm²]
    stats: wgpu::Buffer,
    staging: wgpu::Buffer,
    plans: HashMap<PlanKey, ShapePlan>,
    /// the carried state per batch size, shared by every plan of that batch
    /// size (a split's last, shorter segment carries on from the others)
    carries: HashMap<usize, wgpu::Buffer>,
    /// gradient norm + optimizer on whatever is in `grads` (flossing)
    update: Vec<Dispatch>,
    update_ub: wgpu::Buffer,
}

impl GpuBackend {
    pub fn new(ctx: Arc<GpuContext>, model: Model, params: &[f32], scan: ScanOptions) -> Result<Self> {
        let n = model.layout().len();
        ensure!(params.len() == n, "parameter vector has the wrong length");
        let mk = |name: &str| ops::storage(&ctx, name, n);
        let (p, g, m, v) = (mk("params")?, mk("grads")?, mk("adam.m")?, mk("adam.v")?);
        ops::write_f32(&ctx, &p, 0, params);
        let stats = ops::storage(&ctx, "stats", 4)?;
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("stats.readback"),
            size: 8,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let ob = OptBuffers { params: &p, grads: &g, m: &m, v: &v, stats: &stats };
        let (opt_d, update_ub) = ops::optimizer(&ctx, n, &ob)?;
        let update = vec![ops::sum(&ctx, &g, 0, n, true, &stats, 1)?, opt_d];
        Ok(GpuBackend { ctx, model, scan, params: p, grads: g, m, v, stats, staging, plans: HashMap::new(), carries: HashMap::new(), update, update_ub })
    }

    /// Whether the recurrence for this shape runs as the persistent kernel.
    pub fn uses_persistent(&mut self, batch: &Batch) -> Result<bool> {
        let key = self.plan_for(batch)?;
        Ok(self.plans[&key].family.persistent)
    }

    fn plan_for(&mut self, batch: &Batch) -> Result<PlanKey> {
        super::cpu::check_input(&self.model, batch)?;
        let key = (batch.seq_len(), batch.batch(), ops::loss_kind(&batch.target), batch.tokens.is_some(), batch.feedback.is_some());
        if !self.plans.contains_key(&key) {
            let s = self.model.state_width();
            let carry = match self.carries.get(&key.1) {
                Some(c) => c.clone(),
                None => ops::storage(&self.ctx, "carry", key.1 * s)?,
            };
            self.carries.insert(key.1, carry.clone());
            let plan = self.build(key, carry)?;
            self.plans.insert(key, plan);
        }
        Ok(key)
    }

    fn build(&self, (t_len, batch, loss_kind, tokens, feedback): PlanKey, carry: wgpu::Buffer) -> Result<ShapePlan> {
        let cross_entropy = loss_kind == ops::LOSS_CE;
        let ctx = &*self.ctx;
        let model = &self.model;
        let dims = model.dims();
        let (s, r, o, i_w) = (model.state_width(), model.readout_width(), dims.output, dims.input);
        let rows = t_len * batch;
        let l = model.layout();
        // token ids are u32, the same size as f32
        let x = ops::storage(ctx, "x", if tokens { rows } else { rows * i_w })?;
        let csr = ops::storage(ctx, "tokens.csr", if tokens { 3 * rows + 2 } else { 1 })?;
        let cls = ops::storage(ctx, "classes", if cross_entropy { rows } else { 1 })?;
        let tgt = ops::storage(ctx, "targets", if cross_entropy { 1 } else { rows * o })?;
        let mask = ops::storage(ctx, "mask", rows)?;
        let fb = ops::storage(ctx, "feedback", if feedback { rows } else { 1 })?;
        let states = ops::storage(ctx, "states", (t_len + 1) * batch * s)?;
        let d_states = ops::storage(ctx, "d_states", rows * s)?;
        let y = ops::storage(ctx, "y", rows * o)?;
        let dy = ops::storage(ctx, "dy", rows * o)?;
        let row_loss = ops::storage(ctx, "row_loss", rows)?;

        let io = SeqIo { params: &self.params, grads: &self.grads, x: &x, tokens: tokens.then_some(&csr), states: &states, d_states: &d_states };
        // autoregressive, the family's plan decodes step by step itself
        let ar = crate::models::warp::gpu::ArIo { fb: &fb, y: &y, dy: &dy };
        let family = if feedback { model.gpu_ar_plan(ctx, t_len, batch, &io, &self.scan, &ar)? } else { model.gpu_plan(ctx, t_len, batch, &io, &self.scan)? };

        let own_readout = if feedback { None } else { model.gpu_readout(ctx, t_len, batch, &x, &states, &y, &dy, &d_states)? };
        // the readout features of states 1..=T: rows of width r, s apart
        let feats = Mat { buf: &states, off: batch * s, rs: s, cs: 1 };
        let mut forward: Vec<Dispatch> = family.forward.iter().map(clone_dispatch).collect();
        match &own_readout {
            _ if feedback => {} // decoded inside the family's forward
            Some(plan) => forward.extend(plan.forward.iter().map(clone_dispatch)),
            None => forward.extend(ops::gemm(
                ctx,
                (rows, o, r),
                feats,
                Mat::transposed(&self.params, l.offset("w_out"), r),
                l.get("b_out").ok().map(|v| v.offset),
                Mat::rows(&y, 0, o),
                false,
            )?),
        }

        let lb = LossBuffers { y: &y, cls: &cls, tgt: &tgt, mask: &mask, dy: &dy, row_loss: &row_loss };
        let (loss_d, loss_ub) = ops::loss(ctx, rows, o, loss_kind, &lb)?;
        let loss = vec![loss_d, ops::sum(ctx, &row_loss, 0, rows, false, &self.stats, 0)?];

        let mut backward = Vec::new();
        if feedback {
            // the family's backward holds the decoding's
        } else if let Some(plan) = &own_readout {
            backward.extend(plan.backward.iter().map(clone_dispatch));
        } else {
            backward.extend(ops::gemm(ctx, (o, r, rows), Mat::transposed(&dy, 0, o), feats, None, Mat::rows(&self.grads, l.offset("w_out"), r), false)?);
            if let Ok(b) = l.get("b_out") {
                backward.push(ops::colsum(ctx, &dy, 0, rows, o, &self.grads, b.offset)?);
            }
            backward.extend(ops::gemm(
                ctx,
                (rows, r, o),
                Mat::rows(&dy, 0, o),
                Mat::rows(&self.params, l.offset("w_out"), r),
                None,
                Mat::rows(&d_states, 0, s),
                false,
            )?);
        }
        backward.extend(family.backward.iter().map(clone_dispatch));

        let n = l.len();
        let ob = OptBuffers { params: &self.params, grads: &self.grads, m: &self.m, v: &self.v, stats: &self.stats };
        let (opt_d, opt_ub) = ops::optimizer(ctx, n, &ob)?;
        let update = vec![ops::sum(ctx, &self.grads, 0, n, true, &self.stats, 1)?, opt_d];
        ctx.check_errors()?;
        Ok(ShapePlan {
            rows,
            tokens,
            csr,
            carry,
            carry_in: false,
            carry_out: (t_len * batch * s * 4) as u64,
            slot_bytes: (batch * s * 4) as u64,
            outs: o,
            loss_kind,
            x,
            cls,
            tgt,
            mask,
            fb,
            states,
            y,
            forward,
            loss,
            loss_ub,
            backward,
            update,
            opt_ub,
            family,
            _keep: vec![d_states, dy, row_loss],
            _readout: own_readout,
        })
    }

    fn upload(&mut self, batch: &Batch) -> Result<PlanKey> {
        crate::train::cpu::check_input(&self.model, batch)?;
        let key = self.plan_for(batch)?;
        let ctx = &*self.ctx;
        let plan = self.plans.get_mut(&key).expect("plan just made");
        plan.carry_in = batch.carry_state;
        plan.carry_out = batch.carry_step() as u64 * plan.slot_bytes;
        let plan = &*plan;
        match &batch.tokens {
            Some(ids) if plan.tokens => {
                ctx.queue.write_buffer(&plan.x, 0, bytemuck::cast_slice(ids));
                ctx.queue.write_buffer(&plan.csr, 0, bytemuck::cast_slice(&crate::models::input::token_csr(ids)));
            }
            _ => {
                let xs = batch.x.as_standard_layout();
                ops::write_f32(ctx, &plan.x, 0, xs.as_slice().expect("standard layout"));
            }
        }
        match &batch.target {
            Target::Classes(c) => ctx.queue.write_buffer(&plan.cls, 0, bytemuck::cast_slice(c)),
            Target::Values(v) | Target::Gaussian(v) => ops::write_f32(ctx, &plan.tgt, 0, v),
        }
        ops::write_f32(ctx, &plan.mask, 0, &batch.mask);
        if let Some(f) = &batch.feedback {
            ops::write_f32(ctx, &plan.fb, 0, f);
        }
        let norm = batch_loss_norm(batch, plan.outs) as f32;
        ops::write_loss_norm(ctx, &plan.loss_ub, plan.rows, plan.outs, plan.loss_kind, norm);
        Ok(key)
    }

    /// Run the recorded passes and read back [loss, grad_norm²].
    fn run(&self, key: PlanKey, backward: bool, update: bool) -> Result<[f32; 2]> {
        // the rescaling acts on gradients only: evaluating such a run is fine
        if let (true, Model::Scrn(m)) = (backward, &self.model) {
            ensure!(m.state_grad_clip.is_none(), "--state-grad-clip runs on the CPU path only: train with --device cpu, or leave it at 0");
        }
        let ctx = &*self.ctx;
        let plan = &self.plans[&key];
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        // initial state: carried from the last batch of this shape, else the
        // model's own (a learned h0 in every row, or zeros)
        let h0 = self.model.learned_h0();
        if plan.carry_in {
            enc.copy_buffer_to_buffer(&plan.carry, 0, &plan.states, 0, plan.slot_bytes);
        } else if let Some(v) = h0 {
            let row = (v.len() * 4) as u64;
            for b in 0..plan.slot_bytes / row {
                enc.copy_buffer_to_buffer(&self.params, (v.offset * 4) as u64, &plan.states, b * row, row);
            }
        } else {
            enc.clear_buffer(&plan.states, 0, Some(plan.slot_bytes));
        }
        let mut list: Vec<&Dispatch> = plan.forward.iter().chain(&plan.loss).collect();
        if backward {
            list.extend(&plan.backward);
        }
        ops::encode(ctx, &mut enc, &list);
        // a carried start is not h0's doing: its gradient stays zero
        if let (true, true, Some(v)) = (backward, plan.carry_in, h0) {
            enc.clear_buffer(&self.grads, (v.offset * 4) as u64, Some((v.len() * 4) as u64));
        }
        if update {
            ops::encode(ctx, &mut enc, &plan.update);
        }
        enc.copy_buffer_to_buffer(&plan.states, plan.carry_out, &plan.carry, 0, plan.slot_bytes);
        enc.copy_buffer_to_buffer(&self.stats, 0, &self.staging, 0, 8);
        ctx.queue.submit([enc.finish()]);
        let v = ops::map_read(ctx, &self.staging, 2)?;
        Ok([v[0], v[1]])
    }

    /// States `(T + 1, B, S)` of the last forward pass on this batch's shape.
    pub fn states(&mut self, batch: &Batch) -> Result<Vec<f32>> {
        let key = self.upload(batch)?;
        self.run(key, false, false)?;
        let n = (batch.seq_len() + 1) * batch.batch() * self.model.state_width();
        ops::read_f32(&self.ctx, &self.plans[&key].states, 0, n)
    }
}

fn opt_uniform(n: usize, h: &Hyper) -> OptUniform {
    OptUniform {
        n: n as u32,
        kind: h.kind,
        wd: h.wd,
        _p1: 0,
        lr: h.lr,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        momentum: h.momentum,
        clip: h.clip,
        c1: h.c1,
        c2: h.c2,
    }
}

fn clone_dispatch(d: &Dispatch) -> Dispatch {
    Dispatch { kernel: d.kernel.clone(), bind: d.bind.clone(), groups: d.groups }
}

impl Backend for GpuBackend {
    fn describe(&self) -> String {
        format!("gpu: {}", self.ctx.describe())
    }

    fn apply_gradients(&mut self, grads: &[f32], h: &Hyper) -> Result<f32> {
        let n = self.model.layout().len();
        ensure!(grads.len() == n, "gradient vector has the wrong length");
        ops::write_f32(&self.ctx, &self.grads, 0, grads);
        self.ctx.queue.write_buffer(&self.update_ub, 0, bytemuck::bytes_of(&opt_uniform(n, h)));
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        ops::encode(&self.ctx, &mut enc, &self.update);
        enc.copy_buffer_to_buffer(&self.stats, 0, &self.staging, 0, 8);
        self.ctx.queue.submit([enc.finish()]);
        let v = ops::map_read(&self.ctx, &self.staging, 2)?;
        Ok(v[1].sqrt())
    }

    fn train_step(&mut self, batch: &Batch, h: &Hyper) -> Result<StepOut> {
        let key = self.upload(batch)?;
        let u = opt_uniform(self.model.layout().len(), h);
        self.ctx.queue.write_buffer(&self.plans[&key].opt_ub, 0, bytemuck::bytes_of(&u));
        let [loss, norm_sq] = self.run(key, true, true)?;
        Ok(StepOut { loss, grad_norm: norm_sq.sqrt() })
    }

    fn gradients(&mut self, batch: &Batch) -> Result<(f32, Vec<f32>)> {
        let key = self.upload(batch)?;
        let [loss, _] = self.run(key, true, false)?;
        let g = ops::read_f32(&self.ctx, &self.grads, 0, self.model.layout().len())?;
        Ok((loss, g))
    }

    fn evaluate(&mut self, batch: &Batch) -> Result<(f32, Vec<f32>)> {
        let key = self.upload(batch)?;
        let [loss, _] = self.run(key, false, false)?;
        let plan = &self.plans[&key];
        let y = ops::read_f32(&self.ctx, &plan.y, 0, plan.rows * plan.outs)?;
        Ok((loss, y))
    }

    fn forward_loss(&mut self, batch: &Batch) -> Result<f32> {
        let key = self.upload(batch)?;
        Ok(self.run(key, false, false)?[0])
    }

    fn params(&self) -> Result<Vec<f32>> {
        ops::read_f32(&self.ctx, &self.params, 0, self.model.layout().len())
    }

    fn optim_state(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        let n = self.model.layout().len();
        Ok((ops::read_f32(&self.ctx, &self.m, 0, n)?, ops::read_f32(&self.ctx, &self.v, 0, n)?))
    }

    fn gpu(&self) -> Option<Arc<GpuContext>> {
        Some(self.ctx.clone())
    }

    fn load(&mut self, params: &[f32], m: &[f32], v: &[f32]) -> Result<()> {
        let n = self.model.layout().len();
        ensure!(params.len() == n && m.len() == n && v.len() == n, "state vectors do not match the model's parameter count {n}");
        ops::write_f32(&self.ctx, &self.params, 0, params);
        ops::write_f32(&self.ctx, &self.m, 0, m);
        ops::write_f32(&self.ctx, &self.v, 0, v);
        Ok(())
    }
}
