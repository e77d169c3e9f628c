use longmem::lyapunov::floss::floss_loss_grad;
use longmem::models::{Dims, InitConfig, InitKind, Model, ModelKind};
use longmem::rng::Rng;
use ndarray::{Array2, Array3};
#[test]
fn dbg() { for (xs, tp) in [(0.0, 50), (0.1, 50), (0.1, 100), (0.5, 100)] { println!("== xs {xs} tp {tp}");
    let (n, k, t0, b) = (16, 4, 50, 4);
    let model = Model::new(ModelKind::Rnn, Dims { input: 2, hidden: n, output: 1 }).unwrap();
    let mut rng = Rng::seed(21);
    let p32 = model.init(&InitConfig { kind: InitKind::Gaussian, gain: 2.5, scale: 1.0 }, &mut rng);
    let p0: Vec<f64> = p32.iter().map(|&v| v as f64).collect();
    let x = Array3::from_shape_fn((t0 + tp, b, 2), |_| rng.normal() * xs);
    let h0 = Array2::from_shape_fn((b, n), |_| rng.normal() * 0.5);
    let q0: Vec<Array2<f64>> = (0..b).map(|_| { let a: Vec<f64> = (0..n*k).map(|_| rng.normal()).collect(); Array2::from_shape_vec((n,k), longmem::cpu::qr_f64(&a,n,k).0).unwrap() }).collect();
    for lr in [0.002, 0.005, 0.01, 0.02, 0.05] {
        let mut p = p0.clone();
        let mut hist = vec![];
        for _ in 0..50 {
            match floss_loss_grad(&model, &p, x.view(), h0.view(), &q0, t0) {
                Ok(out) => {
                    hist.push(out.loss);
                    if hist.len() == 1 { println!("exps {:?} gnorm {}", out.exponents, out.grads.iter().map(|g| g*g).sum::<f64>().sqrt()); }
                    for (w, g) in p.iter_mut().zip(&out.grads) { *w -= lr * g; }
                }
                Err(e) => { println!("err {e}"); break; }
            }
        }
        println!("lr {lr}: {:?}", hist.iter().step_by(5).map(|v| format!("{v:.3e}")).collect::<Vec<_>>());
    }
}}
