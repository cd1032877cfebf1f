// The collectives over a formed Group: one exchange primitive (every rank sends and
// receives with all its peers at once, non-blocking, under one deadline) and the
// all-reduce, all-gather and broadcast built on it.
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "clusterd/collective/group.h"

namespace clusterd {

namespace {

using Clock = std::chrono::steady_clock;

struct Progress {
  uint8_t header_out[kDataFrameHeaderBytes];
  size_t sent = 0;  // of header + payload
  uint8_t header_in[kDataFrameHeaderBytes];
  size_t header_got = 0;
  size_t payload_got = 0;
  size_t discard = 0;  // bytes of a stale frame still to skip
  bool received = false;
};

}  // namespace

Status Group::exchange(DataOp op, std::vector<PeerIo>& io) {
  if (broken())
    return unavailable("collective " + std::string(data_op_name(op)) + ": the group is broken (" + broken_reason_ +
                       ")");
  const uint64_t seq = ++sequence_;
  const auto started = Clock::now();
  const auto deadline = started + std::chrono::milliseconds(deadline_ms_);
  const auto spin_until = Clock::now() + std::chrono::microseconds(50);
  std::vector<Progress> st(io.size());
  for (size_t k = 0; k < io.size(); ++k) {
    encode_data_frame_header({op, 0, 0, static_cast<uint32_t>(io[k].send_bytes), epoch_, seq}, st[k].header_out);
    if (!io[k].send) st[k].sent = SIZE_MAX;  // nothing to send to this peer
    if (!io[k].expect_recv) st[k].received = true;
  }
  auto name = [&](size_t k) { return who(io[k].peer); };
  auto what = [&] { return "collective " + std::string(data_op_name(op)) + " #" + std::to_string(seq) + ": "; };

  std::vector<pollfd> fds(io.size());
  for (;;) {
    bool done = true;
    for (size_t k = 0; k < io.size(); ++k) {
      bool sending = st[k].sent != SIZE_MAX && st[k].sent < kDataFrameHeaderBytes + io[k].send_bytes;
      fds[k].fd = links_[io[k].peer] ? links_[io[k].peer]->fd : -1;
      fds[k].events = static_cast<short>((sending ? POLLOUT : 0) | (st[k].received ? 0 : POLLIN));
      fds[k].revents = 0;
      if (sending || !st[k].received) done = false;
    }
    if (done) break;
    const bool spinning = Clock::now() < spin_until;
    int ready = ::poll(
        fds.data(), fds.size(),
        spinning
            ? 0
            : std::max(0, static_cast<int>(
                              std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count())));
    if (ready < 0 && errno != EINTR) return fail(unavailable(what() + std::strerror(errno)));
    if (ready <= 0) {
      if (spinning) continue;
      std::string waiting;
      for (size_t k = 0; k < io.size(); ++k) {
        if (!st[k].received || (st[k].sent != SIZE_MAX && st[k].sent < kDataFrameHeaderBytes + io[k].send_bytes)) {
          waiting += (waiting.empty() ? "" : ", ") + name(k);
        }
      }
      return fail(deadline_exceeded(what() + "no progress with " + waiting + " within " + std::to_string(deadline_ms_) +
                                    " ms"));
    }
    for (size_t k = 0; k < io.size(); ++k) {
      const int fd = fds[k].fd;
      if (fds[k].revents & (POLLERR | POLLNVAL))
        return fail(unavailable(what() + "the link to " + name(k) + " failed"));
      if (fds[k].revents & POLLOUT) {
        iovec v[2];
        int n = 0;
        if (st[k].sent < kDataFrameHeaderBytes)
          v[n++] = {st[k].header_out + st[k].sent, kDataFrameHeaderBytes - st[k].sent};
        size_t payload_sent = st[k].sent > kDataFrameHeaderBytes ? st[k].sent - kDataFrameHeaderBytes : 0;
        if (io[k].send_bytes > payload_sent) {
          v[n++] = {const_cast<uint8_t*>(io[k].send) + payload_sent, io[k].send_bytes - payload_sent};
        }
        msghdr msg{};
        msg.msg_iov = v;
        msg.msg_iovlen = n;
        ssize_t w = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
          return fail(unavailable(what() + "sending to " + name(k) + ": " + std::strerror(errno)));
        }
        if (w > 0) {
          st[k].sent += static_cast<size_t>(w);
          stats_.bytes_sent += static_cast<uint64_t>(w);
        }
      }
      if (fds[k].revents & (POLLIN | POLLHUP)) {
        Progress& p = st[k];
        uint8_t sink[4096];
        ssize_t r;
        if (p.discard > 0) {
          r = ::recv(fd, sink, std::min(p.discard, sizeof sink), 0);
          if (r > 0) p.discard -= static_cast<size_t>(r);
        } else if (p.header_got < kDataFrameHeaderBytes) {
          r = ::recv(fd, p.header_in + p.header_got, kDataFrameHeaderBytes - p.header_got, 0);
          if (r > 0 && (p.header_got += static_cast<size_t>(r)) == kDataFrameHeaderBytes) {
            auto h = decode_data_frame_header(
                std::span<const uint8_t, kDataFrameHeaderBytes>(p.header_in, kDataFrameHeaderBytes));
            if (!h.is_ok())
              return fail(invalid_argument(what() + "bad frame from " + name(k) + ": " + h.status().message()));
            if (h->epoch < epoch_) {  // left over from an earlier group: skip it
              stats_.stale_frames_dropped++;
              p.discard = h->bytes;
              p.header_got = 0;
            } else if (h->epoch != epoch_ || h->op != op || h->sequence != seq) {
              return fail(invalid_argument(what() + name(k) + " is out of step (sent " + data_op_name(h->op) + " #" +
                                           std::to_string(h->sequence) + " of epoch " + std::to_string(h->epoch) +
                                           ")"));
            } else if (h->bytes != io[k].recv_bytes) {
              return fail(invalid_argument(what() + name(k) + " sent " + std::to_string(h->bytes) +
                                           " bytes, expected " + std::to_string(io[k].recv_bytes)));
            } else if (h->bytes == 0) {
              p.received = true;
            }
          }
        } else {
          r = ::recv(fd, io[k].recv + p.payload_got, io[k].recv_bytes - p.payload_got, 0);
          if (r > 0 && (p.payload_got += static_cast<size_t>(r)) == io[k].recv_bytes) p.received = true;
        }
        if (r == 0) return fail(unavailable(what() + name(k) + " closed the link (did it stop?)"));
        if (r < 0 && errno != EAGAIN && errno != EINTR) {
          return fail(unavailable(what() + "receiving from " + name(k) + ": " + std::strerror(errno)));
        }
      }
    }
  }
  stats_.operations++;
  stats_.seconds += std::chrono::duration<double>(Clock::now() - started).count();
  return Status::ok();
}

