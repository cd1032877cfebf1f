// collect_inventory against a fake /proc tree and a fake verbs table, against this
// machine, and the JSON form a peer receives (including hostile documents).
#include "clusterd/node/inventory.h"

#include <endian.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace clusterd {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A verbs table with one InfiniBand device and one active port. Every call allocates what
// it hands out and the matching free/close releases it, so the fake keeps no state.
ibv_device** one_device_list(int* count) {
  auto** list = new ibv_device* [2] { new ibv_device{}, nullptr };
  std::strncpy(list[0]->name, "mlx5_0", sizeof(list[0]->name) - 1);
  if (count) *count = 1;
  return list;
}
void free_one_device_list(ibv_device** list) {
  delete list[0];
  delete[] list;
}
const char* device_name(ibv_device* device) { return device->name; }
__be64 device_guid(ibv_device*) { return htobe64(0x0002c90300497a40); }
ibv_context* open_context(ibv_device* device) {
  auto* context = new ibv_context{};
  context->device = device;
  return context;
}
int close_context(ibv_context* context) {
  delete context;
  return 0;
}
int query_one_port_device(ibv_context*, ibv_device_attr* attr) {
  *attr = ibv_device_attr{};
  attr->max_mr_size = uint64_t(1) << 40;
  attr->max_qp = 1024;
  attr->phys_port_cnt = 1;
  return 0;
}
int query_active_port(ibv_context*, uint8_t, ibv_port_attr* attr) {
  *attr = ibv_port_attr{};
  attr->state = IBV_PORT_ACTIVE;
  attr->link_layer = IBV_LINK_LAYER_INFINIBAND;
  attr->active_mtu = IBV_MTU_4096;
  attr->lid = 7;
  return 0;
}
ibv_device** no_device_list(int* count) {
  if (count) *count = 0;
  return new ibv_device* [1] { nullptr };
}
void free_no_device_list(ibv_device** list) { delete[] list; }
ibv_device** failing_device_list(int*) {
  errno = ENOMEM;
  return nullptr;
}

std::shared_ptr<VerbsApi> fake_verbs_with_one_device() {
  auto api = std::make_shared<VerbsApi>();
  api->get_device_list = one_device_list;
  api->free_device_list = free_one_device_list;
  api->get_device_name = device_name;
  api->get_device_guid = device_guid;
  api->open_device = open_context;
  api->close_device = close_context;
  api->query_device = query_one_port_device;
  api->query_port = query_active_port;
  api->origin = "fake";
  return api;
}

std::shared_ptr<VerbsApi> fake_verbs_without_devices() {
  auto api = fake_verbs_with_one_device();
  api->get_device_list = no_device_list;
  api->free_device_list = free_no_device_list;
  return api;
}

class InventoryFromFakeProc : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "clusterd-inventory-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
    root_ = pattern;
    sources_.proc_root = root_;
    sources_.verbs = fake_verbs_without_devices();
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  void write(const std::string& relative, const std::string& text) {
    const fs::path file = root_ / relative;
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
  }

  fs::path root_;
  InventorySources sources_;
};

