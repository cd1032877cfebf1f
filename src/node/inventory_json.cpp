// The inventory as JSON: written for peers and the API, read back from peers. The reader
// treats its input as hostile (it arrives over the network): it checks every type before
// reading, caps sizes, and reports the first problem by key instead of throwing.
#include <limits>
#include <string>
#include <utility>

#include "clusterd/node/inventory.h"

namespace clusterd {
namespace {

using nlohmann::json;

// Far above what a real machine reports, far below what could hurt us.
constexpr size_t kMaxArrayEntries = 256;
constexpr size_t kMaxStringBytes = 1024;

const char* json_type_name(const json& value) { return value.type_name(); }

// Reads the fields of one JSON object into C++ values. Missing keys leave the target as
// it was (its default); the first wrong type or oversized value is kept as the status and
// every later read becomes a no-op.
class PeerObjectReader {
 public:
  // `path` names the object in errors: "" for the document, "interfaces[2]" for an item.
  PeerObjectReader(const json& object, std::string path) : object_(object), path_(std::move(path)) {}

  const Status& status() const { return status_; }

  void read(const char* key, std::string& out) {
    const json* value = find(key);
    if (value == nullptr) return;
    if (!value->is_string()) return fail(key, "must be a string, not " + std::string(json_type_name(*value)));
    const auto& text = value->get_ref<const std::string&>();
    if (text.size() > kMaxStringBytes) return fail(key, too_long(text.size()));
    out = text;
  }

  void read(const char* key, int& out) {
    const json* value = find(key);
    if (value == nullptr) return;
    if (!value->is_number_integer()) return fail(key, "must be an integer");
    if (value->is_number_unsigned()) {
      const auto number = value->get<uint64_t>();
      if (number > uint64_t(std::numeric_limits<int>::max())) return fail(key, "is out of range for an int");
      out = int(number);
      return;
    }
    const auto number = value->get<int64_t>();
    if (number < std::numeric_limits<int>::min() || number > std::numeric_limits<int>::max()) {
      return fail(key, "is out of range for an int");
    }
    out = int(number);
  }

  void read(const char* key, uint64_t& out) {
    const json* value = find(key);
    if (value == nullptr) return;
    if (!value->is_number_integer()) return fail(key, "must be an integer");
    if (!value->is_number_unsigned()) return fail(key, "must be a non-negative integer");
    out = value->get<uint64_t>();
  }

  void read(const char* key, bool& out) {
    const json* value = find(key);
    if (value == nullptr) return;
    if (!value->is_boolean()) return fail(key, "must be true or false");
    out = value->get<bool>();
  }

  void read(const char* key, std::vector<std::string>& out) {
    read_array(key, out, [&](const json& item, const std::string& item_path, std::string& target) -> Status {
      if (!item.is_string()) return key_error(item_path, "must be a string");
      const auto& text = item.get_ref<const std::string&>();
      if (text.size() > kMaxStringBytes) return key_error(item_path, too_long(text.size()));
      target = text;
      return Status::ok();
    });
  }

  // `parse_item(item, item_path, target)` fills one entry; items must be JSON objects.
  template <typename Item, typename ParseObject>
  void read_objects(const char* key, std::vector<Item>& out, ParseObject parse_object) {
    read_array(key, out, [&](const json& item, const std::string& item_path, Item& target) -> Status {
      if (!item.is_object()) return key_error(item_path, "must be an object");
      return parse_object(item, item_path, target);
    });
  }

 private:
  template <typename Item, typename ParseItem>
  void read_array(const char* key, std::vector<Item>& out, ParseItem parse_item) {
    const json* value = find(key);
    if (value == nullptr) return;
    if (!value->is_array()) return fail(key, "must be an array, not " + std::string(json_type_name(*value)));
    if (value->size() > kMaxArrayEntries) {
      return fail(key, "has " + std::to_string(value->size()) + " entries; at most " +
                           std::to_string(kMaxArrayEntries) + " are accepted");
    }
    std::vector<Item> items(value->size());
    for (size_t i = 0; i < value->size(); ++i) {
      status_ = parse_item((*value)[i], qualified(key) + "[" + std::to_string(i) + "]", items[i]);
      if (!status_.is_ok()) return;
    }
    out = std::move(items);
  }

  const json* find(const char* key) const {
    if (!status_.is_ok()) return nullptr;
    const auto found = object_.find(key);
    return found == object_.end() ? nullptr : &*found;
  }

  std::string qualified(const char* key) const { return path_.empty() ? key : path_ + "." + key; }
  static std::string too_long(size_t bytes) {
    return "is " + std::to_string(bytes) + " bytes long; at most " + std::to_string(kMaxStringBytes) + " are accepted";
  }
  static Status key_error(const std::string& path, const std::string& problem) {
    return invalid_argument("inventory: key '" + path + "' " + problem);
  }
  void fail(const char* key, const std::string& problem) { status_ = key_error(qualified(key), problem); }

