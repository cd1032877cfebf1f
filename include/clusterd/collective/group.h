// A group of ranks joined by authenticated TCP data links, one per rank pair, with the
// collectives tensor parallelism needs: all-reduce (sum, f32), all-gather, broadcast.
// Results are bit-identical on every rank: each element is summed in rank order
// exactly once, by the same rule everywhere. Every operation has a deadline; a dead,
// stopped or partitioned peer turns into an error on every rank that waits for it, and
// the group is then broken (every later call fails at once). Frames carry the group's
// epoch; frames of an older epoch are dropped.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "clusterd/collective/data_frame.h"
#include "clusterd/common/status.h"

namespace clusterd {

struct GroupMember {
  std::string host;   // IPv4 address
  uint16_t port = 0;  // its data port
  std::string name;   // for error messages ("node b")
};

struct GroupOptions {
  std::string key;     // the cluster key: data links prove they hold it, like control links
  uint64_t epoch = 1;  // a new group (a new load) gets a new epoch
  int rank = 0;
  std::vector<GroupMember> members;  // index = rank
  int deadline_ms = 5000;            // per operation
  int connect_timeout_ms = 10000;    // to form the group
  // Polled about every 100 ms while the group forms: a non-OK status ends form() with
  // that status at once (another rank could not load its part, the load was cancelled).
  std::function<Status()> check = nullptr;
  // All-reduce sends whole buffers to every peer up to this size, and uses
  // reduce-scatter + all-gather above it.
  size_t mesh_max_bytes = 64 * 1024;
};

// A listening socket for a rank's data port, bound before the group forms so peers can
// connect as soon as they are told the plan.
class DataListener {
 public:
  // Binds 0.0.0.0:`port` (0: any free port).
  static Result<std::unique_ptr<DataListener>> bind(uint16_t port);
  ~DataListener();
  uint16_t port() const { return port_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

struct CollectiveStats {
  uint64_t operations = 0;
  uint64_t bytes_sent = 0;
  uint64_t stale_frames_dropped = 0;
  double seconds = 0;  // spent in completed operations, waiting for peers included
};

class Group {
 public:
  // Connects to lower ranks and accepts higher ranks on `listener`, authenticating each
  // link. Errors name the rank and its address.
  static Result<std::unique_ptr<Group>> form(const GroupOptions& options, DataListener& listener);
  ~Group();

  int rank() const { return rank_; }
  int size() const { return static_cast<int>(members_.size()); }
  uint64_t epoch() const { return epoch_; }
  bool broken() const { return !broken_reason_.empty(); }
  const CollectiveStats& stats() const { return stats_; }

  // data[i] = sum over ranks r = 0..size-1 of rank r's data[i], on every rank.
  Status all_reduce_sum(std::span<float> data);
  // out = concatenation of every rank's `mine` in rank order (all the same length).
  Status all_gather(std::span<const float> mine, std::span<float> out);
  // Every rank's `data` becomes root's.
  Status broadcast(std::span<float> data, int root);

  // Closes every link (peers see their next operation fail).
  void close();

 private:
  struct Link {  // one TCP connection to a peer; closed with the Link
    int fd = -1;
    ~Link();
  };
  struct PeerIo {
    int peer = -1;
    const uint8_t* send = nullptr;
    size_t send_bytes = 0;
    uint8_t* recv = nullptr;
    size_t recv_bytes = 0;
    bool expect_recv = false;
  };
  Group() = default;
  Status exchange(DataOp op, std::vector<PeerIo>& io);
  Status fail(Status status);
  std::string who(int rank) const;

  int rank_ = 0;
  uint64_t epoch_ = 0;
  uint64_t sequence_ = 0;
  int deadline_ms_ = 5000;
  size_t mesh_max_bytes_ = 0;
  std::vector<GroupMember> members_;
  std::vector<std::unique_ptr<Link>> links_;  // index = peer rank; null for self
  std::string broken_reason_;
  CollectiveStats stats_;
  std::vector<float> scratch_;
};

}  // namespace clusterd
