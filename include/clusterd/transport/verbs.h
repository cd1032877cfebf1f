// The verbs function table: every libibverbs entry point clusterd uses, loaded at run
// time (dlopen) so the binary runs on machines without RDMA, and replaceable by a
// fake device in tests (the role LevelDB's Env plays for files).
#pragma once

#include <infiniband/verbs.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "clusterd/common/status.h"

namespace clusterd {

// Function pointers with the libibverbs signatures. A null pointer means "absent".
struct VerbsApi {
  ibv_device** (*get_device_list)(int* num_devices) = nullptr;
  void (*free_device_list)(ibv_device** list) = nullptr;
  const char* (*get_device_name)(ibv_device* device) = nullptr;
  __be64 (*get_device_guid)(ibv_device* device) = nullptr;
  ibv_context* (*open_device)(ibv_device* device) = nullptr;
  int (*close_device)(ibv_context* context) = nullptr;
  int (*query_device)(ibv_context* context, ibv_device_attr* attr) = nullptr;
  int (*query_port)(ibv_context* context, uint8_t port_num, ibv_port_attr* attr) = nullptr;
  // Where the table came from: "libibverbs.so.1", "fake", ...
  std::string origin;
};

// Loads the system's libibverbs. Returns not_found (with the dlopen error) when the
// library is not installed; that is normal on machines without RDMA.
// The returned table stays valid for the life of the process.
Result<std::shared_ptr<const VerbsApi>> load_system_verbs();

struct RdmaPort {
  int number = 0;
  std::string state;       // "active", "down", "init", "armed", "active_defer", "unknown"
  std::string link_layer;  // "infiniband", "ethernet", "unspecified"
  int active_mtu = 0;      // bytes, 256..4096
  int lid = 0;
};

struct RdmaDevice {
  std::string name;  // "mlx5_0", "rdma_en0", ...
  std::string guid;  // "0002:c903:0049:7a40" style, 16 hex digits in 4 groups
  uint64_t max_mr_size = 0;
  int max_qp = 0;
  std::vector<RdmaPort> ports;
};

// Enumerates the RDMA devices visible through `api`. An empty list when there are
// none. A device that cannot be opened or queried is reported in the Status only if
// nothing at all could be listed; otherwise it is skipped (and logged).
Result<std::vector<RdmaDevice>> list_rdma_devices(const VerbsApi& api);

}  // namespace clusterd
