// The slice link's two ends: SliceServer (the coordinator, a thread per client) and
// SliceClient (a rank). Blocking sockets with timeouts: a load moves few, large
// requests, so the simple form is fast enough.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "clusterd/collective/data_frame.h"
#include "clusterd/common/crypto.h"
#include "clusterd/node/slices.h"

namespace clusterd {

namespace {

constexpr int kHandshakeTimeoutMs = 5000;
constexpr int kSendTimeoutMs = 30000;
constexpr size_t kMaxSliceClients = 64;

void set_timeouts(int fd, int recv_ms, int send_ms) {
  timeval r{recv_ms / 1000, (recv_ms % 1000) * 1000};
  timeval s{send_ms / 1000, (send_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &r, sizeof r);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &s, sizeof s);
}

Status io_all(int fd, uint8_t* p, size_t n, bool write, const std::string& what) {
  while (n > 0) {
    const ssize_t r = write ? ::send(fd, p, n, MSG_NOSIGNAL) : ::recv(fd, p, n, 0);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return unavailable(what + ": connection closed");
    if (errno == EAGAIN || errno == EWOULDBLOCK) return deadline_exceeded(what + ": timed out");
    return unavailable(what + ": " + std::strerror(errno));
  }
  return Status::ok();
}

Status send_frame(int fd, DataOp op, uint16_t flags, uint64_t epoch, uint64_t sequence, const uint8_t* payload,
                  size_t bytes, const std::string& what) {
  uint8_t h[kDataFrameHeaderBytes];
  encode_data_frame_header({op, 0, flags, static_cast<uint32_t>(bytes), epoch, sequence}, h);
  if (Status s = io_all(fd, h, sizeof h, true, what); !s.is_ok()) return s;
  return io_all(fd, const_cast<uint8_t*>(payload), bytes, true, what);
}

Status send_frame(int fd, DataOp op, uint16_t flags, uint64_t epoch, uint64_t sequence, const std::string& payload,
                  const std::string& what) {
  return send_frame(fd, op, flags, epoch, sequence, reinterpret_cast<const uint8_t*>(payload.data()), payload.size(),
                    what);
}

Result<DataFrameHeader> recv_header(int fd, const std::string& what) {
  uint8_t h[kDataFrameHeaderBytes];
  if (Status s = io_all(fd, h, sizeof h, false, what); !s.is_ok()) return s;
  auto header = decode_data_frame_header(std::span<const uint8_t, kDataFrameHeaderBytes>(h, sizeof h));
  if (!header.is_ok()) return invalid_argument(what + ": " + header.status().message());
  return header;
}

Result<std::string> recv_payload(int fd, const DataFrameHeader& h, uint32_t max_bytes, const std::string& what) {
  if (h.bytes > max_bytes) {
    return invalid_argument(what + ": a " + data_op_name(h.op) + " frame of " + std::to_string(h.bytes) +
                            " bytes is larger than " + std::to_string(max_bytes));
  }
  std::string payload(h.bytes, '\0');
  if (Status s = io_all(fd, reinterpret_cast<uint8_t*>(payload.data()), payload.size(), false, what); !s.is_ok()) {
    return s;
  }
  return payload;
}

std::string slice_proof(const std::string& key, uint64_t epoch, const std::string& role, const std::string& own_nonce,
                        const std::string& peer_nonce) {
  Digest d =
      hmac_sha256(key, "clusterd slices v1|" + std::to_string(epoch) + "|" + role + "|" + own_nonce + "|" + peer_nonce);
  return std::string(d.begin(), d.end());
}

bool same_bytes(const std::string& a, const std::string& b) {
  return constant_time_equal(std::span(reinterpret_cast<const uint8_t*>(a.data()), a.size()),
                             std::span(reinterpret_cast<const uint8_t*>(b.data()), b.size()));
}

// Reads the peer's hello ("<role>|<64 hex nonce>") in `epoch`; returns the nonce.
Result<std::string> read_hello(int fd, uint64_t epoch, const std::string& role, const std::string& what) {
  auto h = recv_header(fd, what);
  if (!h.is_ok()) return h.status();
  if (h->op != DataOp::kSliceHello || h->flags != 0) return invalid_argument(what + ": expected a slice hello");
  if (h->epoch != epoch) {
    return invalid_argument(what + ": the peer is in load " + std::to_string(h->epoch) + ", not " +
                            std::to_string(epoch));
  }
  auto payload = recv_payload(fd, *h, 256, what);
  if (!payload.is_ok()) return payload.status();
  if (payload->size() != role.size() + 1 + 64 || payload->compare(0, role.size() + 1, role + "|") != 0) {
    return invalid_argument(what + ": malformed slice hello");
  }
  return payload->substr(role.size() + 1);
}

Status read_proof(int fd, uint64_t epoch, const std::string& expected, const std::string& what) {
  auto h = recv_header(fd, what);
  if (!h.is_ok()) return h.status();
  if (h->op != DataOp::kSliceHello || h->flags != 1 || h->epoch != epoch) {
    return invalid_argument(what + ": expected a slice proof");
  }
  auto proof = recv_payload(fd, *h, 256, what);
  if (!proof.is_ok()) return proof.status();
  if (!same_bytes(*proof, expected)) return permission_denied(what + ": the peer does not hold this cluster's key");
  return Status::ok();
}

uint64_t get_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

}  // namespace

ManifestDocument ManifestDocument::of(ModelManifest manifest) {
  ManifestDocument d;
  d.text = manifest.to_json().dump();
  d.sha256 = to_hex(clusterd::sha256(std::span(reinterpret_cast<const uint8_t*>(d.text.data()), d.text.size())));
  d.manifest = std::move(manifest);
  return d;
}

// ---------------------------------------------------------------------------------
// Server

Result<std::unique_ptr<SliceServer>> SliceServer::start(const std::filesystem::path& path,
                                                        std::shared_ptr<const ManifestDocument> manifest,
                                                        std::string key, uint64_t epoch, uint16_t port) {
  auto s = std::unique_ptr<SliceServer>(new SliceServer());
  s->path_ = path;
  s->manifest_ = std::move(manifest);
  s->key_ = std::move(key);
  s->epoch_ = epoch;
  s->file_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (s->file_fd_ < 0) return io_error(path.string() + ": cannot open to serve slices: " + std::strerror(errno));
  s->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (s->listen_fd_ < 0 || ::bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(s->listen_fd_, 16) != 0) {
    return unavailable("slice server: cannot listen on port " + std::to_string(port) + ": " + std::strerror(errno));
  }
  socklen_t len = sizeof a;
  getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  s->port_ = ntohs(a.sin_port);
  s->acceptor_ = std::thread([self = s.get()] { self->accept_loop(); });
  return s;
}

SliceServer::~SliceServer() {
  stopping_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard lock(clients_mu_);
    for (int fd : client_fds_) ::shutdown(fd, SHUT_RDWR);  // wakes the client threads
  }
  for (auto& t : clients_) t.join();
  for (int fd : client_fds_) ::close(fd);
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (file_fd_ >= 0) ::close(file_fd_);
}

