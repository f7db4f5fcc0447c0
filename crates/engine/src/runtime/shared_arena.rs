//! One CUDA memory arena for every session of a runtime (ONNX Runtime's environment allocators), as torch's caching
//! allocator serves all of a pipeline's modules: what the UNet frees at the end of a step can serve the VAE, where
//! each session's own arena otherwise holds its own peak for as long as the session lives. ONNX Runtime's C API
//! has the call; `ort` does not wrap it, hence the FFI here.

use std::ffi::CStr;

use ort::AsPointer;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};

use super::ArenaExtension;
use crate::error::{EngineError, Result};

const STAGE: &str = "sharing one CUDA memory arena";

/// Registers the shared arena with `environment`; sessions then use it when made with environment allocators.
pub(crate) fn register_shared_cuda_arena(
    environment: &ort::environment::Environment,
    extension: ArenaExtension,
) -> Result<()> {
    let api = ort::api();
    let memory = MemoryInfo::new(AllocationDevice::CUDA, 0, AllocatorType::Arena, MemoryType::Default)
        .map_err(|e| EngineError::inference(STAGE, e))?;
    // OrtArenaExtendStrategy: 0 = kNextPowerOfTwo, 1 = kSameAsRequested.
    let keys = [c"arena_extend_strategy".as_ptr()];
    let values = [match extension {
        ArenaExtension::NextPowerOfTwo => 0usize,
        ArenaExtension::SameAsRequested => 1,
    }];
    let mut config = std::ptr::null_mut();
    // SAFETY: `keys` and `values` hold one valid entry each through the call; `config` receives an arena
    // configuration that is released below.
    check(unsafe { (api.CreateArenaCfgV2)(keys.as_ptr(), values.as_ptr(), keys.len(), &mut config) })?;
    // SAFETY: the environment and the memory info are live ONNX Runtime objects; the call copies what it keeps;
    // no provider options are passed (null arrays of length 0).
    let status = unsafe {
        (api.CreateAndRegisterAllocatorV2)(
            environment.ptr().cast_mut(),
            c"CUDAExecutionProvider".as_ptr(),
            memory.ptr(),
            config,
            std::ptr::null(),
            std::ptr::null(),
            0,
        )
    };
    // SAFETY: `config` came from CreateArenaCfgV2 and is not used after this.
    unsafe { (api.ReleaseArenaCfg)(config) };
    check(status)
}

fn check(status: ort::sys::OrtStatusPtr) -> Result<()> {
    if status.0.is_null() {
        return Ok(());
    }
    let api = ort::api();
    // SAFETY: a non-null status holds a NUL-terminated message until it is released, right after the copy.
    let message = unsafe { CStr::from_ptr((api.GetErrorMessage)(status.0)) }.to_string_lossy().into_owned();
    // SAFETY: the status is ours to release, once.
    unsafe { (api.ReleaseStatus)(status.0) };
    Err(EngineError::inference(STAGE, message))
}
