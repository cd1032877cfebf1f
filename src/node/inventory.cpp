// Collecting the inventory: /proc, sysconf, CPU feature bits, statvfs and the verbs table.
// Network interfaces live in inventory_interfaces.cpp, the JSON form in inventory_json.cpp.
#include "clusterd/node/inventory.h"

#include <spdlog/spdlog.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <optional>
#include <string_view>
#include <system_error>

#include "clusterd/engine/quant.h"

#ifdef __APPLE__
#include <sys/sysctl.h>
#endif

namespace clusterd {
namespace {

namespace fs = std::filesystem;

// `proc_root` + "/proc/meminfo": the real file, or the fake tree a test points at.
fs::path under_root(const fs::path& proc_root, std::string_view absolute) {
  if (proc_root.empty()) return fs::path(absolute);
  return proc_root / fs::path(absolute).relative_path();
}

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

// The value of the first "key : value" line whose key is `key` (cpuinfo, meminfo and the
// NVIDIA information files all use that shape).
std::optional<std::string> read_keyed_value(const fs::path& file, std::string_view key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (trim(std::string_view(line).substr(0, colon)) == key) {
      return std::string(trim(std::string_view(line).substr(colon + 1)));
    }
  }
  return std::nullopt;
}

#ifdef __APPLE__
std::string sysctl_string(const char* name) {
  char value[256] = {};
  size_t size = sizeof(value) - 1;
  if (sysctlbyname(name, value, &size, nullptr, 0) != 0) return {};
  return value;
}

uint64_t sysctl_u64(const char* name) {
  uint64_t value = 0;
  size_t size = sizeof(value);
  return sysctlbyname(name, &value, &size, nullptr, 0) == 0 ? value : 0;
}
#endif

std::string read_hostname() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return {};
  return name;
}

std::string read_os() {
  utsname system{};
  if (uname(&system) != 0) return {};
  return std::string(system.sysname) + " " + system.release + " " + system.machine;
}

std::string read_cpu_model(const fs::path& proc_root) {
#ifdef __APPLE__
  (void)proc_root;
  return sysctl_string("machdep.cpu.brand_string");
#else
  const fs::path cpuinfo = under_root(proc_root, "/proc/cpuinfo");
  // x86 names the model; ARM boards may name the SoC ("Hardware"), else only part numbers.
  for (const char* key : {"model name", "Hardware", "Processor"}) {
    if (auto value = read_keyed_value(cpuinfo, key); value && !value->empty()) return *value;
  }
  auto implementer = read_keyed_value(cpuinfo, "CPU implementer");
  auto part = read_keyed_value(cpuinfo, "CPU part");
  if (implementer && part) return "CPU implementer " + *implementer + " part " + *part;
  return {};
#endif
}

int read_online_cores() {
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? int(online) : 0;
}

std::vector<std::string> read_simd_features() {
  std::vector<std::string> features;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // __builtin_cpu_supports needs string literals, hence one line per feature.
  if (__builtin_cpu_supports("sse4.2")) features.push_back("sse4_2");
  if (__builtin_cpu_supports("avx")) features.push_back("avx");
  if (__builtin_cpu_supports("avx2")) features.push_back("avx2");
  if (__builtin_cpu_supports("fma")) features.push_back("fma");
  if (__builtin_cpu_supports("f16c")) features.push_back("f16c");
  if (__builtin_cpu_supports("avx512f")) features.push_back("avx512f");
  if (__builtin_cpu_supports("avx512bw")) features.push_back("avx512bw");
  if (__builtin_cpu_supports("avx512vl")) features.push_back("avx512vl");
  if (__builtin_cpu_supports("avx512vnni")) features.push_back("avx512_vnni");
#elif defined(__aarch64__)
  features.push_back("neon");  // Advanced SIMD is mandatory on AArch64
  if (cpu_has_arm_dotprod()) features.push_back("dotprod");
#endif
  return features;
}

struct MemoryFigures {
  uint64_t total_bytes = 0;
  uint64_t available_bytes = 0;
};

// meminfo lines read "MemTotal:       16318412 kB".
uint64_t meminfo_bytes(const fs::path& meminfo, std::string_view key) {
  auto value = read_keyed_value(meminfo, key);
  if (!value) return 0;
  uint64_t kib = 0;
  for (char c : *value) {
    if (c < '0' || c > '9') break;
    if (kib > (UINT64_MAX / 1024 - 9) / 10) return 0;  // absurd, and would overflow
    kib = kib * 10 + uint64_t(c - '0');
  }
  return kib * 1024;
}

