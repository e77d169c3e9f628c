//! Optimizers (SGD with momentum, RMSprop, Adam), gradient-norm clipping and
//! learning-rate schedules. The CPU update here and shaders/optim.wgsl apply
//! the same f32 formulas, so the two paths stay within f32 rounding.

use crate::cpu_fast::lane_sum_of;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimKind {
    Sgd,
    Rmsprop,
    Adam,
}

impl OptimKind {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "sgd" => OptimKind::Sgd,
            "rmsprop" => OptimKind::Rmsprop,
            "adam" => OptimKind::Adam,
            other => bail!("unknown optimizer '{other}': expected sgd, rmsprop or adam"),
        })
    }
    pub fn code(self) -> u32 {
        match self {
            OptimKind::Sgd => 0,
            OptimKind::Rmsprop => 1,
            OptimKind::Adam => 2,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    pub kind: OptimKind,
    pub lr: f64,
    /// SGD momentum (0 = plain SGD)
    pub momentum: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// RMSprop's decay of the squared-gradient average
    pub rms_decay: f64,
    pub eps: f64,
    /// clip the global gradient norm to this (0 = off)
    pub clip: f64,
    /// decoupled weight decay (AdamW; also applied to SGD and RMSprop)
    #[serde(default)]
    pub weight_decay: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig { kind: OptimKind::Adam, lr: 1e-3, momentum: 0.0, beta1: 0.9, beta2: 0.999, rms_decay: 0.9, eps: 1e-8, clip: 0.0, weight_decay: 0.0 }
    }
}

/// Learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    /// multiply by `factor` every `every` steps
    Step { every: u64, factor: f64 },
}

impl Schedule {
    pub fn lr(&self, base: f64, step: u64) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, factor } => base * factor.powi((step / every.max(1)) as i32),
        }
    }
}

/// The values one update needs: kernel-uniform layout on the GPU.
#[derive(Clone, Copy, Debug)]
pub struct Hyper {
    pub kind: u32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub momentum: f32,
    pub clip: f32,
    pub c1: f32,
    pub c2: f32,
    pub wd: f32,
}

