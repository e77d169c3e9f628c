// WARP's scan and helpers (src/models/warp/gpu.rs). The recurrence
// θ_{t+1} = A θ_t + B Δ_t runs as: all B Δ_t by one GEMM into the state slots,
// then one `scan_step` per step adding A θ_t. A state slot is read and written
// through the one read-write binding, so no buffer is bound twice.
// Backward: `scan_back` adds (dL/dθ_{t+1}) A into slot t-1 of d_states, so
// each slot ends as the total gradient of its state; dA, dB by GEMMs.

struct Warp {
    batch: u32, dd: u32, din: u32, t_len: u32,
    t: u32, act: u32, a_off: u32, n: u32,
}

@group(0) @binding(0) var<uniform> u: Warp;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> src2: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 64u + lid.x;
}

fn act(v: f32) -> f32 {
    return act_of(u.act, v);
}

fn act_grad(y: f32) -> f32 {
    return act_grad_of(u.act, y);
}

// state slot 0 of every row = the learned θ_0 (src = params, at a_off)
@compute @workgroup_size(64)
fn theta0_broadcast(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(wid, nwg, lid);
    if (e >= u.batch * u.dd) {
        return;
    }
    dst[e] = src[u.a_off + e % u.dd];
}

// Δ rows (T·B, din + 1) from x (T·B, din): [x_t − x_{t-1}; 1/(T−1)], zero at t = 0
@compute @workgroup_size(64)
fn delta(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(wid, nwg, lid);
    let w = u.din + 1u;
    if (e >= u.t_len * u.batch * w) {
        return;
    }
    let r = e / w;
    let c = e % w;
    if (r < u.batch) {
        dst[e] = 0.0;
    } else if (c < u.din) {
        dst[e] = src[r * u.din + c] - src[(r - u.batch) * u.din + c];
    } else {
        dst[e] = 1.0 / f32(u.t_len - 1u);
    }
}

// dst[0..D²] = Aᵀ (src = params, A at a_off): scan_step reads Aᵀ so that
// neighbouring invocations (neighbouring i) read neighbouring addresses
@compute @workgroup_size(64)
fn transpose(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(wid, nwg, lid);
    let D = u.dd;
    if (e >= D * D) {
        return;
    }
    let i = e / D;
    let j = e % D;
    dst[j * D + i] = src[u.a_off + e];
}

// slot t+1 += A · slot t (dst = states, src = Aᵀ from `transpose`)
@compute @workgroup_size(64)
fn scan_step(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(wid, nwg, lid);
    let D = u.dd;
    if (e >= u.batch * D) {
        return;
    }
    let b = e / D;
    let i = e % D;
    let prev = u.t * u.batch * D + b * D;
    var acc = 0.0;
    for (var j = 0u; j < D; j++) {
        acc += src[j * D + i] * dst[prev + j];
    }
    dst[prev + u.batch * D + i] += acc;
}

// slot t-1 += slot t · A (dst = d_states; reads of A coalesce over j)
@compute @workgroup_size(64)
fn scan_back(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(wid, nwg, lid);
    let D = u.dd;
    if (e >= u.batch * D) {
        return;
    }
    let b = e / D;
    let j = e % D;
    let cur = u.t * u.batch * D + b * D;
    var acc = 0.0;
    for (var i = 0u; i < D; i++) {
        acc += dst[cur + i] * src[u.a_off + i * D + j];
    }
    dst[cur - u.batch * D + j] += acc;
}

// dst[0..n] = act(dst) in place (the hypernetwork's hidden layer)
@compute @workgroup_size(64)
fn act_forward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(wid, nwg, lid);
    if (e >= u.n) {
        return;
    }
    dst[e] = act(dst[e]);
}

// dst[0..n] *= act'(src) with src the activation's outputs
@compute @workgroup_size(64)
fn act_backward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(wid, nwg, lid);
    if (e >= u.n) {
        return;
    }
    dst[e] = dst[e] * act_grad(src[e]);
}

// dst[0..n] = src[0..n] (the parallel scan's ping-pong between stages)
@compute @workgroup_size(64)
fn copy(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(wid, nwg, lid);
    if (e >= u.n) {
        return;
    }
    dst[e] = src[e];
}