MemoryFigures read_memory(const fs::path& proc_root) {
  MemoryFigures memory;
  const fs::path meminfo = under_root(proc_root, "/proc/meminfo");
  memory.total_bytes = meminfo_bytes(meminfo, "MemTotal");
  memory.available_bytes = meminfo_bytes(meminfo, "MemAvailable");
  if (memory.available_bytes == 0) memory.available_bytes = meminfo_bytes(meminfo, "MemFree");  // kernels < 3.14
#ifdef __APPLE__
  if (memory.total_bytes == 0) memory.total_bytes = sysctl_u64("hw.memsize");
#endif
  return memory;
}

std::vector<Accelerator> read_accelerators(const fs::path& proc_root) {
  std::vector<Accelerator> accelerators;
  // One folder per GPU, named by PCI address; sorted so the order is stable across runs.
  std::vector<fs::path> gpu_folders;
  std::error_code error;
  for (fs::directory_iterator it(under_root(proc_root, "/proc/driver/nvidia/gpus"), error), end; !error && it != end;
       it.increment(error)) {
    gpu_folders.push_back(it->path());
  }
  std::sort(gpu_folders.begin(), gpu_folders.end());
  for (const fs::path& folder : gpu_folders) {
    if (auto model = read_keyed_value(folder / "information", "Model"); model && !model->empty()) {
      accelerators.push_back(Accelerator{.kind = "nvidia", .name = *model, .memory_bytes = 0});
    }
  }
#ifdef __APPLE__
  // Apple silicon: the GPU shares the machine's unified memory.
  if (std::string brand = sysctl_string("machdep.cpu.brand_string"); brand.find("Apple") != std::string::npos) {
    accelerators.push_back(Accelerator{.kind = "apple", .name = brand, .memory_bytes = sysctl_u64("hw.memsize")});
  }
#endif
  return accelerators;
}

// Free bytes for an unprivileged writer in the file system that holds (or will hold)
// `data_dir`; the dir may not exist yet on a first start, so its nearest existing parent counts.
uint64_t read_disk_free(const fs::path& data_dir) {
  std::error_code error;
  fs::path probe = fs::absolute(data_dir.empty() ? fs::path(".") : data_dir, error);
  if (error) probe = data_dir;
  while (!fs::exists(probe, error) && probe.has_parent_path() && probe.parent_path() != probe) {
    probe = probe.parent_path();
  }
  struct statvfs stats {};
  if (statvfs(probe.c_str(), &stats) != 0) return 0;
  return uint64_t(stats.f_bavail) * uint64_t(stats.f_frsize);
}

void fill_rdma(Inventory& inventory, const InventorySources& sources) {
  std::shared_ptr<const VerbsApi> verbs = sources.verbs;
  if (!verbs) {
    auto loaded = load_system_verbs();
    if (!loaded.is_ok()) {
      spdlog::debug("inventory: no RDMA: {}", loaded.status().message());
      inventory.rdma_status =
          loaded.status().code() == StatusCode::kNotFound ? "libibverbs not installed" : loaded.status().message();
      return;
    }
    verbs = *loaded;
  }
  auto devices = list_rdma_devices(*verbs);
  if (!devices.is_ok()) {
    inventory.rdma_status = devices.status().message();
    return;
  }
  inventory.rdma_devices = std::move(devices).value();
  inventory.rdma_status =
      inventory.rdma_devices.empty() ? "none found" : std::to_string(inventory.rdma_devices.size()) + " device(s)";
}

}  // namespace

Inventory collect_inventory(const fs::path& data_dir, const InventorySources& sources) {
  Inventory inventory;
  inventory.hostname = read_hostname();
  inventory.os = read_os();
  inventory.cpu_model = read_cpu_model(sources.proc_root);
  inventory.cores = read_online_cores();
  inventory.simd = read_simd_features();
  inventory.accelerators = read_accelerators(sources.proc_root);
  inventory.interfaces = list_ipv4_interfaces();
  fill_rdma(inventory, sources);
  refresh_inventory(inventory, data_dir, sources);
  return inventory;
}

void refresh_inventory(Inventory& inventory, const fs::path& data_dir, const InventorySources& sources) {
  const MemoryFigures memory = read_memory(sources.proc_root);
  inventory.memory_total_bytes = memory.total_bytes;
  inventory.memory_available_bytes = memory.available_bytes;
  inventory.disk_free_bytes = read_disk_free(data_dir);
}

}  // namespace clusterd
