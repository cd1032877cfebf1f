#include "clusterd/api/openai.h"

#include "clusterd/common/crypto.h"

namespace clusterd {

namespace {

// Reads optional typed fields; the first wrong one is kept in `error`.
class Fields {
 public:
  Fields(const nlohmann::json& body, FieldError& error) : body_(body), error_(error) {}

  bool ok() const { return error_.param.empty(); }
  void fail(const std::string& param, const std::string& message) {
    if (ok()) error_ = {param, message};
  }
  void number(const char* key, float& out, double min, double max) {
    auto it = body_.find(key);
    if (it == body_.end() || it->is_null()) return;
    if (!it->is_number()) return fail(key, std::string("'") + key + "' must be a number");
    double v = it->get<double>();
    if (!(v >= min && v <= max)) {
      return fail(key, std::string("'") + key + "' must be between " + trim(min) + " and " + trim(max));
    }
    out = static_cast<float>(v);
  }
  void integer(const char* key, int64_t& out, int64_t min, int64_t max) {
    auto it = body_.find(key);
    if (it == body_.end() || it->is_null()) return;
    if (!it->is_number_integer()) return fail(key, std::string("'") + key + "' must be an integer");
    if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(max)) {
      return fail(key, std::string("'") + key + "' must be at most " + std::to_string(max));
    }
    int64_t v = it->get<int64_t>();
    if (v < min || v > max) {
      return fail(key,
                  std::string("'") + key + "' must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    out = v;
  }
  void flag(const nlohmann::json& in, const char* key, bool& out, const std::string& name) {
    auto it = in.find(key);
    if (it == in.end() || it->is_null()) return;
    if (!it->is_boolean()) return fail(name, "'" + name + "' must be true or false");
    out = it->get<bool>();
  }
  void text(const char* key, std::string& out, bool required, size_t max_bytes) {
    auto it = body_.find(key);
    if (it == body_.end() || it->is_null()) {
      if (required) fail(key, std::string("'") + key + "' is required");
      return;
    }
    if (!it->is_string()) return fail(key, std::string("'") + key + "' must be a string");
    if (it->get_ref<const std::string&>().size() > max_bytes) {
      return fail(key, std::string("'") + key + "' is longer than " + std::to_string(max_bytes) + " bytes");
    }
    out = it->get<std::string>();
  }

 private:
  static std::string trim(double v) {
    std::string s = std::to_string(v);
    while (s.size() > 1 && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  const nlohmann::json& body_;
  FieldError& error_;
};

constexpr size_t kMaxText = 1u << 20;

}  // namespace

bool parse_completion_request(const nlohmann::json& body, bool chat, CompletionRequest& r, FieldError& error) {
  error = {};
  Fields f(body, error);
  r.chat = chat;
  f.text("model", r.model, true, 256);
  if (chat) {
    auto it = body.find("messages");
    if (it == body.end() || !it->is_array() || it->empty()) {
      f.fail("messages", "'messages' must be a non-empty array of {role, content}");
    } else if (it->size() > 1024) {
      f.fail("messages", "'messages' has more than 1024 entries");
    } else {
      for (size_t i = 0; i < it->size() && f.ok(); ++i) {
        const auto& m = (*it)[i];
        const std::string where = "messages[" + std::to_string(i) + "]";
        if (!m.is_object()) {
          f.fail(where, "'" + where + "' must be an object with role and content");
          break;
        }
        auto role = m.find("role"), content = m.find("content");
        if (role == m.end() || !role->is_string() ||
            (*role != "system" && *role != "user" && *role != "assistant" && *role != "developer")) {
          f.fail(where + ".role", "'" + where + ".role' must be system, user or assistant");
          break;
        }
        std::string text;
        if (content != m.end() && content->is_string()) {
          text = content->get<std::string>();
        } else if (content != m.end() && content->is_array()) {  // [{type: text, text}] parts
          for (const auto& part : *content) {
            if (part.is_object() && part.value("type", "") == "text" && part.contains("text") &&
                part["text"].is_string()) {
              text += part["text"].get<std::string>();
            } else {
              f.fail(where + ".content", "'" + where + ".content' parts must be {\"type\":\"text\",\"text\":...}");
              break;
            }
          }
        } else if (content == m.end() || !content->is_null()) {
          f.fail(where + ".content", "'" + where + ".content' must be a string");
          break;
        }
        if (text.size() > kMaxText) f.fail(where + ".content", "'" + where + ".content' is longer than 1 MiB");
        std::string r_role = role->get<std::string>();
        r.messages.push_back({r_role == "developer" ? "system" : r_role, text});
      }
    }
  } else {
    auto it = body.find("prompt");
    if (it != body.end() && it->is_array() && it->size() == 1 && (*it)[0].is_string()) {
      r.prompt = (*it)[0].get<std::string>();
    } else {
      f.text("prompt", r.prompt, true, kMaxText);
    }
  }
  int64_t max_tokens = r.max_tokens;
  f.integer(chat ? "max_completion_tokens" : "max_tokens", max_tokens, 1, 1 << 20);
  if (chat && !body.contains("max_completion_tokens")) f.integer("max_tokens", max_tokens, 1, 1 << 20);
  r.max_tokens = static_cast<int>(max_tokens);
  f.number("temperature", r.temperature, 0, 2);
  f.number("top_p", r.top_p, 0, 1);
  f.number("min_p", r.min_p, 0, 1);
  f.number("presence_penalty", r.presence_penalty, -2, 2);
  f.number("frequency_penalty", r.frequency_penalty, -2, 2);
  f.number("repeat_penalty", r.repeat_penalty, 0, 10);
  int64_t top_k = r.top_k;
  f.integer("top_k", top_k, 0, 1024);
  r.top_k = static_cast<int>(top_k);
  f.integer("seed", r.seed, INT64_MIN, INT64_MAX);
  if (auto it = body.find("n"); it != body.end() && !it->is_null() && *it != 1) f.fail("n", "'n' must be 1");
  if (auto it = body.find("stop"); it != body.end() && !it->is_null()) {
    if (it->is_string()) {
      r.stop.push_back(it->get<std::string>());
    } else if (it->is_array() && it->size() <= 4) {
      for (const auto& s : *it) {
        if (!s.is_string()) {
          f.fail("stop", "'stop' must be a string or an array of up to 4 strings");
          break;
        }
        r.stop.push_back(s.get<std::string>());
      }
    } else {
      f.fail("stop", "'stop' must be a string or an array of up to 4 strings");
    }
  }
  f.flag(body, "stream", r.stream, "stream");
  if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!it->is_object())
      f.fail("stream_options", "'stream_options' must be an object");
    else
      f.flag(*it, "include_usage", r.include_usage, "stream_options.include_usage");
  }
  f.text("user", r.user, false, 256);
  return f.ok();
}

std::string completion_id(bool chat) { return (chat ? "chatcmpl-" : "cmpl-") + to_hex(random_bytes(12)); }

nlohmann::json timings_of(const CompletionResult& r) {
  return {{"queue_ms", r.queue_ms},
          {"time_to_first_token_ms", r.first_token_ms},
          {"prompt_ms", r.prompt_ms},
          {"generation_ms", r.generation_ms},
          {"tokens_per_second", r.generation_ms > 0 ? r.completion_tokens * 1000.0 / r.generation_ms : 0.0}};
}

static nlohmann::json usage_of(const CompletionResult& r) {
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"total_tokens", r.prompt_tokens + r.completion_tokens},
          {"timings", timings_of(r)}};
}

