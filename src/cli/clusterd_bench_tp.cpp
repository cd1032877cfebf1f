// clusterd bench tp: decode speed of a model split over processes on this machine with
// tensor parallelism and with pipeline parallelism (TCP groups on loopback), next to
// one process with the same total number of threads, measured in the same run.
#include <sys/wait.h>
#include <unistd.h>

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
Result<double> split_speed(const Model& model, const TpBenchOptions& o, PlanStrategy strategy, int ctx) {
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
  const uint64_t epoch = strategy == PlanStrategy::kTensor ? 1 : 2;
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
    auto speed = decode_speed(runner, o, p.n_vocab);
    (void)runner.finish();
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

int bench_tp(const TpBenchOptions& o) {
  auto model = Model::open(o.model);
  if (!model.is_ok()) {
    std::fprintf(stderr, "clusterd: %s\n", model.status().message().c_str());
    return 1;
  }
  const ModelParams& p = (*model)->params;
  const int ctx = o.prompt + o.tokens + 8;
  double alone = 0;
  {
    auto weights = load_weights(*(*model)->file, p, Shard::whole(p));
    LocalCollective local;
    Transformer tf(*weights, local, TransformerOptions{ctx, 1, TensorType::kF16, o.ranks * o.threads_per_rank});
    LocalStepRunner runner(tf);
    auto speed = decode_speed(runner, o, p.n_vocab);
    if (!speed.is_ok()) return 1;
    alone = *speed;
  }
  std::printf("%-34s %10s\n", "decode (tg)", "tokens/s");
  std::printf("%-34s %10.1f\n", ("1 process x " + std::to_string(o.ranks * o.threads_per_rank) + " threads").c_str(),
              alone);
  for (PlanStrategy strategy : {PlanStrategy::kTensor, PlanStrategy::kPipeline}) {
    auto split = split_speed(**model, o, strategy, ctx);
    const std::string what = std::string(strategy == PlanStrategy::kTensor ? "TP " : "PP ") + std::to_string(o.ranks) +
                             " processes x " + std::to_string(o.threads_per_rank) + " thread(s)";
    if (!split.is_ok()) {
      std::printf("%-34s %10s   (%s)\n", what.c_str(), "-", split.status().message().c_str());
      continue;
    }
    std::printf("%-34s %10.1f   (%.2fx)\n", what.c_str(), *split, *split / alone);
    std::fflush(stdout);
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
  cmd->callback([&run, o] { run = [o] { return bench_tp(*o); }; });
}

}  // namespace clusterd::cli
