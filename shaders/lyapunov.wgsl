// Lyapunov spectrum on the GPU (src/lyapunov/gpu.rs): the tangent step's
// diagonal scaling and the periodic re-orthonormalisation.
//
// The tangent vectors of all B trajectories are one row-major N × (B·k)
// matrix Q: trajectory b's k columns are columns b·k .. b·k + k, element
// (i, j) of its block at i·ld + b·k + j with ld = B·k. `W · Q` for every
// trajectory is one GEMM (ops::gemm); `scale` then multiplies row i of
// trajectory b's block by act'(h_t[b, i]).
//
// `qr` orthonormalises each trajectory's block with classical Gram–Schmidt
// with reorthogonalisation (CGS2), one workgroup per trajectory looping over
// its columns. CGS because its projections are independent dot products
// that run in parallel (MGS would need one dependent reduction per pair of
// columns); two passes give orthogonality to working precision for any
// block whose columns are numerically independent (Giraud, Langou, Rozložník
// 2005), and there is no Householder panel/WY bookkeeping. The dot products
// are taken LT = 16 previous columns at a time (classical within a tile,
// the tiles applied one after another, which is only more stable), by a
// grid of WG threads: LT = 16 column lanes × RG = WG / LT row groups, summed in
// workgroup memory. A blocked Householder (WY) QR that feeds on GEMMs is
// future work for large k.
//
// The state between dispatches lives entirely in Q, so the columns of a
// block can be processed in ranges [j0, j1) over several dispatches (each
// stays short); a workgroup touches only its own trajectory's columns, so
// no cross-workgroup synchronisation is needed.

// Host-injected: WG threads per workgroup, a multiple of LT (16..=256).
const LT: u32 = 16u;
const RG: u32 = WG / LT;

struct Lyap {
    n: u32, k: u32, ld: u32, batch: u32,
    // scale: state slot of h_t in the (T + 1, B, N) states buffer
    slot: u32,
    // qr: columns [j0, j1) of each block; add log R_jj into acc when set
    j0: u32, j1: u32, accumulate: u32,
}

// One binding set for both entry points (qr binds 0..=2, scale 0..=3).
@group(0) @binding(0) var<uniform> u: Lyap;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
// Σ log R_jj per (trajectory, column), B·k values
@group(0) @binding(2) var<storage, read_write> acc: array<f32>;
@group(0) @binding(3) var<storage, read> states: array<f32>;

// Q[i, b·k + j] *= 1 - h_t[b, i]² (tanh; the linear family skips this kernel)
@compute @workgroup_size(WG)
fn scale(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = (wid.y * nwg.x + wid.x) * WG + lid.x;
    if (e >= u.n * u.ld) {
        return;
    }
    let i = e / u.ld;
    let b = (e % u.ld) / u.k;
    let h = states[(u.slot * u.batch + b) * u.n + i];
    q[e] = q[e] * (1.0 - h * h);
}

var<workgroup> red: array<f32, WG>;
var<workgroup> rt: array<f32, LT>;

@compute @workgroup_size(WG)
fn qr(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let t = lid.x;
    let lane = t % LT;
    let g = t / LT;
    let base = wid.x * u.k;
    let n = u.n;
    let ld = u.ld;
    for (var j = u.j0; j < u.j1; j++) {
        let cj = base + j;
        // two projections against the finished columns 0..j
        for (var sweep = 0u; sweep < 2u; sweep++) {
            for (var l0 = 0u; l0 < j; l0 += LT) {
                // r[l0 + lane] = <q_l, v>, LT dot products at once
                let l = l0 + lane;
                var p = 0.0;
                if (l < j) {
                    for (var i = g; i < n; i += RG) {
                        p += q[i * ld + base + l] * q[i * ld + cj];
                    }
                }
                red[t] = p;
                workgroupBarrier();
                if (t < LT) {
                    var s = 0.0;
                    for (var gg = 0u; gg < RG; gg++) {
                        s += red[gg * LT + t];
                    }
                    rt[t] = s;
                }
                workgroupBarrier();
                // v -= Q[:, l0 .. l0 + cnt] r
                let cnt = min(LT, j - l0);
                for (var i = t; i < n; i += WG) {
                    let row = i * ld + base + l0;
                    var v = q[i * ld + cj];
                    for (var ll = 0u; ll < cnt; ll++) {
                        v -= q[row + ll] * rt[ll];
                    }
                    q[i * ld + cj] = v;
                }
                storageBarrier();
            }
        }
        // R_jj = |v|: sums of RG partials in LT lanes, then every thread
        // adds the LT lane sums (two barriers instead of a log2(WG) tree)
        var p = 0.0;
        for (var i = t; i < n; i += WG) {
            let v = q[i * ld + cj];
            p += v * v;
        }
        red[t] = p;
        workgroupBarrier();
        if (t < LT) {
            var s = 0.0;
            for (var gg = 0u; gg < RG; gg++) {
                s += red[t * RG + gg];
            }
            rt[t] = s;
        }
        workgroupBarrier();
        var nn = 0.0;
        for (var ll = 0u; ll < LT; ll++) {
            nn += rt[ll];
        }
        let rjj = sqrt(nn);
        if (rjj > 0.0) {
            let inv = 1.0 / rjj;
            for (var i = t; i < n; i += WG) {
                q[i * ld + cj] *= inv;
            }
        }
        if (t == 0u && u.accumulate != 0u) {
            acc[cj] += log(rjj);
        }
        storageBarrier();
    }
}
