//! Gradient flossing (`lyapunov::floss`): the QR adjoint and the full
//! flossing gradient against central finite differences in f64, the
//! exponents against a direct computation and the CPU spectrum, the zero
//! point of an orthogonal linear RNN, and gradient descent on the loss.

use longmem::cpu::{qr_f64, random_orthogonal};
use longmem::lyapunov::floss::{floss_loss_grad, qr_adjoint};
use longmem::lyapunov::{cpu::spectrum, Drive, LyapInput, LyapunovConfig};
use longmem::models::{Dims, InitConfig, InitKind, Model, ModelKind};
use longmem::rng::Rng;
use ndarray::{s, Array2, Array3, Axis};

fn randn(rng: &mut Rng, r: usize, c: usize) -> Array2<f64> {
    Array2::from_shape_fn((r, c), |_| rng.normal())
}

fn qr(a: &Array2<f64>) -> (Array2<f64>, Array2<f64>) {
    let (m, k) = a.dim();
    let (q, r) = qr_f64(a.as_standard_layout().as_slice().unwrap(), m, k);
    (Array2::from_shape_vec((m, k), q).unwrap(), Array2::from_shape_vec((k, k), r).unwrap())
}

fn random_q0(rng: &mut Rng, b: usize, n: usize, k: usize) -> Vec<Array2<f64>> {
    (0..b).map(|_| qr(&randn(rng, n, k)).0).collect()
}

/// A model with parameters in f64 (gaussian init at `gain`) and non-zero biases.
fn setup(kind: ModelKind, n: usize, gain: f64, seed: u64) -> (Model, Vec<f64>) {
    let model = Model::new(kind, Dims { input: 2, hidden: n, output: 1 }).unwrap();
    let mut rng = Rng::seed(seed);
    let p32 = model.init(&InitConfig { kind: InitKind::Gaussian, gain, scale: 1.0 }, &mut rng);
    let mut p: Vec<f64> = p32.iter().map(|&v| v as f64).collect();
    for v in model.layout().views().iter().filter(|v| v.name.starts_with('b')) {
        for i in v.range() {
            p[i] = rng.normal() * 0.3;
        }
    }
    (model, p)
}

#[test]
fn qr_adjoint_matches_finite_differences() {
    // f(Q, R) = Σ sin(C ⊙ Q) + Σ triu(D) ⊙ R² on A (6×4) = Q R
    let mut rng = Rng::seed(11);
    let (m, k) = (6, 4);
    let a = randn(&mut rng, m, k);
    let c = randn(&mut rng, m, k);
    let d = randn(&mut rng, k, k);
    let f = |a: &Array2<f64>| {
        let (q, r) = qr(a);
        let mut v = 0.0;
        for i in 0..m {
            for j in 0..k {
                v += (c[[i, j]] * q[[i, j]]).sin();
            }
        }
        for i in 0..k {
            for j in i..k {
                v += d[[i, j]] * r[[i, j]] * r[[i, j]];
            }
        }
        v
    };
    let (q, r) = qr(&a);
    let qbar = Array2::from_shape_fn((m, k), |(i, j)| c[[i, j]] * (c[[i, j]] * q[[i, j]]).cos());
    // R̄'s lower triangle is garbage on purpose: the adjoint must ignore it
    let rbar = Array2::from_shape_fn((k, k), |(i, j)| if j >= i { 2.0 * d[[i, j]] * r[[i, j]] } else { 7.0 });
    let abar = qr_adjoint(q.view(), r.view(), qbar.view(), rbar.view());
    // column-major inputs give the same answer
    let f_order = |a: &Array2<f64>| a.t().as_standard_layout().into_owned().reversed_axes();
    let abar_f = qr_adjoint(f_order(&q).view(), f_order(&r).view(), f_order(&qbar).view(), f_order(&rbar).view());
    assert!(!f_order(&q).is_standard_layout() && abar_f == abar);
    let eps = 1e-6;
    let mut worst = 0.0f64;
    for i in 0..m {
        for j in 0..k {
            let mut ap = a.clone();
            ap[[i, j]] += eps;
            let mut am = a.clone();
            am[[i, j]] -= eps;
            let fd = (f(&ap) - f(&am)) / (2.0 * eps);
            let err = (fd - abar[[i, j]]).abs() / (fd.abs() + abar[[i, j]].abs()).max(1e-6);
            assert!(err < 1e-6, "Ā[{i},{j}]: adjoint {} vs numeric {fd} (rel err {err})", abar[[i, j]]);
            worst = worst.max(err);
        }
    }
    eprintln!("QR adjoint: worst relative error {worst:.2e}");
}

