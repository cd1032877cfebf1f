// clusterd bench tp: decode speed of a model split over processes on this machine with
// tensor parallelism and with pipeline parallelism (TCP groups on loopback), next to
// one process with the same total number of threads, measured in the same run.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "clusterd/engine/model.h"
#include "clusterd/placement/shard_plan.h"
#include "clusterd/serving/group_runner.h"
#include "clusterd_commands.h"

namespace clusterd::cli {

namespace {

struct TpBenchOptions {
  std::string model;
  int ranks = 2;
  int threads_per_rank = 1;
  int tokens = 64;
  int prompt = 16;
  int repeat = 3;  // rounds of (one process, TP, PP), interleaved; medians reported
};

// Prefill `prompt` tokens, then time `tokens` single-token steps; tokens per second.
Result<double> decode_speed(StepRunner& runner, const TpBenchOptions& o, int n_vocab) {
  std::vector<BatchToken> batch;
  for (int i = 0; i < o.prompt; ++i) batch.push_back({(i * 7919 + 13) % n_vocab, i, 0, i == o.prompt - 1});
  if (auto r = runner.step(batch, 64); !r.is_ok()) return r.status();
  auto t = std::chrono::steady_clock::now();
  for (int i = 0; i < o.tokens; ++i) {
    std::vector<BatchToken> step = {{(i * 31 + 7) % n_vocab, o.prompt + i, 0, true}};
    if (auto r = runner.step(step, 64); !r.is_ok()) return r.status();
  }
  runner.release(0);
  return o.tokens / std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Decode speed of the model split over o.ranks processes (rank 0 here, the others
// forked) with `strategy`.
Result<double> split_speed(const Model& model, const TpBenchOptions& o, PlanStrategy strategy, int ctx,
                           double& collective_ms, double& collective_ops) {
  const ModelParams& p = model.params;
  std::vector<PlanNode> nodes;
  for (int r = 0; r < o.ranks; ++r) nodes.push_back({"p" + std::to_string(r), "p" + std::to_string(r), 1ull << 40});
  auto footprint = footprint_of(*model.file, p);
  if (!footprint.is_ok()) return footprint.status();
  auto plan = plan_model(*footprint, nodes, PlanRequest{strategy, true, ctx, 1});
  if (!plan.is_ok()) return plan.status();
  std::vector<std::unique_ptr<DataListener>> listeners;
  std::vector<GroupMember> members;
  for (int r = 0; r < o.ranks; ++r) {
    auto l = DataListener::bind(0);
    if (!l.is_ok()) return l.status();
    members.push_back({"127.0.0.1", (*l)->port(), "p" + std::to_string(r)});
    listeners.push_back(std::move(*l));
  }
  static uint64_t epoch = 0;
  epoch++;  // a new group each time
  auto run_rank = [&](int r) -> Result<double> {
    auto weights = load_weights(*model.file, p, plan->ranks[r].shard);
    if (!weights.is_ok()) return weights.status();
    auto group = Group::form(GroupOptions{"bench-tp-key-0123456789abcdef", epoch, r, members}, *listeners[r]);
    if (!group.is_ok()) return group.status();
    GroupRunner runner(**group, *weights, TransformerOptions{ctx, 1, TensorType::kF16, o.threads_per_rank});
    if (r != 0) {
      if (Status s = runner.follow(); !s.is_ok()) return s;
      return 0.0;
    }
    const CollectiveStats before = (*group)->stats();
    auto speed = decode_speed(runner, o, p.n_vocab);
    const CollectiveStats& after = (*group)->stats();
    (void)runner.finish();
    if (speed.is_ok()) {
      // Rank 0's share of decode time inside group operations (its wait for the
      // slowest peer included), per token: where a split loses against one process.
      const double per_token_ms = (after.seconds - before.seconds) * 1000.0 / (o.tokens + 1);
      const double ops = static_cast<double>(after.operations - before.operations) / (o.tokens + 1);
      collective_ms = per_token_ms;
      collective_ops = ops;
    }
    return speed;
  };
  std::vector<pid_t> children;
  for (int r = 1; r < o.ranks; ++r) {
    pid_t pid = fork();
    if (pid == 0) _exit(run_rank(r).is_ok() ? 0 : 1);
    children.push_back(pid);
  }
  auto speed = run_rank(0);
  for (pid_t pid : children) waitpid(pid, nullptr, 0);
  return speed;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One process with all the threads, then TP, then PP, `repeat` times in turn, so
// that the machine's drift affects every configuration alike; medians are printed.
int bench_tp(const TpBenchOptions& o) {
  auto model = Model::open(o.model);
  if (!model.is_ok()) {
    std::fprintf(stderr, "clusterd: %s\n", model.status().message().c_str());
    return 1;
  }
  const ModelParams& p = (*model)->params;
  const int ctx = o.prompt + o.tokens + 8;
  const PlanStrategy strategies[] = {PlanStrategy::kTensor, PlanStrategy::kPipeline};
  std::vector<double> alone, split[2], wait_ms[2], ops[2];
  std::string errors[2];
  for (int round = 0; round < o.repeat; ++round) {
    {
      auto weights = load_weights(*(*model)->file, p, Shard::whole(p));
      LocalCollective local;
      Transformer tf(*weights, local, TransformerOptions{ctx, 1, TensorType::kF16, o.ranks * o.threads_per_rank});
      LocalStepRunner runner(tf);
      auto speed = decode_speed(runner, o, p.n_vocab);
      if (!speed.is_ok()) return 1;
      alone.push_back(*speed);
    }
    for (int i = 0; i < 2; ++i) {
      double collective_ms = 0, collective_ops = 0;
      auto speed = split_speed(**model, o, strategies[i], ctx, collective_ms, collective_ops);
      if (!speed.is_ok()) {
        errors[i] = speed.status().message();
        continue;
      }
      split[i].push_back(*speed);
      wait_ms[i].push_back(collective_ms);
      ops[i].push_back(collective_ops);
    }
  }
  std::printf("decode (tg), median of %d interleaved rounds     tokens/s\n", o.repeat);
  std::printf("%-34s %10.1f\n", ("1 process x " + std::to_string(o.ranks * o.threads_per_rank) + " threads").c_str(),
              median(alone));
  for (int i = 0; i < 2; ++i) {
    const std::string what = std::string(i == 0 ? "TP " : "PP ") + std::to_string(o.ranks) + " processes x " +
                             std::to_string(o.threads_per_rank) + " thread(s)";
    if (split[i].empty()) {
      std::printf("%-34s %10s   (%s)\n", what.c_str(), "-", errors[i].c_str());
      continue;
    }
    const double speed = median(split[i]);
    std::printf("%-34s %10.1f   (%.2fx; rank 0 in %.0f group operations per token: %.2f ms of %.2f)\n", what.c_str(),
                speed, speed / median(alone), median(ops[i]), median(wait_ms[i]), 1000.0 / speed);
  }
  return 0;
}

}  // namespace

void add_bench_tp_command(CLI::App& bench, Runner& run) {
  auto o = std::make_shared<TpBenchOptions>();
  auto* cmd =
      bench.add_subcommand("tp", "decode speed split over processes on this machine (tensor and pipeline parallel)");
  cmd->add_option("--model,-m", o->model, "GGUF model file")->required();
  cmd->add_option("--ranks", o->ranks, "processes")->capture_default_str();
  cmd->add_option("--threads-per-rank", o->threads_per_rank)->capture_default_str();
  cmd->add_option("-n,--tokens", o->tokens, "decode steps")->capture_default_str();
  cmd->add_option("--repeat", o->repeat, "interleaved rounds (medians are reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  cmd->callback([&run, o] { run = [o] { return bench_tp(*o); }; });
}

}  // namespace clusterd::cli
