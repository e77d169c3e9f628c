//! Spectrum of a linear RNN's recurrent matrix during training.
//!
//! The model is `h_t = W h_{t-1} + U x_t`, `y_t = V h_t` with W `[N, N]`,
//! U `[N, I]` and V `[O, N]`, all f32 row-major. Gradient descent grows one
//! outlier eigenvalue (or complex pair) of W toward the task's timescale; an
//! [`EigRecord`] keeps W's whole spectrum at one step plus how well the input
//! column and readout row line up with the leading right / left eigenvectors.
//!
//! Everything is computed in f64: eigenvalues from nalgebra's real Schur
//! decomposition, the leading eigenvectors by complex inverse iteration.
//! Records are stored one JSON object per line (`eigs.jsonl`).

use anyhow::{bail, Context, Result};
use nalgebra::{Complex, DMatrix, DVector, Schur};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

type C64 = Complex<f64>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EigRecord {
    pub step: u64,
    /// eigenvalues of W as [re, im], sorted by modulus, largest first (ties: larger re first, then positive im first)
    pub eigs: Vec<[f64; 2]>,
    /// |cos| between the input weights (U, first input column) and the right eigenvector of the leading eigenvalue (complex-aware: |r^H u| / (|r| |u|))
    pub align_u: f64,
    /// |cos| between the readout (V, first output row) and the left eigenvector of the leading eigenvalue (|l^H v| / (|l| |v|))
    pub align_v: f64,
}

impl EigRecord {
    /// The leading eigenvalue `eigs[0]` (of a complex pair, the one with im >= 0).
    pub fn leading(&self) -> Option<[f64; 2]> {
        self.eigs.first().copied()
    }
}

/// W's spectrum at `step` and the alignments of `u_col` (U's first input
/// column, length n) and `v_row` (V's first output row, length n) with the
/// leading right / left eigenvectors. `w` is `[n, n]` row-major.
///
/// Errors (never panics) when the sizes do not match, when any input holds
/// NaN/Inf, or when the Schur decomposition does not converge. An all-zero
/// `u_col` or `v_row` gives alignment 0.
pub fn eigen_record(step: u64, w: &[f32], n: usize, u_col: &[f32], v_row: &[f32]) -> Result<EigRecord> {
    if n == 0 {
        bail!("eigen_record: the hidden size n must be at least 1");
    }
    if w.len() != n * n {
        bail!("eigen_record: W has {} values, expected n*n = {}", w.len(), n * n);
    }
    if u_col.len() != n {
        bail!("eigen_record: the input column has {} values, expected n = {n}", u_col.len());
    }
    if v_row.len() != n {
        bail!("eigen_record: the readout row has {} values, expected n = {n}", v_row.len());
    }
    if let Some(i) = w.iter().position(|x| !x.is_finite()) {
        bail!(
            "eigen_record: W contains a non-finite value (NaN/Inf) at step {step}: W[{}, {}] = {}",
            i / n,
            i % n,
            w[i]
        );
    }
    if let Some(i) = u_col.iter().position(|x| !x.is_finite()) {
        bail!("eigen_record: the input weights contain a non-finite value (NaN/Inf) at step {step}: U[{i}, 0] = {}", u_col[i]);
    }
    if let Some(i) = v_row.iter().position(|x| !x.is_finite()) {
        bail!("eigen_record: the readout contains a non-finite value (NaN/Inf) at step {step}: V[0, {i}] = {}", v_row[i]);
    }
    let wm = DMatrix::from_row_iterator(n, n, w.iter().map(|&x| x as f64));
    let u: Vec<f64> = u_col.iter().map(|&x| x as f64).collect();
    let v: Vec<f64> = v_row.iter().map(|&x| x as f64).collect();
    eigen_record_f64(step, &wm, &u, &v)
}

/// [`eigen_record`] on an f64 matrix (inputs already checked finite and sized).
fn eigen_record_f64(step: u64, w: &DMatrix<f64>, u: &[f64], v: &[f64]) -> Result<EigRecord> {
    let eigs = sorted_eigenvalues(w)?;
    let lead = C64::new(eigs[0][0], eigs[0][1]);
    let r = eigenvector(w, lead).context("right eigenvector of the leading eigenvalue")?;
    let l = eigenvector(&w.transpose(), lead).context("left eigenvector of the leading eigenvalue")?;
    Ok(EigRecord { step, eigs, align_u: abs_cos(&r, u), align_v: abs_cos(&l, v) })
}

