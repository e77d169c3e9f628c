//! Training-step throughput of the tanh RNN and the uRNN on the CPU path and on the
//! default GPU adapter: `cargo bench --bench train_step`. Reports the median
//! and spread of repeated timed runs after a warm-up, in tokens (B·T) per
//! second. The full cross-vendor suite is `longmem bench`.

use longmem::gpu::GpuContext;
use longmem::models::{Dims, InitConfig, Model, ModelKind, ScanOptions};
use longmem::rng::Rng;
use longmem::tasks::{Batch, Target};
use longmem::train::cpu::CpuBackend;
use longmem::train::gpu::GpuBackend;
use longmem::train::optim::OptimConfig;
use longmem::train::Backend;
use std::sync::Arc;
use std::time::Instant;

fn random_batch(t: usize, b: usize, width: usize, rng: &mut Rng) -> Batch {
    let x = ndarray::Array3::from_shape_fn((t, b, width), |_| rng.normal() as f32);
    let y: Vec<f32> = (0..t * b * width).map(|_| rng.normal() as f32).collect();
    Batch { x, target: Target::Values(y), mask: vec![1.0; t * b], metric_mask: vec![0.0; t * b], loss_norm: None, tokens: None, carry_state: false, feedback: None, carry_at: None }
}

fn time(be: &mut dyn Backend, batch: &Batch, reps: usize) -> (f64, f64) {
    let opt = OptimConfig::default();
    for s in 1..=2 {
        be.train_step(batch, &opt.hyper(opt.lr, s)).unwrap();
    }
    let mut ts: Vec<f64> = (0..reps)
        .map(|i| {
            let t0 = Instant::now();
            be.train_step(batch, &opt.hyper(opt.lr, 3 + i as u64)).unwrap();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (ts[reps / 2], ts[reps - 1] - ts[0])
}

fn main() {
    let gpu = GpuContext::open(std::env::var("LONGMEM_ADAPTER").ok().as_deref()).ok().flatten().map(Arc::new);
    match &gpu {
        Some(c) => println!("gpu: {}", c.describe()),
        None => println!("gpu: none found; CPU only"),
    }
    let width = 32;
    for &(kind, h, b, t) in &[(ModelKind::Rnn, 128usize, 32usize, 256usize), (ModelKind::Rnn, 256, 32, 256), (ModelKind::Urnn, 128, 32, 256), (ModelKind::Urnn, 512, 32, 256)] {
        let name = kind.name();
        let model = Model::new(kind, Dims { input: width, hidden: h, output: width }).unwrap();
        let params = model.init(&InitConfig::default(), &mut Rng::seed(0));
        let batch = random_batch(t, b, width, &mut Rng::seed(1));
        let mut cpu = CpuBackend::new(model.clone(), params.clone()).unwrap();
        let (med, spread) = time(&mut cpu, &batch, 5);
        println!("{name} H={h} B={b} T={t} train cpu: {:>10.0} tokens/s (median {med:.4} s, spread {spread:.4} s)", (b * t) as f64 / med);
        if let Some(ctx) = &gpu {
            let mut g = GpuBackend::new(ctx.clone(), model, &params, ScanOptions::default()).unwrap();
            let (med, spread) = time(&mut g, &batch, 5);
            println!("{name} H={h} B={b} T={t} train gpu: {:>10.0} tokens/s (median {med:.4} s, spread {spread:.4} s)", (b * t) as f64 / med);
        }
    }
}
