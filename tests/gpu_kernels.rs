//! Each shared GPU kernel on fresh random inputs against the CPU reference.
//! The seed is printed; set LONGMEM_TEST_SEED to replay a failure.

use longmem::gpu::ops::{self, GemmKernel, LossBuffers, Mat, OptBuffers, OptUniform};
use longmem::gpu::testing::{fresh_seed, submit, test_context, upload};
use longmem::models::rnn::gpu::scan_shape;
use longmem::models::ScanMode;
use longmem::rng::Rng;
use longmem::tasks::Target;
use longmem::train::loss::{loss_and_grad, loss_norm};
use longmem::train::optim::{apply, OptimConfig, OptimKind};
use ndarray::Array2;

fn randn(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - y).powi(2)).sum::<f64>().sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt().max(1e-12);
    num / den
}

#[test]
fn gemm_all_transposes_bias_and_accumulate() {
    let Some(ctx) = test_context("gemm") else { return };
    let mut rng = Rng::seed(fresh_seed("gemm"));
    for &(m, n, k) in &[(1, 1, 1), (17, 5, 33), (40, 16, 16), (3, 70, 9), (64, 48, 100)] {
        for ta in [false, true] {
            for tb in [false, true] {
                let a = randn(&mut rng, m * k + 3);
                let b = randn(&mut rng, k * n + 5 + n);
                let c0 = randn(&mut rng, m * n + 2);
                // A at offset 3, B at offset 5, bias after B, C at offset 2
                let amat = |i: usize, kk: usize| if ta { a[3 + kk * m + i] } else { a[3 + i * k + kk] } as f64;
                let bmat = |kk: usize, j: usize| if tb { b[5 + j * k + kk] } else { b[5 + kk * n + j] } as f64;
                for (bias, acc, which) in [(false, false, GemmKernel::Tiled), (true, true, GemmKernel::Tiled), (false, false, GemmKernel::Direct), (true, true, GemmKernel::Direct)] {
                    let (ab, bb, cb) = (upload(&ctx, &a), upload(&ctx, &b), upload(&ctx, &c0));
                    let am = if ta { Mat::transposed(&ab, 3, m) } else { Mat::rows(&ab, 3, k) };
                    let bm = if tb { Mat::transposed(&bb, 5, k) } else { Mat::rows(&bb, 5, n) };
                    let ds = ops::gemm_with(&ctx, which, (m, n, k), am, bm, bias.then_some(5 + k * n), Mat::rows(&cb, 2, n), acc).unwrap();
                    submit(&ctx, &ds);
                    let got = ops::read_f32(&ctx, &cb, 2, m * n).unwrap();
                    let mut want = vec![0f64; m * n];
                    for i in 0..m {
                        for j in 0..n {
                            let mut s: f64 = (0..k).map(|kk| amat(i, kk) * bmat(kk, j)).sum();
                            if bias {
                                s += b[5 + k * n + j] as f64;
                            }
                            if acc {
                                s += c0[2 + i * n + j] as f64;
                            }
                            want[i * n + j] = s;
                        }
                    }
                    let e = rel_err(&got, &want);
                    assert!(e < 1e-5, "gemm {which:?} {m}x{n}x{k} ta={ta} tb={tb} bias={bias}: rel err {e}");
                    // nothing written outside C
                    let head = ops::read_f32(&ctx, &cb, 0, 2).unwrap();
                    assert_eq!(head, c0[..2].to_vec());
                }
            }
        }
    }
}

#[test]
fn sums_and_column_sums() {
    let Some(ctx) = test_context("reduce") else { return };
    let mut rng = Rng::seed(fresh_seed("reduce"));
    for &n in &[1usize, 255, 256, 1000, 70_001] {
        let x = randn(&mut rng, n + 7);
        let src = upload(&ctx, &x);
        let dst = ops::storage(&ctx, "dst", 4).unwrap();
        let ds = vec![ops::sum(&ctx, &src, 7, n, false, &dst, 1).unwrap(), ops::sum(&ctx, &src, 7, n, true, &dst, 3).unwrap()];
        submit(&ctx, &ds);
        let got = ops::read_f32(&ctx, &dst, 0, 4).unwrap();
        let s: f64 = x[7..].iter().map(|&v| v as f64).sum();
        let sq: f64 = x[7..].iter().map(|&v| (v as f64).powi(2)).sum();
        assert!((got[1] as f64 - s).abs() < 1e-5 * (n as f64).sqrt() * 4.0, "sum n={n}: {} vs {s}", got[1]);
        assert!(((got[3] as f64 - sq) / sq).abs() < 1e-5, "sum of squares n={n}: {} vs {sq}", got[3]);
    }
    for &(rows, cols) in &[(1usize, 1usize), (33, 7), (5, 130)] {
        let x = randn(&mut rng, rows * cols + 1);
        let src = upload(&ctx, &x);
        let dst = ops::storage(&ctx, "dst", cols + 2).unwrap();
        submit(&ctx, &[ops::colsum(&ctx, &src, 1, rows, cols, &dst, 2).unwrap()]);
        let got = ops::read_f32(&ctx, &dst, 2, cols).unwrap();
        let want: Vec<f64> = (0..cols).map(|j| (0..rows).map(|i| x[1 + i * cols + j] as f64).sum()).collect();
        assert!(rel_err(&got, &want) < 1e-5, "colsum {rows}x{cols}");
    }
}

