// One optimizer step over the flat parameter vector, with gradient-norm
// clipping: stats[1] holds the squared gradient norm from reduce.wgsl.
// kind 0: SGD (with momentum if momentum > 0), 1: RMSprop, 2: Adam.
// wd > 0 adds decoupled weight decay (AdamW): p -= lr · (step + wd · p).

struct Opt {
    n: u32, kind: u32, wd: f32, _p1: u32,
    lr: f32, beta1: f32, beta2: f32, eps: f32,
    momentum: f32, clip: f32, c1: f32, c2: f32,
}

@group(0) @binding(0) var<uniform> o: Opt;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wid.y * nwg.x + wid.x) * 64u + lid.x;
    if (i >= o.n) {
        return;
    }
    var g = grads[i];
    if (o.clip > 0.0) {
        let norm = sqrt(stats[1]);
        if (norm > o.clip) {
            g = g * (o.clip / norm);
        }
    }
    let p = params[i];
    var step = 0.0;
    if (o.kind == 0u) {
        if (o.momentum > 0.0) {
            let mi = o.momentum * m[i] + g;
            m[i] = mi;
            g = mi;
        }
        step = g;
    } else if (o.kind == 1u) {
        let vi = o.beta2 * v[i] + (1.0 - o.beta2) * g * g;
        v[i] = vi;
        step = g / (sqrt(vi) + o.eps);
    } else {
        let mi = o.beta1 * m[i] + (1.0 - o.beta1) * g;
        let vi = o.beta2 * v[i] + (1.0 - o.beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        step = (mi / o.c1) / (sqrt(vi / o.c2) + o.eps);
    }
    params[i] = p - o.lr * (step + o.wd * p);
}
