// A model instance as one node sees it: this node's rank of a tensor-parallel group
// running one model. Rank 0 (the coordinator) answers generation requests; the other
// ranks follow its steps on a thread of their own until the instance is unloaded or the
// group fails.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "clusterd/collective/group.h"
#include "clusterd/engine/generate.h"
#include "clusterd/engine/model.h"
#include "clusterd/serving/group_runner.h"
#include "clusterd/serving/scheduler.h"

namespace clusterd {

struct InstanceSpec {
  std::string name;
  std::string model_path;
  uint64_t epoch = 0;
  int rank = 0;
  std::vector<GroupMember> members;  // index = rank
  Shard shard;                       // this rank's part
  int ctx = 4096;
  int max_sequences = 4;
  int threads = 0;  // 0: all cores
  int deadline_ms = 5000;
  nlohmann::json plan;  // the whole plan, for reports
  // The model's content, for ranks without a copy (empty on one-node loads): the
  // file's SHA-256, its manifest's SHA-256, and the coordinator's slice server port
  // (on members[0].host). See node/slices.h.
  std::string model_sha256;
  std::string manifest_sha256;
  uint16_t slice_port = 0;

  nlohmann::json to_json() const;
  static Result<InstanceSpec> from_json(const nlohmann::json& doc);
};

// A Shard as JSON and back (the plan's per-rank fields).
nlohmann::json shard_to_json(const Shard& shard);
Result<Shard> shard_from_json(const nlohmann::json& doc);

struct InstanceLoadOptions {
  // Opened by the caller (a checked local copy, streamed slices); null: open spec.model_path.
  std::unique_ptr<Model> model;
  // Polled while the group forms; a non-OK status fails the load with it at once.
  std::function<Status()> check = nullptr;
  int connect_timeout_ms = 30000;  // for the whole group to connect
  int threads = 0;                 // this node's engine threads; 0: the spec's, else every core
};

class ModelInstance {
 public:
  // Opens the model (unless `options` brings it), builds this rank's weights, and joins
  // the group on `listener` (blocking until every rank is connected, the check fails,
  // or the connect timeout passes). On rank > 0 it then follows rank 0 on a thread of
  // its own.
  static Result<std::unique_ptr<ModelInstance>> load(const InstanceSpec& spec, const std::string& cluster_key,
                                                     DataListener& listener, InstanceLoadOptions options = {});
  ~ModelInstance();

  const InstanceSpec& spec() const { return spec_; }
  const Model& model() const { return *model_; }
  // "ready", "failed" (the group broke; see error()), "unloaded".
  std::string state() const;
  std::string error() const;

  // Rank 0: starts continuous batching with `options` (max_sequences is capped at the
  // spec's); later calls change nothing. generate() starts it with defaults if needed.
  void start_scheduler(SchedulerOptions options);
  // Rank 0: a request queued in the running batch; wait() for its reply.
  struct PendingGeneration {
    std::shared_ptr<Scheduler> scheduler;
    std::shared_ptr<Scheduler::Ticket> ticket;
    Result<GenerateResult> wait(const std::function<bool(std::string_view)>& on_text = {}) const {
      return scheduler->wait(ticket, on_text);
    }
  };
  // Rank 0: queues a request (errors: see Scheduler::submit).
  Result<PendingGeneration> submit(const GenerateRequest& request);
  // Rank 0: generates one request in the running batch (see Scheduler::generate).
  Result<GenerateResult> generate(const GenerateRequest& request,
                                  const std::function<bool(std::string_view)>& on_text = {});
  // Rank 0: fails queued and running requests (unavailable) and starts no more; the
  // group stays up until unload(). For shutdown, before the HTTP server waits for its
  // requests.
  void stop_scheduler();
  // Rank 0: what the scheduler has done (empty before the first request).
  ServingStats serving_stats() const;
  // Rank 0: tells the followers to stop and closes the group. Others: waits for that.
  void unload();

 private:
  ModelInstance() = default;
  void set_failed(const std::string& error);

  InstanceSpec spec_;
  std::unique_ptr<Model> model_;
  ModelWeights weights_;
  std::unique_ptr<Group> group_;
  std::unique_ptr<GroupRunner> runner_;
  std::thread follower_;
  mutable std::mutex scheduler_mu_;
  std::shared_ptr<Scheduler> scheduler_;  // rank 0; the only user of runner_ there
  bool unloading_ = false;                // set by unload(): no scheduler starts again (scheduler_mu_)
  mutable std::mutex state_mu_;
  std::string state_ = "ready";
  std::string error_;
};

}  // namespace clusterd