#[test]
fn loss_kernels_match_cpu() {
    let Some(ctx) = test_context("loss") else { return };
    let mut rng = Rng::seed(fresh_seed("loss"));
    // cross-entropy, squared error, Gaussian NLL (outs = 2C: means, raw sds)
    for kind in [ops::LOSS_CE, ops::LOSS_MSE, ops::LOSS_GAUSSIAN] {
        let ce = kind == ops::LOSS_CE;
        for &(rows, outs) in &[(1usize, 1usize), (70, 10), (9, 3)] {
            let outs = match kind {
                ops::LOSS_CE => outs.max(2),
                ops::LOSS_GAUSSIAN => 2 * outs,
                _ => outs,
            };
            let mut y: Vec<f32> = randn(&mut rng, rows * outs).iter().map(|v| v * 3.0).collect();
            if kind == ops::LOSS_GAUSSIAN {
                // raw sds of unit spread: σ = softplus(raw) from ~0.05 up; nearer
                // the 1e-3 floor the loss is ~e²/σ² ~ 1e6 and f32's exp/log
                // rounding (lavapipe's especially) dominates any comparison
                for r in 0..rows {
                    for o in outs / 2..outs {
                        y[r * outs + o] /= 3.0;
                    }
                }
            }
            let mask: Vec<f32> = (0..rows).map(|_| if rng.uniform() < 0.7 { 1.0 } else { 0.0 }).collect();
            let target = match kind {
                ops::LOSS_CE => Target::Classes((0..rows).map(|_| rng.below(outs) as u32).collect()),
                ops::LOSS_GAUSSIAN => Target::Gaussian(randn(&mut rng, rows * outs / 2)),
                _ => Target::Values(randn(&mut rng, rows * outs)),
            };
            let yb = upload(&ctx, &y);
            let cls = ops::storage(&ctx, "cls", rows).unwrap();
            let tgt = ops::storage(&ctx, "tgt", rows * outs).unwrap();
            match &target {
                Target::Classes(c) => ctx.queue.write_buffer(&cls, 0, bytemuck::cast_slice(c)),
                Target::Values(v) | Target::Gaussian(v) => ops::write_f32(&ctx, &tgt, 0, v),
            }
            let mb = upload(&ctx, &mask);
            let dy = ops::storage(&ctx, "dy", rows * outs).unwrap();
            let rl = ops::storage(&ctx, "rl", rows).unwrap();
            let stats = ops::storage(&ctx, "stats", 1).unwrap();
            let lb = LossBuffers { y: &yb, cls: &cls, tgt: &tgt, mask: &mb, dy: &dy, row_loss: &rl };
            let (d, ub) = ops::loss(&ctx, rows, outs, kind, &lb).unwrap();
            ops::write_loss_norm(&ctx, &ub, rows, outs, kind, loss_norm(&mask, outs, &target) as f32);
            submit(&ctx, &[d, ops::sum(&ctx, &rl, 0, rows, false, &stats, 0).unwrap()]);
            let y64 = Array2::from_shape_vec((rows, outs), y.iter().map(|&v| v as f64).collect()).unwrap();
            let (l, g) = loss_and_grad(&y64, &target, &mask);
            let got_l = ops::read_f32(&ctx, &stats, 0, 1).unwrap()[0] as f64;
            // f32 forms each row's loss as lse − y_c from logits of size ~max|y|, so
            // a nearly certain row carries an absolute error of a few ulps of max|y|
            let y_max = y.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
            let tol = 1e-5 * l.abs() + 4.0 * f32::EPSILON as f64 * (1.0 + y_max);
            assert!((got_l - l).abs() <= tol, "kind {kind} (ce={ce}) {rows}x{outs}: loss {got_l} vs {l} (tolerance {tol:.1e})");
            let got_g = ops::read_f32(&ctx, &dy, 0, rows * outs).unwrap();
            if mask.iter().any(|&m| m > 0.0) {
                // the same ulps reach dy through p = exp(y − lse), scaled by the normaliser
                let want = g.as_slice().unwrap();
                let err = got_g.iter().zip(want).map(|(a, b)| (*a as f64 - b).powi(2)).sum::<f64>().sqrt();
                let scale = want.iter().map(|b| b * b).sum::<f64>().sqrt();
                let w = loss_norm(&mask, outs, &target);
                let tol = 1e-5 * scale + 4.0 * f32::EPSILON as f64 * (1.0 + y_max) * w * ((rows * outs) as f64).sqrt();
                assert!(err <= tol, "kind {kind} (ce={ce}) {rows}x{outs}: dy error {err:.2e} over tolerance {tol:.2e}");
            }
        }
    }
}

