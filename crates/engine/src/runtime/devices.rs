//! What the machine has: CPU and memory (sysinfo), GPUs with their memory (sysinfo: DXGI on Windows, sysfs on
//! Linux, Metal on macOS), and for NVIDIA cards the free memory, driver and compute capability through NVML.
//! NVML is loaded at run time, so a machine without an NVIDIA driver still starts: it just says why NVML is
//! missing.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    pub os: String,
    pub cpu: String,
    pub physical_cores: Option<usize>,
    pub logical_cores: usize,
    pub ram_total: u64,
    pub ram_available: u64,
    pub gpus: Vec<GpuInfo>,
    /// Why a source of information was not available (no NVIDIA driver, GPU listing unsupported, ...).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GpuInfo {
    pub name: String,
    pub vendor: String,
    pub vram_total: Option<u64>,
    pub vram_free: Option<u64>,
    pub driver: Option<String>,
    /// CUDA compute capability ("9.0") for NVIDIA cards.
    pub compute_capability: Option<String>,
    /// Where the facts come from: "nvml" or "sysinfo".
    pub source: &'static str,
}

impl DeviceReport {
    /// The GPU with the most memory, which is the one a generation would use.
    pub fn largest_gpu(&self) -> Option<&GpuInfo> {
        self.gpus.iter().max_by_key(|gpu| gpu.vram_total.unwrap_or(0))
    }
}

pub fn probe_devices() -> DeviceReport {
    let mut notes = Vec::new();
    let (cpu, logical_cores, ram_total, ram_available) = match sysinfo::System::new_with_specifics(
        sysinfo::RefreshKind::nothing()
            .with_memory(sysinfo::MemoryRefreshKind::nothing().with_ram())
            .with_cpu(sysinfo::CpuRefreshKind::nothing()),
    ) {
        Ok(system) => {
            let cpu = system.cpus().first().map(|c| c.brand().trim().to_string()).unwrap_or_default();
            (cpu, system.cpus().len(), system.total_memory(), system.available_memory())
        }
        Err(error) => {
            notes.push(format!("system information unavailable: {error}"));
            (String::new(), 0, 0, 0)
        }
    };
    let mut gpus = nvml_gpus(&mut notes);
    for gpu in other_gpus(&mut notes) {
        // NVML already described the NVIDIA cards, with more detail.
        let is_nvidia = gpu.vendor.to_ascii_lowercase().contains("nvidia");
        if !(is_nvidia && gpus.iter().any(|g| g.source == "nvml")) {
            gpus.push(gpu);
        }
    }
    DeviceReport {
        os: sysinfo::System::long_os_version().unwrap_or_default(),
        cpu,
        physical_cores: sysinfo::System::physical_core_count().ok(),
        logical_cores,
        ram_total,
        ram_available,
        gpus,
        notes,
    }
}

fn nvml_gpus(notes: &mut Vec<String>) -> Vec<GpuInfo> {
    let nvml = match nvml_wrapper::Nvml::init() {
        Ok(nvml) => nvml,
        Err(error) => {
            notes.push(format!("NVML (NVIDIA driver) not available: {error}"));
            return Vec::new();
        }
    };
    let driver = nvml.sys_driver_version().ok();
    let count = nvml.device_count().unwrap_or(0);
    (0..count)
        .filter_map(|index| {
            let device = match nvml.device_by_index(index) {
                Ok(device) => device,
                Err(error) => {
                    notes.push(format!("NVML device {index}: {error}"));
                    return None;
                }
            };
            let memory = device.memory_info().ok();
            Some(GpuInfo {
                name: device.name().unwrap_or_else(|_| format!("NVIDIA GPU {index}")),
                vendor: "NVIDIA".into(),
                vram_total: memory.as_ref().map(|m| m.total),
                vram_free: memory.as_ref().map(|m| m.free),
                driver: driver.clone(),
                compute_capability: device.cuda_compute_capability().ok().map(|c| format!("{}.{}", c.major, c.minor)),
                source: "nvml",
            })
        })
        .collect()
}

fn other_gpus(notes: &mut Vec<String>) -> Vec<GpuInfo> {
    match sysinfo::Gpus::new_with_refreshed_list() {
        Ok(gpus) => gpus
            .iter()
            .map(|gpu| GpuInfo {
                name: gpu.model().unwrap_or("unknown GPU").to_string(),
                vendor: gpu.vendor().unwrap_or("unknown").to_string(),
                vram_total: gpu.total_memory(),
                vram_free: gpu.total_memory().zip(gpu.used_memory()).map(|(t, u)| t.saturating_sub(u)),
                driver: None,
                compute_capability: None,
                source: "sysinfo",
            })
            .collect(),
        Err(error) => {
            notes.push(format!("GPU listing unavailable: {error}"));
            Vec::new()
        }
    }
}

/// Peak resident memory of this process so far (Linux: VmHWM), for benchmarks.
pub fn peak_process_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// GPU memory this process holds on NVIDIA cards (NVML), for benchmarks.
pub fn process_gpu_memory() -> Option<u64> {
    gpu_memory_of_this_process(&nvml_wrapper::Nvml::init().ok()?)
}

/// The most GPU memory this process held while the watch ran, sampled every 10 ms (NVML reports what is held now,
/// and in low-VRAM mode the parts come and go, so the end of a run says little about its peak).
pub struct PeakGpuMemoryWatch {
    stop: std::sync::mpsc::Sender<()>,
    sampler: std::thread::JoinHandle<Option<u64>>,
}

impl PeakGpuMemoryWatch {
    /// `None` where NVML is missing (no NVIDIA driver).
    pub fn start() -> Option<PeakGpuMemoryWatch> {
        let nvml = nvml_wrapper::Nvml::init().ok()?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let sampler = std::thread::Builder::new()
            .name("gpu-memory-watch".into())
            .spawn(move || {
                let mut peak = gpu_memory_of_this_process(&nvml);
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(std::time::Duration::from_millis(10))
                {
                    peak = peak.max(gpu_memory_of_this_process(&nvml));
                }
                peak.max(gpu_memory_of_this_process(&nvml))
            })
            .ok()?;
        Some(PeakGpuMemoryWatch { stop, sampler })
    }

    /// Stops sampling; the peak in bytes, `None` when NVML could not tell.
    pub fn finish(self) -> Option<u64> {
        let _ = self.stop.send(());
        self.sampler.join().ok().flatten()
    }
}

fn gpu_memory_of_this_process(nvml: &nvml_wrapper::Nvml) -> Option<u64> {
    let pid = std::process::id();
    let mut total = 0;
    for index in 0..nvml.device_count().ok()? {
        let device = nvml.device_by_index(index).ok()?;
        for process in device.running_compute_processes().ok()? {
            if process.pid == pid
                && let nvml_wrapper::enums::device::UsedGpuMemory::Used(bytes) = process.used_gpu_memory
            {
                total += bytes;
            }
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probing_works_without_nvidia_and_reports_memory() {
        let report = probe_devices();
        assert!(report.ram_total > 0, "{report:?}");
        assert!(report.logical_cores > 0);
        // On machines without an NVIDIA driver the report says so instead of failing.
        if !report.gpus.iter().any(|g| g.source == "nvml") {
            assert!(report.notes.iter().any(|n| n.contains("NVML")), "{:?}", report.notes);
        }
    }

    #[test]
    fn peak_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_process_memory().unwrap() > 1024 * 1024);
        }
    }
}
