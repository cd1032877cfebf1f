// The device inventory of this machine: what a node tells its peers and the API
// about itself. Collected from /proc, sysfs, getifaddrs, statvfs and the verbs table.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "clusterd/common/status.h"
#include "clusterd/transport/verbs.h"

namespace clusterd {

struct NetworkInterface {
  std::string name;       // "eth0"
  std::string ipv4;       // "10.0.0.2"
  std::string netmask;    // "255.255.255.0"
  std::string broadcast;  // "10.0.0.255", empty when the interface has none
  bool loopback = false;
  bool up = false;
  bool multicast = false;
};

struct Accelerator {
  std::string kind;           // "nvidia", "apple"
  std::string name;           // "NVIDIA H100 80GB HBM3", "Apple M2 Ultra"
  uint64_t memory_bytes = 0;  // 0 when unknown
};

struct Inventory {
  std::string hostname;
  std::string os;                 // "Linux 6.1.0-18-amd64 x86_64"
  std::string cpu_model;          // "AMD EPYC 7B13"
  int cores = 0;                  // logical CPUs online
  std::vector<std::string> simd;  // "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw",
                                  // "avx512vl", "avx512_vnni", "neon", ...
  uint64_t memory_total_bytes = 0;
  uint64_t memory_available_bytes = 0;
  std::vector<Accelerator> accelerators;
  std::vector<NetworkInterface> interfaces;  // IPv4 only
  std::vector<RdmaDevice> rdma_devices;
  std::string rdma_status;       // "none found", "libibverbs not installed", or an error text
  uint64_t disk_free_bytes = 0;  // free space in the data dir's file system
};

struct InventorySources {
  // Verbs table to enumerate RDMA devices; null means "try the system libibverbs".
  std::shared_ptr<const VerbsApi> verbs;
  // Root prefix for /proc and /sys reads (tests point it at a fake tree); "" = real root.
  std::filesystem::path proc_root;
};

// Collects the inventory. Never fails as a whole: a source that cannot be read
// leaves its fields empty or zero.
Inventory collect_inventory(const std::filesystem::path& data_dir, const InventorySources& sources = {});

// Cheap refresh of the fields that change (memory available, disk free).
void refresh_inventory(Inventory& inventory, const std::filesystem::path& data_dir,
                       const InventorySources& sources = {});

// Lists up, IPv4 interfaces (all of them, loopback included; callers filter).
std::vector<NetworkInterface> list_ipv4_interfaces();

nlohmann::json inventory_to_json(const Inventory& inventory);
// Parses what inventory_to_json wrote (as received from a peer). Unknown keys are
// ignored; wrong types are an invalid_argument naming the key.
Result<Inventory> inventory_from_json(const nlohmann::json& doc);

}  // namespace clusterd
