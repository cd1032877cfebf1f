// The IPv4 interfaces of this machine, from getifaddrs.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <memory>

#include "clusterd/node/inventory.h"

namespace clusterd {
namespace {

struct InterfaceListFree {
  void operator()(ifaddrs* list) const { freeifaddrs(list); }
};

std::string ipv4_text(const sockaddr* address) {
  if (address == nullptr || address->sa_family != AF_INET) return {};
  char text[INET_ADDRSTRLEN] = {};
  const auto* ipv4 = reinterpret_cast<const sockaddr_in*>(address);
  if (inet_ntop(AF_INET, &ipv4->sin_addr, text, sizeof(text)) == nullptr) return {};
  return text;
}

}  // namespace

std::vector<NetworkInterface> list_ipv4_interfaces() {
  std::vector<NetworkInterface> interfaces;
  ifaddrs* raw = nullptr;
  if (getifaddrs(&raw) != 0) return interfaces;
  std::unique_ptr<ifaddrs, InterfaceListFree> list(raw);
  for (const ifaddrs* entry = list.get(); entry != nullptr; entry = entry->ifa_next) {
    if (entry->ifa_addr == nullptr || entry->ifa_addr->sa_family != AF_INET) continue;
    if ((entry->ifa_flags & IFF_UP) == 0) continue;
    NetworkInterface interface;
    interface.name = entry->ifa_name ? entry->ifa_name : "";
    interface.ipv4 = ipv4_text(entry->ifa_addr);
    interface.netmask = ipv4_text(entry->ifa_netmask);
    // ifa_broadaddr shares storage with the point-to-point peer address: read it only when
    // the interface says it broadcasts.
    if (entry->ifa_flags & IFF_BROADCAST) interface.broadcast = ipv4_text(entry->ifa_broadaddr);
    interface.loopback = (entry->ifa_flags & IFF_LOOPBACK) != 0;
    interface.up = true;
    interface.multicast = (entry->ifa_flags & IFF_MULTICAST) != 0;
    interfaces.push_back(std::move(interface));
  }
  return interfaces;
}

}  // namespace clusterd
