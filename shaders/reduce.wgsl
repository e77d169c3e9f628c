// Reductions. `sum` adds n values (or their squares) with one workgroup:
// the inputs here are one loss per row or one gradient vector, small enough
// that a second pass would cost more in dispatch latency than it saves.
// `colsum` sums the columns of an (n, cols) matrix: bias gradients.

struct Reduce {
    n: u32, src_off: u32, dst_off: u32, square: u32,
    cols: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> r: Reduce;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256)
fn sum(@builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = 0.0;
    for (var i = lid.x; i < r.n; i += 256u) {
        let v = src[r.src_off + i];
        if (r.square != 0u) {
            acc += v * v;
        } else {
            acc += v;
        }
    }
    part[lid.x] = acc;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w = w / 2u) {
        if (lid.x < w) {
            part[lid.x] += part[lid.x + w];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        dst[r.dst_off] = part[0];
    }
}

@compute @workgroup_size(64)
fn colsum(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = (wid.y * nwg.x + wid.x) * 64u + lid.x;
    if (j >= r.cols) {
        return;
    }
    var acc = 0.0;
    for (var i = 0u; i < r.n; i++) {
        acc += src[r.src_off + i * r.cols + j];
    }
    dst[r.dst_off + j] = acc;
}
