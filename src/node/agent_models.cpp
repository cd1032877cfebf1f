// Model instances on the agent: POST /v1/models/load plans the model over the live
// nodes and tells each rank its part over the control links; every rank loads its
// slices and joins the group on its data port; this node coordinates and answers
// /v1/inference. Unload releases the group.
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <filesystem>

#include "clusterd/common/clock.h"
#include "clusterd/common/crypto.h"
#include "clusterd/node/agent.h"
#include "clusterd/placement/shard_plan.h"

namespace clusterd {

namespace {

Result<std::string> text_field(const nlohmann::json& body, const char* key, bool required, std::string fallback = "") {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) {
    if (required) return invalid_argument("field '" + std::string(key) + "' is required");
    return fallback;
  }
  if (!it->is_string()) return invalid_argument("field '" + std::string(key) + "' must be a string");
  return it->get<std::string>();
}

Result<int64_t> int_field(const nlohmann::json& body, const char* key, int64_t fallback, int64_t min, int64_t max) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) return invalid_argument("field '" + std::string(key) + "' must be an integer");
  int64_t v = it->get<int64_t>();
  if (v < min || v > max) {
    return invalid_argument("field '" + std::string(key) + "' must be from " + std::to_string(min) + " to " +
                            std::to_string(max));
  }
  return v;
}
}  // namespace

void Agent::send_to_peer(const std::string& peer, nlohmann::json message) {
  boost::asio::post(io_, [this, peer, m = std::move(message)] { control_->send(peer, m); });
}

nlohmann::json Agent::instance_document(const InstanceEntry& e) const {
  nlohmann::json ranks = nlohmann::json::array();
  if (e.plan.contains("ranks")) {
    for (const auto& r : e.plan["ranks"]) {
      ranks.push_back({{"node", r.value("node", "")},
                       {"rank", r.value("rank", 0)},
                       {"memory_bytes", r.value("memory_bytes", 0)},
                       {"progress", e.state == "loading" ? 0.0 : 1.0}});
    }
  }
  std::string state = e.state;
  if (e.instance && state == "ready" && e.instance->state() != "ready") state = "degraded";
  std::string error = e.error.empty() && e.instance ? e.instance->error() : e.error;
  return {{"name", e.name},
          {"model_path", e.spec.model_path},
          {"state", state},
          {"strategy", e.strategy},
          {"coordinator", e.coordinator_name},
          {"coordinator_id", e.coordinator_id},
          {"rank", e.spec.rank},
          {"ranks", ranks},
          {"plan", e.plan},
          {"error", error.empty() ? nlohmann::json(nullptr) : nlohmann::json(error)}};
}

nlohmann::json Agent::instances_document() const {
  nlohmann::json list = nlohmann::json::array();
  std::lock_guard lock(instances_mu_);
  for (const auto& [name, e] : instances_) list.push_back(instance_document(*e));
  return {{"instances", list}};
}

