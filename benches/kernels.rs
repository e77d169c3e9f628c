//! Criterion benches of the kernels themselves, with throughput units:
//! `cargo bench --bench kernels` (LONGMEM_ADAPTER picks the GPU; without
//! one only the CPU benches run). The whole-model suite is `longmem bench`.
//!
//! - gemm: the GPU GEMM kernels (tiled, direct), ndarray's GEMM and the fast
//!   CPU path's unpacked per-step product, in flops
//! - scan: the tanh RNN and the LSTM forward and training step (recurrent
//!   scans forward and backward) on the CPU path and the GPU, in tokens
//! - qr: the GPU's batched QR of N×N tangent blocks and the f64 CPU
//!   Householder QR, in flops (8/3 N³ per block, Q formed)
//! - fft: the uRNN's unitary recurrence (two FFTs per step) on the CPU
//!   reference, the fast CPU path's uRNN forward and the uRNN forward on
//!   the GPU, in elements (state entries per step)

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use longmem::bench::run::{bench_model, random_batch};
use longmem::bench::{Case, Mode};
use longmem::gpu::ops::{self, GemmKernel, Mat};
use longmem::gpu::GpuContext;
use longmem::models::{InitConfig, Model, ScanOptions};
use longmem::rng::Rng;
use longmem::train::backend::Backend;
use longmem::train::cpu::CpuBackend;
use longmem::train::gpu::GpuBackend;
use longmem::train::optim::OptimConfig;
use std::sync::{Arc, OnceLock};

fn gpu() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Option<Arc<GpuContext>>> = OnceLock::new();
    CTX.get_or_init(|| {
        let c = GpuContext::open(std::env::var("LONGMEM_ADAPTER").ok().as_deref()).ok().flatten().map(Arc::new);
        match &c {
            Some(c) => eprintln!("gpu: {}", c.describe()),
            None => eprintln!("gpu: none found; the GPU benches are skipped"),
        }
        c
    })
    .clone()
}

fn wait(ctx: &GpuContext) {
    ctx.device.poll(wgpu::PollType::wait_indefinitely()).expect("GPU poll");
}

fn randn(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::seed(seed);
    (0..n).map(|_| r.normal() as f32).collect()
}

fn gemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm");
    g.sample_size(10);
    for n in [256usize, 512] {
        g.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        let a = ndarray::Array2::from_shape_vec((n, n), randn(n * n, 1)).unwrap();
        let mut out = ndarray::Array2::<f32>::zeros((n, n));
        g.bench_with_input(BenchmarkId::new("cpu-ndarray", n), &n, |bch, _| bch.iter(|| ndarray::linalg::general_mat_mul(1.0, &a, &a, 0.0, &mut out)));
        if let Some(ctx) = gpu() {
            let buf = ops::storage(&ctx, "a", n * n).unwrap();
            let res = ops::storage(&ctx, "c", n * n).unwrap();
            ops::write_f32(&ctx, &buf, 0, &randn(n * n, 2));
            for (name, which) in [("gpu-tiled", GemmKernel::Tiled), ("gpu-direct", GemmKernel::Direct)] {
                let ds = ops::gemm_with(&ctx, which, (n, n, n), Mat::rows(&buf, 0, n), Mat::rows(&buf, 0, n), None, Mat::rows(&res, 0, n), false).unwrap();
                g.bench_with_input(BenchmarkId::new(name, n), &n, |bch, _| {
                    bch.iter(|| {
                        let mut enc = ctx.device.create_command_encoder(&Default::default());
                        ops::encode(&ctx, &mut enc, &ds);
                        ctx.queue.submit([enc.finish()]);
                        wait(&ctx);
                    })
                });
            }
        }
    }
    // one time step of an LSTM's recurrence at H = 128, B = 32
    let (rows, n, k) = (32usize, 512usize, 128usize);
    g.throughput(Throughput::Elements(2 * (rows * n * k) as u64));
    let (a, b) = (randn(rows * k, 3), randn(k * n, 4));
    let mut out = vec![0f32; rows * n];
    g.bench_function("cpu-step-32x512x128", |bch| bch.iter(|| longmem::cpu_fast::kernel::matmul_acc(&mut out, &a, &b, rows, n, k)));
    g.finish();
}

