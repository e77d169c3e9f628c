// Gradient of the token-input projection; see embed.wgsl.

struct Embed {
    rows: u32, g: u32, vocab: u32, w_off: u32,
    b_off: u32, has_bias: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> e: Embed;
@group(0) @binding(1) var<storage, read> d_pre: array<f32>;
@group(0) @binding(2) var<storage, read> csr: array<u32>;
@group(0) @binding(3) var<storage, read_write> grads: array<f32>;

@compute @workgroup_size(64)
fn zero(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = (wid.y * nwg.x + wid.x) * 64u + lid.x;
    if (idx < e.g * e.vocab) {
        grads[e.w_off + idx] = 0.0;
    }
}

@compute @workgroup_size(64)
fn scatter(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let u = wid.y * nwg.x + wid.x;
    if (u >= csr[0]) {
        return;
    }
    let tok = csr[1u + u];
    let start = csr[1u + e.rows + u];
    let end = csr[2u + e.rows + u];
    let order = 2u + 2u * e.rows;
    for (var k = lid.x; k < e.g; k += 64u) {
        var acc = 0.0;
        for (var j = start; j < end; j++) {
            acc += d_pre[csr[order + j] * e.g + k];
        }
        grads[e.w_off + k * e.vocab + tok] = acc;
    }
}
