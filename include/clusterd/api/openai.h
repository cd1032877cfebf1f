// The OpenAI-compatible surface: request parsing with errors that name the field, and
// the reply shapes of /v1/completions and /v1/chat/completions (whole and streamed as
// server-sent events).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "clusterd/common/status.h"

namespace clusterd {

struct ChatTurn {
  std::string role;  // system, user, assistant
  std::string content;
};

struct CompletionRequest {
  std::string model;
  bool chat = false;
  std::vector<ChatTurn> messages;  // chat
  std::string prompt;              // completions
  int max_tokens = 16;
  float temperature = 1.0f;
  float top_p = 1.0f;
  int top_k = 0;
  float min_p = 0.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  float repeat_penalty = 1.0f;
  int64_t seed = -1;  // -1: random
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;
  std::string user;
};

struct CompletionResult {
  std::string text;
  std::string finish_reason;    // "stop" or "length"
  std::vector<int32_t> tokens;  // generated token ids
  int prompt_tokens = 0;
  int completion_tokens = 0;
  double prompt_ms = 0;
  double generation_ms = 0;
  double queue_ms = 0;        // waiting for a place in the batch
  double first_token_ms = 0;  // arrival to first token
};

// A field error: Status invalid_argument whose message starts with the field name in
// quotes; `param` gets the field for the error body.
struct FieldError {
  std::string param;
  std::string message;
};

// Parses a /v1/completions (`chat` false) or /v1/chat/completions body. Returns the
// request or the first field error.
bool parse_completion_request(const nlohmann::json& body, bool chat, CompletionRequest& out, FieldError& error);

// "chatcmpl-" or "cmpl-" followed by 24 random hex digits.
std::string completion_id(bool chat);

// Per-request timings (queue, first token, prompt, generation, tokens/s) in milliseconds.
nlohmann::json timings_of(const CompletionResult& result);

// The whole reply.
nlohmann::json completion_response(const CompletionRequest& request, const CompletionResult& result,
                                   const std::string& id, int64_t created);
// One streamed chunk with `text` (for chat the first chunk carries the role instead),
// or the final chunk with finish_reason when `finish_reason` is set.
nlohmann::json completion_chunk(const CompletionRequest& request, const std::string& id, int64_t created,
                                const std::string& text, const std::string& finish_reason, bool role_chunk = false);
// The usage chunk sent last when stream_options.include_usage is true.
nlohmann::json usage_chunk(const CompletionRequest& request, const std::string& id, int64_t created,
                           const CompletionResult& result);

}  // namespace clusterd
