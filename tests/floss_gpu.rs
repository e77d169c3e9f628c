//! Gradient flossing on the GPU (f32, `lyapunov::floss_gpu`) against the
//! f64 CPU reference `floss_loss_grad::<f64>` on fresh random small cases.
//! The seed is printed; set LONGMEM_TEST_SEED to replay.

use longmem::cpu::qr_f64;
use longmem::gpu::testing::{fresh_seed, test_context};
use longmem::lyapunov::floss::floss_loss_grad;
use longmem::lyapunov::floss_gpu::floss_loss_grad_gpu;
use longmem::models::{Dims, InitConfig, InitKind, Model, ModelKind};
use longmem::rng::Rng;
use ndarray::{Array2, Array3};

struct Case {
    model: Model,
    p: Vec<f32>,
    x: Array3<f32>,
    h0: Array2<f32>,
    q0: Vec<Array2<f32>>,
    transient: usize,
}

fn case(rng: &mut Rng, kind: ModelKind, bias: bool, n: usize, k: usize, tp: usize, b: usize) -> Case {
    let model = Model::with_bias(kind, Dims { input: 2, hidden: n, output: 2 }, bias).unwrap();
    let mut p = model.init(&InitConfig { kind: InitKind::Gaussian, gain: 1.2, scale: 1.0 }, rng);
    // non-zero biases, so the bias gradient is exercised
    for v in model.layout().views().iter().filter(|v| v.name.starts_with('b')) {
        for i in v.range() {
            p[i] = (rng.normal() * 0.3) as f32;
        }
    }
    let transient = 2;
    // inputs of std 0.5: a saturated tanh unit (1 − h² ≪ 1) loses relative
    // precision in f32 states, which no f32 implementation can avoid
    let x = Array3::from_shape_fn((transient + tp, b, 2), |_| (rng.normal() * 0.5) as f32);
    let h0 = Array2::from_shape_fn((b, n), |_| (rng.normal() * 0.5) as f32);
    let q0 = (0..b)
        .map(|_| {
            let a: Vec<f64> = (0..n * k).map(|_| rng.normal()).collect();
            Array2::from_shape_vec((n, k), qr_f64(&a, n, k).0.into_iter().map(|v| v as f32).collect()).unwrap()
        })
        .collect();
    Case { model, p, x, h0, q0, transient }
}