/// All eigenvalues of `w`, sorted as documented on [`EigRecord::eigs`].
fn sorted_eigenvalues(w: &DMatrix<f64>) -> Result<Vec<[f64; 2]>> {
    let mut eigs: Vec<[f64; 2]> = schur_eigenvalues(w)?.into_iter().map(|z| [z.re, z.im]).collect();
    if let Some(z) = eigs.iter().find(|z| !(z[0].is_finite() && z[1].is_finite())) {
        bail!("eigenvalue computation produced a non-finite value {z:?} (W too large?)");
    }
    // moduli closer than 1e-12 (below the solver's accuracy, e.g. roots of
    // unity) count as ties; binning keeps the order total
    let bin = |z: &[f64; 2]| (z[0].hypot(z[1]) * 1e12).round();
    eigs.sort_by(|a, b| bin(b).total_cmp(&bin(a)).then(b[0].total_cmp(&a[0])).then(b[1].total_cmp(&a[1])));
    Ok(eigs)
}

/// Eigenvalues from the real Schur form. nalgebra's QR iteration has no
/// exceptional shifts and can stall (e.g. on permutation matrices), so a
/// failed attempt is retried on an orthogonal similarity of W, then on a
/// shifted W; conjugate pairs come out exactly conjugate.
fn schur_eigenvalues(w: &DMatrix<f64>) -> Result<Vec<C64>> {
    let n = w.nrows();
    let max_niter = 100 * n.max(10);
    let try_t = |m: DMatrix<f64>| Schur::try_new(m, f64::EPSILON, max_niter).map(|s| s.unpack().1);
    if let Some(t) = try_t(w.clone()) {
        return Ok(quasi_triangular_eigenvalues(&t));
    }
    // Householder reflection H = I - 2 h h^T / h^T h (H = H^T = H^-1).
    let h = DVector::from_iterator(n, (0..n).map(|k| unit_hash(k as u64 + 17)));
    let hh = h.dot(&h);
    if hh > 0.0 {
        let hw = w - (&h * (h.transpose() * w)) * (2.0 / hh);
        let hwh = &hw - (&hw * &h) * h.transpose() * (2.0 / hh);
        if let Some(t) = try_t(hwh) {
            return Ok(quasi_triangular_eigenvalues(&t));
        }
    }
    let s = 0.37 * w.amax().max(f64::MIN_POSITIVE);
    let shifted = w + DMatrix::identity(n, n) * s;
    if let Some(t) = try_t(shifted) {
        return Ok(quasi_triangular_eigenvalues(&t).into_iter().map(|z| z - s).collect());
    }
    bail!("the Schur decomposition of W ({n}x{n}) did not converge")
}

/// Eigenvalues of an upper quasi-triangular matrix (1x1 and 2x2 diagonal blocks).
fn quasi_triangular_eigenvalues(t: &DMatrix<f64>) -> Vec<C64> {
    let n = t.nrows();
    let mut out = Vec::with_capacity(n);
    let mut m = 0;
    while m < n {
        if m + 1 < n && t[(m + 1, m)] != 0.0 {
            let (a, b, c, d) = (t[(m, m)], t[(m, m + 1)], t[(m + 1, m)], t[(m + 1, m + 1)]);
            let half_tr = 0.5 * (a + d);
            let half_diff = 0.5 * (a - d);
            let discr = half_diff * half_diff + b * c;
            if discr < 0.0 {
                let s = (-discr).sqrt();
                out.push(C64::new(half_tr, s));
                out.push(C64::new(half_tr, -s));
            } else {
                // a block nalgebra left undecoupled with real eigenvalues
                let s = discr.sqrt();
                out.push(C64::new(half_tr + s, 0.0));
                out.push(C64::new(half_tr - s, 0.0));
            }
            m += 2;
        } else {
            out.push(C64::new(t[(m, m)], 0.0));
            m += 1;
        }
    }
    out
}

