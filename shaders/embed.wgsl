// Token inputs: the input projection of a one-hot vector e_v is column v of
// w_in (G × V), so `gather` writes pre[r, k] = w_in[k, ids[r]] + b[k].
// `scatter` is its gradient: one workgroup per distinct token of the batch
// sums dL/dpre over that token's rows (CSR lists built on the host, so no
// float atomics are needed) into the token's column; `zero` clears w_in's
// gradient first, since the columns of absent tokens are not written.
// csr = [n_unique, tokens (rows), starts (rows + 1), row order (rows)].

struct Embed {
    rows: u32, g: u32, vocab: u32, w_off: u32,
    b_off: u32, has_bias: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> e: Embed;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> pre: array<f32>;

@compute @workgroup_size(64)
fn gather(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = (wid.y * nwg.x + wid.x) * 64u + lid.x;
    if (idx >= e.rows * e.g) {
        return;
    }
    let r = idx / e.g;
    let k = idx % e.g;
    var v = params[e.w_off + k * e.vocab + ids[r]];
    if (e.has_bias != 0u) {
        v += params[e.b_off + k];
    }
    pre[idx] = v;
}
