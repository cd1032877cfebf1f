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
#include "clusterd/node/slices.h"
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
constexpr int kProgressEveryMs = 250;              // load_progress messages, at most this often
constexpr int kStreamedConnectTimeoutMs = 600000;  // a rank may stream a large shard first

}  // namespace

void Agent::send_to_peer(const std::string& peer, nlohmann::json message) {
  boost::asio::post(io_, [this, peer, m = std::move(message)] { control_->send(peer, m); });
}

nlohmann::json Agent::instance_document(const InstanceEntry& e) const {
  auto rank_progress = [&](int rank) {  // 1 once ready
    if (e.state == "ready") return 1.0;
    return rank >= 0 && rank < static_cast<int>(e.progress.size()) ? e.progress[rank] : 0.0;
  };
  nlohmann::json ranks = nlohmann::json::array();
  if (e.plan.contains("ranks")) {
    for (const auto& r : e.plan["ranks"]) {
      ranks.push_back({{"node", r.value("node", "")},
                       {"rank", r.value("rank", 0)},
                       {"memory_bytes", r.value("memory_bytes", 0)},
                       {"progress", rank_progress(r.value("rank", 0))}});
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
  for (const auto& [name, e] : failed_instances_) {
    if (!instances_.count(name)) list.push_back(instance_document(*e));
  }
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
  // The memory check counts the KV cache the scheduler may fill: its budget in
  // positions, as whole sequences of the requested context.
  const int64_t kv_positions =
      config_.kv_cache_tokens > 0 ? config_.kv_cache_tokens : static_cast<int64_t>(config_.max_sequences) * ctx_used;
  const int kv_sequences =
      static_cast<int>(std::clamp<int64_t>((kv_positions + ctx_used - 1) / ctx_used, 1, config_.max_sequences));
  auto plan =
      plan_model(*footprint, nodes, PlanRequest{*strategy, false, ctx_used, kv_sequences, config_.max_batch_tokens});
  if (!plan.is_ok()) return plan.status();
  if (dry_run) return nlohmann::json{{"name", *name}, {"plan", plan->to_json()}, {"text", plan->to_text()}};

  auto entry = std::make_shared<InstanceEntry>();
  entry->name = *name;
  entry->coordinator_id = identity_.id;
  entry->coordinator_name = config_.name;
  entry->strategy = plan_strategy_name(plan->strategy);
  entry->state = "loading";
  entry->plan = plan->to_json();
  entry->progress.assign(plan->ranks.size(), 0.0);
  entry->rank_ids = ids;
  const std::string model_path = std::filesystem::absolute(*path).string();
  const uint64_t epoch = static_cast<uint64_t>(wall_clock_ms());
  entry->spec.name = *name;
  entry->spec.model_path = model_path;
  entry->spec.epoch = epoch;
  entry->spec.members = members;
  {
    std::lock_guard lock(instances_mu_);
    instances_[*name] = entry;
  }
  auto fail = [&](const std::string& error) -> Status {
    std::lock_guard lock(instances_mu_);
    entry->state = "failed";
    if (entry->error.empty()) entry->error = error;
    spdlog::warn("instance {}: failed to load: {}", *name, entry->error);
    if (auto it = instances_.find(*name); it != instances_.end() && it->second == entry) instances_.erase(it);
    failed_instances_[*name] = entry;
    return unavailable("instance " + *name + " failed to load: " + entry->error);
  };

  // Ranks without a copy of the file stream their slices from here, checked against
  // the manifest; ranks with one check their part of it.
  std::shared_ptr<const ManifestDocument> manifest;
  std::unique_ptr<SliceServer> slices;
  if (plan->ranks.size() > 1) {
    auto m = manifest_for(model_path, [&](double f) {
      std::lock_guard lock(instances_mu_);
      entry->progress[0] = f;
    });
    if (!m.is_ok()) return fail(m.status().message());
    manifest = *m;
    auto server = SliceServer::start(model_path, manifest, key_, epoch);
    if (!server.is_ok()) return fail(server.status().message());
    slices = std::move(*server);
  }
  std::vector<InstanceSpec> specs;
  for (size_t r = 0; r < plan->ranks.size(); ++r) {
    InstanceSpec s;
    s.name = *name;
    s.model_path = model_path;
    s.epoch = epoch;
    s.rank = static_cast<int>(r);
    s.members = members;
    s.shard = plan->ranks[r].shard;
    s.ctx = ctx_used;
    s.max_sequences = config_.max_sequences;
    s.plan = entry->plan;
    if (manifest) {
      s.model_sha256 = to_hex(manifest->manifest.file_sha256);
      s.manifest_sha256 = manifest->sha256;
      s.slice_port = slices->port();
    }
    specs.push_back(s);
  }
  {
    std::lock_guard lock(instances_mu_);
    entry->spec = specs[0];
  }
  for (size_t r = 1; r < specs.size(); ++r) send_to_peer(ids[r], {{"type", "load"}, {"spec", specs[r].to_json()}});
  spdlog::info("instance {}: loading {} over {} node(s) ({})", *name, *path, specs.size(), entry->strategy);
  {
    std::lock_guard lock(instances_mu_);
    entry->progress[0] = 1.0;  // this node's part: views into its own mapping
  }
  InstanceLoadOptions options;
  options.model = std::move(*model);
  options.check = [this, entry] { return check_forming(*entry); };
  options.connect_timeout_ms = kStreamedConnectTimeoutMs;
  options.threads = config_.threads;
  auto instance = ModelInstance::load(specs[0], key_, *data_listener_, std::move(options));
  if (slices) {
    spdlog::info("instance {}: served {} MiB of slices", *name, slices->bytes_served() >> 20);
    slices.reset();
  }
  if (!instance.is_ok()) {
    std::string error;
    {
      std::lock_guard lock(instances_mu_);
      error = entry->error.empty() ? instance.status().message() : entry->error;
    }
    for (size_t r = 1; r < specs.size(); ++r) send_to_peer(ids[r], {{"type", "unload"}, {"name", *name}});
    return fail(error);
  }
  std::lock_guard lock(instances_mu_);
  entry->instance = std::move(*instance);
  entry->state = "ready";
  failed_instances_.erase(*name);
  spdlog::info("instance {}: ready", *name);
  return instance_document(*entry);
}

Result<std::shared_ptr<const ManifestDocument>> Agent::manifest_for(const std::string& path,
                                                                    const std::function<void(double)>& progress) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  const auto mtime = std::filesystem::last_write_time(path, ec);
  if (ec) return not_found(path + ": " + ec.message());
  const std::string key = path + "|" + std::to_string(size) + "|" + std::to_string(mtime.time_since_epoch().count());
  if (auto it = manifests_.find(key); it != manifests_.end()) return it->second;
  const int64_t t0 = wall_clock_ms();
  int last_percent = -1;
  auto m = build_manifest(path, [&](uint64_t done, uint64_t total) {
    const int percent = total ? static_cast<int>(done * 100 / total) : 100;
    if (percent != last_percent && progress) progress(percent / 100.0);
    last_percent = percent;
  });
  if (!m.is_ok()) return m.status();
  spdlog::info("model {}: SHA-256 {} ({} MiB hashed in {} ms)", path, to_hex(m->file_sha256), size >> 20,
               wall_clock_ms() - t0);
  auto doc = std::make_shared<const ManifestDocument>(ManifestDocument::of(std::move(*m)));
  std::erase_if(manifests_, [&](const auto& kv) { return kv.first.rfind(path + "|", 0) == 0; });  // older versions
  manifests_[key] = doc;
  return std::shared_ptr<const ManifestDocument>(doc);
}

Status Agent::check_forming(const InstanceEntry& entry) const {
  {
    std::lock_guard lock(instances_mu_);
    if (!entry.error.empty()) return unavailable(entry.error);
  }
  if (entry.cancelled) return unavailable("the load was cancelled (unloaded, or this node is stopping)");
  for (size_t r = 0; r < entry.spec.members.size(); ++r) {
    if (static_cast<int>(r) == entry.spec.rank) continue;
    // The coordinator knows every rank's node id; a rank knows its coordinator's.
    const std::string id = r < entry.rank_ids.size() ? entry.rank_ids[r] : (r == 0 ? entry.coordinator_id : "");
    if (id.empty()) continue;
    auto peer = peers_.find(id);
    if (!peer || peer->status == PeerStatus::kGone) {
      return unavailable("node " + entry.spec.members[r].name + " (rank " + std::to_string(r) +
                         ") left the cluster while the group formed");
    }
  }
  return Status::ok();
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
  entry->progress.assign(spec->members.size(), 0.0);
  {
    std::lock_guard lock(instances_mu_);
    if (instances_.count(spec->name)) {
      send_to_peer(from, {{"type", "load_failed"},
                          {"name", spec->name},
                          {"error", config_.name + ": an instance named '" + spec->name + "' exists on this node"}});
      return;
    }
    instances_[spec->name] = entry;
  }
  loaders_.emplace_back([this, entry, from] { load_rank(entry, from); });
}

void Agent::load_rank(const std::shared_ptr<InstanceEntry>& entry, const std::string& from) {
  std::lock_guard load_lock(load_mu_);
  const InstanceSpec& spec = entry->spec;
  auto fail = [&](const std::string& error) {
    spdlog::warn("instance {}: rank {} failed to load: {}", entry->name, spec.rank, error);
    send_to_peer(from, {{"type", "load_failed"}, {"name", entry->name}, {"error", config_.name + ": " + error}});
    std::lock_guard lock(instances_mu_);
    if (auto it = instances_.find(entry->name); it != instances_.end() && it->second == entry) instances_.erase(it);
  };
  int64_t last_sent_ms = 0;
  auto progress = [&](double f) {
    {
      std::lock_guard lock(instances_mu_);
      entry->progress[spec.rank] = f;
    }
    const int64_t now = wall_clock_ms();
    if (f < 1.0 && now - last_sent_ms < kProgressEveryMs) return;
    last_sent_ms = now;
    send_to_peer(from, {{"type", "load_progress"},
                        {"name", entry->name},
                        {"epoch", spec.epoch},
                        {"rank", spec.rank},
                        {"progress", f}});
  };
  spdlog::info("instance {}: loading rank {} for {}", entry->name, spec.rank, entry->coordinator_name);
  ModelSource source{spec.model_path, spec.model_sha256, spec.manifest_sha256,   spec.members[0].host,
                     spec.slice_port, spec.epoch,        entry->coordinator_name};
  SliceLoadReport report;
  const int64_t t0 = wall_clock_ms();
  auto model = open_model_for_shard(source, spec.shard, config_.data_dir, key_, progress, &report);
  if (!model.is_ok()) return fail(model.status().message());
  spdlog::info("instance {}: rank {} has its slices: {} MiB checked, {} ({} ms)", entry->name, spec.rank,
               report.bytes >> 20, report.from, wall_clock_ms() - t0);
  progress(1.0);
  InstanceLoadOptions options;
  options.model = std::move(*model);
  options.check = [this, entry] { return check_forming(*entry); };
  options.connect_timeout_ms = kStreamedConnectTimeoutMs;
  options.threads = config_.threads;
  auto instance = ModelInstance::load(spec, key_, *data_listener_, std::move(options));
  if (!instance.is_ok()) return fail(instance.status().message());
  std::lock_guard lock(instances_mu_);
  entry->instance = std::move(*instance);
  entry->state = "ready";
  spdlog::info("instance {}: rank {} ready", entry->name, spec.rank);
}

void Agent::on_load_failed(const std::string& from, const nlohmann::json& m) {
  std::string name = m.value("name", "");
  std::string error = m.value("error", "unknown error");
  spdlog::warn("instance {}: node {} could not load its part: {}", name, from.substr(0, 8), error);
  std::lock_guard lock(instances_mu_);
  auto it = instances_.find(name);
  if (it == instances_.end() || it->second->spec.rank != 0) return;
  const auto& ids = it->second->rank_ids;
  if (std::find(ids.begin(), ids.end(), from) == ids.end()) return;  // not one of its ranks
  if (it->second->error.empty()) it->second->error = error;          // check_forming stops the wait
}

void Agent::on_load_progress(const std::string& from, const nlohmann::json& m) {
  if (!m.contains("name") || !m["name"].is_string() || !m.contains("rank") || !m["rank"].is_number_integer() ||
      !m.contains("epoch") || !m["epoch"].is_number_unsigned() || !m.contains("progress") ||
      !m["progress"].is_number()) {
    return;
  }
  const int rank = m["rank"].get<int>();
  std::lock_guard lock(instances_mu_);
  auto it = instances_.find(m["name"].get<std::string>());
  if (it == instances_.end()) return;
  InstanceEntry& e = *it->second;
  if (e.spec.rank != 0 || e.spec.epoch != m["epoch"].get<uint64_t>() || rank < 1 ||
      rank >= static_cast<int>(e.progress.size()) || e.rank_ids[rank] != from) {
    return;
  }
  e.progress[rank] = std::clamp(m["progress"].get<double>(), 0.0, 1.0);
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
  entry->cancelled = true;  // a load still forming its group stops waiting
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
    if (it == instances_.end()) {
      if (failed_instances_.erase(*name)) return nlohmann::json{{"name", *name}, {"state", "unloaded"}};
      return not_found("no instance named '" + *name + "' on this node");
    }
    if (it->second->spec.rank != 0) {
      return invalid_argument("instance '" + *name + "' is coordinated by " + it->second->coordinator_name +
                              "; unload it there");
    }
    if (!it->second->instance) {
      return unavailable("instance '" + *name + "' is still loading; unload it once it is ready");
    }
    entry = it->second;
    instances_.erase(it);
  }
  entry->instance->unload();
  for (size_t r = 1; r < entry->spec.members.size(); ++r) {
    for (const auto& p : peers_.snapshot()) {
      if (p.name == entry->spec.members[r].name) send_to_peer(p.node_id, {{"type", "unload"}, {"name", *name}});
    }
  }
  spdlog::info("instance {}: unloaded", *name);
  return nlohmann::json{{"name", *name}, {"state", "unloaded"}};
}

}  // namespace clusterd
