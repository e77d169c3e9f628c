// Forward recurrence of the Elman RNN: h_t = act(pre_t + W_rec h_{t-1}),
// where pre_t = W_in x_t + b comes from one GEMM over all T steps.
// states: (T + 1, B, S), slot 0 the initial state, h the first H entries of
// a row; rows of pre and states are `stride` = S apart (S = H for the RNN,
// H + M for the SCRN's fast layer). act: 0 identity, 1 tanh, 2 sigmoid.
// Host-injected constants: WG threads per workgroup, BT batch columns per
// workgroup, HMAX = H.

struct Scan {
    batch: u32, hidden: u32, t0: u32, steps: u32,
    w_rec_off: u32, act: u32, t_total: u32, stride: u32,
}

@group(0) @binding(0) var<uniform> s: Scan;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> pre: array<f32>;
@group(0) @binding(3) var<storage, read_write> states: array<f32>;

// ping-pong state of this workgroup's batch tile
var<workgroup> h: array<f32, 2u * BT * HMAX>;

fn act(v: f32) -> f32 {
    if (s.act == 1u) {
        // clamp: some drivers build tanh from exp and overflow past |v| ~ 44
        return tanh(clamp(v, -15.0, 15.0));
    }
    if (s.act == 2u) {
        return 1.0 / (1.0 + exp(-clamp(v, -30.0, 30.0)));
    }
    return v;
}

// Persistent kernel: a workgroup owns BT batch columns and loops over
// `steps` time steps with its state in workgroup memory.
@compute @workgroup_size(WG)
fn persistent(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let H = s.hidden;
    let B = s.batch;
    let S = s.stride;
    let b0 = wid.x * BT;
    let nb = min(BT, B - b0);
    for (var e = lid.x; e < BT * H; e += WG) {
        let bb = e / H;
        var v = 0.0;
        if (bb < nb) {
            v = states[(s.t0 * B + b0 + bb) * S + e % H];
        }
        h[e] = v;
    }
    workgroupBarrier();
    var cur = 0u;
    for (var step = 0u; step < s.steps; step++) {
        let t = s.t0 + step;
        let nxt = BT * HMAX - cur;
        for (var i = lid.x; i < H; i += WG) {
            var acc: array<f32, BT>;
            for (var bb = 0u; bb < BT; bb++) {
                acc[bb] = 0.0;
            }
            let wrow = s.w_rec_off + i * H;
            for (var j = 0u; j < H; j++) {
                let w = params[wrow + j];
                for (var bb = 0u; bb < BT; bb++) {
                    acc[bb] += w * h[cur + bb * H + j];
                }
            }
            for (var bb = 0u; bb < nb; bb++) {
                let gi = (t * B + b0 + bb) * S + i;
                let v = act(acc[bb] + pre[gi]);
                h[nxt + bb * H + i] = v;
                states[gi + B * S] = v;
            }
        }
        cur = nxt;
        workgroupBarrier();
    }
}

// Step-wise fallback: one dispatch per time step, one thread per (b, i).
@compute @workgroup_size(WG)
fn step(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let H = s.hidden;
    let B = s.batch;
    let S = s.stride;
    let e = (wid.y * nwg.x + wid.x) * WG + lid.x;
    if (e >= B * H) {
        return;
    }
    let bi = e / H;
    let i = e % H;
    let prev = (s.t0 * B + bi) * S;
    var acc = pre[prev + i];
    let wrow = s.w_rec_off + i * H;
    for (var j = 0u; j < H; j++) {
        acc += params[wrow + j] * states[prev + j];
    }
    states[prev + B * S + i] = act(acc);
}
