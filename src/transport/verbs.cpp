// Loading libibverbs at run time, and listing RDMA devices through a VerbsApi table.
#include "clusterd/transport/verbs.h"

#include <dlfcn.h>
#include <endian.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace clusterd {
namespace {

constexpr const char* kLibibverbs = "libibverbs.so.1";

// The exported ibv_query_port: it takes the old, shorter port struct.
using ExportedQueryPort = int (*)(ibv_context*, uint8_t, _compat_ibv_port_attr*);

struct SystemVerbs {
  Status status;  // why loading failed; ok when `api` is usable
  std::shared_ptr<const VerbsApi> api;
  ExportedQueryPort exported_query_port = nullptr;
};

const SystemVerbs& system_verbs();

// <infiniband/verbs.h> turns ibv_query_port into the static inline ___ibv_query_port, which
// the library does not export (nm -D lists only ibv_query_port). This repeats that inline:
// the provider's sized query through the extended context, else the exported compat symbol
// on a zeroed struct (the old layout is a prefix of the new one).
int query_port_as_header_inline(ibv_context* context, uint8_t port_number, ibv_port_attr* attr) {
  if (verbs_context* extended = verbs_get_ctx_op(context, query_port)) {
    return extended->query_port(context, port_number, attr, sizeof(*attr));
  }
  std::memset(attr, 0, sizeof(*attr));
  return system_verbs().exported_query_port(context, port_number, reinterpret_cast<_compat_ibv_port_attr*>(attr));
}

template <typename Function>
Status bind_symbol(void* library, const char* symbol, Function& slot) {
  dlerror();  // clear a stale error so the one read below belongs to this lookup
  void* address = dlsym(library, symbol);
  if (address == nullptr) {
    const char* why = dlerror();
    return not_found(std::string(kLibibverbs) + ": symbol " + symbol + " not found (" + (why ? why : "null address") +
                     "); install rdma-core's libibverbs1 >= 1.1");
  }
  slot = reinterpret_cast<Function>(address);
  return Status::ok();
}

SystemVerbs open_system_verbs() {
  SystemVerbs loaded;
  void* library = dlopen(kLibibverbs, RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    const char* why = dlerror();
    loaded.status = not_found(std::string(kLibibverbs) + " could not be loaded (" + (why ? why : "unknown") +
                              "); install libibverbs1 (rdma-core) to use RDMA, TCP works without it");
    return loaded;
  }
  auto api = std::make_shared<VerbsApi>();
  api->origin = kLibibverbs;
  for (Status status : {bind_symbol(library, "ibv_get_device_list", api->get_device_list),
                        bind_symbol(library, "ibv_free_device_list", api->free_device_list),
                        bind_symbol(library, "ibv_get_device_name", api->get_device_name),
                        bind_symbol(library, "ibv_get_device_guid", api->get_device_guid),
                        bind_symbol(library, "ibv_open_device", api->open_device),
                        bind_symbol(library, "ibv_close_device", api->close_device),
                        bind_symbol(library, "ibv_query_device", api->query_device),
                        bind_symbol(library, "ibv_query_port", loaded.exported_query_port)}) {
    if (!status.is_ok()) {
      dlclose(library);  // nothing from it was handed out yet
      loaded.status = std::move(status);
      return loaded;
    }
  }
  api->query_port = query_port_as_header_inline;
  loaded.api = std::move(api);
  return loaded;
}

const SystemVerbs& system_verbs() {
  // A function-local static, not a global: loaded once on first use (thread-safe), immutable
  // afterwards. The library is never dlclosed, so the table's pointers stay valid for the
  // life of the process. A failed load is not retried: a restart picks up a new install.
  static const SystemVerbs loaded = open_system_verbs();
  return loaded;
}

const char* port_state_name(ibv_port_state state) {
  switch (state) {
    case IBV_PORT_DOWN: return "down";
    case IBV_PORT_INIT: return "init";
    case IBV_PORT_ARMED: return "armed";
    case IBV_PORT_ACTIVE: return "active";
    case IBV_PORT_ACTIVE_DEFER: return "active_defer";
    default: return "unknown";
  }
}

const char* link_layer_name(uint8_t link_layer) {
  switch (link_layer) {
    case IBV_LINK_LAYER_INFINIBAND: return "infiniband";
    case IBV_LINK_LAYER_ETHERNET: return "ethernet";
    default: return "unspecified";
  }
}

int mtu_bytes(ibv_mtu mtu) {
  switch (mtu) {
    case IBV_MTU_256: return 256;
    case IBV_MTU_512: return 512;
    case IBV_MTU_1024: return 1024;
    case IBV_MTU_2048: return 2048;
    case IBV_MTU_4096: return 4096;
    default: return 0;
  }
}

// "0002:c903:0049:7a40" from a GUID in host byte order.
std::string format_guid(uint64_t guid) {
  char text[20];
  std::snprintf(text, sizeof(text), "%04x:%04x:%04x:%04x", unsigned(guid >> 48) & 0xffff, unsigned(guid >> 32) & 0xffff,
                unsigned(guid >> 16) & 0xffff, unsigned(guid) & 0xffff);
  return text;
}

// Verbs calls report failure either as a positive errno value or as -1 with errno set.
std::string verbs_error_text(int rc) {
  const int error = rc > 0 ? rc : errno;
  return error != 0 ? std::strerror(error) : "no error code given";
}

struct DeviceListFree {
  const VerbsApi* api;
  void operator()(ibv_device** list) const { api->free_device_list(list); }
};
using DeviceList = std::unique_ptr<ibv_device*, DeviceListFree>;

struct ContextClose {
  const VerbsApi* api;
  void operator()(ibv_context* context) const {
    if (int rc = api->close_device(context); rc != 0) {
      spdlog::warn("RDMA: ibv_close_device failed: {}", verbs_error_text(rc));
    }
  }
};
using OpenContext = std::unique_ptr<ibv_context, ContextClose>;

Status check_table_complete(const VerbsApi& api) {
  const std::pair<const char*, bool> entries[] = {
      {"get_device_list", api.get_device_list != nullptr}, {"free_device_list", api.free_device_list != nullptr},
      {"get_device_name", api.get_device_name != nullptr}, {"get_device_guid", api.get_device_guid != nullptr},
      {"open_device", api.open_device != nullptr},         {"close_device", api.close_device != nullptr},
      {"query_device", api.query_device != nullptr},       {"query_port", api.query_port != nullptr}};
  for (const auto& [name, present] : entries) {
    if (!present) {
      return invalid_argument("verbs table '" + api.origin + "': " + name +
                              " is null; fill every entry (load_system_verbs does)");
    }
  }
  return Status::ok();
}

Result<RdmaDevice> describe_device(const VerbsApi& api, ibv_device* device) {
  RdmaDevice described;
  const char* name = api.get_device_name(device);
  described.name = name ? name : "(unnamed)";
  described.guid = format_guid(be64toh(api.get_device_guid(device)));

  errno = 0;
  OpenContext context(api.open_device(device), ContextClose{&api});
  if (!context) {
    return unavailable("RDMA device " + described.name + ": ibv_open_device failed (" + verbs_error_text(-1) +
                       "); check access to /dev/infiniband/uverbs* and that the provider driver is installed");
  }
  ibv_device_attr device_attr{};
  if (int rc = api.query_device(context.get(), &device_attr); rc != 0) {
    return io_error("RDMA device " + described.name + ": ibv_query_device failed (" + verbs_error_text(rc) + ")");
  }
  described.max_mr_size = device_attr.max_mr_size;
  described.max_qp = device_attr.max_qp;
  for (int number = 1; number <= device_attr.phys_port_cnt; ++number) {
    ibv_port_attr port_attr{};
    if (int rc = api.query_port(context.get(), uint8_t(number), &port_attr); rc != 0) {
      return io_error("RDMA device " + described.name + ": ibv_query_port on port " + std::to_string(number) +
                      " failed (" + verbs_error_text(rc) + ")");
    }
    described.ports.push_back(RdmaPort{.number = number,
                                       .state = port_state_name(port_attr.state),
                                       .link_layer = link_layer_name(port_attr.link_layer),
                                       .active_mtu = mtu_bytes(port_attr.active_mtu),
                                       .lid = port_attr.lid});
  }
  return described;
}

}  // namespace

