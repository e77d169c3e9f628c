//! GPU time of compute passes from timestamp queries, for `longmem bench`.
//!
//! While timing is on, every compute pass recorded through
//! [`GpuContext::timestamp_writes`] writes a timestamp at its beginning and
//! end; [`GpuContext::finish_pass_timing`] sums the passes' durations. Gaps
//! between passes (host work, map/readback waits) are not counted, which is
//! the point: the figure is what the device spent on the kernels.

use super::GpuContext;
use anyhow::{anyhow, Result};

/// Timestamps one timing window can hold (two per pass).
const CAPACITY: u32 = 4096;

pub(crate) struct PassTimer {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    read: wgpu::Buffer,
    next: u32,
    overflow: bool,
    active: bool,
}

impl PassTimer {
    fn new(ctx: &GpuContext) -> Self {
        let bytes = CAPACITY as u64 * 8;
        PassTimer {
            set: ctx.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("pass timer"), ty: wgpu::QueryType::Timestamp, count: CAPACITY }),
            resolve: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            read: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            next: 0,
            overflow: false,
            active: false,
        }
    }
}

impl GpuContext {
    /// Whether this device can time passes (the adapter has timestamp queries).
    pub fn has_pass_timing(&self) -> bool {
        self.device.features().contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Start a timing window; false (and nothing timed) without timestamp queries.
    pub fn start_pass_timing(&self) -> bool {
        if !self.has_pass_timing() {
            return false;
        }
        let mut t = self.timer.lock().unwrap();
        let timer = t.get_or_insert_with(|| PassTimer::new(self));
        timer.next = 0;
        timer.overflow = false;
        timer.active = true;
        true
    }

    /// The query set and first index for the next pass's timestamps, while a
    /// window is open.
    pub fn timestamp_writes(&self) -> Option<(wgpu::QuerySet, u32)> {
        let mut t = self.timer.lock().unwrap();
        let timer = t.as_mut().filter(|t| t.active)?;
        if timer.next + 2 > CAPACITY {
            timer.overflow = true;
            return None;
        }
        let i = timer.next;
        timer.next += 2;
        Some((timer.set.clone(), i))
    }

    /// Close the window: seconds the device spent in the timed passes, or
    /// None if more passes ran than the window holds (time them by wall clock).
    pub fn finish_pass_timing(&self) -> Result<Option<f64>> {
        let (n, overflow, resolve, read, set) = {
            let mut t = self.timer.lock().unwrap();
            let timer = t.as_mut().ok_or_else(|| anyhow!("no timing window is open"))?;
            timer.active = false;
            let n = std::mem::take(&mut timer.next);
            (n, timer.overflow, timer.resolve.clone(), timer.read.clone(), timer.set.clone())
        };
        if overflow {
            return Ok(None);
        }
        if n == 0 {
            return Ok(Some(0.0));
        }
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.resolve_query_set(&set, 0..n, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &read, 0, n as u64 * 8);
        self.queue.submit([enc.finish()]);
        // the ticks are u64: read them as pairs of u32 words
        let words = super::ops::map_read(self, &read, 2 * n as usize)?;
        let ticks: Vec<u64> = words.chunks_exact(2).map(|w| w[0].to_bits() as u64 | ((w[1].to_bits() as u64) << 32)).collect();
        let period_ns = self.queue.get_timestamp_period() as f64;
        let total: u64 = ticks.chunks_exact(2).map(|p| p[1].saturating_sub(p[0])).sum();
        Ok(Some(total as f64 * period_ns * 1e-9))
    }
}

/// The pass descriptor's timestamp writes for `(set, first index)`.
pub fn pass_writes(w: &Option<(wgpu::QuerySet, u32)>) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
    w.as_ref().map(|(set, i)| wgpu::ComputePassTimestampWrites { query_set: set, beginning_of_pass_write_index: Some(*i), end_of_pass_write_index: Some(i + 1) })
}
