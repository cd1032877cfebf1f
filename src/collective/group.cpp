#include "clusterd/collective/group.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "clusterd/common/crypto.h"

namespace clusterd {

namespace {

using Clock = std::chrono::steady_clock;

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

constexpr int kCheckEveryMs = 100;

// Reads or writes exactly n bytes on a non-blocking socket before `deadline`; `check`
// (if set) is polled while waiting and ends the wait with its error.
Status io_exact(int fd, uint8_t* buf, size_t n, bool write, Clock::time_point deadline, const std::string& what,
                const std::function<Status()>& check = {}) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = write ? ::send(fd, buf + done, n - done, MSG_NOSIGNAL) : ::recv(fd, buf + done, n - done, 0);
    if (r > 0) {
      done += static_cast<size_t>(r);
      continue;
    }
    if (r == 0 && !write) return unavailable(what + ": connection closed");
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      return unavailable(what + ": " + std::strerror(errno));
    }
    pollfd p{fd, static_cast<short>(write ? POLLOUT : POLLIN), 0};
    int left = ms_left(deadline);
    if (left == 0) return deadline_exceeded(what + ": timed out");
    if (::poll(&p, 1, check ? std::min(left, kCheckEveryMs) : left) == 0 && check) {
      if (Status s = check(); !s.is_ok()) return s;
    }
  }
  return Status::ok();
}

std::string proof(const std::string& key, uint64_t epoch, int from, int to, const std::string& from_nonce,
                  const std::string& to_nonce) {
  std::string msg = "clusterd data v1|" + std::to_string(epoch) + "|" + std::to_string(from) + "|" +
                    std::to_string(to) + "|" + from_nonce + "|" + to_nonce;
  Digest d = hmac_sha256(key, msg);
  return std::string(d.begin(), d.end());
}

}  // namespace

Group::Link::~Link() {
  if (fd >= 0) ::close(fd);
}

// ---------------------------------------------------------------------------------
// Listener