fn gradcheck(kind: ModelKind) {
    let (n, k, t0, tp, b) = (5, 3, 2, 6, 2);
    let (model, p) = setup(kind, n, 1.2, 7);
    let mut rng = Rng::seed(8);
    let x = Array3::from_shape_fn((t0 + tp, b, 2), |_| rng.normal());
    let h0 = randn(&mut rng, b, n) * 0.5;
    let q0 = random_q0(&mut rng, b, n, k);
    let out = floss_loss_grad(&model, &p, x.view(), h0.view(), &q0, t0).unwrap();
    assert_eq!(out.grads.len(), p.len());
    assert_eq!(out.exponents.len(), k);
    let loss_at = |q: &[f64]| floss_loss_grad(&model, q, x.view(), h0.view(), &q0, t0).unwrap().loss;
    assert_eq!(loss_at(&p), out.loss);
    let eps = 1e-6;
    let gmax = out.grads.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    assert!(gmax > 1e-3, "{kind:?}: gradient suspiciously small ({gmax})");
    let mut worst = 0.0f64;
    for i in 0..p.len() {
        let mut q = p.clone();
        q[i] = p[i] + eps;
        let lp = loss_at(&q);
        q[i] = p[i] - eps;
        let lm = loss_at(&q);
        let fd = (lp - lm) / (2.0 * eps);
        let g = out.grads[i];
        let err = (fd - g).abs() / (fd.abs() + g.abs()).max(1e-8);
        let name = &model.layout().views().iter().find(|v| v.range().contains(&i)).unwrap().name;
        assert!(err < 1e-5, "{kind:?}: d{name}[{i}] analytic {g} vs numeric {fd} (rel err {err})");
        worst = worst.max(err);
    }
    eprintln!(
        "{kind:?}: loss {:.4e}, exponents {:?}, worst relative error {worst:.2e} over {} parameters",
        out.loss,
        out.exponents,
        p.len()
    );
}

#[test]
fn floss_gradient_of_tanh_rnn_matches_finite_differences() {
    gradcheck(ModelKind::Rnn);
}

#[test]
fn floss_gradient_of_sigmoid_srn_matches_finite_differences() {
    gradcheck(ModelKind::Srn);
}

#[test]
fn floss_gradient_of_linear_rnn_matches_finite_differences() {
    gradcheck(ModelKind::Linear);
}

#[test]
fn orthogonal_linear_rnn_has_zero_loss_and_gradient() {
    let n = 6;
    let (model, mut p) = setup(ModelKind::Linear, n, 1.0, 3);
    let mut rng = Rng::seed(4);
    let w = random_orthogonal(n, &mut rng);
    let r = model.layout().get("w_rec").unwrap().range();
    p[r].copy_from_slice(&w);
    let (t0, tp, b, k) = (3, 20, 3, 4);
    let x = Array3::from_shape_fn((t0 + tp, b, 2), |_| rng.normal());
    let h0 = randn(&mut rng, b, n);
    let q0 = random_q0(&mut rng, b, n, k);
    let out = floss_loss_grad(&model, &p, x.view(), h0.view(), &q0, t0).unwrap();
    assert!(out.loss.abs() < 1e-25, "loss {}", out.loss);
    for e in &out.exponents {
        assert!(e.abs() < 1e-13, "exponents {:?}", out.exponents);
    }
    for g in &out.grads {
        assert!(g.abs() < 1e-12, "gradient {:?}", out.grads);
    }
    // and any scaling moves every exponent to log(gain)
    let mut p2 = p.clone();
    let r = model.layout().get("w_rec").unwrap().range();
    p2[r].iter_mut().for_each(|v| *v *= 0.5);
    let out = floss_loss_grad(&model, &p2, x.view(), h0.view(), &q0, t0).unwrap();
    for e in &out.exponents {
        assert!((e - 0.5f64.ln()).abs() < 1e-12, "exponents {:?}", out.exponents);
    }
    assert!((out.loss - 0.5f64.ln().powi(2)).abs() < 1e-12);
}

