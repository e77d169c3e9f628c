//! The unitary evolution RNN (Arjovsky, Shah and Bengio 2016).
//!
//! Complex state `h ∈ C^N` stored as `[Re h (N); Im h (N)]` (N a power of
//! two), `z_t = W h_{t-1} + V x_t`, `h_t = modReLU(z_t)` with
//! `W = D3 R2 F⁻¹ D2 Π R1 F D1`: D = diag(e^{iθ}), R = I − 2vv*/‖v‖² a
//! complex reflection, F the unitary DFT, Π a fixed permutation.
//! `modReLU(z) = max(|z| + b, 0) · z / (|z| + ε)`. The readout is the shared
//! real linear layer on `[Re h; Im h]`. `w_in` (2N, I) stacks Re V over Im V,
//! so the shared input projection gives `V x` with no input bias.
//!
//! Parameters beyond the input and readout: `theta` (3, N), `refl` (2, 2N)
//! (each reflection vector as [re; im]), `b_mod` (N, with biases) and a
//! learned initial state `h0` (2N), which a batch starts from unless it
//! carries the last state of the previous one.
//!
//! CPU reference (f64 or f32, radix-2 FFT) in `cpu.rs`, GPU kernels
//! (shaders/urnn*.wgsl) in `gpu.rs`.

pub(crate) mod cpu;
pub mod gpu;

use super::{Dims, InitConfig};
use crate::params::ParamLayout;
use crate::real::Real;
use crate::rng::Rng;
use anyhow::{bail, Result};

/// ε of modReLU (the reference code's 1e-5), as the f32 the GPU uses, so
/// that the f64 and f32 paths agree on it exactly.
pub const MODRELU_EPS: f64 = 1e-5f32 as f64;

/// Largest N: the GPU kernels index bit-reversal in 16 bits.
pub const MAX_UNITS: usize = 1 << 16;

#[derive(Clone, Debug)]
pub struct Urnn {
    pub dims: Dims,
    pub bias: bool,
    /// Π: `(Π x)_j = x_{perm[j]}`, fixed by N (not trained)
    pub perm: Vec<usize>,
    pub layout: ParamLayout,
}

/// The fixed permutation Π for N units: the same for every run of that size,
/// so a checkpoint needs nothing beyond its parameters.
pub fn permutation(n: usize) -> Vec<usize> {
    let mut rng = Rng::seed(0x0075_726e_6e00 ^ n as u64);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i + 1);
        p.swap(i, j);
    }
    p
}

impl Urnn {
    pub fn new(dims: Dims, bias: bool) -> Result<Self> {
        let n = dims.hidden;
        if !n.is_power_of_two() || n > MAX_UNITS {
            bail!("the uRNN needs --hidden N a power of two (for its FFTs) up to {MAX_UNITS}, got {n}");
        }
        let mut layout = ParamLayout::new();
        layout.push("w_in", &[2 * n, dims.input]);
        layout.push("theta", &[3, n]);
        layout.push("refl", &[2, 2 * n]);
        if bias {
            layout.push("b_mod", &[n]);
        }
        layout.push("h0", &[2 * n]);
        super::readout::push_layout(&mut layout, 2 * n, dims.output, bias);
        Ok(Urnn { dims, bias, perm: permutation(n), layout })
    }

    pub fn state_width(&self) -> usize {
        2 * self.dims.hidden
    }

    /// As the reference code: θ ~ U[−π, π]; reflections, V and U
    /// Glorot-uniform; modReLU bias ~ U[±0.01]; h0 ~ U[±√(3/(2N))];
    /// `init.scale` multiplies V and U.
    pub fn init(&self, init: &InitConfig, rng: &mut Rng) -> Vec<f32> {
        let Dims { input, hidden: n, output } = self.dims;
        let mut p = vec![0f32; self.layout.len()];
        let glorot = |p: &mut [f32], fan_in: usize, fan_out: usize, scale: f64, rng: &mut Rng| {
            let a = (6.0 / (fan_in + fan_out) as f64).sqrt() * scale;
            p.iter_mut().for_each(|v| *v = rng.uniform_in(-a, a) as f32);
        };
        let l = &self.layout;
        glorot(&mut p[l.get("w_in").expect("w_in").range()], input, 2 * n, init.scale, rng);
        let pi = std::f64::consts::PI;
        p[l.get("theta").expect("theta").range()].iter_mut().for_each(|v| *v = rng.uniform_in(-pi, pi) as f32);
        glorot(&mut p[l.get("refl").expect("refl").range()], 2, 2 * n, 1.0, rng);
        if let Ok(b) = l.get("b_mod") {
            p[b.range()].iter_mut().for_each(|v| *v = rng.uniform_in(-0.01, 0.01) as f32);
        }
        let a = (3.0 / (2 * n) as f64).sqrt();
        p[l.get("h0").expect("h0").range()].iter_mut().for_each(|v| *v = rng.uniform_in(-a, a) as f32);
        glorot(&mut p[l.get("w_out").expect("w_out").range()], 2 * n, output, init.scale, rng);
        p
    }
}

// ------------------------------------------------ complex vector helpers

/// A complex vector as separate real and imaginary parts.
#[derive(Clone, Debug, PartialEq)]
pub struct CVec<F> {
    pub re: Vec<F>,
    pub im: Vec<F>,
}