void SliceServer::accept_loop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard lock(clients_mu_);
    if (stopping_ || client_fds_.size() >= kMaxSliceClients) {
      ::close(fd);
      continue;
    }
    client_fds_.push_back(fd);
    clients_.emplace_back([this, fd] {
      serve(fd);
      std::lock_guard done(clients_mu_);
      std::erase(client_fds_, fd);
      ::close(fd);
    });
  }
}

void SliceServer::serve(int fd) {
  const std::string what = "slice link";
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  set_timeouts(fd, kHandshakeTimeoutMs, kSendTimeoutMs);
  const std::string nonce = to_hex(random_bytes(32));
  auto client_nonce = read_hello(fd, epoch_, "client", what);
  if (!client_nonce.is_ok()) {
    spdlog::warn("slice server: dropped a connection: {}", client_nonce.status().message());
    return;
  }
  if (!send_frame(fd, DataOp::kSliceHello, 0, epoch_, 0, "server|" + nonce, what).is_ok() ||
      !send_frame(fd, DataOp::kSliceHello, 1, epoch_, 0, slice_proof(key_, epoch_, "server", nonce, *client_nonce),
                  what)
           .is_ok()) {
    return;
  }
  if (Status s = read_proof(fd, epoch_, slice_proof(key_, epoch_, "client", *client_nonce, nonce), what); !s.is_ok()) {
    spdlog::warn("slice server: dropped a connection: {}", s.message());
    return;
  }
  set_timeouts(fd, 0, kSendTimeoutMs);  // a rank may check a local copy for a while between requests
  std::vector<uint8_t> buf;
  for (;;) {
    auto h = recv_header(fd, what);
    if (!h.is_ok()) return;  // closed: the rank is done (or gone)
    if (h->op != DataOp::kSliceRequest || h->epoch != epoch_) {
      spdlog::warn("slice server: dropped a client that sent a {} frame in load {}", data_op_name(h->op), h->epoch);
      return;
    }
    auto payload = recv_payload(fd, *h, 64, what);
    if (!payload.is_ok()) return;
    const uint64_t seq = h->sequence;
    if (h->flags == 1) {
      const std::string& text = manifest_->text;
      if (!send_frame(fd, DataOp::kSliceData, 0, epoch_, seq, text, what).is_ok()) return;
      continue;
    }
    const uint64_t file_bytes = manifest_->manifest.file_bytes;
    const uint64_t offset = payload->size() == 16 ? get_u64(payload->data()) : 0;
    const uint64_t length = payload->size() == 16 ? get_u64(payload->data() + 8) : 0;
    if (h->flags != 0 || payload->size() != 16 || length > kSliceMaxRequestBytes || offset > file_bytes ||
        length > file_bytes - offset) {
      const std::string error = "bad slice request: bytes " + std::to_string(offset) + "+" + std::to_string(length) +
                                " of a " + std::to_string(file_bytes) + "-byte file";
      if (!send_frame(fd, DataOp::kSliceError, 0, epoch_, seq, error, what).is_ok()) return;
      continue;
    }
    buf.resize(std::min<uint64_t>(length, kSliceDataPiece));
    for (uint64_t done = 0; done < length;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(length - done, kSliceDataPiece));
      size_t got = 0;
      while (got < n) {
        const ssize_t r = ::pread(file_fd_, buf.data() + got, n - got, static_cast<off_t>(offset + done + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += static_cast<size_t>(r);
      }
      if (got < n) {
        const std::string error = path_.string() + ": read failed at byte " + std::to_string(offset + done + got) +
                                  "; was the file changed during the load?";
        spdlog::warn("slice server: {}", error);
        (void)send_frame(fd, DataOp::kSliceError, 0, epoch_, seq, error, what);
        return;  // the reply is cut short: the connection cannot be used again
      }
      if (!send_frame(fd, DataOp::kSliceData, 0, epoch_, seq, buf.data(), n, what).is_ok()) return;
      done += n;
      bytes_served_ += n;
    }
  }
}

// ---------------------------------------------------------------------------------
// Client

Result<std::unique_ptr<SliceClient>> SliceClient::connect(const std::string& host, uint16_t port,
                                                          const std::string& key, uint64_t epoch, int timeout_ms) {
  auto c = std::unique_ptr<SliceClient>(new SliceClient());
  c->epoch_ = epoch;
  c->timeout_ms_ = timeout_ms;
  c->what_ = "slice link to " + host + ":" + std::to_string(port);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    return invalid_argument(c->what_ + ": '" + host + "' is not an IPv4 address");
  }
  c->fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  set_timeouts(c->fd_, timeout_ms, timeout_ms);
  if (::connect(c->fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    return unavailable(c->what_ + ": cannot connect: " + std::strerror(errno));
  }
  int one = 1;
  setsockopt(c->fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const std::string nonce = to_hex(random_bytes(32));
  if (Status s = send_frame(c->fd_, DataOp::kSliceHello, 0, epoch, 0, "client|" + nonce, c->what_); !s.is_ok()) {
    return s;
  }
  auto server_nonce = read_hello(c->fd_, epoch, "server", c->what_);
  if (!server_nonce.is_ok()) return server_nonce.status();
  if (Status s = read_proof(c->fd_, epoch, slice_proof(key, epoch, "server", *server_nonce, nonce), c->what_);
      !s.is_ok()) {
    return s;
  }
  if (Status s = send_frame(c->fd_, DataOp::kSliceHello, 1, epoch, 0,
                            slice_proof(key, epoch, "client", nonce, *server_nonce), c->what_);
      !s.is_ok()) {
    return s;
  }
  return c;
}

SliceClient::~SliceClient() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::string> SliceClient::request(uint16_t flags, const std::string& payload, uint8_t* into, uint64_t expected) {
  const uint64_t seq = ++sequence_;
  if (Status s = send_frame(fd_, DataOp::kSliceRequest, flags, epoch_, seq, payload, what_); !s.is_ok()) return s;
  std::string whole;  // the manifest (into == nullptr)
  uint64_t got = 0;
  do {
    auto h = recv_header(fd_, what_);
    if (!h.is_ok()) return h.status();
    if (h->epoch != epoch_ || h->sequence != seq) return invalid_argument(what_ + ": a reply out of step");
    if (h->op == DataOp::kSliceError) {
      auto message = recv_payload(fd_, *h, 4096, what_);
      return unavailable(what_ + ": the coordinator refused: " + (message.is_ok() ? *message : "(no message)"));
    }
    if (h->op != DataOp::kSliceData) return invalid_argument(what_ + ": expected slice data");
    if (!into) return recv_payload(fd_, *h, kMaxDataFramePayload, what_);
    if (h->bytes > expected - got) return invalid_argument(what_ + ": the reply is longer than the request");
    if (Status s = io_all(fd_, into + got, h->bytes, false, what_); !s.is_ok()) return s;
    got += h->bytes;
  } while (got < expected);
  return whole;
}

Result<ManifestDocument> SliceClient::manifest(const std::string& sha256_hex) {
  auto text = request(1, "", nullptr, 0);
  if (!text.is_ok()) return text.status();
  ManifestDocument d;
  d.text = std::move(*text);
  d.sha256 = to_hex(clusterd::sha256(std::span(reinterpret_cast<const uint8_t*>(d.text.data()), d.text.size())));
  if (d.sha256 != sha256_hex) {
    return invalid_argument(what_ + ": the manifest's SHA-256 " + d.sha256.substr(0, 16) +
                            "… is not the one in the load spec (" + sha256_hex.substr(0, 16) + "…)");
  }
  auto json = nlohmann::json::parse(d.text, nullptr, false);
  if (json.is_discarded()) return invalid_argument(what_ + ": the manifest is not JSON");
  auto m = ModelManifest::from_json(json);
  if (!m.is_ok()) return m.status();
  d.manifest = std::move(*m);
  return d;
}

Status SliceClient::read(uint64_t offset, std::span<uint8_t> out) {
  for (uint64_t done = 0; done < out.size();) {
    const uint64_t n = std::min<uint64_t>(out.size() - done, kSliceMaxRequestBytes);
    std::string payload;
    put_u64(payload, offset + done);
    put_u64(payload, n);
    auto r = request(0, payload, out.data() + done, n);
    if (!r.is_ok()) return r.status();
    done += n;
  }
  return Status::ok();
}

}  // namespace clusterd
