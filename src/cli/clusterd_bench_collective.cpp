// clusterd bench collective: all-reduce latency over real TCP between processes on this
// machine, next to a plain TCP round trip of the same size measured the same way.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "clusterd/collective/group.h"
#include "clusterd_commands.h"

namespace clusterd::cli {

namespace {

struct CollectiveBenchOptions {
  std::string ranks = "2,3,4";
  std::string bytes = "4K,8K,32K,256K,1M";
  int iterations = 2000;
};

std::vector<size_t> parse_list(const std::string& text) {
  std::vector<size_t> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    size_t mult = 1;
    if (!item.empty() && (item.back() == 'K' || item.back() == 'k')) mult = 1024, item.pop_back();
    if (!item.empty() && (item.back() == 'M' || item.back() == 'm')) mult = 1 << 20, item.pop_back();
    out.push_back(std::strtoull(item.c_str(), nullptr, 10) * mult);
  }
  return out;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

int iterations_for(size_t bytes, int base) { return std::max(50, static_cast<int>(base * 8192 / std::max<size_t>(bytes, 8192))); }

// Latencies (µs) of `iters` all-reduces of `bytes` on rank 0 of an n-rank group whose
// other ranks run in child processes.
std::vector<double> all_reduce_latencies(int n, size_t bytes, int iters) {
  std::vector<std::unique_ptr<DataListener>> listeners;
  std::vector<GroupMember> members;
  for (int r = 0; r < n; ++r) {
    auto l = DataListener::bind(0);
    if (!l.is_ok()) return {};
    members.push_back({"127.0.0.1", (*l)->port(), ""});
    listeners.push_back(std::move(*l));
  }
  std::vector<pid_t> children;
  for (int r = 1; r < n; ++r) {
    pid_t pid = fork();
    if (pid == 0) {
      GroupOptions o{"bench-key-0123456789abcdef", 1, r, members};
      auto g = Group::form(o, *listeners[r]);
      if (!g.is_ok()) _exit(1);
      std::vector<float> data(bytes / sizeof(float), 1.0f);
      for (int i = 0; i < iters + 20; ++i) {
        if (!(*g)->all_reduce_sum(data).is_ok()) _exit(1);
      }
      _exit(0);
    }
    children.push_back(pid);
  }
  GroupOptions o{"bench-key-0123456789abcdef", 1, 0, members};
  auto g = Group::form(o, *listeners[0]);
  std::vector<double> us;
  if (g.is_ok()) {
    std::vector<float> data(bytes / sizeof(float), 1.0f);
    for (int i = 0; i < iters + 20; ++i) {
      auto t = std::chrono::steady_clock::now();
      if (!(*g)->all_reduce_sum(data).is_ok()) break;
      if (i >= 20) us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t).count());
    }
  }
  for (pid_t pid : children) waitpid(pid, nullptr, 0);
  return us;
}

bool io_all(int fd, char* buf, size_t n, bool write) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = write ? ::send(fd, buf + done, n - done, MSG_NOSIGNAL) : ::recv(fd, buf + done, n - done, 0);
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

// Latencies (µs) of a TCP round trip: `bytes` there, `bytes` back, TCP_NODELAY.
std::vector<double> tcp_round_trips(size_t bytes, int iters) {
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(lfd, 1);
  socklen_t len = sizeof a;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  int one = 1;
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::accept(lfd, nullptr, nullptr);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::vector<char> buf(bytes);
    for (int i = 0; i < iters + 20; ++i) {
      if (!io_all(fd, buf.data(), bytes, false) || !io_all(fd, buf.data(), bytes, true)) break;
    }
    _exit(0);
  }
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::vector<char> buf(bytes, 1);
  std::vector<double> us;
  for (int i = 0; i < iters + 20; ++i) {
    auto t = std::chrono::steady_clock::now();
    if (!io_all(fd, buf.data(), bytes, true) || !io_all(fd, buf.data(), bytes, false)) break;
    if (i >= 20) us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t).count());
  }
  ::close(fd);
  ::close(lfd);
  waitpid(pid, nullptr, 0);
  return us;
}

std::string size_text(size_t b) {
  return b >= (1 << 20) ? std::to_string(b >> 20) + "M" : b >= 1024 ? std::to_string(b >> 10) + "K" : std::to_string(b);
}

int bench_collective(const CollectiveBenchOptions& o) {
  std::printf("%-6s %-6s %12s %12s %14s %12s\n", "ranks", "bytes", "p50 µs", "p99 µs", "TCP RTT p50", "p50 / RTT");
  for (size_t bytes : parse_list(o.bytes)) {
    const int iters = iterations_for(bytes, o.iterations);
    auto rtt = tcp_round_trips(bytes, iters);
    if (rtt.empty()) return 1;
    const double rtt50 = percentile(rtt, 0.5);
    for (size_t n : parse_list(o.ranks)) {
      auto us = all_reduce_latencies(static_cast<int>(n), bytes, iters);
      if (us.empty()) {
        std::fprintf(stderr, "clusterd: the %zu-rank group failed\n", n);
        return 1;
      }
      std::printf("%-6zu %-6s %12.1f %12.1f %14.1f %11.2fx\n", n, size_text(bytes).c_str(), percentile(us, 0.5),
                  percentile(us, 0.99), rtt50, percentile(us, 0.5) / rtt50);
    }
  }
  std::printf("(all-reduce of f32 sums over loopback TCP between processes; RTT: the same bytes there and back)\n");
  return 0;
}

}  // namespace

void add_bench_collective_command(CLI::App& bench, Runner& run) {
  auto o = std::make_shared<CollectiveBenchOptions>();
  auto* cmd = bench.add_subcommand("collective", "all-reduce latency between processes on this machine");
  cmd->add_option("--ranks", o->ranks, "comma-separated group sizes")->capture_default_str();
  cmd->add_option("--bytes", o->bytes, "comma-separated sizes (K, M suffixes)")->capture_default_str();
  cmd->add_option("--iterations", o->iterations, "operations per measurement at 8 KiB")->capture_default_str();
  cmd->callback([&run, o] { run = [o] { return bench_collective(*o); }; });
}

}  // namespace clusterd::cli