#[test]
fn floss_gpu_matches_f64_cpu_reference() {
    let Some(ctx) = test_context("floss_gpu") else { return };
    let mut rng = Rng::seed(fresh_seed("floss_gpu"));
    // (kind, bias, N, k, Tp, B): random sizes N = 5..12, k = 1..4, Tp = 6..10,
    // B = 1..3, plus k = N, and k > 16 (R written by more than one tile of
    // the QR's projections)
    let mut shapes = vec![(ModelKind::Rnn, true, 7, 7, 6, 2), (ModelKind::Linear, false, 5, 5, 8, 1), (ModelKind::Linear, true, 20, 17, 4, 2)];
    for i in 0..6 {
        let kind = if i % 2 == 0 { ModelKind::Rnn } else { ModelKind::Linear };
        let n = 5 + rng.below(8);
        let k = 1 + rng.below(4);
        let tp = 6 + rng.below(5);
        let b = 1 + rng.below(3);
        shapes.push((kind, i % 3 != 2, n, k, tp, b));
    }
    for (kind, bias, n, k, tp, b) in shapes {
        let c = case(&mut rng, kind, bias, n, k, tp, b);
        let tag = format!("{kind:?} bias={bias} N={n} k={k} Tp={tp} B={b}");
        let gpu = floss_loss_grad_gpu(&ctx, &c.model, &c.p, c.x.view(), c.h0.view(), &c.q0, c.transient).unwrap();
        // reference in f64 from the very same (f32-rounded) values
        let p64: Vec<f64> = c.p.iter().map(|&v| v as f64).collect();
        let q64: Vec<Array2<f64>> = c.q0.iter().map(|q| q.mapv(|v| v as f64)).collect();
        let cpu = floss_loss_grad::<f64>(&c.model, &p64, c.x.mapv(|v| v as f64).view(), c.h0.mapv(|v| v as f64).view(), &q64, c.transient).unwrap();

        let hmax = c.model.forward(&p64, c.x.mapv(|v| v as f64).view(), c.h0.mapv(|v| v as f64).view()).iter().fold(0f64, |m, h| m.max(h.abs()));
        let tag = format!("{tag} max|h|={hmax:.4}");
        let le = (gpu.loss as f64 - cpu.loss).abs() / cpu.loss.abs().max(1e-4);
        assert!(le < 2e-4, "{tag}: loss {} vs {} (rel {le:.2e})", gpu.loss, cpu.loss);
        assert_eq!(gpu.exponents.len(), k);
        for (i, (g, w)) in gpu.exponents.iter().zip(&cpu.exponents).enumerate() {
            assert!((*g as f64 - w).abs() < 1e-4 + 1e-4 * w.abs(), "{tag}: λ_{i} {g} vs {w}");
        }
        assert_eq!(gpu.grads.len(), cpu.grads.len());
        let norm = cpu.grads.iter().map(|g| g * g).sum::<f64>().sqrt();
        let diff = gpu.grads.iter().zip(&cpu.grads).map(|(g, w)| (*g as f64 - w).powi(2)).sum::<f64>().sqrt();
        let rel = diff / norm.max(1e-12);
        let gmax = cpu.grads.iter().fold(0f64, |m, g| m.max(g.abs()));
        let mut worst = 0f64;
        for (idx, (g, w)) in gpu.grads.iter().zip(&cpu.grads).enumerate() {
            let e = (*g as f64 - w).abs();
            // f32 rounding is amplified by R^{-T} (the smallest R_ii of a wide
            // block); 5e-4·max|grad| covers k = 18 of N = 20
            let tol = 1e-3 * w.abs() + 5e-4 * gmax + 1e-9;
            worst = worst.max(e / tol);
            let name = c.model.layout().views().iter().find(|v| v.range().contains(&idx)).map(|v| v.name.to_string()).unwrap_or_default();
            assert!(e <= tol, "{tag}: grad[{idx}] ({name}) {g} vs {w} (|grad| max {gmax:.3e})");
        }
        // readout gradients are exactly 0 on both sides
        for v in c.model.layout().views().iter().filter(|v| v.name.ends_with("out")) {
            assert!(v.range().all(|i| gpu.grads[i] == 0.0), "{tag}: readout {} has a gradient", v.name);
        }
        eprintln!("{tag}: loss {:.6e} rel err {le:.1e}, grad rel err {rel:.2e}, worst entry/tol {worst:.2}", cpu.loss);
        assert!(rel < 1e-3, "{tag}: gradient relative error {rel:.2e}");
    }
}

#[test]
fn floss_gpu_bad_inputs_are_errors_not_panics() {
    let Some(ctx) = test_context("floss_gpu_bad_inputs") else { return };
    let mut rng = Rng::seed(3);
    let c = case(&mut rng, ModelKind::Rnn, true, 4, 2, 3, 2);
    let ok = |p: &[f32], x: &Array3<f32>, h0: &Array2<f32>, q0: &[Array2<f32>], tr: usize| {
        floss_loss_grad_gpu(&ctx, &c.model, p, x.view(), h0.view(), q0, tr)
    };
    assert!(ok(&c.p, &c.x, &c.h0, &c.q0, 2).is_ok());
    assert!(ok(&c.p, &c.x, &c.h0, &c.q0, 5).is_err()); // Tp = 0
    assert!(ok(&c.p[1..], &c.x, &c.h0, &c.q0, 2).is_err());
    assert!(ok(&c.p, &Array3::zeros((5, 2, 3)), &c.h0, &c.q0, 2).is_err());
    assert!(ok(&c.p, &c.x, &Array2::zeros((3, 4)), &c.q0, 2).is_err());
    assert!(ok(&c.p, &c.x, &c.h0, &c.q0[..1], 2).is_err());
    assert!(ok(&c.p, &c.x, &c.h0, &[c.q0[0].clone(), Array2::zeros((4, 3))], 2).is_err());
    assert!(ok(&c.p, &c.x, &c.h0, &[Array2::zeros((4, 5)), Array2::zeros((4, 5))], 2).is_err());
    assert!(ok(&c.p, &c.x, &c.h0, &[Array2::zeros((4, 0)), Array2::zeros((4, 0))], 2).is_err());
    let mut pn = c.p.clone();
    pn[0] = f32::NAN;
    assert!(ok(&pn, &c.x, &c.h0, &c.q0, 2).is_err());
    // rank-deficient tangent vectors: R_ii = 0
    assert!(ok(&c.p, &c.x, &c.h0, &[Array2::zeros((4, 2)), Array2::zeros((4, 2))], 2).is_err());
}