Status Group::all_reduce_sum(std::span<float> data) {
  const int n_ranks = size();
  if (n_ranks == 1) return Status::ok();
  const size_t n = data.size();
  const size_t bytes = n * sizeof(float);
  std::vector<PeerIo> io;
  if (bytes <= mesh_max_bytes_) {
    // Mesh: everyone sends its whole buffer to everyone, and everyone adds the same
    // buffers in the same (rank) order.
    scratch_.resize(n * n_ranks);
    std::memcpy(&scratch_[rank_ * n], data.data(), bytes);
    for (int p = 0; p < n_ranks; ++p) {
      if (p == rank_) continue;
      io.push_back({p, reinterpret_cast<const uint8_t*>(data.data()), bytes,
                    reinterpret_cast<uint8_t*>(&scratch_[p * n]), bytes, true});
    }
    if (Status s = exchange(DataOp::kAllReduce, io); !s.is_ok()) return s;
    for (size_t i = 0; i < n; ++i) {
      float sum = 0;
      for (int r = 0; r < n_ranks; ++r) sum += scratch_[r * n + i];
      data[i] = sum;
    }
    return Status::ok();
  }
  // Reduce-scatter: rank r owns chunk r and sums it in rank order; then all-gather.
  auto first = [&](int r) { return n * r / n_ranks; };
  const size_t mine = first(rank_ + 1) - first(rank_);
  scratch_.resize(mine * n_ranks);
  for (int p = 0; p < n_ranks; ++p) {
    if (p == rank_) continue;
    io.push_back({p, reinterpret_cast<const uint8_t*>(&data[first(p)]), (first(p + 1) - first(p)) * sizeof(float),
                  reinterpret_cast<uint8_t*>(&scratch_[p * mine]), mine * sizeof(float), true});
  }
  if (Status s = exchange(DataOp::kReduceScatter, io); !s.is_ok()) return s;
  std::memcpy(&scratch_[rank_ * mine], &data[first(rank_)], mine * sizeof(float));
  for (size_t i = 0; i < mine; ++i) {
    float sum = 0;
    for (int r = 0; r < n_ranks; ++r) sum += scratch_[r * mine + i];
    data[first(rank_) + i] = sum;
  }
  io.clear();
  for (int p = 0; p < n_ranks; ++p) {
    if (p == rank_) continue;
    io.push_back({p, reinterpret_cast<const uint8_t*>(&data[first(rank_)]), mine * sizeof(float),
                  reinterpret_cast<uint8_t*>(&data[first(p)]), (first(p + 1) - first(p)) * sizeof(float), true});
  }
  return exchange(DataOp::kAllGather, io);
}

Status Group::all_gather(std::span<const float> mine, std::span<float> out) {
  const size_t m = mine.size();
  if (out.size() != m * size()) return invalid_argument("all_gather: the output must hold size() * input elements");
  std::memcpy(&out[rank_ * m], mine.data(), m * sizeof(float));
  std::vector<PeerIo> io;
  for (int p = 0; p < size(); ++p) {
    if (p == rank_) continue;
    io.push_back({p, reinterpret_cast<const uint8_t*>(mine.data()), m * sizeof(float),
                  reinterpret_cast<uint8_t*>(&out[p * m]), m * sizeof(float), true});
  }
  return io.empty() ? Status::ok() : exchange(DataOp::kAllGather, io);
}

Status Group::broadcast(std::span<float> data, int root) {
  if (root < 0 || root >= size()) return invalid_argument("broadcast: root out of range");
  std::vector<PeerIo> io;
  const size_t bytes = data.size() * sizeof(float);
  for (int p = 0; p < size(); ++p) {
    if (p == rank_) continue;
    if (rank_ == root) {
      io.push_back({p, reinterpret_cast<const uint8_t*>(data.data()), bytes, nullptr, 0, false});
    } else if (p == root) {
      io.push_back({p, nullptr, 0, reinterpret_cast<uint8_t*>(data.data()), bytes, true});
    }
  }
  return io.empty() ? Status::ok() : exchange(DataOp::kBroadcast, io);
}

}  // namespace clusterd