  const json& object_;
  std::string path_;
  Status status_;
};

Status parse_port(const json& object, const std::string& path, RdmaPort& port) {
  PeerObjectReader reader(object, path);
  reader.read("number", port.number);
  reader.read("state", port.state);
  reader.read("link_layer", port.link_layer);
  reader.read("active_mtu", port.active_mtu);
  reader.read("lid", port.lid);
  return reader.status();
}

Status parse_rdma_device(const json& object, const std::string& path, RdmaDevice& device) {
  PeerObjectReader reader(object, path);
  reader.read("name", device.name);
  reader.read("guid", device.guid);
  reader.read("max_mr_size", device.max_mr_size);
  reader.read("max_qp", device.max_qp);
  reader.read_objects("ports", device.ports, parse_port);
  return reader.status();
}

Status parse_accelerator(const json& object, const std::string& path, Accelerator& accelerator) {
  PeerObjectReader reader(object, path);
  reader.read("kind", accelerator.kind);
  reader.read("name", accelerator.name);
  reader.read("memory_bytes", accelerator.memory_bytes);
  return reader.status();
}

Status parse_interface(const json& object, const std::string& path, NetworkInterface& interface) {
  PeerObjectReader reader(object, path);
  reader.read("name", interface.name);
  reader.read("ipv4", interface.ipv4);
  reader.read("netmask", interface.netmask);
  reader.read("broadcast", interface.broadcast);
  reader.read("loopback", interface.loopback);
  reader.read("up", interface.up);
  reader.read("multicast", interface.multicast);
  return reader.status();
}

json port_to_json(const RdmaPort& port) {
  return {{"number", port.number},
          {"state", port.state},
          {"link_layer", port.link_layer},
          {"active_mtu", port.active_mtu},
          {"lid", port.lid}};
}

json rdma_device_to_json(const RdmaDevice& device) {
  json ports = json::array();
  for (const RdmaPort& port : device.ports) ports.push_back(port_to_json(port));
  return {{"name", device.name},
          {"guid", device.guid},
          {"max_mr_size", device.max_mr_size},
          {"max_qp", device.max_qp},
          {"ports", ports}};
}

json accelerator_to_json(const Accelerator& accelerator) {
  return {{"kind", accelerator.kind}, {"name", accelerator.name}, {"memory_bytes", accelerator.memory_bytes}};
}

json interface_to_json(const NetworkInterface& interface) {
  return {{"name", interface.name},           {"ipv4", interface.ipv4},         {"netmask", interface.netmask},
          {"broadcast", interface.broadcast}, {"loopback", interface.loopback}, {"up", interface.up},
          {"multicast", interface.multicast}};
}

template <typename Item, typename ToJson>
json array_to_json(const std::vector<Item>& items, ToJson to_json) {
  json array = json::array();
  for (const Item& item : items) array.push_back(to_json(item));
  return array;
}

}  // namespace

json inventory_to_json(const Inventory& inventory) {
  return {
      {"hostname", inventory.hostname},
      {"os", inventory.os},
      {"cpu_model", inventory.cpu_model},
      {"cores", inventory.cores},
      {"simd", inventory.simd},
      {"memory_total_bytes", inventory.memory_total_bytes},
      {"memory_available_bytes", inventory.memory_available_bytes},
      {"accelerators", array_to_json(inventory.accelerators, accelerator_to_json)},
      {"interfaces", array_to_json(inventory.interfaces, interface_to_json)},
      {"rdma_devices", array_to_json(inventory.rdma_devices, rdma_device_to_json)},
      {"rdma_status", inventory.rdma_status},
      {"disk_free_bytes", inventory.disk_free_bytes},
  };
}

Result<Inventory> inventory_from_json(const json& doc) {
  if (!doc.is_object()) {
    return invalid_argument("inventory: expected a JSON object, got " + std::string(json_type_name(doc)));
  }
  // Every read above checks its type first, so nlohmann should never throw here; the catch
  // keeps a library surprise on hostile input from taking the node down.
  try {
    Inventory inventory;
    PeerObjectReader reader(doc, "");
    reader.read("hostname", inventory.hostname);
    reader.read("os", inventory.os);
    reader.read("cpu_model", inventory.cpu_model);
    reader.read("cores", inventory.cores);
    reader.read("simd", inventory.simd);
    reader.read("memory_total_bytes", inventory.memory_total_bytes);
    reader.read("memory_available_bytes", inventory.memory_available_bytes);
    reader.read_objects("accelerators", inventory.accelerators, parse_accelerator);
    reader.read_objects("interfaces", inventory.interfaces, parse_interface);
    reader.read_objects("rdma_devices", inventory.rdma_devices, parse_rdma_device);
    reader.read("rdma_status", inventory.rdma_status);
    reader.read("disk_free_bytes", inventory.disk_free_bytes);
    if (!reader.status().is_ok()) return reader.status();
    return inventory;
  } catch (const std::exception& error) {
    return invalid_argument(std::string("inventory: unreadable document (") + error.what() + ")");
  }
}

}  // namespace clusterd