/// An eigenvector of `a` for the eigenvalue `lambda`, by inverse iteration on
/// `a - mu I` with `mu` just off `lambda`, from a fixed start vector. Returns a
/// unit vector; retries with larger offsets when the shifted matrix is exactly
/// singular or the residual stays large.
fn eigenvector(a: &DMatrix<f64>, lambda: C64) -> Result<DVector<C64>> {
    let n = a.nrows();
    let scale = if a.amax() > 0.0 { a.amax() } else { 1.0 };
    let ac: DMatrix<C64> = a.map(|x| C64::new(x, 0.0));
    let start = DVector::from_iterator(n, (0..n).map(|k| C64::new(1.0 + 0.5 * unit_hash(2 * k as u64), 0.5 * unit_hash(2 * k as u64 + 1))));
    let mut best: Option<(f64, DVector<C64>)> = None;
    for rel in [1e-9, 1e-7, 1e-5] {
        let mu = lambda * (1.0 + rel) + C64::new(rel * 1e-3 * scale, 0.0);
        let mut shifted = ac.clone();
        for i in 0..n {
            shifted[(i, i)] -= mu;
        }
        let lu = shifted.lu();
        let mut x = start.clone() / C64::new(start.norm(), 0.0);
        let mut ok = true;
        for _ in 0..4 {
            let Some(y) = lu.solve(&x) else {
                ok = false;
                break;
            };
            let norm = y.norm();
            if !(norm.is_finite() && norm > 0.0) {
                ok = false;
                break;
            }
            x = y / C64::new(norm, 0.0);
        }
        if !ok {
            continue;
        }
        let residual = (&ac * &x - &x * lambda).norm() / scale;
        if residual.is_finite() && best.as_ref().is_none_or(|(r, _)| residual < *r) {
            best = Some((residual, x));
        }
        if residual <= 1e-8 {
            break;
        }
    }
    match best {
        Some((_, x)) => Ok(x),
        None => bail!("inverse iteration failed for the eigenvalue {lambda}"),
    }
}

