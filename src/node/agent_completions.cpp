// The OpenAI surface on the agent: the models this node serves, and completions run on
// the instance this node coordinates.
#include <algorithm>
#include <chrono>
#include <set>

#include "clusterd/common/crypto.h"
#include "clusterd/model/chat_template.h"
#include "clusterd/node/agent.h"

namespace clusterd {

Result<std::shared_ptr<Agent::InstanceEntry>> Agent::coordinated_instance(const std::string& model) const {
  std::lock_guard lock(instances_mu_);
  auto it = instances_.find(model);
  if (it == instances_.end()) return not_found("model '" + model + "' is not loaded on this node");
  if (it->second->spec.rank != 0) {
    return unavailable("model '" + model + "' is coordinated by node " + it->second->coordinator_name +
                       ", which this node cannot reach now");
  }
  if (!it->second->instance) return unavailable("model '" + model + "' is still loading");
  return it->second;
}

Status Agent::check_model(const std::string& model) const {
  auto entry = coordinated_instance(model);
  return entry.is_ok() ? Status::ok() : entry.status();
}

nlohmann::json Agent::models_list() const {
  nlohmann::json data = nlohmann::json::array();
  std::set<std::string> listed;
  {
    std::lock_guard lock(instances_mu_);
    for (const auto& [name, e] : instances_) {
      data.push_back({{"id", name},
                      {"object", "model"},
                      {"created", static_cast<int64_t>(e->spec.epoch / 1000)},
                      {"owned_by", "clusterd"},
                      {"clusterd", instance_document(*e)}});
      listed.insert(name);
    }
  }
  // Models coordinated by peers this node has no part in: requests for them are forwarded.
  std::map<std::string, std::string> alive;  // id -> name
  for (const auto& p : peers_.snapshot()) {
    if (p.status == PeerStatus::kAlive) alive[p.node_id] = p.name;
  }
  std::lock_guard lock(state_mu_);
  for (const auto& [peer, names] : peer_models_) {
    auto node = alive.find(peer);
    if (node == alive.end()) continue;
    for (const auto& name : names) {
      if (!listed.insert(name).second) continue;
      data.push_back({{"id", name},
                      {"object", "model"},
                      {"created", 0},
                      {"owned_by", "clusterd"},
                      {"clusterd", {{"name", name}, {"coordinator", node->second}, {"coordinator_id", peer}}}});
    }
  }
  return {{"object", "list"}, {"data", data}};
}

std::optional<PeerRoute> Agent::coordinator_route(const std::string& model) const {
  {
    std::lock_guard lock(instances_mu_);
    auto it = instances_.find(model);
    if (it != instances_.end() && it->second->spec.rank == 0) return std::nullopt;  // served here
  }
  std::set<std::string> coordinators;
  {
    std::lock_guard lock(state_mu_);
    for (const auto& [peer, names] : peer_models_) {
      if (std::find(names.begin(), names.end(), model) != names.end()) coordinators.insert(peer);
    }
  }
  for (const auto& p : peers_.snapshot()) {
    if (p.status != PeerStatus::kAlive || !coordinators.count(p.node_id) || p.api_port == 0) continue;
    // A wildcard API address is reached at the address the peer's beacons come from; a
    // loopback one only from the same machine.
    const bool wildcard = p.api_host.empty() || p.api_host == "0.0.0.0";
    const bool loopback = p.api_host.rfind("127.", 0) == 0;
    if (loopback && p.address.rfind("127.", 0) != 0) continue;
    return PeerRoute{wildcard ? p.address : p.api_host, p.api_port, p.name};
  }
  return std::nullopt;
}

void Agent::announce_models() {
  nlohmann::json names = nlohmann::json::array();
  {
    std::lock_guard lock(instances_mu_);
    for (const auto& [name, e] : instances_) {
      if (e->spec.rank == 0 && e->instance) names.push_back(name);
    }
  }
  if (names == announced_models_) return;
  announced_models_ = names;
  control_->broadcast({{"type", "models"}, {"models", names}});
}

namespace {

// A request queued on an instance this node coordinates; holds the instance entry so
// the instance outlives the wait.
class QueuedCompletion final : public PendingCompletion {
 public:
  QueuedCompletion(std::shared_ptr<void> keep, ModelInstance::PendingGeneration pending, int prompt_tokens)
      : keep_(std::move(keep)), pending_(std::move(pending)), prompt_tokens_(prompt_tokens) {}

  Result<CompletionResult> finish(const std::function<bool(std::string_view)>& on_text) override {
    auto result = pending_.wait(on_text);
    if (!result.is_ok()) return result.status();
    CompletionResult out;
    out.text = sanitize_utf8(result->text);
    out.finish_reason = result->finish_reason;
    out.tokens = result->tokens;
    out.prompt_tokens = prompt_tokens_;
    out.completion_tokens = static_cast<int>(result->tokens.size());
    out.prompt_ms = result->prompt_ms;
    out.generation_ms = result->generation_ms;
    out.queue_ms = result->queue_ms;
    out.first_token_ms = result->first_token_ms;
    return out;
  }

