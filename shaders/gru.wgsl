// GRU recurrence, forward. Gates (r, z, n); u = W_rec h_{t-1};
// r = σ(pre_r + u_r), z = σ(pre_z + u_z), n = tanh(pre_n + r (u_n + b_hn)),
// h_t = (1 − z) n + z h_{t-1}. states (T + 1, B, H); gates (T·B, 4H) keep
// (r, z, n, u_n + b_hn) for the backward pass.
// Constants: WG threads, BT batch columns per workgroup, HMAX = H.

struct Scan {
    batch: u32, hidden: u32, t0: u32, steps: u32,
    w_rec_off: u32, t_total: u32, bhn_off: u32, has_bhn: u32,
}

@group(0) @binding(0) var<uniform> s: Scan;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> pre: array<f32>;
@group(0) @binding(3) var<storage, read_write> states: array<f32>;
@group(0) @binding(4) var<storage, read_write> gates: array<f32>;

var<workgroup> hs: array<f32, 2u * BT * HMAX>;

fn sigm(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-clamp(v, -30.0, 30.0)));
}

fn tanh_c(v: f32) -> f32 {
    return tanh(clamp(v, -15.0, 15.0));
}

fn w3(i: u32, j: u32) -> vec3<f32> {
    let H = s.hidden;
    let o = s.w_rec_off + i * H + j;
    return vec3<f32>(params[o], params[o + H * H], params[o + 2u * H * H]);
}

// Finishes step t for column b, unit i from u = W_rec h_{t-1} and h_{t-1,i}.
fn cell(t: u32, b: u32, i: u32, u: vec3<f32>, hp: f32) -> f32 {
    let H = s.hidden;
    let G = 3u * H;
    let row = t * s.batch + b;
    let r = sigm(pre[row * G + i] + u.x);
    let z = sigm(pre[row * G + H + i] + u.y);
    var hn = u.z;
    if (s.has_bhn != 0u) {
        hn += params[s.bhn_off + i];
    }
    let n = tanh_c(pre[row * G + 2u * H + i] + r * hn);
    let hv = (1.0 - z) * n + z * hp;
    states[(row + s.batch) * H + i] = hv;
    let g = row * 4u * H;
    gates[g + i] = r;
    gates[g + H + i] = z;
    gates[g + 2u * H + i] = n;
    gates[g + 3u * H + i] = hn;
    return hv;
}

@compute @workgroup_size(WG)
fn forward_persistent(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let H = s.hidden;
    let B = s.batch;
    let b0 = wid.x * BT;
    let nb = min(BT, B - b0);
    for (var e = lid.x; e < BT * H; e += WG) {
        let bb = e / H;
        var v = 0.0;
        if (bb < nb) {
            v = states[(s.t0 * B + b0 + bb) * H + e % H];
        }
        hs[e] = v;
    }
    workgroupBarrier();
    var cur = 0u;
    for (var step = 0u; step < s.steps; step++) {
        let t = s.t0 + step;
        let nxt = BT * HMAX - cur;
        for (var i = lid.x; i < H; i += WG) {
            var acc: array<vec3<f32>, BT>;
            for (var bb = 0u; bb < BT; bb++) {
                acc[bb] = vec3<f32>(0.0);
            }
            for (var j = 0u; j < H; j++) {
                let w = w3(i, j);
                for (var bb = 0u; bb < BT; bb++) {
                    acc[bb] += w * hs[cur + bb * H + j];
                }
            }
            for (var bb = 0u; bb < nb; bb++) {
                hs[nxt + bb * H + i] = cell(t, b0 + bb, i, acc[bb], hs[cur + bb * H + i]);
            }
        }
        cur = nxt;
        workgroupBarrier();
    }
}

@compute @workgroup_size(WG)
fn forward_step(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let H = s.hidden;
    let e = (wid.y * nwg.x + wid.x) * WG + lid.x;
    if (e >= s.batch * H) {
        return;
    }
    let b = e / H;
    let i = e % H;
    let prev = (s.t0 * s.batch + b) * H;
    var acc = vec3<f32>(0.0);
    for (var j = 0u; j < H; j++) {
        acc += w3(i, j) * states[prev + j];
    }
    cell(s.t0, b, i, acc, states[prev + i]);
}