/// |r^H u| / (|r| |u|), 0 when either vector is zero.
fn abs_cos(r: &DVector<C64>, u: &[f64]) -> f64 {
    let dot: C64 = r.iter().zip(u).map(|(ri, &ui)| ri.conj() * ui).sum();
    let nu = u.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nr = r.norm();
    if nu > 0.0 && nr > 0.0 {
        (dot.norm() / (nr * nu)).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// Deterministic pseudo-random number in [-1, 1) (splitmix64 of `k`).
fn unit_hash(k: u64) -> f64 {
    let mut z = k.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// All records of a JSON-lines file, in file order. Blank lines are skipped;
/// a malformed line is an error naming it, except an unterminated last line
/// (an append cut off by a crash), which is dropped.
pub fn read_jsonl(path: &Path) -> Result<Vec<EigRecord>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<EigRecord>(line) {
            Ok(r) => out.push(r),
            // the last piece after split has no '\n' after it
            Err(_) if i + 1 == lines.len() => break,
            Err(e) => bail!("{}:{}: bad eigen record: {e}", path.display(), i + 1),
        }
    }
    Ok(out)
}

/// Appends one record as a JSON line, creating the file if needed. If the
/// file's last line is unterminated (a cut-off append) a newline goes first.
pub fn append_jsonl(path: &Path, r: &EigRecord) -> Result<()> {
    let mut line = serde_json::to_string(r)?;
    line.push('\n');
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let len = f.metadata()?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.insert(0, '\n');
        }
    }
    f.write_all(line.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Keeps only the records with `step <= step` (e.g. when resuming from a
/// checkpoint), through a temporary file renamed over `path`. A missing file
/// is left missing.
pub fn truncate_after(path: &Path, step: u64) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let kept: Vec<EigRecord> = read_jsonl(path)?.into_iter().filter(|r| r.step <= step).collect();
    let mut tmp_name = path.file_name().map(|s| s.to_os_string()).unwrap_or_else(|| "eigs.jsonl".into());
    tmp_name.push(".tmp");
    let tmp: PathBuf = path.with_file_name(tmp_name);
    {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut buf = String::new();
        for r in &kept {
            buf.push_str(&serde_json::to_string(r)?);
            buf.push('\n');
        }
        f.write_all(buf.as_bytes()).with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [f64; 2], b: [f64; 2], tol: f64) -> bool {
        (a[0] - b[0]).abs() <= tol && (a[1] - b[1]).abs() <= tol
    }

    /// Block-diagonal W: a·[[c,-s],[s,c]] at the top-left, then `diag`.
    fn block_w(a: f64, theta: f64, diag: &[f64]) -> (Vec<f32>, usize) {
        let n = 2 + diag.len();
        let mut w = vec![0f32; n * n];
        let (c, s) = ((a * theta.cos()) as f32, (a * theta.sin()) as f32);
        w[0] = c;
        w[1] = -s;
        w[n] = s;
        w[n + 1] = c;
        for (k, &d) in diag.iter().enumerate() {
            w[(k + 2) * n + k + 2] = d as f32;
        }
        (w, n)
    }

    #[test]
    fn block_diagonal_eigenvalues_sorted() {
        let (a, theta) = (0.95, 0.3);
        let diag = [0.5, -0.5, 0.97, 0.0, -0.99, 0.2];
        let (w, n) = block_w(a, theta, &diag);
        // exact eigenvalues of the f32-rounded matrix
        let (c, s) = (w[0] as f64, w[n] as f64);
        let f = |x: f64| x as f32 as f64;
        let expect = vec![
            [f(-0.99), 0.0],
            [f(0.97), 0.0],
            [c, s],
            [c, -s],
            [f(0.5), 0.0],
            [f(-0.5), 0.0],
            [f(0.2), 0.0],
            [0.0, 0.0],
        ];
        let u = vec![1f32; n];
        let r = eigen_record(3, &w, n, &u, &u).unwrap();
        assert_eq!(r.step, 3);
        assert_eq!(r.eigs.len(), n);
        for (got, want) in r.eigs.iter().zip(&expect) {
            assert!(close(*got, *want, 1e-10), "got {:?}, want {:?}", r.eigs, expect);
        }
        // with the pair leading: positive imaginary part first
        let (w, n) = block_w(0.999, 1.1, &[0.9, -0.2, 0.0]);
        let r = eigen_record(0, &w, n, &vec![1f32; n], &vec![1f32; n]).unwrap();
        let (c, s) = (w[0] as f64, w[n] as f64);
        assert!(close(r.eigs[0], [c, s], 1e-10) && close(r.eigs[1], [c, -s], 1e-10), "{:?}", r.eigs);
        assert!(close(r.leading().unwrap(), [c, s], 1e-10));
    }

    /// Q D Q^T for a dense orthogonal Q: the Schur form is not given away.
    #[test]
    fn dense_orthogonal_similarity() {
        let n = 9;
        let (a, theta) = (0.9f64, 0.7f64);
        let mut d = DMatrix::<f64>::zeros(n, n);
        d[(0, 0)] = a * theta.cos();
        d[(0, 1)] = -a * theta.sin();
        d[(1, 0)] = a * theta.sin();
        d[(1, 1)] = a * theta.cos();
        let reals = [0.3, -0.8, 0.1, 0.6, -0.05, 0.45, -0.3];
        for (k, &x) in reals.iter().enumerate() {
            d[(k + 2, k + 2)] = x;
        }
        let g = DMatrix::from_fn(n, n, |i, j| unit_hash((i * n + j) as u64 + 1000));
        let q = g.qr().q();
        let w = &q * &d * q.transpose();
        // right eigenvectors of the pair span Q's first two columns; the left ones too (W normal)
        let u: Vec<f64> = q.column(0).iter().copied().collect();
        let v: Vec<f64> = q.column(1).iter().copied().collect();
        let r = eigen_record_f64(5, &w, &u, &v).unwrap();
        let mut expect: Vec<[f64; 2]> = reals.iter().map(|&x| [x, 0.0]).collect();
        expect.push([a * theta.cos(), a * theta.sin()]);
        expect.push([a * theta.cos(), -a * theta.sin()]);
        expect.sort_by(|x, y| {
            y[0].hypot(y[1]).total_cmp(&x[0].hypot(x[1])).then(y[0].total_cmp(&x[0])).then(y[1].total_cmp(&x[1]))
        });
        for (got, want) in r.eigs.iter().zip(&expect) {
            assert!(close(*got, *want, 1e-10), "got {:?}, want {:?}", r.eigs, expect);
        }
        // eigenvector of a·e^{iθ} for the block is (1, -i)/√2 in Q's basis: |cos| with q0 is 1/√2
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert!((r.align_u - h).abs() < 1e-8, "{}", r.align_u);
        assert!((r.align_v - h).abs() < 1e-8, "{}", r.align_v);
    }

    #[test]
    fn alignment_with_leading_eigenvector() {
        let n = 5;
        let mut w = vec![0f32; n * n];
        for (k, d) in [0.9f32, 0.5, -0.3, 0.1, 0.0].iter().enumerate() {
            w[k * n + k] = *d;
        }
        let e = |k: usize| {
            let mut x = vec![0f32; n];
            x[k] = 1.0;
            x
        };
        let r = eigen_record(0, &w, n, &e(0), &e(0)).unwrap();
        assert!((r.align_u - 1.0).abs() < 1e-12 && (r.align_v - 1.0).abs() < 1e-12, "{r:?}");
        let r = eigen_record(0, &w, n, &e(1), &e(2)).unwrap();
        assert!(r.align_u < 1e-8 && r.align_v < 1e-8, "{r:?}");
        // scaled and mixed: |cos| = 3/5
        let mut u = vec![0f32; n];
        u[0] = -3.0;
        u[3] = 4.0;
        let r = eigen_record(0, &w, n, &u, &vec![0f32; n]).unwrap();
        assert!((r.align_u - 0.6).abs() < 1e-9, "{r:?}");
        assert_eq!(r.align_v, 0.0);
        // non-normal W: right and left eigenvectors differ
        // W = [[0.9, 1], [0, 0.2]]: right (1, 0), left ∝ (0.7, 1)
        let w = [0.9f32, 1.0, 0.0, 0.2];
        let r = eigen_record(0, &w, 2, &[1.0, 0.0], &[1.0, 0.0]).unwrap();
        assert!((r.align_u - 1.0).abs() < 1e-9, "{r:?}");
        let want = 0.7 / (0.7f64 * 0.7 + 1.0).sqrt();
        assert!((r.align_v - want).abs() < 1e-6, "{r:?} want {want}");
    }

    #[test]
    fn non_finite_and_bad_sizes_are_errors() {
        let mut w = vec![0.1f32; 9];
        w[4] = f32::NAN;
        let err = eigen_record(7, &w, 3, &[1.0; 3], &[1.0; 3]).unwrap_err().to_string();
        assert!(err.contains("NaN"), "{err}");
        w[4] = f32::INFINITY;
        assert!(eigen_record(7, &w, 3, &[1.0; 3], &[1.0; 3]).is_err());
        let w = vec![0.1f32; 9];
        assert!(eigen_record(0, &w, 3, &[1.0, f32::NAN, 0.0], &[1.0; 3]).is_err());
        assert!(eigen_record(0, &w, 3, &[1.0; 3], &[1.0, 2.0, f32::NEG_INFINITY]).is_err());
        assert!(eigen_record(0, &w, 2, &[1.0; 2], &[1.0; 2]).is_err());
        assert!(eigen_record(0, &w, 3, &[1.0; 2], &[1.0; 3]).is_err());
        assert!(eigen_record(0, &[], 0, &[], &[]).is_err());
    }

    #[test]
    fn degenerate_matrices() {
        // zero matrix, 1x1, identity, and permutation matrices (where QR without
        // exceptional shifts stalls)
        let r = eigen_record(0, &[0.0; 16], 4, &[1.0; 4], &[1.0; 4]).unwrap();
        assert!(r.eigs.iter().all(|z| z == &[0.0, 0.0]));
        assert!(r.align_u.is_finite() && r.align_v.is_finite());
        let r = eigen_record(0, &[-0.7], 1, &[2.0], &[-1.0]).unwrap();
        assert_eq!(r.eigs, vec![[-0.7f32 as f64, 0.0]]);
        assert!((r.align_u - 1.0).abs() < 1e-12 && (r.align_v - 1.0).abs() < 1e-12);
        for n in [2usize, 3, 4, 5, 8, 16] {
            let mut w = vec![0f32; n * n];
            for i in 0..n {
                w[((i + 1) % n) * n + i] = 1.0;
            }
            let r = eigen_record(0, &w, n, &vec![1f32; n], &vec![1f32; n]).unwrap();
            assert_eq!(r.eigs.len(), n);
            for z in &r.eigs {
                assert!((z[0].hypot(z[1]) - 1.0).abs() < 1e-9, "n={n}: {:?}", r.eigs);
            }
            assert!(close(r.eigs[0], [1.0, 0.0], 1e-9), "n={n}: {:?}", r.eigs);
            // eigenvalue 1's eigenvector is the all-ones vector
            assert!((r.align_u - 1.0).abs() < 1e-6 && (r.align_v - 1.0).abs() < 1e-6, "n={n}: {r:?}");
        }
    }

    #[test]
    fn random_matrices_match_characteristic_residual() {
        // eigenvalues of random dense W: each λ makes W - λI singular
        // (smallest singular value ~ 0) and the sum equals the trace
        for (seed, n) in [(1u64, 6usize), (2, 17), (3, 40)] {
            let w: Vec<f32> = (0..n * n).map(|k| (unit_hash(seed * 100_000 + k as u64) / (n as f64).sqrt()) as f32).collect();
            let r = eigen_record(0, &w, n, &vec![1f32; n], &vec![1f32; n]).unwrap();
            let wm = DMatrix::from_row_iterator(n, n, w.iter().map(|&x| x as f64));
            let tr: f64 = (0..n).map(|i| wm[(i, i)]).sum();
            let sum_re: f64 = r.eigs.iter().map(|z| z[0]).sum();
            let sum_im: f64 = r.eigs.iter().map(|z| z[1]).sum();
            assert!((tr - sum_re).abs() < 1e-10 && sum_im.abs() < 1e-10);
            let wc = wm.map(|x| C64::new(x, 0.0));
            for z in &r.eigs {
                let mut m = wc.clone();
                for i in 0..n {
                    m[(i, i)] -= C64::new(z[0], z[1]);
                }
                let sv = m.singular_values();
                let smin = sv.iter().cloned().fold(f64::INFINITY, f64::min);
                assert!(smin < 1e-10, "n={n} λ={z:?} σmin={smin}");
            }
            for pair in r.eigs.windows(2) {
                assert!(pair[0][0].hypot(pair[0][1]) >= pair[1][0].hypot(pair[1][1]));
            }
            assert!((0.0..=1.0).contains(&r.align_u) && (0.0..=1.0).contains(&r.align_v));
        }
    }

    /// serde_json (without its `float_roundtrip` feature) may parse a float
    /// 1 ulp off, so records compare with a relative tolerance of 1e-15.
    fn same(a: &[EigRecord], b: &[EigRecord]) -> bool {
        let eq = |x: f64, y: f64| x == y || (x - y).abs() <= 1e-15 * x.abs().max(y.abs());
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.step == y.step
                    && eq(x.align_u, y.align_u)
                    && eq(x.align_v, y.align_v)
                    && x.eigs.len() == y.eigs.len()
                    && x.eigs.iter().zip(&y.eigs).all(|(p, q)| eq(p[0], q[0]) && eq(p[1], q[1]))
            })
    }

    #[test]
    fn jsonl_round_trip_and_truncate() {
        let dir = std::env::temp_dir().join(format!("longmem-eigs-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("eigs.jsonl");
        let _ = fs::remove_file(&path);
        let recs: Vec<EigRecord> = (0..5u64)
            .map(|s| EigRecord {
                step: s * 10,
                eigs: vec![[0.9 + s as f64 * 0.01, 0.1 / 3.0], [0.9 + s as f64 * 0.01, -0.1 / 3.0], [-1e-300, 0.0]],
                align_u: 1.0 / 7.0,
                align_v: 0.123_456_789_012_345_68,
            })
            .collect();
        for r in &recs {
            append_jsonl(&path, r).unwrap();
        }
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 5);
        assert!(text.starts_with("{\"step\":0,\"eigs\":[["), "{text}");
        assert!(same(&read_jsonl(&path).unwrap(), &recs));

        truncate_after(&path, 25).unwrap();
        assert!(same(&read_jsonl(&path).unwrap(), &recs[..3]));
        assert!(!dir.join("eigs.jsonl.tmp").exists());
        truncate_after(&path, 1000).unwrap();
        assert!(same(&read_jsonl(&path).unwrap(), &recs[..3]));

        // an append cut off by a crash: dropped on read, repaired by the next append
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"step\":30,\"eigs\":[[0.9").unwrap();
        drop(f);
        assert!(same(&read_jsonl(&path).unwrap(), &recs[..3]));
        truncate_after(&path, 20).unwrap();
        assert!(same(&read_jsonl(&path).unwrap(), &recs[..3]));
        append_jsonl(&path, &recs[3]).unwrap();
        assert!(same(&read_jsonl(&path).unwrap(), &recs[..4]));

        // a corrupt line in the middle is an error naming the line
        let good = serde_json::to_string(&recs[0]).unwrap();
        fs::write(&path, format!("{good}\nnot json\n{good}\n")).unwrap();
        let err = read_jsonl(&path).unwrap_err().to_string();
        assert!(err.contains("eigs.jsonl:2:"), "{err}");

        truncate_after(&dir.join("missing.jsonl"), 3).unwrap();
        assert!(!dir.join("missing.jsonl").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