 private:
  std::shared_ptr<void> keep_;
  ModelInstance::PendingGeneration pending_;
  int prompt_tokens_;
};

}  // namespace

Result<std::unique_ptr<PendingCompletion>> Agent::begin_completion(const CompletionRequest& r) {
  auto entry = coordinated_instance(r.model);
  if (!entry.is_ok()) return entry.status();
  const Tokenizer& tok = *(*entry)->instance->model().tokenizer;
  GenerateRequest g;
  if (r.chat) {
    bool recognized = true;
    ChatTemplateFamily family = detect_chat_template(tok.chat_template(), recognized);
    std::vector<ChatMessage> messages;
    for (const auto& m : r.messages) messages.push_back({m.role, m.content});
    std::string text = render_chat(family, messages, true, tok.bos() >= 0 ? tok.token_text(tok.bos()) : "",
                                   tok.eos() >= 0 ? tok.token_text(tok.eos()) : "");
    g.prompt = tok.encode(text, false, true);
  } else {
    g.prompt = tok.encode(r.prompt, tok.add_bos(), false);
  }
  if (g.prompt.empty()) g.prompt.push_back(tok.bos() >= 0 ? tok.bos() : 0);
  const int ctx = (*entry)->spec.ctx;
  if (static_cast<int>(g.prompt.size()) >= ctx) {
    return invalid_argument("the prompt is " + std::to_string(g.prompt.size()) +
                            " tokens, more than the model's context of " + std::to_string(ctx));
  }
  // max_tokens beyond what the context holds is cut to fit, as OpenAI servers do.
  g.max_tokens = std::min(r.max_tokens, ctx - static_cast<int>(g.prompt.size()));
  g.stop = r.stop;
  g.sampling.temperature = r.temperature;
  g.sampling.top_p = r.top_p;
  g.sampling.top_k = r.top_k;
  g.sampling.min_p = r.min_p;
  g.sampling.presence_penalty = r.presence_penalty;
  g.sampling.frequency_penalty = r.frequency_penalty;
  g.sampling.repeat_penalty = r.repeat_penalty;
  g.sampling.seed = r.seed >= 0 ? static_cast<uint64_t>(r.seed) : random_u64();
  (*entry)->instance->start_scheduler(
      {config_.max_sequences, config_.max_batch_tokens, config_.queue_depth, config_.kv_cache_tokens});
  auto pending = (*entry)->instance->submit(g);
  if (!pending.is_ok()) return pending.status();
  return std::unique_ptr<PendingCompletion>(
      new QueuedCompletion(*entry, std::move(*pending), static_cast<int>(g.prompt.size())));
}

void Agent::write_serving_metrics(MetricsWriter& out) const {
  std::vector<std::pair<std::string, ServingStats>> all;
  {
    std::lock_guard lock(instances_mu_);
    for (const auto& [name, e] : instances_) {
      if (e->instance && e->spec.rank == 0) all.emplace_back(name, e->instance->serving_stats());
    }
  }
  auto gauge = [&](const char* name, const char* help, auto value) {
    out.family(name, "gauge", help);
    for (const auto& [model, s] : all) out.sample(name, {{"model", model}}, static_cast<double>(value(s)));
  };
  auto counter = [&](const char* name, const char* help, auto value) {
    out.family(name, "counter", help);
    for (const auto& [model, s] : all) out.sample(name, {{"model", model}}, static_cast<double>(value(s)));
  };
  auto histogram = [&](const char* name, const char* help, auto pick) {
    out.family(name, "histogram", help);
    for (const auto& [model, s] : all) out.histogram(name, {{"model", model}}, pick(s));
  };
  gauge("clusterd_requests_running", "Generation requests in the running batch, by model.",
        [](const ServingStats& s) { return s.running; });
  gauge("clusterd_requests_waiting", "Generation requests queued for a place in the batch, by model.",
        [](const ServingStats& s) { return s.waiting; });
  gauge("clusterd_kv_cache_usage_ratio",
        "Share of the instance's KV-cache budget (positions) that running sequences hold, by model.",
        [](const ServingStats& s) {
          return s.kv_tokens_budget > 0 ? static_cast<double>(s.kv_tokens_in_use) / s.kv_tokens_budget : 0.0;
        });
  counter("clusterd_prompt_tokens_total", "Prompt tokens prefilled, by model.",
          [](const ServingStats& s) { return s.prompt_tokens; });
  counter("clusterd_generation_tokens_total", "Tokens generated, by model.",
          [](const ServingStats& s) { return s.generated_tokens; });
  out.family("clusterd_generation_requests_total", "counter",
             "Generation requests by model and outcome (finished, cancelled by the client, failed, refused "
             "because the queue was full).");
  for (const auto& [model, s] : all) {
    out.sample("clusterd_generation_requests_total", {{"model", model}, {"outcome", "finished"}},
               static_cast<double>(s.requests_finished));
    out.sample("clusterd_generation_requests_total", {{"model", model}, {"outcome", "cancelled"}},
               static_cast<double>(s.requests_cancelled));
    out.sample("clusterd_generation_requests_total", {{"model", model}, {"outcome", "failed"}},
               static_cast<double>(s.requests_failed));
    out.sample("clusterd_generation_requests_total", {{"model", model}, {"outcome", "refused"}},
               static_cast<double>(s.requests_refused));
  }
  histogram("clusterd_time_to_first_token_seconds", "From a request's arrival to its first token, by model.",
            [](const ServingStats& s) -> const Histogram& { return s.time_to_first_token; });
  histogram("clusterd_time_per_output_token_seconds", "Mean time between a finished request's tokens, by model.",
            [](const ServingStats& s) -> const Histogram& { return s.time_per_output_token; });
  histogram("clusterd_request_duration_seconds", "From a request's arrival to its last token, by model.",
            [](const ServingStats& s) -> const Histogram& { return s.request_latency; });
  histogram("clusterd_request_queue_seconds", "Time a request waited for a place in the batch, by model.",
            [](const ServingStats& s) -> const Histogram& { return s.queue_time; });
  histogram("clusterd_batch_size", "Sequences in each forward step, by model.",
            [](const ServingStats& s) -> const Histogram& { return s.batch_size; });
}

}  // namespace clusterd
