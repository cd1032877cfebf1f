#include "clusterd/discovery/beacon.h"

#include <cstring>

#include "clusterd/common/crypto.h"

namespace clusterd {

const char* beacon_reject_name(BeaconReject reason) {
  switch (reason) {
    case BeaconReject::kNone: return "none";
    case BeaconReject::kMalformed: return "malformed";
    case BeaconReject::kBadMagic: return "bad_magic";
    case BeaconReject::kUnsupportedVersion: return "unsupported_version";
    case BeaconReject::kOtherCluster: return "other_cluster";
    case BeaconReject::kBadMac: return "bad_mac";
    case BeaconReject::kReplay: return "replay";
    case BeaconReject::kStaleIncarnation: return "stale_incarnation";
  }
  return "unknown";
}

namespace {

constexpr uint8_t kMagic[4] = {'C', 'L', 'S', 'D'};
constexpr size_t kMacBytes = 32;

class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { be(v, 2); }
  void u64(uint64_t v) { be(v, 8); }
  void bytes(std::span<const uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void text(std::string_view s, size_t max) {
    s = s.substr(0, max);
    u8(static_cast<uint8_t>(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
  }
  std::vector<uint8_t>& out() { return out_; }

 private:
  void be(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
};

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}
  bool u8(uint8_t& v) { return be(v, 1); }
  bool u16(uint16_t& v) { return be(v, 2); }
  bool u64(uint64_t& v) { return be(v, 8); }
  bool bytes(uint8_t* out, size_t n) {
    if (in_.size() - pos_ < n) return false;
    std::memcpy(out, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool text(std::string& s, size_t max) {
    uint8_t len = 0;
    if (!u8(len) || len > max || in_.size() - pos_ < len) return false;
    s.assign(reinterpret_cast<const char*>(in_.data() + pos_), len);
    pos_ += len;
    return true;
  }
  size_t pos() const { return pos_; }

 private:
  template <typename T>
  bool be(T& v, size_t n) {
    if (in_.size() - pos_ < n) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; ++i) x = (x << 8) | in_[pos_ + i];
    pos_ += n;
    v = static_cast<T>(x);
    return true;
  }
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
};

std::vector<uint8_t> uuid_bytes(const std::string& uuid) {
  std::string hex;
  for (char c : uuid) {
    if (c != '-') hex.push_back(c);
  }
  std::vector<uint8_t> out;
  if (!from_hex(hex, out) || out.size() != 16) out.assign(16, 0);
  return out;
}

std::string uuid_text(const uint8_t* b) {
  std::string hex = to_hex(std::span(b, 16));
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" +
         hex.substr(20, 12);
}

}  // namespace

std::vector<uint8_t> encode_beacon(const Beacon& b, std::string_view key) {
  Writer w;
  w.bytes(kMagic);
  w.u8(kBeaconVersion);
  w.u8(static_cast<uint8_t>(b.kind));
  w.u16(0);
  std::vector<uint8_t> cluster;
  if (!from_hex(b.cluster_id, cluster)) cluster.clear();
  cluster.resize(8, 0);
  w.bytes(cluster);
  w.bytes(uuid_bytes(b.node_id));
  w.u64(b.incarnation);
  w.u64(b.sequence);
  w.u16(b.control_port);
  w.u16(b.api_port);
  w.text(b.name, kMaxBeaconNameBytes);
  w.text(b.api_host, kMaxBeaconNameBytes);
  w.u16(b.resources.cores);
  w.u64(b.resources.memory_total_bytes);
  w.u64(b.resources.memory_available_bytes);
  w.u8(b.resources.accelerators);
  w.u8(b.resources.rdma_devices);
  Digest mac = hmac_sha256(key, std::span<const uint8_t>(w.out()));
  w.bytes(mac);
  return std::move(w.out());
}

bool decode_beacon(std::span<const uint8_t> datagram, std::string_view key, const std::string& expected_cluster_id,
                   Beacon& b, BeaconReject& reject) {
  reject = BeaconReject::kMalformed;
  if (datagram.size() < 4 || std::memcmp(datagram.data(), kMagic, 4) != 0) {
    reject = BeaconReject::kBadMagic;
    return false;
  }
  if (datagram.size() > kMaxBeaconBytes || datagram.size() < 4 + 4 + kMacBytes) return false;
  Reader r(datagram.first(datagram.size() - kMacBytes));
  uint8_t magic[4], version = 0, kind = 0, cluster[8], node[16];
  uint16_t flags = 0;
  if (!r.bytes(magic, 4) || !r.u8(version)) return false;
  if (version != kBeaconVersion) {
    reject = BeaconReject::kUnsupportedVersion;
    return false;
  }
  if (!r.u8(kind) || !r.u16(flags) || !r.bytes(cluster, 8)) return false;
  if (to_hex(std::span(cluster, 8)) != expected_cluster_id) {
    reject = BeaconReject::kOtherCluster;
    return false;
  }
  Digest mac = hmac_sha256(key, datagram.first(datagram.size() - kMacBytes));
  if (!constant_time_equal(mac, datagram.last(kMacBytes))) {
    reject = BeaconReject::kBadMac;
    return false;
  }
  // Authenticated from here on, but still parsed defensively.
  if (kind < 1 || kind > 3) return false;
  b.kind = static_cast<BeaconKind>(kind);
  b.cluster_id = expected_cluster_id;
  if (!r.bytes(node, 16) || !r.u64(b.incarnation) || !r.u64(b.sequence) || !r.u16(b.control_port) ||
      !r.u16(b.api_port) || !r.text(b.name, kMaxBeaconNameBytes) || !r.text(b.api_host, kMaxBeaconNameBytes) ||
      !r.u16(b.resources.cores) || !r.u64(b.resources.memory_total_bytes) ||
      !r.u64(b.resources.memory_available_bytes) || !r.u8(b.resources.accelerators) ||
      !r.u8(b.resources.rdma_devices)) {
    return false;
  }
  if (r.pos() != datagram.size() - kMacBytes) return false;  // trailing bytes
  b.node_id = uuid_text(node);
  reject = BeaconReject::kNone;
  return true;
}

}  // namespace clusterd
