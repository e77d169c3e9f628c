//! Every WGSL kernel parses and validates with naga, and translates to
//! SPIR-V (Vulkan), MSL (Metal) and HLSL (DX12), without any device, so
//! the backends CI cannot run would still accept our shaders.

use longmem::gpu::shaders::{ShaderSrc, ALL};

fn module(s: &ShaderSrc, consts: &[(&str, u32)]) -> (naga::Module, naga::valid::ModuleInfo) {
    let src = s.specialise(consts);
    let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{}: {}", s.name, e.emit_to_string(&src)));
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", s.name, e.emit_to_string(&src)));
    (module, info)
}

fn translate_all(s: &ShaderSrc, consts: &[(&str, u32)]) {
    let (module, info) = module(s, consts);
    assert!(!module.entry_points.is_empty(), "{} has no entry point", s.name);
    for ep in &module.entry_points {
        let po = naga::back::spv::PipelineOptions { shader_stage: naga::ShaderStage::Compute, entry_point: ep.name.clone() };
        let words = naga::back::spv::write_vec(&module, &info, &naga::back::spv::Options::default(), Some(&po))
            .unwrap_or_else(|e| panic!("{}::{} to SPIR-V: {e}", s.name, ep.name));
        assert_eq!(words[0], 0x0723_0203, "SPIR-V magic");
    }
    let (msl, _) = naga::back::msl::write_string(&module, &info, &naga::back::msl::Options::default(), &naga::back::msl::PipelineOptions::default())
        .unwrap_or_else(|e| panic!("{} to MSL: {e}", s.name));
    for ep in &module.entry_points {
        assert!(msl.contains("kernel void") && msl.contains(ep.name.as_str()), "{}: MSL lacks {}", s.name, ep.name);
    }
    let mut hlsl = String::new();
    let opts = naga::back::hlsl::Options::default();
    let popts = naga::back::hlsl::PipelineOptions::default();
    naga::back::hlsl::Writer::new(&mut hlsl, &opts, &popts)
        .write(&module, &info, None)
        .unwrap_or_else(|e| panic!("{} to HLSL: {e}", s.name));
    assert!(hlsl.contains("[numthreads("), "{}: HLSL lacks a compute entry", s.name);
}

#[test]
fn every_shader_validates_and_translates() {
    assert!(ALL.len() >= 6);
    for s in ALL {
        translate_all(s, s.defaults);
    }
}

#[test]
fn scan_shaders_validate_at_the_sizes_the_host_picks() {
    // the step-wise fallback's constants and a few persistent tile shapes
    for s in ALL.iter().filter(|s| !s.defaults.is_empty()) {
        for consts in [[("WG", 32), ("BT", 1), ("HMAX", 1)], [("WG", 256), ("BT", 8), ("HMAX", 1000)], [("WG", 64), ("BT", 2), ("HMAX", 37)]] {
            // each shader takes the constants it declares, others keep their defaults
            let picked: Vec<(&str, u32)> =
                s.defaults.iter().map(|(name, v)| consts.iter().find(|(n, _)| n == name).copied().unwrap_or((name, *v))).collect();
            module(s, &picked);
        }
    }
}

#[test]
fn urnn_shaders_validate_in_both_scratch_modes() {
    use longmem::gpu::shaders::{URNN, URNN_BACKWARD};
    for s in [URNN, URNN_BACKWARD] {
        for consts in [[("WG", 1), ("USE_WG", 1), ("WSC", 18)], [("WG", 256), ("USE_WG", 0), ("WSC", 1)], [("WG", 128), ("USE_WG", 1), ("WSC", 8448)]] {
            translate_all(&s, &consts);
        }
    }
}

#[test]
fn every_shader_file_is_listed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(stem) = name.strip_suffix(".wgsl") {
            let listed = ALL.iter().any(|s| s.name == stem) || longmem::gpu::shaders::PARTS.contains(&stem);
            assert!(listed, "shaders/{name} is not in gpu::shaders::ALL (nor PARTS)");
        }
    }
}
