// LSTM recurrence, forward and backward through time. Gates (i, f, g, o);
// a_t = pre_t + W_rec h_{t-1} with pre_t = W_in x_t + b from one GEMM.
// states (T + 1, B, 2H) hold [h; c]; gates (T·B, 4H) keep the activations
// for the backward pass; da (T·B, 4H) = dL/da; dc (B, H) carries dL/dc
// between steps (each (b, i) is read and written by one invocation only).
// Constants: WG threads, BT batch columns per workgroup, HMAX = H.

struct Scan {
    batch: u32, hidden: u32, t0: u32, steps: u32,
    w_rec_off: u32, t_total: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> s: Scan;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> pre: array<f32>;
@group(0) @binding(3) var<storage, read_write> states: array<f32>;
@group(0) @binding(4) var<storage, read_write> gates: array<f32>;

// ping-pong h of this workgroup's batch tile
var<workgroup> hs: array<f32, 2u * BT * HMAX>;

fn sigm(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-clamp(v, -30.0, 30.0)));
}

// clamp: some drivers build tanh from exp and overflow past |v| ~ 44
fn tanh_c(v: f32) -> f32 {
    return tanh(clamp(v, -15.0, 15.0));
}

// The rows of the four gates for unit i.
fn w4(i: u32, j: u32) -> vec4<f32> {
    let H = s.hidden;
    let o = s.w_rec_off + i * H + j;
    return vec4<f32>(params[o], params[o + H * H], params[o + 2u * H * H], params[o + 3u * H * H]);
}

// Finishes step t for column b, unit i, given W_rec h_{t-1} for its gates.
fn cell(t: u32, b: u32, i: u32, rec: vec4<f32>) -> f32 {
    let H = s.hidden;
    let G = 4u * H;
    let S = 2u * H;
    let row = t * s.batch + b;
    let a = rec + vec4<f32>(pre[row * G + i], pre[row * G + H + i], pre[row * G + 2u * H + i], pre[row * G + 3u * H + i]);
    let ig = sigm(a.x);
    let fg = sigm(a.y);
    let gg = tanh_c(a.z);
    let og = sigm(a.w);
    let c = fg * states[row * S + H + i] + ig * gg;
    let hv = og * tanh_c(c);
    let nxt = row * S + s.batch * S;
    states[nxt + H + i] = c;
    states[nxt + i] = hv;
    gates[row * G + i] = ig;
    gates[row * G + H + i] = fg;
    gates[row * G + 2u * H + i] = gg;
    gates[row * G + 3u * H + i] = og;
    return hv;
}

// Persistent: a workgroup owns BT batch columns and loops over `steps`
// steps with h in workgroup memory; c stays with the invocation of unit i.
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
            v = states[(s.t0 * B + b0 + bb) * 2u * H + e % H];
        }
        hs[e] = v;
    }
    workgroupBarrier();
    var cur = 0u;
    for (var step = 0u; step < s.steps; step++) {
        let t = s.t0 + step;
        let nxt = BT * HMAX - cur;
        for (var i = lid.x; i < H; i += WG) {
            var acc: array<vec4<f32>, BT>;
            for (var bb = 0u; bb < BT; bb++) {
                acc[bb] = vec4<f32>(0.0);
            }
            for (var j = 0u; j < H; j++) {
                let w = w4(i, j);
                for (var bb = 0u; bb < BT; bb++) {
                    acc[bb] += w * hs[cur + bb * H + j];
                }
            }
            for (var bb = 0u; bb < nb; bb++) {
                hs[nxt + bb * H + i] = cell(t, b0 + bb, i, acc[bb]);
            }
        }
        cur = nxt;
        workgroupBarrier();
    }
}

// Step-wise fallback: one dispatch per step, one invocation per (b, i).
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
    let prev = (s.t0 * s.batch + b) * 2u * H;
    var acc = vec4<f32>(0.0);
    for (var j = 0u; j < H; j++) {
        acc += w4(i, j) * states[prev + j];
    }
    cell(s.t0, b, i, acc);
}
