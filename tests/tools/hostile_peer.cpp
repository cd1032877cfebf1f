// hostile_peer: throws bad input at a running clusterd, for the robustness tests.
//   hostile_peer udp HOST PORT COUNT KEY_FILE   random, garbled, forged, truncated and
//                                               replayed beacons
//   hostile_peer tcp HOST PORT COUNT            random and malformed control frames
//   hostile_peer replay HOST PORT MS KEY_FILE   one genuine beacon of a made-up node,
//                                               then the same datagram every 50 ms for MS
// Prints what it sent; exits 0 when everything was sent (what the node did with it is
// for the test to check through the node's API).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "clusterd/common/crypto.h"
#include "clusterd/discovery/beacon.h"
#include "clusterd/transport/control_frame.h"

using namespace clusterd;

namespace {

sockaddr_in make_address(const char* host, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    std::fprintf(stderr, "hostile_peer: %s is not an IPv4 address\n", host);
    std::exit(2);
  }
  return a;
}

Beacon sample_beacon(const std::string& key, uint64_t sequence) {
  Beacon b;
  b.cluster_id = cluster_id_for_key(key);
  b.node_id = "0badc0de-0000-4000-8000-000000000001";
  b.incarnation = 1;
  b.sequence = sequence;
  b.control_port = 9;
  b.name = "hostile";
  b.api_host = "127.0.0.1";
  return b;
}

int run_udp(const char* host, int port, int count, const std::string& key) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to = make_address(host, port);
  std::mt19937 rng(12345);
  auto send = [&](const std::vector<uint8_t>& d) {
    sendto(fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
  };
  std::vector<uint8_t> valid = encode_beacon(sample_beacon(key, 1000), key);
  send(valid);
  int kinds[6] = {};
  for (int i = 0; i < count; ++i) {
    std::vector<uint8_t> d;
    int kind = i % 6;
    kinds[kind]++;
    switch (kind) {
      case 0:  // random bytes
        d.resize(rng() % 1500);
        for (auto& x : d) x = static_cast<uint8_t>(rng());
        break;
      case 1:  // a valid beacon with a few bytes flipped
        d = valid;
        for (int k = 0; k < 3; ++k) d[rng() % d.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
        break;
      case 2:  // truncated
        d.assign(valid.begin(), valid.begin() + static_cast<long>(rng() % valid.size()));
        break;
      case 3:  // signed with another key, claiming this cluster's id
        d = encode_beacon(sample_beacon(key, 1000 + i), "some-other-key-entirely-0123456789");
        break;
      case 4:  // another cluster
        d = encode_beacon(sample_beacon("some-other-key-entirely-0123456789", 1000 + i),
                          "some-other-key-entirely-0123456789");
        break;
      case 5:  // a replay of an older genuine beacon (the node has seen sequence 1000)
        d = encode_beacon(sample_beacon(key, 1 + rng() % 999), key);
        break;
    }
    send(d);
    if (i % 500 == 499) usleep(2000);  // let the receive buffer drain
  }
  close(fd);
  std::printf(
      "udp: sent %d datagrams (random %d, flipped %d, truncated %d, forged %d, other cluster %d, replayed %d)\n", count,
      kinds[0], kinds[1], kinds[2], kinds[3], kinds[4], kinds[5]);
  return 0;
}

int run_replay(const char* host, int port, int duration_ms, const std::string& key) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to = make_address(host, port);
  std::vector<uint8_t> d = encode_beacon(sample_beacon(key, 7), key);
  int sent = 0;
  for (int elapsed = 0; elapsed <= duration_ms; elapsed += 50, ++sent) {
    sendto(fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
    usleep(50'000);
  }
  close(fd);
  std::printf("replay: sent one beacon %d times over %d ms\n", sent, duration_ms);
  return 0;
}

bool send_all(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

int run_tcp(const char* host, int port, int count) {
  sockaddr_in to = make_address(host, port);
  std::mt19937 rng(54321);
  int connected = 0;
  for (int i = 0; i < count; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
      close(fd);
      continue;
    }
    connected++;
    std::string out;
    switch (i % 6) {
      case 0:  // random bytes
        out.resize(1 + rng() % 4096);
        for (auto& c : out) c = static_cast<char>(rng());
        break;
      case 1:  // a header announcing 4 GiB
        out = std::string("\xff\xff\xff\xff", 4) + "xyz";
        break;
      case 2:  // a frame that is not JSON
        out = encode_control_frame("x");
        out.replace(4, std::string::npos, "{not json");
        out[3] = 9;
        break;
      case 3:  // JSON, but not a hello
        out = encode_control_frame({{"type", "inventory"}, {"inventory", {{"cores", 1}}}});
        break;
      case 4:  // a hello with nonsense fields, then a forged auth
        out = encode_control_frame(
                  {{"type", "hello"}, {"version", 1}, {"cluster_id", "0000"}, {"node_id", "x"}, {"nonce", "zz"}}) +
              encode_control_frame({{"type", "auth"}, {"proof", "00"}});
        break;
      case 5:  // half a frame, then hang up
        out = encode_control_frame({{"type", "hello"}, {"version", 1}}).substr(0, 9);
        break;
    }
    send_all(fd, out);
    close(fd);
  }
  std::printf("tcp: %d connections with bad frames (%d accepted by the kernel)\n", count, connected);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (argc >= 6 && (mode == "udp" || mode == "replay")) {
    std::ifstream in(argv[5]);
    std::stringstream ss;
    ss << in.rdbuf();
    auto key = parse_cluster_key(ss.str(), argv[5]);
    if (!key.is_ok()) {
      std::fprintf(stderr, "hostile_peer: %s\n", key.status().message().c_str());
      return 2;
    }
    if (mode == "replay") return run_replay(argv[2], std::atoi(argv[3]), std::atoi(argv[4]), *key);
    return run_udp(argv[2], std::atoi(argv[3]), std::atoi(argv[4]), *key);
  }
  if (argc >= 5 && std::string(argv[1]) == "tcp") return run_tcp(argv[2], std::atoi(argv[3]), std::atoi(argv[4]));
  std::fprintf(
      stderr,
      "usage: hostile_peer udp HOST PORT COUNT KEY_FILE | tcp HOST PORT COUNT | replay HOST PORT MS KEY_FILE\n");
  return 2;
}
