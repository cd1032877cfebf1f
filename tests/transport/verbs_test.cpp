// list_rdma_devices against a fake RDMA host put in place through the VerbsApi table,
// and load_system_verbs against whatever this machine has.
#include "clusterd/transport/verbs.h"

#include <endian.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

namespace clusterd {
namespace {

struct FakePort {
  ibv_port_state state = IBV_PORT_ACTIVE;
  uint8_t link_layer = IBV_LINK_LAYER_INFINIBAND;
  ibv_mtu active_mtu = IBV_MTU_4096;
  uint16_t lid = 1;
};

struct FakeDevice {
  ibv_device device{};  // what the code under test holds a pointer to
  uint64_t guid = 0;    // host byte order
  uint64_t max_mr_size = uint64_t(1) << 40;
  int max_qp = 131072;
  std::vector<FakePort> ports;
  bool open_fails = false;
  bool query_port_fails = false;
};

// A machine's worth of fake devices, plus a ledger of what was handed out and given back.
struct FakeRdmaHost {
  std::vector<std::unique_ptr<FakeDevice>> devices;
  bool list_fails = false;
  int list_errno = 0;

  std::vector<ibv_device*> handed_out_list;
  int lists_handed_out = 0;
  int lists_freed = 0;
  std::vector<std::unique_ptr<ibv_context>> contexts;
  std::map<ibv_context*, int> closes;

  FakeDevice& add(const char* name, uint64_t guid, std::vector<FakePort> ports) {
    devices.push_back(std::make_unique<FakeDevice>());
    FakeDevice& added = *devices.back();
    std::strncpy(added.device.name, name, sizeof(added.device.name) - 1);
    added.guid = guid;
    added.ports = std::move(ports);
    return added;
  }

  FakeDevice& find(ibv_device* device) {
    for (auto& candidate : devices) {
      if (&candidate->device == device) return *candidate;
    }
    ADD_FAILURE() << "the code under test passed a device pointer the fake never handed out";
    std::abort();
  }
};

// The table's C signatures carry no user pointer, so the fake functions reach the host of
// the running test through this pointer (set and cleared by the fixture).
FakeRdmaHost* current_host = nullptr;

ibv_device** fake_get_device_list(int* count) {
  FakeRdmaHost& host = *current_host;
  if (host.list_fails) {
    errno = host.list_errno;
    return nullptr;
  }
  host.handed_out_list.clear();
  for (auto& device : host.devices) host.handed_out_list.push_back(&device->device);
  host.handed_out_list.push_back(nullptr);
  host.lists_handed_out++;
  if (count) *count = int(host.devices.size());
  return host.handed_out_list.data();
}

void fake_free_device_list(ibv_device** list) {
  EXPECT_EQ(list, current_host->handed_out_list.data());
  current_host->lists_freed++;
}

const char* fake_get_device_name(ibv_device* device) { return device->name; }

__be64 fake_get_device_guid(ibv_device* device) { return htobe64(current_host->find(device).guid); }

ibv_context* fake_open_device(ibv_device* device) {
  if (current_host->find(device).open_fails) {
    errno = EACCES;
    return nullptr;
  }
  auto context = std::make_unique<ibv_context>();
  context->device = device;
  current_host->contexts.push_back(std::move(context));
  return current_host->contexts.back().get();
}

int fake_close_device(ibv_context* context) {
  current_host->closes[context]++;
  return 0;
}

int fake_query_device(ibv_context* context, ibv_device_attr* attr) {
  const FakeDevice& device = current_host->find(context->device);
  *attr = ibv_device_attr{};
  attr->max_mr_size = device.max_mr_size;
  attr->max_qp = device.max_qp;
  attr->phys_port_cnt = uint8_t(device.ports.size());
  return 0;
}

int fake_query_port(ibv_context* context, uint8_t number, ibv_port_attr* attr) {
  const FakeDevice& device = current_host->find(context->device);
  if (device.query_port_fails) return EIO;
  if (number < 1 || number > device.ports.size()) return EINVAL;
  const FakePort& port = device.ports[number - 1];
  *attr = ibv_port_attr{};
  attr->state = port.state;
  attr->link_layer = port.link_layer;
  attr->active_mtu = port.active_mtu;
  attr->lid = port.lid;
  return 0;
}

VerbsApi fake_verbs() {
  VerbsApi api;
  api.get_device_list = fake_get_device_list;
  api.free_device_list = fake_free_device_list;
  api.get_device_name = fake_get_device_name;
  api.get_device_guid = fake_get_device_guid;
  api.open_device = fake_open_device;
  api.close_device = fake_close_device;
  api.query_device = fake_query_device;
  api.query_port = fake_query_port;
  api.origin = "fake";
  return api;
}

// Every test also checks, on the way out, that each list was freed and each opened context
// closed exactly once, whatever path list_rdma_devices took.
class ListRdmaDevices : public ::testing::Test {
 protected:
  void SetUp() override { current_host = &host_; }
  void TearDown() override {
    EXPECT_EQ(host_.lists_freed, host_.lists_handed_out) << "device lists leaked or freed twice";
    for (const auto& context : host_.contexts) {
      EXPECT_EQ(host_.closes[context.get()], 1) << "a context of " << context->device->name;
    }
    EXPECT_EQ(host_.closes.size(), host_.contexts.size()) << "closed a context that was never opened";
    current_host = nullptr;
  }