impl<F: Real> CVec<F> {
    pub fn zeros(n: usize) -> Self {
        CVec { re: vec![F::zero(); n], im: vec![F::zero(); n] }
    }
    /// From `[re; im]`.
    pub fn from_stacked(v: &[F]) -> Self {
        let n = v.len() / 2;
        CVec { re: v[..n].to_vec(), im: v[n..].to_vec() }
    }
    pub fn write_stacked(&self, out: &mut [F]) {
        let n = self.re.len();
        out[..n].copy_from_slice(&self.re);
        out[n..2 * n].copy_from_slice(&self.im);
    }
    pub fn len(&self) -> usize {
        self.re.len()
    }
    pub fn is_empty(&self) -> bool {
        self.re.is_empty()
    }
    /// Σ |x_k|²
    pub fn norm_sq(&self) -> F {
        self.re.iter().zip(&self.im).fold(F::zero(), |a, (&r, &i)| a + r * r + i * i)
    }
}

/// Σ conj(a_k) b_k
pub fn cdot<F: Real>(a: &CVec<F>, b: &CVec<F>) -> (F, F) {
    let mut re = F::zero();
    let mut im = F::zero();
    for k in 0..a.len() {
        re = re + a.re[k] * b.re[k] + a.im[k] * b.im[k];
        im = im + a.re[k] * b.im[k] - a.im[k] * b.re[k];
    }
    (re, im)
}

/// e^{−2πik/N} for k < N/2: the twiddle factors of an N-point FFT.
pub fn twiddles<F: Real>(n: usize) -> (Vec<F>, Vec<F>) {
    let ang = |k: usize| -2.0 * std::f64::consts::PI * k as f64 / n as f64;
    ((0..n / 2).map(|k| F::from_f64(ang(k).cos())).collect(), (0..n / 2).map(|k| F::from_f64(ang(k).sin())).collect())
}

/// In-place radix-2 FFT, unitary (scaled by 1/√N): the forward transform
/// `Σ_j x_j e^{−2πi jk/N} / √N` when `inverse` is false, its inverse else.
pub fn fft<F: Real>(x: &mut CVec<F>, inverse: bool) {
    fft_with(x, inverse, &twiddles(x.len()));
}

/// [`fft`] with the twiddle table of [`twiddles`] made once by the caller.
pub fn fft_with<F: Real>(x: &mut CVec<F>, inverse: bool, tw: &(Vec<F>, Vec<F>)) {
    let n = x.len();
    debug_assert!(n.is_power_of_two() && tw.0.len() == n / 2);
    let bits = n.trailing_zeros();
    if bits > 0 {
        for i in 0..n {
            let j = i.reverse_bits() >> (usize::BITS - bits);
            if j > i {
                x.re.swap(i, j);
                x.im.swap(i, j);
            }
        }
    }
    let mut len = 2;
    while len <= n {
        let half = len / 2;
        let stride = n / len;
        for k in 0..half {
            let wr = tw.0[k * stride];
            let wi = if inverse { -tw.1[k * stride] } else { tw.1[k * stride] };
            for start in (0..n).step_by(len) {
                let (a, b) = (start + k, start + k + half);
                let tr = x.re[b] * wr - x.im[b] * wi;
                let ti = x.re[b] * wi + x.im[b] * wr;
                x.re[b] = x.re[a] - tr;
                x.im[b] = x.im[a] - ti;
                x.re[a] = x.re[a] + tr;
                x.im[a] = x.im[a] + ti;
            }
        }
        len *= 2;
    }
    let s = F::from_f64(1.0 / (n as f64).sqrt());
    x.re.iter_mut().chain(x.im.iter_mut()).for_each(|v| *v = *v * s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_matches_the_plain_dft_and_inverts() {
        let mut rng = Rng::seed(5);
        for n in [1usize, 2, 4, 8, 64] {
            let x = CVec { re: (0..n).map(|_| rng.normal()).collect(), im: (0..n).map(|_| rng.normal()).collect() };
            for inverse in [false, true] {
                let mut y = x.clone();
                fft(&mut y, inverse);
                let sign = if inverse { 1.0 } else { -1.0 };
                for k in 0..n {
                    let (mut re, mut im) = (0.0, 0.0);
                    for j in 0..n {
                        let a = sign * 2.0 * std::f64::consts::PI * (j * k) as f64 / n as f64;
                        re += x.re[j] * a.cos() - x.im[j] * a.sin();
                        im += x.re[j] * a.sin() + x.im[j] * a.cos();
                    }
                    let s = 1.0 / (n as f64).sqrt();
                    assert!((y.re[k] - re * s).abs() < 1e-12 && (y.im[k] - im * s).abs() < 1e-12, "N={n} k={k}");
                }
            }
            let mut y = x.clone();
            fft(&mut y, false);
            fft(&mut y, true);
            for k in 0..n {
                assert!((y.re[k] - x.re[k]).abs() < 1e-12 && (y.im[k] - x.im[k]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn permutation_is_one_and_fixed() {
        let p = permutation(64);
        let mut seen = p.clone();
        seen.sort();
        assert_eq!(seen, (0..64).collect::<Vec<_>>());
        assert_eq!(p, permutation(64));
        assert_ne!(p, (0..64).collect::<Vec<_>>());
    }

    #[test]
    fn sizes_that_are_not_powers_of_two_are_refused() {
        let err = Urnn::new(Dims { input: 1, hidden: 12, output: 1 }, true).unwrap_err().to_string();
        assert!(err.contains("power of two"), "{err}");
    }
}
