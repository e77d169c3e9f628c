//! The one product the fast CPU recurrences need per time step:
//! `out (rows×n) += a (rows×k) · b (k×n)`, all row-major and contiguous.
//!
//! A general GEMM packs both operands on every call; at one time step of a
//! recurrence (a few dozen rows) packing the weight matrix costs as much as
//! the product. This kernel reads the operands in place: a block of `out`
//! stays in registers while it walks k, broadcasting an `a` value against
//! rows of `b`. The CPU's widest unit is picked at run time: AVX-512 blocks
//! of 8 rows × 32 columns, AVX2 + FMA blocks of 4 × 16, and plain Rust for
//! what is left at the edges (and on CPUs without either).

/// A sub-rectangle of `out`: rows r0..r1, columns j0..j1.
#[derive(Clone, Copy)]
struct Region {
    r0: usize,
    r1: usize,
    j0: usize,
    j1: usize,
}

/// The region's cells the plain loop computes.
fn scalar_region(out: &mut [f32], a: &[f32], b: &[f32], n: usize, k: usize, g: Region) {
    for r in g.r0..g.r1 {
        let o = &mut out[r * n + g.j0..r * n + g.j1];
        for l in 0..k {
            let av = a[r * k + l];
            for (ov, &bv) in o.iter_mut().zip(&b[l * n + g.j0..l * n + g.j1]) {
                *ov += av * bv;
            }
        }
    }
}

/// Tile `g` with `mr × nr` blocks from its top-left corner; `block` does a
/// full block at (row, column), `rest` the strips left at the bottom and right.
fn tiled(g: Region, mr: usize, nr: usize, mut block: impl FnMut(usize, usize), mut rest: impl FnMut(Region)) {
    let rb = g.r0 + (g.r1 - g.r0) / mr * mr;
    let nb = g.j0 + (g.j1 - g.j0) / nr * nr;
    for r in (g.r0..rb).step_by(mr) {
        for j in (g.j0..nb).step_by(nr) {
            block(r, j);
        }
    }
    if nb < g.j1 && rb > g.r0 {
        rest(Region { r0: g.r0, r1: rb, j0: nb, j1: g.j1 });
    }
    if rb < g.r1 {
        rest(Region { r0: rb, r1: g.r1, j0: g.j0, j1: g.j1 });
    }
}

