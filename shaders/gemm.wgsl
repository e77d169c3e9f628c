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