#[test]
fn optimizers_match_cpu_with_and_without_clipping() {
    let Some(ctx) = test_context("optim") else { return };
    let mut rng = Rng::seed(fresh_seed("optim"));
    let n = 1003;
    for (kind, momentum) in [(OptimKind::Sgd, 0.0), (OptimKind::Sgd, 0.9), (OptimKind::Rmsprop, 0.0), (OptimKind::Adam, 0.0)] {
        for (clip, weight_decay) in [(0.0, 0.0), (1.0, 0.0), (1.0, 0.05)] {
            let cfg = OptimConfig { kind, momentum, clip, weight_decay, lr: 0.01, ..Default::default() };
            let mut p = randn(&mut rng, n);
            let mut m: Vec<f32> = randn(&mut rng, n).iter().map(|v| v * 0.1).collect();
            let mut v: Vec<f32> = randn(&mut rng, n).iter().map(|v| v * v * 0.01).collect();
            let (pb, mb, vb) = (upload(&ctx, &p), upload(&ctx, &m), upload(&ctx, &v));
            let stats = ops::storage(&ctx, "stats", 4).unwrap();
            let gb = ops::storage(&ctx, "g", n).unwrap();
            for t in 1..=3u64 {
                let g = randn(&mut rng, n);
                ops::write_f32(&ctx, &gb, 0, &g);
                let h = cfg.hyper(cfg.lr, t);
                let ob = OptBuffers { params: &pb, grads: &gb, m: &mb, v: &vb, stats: &stats };
                let (d, ub) = ops::optimizer(&ctx, n, &ob).unwrap();
                let u = OptUniform {
                    n: n as u32, kind: h.kind, wd: h.wd, _p1: 0, lr: h.lr, beta1: h.beta1, beta2: h.beta2,
                    eps: h.eps, momentum: h.momentum, clip: h.clip, c1: h.c1, c2: h.c2,
                };
                ctx.queue.write_buffer(&ub, 0, bytemuck::bytes_of(&u));
                submit(&ctx, &[ops::sum(&ctx, &gb, 0, n, true, &stats, 1).unwrap(), d]);
                apply(&h, &mut p, &g, &mut m, &mut v);
            }
            let got = ops::read_f32(&ctx, &pb, 0, n).unwrap();
            let want: Vec<f64> = p.iter().map(|&x| x as f64).collect();
            let e = rel_err(&got, &want);
            assert!(e < 1e-5, "{kind:?} momentum {momentum} clip {clip} wd {weight_decay}: params rel err {e}");
        }
    }
}

#[test]
fn scan_falls_back_to_step_when_state_exceeds_workgroup_memory() {
    let Some(ctx) = test_context("scan_shape") else { return };
    let storage = ctx.limits.max_compute_workgroup_storage_size as usize;
    let too_big = storage / 8 + 1; // 2 · H · 4 bytes > storage
    let s = scan_shape(&ctx, too_big, 4, ScanMode::Auto).unwrap();
    assert!(!s.persistent, "auto must fall back for H = {too_big}");
    let e = scan_shape(&ctx, too_big, 4, ScanMode::Persistent).unwrap_err();
    assert!(format!("{e:#}").contains("max_compute_workgroup_storage_size"), "{e:#}");
    let s = scan_shape(&ctx, 64, 3, ScanMode::Auto).unwrap();
    assert!(s.persistent && s.bt <= 3 && 2 * s.bt as usize * 64 * 4 <= storage);
}

#[test]
fn buffers_over_the_adapter_limit_are_refused_with_the_limit_named() {
    let Some(ctx) = test_context("buffer_limits") else { return };
    let too_many = (ctx.limits.max_storage_buffer_binding_size as usize).min(ctx.limits.max_buffer_size as usize) / 4 + 1;
    let e = ops::storage(&ctx, "states", too_many).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("states") && msg.contains("max_") && msg.contains("lower"), "{msg}");
}
