// A model instance as one node sees it: this node's rank of a tensor-parallel group
// running one model. Rank 0 (the coordinator) answers generation requests; the other
// ranks follow its steps on a thread of their own until the instance is unloaded or the
// group fails.
#pragma once

#include <atomic>
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

  nlohmann::json to_json() const;
  static Result<InstanceSpec> from_json(const nlohmann::json& doc);
};

// A Shard as JSON and back (the plan's per-rank fields).
nlohmann::json shard_to_json(const Shard& shard);
Result<Shard> shard_from_json(const nlohmann::json& doc);

class ModelInstance {
 public:
  // Opens the model, reads this rank's slices, and joins the group on `listener`
  // (blocking until every rank is connected or the connect timeout passes). On rank > 0
  // it then follows rank 0 on a thread of its own.
  static Result<std::unique_ptr<ModelInstance>> load(const InstanceSpec& spec, const std::string& cluster_key,
                                                     DataListener& listener);
  ~ModelInstance();

  const InstanceSpec& spec() const { return spec_; }
  const Model& model() const { return *model_; }
  // "ready", "failed" (the group broke; see error()), "unloaded".
  std::string state() const;
  std::string error() const;

  // Rank 0: generates one request (requests run one at a time).
  Result<GenerateResult> generate(const GenerateRequest& request,
                                  const std::function<bool(std::string_view)>& on_text = {});
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
  std::mutex generate_mu_;  // one request at a time for now
  mutable std::mutex state_mu_;
  std::string state_ = "ready";
  std::string error_;
  int next_seq_ = 0;
};

}  // namespace clusterd
