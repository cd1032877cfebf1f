// clusterctl bench: a serving load test over the HTTP API, as users' clients would load
// it. For each concurrency level, that many clients stream completions back to back;
// the table gives the aggregate generated tokens/s, each stream's own tokens/s, and the
// time to first token (p50/p99) measured at the client.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <sstream>
#include <thread>

#include "clusterctl_client.h"

namespace clusterctl {

namespace {

using Clock = std::chrono::steady_clock;

struct BenchOptions {
  std::string model;
  std::string concurrency = "1,4,16,32";
  int rounds = 2;  // requests per client at each level
  int max_tokens = 64;
  int prompt_words = 32;
  double temperature = 0;
};

struct Sample {
  double ttft_ms = 0;
  double stream_tokens_per_s = 0;
  int tokens = 0;
  bool ok = false;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::clamp(p * (v.size() - 1) + 0.5, 0.0, static_cast<double>(v.size() - 1)));
  return v[i];
}

// A different prompt for every request, so no two share a cache or a reply.
std::string prompt_for(int request, int words) {
  static const char* kWords[] = {"the",  "quiet", "river", "carried", "small", "boats", "past",   "old",
                                 "mill", "while", "birds", "sang",    "above", "green", "fields", "today"};
  std::string out = "Request " + std::to_string(request) + ":";
  for (int i = 0; i < words; ++i) out += std::string(" ") + kWords[(request * 7 + i * 3) % 16];
  return out;
}

Sample one_request(const GlobalOptions& options, const BenchOptions& o, int request) {
  Sample s;
  auto client = ApiClient::open(options);
  if (!client.is_ok()) return s;
  json body = {{"model", o.model},
               {"prompt", prompt_for(request, o.prompt_words)},
               {"max_tokens", o.max_tokens},
               {"temperature", o.temperature},
               {"seed", request},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  const auto start = Clock::now();
  Clock::time_point first{};
  bool seen = false;
  json usage;
  clusterd::Status status = client->post_stream("/v1/completions", body, [&](const json& chunk) {
    if (!seen && chunk.contains("choices") && !chunk["choices"].empty()) {
      first = Clock::now();
      seen = true;
    }
    if (chunk.contains("usage") && chunk["usage"].is_object()) usage = chunk["usage"];
  });
  const auto end = Clock::now();
  if (!status.is_ok() || !seen || !usage.is_object()) {
    std::fprintf(stderr, "request %d: %s\n", request, status.is_ok() ? "no tokens" : status.message().c_str());
    return s;
  }
  s.ok = true;
  s.tokens = usage.value("completion_tokens", 0);
  s.ttft_ms = std::chrono::duration<double, std::milli>(first - start).count();
  const double stream_s = std::chrono::duration<double>(end - first).count();
  s.stream_tokens_per_s = stream_s > 0 && s.tokens > 1 ? (s.tokens - 1) / stream_s : 0;
  return s;
}

int bench(const GlobalOptions& options, const BenchOptions& o) {
  std::vector<int> levels;
  std::stringstream list(o.concurrency);
  for (std::string item; std::getline(list, item, ',');) {
    int c = std::atoi(item.c_str());
    if (c < 1 || c > 1024) {
      std::fprintf(stderr, "clusterctl: --concurrency takes numbers from 1 to 1024, got '%s'\n", item.c_str());
      return 1;
    }
    levels.push_back(c);
  }
  std::printf("model %s, %d-word prompts, %d tokens per reply, temperature %g, %d requests per client\n",
              o.model.c_str(), o.prompt_words, o.max_tokens, o.temperature, o.rounds);
  std::printf("%-6s %8s %8s %8s %12s %12s %10s %10s %7s\n", "CONC", "REQUESTS", "TOKENS", "WALL_S", "AGG_TOK/S",
              "STREAM_TOK/S", "TTFT_P50", "TTFT_P99", "ERRORS");
  int next_request = 0;
  for (int c : levels) {
    std::mutex mu;
    std::vector<Sample> samples;
    const int first_request = next_request;
    next_request += c * o.rounds;
    const auto start = Clock::now();
    std::vector<std::thread> clients;
    for (int t = 0; t < c; ++t) {
      clients.emplace_back([&, t] {
        for (int r = 0; r < o.rounds; ++r) {
          Sample s = one_request(options, o, first_request + t * o.rounds + r);
          std::lock_guard lock(mu);
          samples.push_back(s);
        }
      });
    }
    for (auto& t : clients) t.join();
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    std::vector<double> ttft, per_stream;
    int tokens = 0, errors = 0;
    for (const auto& s : samples) {
      if (!s.ok) {
        errors++;
        continue;
      }
      tokens += s.tokens;
      ttft.push_back(s.ttft_ms);
      per_stream.push_back(s.stream_tokens_per_s);
    }
    double mean_stream = 0;
    for (double v : per_stream) mean_stream += v / per_stream.size();
    std::printf("%-6d %8zu %8d %8.1f %12.1f %12.1f %8.0fms %8.0fms %7d\n", c, samples.size(), tokens, wall,
                tokens / wall, mean_stream, percentile(ttft, 0.5), percentile(ttft, 0.99), errors);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, const GlobalOptions& options, std::function<int()>& chosen) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd =
      app.add_subcommand("bench", "load-test a served model: throughput and time to first token by concurrency");
  cmd->add_option("model", o->model, "instance name")->required();
  cmd->add_option("--concurrency,-c", o->concurrency, "comma-separated client counts")->capture_default_str();
  cmd->add_option("--rounds", o->rounds, "requests each client sends per level")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--max-tokens,-n", o->max_tokens, "tokens per reply")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--prompt-words", o->prompt_words, "words per prompt")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  cmd->add_option("--temperature", o->temperature, "0 is greedy")->capture_default_str();
  cmd->callback([&options, &chosen, o] { chosen = [&options, o] { return bench(options, *o); }; });
}

}  // namespace clusterctl