#[test]
fn exponents_match_a_direct_computation_and_the_cpu_spectrum() {
    let (n, k) = (8, 5);
    let model = Model::new(ModelKind::Rnn, Dims { input: 2, hidden: n, output: 1 }).unwrap();
    let p32 = model.init(&InitConfig { kind: InitKind::Gaussian, gain: 3.0, scale: 1.0 }, &mut Rng::seed(5));
    let p: Vec<f64> = p32.iter().map(|&v| v as f64).collect();
    let cfg = LyapunovConfig {
        k,
        reortho: 1,
        transient: 10,
        tangent_transient: 0,
        steps: 60,
        trajectories: 1,
        input: LyapInput::Noise,
        noise_std: 0.3,
        seed: 3,
        ..Default::default()
    };
    let drive = Drive { cfg: &cfg, task: None, input_width: 2 };
    let x = drive.chunk(0, cfg.total_steps()).mapv(|v| v as f64);
    let h0 = drive.h0(n).mapv(|v| v as f64);
    let q0 = drive.q0(n);
    let out = floss_loss_grad(&model, &p, x.view(), h0.view(), &q0, cfg.transient).unwrap();

    // direct: step the state, Q ← qr(J_t Q), accumulate log R_ii
    let mut h = h0.clone();
    let mut q = q0[0].clone();
    let mut sums = vec![0.0; k];
    for t in 0..cfg.total_steps() {
        let states = model.forward(&p, x.slice(s![t..t + 1, .., ..]), h.view());
        let prev = std::mem::replace(&mut h, states.index_axis(Axis(0), 1).to_owned());
        if t >= cfg.transient {
            let (prev, next) = (prev.row(0).to_vec(), h.row(0).to_vec());
            let at = longmem::models::StepAt { pre: &[], prev: &prev, next: &next };
            let (qn, r) = qr(&model.tangent(&p, &at, q.view()));
            for (i, s_) in sums.iter_mut().enumerate() {
                *s_ += r[[i, i]].ln();
            }
            q = qn;
        }
    }
    let direct: Vec<f64> = sums.iter().map(|v| v / cfg.steps as f64).collect();
    let loss: f64 = direct.iter().map(|l| l * l).sum::<f64>() / k as f64;
    for (a, b) in out.exponents.iter().zip(&direct) {
        assert!((a - b).abs() < 1e-12, "{:?} vs {direct:?}", out.exponents);
    }
    assert!((out.loss - loss).abs() < 1e-12);

    // the CPU spectrum of the same trajectory: same exponents, sorted
    let spec = spectrum(&model, &p32, &drive, &cfg).unwrap();
    let mut sorted = out.exponents.clone();
    sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
    for (a, b) in sorted.iter().zip(&spec.exponents) {
        assert!((a - b).abs() < 1e-10, "{sorted:?} vs {:?}", spec.exponents);
    }
    assert!(spec.exponents[0] > 0.0, "gain 3 should be chaotic: {:?}", spec.exponents);
    eprintln!("exponents {sorted:?}");
}

#[test]
fn gradient_descent_on_the_flossing_loss_of_a_chaotic_rnn() {
    // Short windows: over longer ones (T0 + Tp ≳ 20 at gain 2.5) the exact
    // gradient is correct but the finite-time loss is rough on scales of
    // 1e-3 in parameter space, and plain fixed-step descent stalls.
    let (n, k, t0, tp, b) = (16, 4, 2, 10, 4);
    let (model, mut p) = setup(ModelKind::Rnn, n, 2.5, 21);
    let mut rng = Rng::seed(22);
    let x = Array3::from_shape_fn((t0 + tp, b, 2), |_| rng.normal() * 0.3);
    let h0 = randn(&mut rng, b, n) * 0.5;
    let q0 = random_q0(&mut rng, b, n, k);
    let lr = 0.03;
    let start = std::time::Instant::now();
    let mut hist = vec![];
    let mut first = None;
    let mut last = None;
    for _ in 0..50 {
        let out = floss_loss_grad(&model, &p, x.view(), h0.view(), &q0, t0).unwrap();
        hist.push(out.loss);
        for (w, g) in p.iter_mut().zip(&out.grads) {
            *w -= lr * g;
        }
        first.get_or_insert(out.clone());
        last = Some(out);
    }
    let (first, last) = (first.unwrap(), last.unwrap());
    assert!(first.exponents[0] > 0.05, "gain 2.5 should be chaotic: {:?}", first.exponents);
    eprintln!(
        "flossing: loss {:.3e} → {:.3e} in {} steps ({:.2} ms/step); exponents {:?} → {:?}",
        first.loss,
        last.loss,
        hist.len(),
        start.elapsed().as_secs_f64() * 1e3 / hist.len() as f64,
        first.exponents,
        last.exponents
    );
    assert!(last.loss < 0.5 * first.loss, "loss {} → {}: {hist:?}", first.loss, last.loss);
    for e in &last.exponents {
        assert!(e.abs() < 0.1, "{:?}", last.exponents);
    }
}