impl OptimConfig {
    /// Hyperparameters of update number `t` (1-based) at learning rate `lr`.
    pub fn hyper(&self, lr: f64, t: u64) -> Hyper {
        let beta2 = if self.kind == OptimKind::Rmsprop { self.rms_decay } else { self.beta2 };
        Hyper {
            kind: self.kind.code(),
            lr: lr as f32,
            beta1: self.beta1 as f32,
            beta2: beta2 as f32,
            eps: self.eps as f32,
            momentum: self.momentum as f32,
            clip: self.clip as f32,
            c1: (1.0 - self.beta1.powi(t as i32)) as f32,
            c2: (1.0 - self.beta2.powi(t as i32)) as f32,
            wd: self.weight_decay as f32,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let finite = [self.lr, self.momentum, self.beta1, self.beta2, self.rms_decay, self.eps, self.clip, self.weight_decay];
        if finite.iter().any(|x| !x.is_finite()) {
            bail!("optimizer settings must be finite numbers");
        }
        if self.lr <= 0.0 {
            bail!("--lr must be positive, got {}", self.lr);
        }
        for (name, v) in [("momentum", self.momentum), ("beta1", self.beta1), ("beta2", self.beta2), ("rms_decay", self.rms_decay)] {
            if !(0.0..1.0).contains(&v) {
                bail!("{name} must be in [0, 1), got {v}");
            }
        }
        if self.weight_decay < 0.0 {
            bail!("--weight-decay must be >= 0, got {}", self.weight_decay);
        }
        if self.clip < 0.0 {
            bail!("--clip must be >= 0 (0 turns clipping off), got {}", self.clip);
        }
        Ok(())
    }
}

/// Squared gradient norm accumulated in f32 lane sums, as the GPU reduction
/// does ([`lane_sum_of`]: 16 lanes, so the loop vectorises).
pub fn grad_norm_sq(grads: &[f32]) -> f32 {
    lane_sum_of(grads, |g| g * g) as f32
}

/// One CPU update, in place. Returns the gradient norm before clipping.
pub fn apply(h: &Hyper, params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32]) -> f32 {
    let norm = grad_norm_sq(grads).sqrt();
    let scale = if h.clip > 0.0 && norm > h.clip { h.clip / norm } else { 1.0 };
    // One loop per optimizer, so the choice is not made per weight and each
    // loop vectorises; the arithmetic per weight is the same in every branch.
    let (lr, wd) = (h.lr, h.wd);
    let n = params.len();
    let (params, grads) = (&mut params[..n], &grads[..n]);
    match h.kind {
        0 if h.momentum > 0.0 => {
            let m = &mut m[..n];
            for i in 0..n {
                m[i] = h.momentum * m[i] + grads[i] * scale;
                params[i] -= lr * (m[i] + wd * params[i]);
            }
        }
        0 => {
            for i in 0..n {
                params[i] -= lr * (grads[i] * scale + wd * params[i]);
            }
        }
        1 => {
            let v = &mut v[..n];
            for i in 0..n {
                let g = grads[i] * scale;
                v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * g * g;
                params[i] -= lr * (g / (v[i].sqrt() + h.eps) + wd * params[i]);
            }
        }
        _ => {
            let (m, v) = (&mut m[..n], &mut v[..n]);
            for i in 0..n {
                let g = grads[i] * scale;
                m[i] = h.beta1 * m[i] + (1.0 - h.beta1) * g;
                v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * g * g;
                params[i] -= lr * ((m[i] / h.c1) / ((v[i] / h.c2).sqrt() + h.eps) + wd * params[i]);
            }
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_schedule_decays_on_its_grid() {
        let s = Schedule::Step { every: 100, factor: 0.5 };
        assert_eq!(s.lr(1.0, 0), 1.0);
        assert_eq!(s.lr(1.0, 99), 1.0);
        assert_eq!(s.lr(1.0, 100), 0.5);
        assert_eq!(s.lr(1.0, 250), 0.25);
        assert_eq!(Schedule::Constant.lr(0.3, 10_000), 0.3);
    }

    #[test]
    fn clipping_scales_the_update_to_the_clip_norm() {
        let cfg = OptimConfig { kind: OptimKind::Sgd, lr: 1.0, clip: 1.0, ..Default::default() };
        let mut p = vec![0.0f32; 2];
        let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
        let norm = apply(&cfg.hyper(1.0, 1), &mut p, &[3.0, 4.0], &mut m, &mut v);
        assert_eq!(norm, 5.0);
        assert!((p[0] + 0.6).abs() < 1e-6 && (p[1] + 0.8).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn adam_first_step_moves_each_weight_by_lr() {
        let cfg = OptimConfig { kind: OptimKind::Adam, lr: 0.01, ..Default::default() };
        let mut p = vec![1.0f32, -1.0];
        let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
        apply(&cfg.hyper(cfg.lr, 1), &mut p, &[0.3, -7.0], &mut m, &mut v);
        assert!((p[0] - 0.99).abs() < 1e-5 && (p[1] + 0.99).abs() < 1e-5, "{p:?}");
    }

    #[test]
    fn weight_decay_is_decoupled_from_the_gradient() {
        // AdamW with a zero gradient: the Adam step is 0, the decay is lr·wd·p
        let cfg = OptimConfig { kind: OptimKind::Adam, lr: 0.1, weight_decay: 0.5, ..Default::default() };
        let mut p = vec![2.0f32, -4.0];
        let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
        apply(&cfg.hyper(cfg.lr, 1), &mut p, &[0.0, 0.0], &mut m, &mut v);
        assert!((p[0] - 1.9).abs() < 1e-6 && (p[1] + 3.8).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn gradient_norm_matches_f64_at_lengths_off_the_lane_blocks() {
        let mut rng = crate::rng::Rng::seed(7);
        for n in [0usize, 1, 15, 16, 17, 33, 1000, 4099] {
            let g: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
            let exact: f64 = g.iter().map(|&x| x as f64 * x as f64).sum();
            let got = grad_norm_sq(&g) as f64;
            assert!((got - exact).abs() <= 1e-5 * exact.max(1e-30), "n = {n}: {got} vs {exact}");
        }
    }

    #[test]
    fn momentum_and_rmsprop_follow_their_update_rules_over_two_steps() {
        // momentum SGD: m1 = g1, p1 = p0 − lr·m1; m2 = μ·m1 + g2, p2 = p1 − lr·m2
        let cfg = OptimConfig { kind: OptimKind::Sgd, lr: 0.1, momentum: 0.5, ..Default::default() };
        let (mut p, mut m, mut v) = (vec![1.0f32], vec![0.0f32], vec![0.0f32]);
        apply(&cfg.hyper(cfg.lr, 1), &mut p, &[2.0], &mut m, &mut v);
        apply(&cfg.hyper(cfg.lr, 2), &mut p, &[-1.0], &mut m, &mut v);
        assert!((p[0] - (1.0 - 0.2 - 0.1 * (0.5 * 2.0 - 1.0))).abs() < 1e-6, "{p:?}");
        // RMSprop: v = ρ·v + (1 − ρ)·g², p −= lr·g / (√v + ε)
        let cfg = OptimConfig { kind: OptimKind::Rmsprop, lr: 0.01, rms_decay: 0.9, ..Default::default() };
        let h = cfg.hyper(cfg.lr, 1);
        let (mut p, mut m, mut v) = (vec![0.5f32, -0.5], vec![0.0f32; 2], vec![0.0f32; 2]);
        apply(&h, &mut p, &[0.4, -3.0], &mut m, &mut v);
        let want = |p0: f32, g: f32| p0 - 0.01 * g / ((1.0 - h.beta2) * g * g).sqrt();
        assert!((p[0] - want(0.5, 0.4)).abs() < 1e-5 && (p[1] - want(-0.5, -3.0)).abs() < 1e-5, "{p:?}");
    }
}
