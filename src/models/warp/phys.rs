//! WARP-Phys: the root network outputs a system's physical parameters
//! (through softplus, so they stay positive) and one integration step from
//! the current state gives the next, `DT` long: for the damped spring (a
//! linear system, u' = J u) one classical RK4 step, the matrix polynomial
//! M = I + hJ + (hJ)²/2 + (hJ)³/6 + (hJ)⁴/24; for Lotka–Volterra one
//! explicit Euler step. The backward gives the gradients to the raw root
//! outputs and to the state.

use crate::real::Real;
use crate::tasks::dynamics::{System, DT};

/// Physical parameters the root network outputs.
pub fn n_params(sys: System) -> usize {
    match sys {
        System::Msd => 2,
        System::Lotka => 4,
    }
}

fn softplus<F: Real>(z: F) -> F {
    // log(1 + e^z) without overflow
    z.max(F::zero()) + (F::one() + (-z.abs()).exp()).ln()
}

fn sigmoid<F: Real>(z: F) -> F {
    F::one() / (F::one() + (-z).exp())
}

type M2<F> = [[F; 2]; 2];

fn mul<F: Real>(a: &M2<F>, b: &M2<F>) -> M2<F> {
    let mut c = [[F::zero(); 2]; 2];
    for i in 0..2 {
        for j in 0..2 {
            c[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j];
        }
    }
    c
}

fn axpy<F: Real>(acc: &mut M2<F>, f: F, m: &M2<F>) {
    for i in 0..2 {
        for j in 0..2 {
            acc[i][j] = acc[i][j] + f * m[i][j];
        }
    }
}

/// The spring's RK4 step matrix M and its derivatives in k and c.
fn msd_rk4<F: Real>(k: F, c: F) -> (M2<F>, M2<F>, M2<F>) {
    let (z, o) = (F::zero(), F::one());
    let h = F::from_f64(DT);
    let j: M2<F> = [[z, o], [-k, -c]];
    let ek: M2<F> = [[z, z], [-o, z]];
    let ec: M2<F> = [[z, z], [z, -o]];
    // powers J⁰..J³
    let mut pw = vec![[[o, z], [z, o]]];
    for _ in 0..3 {
        let next = mul(pw.last().expect("a power"), &j);
        pw.push(next);
    }
    let mut m = pw[0];
    let mut dk = [[z; 2]; 2];
    let mut dc = [[z; 2]; 2];
    let mut coef = o;
    for n in 1..=4 {
        coef = coef * h / F::from_f64(n as f64);
        axpy(&mut m, coef, &mul(&pw[n - 1], &j));
        // d(Jⁿ) = Σ_{i<n} J^i E J^(n−1−i)
        for i in 0..n {
            axpy(&mut dk, coef, &mul(&mul(&pw[i], &ek), &pw[n - 1 - i]));
            axpy(&mut dc, coef, &mul(&mul(&pw[i], &ec), &pw[n - 1 - i]));
        }
    }
    (m, dk, dc)
}

/// Next state `y` from state `u` with raw parameters `raw`.
pub fn step<F: Real>(sys: System, raw: &[F], u: &[F], y: &mut [F]) {
    let h = F::from_f64(DT);
    match sys {
        System::Msd => {
            let (m, _, _) = msd_rk4(softplus(raw[0]), softplus(raw[1]));
            y[0] = m[0][0] * u[0] + m[0][1] * u[1];
            y[1] = m[1][0] * u[0] + m[1][1] * u[1];
        }
        System::Lotka => {
            let (a, b, d, g) = (softplus(raw[0]), softplus(raw[1]), softplus(raw[2]), softplus(raw[3]));
            let (x, z) = (u[0], u[1]);
            y[0] = x + h * (a * x - b * x * z);
            y[1] = z + h * (d * x * z - g * z);
        }
    }
}