Result<nlohmann::json> Agent::load_model(const nlohmann::json& body) {
  auto path = text_field(body, "model", true);
  if (!path.is_ok()) return path.status();
  auto name = text_field(body, "name", false, std::filesystem::path(*path).stem().string());
  auto strategy_name = text_field(body, "strategy", false, "auto");
  auto ctx = int_field(body, "ctx", 4096, 16, 1 << 20);
  if (!name.is_ok()) return name.status();
  if (!strategy_name.is_ok()) return strategy_name.status();
  if (!ctx.is_ok()) return ctx.status();
  auto strategy = parse_plan_strategy(*strategy_name);
  if (!strategy.is_ok()) return strategy.status();
  if (*strategy == PlanStrategy::kPipeline) {
    return invalid_argument("field 'strategy': pipeline serving is not available yet; use tensor or auto");
  }
  const bool dry_run = body.value("dry_run", false);
  if (name->empty() || name->size() > 128) return invalid_argument("field 'name' must be 1 to 128 characters");

  std::unique_lock load_lock(load_mu_, std::try_to_lock);
  if (!load_lock.owns_lock()) return unavailable("another model is being loaded on this node; try again shortly");
  {
    std::lock_guard lock(instances_mu_);
    if (instances_.count(*name)) return already_exists("an instance named '" + *name + "' is already loaded");
  }
  auto model = Model::open(*path);
  if (!model.is_ok()) return invalid_argument(model.status().message());
  auto footprint = footprint_of(*(*model)->file, (*model)->params);
  if (!footprint.is_ok()) return invalid_argument(footprint.status().message());

  // Ranks: this node first (it coordinates), then the chosen alive peers.
  std::vector<std::string> wanted;
  if (auto n = body.find("nodes"); n != body.end() && !n->is_null()) {
    if (!n->is_array()) return invalid_argument("field 'nodes' must be an array of node names or ids");
    for (const auto& v : *n) {
      if (!v.is_string()) return invalid_argument("field 'nodes' must be an array of node names or ids");
      wanted.push_back(v.get<std::string>());
    }
  }
  auto chosen = [&](const std::string& id, const std::string& nm) {
    return wanted.empty() || std::find(wanted.begin(), wanted.end(), id) != wanted.end() ||
           std::find(wanted.begin(), wanted.end(), nm) != wanted.end();
  };
  std::vector<PlanNode> nodes;
  std::vector<GroupMember> members;
  std::vector<std::string> ids;
  {
    std::lock_guard lock(state_mu_);
    nodes.push_back({identity_.id, config_.name, inventory_.memory_available_bytes});
    members.push_back(
        {interfaces_.empty() ? "127.0.0.1" : interfaces_[0].address, data_listener_->port(), config_.name});
    ids.push_back(identity_.id);
  }
  if (!wanted.empty() && !chosen(identity_.id, config_.name)) {
    return invalid_argument("field 'nodes': the node that loads a model coordinates it and must be in the list");
  }
  for (const auto& p : peers_.snapshot()) {
    if (p.status != PeerStatus::kAlive || !chosen(p.node_id, p.name)) continue;
    uint16_t data_port = 0;
    {
      std::lock_guard lock(state_mu_);
      if (auto it = peer_data_ports_.find(p.node_id); it != peer_data_ports_.end()) data_port = it->second;
    }
    if (data_port == 0) continue;  // no control link yet
    uint64_t free = p.inventory.is_object()
                        ? p.inventory.value("memory_available_bytes", p.resources.memory_available_bytes)
                        : p.resources.memory_available_bytes;
    nodes.push_back({p.node_id, p.name, free});
    members.push_back({p.address, data_port, p.name});
    ids.push_back(p.node_id);
  }
  if (!wanted.empty() && nodes.size() != wanted.size()) {
    return invalid_argument("field 'nodes': some of the listed nodes are not alive or not linked yet");
  }
  const int ctx_used = static_cast<int>(*ctx);
  auto plan = plan_model(*footprint, nodes, PlanRequest{*strategy, false, ctx_used, 4});
  if (!plan.is_ok()) return plan.status();
  if (dry_run) return nlohmann::json{{"name", *name}, {"plan", plan->to_json()}, {"text", plan->to_text()}};

  auto entry = std::make_shared<InstanceEntry>();
  entry->name = *name;
  entry->coordinator_id = identity_.id;
  entry->coordinator_name = config_.name;
  entry->strategy = plan_strategy_name(plan->strategy);
  entry->state = "loading";
  entry->plan = plan->to_json();
  const uint64_t epoch = static_cast<uint64_t>(wall_clock_ms());
  std::vector<InstanceSpec> specs;
  for (size_t r = 0; r < plan->ranks.size(); ++r) {
    InstanceSpec s;
    s.name = *name;
    s.model_path = std::filesystem::absolute(*path).string();
    s.epoch = epoch;
    s.rank = static_cast<int>(r);
    s.members = members;
    s.shard = plan->ranks[r].shard;
    s.ctx = ctx_used;
    s.plan = entry->plan;
    specs.push_back(s);
  }
  entry->spec = specs[0];
  {
    std::lock_guard lock(instances_mu_);
    instances_[*name] = entry;
  }
  for (size_t r = 1; r < specs.size(); ++r) send_to_peer(ids[r], {{"type", "load"}, {"spec", specs[r].to_json()}});
  spdlog::info("instance {}: loading {} over {} node(s) ({})", *name, *path, specs.size(), entry->strategy);
  auto instance = ModelInstance::load(specs[0], key_, *data_listener_);
  std::lock_guard lock(instances_mu_);
  if (!instance.is_ok()) {
    entry->state = "failed";
    if (entry->error.empty()) entry->error = instance.status().message();
    for (size_t r = 1; r < specs.size(); ++r) send_to_peer(ids[r], {{"type", "unload"}, {"name", *name}});
    Status s = unavailable("instance " + *name + " failed to load: " + entry->error);
    instances_.erase(*name);
    return s;
  }
  entry->instance = std::move(*instance);
  entry->state = "ready";
  spdlog::info("instance {}: ready", *name);
  return instance_document(*entry);
}