  FakeRdmaHost host_;
  VerbsApi api_ = fake_verbs();
};

TEST_F(ListRdmaDevices, ListsNothingWhenThereAreNoDevices) {
  auto devices = list_rdma_devices(api_);
  ASSERT_TRUE(devices.is_ok()) << devices.status().to_string();
  EXPECT_TRUE(devices->empty());
  EXPECT_EQ(host_.lists_handed_out, 1);
}

TEST_F(ListRdmaDevices, DescribesEveryDeviceAndPort) {
  host_.add("mlx5_0", 0x0002c90300497a40, {FakePort{}});
  FakeDevice& roce = host_.add("mlx5_1", 0x1122334455667788,
                               {FakePort{IBV_PORT_DOWN, IBV_LINK_LAYER_ETHERNET, IBV_MTU_1024, 0},
                                FakePort{IBV_PORT_ACTIVE, IBV_LINK_LAYER_ETHERNET, IBV_MTU_256, 0}});
  roce.max_qp = 4096;

  auto devices = list_rdma_devices(api_);

  ASSERT_TRUE(devices.is_ok()) << devices.status().to_string();
  ASSERT_EQ(devices->size(), 2u);
  const RdmaDevice& ib = (*devices)[0];
  EXPECT_EQ(ib.name, "mlx5_0");
  EXPECT_EQ(ib.guid, "0002:c903:0049:7a40");
  EXPECT_EQ(ib.max_mr_size, uint64_t(1) << 40);
  EXPECT_EQ(ib.max_qp, 131072);
  ASSERT_EQ(ib.ports.size(), 1u);
  EXPECT_EQ(ib.ports[0].number, 1);
  EXPECT_EQ(ib.ports[0].state, "active");
  EXPECT_EQ(ib.ports[0].link_layer, "infiniband");
  EXPECT_EQ(ib.ports[0].active_mtu, 4096);
  EXPECT_EQ(ib.ports[0].lid, 1);

  const RdmaDevice& eth = (*devices)[1];
  EXPECT_EQ(eth.name, "mlx5_1");
  EXPECT_EQ(eth.guid, "1122:3344:5566:7788");
  EXPECT_EQ(eth.max_qp, 4096);
  ASSERT_EQ(eth.ports.size(), 2u);
  EXPECT_EQ(eth.ports[0].number, 1);
  EXPECT_EQ(eth.ports[0].state, "down");
  EXPECT_EQ(eth.ports[0].active_mtu, 1024);
  EXPECT_EQ(eth.ports[1].number, 2);
  EXPECT_EQ(eth.ports[1].state, "active");
  EXPECT_EQ(eth.ports[1].link_layer, "ethernet");
  EXPECT_EQ(eth.ports[1].active_mtu, 256);
  EXPECT_EQ(host_.contexts.size(), 2u);
}

TEST_F(ListRdmaDevices, SkipsADeviceThatCannotBeOpened) {
  host_.add("locked_0", 0x1, {FakePort{}}).open_fails = true;
  host_.add("mlx5_0", 0x2, {FakePort{}});

  auto devices = list_rdma_devices(api_);

  ASSERT_TRUE(devices.is_ok()) << devices.status().to_string();
  ASSERT_EQ(devices->size(), 1u);
  EXPECT_EQ((*devices)[0].name, "mlx5_0");
}

TEST_F(ListRdmaDevices, SkipsADeviceWhosePortsCannotBeQueriedAndClosesIt) {
  host_.add("flaky_0", 0x1, {FakePort{}}).query_port_fails = true;
  host_.add("mlx5_0", 0x2, {FakePort{}});

  auto devices = list_rdma_devices(api_);

  ASSERT_TRUE(devices.is_ok()) << devices.status().to_string();
  ASSERT_EQ(devices->size(), 1u);
  EXPECT_EQ((*devices)[0].name, "mlx5_0");
  EXPECT_EQ(host_.contexts.size(), 2u);  // both opened; TearDown checks both were closed
}

TEST_F(ListRdmaDevices, FailsNamingTheDeviceWhenNoneCanBeUsed) {
  host_.add("locked_0", 0x1, {FakePort{}}).open_fails = true;

  auto devices = list_rdma_devices(api_);

  ASSERT_FALSE(devices.is_ok());
  EXPECT_NE(devices.status().message().find("locked_0"), std::string::npos) << devices.status().message();
  EXPECT_NE(devices.status().message().find(std::strerror(EACCES)), std::string::npos);
}

TEST_F(ListRdmaDevices, NullDeviceListIsAnErrorCarryingTheErrnoText) {
  host_.list_fails = true;
  host_.list_errno = ENOMEM;

  auto devices = list_rdma_devices(api_);

  ASSERT_FALSE(devices.is_ok());
  EXPECT_NE(devices.status().message().find(std::strerror(ENOMEM)), std::string::npos) << devices.status().message();
}

TEST_F(ListRdmaDevices, NullDeviceListWithEnosysMeansAKernelWithoutRdma) {
  host_.list_fails = true;
  host_.list_errno = ENOSYS;  // what rdma-core answers when the kernel has no uverbs

  auto devices = list_rdma_devices(api_);

  ASSERT_TRUE(devices.is_ok()) << devices.status().to_string();
  EXPECT_TRUE(devices->empty());
}

TEST_F(ListRdmaDevices, RejectsATableWithAMissingEntryNamingIt) {
  api_.query_port = nullptr;

  auto devices = list_rdma_devices(api_);

  ASSERT_FALSE(devices.is_ok());
  EXPECT_EQ(devices.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(devices.status().message().find("query_port"), std::string::npos);
  EXPECT_EQ(host_.lists_handed_out, 0);
}

TEST(LoadSystemVerbs, LoadsOrReportsNotFoundAndListsWhatThisMachineHas) {
  auto verbs = load_system_verbs();
  if (!verbs.is_ok()) {
    EXPECT_EQ(verbs.status().code(), StatusCode::kNotFound) << verbs.status().to_string();
    GTEST_SKIP() << "no usable libibverbs here: " << verbs.status().message();
  }
  EXPECT_EQ((*verbs)->origin, "libibverbs.so.1");
  EXPECT_EQ(load_system_verbs().value().get(), verbs->get()) << "loaded once, shared afterwards";

  auto devices = list_rdma_devices(**verbs);
  ASSERT_TRUE(devices.is_ok()) << devices.status().to_string();
  for (const RdmaDevice& device : *devices) {
    EXPECT_FALSE(device.name.empty());
    EXPECT_EQ(device.guid.size(), 19u) << device.guid;
  }
}

}  // namespace
}  // namespace clusterd
