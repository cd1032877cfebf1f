// The OpenAI surface on the agent: the models this node serves, and completions run on
// the instance this node coordinates.
#include <chrono>

#include "clusterd/common/crypto.h"
#include "clusterd/model/chat_template.h"
#include "clusterd/node/agent.h"

namespace clusterd {

Result<std::shared_ptr<Agent::InstanceEntry>> Agent::coordinated_instance(const std::string& model) const {
  std::lock_guard lock(instances_mu_);
  auto it = instances_.find(model);
  if (it == instances_.end()) return not_found("model '" + model + "' is not loaded on this node");
  if (it->second->spec.rank != 0) {
    return invalid_argument("model '" + model + "' is coordinated by node " + it->second->coordinator_name +
                            "; send the request there");
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
  std::lock_guard lock(instances_mu_);
  for (const auto& [name, e] : instances_) {
    data.push_back({{"id", name},
                    {"object", "model"},
                    {"created", static_cast<int64_t>(e->spec.epoch / 1000)},
                    {"owned_by", "clusterd"},
                    {"clusterd", instance_document(*e)}});
  }
  return {{"object", "list"}, {"data", data}};
}

Result<CompletionResult> Agent::complete(const CompletionRequest& r,
                                         const std::function<bool(std::string_view)>& on_text) {
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
  auto result = (*entry)->instance->generate(g, on_text);
  if (!result.is_ok()) return result.status();
  CompletionResult out;
  out.text = sanitize_utf8(result->text);
  out.finish_reason = result->finish_reason;
  out.tokens = result->tokens;
  out.prompt_tokens = static_cast<int>(g.prompt.size());
  out.completion_tokens = static_cast<int>(result->tokens.size());
  out.prompt_ms = result->prompt_ms;
  out.generation_ms = result->generation_ms;
  return out;
}

}  // namespace clusterd