Result<std::unique_ptr<DataListener>> DataListener::bind(uint16_t port) {
  auto l = std::unique_ptr<DataListener>(new DataListener());
  l->fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(l->fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(l->fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(l->fd_, 64) != 0) {
    return unavailable("data port " + std::to_string(port) + ": cannot listen: " + std::strerror(errno));
  }
  socklen_t len = sizeof a;
  getsockname(l->fd_, reinterpret_cast<sockaddr*>(&a), &len);
  l->port_ = ntohs(a.sin_port);
  set_nonblocking(l->fd_);
  return l;
}

DataListener::~DataListener() {
  if (fd_ >= 0) ::close(fd_);
}

// ---------------------------------------------------------------------------------
// Forming the group

namespace {

struct Handshake {
  const GroupOptions& o;
  std::string nonce = to_hex(random_bytes(32));

  Status send_frame(int fd, uint16_t flags, const std::string& payload, Clock::time_point deadline,
                    const std::string& what) {
    uint8_t h[kDataFrameHeaderBytes];
    encode_data_frame_header({DataOp::kHello, 0, flags, static_cast<uint32_t>(payload.size()), o.epoch, 0}, h);
    std::string frame(reinterpret_cast<char*>(h), sizeof h);
    frame += payload;
    return io_exact(fd, reinterpret_cast<uint8_t*>(frame.data()), frame.size(), true, deadline, what, o.check);
  }

  Result<std::string> read_frame(int fd, uint16_t flags, Clock::time_point deadline, const std::string& what) {
    uint8_t h[kDataFrameHeaderBytes];
    if (Status s = io_exact(fd, h, sizeof h, false, deadline, what, o.check); !s.is_ok()) return s;
    auto header = decode_data_frame_header(std::span<const uint8_t, kDataFrameHeaderBytes>(h, sizeof h));
    if (!header.is_ok()) return invalid_argument(what + ": " + header.status().message());
    if (header->op != DataOp::kHello || header->flags != flags || header->bytes > 256) {
      return invalid_argument(what + ": unexpected frame during the handshake");
    }
    if (header->epoch != o.epoch) {
      return invalid_argument(what + ": peer is in epoch " + std::to_string(header->epoch) + ", this group is " +
                              std::to_string(o.epoch));
    }
    std::string payload(header->bytes, '\0');
    if (Status s =
            io_exact(fd, reinterpret_cast<uint8_t*>(payload.data()), payload.size(), false, deadline, what, o.check);
        !s.is_ok()) {
      return s;
    }
    return payload;
  }

  // Exchanges hellos and proofs on a connected socket; returns the peer's rank.
  Result<int> run(int fd, int expected_peer, Clock::time_point deadline, const std::string& what) {
    std::string hello = std::to_string(o.rank) + "|" + nonce;
    if (Status s = send_frame(fd, 0, hello, deadline, what); !s.is_ok()) return s;
    auto peer_hello = read_frame(fd, 0, deadline, what);
    if (!peer_hello.is_ok()) return peer_hello.status();
    auto bar = peer_hello->find('|');
    if (bar == std::string::npos) return invalid_argument(what + ": malformed hello");
    int peer = std::atoi(peer_hello->substr(0, bar).c_str());
    std::string peer_nonce = peer_hello->substr(bar + 1);
    if (peer < 0 || peer >= static_cast<int>(o.members.size()) || peer == o.rank ||
        (expected_peer >= 0 && peer != expected_peer) || peer_nonce.size() != 64) {
      return invalid_argument(what + ": hello from an unexpected rank " + std::to_string(peer));
    }
    if (Status s = send_frame(fd, 1, proof(o.key, o.epoch, o.rank, peer, nonce, peer_nonce), deadline, what);
        !s.is_ok()) {
      return s;
    }
    auto peer_proof = read_frame(fd, 1, deadline, what);
    if (!peer_proof.is_ok()) return peer_proof.status();
    std::string expected = proof(o.key, o.epoch, peer, o.rank, peer_nonce, nonce);
    if (!constant_time_equal(std::span(reinterpret_cast<const uint8_t*>(expected.data()), expected.size()),
                             std::span(reinterpret_cast<const uint8_t*>(peer_proof->data()), peer_proof->size()))) {
      return permission_denied(what + ": the peer does not hold this cluster's key");
    }
    return peer;
  }
};

}  // namespace

Result<std::unique_ptr<Group>> Group::form(const GroupOptions& o, DataListener& listener) {
  if (o.rank < 0 || o.rank >= static_cast<int>(o.members.size())) return invalid_argument("group: rank out of range");
  auto g = std::unique_ptr<Group>(new Group());
  g->rank_ = o.rank;
  g->epoch_ = o.epoch;
  g->deadline_ms_ = o.deadline_ms;
  g->mesh_max_bytes_ = o.mesh_max_bytes;
  g->members_ = o.members;
  g->links_.resize(o.members.size());
  const auto deadline = Clock::now() + std::chrono::milliseconds(o.connect_timeout_ms);
  Handshake hs{o};

  // Dial every lower rank (retrying while it is not listening yet).
  for (int peer = 0; peer < o.rank; ++peer) {
    const std::string what = "data link to " + g->who(peer);
    for (;;) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(o.members[peer].port);
      if (inet_pton(AF_INET, o.members[peer].host.c_str(), &a.sin_addr) != 1) {
        ::close(fd);
        return invalid_argument(what + ": '" + o.members[peer].host + "' is not an IPv4 address");
      }
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        set_nonblocking(fd);
        set_nodelay(fd);
        auto r = hs.run(fd, peer, deadline, what);
        if (!r.is_ok()) {
          ::close(fd);
          return r.status();
        }
        g->links_[peer] = std::make_unique<Link>();
        g->links_[peer]->fd = fd;
        break;
      }
      ::close(fd);
      if (ms_left(deadline) == 0) return deadline_exceeded(what + ": could not connect in time");
      if (o.check) {
        if (Status s = o.check(); !s.is_ok()) return s;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  // Accept every higher rank; connections that fail the handshake are dropped.
  int missing = static_cast<int>(o.members.size()) - 1 - o.rank;
  while (missing > 0) {
    pollfd p{listener.fd(), POLLIN, 0};
    int left = ms_left(deadline);
    if (left == 0) {
      return deadline_exceeded("group: " + std::to_string(missing) + " higher rank(s) did not connect in time");
    }
    if (::poll(&p, 1, o.check ? std::min(left, kCheckEveryMs) : left) == 0) {
      if (o.check) {
        if (Status s = o.check(); !s.is_ok()) return s;
      }
      continue;
    }
    int fd = ::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    set_nonblocking(fd);
    set_nodelay(fd);
    auto peer = hs.run(fd, -1, std::min(deadline, Clock::now() + std::chrono::seconds(2)), "incoming data link");
    if (!peer.is_ok() || *peer < o.rank || g->links_[*peer]) {
      ::close(fd);  // a stale epoch, a wrong key, or a stranger
      continue;
    }
    g->links_[*peer] = std::make_unique<Link>();
    g->links_[*peer]->fd = fd;
    --missing;
  }
  return g;
}

Group::~Group() = default;

void Group::close() {
  for (auto& l : links_) l.reset();
  if (broken_reason_.empty()) broken_reason_ = "the group was closed";
}

std::string Group::who(int rank) const {
  const GroupMember& m = members_[rank];
  return "rank " + std::to_string(rank) + (m.name.empty() ? "" : " (" + m.name + ")") + " at " + m.host + ":" +
         std::to_string(m.port);
}

Status Group::fail(Status status) {
  if (broken_reason_.empty()) broken_reason_ = status.message();
  return status;
}

}  // namespace clusterd