void Agent::on_load_request(const std::string& from, const nlohmann::json& doc) {
  auto spec = InstanceSpec::from_json(doc);
  if (!spec.is_ok()) {
    spdlog::warn("control: a load request from {} was malformed: {}", from.substr(0, 8), spec.status().message());
    return;
  }
  auto peer = peers_.find(from);
  auto entry = std::make_shared<InstanceEntry>();
  entry->name = spec->name;
  entry->coordinator_id = from;
  entry->coordinator_name = peer ? peer->name : from.substr(0, 8);
  entry->strategy = spec->plan.value("strategy", "tensor");
  entry->state = "loading";
  entry->plan = spec->plan;
  entry->spec = *spec;
  {
    std::lock_guard lock(instances_mu_);
    if (instances_.count(spec->name)) {
      send_to_peer(from,
                   {{"type", "load_failed"}, {"name", spec->name}, {"error", "an instance with that name exists"}});
      return;
    }
    instances_[spec->name] = entry;
  }
  loaders_.emplace_back([this, entry, from] {
    std::lock_guard load_lock(load_mu_);
    spdlog::info("instance {}: loading rank {} for {}", entry->name, entry->spec.rank, entry->coordinator_name);
    auto instance = ModelInstance::load(entry->spec, key_, *data_listener_);
    std::lock_guard lock(instances_mu_);
    if (!instance.is_ok()) {
      spdlog::warn("instance {}: rank {} failed to load: {}", entry->name, entry->spec.rank,
                   instance.status().message());
      send_to_peer(from, {{"type", "load_failed"},
                          {"name", entry->name},
                          {"error", config_.name + ": " + instance.status().message()}});
      instances_.erase(entry->name);
      return;
    }
    entry->instance = std::move(*instance);
    entry->state = "ready";
    spdlog::info("instance {}: rank {} ready", entry->name, entry->spec.rank);
  });
}

void Agent::on_load_failed(const std::string& from, const nlohmann::json& m) {
  std::string name = m.value("name", "");
  std::string error = m.value("error", "unknown error");
  spdlog::warn("instance {}: node {} could not load its part: {}", name, from.substr(0, 8), error);
  std::lock_guard lock(instances_mu_);
  if (auto it = instances_.find(name); it != instances_.end() && it->second->error.empty()) it->second->error = error;
}

void Agent::on_unload_request(const std::string& name) {
  std::shared_ptr<InstanceEntry> entry;
  {
    std::lock_guard lock(instances_mu_);
    auto it = instances_.find(name);
    if (it == instances_.end() || it->second->spec.rank == 0) return;
    entry = it->second;
    instances_.erase(it);
  }
  spdlog::info("instance {}: unloaded", name);
  // The group closes with the instance; the follower thread ends. Off the io thread.
  loaders_.emplace_back([entry]() mutable { entry.reset(); });
}

Result<nlohmann::json> Agent::unload_model(const nlohmann::json& body) {
  auto name = text_field(body, "name", true);
  if (!name.is_ok()) return name.status();
  std::shared_ptr<InstanceEntry> entry;
  {
    std::lock_guard lock(instances_mu_);
    auto it = instances_.find(*name);
    if (it == instances_.end()) return not_found("no instance named '" + *name + "' on this node");
    if (it->second->spec.rank != 0) {
      return invalid_argument("instance '" + *name + "' is coordinated by " + it->second->coordinator_name +
                              "; unload it there");
    }
    entry = it->second;
    instances_.erase(it);
  }
  if (entry->instance) entry->instance->unload();
  for (size_t r = 1; r < entry->spec.members.size(); ++r) {
    for (const auto& p : peers_.snapshot()) {
      if (p.name == entry->spec.members[r].name) send_to_peer(p.node_id, {{"type", "unload"}, {"name", *name}});
    }
  }
  spdlog::info("instance {}: unloaded", *name);
  return nlohmann::json{{"name", *name}, {"state", "unloaded"}};
}

}  // namespace clusterd