TEST_F(InventoryFromFakeProc, ReadsMemoryCpuModelAndNvidiaGpus) {
  write("proc/meminfo", "MemTotal:       16318412 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n");
  write("proc/cpuinfo",
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC 7B13\n");
  write("proc/driver/nvidia/gpus/0000:41:00.0/information", "Model: \t\t NVIDIA A100-SXM4-40GB\nIRQ:   \t\t 42\n");
  write("proc/driver/nvidia/gpus/0000:01:00.0/information",
        "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 41\nGPU UUID: \t GPU-1234\n");

  Inventory inventory = collect_inventory(root_, sources_);

  EXPECT_EQ(inventory.memory_total_bytes, uint64_t(16318412) * 1024);
  EXPECT_EQ(inventory.memory_available_bytes, uint64_t(8000000) * 1024);
  EXPECT_EQ(inventory.cpu_model, "AMD EPYC 7B13");
  ASSERT_EQ(inventory.accelerators.size(), 2u);
  EXPECT_EQ(inventory.accelerators[0].kind, "nvidia");
  EXPECT_EQ(inventory.accelerators[0].name, "NVIDIA H100 80GB HBM3");  // ordered by PCI address
  EXPECT_EQ(inventory.accelerators[1].name, "NVIDIA A100-SXM4-40GB");
  EXPECT_EQ(inventory.rdma_status, "none found");
}

TEST_F(InventoryFromFakeProc, ArmCpuinfoWithoutModelNameNamesTheCpuPart) {
  write("proc/cpuinfo", "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n");

  EXPECT_EQ(collect_inventory(root_, sources_).cpu_model, "CPU implementer 0x41 part 0xd0c");
}

TEST_F(InventoryFromFakeProc, MissingSourcesLeaveTheirFieldsEmpty) {
  Inventory inventory = collect_inventory(root_ / "no-such-dir", sources_);

  EXPECT_EQ(inventory.memory_total_bytes, 0u);
  EXPECT_EQ(inventory.cpu_model, "");
  EXPECT_TRUE(inventory.accelerators.empty());
  EXPECT_GT(inventory.disk_free_bytes, 0u) << "a data dir that does not exist yet counts its parent";
}

TEST_F(InventoryFromFakeProc, RefreshPicksUpNewMemoryAndKeepsTheRest) {
  write("proc/meminfo", "MemTotal: 1000 kB\nMemAvailable: 600 kB\n");
  Inventory inventory = collect_inventory(root_, sources_);
  write("proc/meminfo", "MemTotal: 1000 kB\nMemAvailable: 200 kB\n");
  inventory.disk_free_bytes = 0;

  refresh_inventory(inventory, root_, sources_);

  EXPECT_EQ(inventory.memory_available_bytes, 200u * 1024);
  EXPECT_GT(inventory.disk_free_bytes, 0u);
  EXPECT_EQ(inventory.rdma_status, "none found");
}

TEST_F(InventoryFromFakeProc, ListsRdmaDevicesFromTheVerbsTable) {
  sources_.verbs = fake_verbs_with_one_device();

  Inventory inventory = collect_inventory(root_, sources_);

  EXPECT_EQ(inventory.rdma_status, "1 device(s)");
  ASSERT_EQ(inventory.rdma_devices.size(), 1u);
  EXPECT_EQ(inventory.rdma_devices[0].name, "mlx5_0");
  EXPECT_EQ(inventory.rdma_devices[0].guid, "0002:c903:0049:7a40");
  ASSERT_EQ(inventory.rdma_devices[0].ports.size(), 1u);
  EXPECT_EQ(inventory.rdma_devices[0].ports[0].state, "active");
  EXPECT_EQ(inventory.rdma_devices[0].ports[0].lid, 7);
}

TEST_F(InventoryFromFakeProc, RdmaStatusCarriesTheListingError) {
  auto verbs = fake_verbs_with_one_device();
  verbs->get_device_list = failing_device_list;
  sources_.verbs = verbs;

  Inventory inventory = collect_inventory(root_, sources_);

  EXPECT_TRUE(inventory.rdma_devices.empty());
  EXPECT_NE(inventory.rdma_status.find(std::strerror(ENOMEM)), std::string::npos) << inventory.rdma_status;
}

TEST(InventoryOfThisMachine, DescribesTheMachineItRunsOn) {
  Inventory inventory = collect_inventory(fs::temp_directory_path());

  EXPECT_FALSE(inventory.hostname.empty());
  EXPECT_FALSE(inventory.os.empty());
  EXPECT_GT(inventory.cores, 0);
  EXPECT_GT(inventory.memory_available_bytes, 0u);
  EXPECT_GT(inventory.memory_total_bytes, inventory.memory_available_bytes);
  EXPECT_GT(inventory.disk_free_bytes, 0u);
  const bool known_rdma_status = inventory.rdma_status == "none found" ||
                                 inventory.rdma_status == "libibverbs not installed" ||
                                 inventory.rdma_status.ends_with(" device(s)");
  EXPECT_TRUE(known_rdma_status) << inventory.rdma_status;
}

TEST(InventoryOfThisMachine, ListsTheLoopbackInterface) {
  std::vector<NetworkInterface> interfaces = list_ipv4_interfaces();

  auto loopback = std::find_if(interfaces.begin(), interfaces.end(),
                               [](const NetworkInterface& candidate) { return candidate.loopback; });
  ASSERT_NE(loopback, interfaces.end());
  EXPECT_EQ(loopback->ipv4, "127.0.0.1");
  EXPECT_EQ(loopback->netmask, "255.0.0.0");
  EXPECT_TRUE(loopback->up);
}

Inventory full_inventory() {
  Inventory inventory;
  inventory.hostname = "gpu-node-3";
  inventory.os = "Linux 6.1.0-18-amd64 x86_64";
  inventory.cpu_model = "AMD EPYC 7B13";
  inventory.cores = 64;
  inventory.simd = {"sse4_2", "avx", "avx2"};
  inventory.memory_total_bytes = uint64_t(512) << 30;
  inventory.memory_available_bytes = uint64_t(400) << 30;
  inventory.accelerators = {{"nvidia", "NVIDIA H100 80GB HBM3", uint64_t(80) << 30}};
  inventory.interfaces = {{"lo", "127.0.0.1", "255.0.0.0", "", true, true, false},
                          {"eth0", "10.0.0.2", "255.255.255.0", "10.0.0.255", false, true, true}};
  inventory.rdma_devices = {{"mlx5_0",
                             "0002:c903:0049:7a40",
                             uint64_t(1) << 40,
                             131072,
                             {{1, "active", "infiniband", 4096, 7}, {2, "down", "ethernet", 1024, 0}}}};
  inventory.rdma_status = "1 device(s)";
  inventory.disk_free_bytes = uint64_t(3) << 40;
  return inventory;
}

TEST(InventoryJson, UsesTheFieldNamesAsKeys) {
  json doc = inventory_to_json(full_inventory());

  for (const char* key :
       {"hostname", "os", "cpu_model", "cores", "simd", "memory_total_bytes", "memory_available_bytes", "accelerators",
        "interfaces", "rdma_devices", "rdma_status", "disk_free_bytes"}) {
    EXPECT_TRUE(doc.contains(key)) << key;
  }
  EXPECT_EQ(doc["cores"], 64);
  EXPECT_EQ(doc["interfaces"][1]["broadcast"], "10.0.0.255");
  EXPECT_EQ(doc["rdma_devices"][0]["ports"][0]["active_mtu"], 4096);
  EXPECT_EQ(doc["accelerators"][0]["memory_bytes"], uint64_t(80) << 30);
}

TEST(InventoryJson, RoundTripsEveryField) {
  const Inventory original = full_inventory();
  // Through text, as a peer receives it.
  json received = json::parse(inventory_to_json(original).dump());

  auto parsed = inventory_from_json(received);

  ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
  EXPECT_EQ(inventory_to_json(*parsed), inventory_to_json(original));
  EXPECT_EQ(parsed->cores, 64);
  EXPECT_EQ(parsed->interfaces[1].broadcast, "10.0.0.255");
  EXPECT_EQ(parsed->rdma_devices[0].ports[1].link_layer, "ethernet");
  EXPECT_EQ(parsed->disk_free_bytes, uint64_t(3) << 40);
}

TEST(InventoryJson, MissingKeysTakeDefaultsAndUnknownKeysAreIgnored) {
  auto parsed = inventory_from_json(json{{"hostname", "a"}, {"from_the_future", {1, 2, 3}}});

  ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
  EXPECT_EQ(parsed->hostname, "a");
  EXPECT_EQ(parsed->cores, 0);
  EXPECT_TRUE(parsed->interfaces.empty());
}

TEST(InventoryJson, WrongTypeNamesTheKey) {
  auto parsed = inventory_from_json(json{{"cores", "8"}});

  ASSERT_FALSE(parsed.is_ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(), "inventory: key 'cores' must be an integer");
}

TEST(InventoryJson, WrongTypeDeepInsideNamesTheFullPath) {
  auto parsed = inventory_from_json(json::parse(R"({"rdma_devices":[{"ports":[{"lid":"x"}]}]})"));

  ASSERT_FALSE(parsed.is_ok());
  EXPECT_EQ(parsed.status().message(), "inventory: key 'rdma_devices[0].ports[0].lid' must be an integer");
}

TEST(InventoryJson, RejectsHostileDocumentsWithoutThrowing) {
  const std::string huge_string(5000, 'x');
  const json cases[] = {
      json::array({1, 2}),
      json("inventory"),
      json(nullptr),
      json(42),
      json::parse("{}garbage", nullptr, /*allow_exceptions=*/false),  // discarded
      json{{"cores", 1.5}},
      json{{"cores", uint64_t(1) << 40}},
      json{{"cores", nullptr}},
      json{{"memory_total_bytes", -1}},
      json{{"hostname", huge_string}},
      json{{"hostname", 7}},
      json{{"simd", std::vector<std::string>(300, "avx")}},
      json{{"simd", {"avx", 2}}},
      json{{"simd", "avx"}},
      json{{"interfaces", {1, 2}}},
      json{{"interfaces", json::array({json{{"up", "yes"}}})}},
      json{{"interfaces", std::vector<json>(100000, json::object())}},
      json{{"accelerators", json::object()}},
      json{{"rdma_devices", json::array({json{{"ports", std::vector<json>(257, json::object())}}})}},
  };
  for (const json& doc : cases) {
    SCOPED_TRACE(doc.dump().substr(0, 120));
    Result<Inventory> parsed = invalid_argument("not run");
    EXPECT_NO_THROW(parsed = inventory_from_json(doc));
    ASSERT_FALSE(parsed.is_ok());
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << parsed.status().to_string();
    EXPECT_EQ(parsed.status().message().rfind("inventory: ", 0), 0u) << parsed.status().message();
  }
}

}  // namespace
}  // namespace clusterd
