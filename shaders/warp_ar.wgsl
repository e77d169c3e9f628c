// Autoregressive WARP on the GPU (src/models/warp/ar_gpu.rs): the helpers
// of one step t around the scan step and the per-step decoding. Where a
// row's feedback flag is set its input u_t is the model's prediction
// ŷ_{t-1} (the first c outputs: the means under the Gaussian head) instead
// of the data x_t; the backward adds dL/du_{t+1} into dL/dŷ_t.

struct Ar {
    batch: u32, c: u32, out_w: u32, t_len: u32,
    t: u32, n: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> u: Ar;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> fb: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read> gd: array<f32>;
@group(0) @binding(5) var<storage, read_write> inputs: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> gu: array<f32>;
@group(0) @binding(8) var<storage, read_write> dy: array<f32>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 64u + lid.x;
}

fn fed(t: u32, b: u32) -> bool {
    return t > 0u && fb[t * u.batch + b] > 0.5;
}

// step t's inputs u_t (B×c) and recurrence inputs Δ_t = [u_t − u_{t-1}; 1/(T−1)] (B×(c+1), zero at t = 0)
@compute @workgroup_size(64)
fn ar_input(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(wid, nwg, lid);
    let w = u.c + 1u;
    if (e >= u.batch * w) {
        return;
    }
    let b = e / w;
    let k = e % w;
    let r = u.t * u.batch + b;
    if (k == u.c) {
        dx[r * w + k] = select(1.0 / f32(max(u.t_len, 2u) - 1u), 0.0, u.t == 0u);
        return;
    }
    var v = x[r * u.c + k];
    if (fed(u.t, b)) {
        v = y[(r - u.batch) * u.out_w + k];
    }
    inputs[r * u.c + k] = v;
    if (u.t == 0u) {
        dx[r * w + k] = 0.0;
    } else {
        dx[r * w + k] = v - inputs[(r - u.batch) * u.c + k];
    }
}

// dL/dŷ_t += dL/du_{t+1} where ŷ_t was fed as u_{t+1}
@compute @workgroup_size(64)
fn ar_dy(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(wid, nwg, lid);
    if (e >= u.batch * u.c || u.t + 1u >= u.t_len) {
        return;
    }
    let b = e / u.c;
    let k = e % u.c;
    if (fed(u.t + 1u, b)) {
        dy[(u.t * u.batch + b) * u.out_w + k] += gu[((u.t + 1u) * u.batch + b) * u.c + k];
    }
}

// Δ_t = u_t − u_{t-1}: dL/du_t += g_t B_in, dL/du_{t-1} −= g_t B_in (gd = g_t B, B×(c+1))
@compute @workgroup_size(64)
fn ar_gu(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(wid, nwg, lid);
    if (e >= u.batch * u.c || u.t == 0u) {
        return;
    }
    let b = e / u.c;
    let k = e % u.c;
    let v = gd[b * (u.c + 1u) + k];
    gu[(u.t * u.batch + b) * u.c + k] += v;
    gu[((u.t - 1u) * u.batch + b) * u.c + k] -= v;
}

// gu[0..n] = 0 before the backward sweep
@compute @workgroup_size(64)
fn ar_zero(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(wid, nwg, lid);
    if (e >= u.n) {
        return;
    }
    gu[e] = 0.0;
}