fn scan(c: &mut Criterion) {
    let mut g = c.benchmark_group("scan");
    g.sample_size(10);
    for model in ["rnn", "lstm"] {
        for mode in [Mode::Forward, Mode::Train] {
            let case = Case { model: model.into(), hidden: 128, batch: 32, seq_len: 64, mode };
            g.throughput(Throughput::Elements((case.batch * case.seq_len) as u64));
            let m = bench_model(&case).unwrap();
            let p = m.init(&InitConfig::default(), &mut Rng::seed(0));
            let batch = random_batch(case.seq_len, case.batch, &mut Rng::seed(1));
            let mut backends: Vec<(&str, Box<dyn Backend>)> = vec![("cpu", Box::new(CpuBackend::new(m.clone(), p.clone()).unwrap()))];
            if let Some(ctx) = gpu() {
                backends.push(("gpu", Box::new(GpuBackend::new(ctx, m.clone(), &p, ScanOptions::default()).unwrap())));
            }
            let opt = OptimConfig::default();
            for (dev, mut be) in backends {
                let id = BenchmarkId::new(format!("{model}-{}-{dev}", mode.name()), "H128-B32-T64");
                let mut step = 0;
                g.bench_function(id, |bch| {
                    bch.iter(|| match mode {
                        Mode::Train => {
                            step += 1;
                            be.train_step(&batch, &opt.hyper(opt.lr, step)).unwrap().loss
                        }
                        _ => be.forward_loss(&batch).unwrap(),
                    })
                });
            }
        }
    }
    g.finish();
}

fn qr(c: &mut Criterion) {
    let mut g = c.benchmark_group("qr");
    g.sample_size(10);
    let n = 128usize;
    let flops = 8 * n * n * n / 3;
    g.throughput(Throughput::Elements(flops as u64));
    let a: Vec<f64> = randn(n * n, 5).into_iter().map(f64::from).collect();
    g.bench_function(BenchmarkId::new("cpu-householder-f64", n), |bch| bch.iter(|| longmem::cpu::qr_f64(&a, n, n)));
    if let Some(ctx) = gpu() {
        let batch = 8;
        g.throughput(Throughput::Elements((flops * batch) as u64));
        let q = ops::storage(&ctx, "q", batch * n * n).unwrap();
        let acc = ops::storage(&ctx, "acc", batch * n).unwrap();
        let data = randn(batch * n * n, 6);
        let ds = longmem::lyapunov::gpu::qr_dispatches(&ctx, &q, &acc, n, n, batch, true).unwrap();
        g.bench_function(BenchmarkId::new("gpu-8-blocks", n), |bch| {
            bch.iter(|| {
                ops::write_f32(&ctx, &q, 0, &data);
                let mut enc = ctx.device.create_command_encoder(&Default::default());
                ops::encode(&ctx, &mut enc, &ds);
                ctx.queue.submit([enc.finish()]);
                wait(&ctx);
            })
        });
    }
    g.finish();
}

fn fft(c: &mut Criterion) {
    let mut g = c.benchmark_group("fft");
    g.sample_size(10);
    let n = 512usize;
    let case = Case { model: "urnn".into(), hidden: n, batch: 8, seq_len: 32, mode: Mode::Forward };
    let m = bench_model(&case).unwrap();
    let p = m.init(&InitConfig::default(), &mut Rng::seed(0));
    if let Model::Urnn(u) = &m {
        let v: Vec<f32> = randn(2 * n, 7);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("cpu-unitary-step", n), |bch| bch.iter(|| u.apply_recurrence(&p, &v)));
    }
    let batch = random_batch(case.seq_len, case.batch, &mut Rng::seed(1));
    // the fast CPU path's whole forward (B = 8, T = 32), the GPU case's shape
    let h0 = m.initial_states(&p, case.batch);
    g.throughput(Throughput::Elements((n * case.batch * case.seq_len) as u64));
    g.bench_function(BenchmarkId::new("cpu-fast-urnn-forward-B8-T32", n), |bch| bch.iter(|| longmem::cpu_fast::forward(&m, &p, &batch, h0.view())));
    if let Some(ctx) = gpu() {
        let mut be = GpuBackend::new(ctx, m.clone(), &p, ScanOptions::default()).unwrap();
        g.bench_function(BenchmarkId::new("gpu-urnn-forward-B8-T32", n), |bch| bch.iter(|| be.forward_loss(&batch).unwrap()));
    }
    g.finish();
}

criterion_group!(kernels, gemm, scan, qr, fft);
criterion_main!(kernels);
