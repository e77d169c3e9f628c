// Tiled GEMM: C[m, n] (+)= sum_k A(m, k) B(k, n) (+ bias[n]).
// Every operand is addressed by an offset and row/column strides, so the
// transposed products of the backward pass need no transposed copies.
// A bias, when present, lives in the B buffer (it is a parameter).

struct Gemm {
    m: u32, n: u32, k: u32, accumulate: u32,
    a_off: u32, a_rs: u32, a_cs: u32, bias_off: u32,
    b_off: u32, b_rs: u32, b_cs: u32, has_bias: u32,
    c_off: u32, c_rs: u32, row0: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> g: Gemm;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const TILE: u32 = 16u;
var<workgroup> a_tile: array<f32, 256>; // [row][k]
var<workgroup> b_tile: array<f32, 256>; // [k][col]

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let row = g.row0 + wid.y * TILE + lid.y;
    let col = wid.x * TILE + lid.x;
    var acc = 0.0;
    let tiles = (g.k + TILE - 1u) / TILE;
    for (var t = 0u; t < tiles; t++) {
        let ka = t * TILE + lid.x;
        var av = 0.0;
        if (row < g.m && ka < g.k) {
            av = a[g.a_off + row * g.a_rs + ka * g.a_cs];
        }
        a_tile[lid.y * TILE + lid.x] = av;
        let kb = t * TILE + lid.y;
        var bv = 0.0;
        if (kb < g.k && col < g.n) {
            bv = b[g.b_off + kb * g.b_rs + col * g.b_cs];
        }
        b_tile[lid.y * TILE + lid.x] = bv;
        workgroupBarrier();
        for (var q = 0u; q < TILE; q++) {
            acc += a_tile[lid.y * TILE + q] * b_tile[q * TILE + lid.x];
        }
        workgroupBarrier();
    }
    if (row < g.m && col < g.n) {
        if (g.has_bias != 0u) {
            acc += b[g.bias_off + col];
        }
        let ci = g.c_off + row * g.c_rs + col;
        if (g.accumulate != 0u) {
            acc += c[ci];
        }
        c[ci] = acc;
    }
}

// The same product without workgroup memory or barriers: one invocation per
// output element. Software rasterisers (lavapipe) run a workgroup's
// invocations as SIMD lanes and pay dearly for every barrier, so there this
// beats the tiled kernel by an order of magnitude; real GPUs want `main`.
@compute @workgroup_size(64)
fn direct(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = (wid.y * nwg.x + wid.x) * 64u + lid.x;
    let rows = g.m - g.row0;
    if (e >= rows * g.n) {
        return;
    }
    let row = g.row0 + e / g.n;
    let col = e % g.n;
    var acc = 0.0;
    var ai = g.a_off + row * g.a_rs;
    var bi = g.b_off + col * g.b_cs;
    for (var q = 0u; q < g.k; q++) {
        acc += a[ai] * b[bi];
        ai += g.a_cs;
        bi += g.b_rs;
    }
    if (g.has_bias != 0u) {
        acc += b[g.bias_off + col];
    }
    let ci = g.c_off + row * g.c_rs + col;
    if (g.accumulate != 0u) {
        acc += c[ci];
    }
    c[ci] = acc;
}