/// SAFETY (both blocks): the caller checked the CPU features, and that the
/// block's rows and columns lie inside `out` (rows×n), `a` (rows×k), `b` (k×n).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2(out: &mut [f32], a: &[f32], b: &[f32], n: usize, k: usize, r0: usize, j0: usize) {
    use std::arch::x86_64::*;
    const MR: usize = 4;
    let o = out.as_mut_ptr().add(r0 * n + j0);
    let (ap, bp) = (a.as_ptr().add(r0 * k), b.as_ptr().add(j0));
    let mut c = [_mm256_setzero_ps(); 2 * MR];
    for i in 0..MR {
        c[2 * i] = _mm256_loadu_ps(o.add(i * n));
        c[2 * i + 1] = _mm256_loadu_ps(o.add(i * n + 8));
    }
    for l in 0..k {
        let b0 = _mm256_loadu_ps(bp.add(l * n));
        let b1 = _mm256_loadu_ps(bp.add(l * n + 8));
        for i in 0..MR {
            let av = _mm256_set1_ps(*ap.add(i * k + l));
            c[2 * i] = _mm256_fmadd_ps(av, b0, c[2 * i]);
            c[2 * i + 1] = _mm256_fmadd_ps(av, b1, c[2 * i + 1]);
        }
    }
    for i in 0..MR {
        _mm256_storeu_ps(o.add(i * n), c[2 * i]);
        _mm256_storeu_ps(o.add(i * n + 8), c[2 * i + 1]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512(out: &mut [f32], a: &[f32], b: &[f32], n: usize, k: usize, r0: usize, j0: usize) {
    use std::arch::x86_64::*;
    const MR: usize = 8;
    let o = out.as_mut_ptr().add(r0 * n + j0);
    let (ap, bp) = (a.as_ptr().add(r0 * k), b.as_ptr().add(j0));
    let mut c = [_mm512_setzero_ps(); 2 * MR];
    for i in 0..MR {
        c[2 * i] = _mm512_loadu_ps(o.add(i * n));
        c[2 * i + 1] = _mm512_loadu_ps(o.add(i * n + 16));
    }
    for l in 0..k {
        let b0 = _mm512_loadu_ps(bp.add(l * n));
        let b1 = _mm512_loadu_ps(bp.add(l * n + 16));
        for i in 0..MR {
            let av = _mm512_set1_ps(*ap.add(i * k + l));
            c[2 * i] = _mm512_fmadd_ps(av, b0, c[2 * i]);
            c[2 * i + 1] = _mm512_fmadd_ps(av, b1, c[2 * i + 1]);
        }
    }
    for i in 0..MR {
        _mm512_storeu_ps(o.add(i * n), c[2 * i]);
        _mm512_storeu_ps(o.add(i * n + 16), c[2 * i + 1]);
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_region(out: &mut [f32], a: &[f32], b: &[f32], n: usize, k: usize, g: Region) {
    let out_p = out as *mut [f32];
    tiled(
        g,
        4,
        16,
        // SAFETY: avx2 and fma were detected by `matmul_acc`; the block is inside `g`
        |r, j| unsafe { block_avx2(&mut *out_p, a, b, n, k, r, j) },
        |e| scalar_region(unsafe { &mut *out_p }, a, b, n, k, e),
    );
}

/// Which kernels this CPU runs: 2 = AVX-512, 1 = AVX2 + FMA, 0 = portable
/// (`LONGMEM_NO_AVX512=1` stops at AVX2). Detected once.
pub fn level() -> u8 {
    static LEVEL: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(detect)
}

fn detect() -> u8 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::env::var("LONGMEM_NO_AVX512").is_err() {
            return 2;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return 1;
        }
    }
    0
}

fn matmul_with(level: u8, out: &mut [f32], a: &[f32], b: &[f32], rows: usize, n: usize, k: usize) {
    assert!(out.len() >= rows * n && a.len() >= rows * k && b.len() >= k * n, "matmul_acc: operand sizes");
    let all = Region { r0: 0, r1: rows, j0: 0, j1: n };
    #[cfg(target_arch = "x86_64")]
    {
        let out_p = out as *mut [f32];
        match level {
            // SAFETY: the features were detected; blocks lie inside the operands
            // (sizes asserted above, blocks inside `all`); the raw pointer only
            // lets the two closures take turns writing `out`
            2 => return tiled(all, 8, 32, |r, j| unsafe { block_avx512(&mut *out_p, a, b, n, k, r, j) }, |e| avx2_region(unsafe { &mut *out_p }, a, b, n, k, e)),
            1 => return avx2_region(out, a, b, n, k, all),
            _ => {}
        }
    }
    let _ = level;
    scalar_region(out, a, b, n, k, all)
}

/// `out += a · b` with `a` rows×k, `b` k×n and `out` rows×n, row-major.
pub fn matmul_acc(out: &mut [f32], a: &[f32], b: &[f32], rows: usize, n: usize, k: usize) {
    matmul_with(level(), out, a, b, rows, n, k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn every_kernel_matches_a_plain_triple_loop_on_every_edge() {
        let mut rng = Rng::seed(11);
        let top = level();
        for &(rows, n, k) in &[(1, 1, 1), (4, 16, 8), (5, 17, 3), (8, 32, 5), (13, 70, 9), (7, 40, 33), (32, 512, 128), (3, 15, 0)] {
            let a: Vec<f32> = (0..rows * k).map(|_| rng.normal() as f32).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
            let init: Vec<f32> = (0..rows * n).map(|_| rng.normal() as f32).collect();
            for lv in 0..=top {
                let mut out = init.clone();
                matmul_with(lv, &mut out, &a, &b, rows, n, k);
                for r in 0..rows {
                    for j in 0..n {
                        let want: f64 = init[r * n + j] as f64 + (0..k).map(|l| a[r * k + l] as f64 * b[l * n + j] as f64).sum::<f64>();
                        let got = out[r * n + j] as f64;
                        assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "level {lv} ({rows},{n},{k}) [{r},{j}]: {got} vs {want}");
                    }
                }
            }
        }
    }
}
