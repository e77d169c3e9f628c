// Gradient flossing on the GPU (src/lyapunov/floss_gpu.rs): the forward
// tangent steps with a QR that also keeps R, the reverse through every QR
// (the adjoint of src/lyapunov/floss.rs `qr_adjoint`) and through the
// tangent map (`tangent_vjp` of the Elman RNN).
//
// Layouts, with ld = B·k: a frame is a row-major N × ld matrix holding the
// k columns of trajectory b in columns b·k .. b·k + k.
//   qs:  Tp + 1 frames Q_0 .. Q_Tp (frame t at t·N·ld)
//   rs:  Tp blocks of B k×k matrices R_1 .. R_Tp (upper triangle, lower 0),
//        then the B·k coefficients c_{b,i} = 2 λ_{b,i} / (k·Tp·B) at
//        coef_off, then the B symmetric k×k matrices copyltu(M) at m_off
//   tmp: one frame (W·Q from the GEMM)
//   qbar: one frame Q̄_t
//   zb:  Tp frames Z̄_1 .. Z̄_Tp, then the frame Ā (= Q̃̄_t) at ab_off
//   states (T + 1, B, N), d_states (T, B, N) as in the model's sequence I/O
// All entry points share one binding layout (unused bindings are allowed).

// Host-injected: WG threads per workgroup, a multiple of LT (16..=256).
const LT: u32 = 16u;
const RG: u32 = WG / LT;