/// From dL/dy: dL/d(raw parameters) into `d_raw`, dL/du added into `du`.
pub fn step_backward<F: Real>(sys: System, raw: &[F], u: &[F], dy: &[F], d_raw: &mut [F], du: &mut [F]) {
    let h = F::from_f64(DT);
    match sys {
        System::Msd => {
            let (m, dk, dc) = msd_rk4(softplus(raw[0]), softplus(raw[1]));
            // y = M u: du = Mᵀ dy, dL/dk = dyᵀ (∂M/∂k) u
            du[0] = du[0] + m[0][0] * dy[0] + m[1][0] * dy[1];
            du[1] = du[1] + m[0][1] * dy[0] + m[1][1] * dy[1];
            let quad = |d: &M2<F>| dy[0] * (d[0][0] * u[0] + d[0][1] * u[1]) + dy[1] * (d[1][0] * u[0] + d[1][1] * u[1]);
            d_raw[0] = quad(&dk) * sigmoid(raw[0]);
            d_raw[1] = quad(&dc) * sigmoid(raw[1]);
        }
        System::Lotka => {
            let (a, b, d, g) = (softplus(raw[0]), softplus(raw[1]), softplus(raw[2]), softplus(raw[3]));
            let (x, z) = (u[0], u[1]);
            let (gx, gz) = (dy[0], dy[1]);
            du[0] = du[0] + gx * (F::one() + h * (a - b * z)) + gz * h * d * z;
            du[1] = du[1] - gx * h * b * x + gz * (F::one() + h * (d * x - g));
            d_raw[0] = gx * h * x * sigmoid(raw[0]);
            d_raw[1] = -gx * h * x * z * sigmoid(raw[1]);
            d_raw[2] = gz * h * x * z * sigmoid(raw[2]);
            d_raw[3] = -gz * h * z * sigmoid(raw[3]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_gradients_match_finite_differences() {
        for sys in [System::Msd, System::Lotka] {
            let n = n_params(sys);
            let raw: Vec<f64> = (0..n).map(|i| 0.3 * i as f64 - 0.4).collect();
            let u = [0.7, 1.3];
            let dy = [0.9, -0.6];
            let loss = |raw: &[f64], u: &[f64]| {
                let mut y = [0.0; 2];
                step(sys, raw, u, &mut y);
                y[0] * dy[0] + y[1] * dy[1]
            };
            let mut d_raw = vec![0.0; n];
            let mut du = [0.0; 2];
            step_backward(sys, &raw, &u, &dy, &mut d_raw, &mut du);
            let eps = 1e-6;
            for i in 0..n {
                let (mut p, mut m) = (raw.clone(), raw.clone());
                p[i] += eps;
                m[i] -= eps;
                let fd = (loss(&p, &u) - loss(&m, &u)) / (2.0 * eps);
                assert!((fd - d_raw[i]).abs() < 1e-8, "{sys:?} raw {i}: {} vs {fd}", d_raw[i]);
            }
            for i in 0..2 {
                let (mut p, mut m) = (u, u);
                p[i] += eps;
                m[i] -= eps;
                let fd = (loss(&raw, &p) - loss(&raw, &m)) / (2.0 * eps);
                assert!((fd - du[i]).abs() < 1e-8, "{sys:?} u {i}: {} vs {fd}", du[i]);
            }
        }
    }

    #[test]
    fn the_true_parameters_step_close_to_the_simulation() {
        // raw = softplus⁻¹(p): the Euler step from the simulated state lands near the next row
        let inv = |p: f64| (p.exp() - 1.0).ln();
        let p = [1.2, 0.2];
        let sim = System::Msd.simulate(&p, [0.8, -0.3], 2);
        let mut y = [0.0; 2];
        step(System::Msd, &[inv(p[0]), inv(p[1])], &[sim[[0, 0]] as f64, sim[[0, 1]] as f64], &mut y);
        // one RK4 step of 0.1 against ten of 0.01: agreement to ~1e-6 (f32 rows)
        assert!((y[0] - sim[[1, 0]] as f64).abs() < 1e-5 && (y[1] - sim[[1, 1]] as f64).abs() < 1e-5, "{y:?} vs {:?}", sim.row(1));
    }
}