Result<std::shared_ptr<const VerbsApi>> load_system_verbs() {
  const SystemVerbs& loaded = system_verbs();
  if (!loaded.status.is_ok()) return loaded.status;
  return loaded.api;
}

Result<std::vector<RdmaDevice>> list_rdma_devices(const VerbsApi& api) {
  if (Status complete = check_table_complete(api); !complete.is_ok()) return complete;

  int count = 0;
  errno = 0;
  DeviceList list(api.get_device_list(&count), DeviceListFree{&api});
  if (!list) {
    const int error = errno;
    // rdma-core answers ENOSYS when the kernel has no uverbs support: no devices, not a fault.
    if (error == ENOSYS) return std::vector<RdmaDevice>{};
    return io_error("RDMA: ibv_get_device_list (" + api.origin + ") failed (" +
                    std::strerror(error != 0 ? error : EIO) + "); check the rdma-core installation");
  }

  std::vector<RdmaDevice> devices;
  Status first_failure;
  int failures = 0;
  for (int i = 0; i < count && list.get()[i] != nullptr; ++i) {
    Result<RdmaDevice> device = describe_device(api, list.get()[i]);
    if (device.is_ok()) {
      devices.push_back(std::move(device).value());
      continue;
    }
    spdlog::warn("{}; skipping it", device.status().message());
    if (failures++ == 0) first_failure = device.status();
  }
  if (devices.empty() && failures > 0) {
    return Status(first_failure.code(), "none of the " + std::to_string(failures) +
                                            " RDMA device(s) could be used; first: " + first_failure.message());
  }
  return devices;
}

}  // namespace clusterd