struct Floss {
    n: u32, k: u32, ld: u32, batch: u32,
    // frame offset of Q_t in qs, of R_t in rs, of h_t in states
    q_off: u32, r_off: u32, h_off: u32, d_off: u32,
    // offsets of Z̄_t and Ā in zb, of the coefficients and M in rs
    zb_off: u32, ab_off: u32, coef_off: u32, m_off: u32,
    // qr: columns [j0, j1); tanh activation when set
    j0: u32, j1: u32, tanh_act: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> u: Floss;
@group(0) @binding(1) var<storage, read_write> qs: array<f32>;
@group(0) @binding(2) var<storage, read_write> rs: array<f32>;
@group(0) @binding(3) var<storage, read_write> states: array<f32>;
@group(0) @binding(4) var<storage, read_write> tmp: array<f32>;
@group(0) @binding(5) var<storage, read_write> qbar: array<f32>;
@group(0) @binding(6) var<storage, read_write> zb: array<f32>;
@group(0) @binding(7) var<storage, read_write> d_states: array<f32>;

fn act_grad(h: f32) -> f32 {
    if (u.tanh_act != 0u) {
        return 1.0 - h * h;
    }
    return 1.0;
}

fn flat(lid: vec3<u32>, wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid.x;
}

// Q_t (frame at q_off) = diag(act'(h_t)) · tmp, h_t at states[h_off ..]
@compute @workgroup_size(WG)
fn scale_copy(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(lid, wid, nwg);
    if (e >= u.n * u.ld) {
        return;
    }
    let i = e / u.ld;
    let b = (e % u.ld) / u.k;
    let h = states[u.h_off + b * u.n + i];
    qs[u.q_off + e] = tmp[e] * act_grad(h);
}

var<workgroup> red: array<f32, WG>;
var<workgroup> rt: array<f32, LT>;

// CGS2 QR of each trajectory's block of the frame at q_off, in place (one
// workgroup per trajectory), as shaders/lyapunov.wgsl `qr`, also writing R:
// R_lj = the projection coefficients of both passes summed, R_jj = |v|.
@compute @workgroup_size(WG)
fn qr(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let t = lid.x;
    let lane = t % LT;
    let g = t / LT;
    let base = u.q_off + wid.x * u.k;
    let rbase = u.r_off + wid.x * u.k * u.k;
    let n = u.n;
    let ld = u.ld;
    for (var j = u.j0; j < u.j1; j++) {
        let cj = base + j;
        for (var sweep = 0u; sweep < 2u; sweep++) {
            for (var l0 = 0u; l0 < j; l0 += LT) {
                let l = l0 + lane;
                var p = 0.0;
                if (l < j) {
                    for (var i = g; i < n; i += RG) {
                        p += qs[i * ld + base + l] * qs[i * ld + cj];
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
                let cnt = min(LT, j - l0);
                if (t < cnt) {
                    let ri = rbase + (l0 + t) * u.k + j;
                    if (sweep == 0u) {
                        rs[ri] = rt[t];
                    } else {
                        rs[ri] += rt[t];
                    }
                }
                for (var i = t; i < n; i += WG) {
                    let row = i * ld + base + l0;
                    var v = qs[i * ld + cj];
                    for (var ll = 0u; ll < cnt; ll++) {
                        v -= qs[row + ll] * rt[ll];
                    }
                    qs[i * ld + cj] = v;
                }
                storageBarrier();
            }
        }
        var p = 0.0;
        for (var i = t; i < n; i += WG) {
            let v = qs[i * ld + cj];
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
                qs[i * ld + cj] *= inv;
            }
        }
        if (t == 0u) {
            rs[rbase + j * u.k + j] = rjj;
        }
        storageBarrier();
        workgroupBarrier();
    }
}

// QR adjoint, part 1: copyltu(M) with M = R R̄ᵀ − Q̄ᵀ Q and R̄ = diag(c_i / R_ii),
// so (R R̄ᵀ)_ii = c_i and its strictly lower part is 0. One invocation per
// (b, i, j): copyltu(M)_ij = M_{max(i,j), min(i,j)}.
@compute @workgroup_size(WG)
fn adj_m(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(lid, wid, nwg);
    let kk = u.k * u.k;
    if (e >= u.batch * kk) {
        return;
    }
    let b = e / kk;
    let i = (e / u.k) % u.k;
    let j = e % u.k;
    let a = max(i, j);
    let c = min(i, j);
    var s = 0.0;
    for (var r = 0u; r < u.n; r++) {
        let row = r * u.ld + b * u.k;
        s += qbar[row + a] * qs[u.q_off + row + c];
    }
    var m = -s;
    if (i == j) {
        m += rs[u.coef_off + b * u.k + i];
    }
    rs[u.m_off + e] = m;
}

// QR adjoint, part 2: Ā = (Q̄ + Q copyltu(M)) R^{−T}, one invocation per
// (row, trajectory): the row of Q̄ + Q M, then back substitution with R
// (R xᵀ = bᵀ) in place in Ā.
@compute @workgroup_size(WG)
fn adj_solve(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(lid, wid, nwg);
    if (e >= u.n * u.batch) {
        return;
    }
    let r = e / u.batch;
    let b = e % u.batch;
    let k = u.k;
    let row = r * u.ld + b * k;
    let mb = u.m_off + b * k * k;
    let rb = u.r_off + b * k * k;
    for (var j = 0u; j < k; j++) {
        var v = qbar[row + j];
        for (var l = 0u; l < k; l++) {
            v += qs[u.q_off + row + l] * rs[mb + l * k + j];
        }
        zb[u.ab_off + row + j] = v;
    }
    for (var ii = 0u; ii < k; ii++) {
        let i = k - 1u - ii;
        var v = zb[u.ab_off + row + i];
        for (var j = i + 1u; j < k; j++) {
            v -= rs[rb + i * k + j] * zb[u.ab_off + row + j];
        }
        zb[u.ab_off + row + i] = v / rs[rb + i * k + i];
    }
}

// Tangent VJP: Z̄_t = diag(act'(h_t)) Ā into zb at zb_off and, for tanh,
// h̄_t[b, r] = −2 h D̄_r with D̄_r = Σ_c Ā_rc Z_rc (Z = W Q_{t−1} in tmp),
// written to d_states[d_off + b·N + r] (0 for the linear family).
@compute @workgroup_size(WG)
fn vjp(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
       @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(lid, wid, nwg);
    if (e >= u.n * u.batch) {
        return;
    }
    let r = e / u.batch;
    let b = e % u.batch;
    let row = r * u.ld + b * u.k;
    let h = states[u.h_off + b * u.n + r];
    let gd = act_grad(h);
    var dbar = 0.0;
    for (var c = 0u; c < u.k; c++) {
        let a = zb[u.ab_off + row + c];
        if (u.tanh_act != 0u) {
            dbar += a * tmp[row + c];
        }
        zb[u.zb_off + row + c] = a * gd;
    }
    d_states[u.d_off + b * u.n + r] = -2.0 * h * dbar;
}