nlohmann::json completion_response(const CompletionRequest& req, const CompletionResult& r, const std::string& id,
                                   int64_t created) {
  nlohmann::json choice = {{"index", 0}, {"finish_reason", r.finish_reason}, {"logprobs", nullptr}};
  if (req.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", r.text}};
  } else {
    choice["text"] = r.text;
  }
  return {{"id", id},
          {"object", req.chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", req.model},
          {"choices", nlohmann::json::array({choice})},
          {"usage", usage_of(r)}};
}

nlohmann::json completion_chunk(const CompletionRequest& req, const std::string& id, int64_t created,
                                const std::string& text, const std::string& finish_reason, bool role_chunk) {
  nlohmann::json choice = {
      {"index", 0},
      {"finish_reason", finish_reason.empty() ? nlohmann::json(nullptr) : nlohmann::json(finish_reason)},
      {"logprobs", nullptr}};
  if (req.chat) {
    nlohmann::json delta = nlohmann::json::object();
    if (role_chunk) delta["role"] = "assistant";
    if (!role_chunk && finish_reason.empty()) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  return {{"id", id},
          {"object", req.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", req.model},
          {"choices", nlohmann::json::array({choice})}};
}

nlohmann::json usage_chunk(const CompletionRequest& req, const std::string& id, int64_t created,
                           const CompletionResult& r) {
  return {{"id", id},
          {"object", req.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", req.model},
          {"choices", nlohmann::json::array()},
          {"usage", usage_of(r)}};
}

}  // namespace clusterd
