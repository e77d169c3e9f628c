//! Small dense helpers shared by the CPU reference of every family.

use crate::params::ParamLayout;
use crate::real::Real;
use crate::rng::Rng;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};

pub fn view2<'a, F: Real>(p: &'a [F], layout: &ParamLayout, name: &str) -> ArrayView2<'a, F> {
    let v = layout.get(name).expect("family asked for its own parameter");
    assert_eq!(v.shape.len(), 2, "{name} is not a matrix");
    ArrayView2::from_shape((v.shape[0], v.shape[1]), &p[v.range()]).expect("layout shape")
}

/// grads[name] += dᵀ · prev over all rows: a weight gradient as one GEMM
/// accumulated in place (d `(rows, out)`, prev `(rows, in)`).
pub fn add_weight_grad<F: Real>(layout: &ParamLayout, name: &str, d: ArrayView2<F>, prev: ArrayView2<F>, grads: &mut [F]) {
    let v = layout.get(name).expect("family's own parameter");
    let mut g = ArrayViewMut2::from_shape((v.shape[0], v.shape[1]), &mut grads[v.range()]).expect("layout shape");
    ndarray::linalg::general_mat_mul(F::one(), &d.t(), &prev, F::one(), &mut g);
}

pub fn view1<'a, F: Real>(p: &'a [F], layout: &ParamLayout, name: &str) -> ArrayView1<'a, F> {
    let v = layout.get(name).expect("family asked for its own parameter");
    ArrayView1::from(&p[v.range()])
}

/// Householder QR in f64 of a column-major-agnostic (m×k, row-major) matrix:
/// returns (Q m×k with orthonormal columns, R diagonal signs made positive).
pub fn qr_f64(a: &[f64], m: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    assert!(k <= m && a.len() == m * k);
    let mut r = a.to_vec();
    let mut vs: Vec<Vec<f64>> = Vec::with_capacity(k);
    for j in 0..k {
        let norm = (j..m).map(|i| r[i * k + j].powi(2)).sum::<f64>().sqrt();
        let mut v = vec![0.0; m];
        if norm == 0.0 {
            vs.push(v);
            continue;
        }
        let alpha = if r[j * k + j] > 0.0 { -norm } else { norm };
        for i in j..m {
            v[i] = r[i * k + j];
        }
        v[j] -= alpha;
        let vn2: f64 = v[j..].iter().map(|x| x * x).sum();
        if vn2 > 0.0 {
            for c in j..k {
                let dot: f64 = (j..m).map(|i| v[i] * r[i * k + c]).sum();
                let f = 2.0 * dot / vn2;
                for i in j..m {
                    r[i * k + c] -= f * v[i];
                }
            }
        }
        vs.push(v);
    }
    // Q = H_0 ... H_{k-1} applied to the first k columns of I
    let mut q = vec![0.0; m * k];
    for j in 0..k {
        q[j * k + j] = 1.0;
    }
    for j in (0..k).rev() {
        let v = &vs[j];
        let vn2: f64 = v[j..].iter().map(|x| x * x).sum();
        if vn2 == 0.0 {
            continue;
        }
        for c in 0..k {
            let dot: f64 = (j..m).map(|i| v[i] * q[i * k + c]).sum();
            let f = 2.0 * dot / vn2;
            for i in j..m {
                q[i * k + c] -= f * v[i];
            }
        }
    }
    // make diag(R) positive
    let mut rr = vec![0.0; k * k];
    for i in 0..k {
        for c in i..k {
            rr[i * k + c] = r[i * k + c];
        }
    }
    for i in 0..k {
        if rr[i * k + i] < 0.0 {
            for c in 0..k {
                rr[i * k + c] = -rr[i * k + c];
            }
            for row in 0..m {
                q[row * k + i] = -q[row * k + i];
            }
        }
    }
    (q, rr)
}

/// n×k with orthonormal columns, from the QR of a Gaussian matrix.
pub fn random_orthonormal(n: usize, k: usize, rng: &mut Rng) -> ndarray::Array2<f64> {
    let a: Vec<f64> = (0..n * k).map(|_| rng.normal()).collect();
    ndarray::Array2::from_shape_vec((n, k), qr_f64(&a, n, k).0).expect("shape")
}

/// A Haar-distributed random orthogonal n×n matrix (row-major).
pub fn random_orthogonal(n: usize, rng: &mut Rng) -> Vec<f64> {
    let a: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
    qr_f64(&a, n, n).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_reconstructs_and_is_orthonormal() {
        let mut rng = Rng::seed(5);
        let (m, k) = (7, 4);
        let a: Vec<f64> = (0..m * k).map(|_| rng.normal()).collect();
        let (q, r) = qr_f64(&a, m, k);
        for i in 0..m {
            for j in 0..k {
                let v: f64 = (0..k).map(|l| q[i * k + l] * r[l * k + j]).sum();
                assert!((v - a[i * k + j]).abs() < 1e-12);
            }
        }
        for a_ in 0..k {
            for b in 0..k {
                let v: f64 = (0..m).map(|i| q[i * k + a_] * q[i * k + b]).sum();
                assert!((v - if a_ == b { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
            assert!(r[a_ * k + a_] >= 0.0);
        }
    }
}

#[cfg(test)]
mod qr_det_tests {
    use super::*;

    #[test]
    fn qr_diagonal_gives_log_det_of_ill_conditioned_matrices() {
        let mut rng = Rng::seed(8);
        let n = 12;
        for p in [1, 3, 5, 8] {
            let w: Vec<f64> = (0..n * n).map(|_| rng.normal() * 0.8 / (n as f64).sqrt()).collect();
            let wm = nalgebra::DMatrix::from_row_slice(n, n, &w);
            let mut a = nalgebra::DMatrix::<f64>::identity(n, n);
            for _ in 0..p {
                a = &wm * a;
            }
            let rows: Vec<f64> = (0..n).flat_map(|i| (0..n).map(move |j| (i, j))).map(|(i, j)| a[(i, j)]).collect();
            let (_, r) = qr_f64(&rows, n, n);
            let s: f64 = (0..n).map(|i| r[i * n + i].abs().ln()).sum();
            let ld = p as f64 * wm.clone().lu().determinant().abs().ln();
            assert!((s - ld).abs() < 1e-6 * ld.abs(), "p={p}: {s} vs {ld}");
        }
    }
}
