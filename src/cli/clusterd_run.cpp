// clusterd run: generate text on this node, no network.
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "clusterd/engine/generate.h"
#include "clusterd/engine/model.h"
#include "clusterd/model/chat_template.h"
#include "clusterd_commands.h"

namespace clusterd::cli {

namespace {

struct RunOptions {
  std::string model;
  std::string prompt;
  std::string system;
  int n = 128;
  int ctx = 4096;
  int threads = 0;
  float temp = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
  uint64_t seed = 0;
  bool seed_given = false;
  std::vector<std::string> stop;
  bool chat = false;
  std::string chat_template;
  bool json = false;
};

int run_model(RunOptions& o) {
  auto model = Model::open(o.model);
  if (!model.is_ok()) {
    std::fprintf(stderr, "clusterd: %s\n", model.status().message().c_str());
    return 1;
  }
  const Tokenizer& tok = *(*model)->tokenizer;
  const ModelParams& p = (*model)->params;
  GenerateRequest req;
  if (o.chat) {
    bool recognized = true;
    ChatTemplateFamily family = detect_chat_template(tok.chat_template(), recognized);
    if (!o.chat_template.empty()) {
      auto forced = parse_chat_template_name(o.chat_template);
      if (!forced) {
        std::fprintf(stderr, "clusterd: --chat-template %s is not one of llama2, llama3, mistral, chatml\n",
                     o.chat_template.c_str());
        return 1;
      }
      family = *forced;
    } else if (!recognized) {
      std::fprintf(stderr, "clusterd: the model's chat template is not recognized; using ChatML "
                           "(choose one with --chat-template)\n");
    }
    std::vector<ChatMessage> messages;
    if (!o.system.empty()) messages.push_back({"system", o.system});
    messages.push_back({"user", o.prompt});
    std::string text = render_chat(family, messages, true, tok.bos() >= 0 ? tok.token_text(tok.bos()) : "",
                                   tok.eos() >= 0 ? tok.token_text(tok.eos()) : "");
    req.prompt = tok.encode(text, false, true);
  } else {
    req.prompt = tok.encode(o.prompt, tok.add_bos(), false);
  }
  if (req.prompt.empty()) req.prompt.push_back(tok.bos() >= 0 ? tok.bos() : 0);
  req.max_tokens = o.n;
  req.stop = o.stop;
  req.sampling.temperature = o.temp;
  req.sampling.top_k = o.top_k;
  req.sampling.top_p = o.top_p;
  req.sampling.min_p = o.min_p;
  req.sampling.repeat_penalty = o.repeat_penalty;
  req.sampling.seed = o.seed_given ? o.seed : std::random_device{}();

  auto weights = load_weights(*(*model)->file, p, Shard::whole(p));
  if (!weights.is_ok()) {
    std::fprintf(stderr, "clusterd: %s\n", weights.status().message().c_str());
    return 1;
  }
  LocalCollective local;
  int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int ctx = std::min(o.ctx, p.n_ctx_train > 0 ? std::max(p.n_ctx_train, 256) : o.ctx);
  if (static_cast<int>(req.prompt.size()) + req.max_tokens > ctx) ctx = static_cast<int>(req.prompt.size()) + req.max_tokens;
  Transformer tf(*weights, local, TransformerOptions{ctx, 1, TensorType::kF16, threads});
  auto result = generate(tf, tok, req, 0, [&](std::string_view piece) {
    if (!o.json) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    return true;
  });
  if (!result.is_ok()) {
    std::fprintf(stderr, "\nclusterd: %s\n", result.status().message().c_str());
    return 1;
  }
  if (o.json) {
    nlohmann::json doc = {{"text", sanitize_utf8(result->text)},
                          {"prompt_tokens", req.prompt},
                          {"tokens", result->tokens},
                          {"finish_reason", result->finish_reason},
                          {"timings",
                           {{"prompt_ms", result->prompt_ms},
                            {"generation_ms", result->generation_ms},
                            {"prompt_tokens_per_second",
                             result->prompt_ms > 0 ? req.prompt.size() * 1000.0 / result->prompt_ms : 0},
                            {"tokens_per_second", result->tokens_per_second()}}}};
    std::cout << doc.dump() << "\n";
  } else {
    std::printf("\n");
    std::fprintf(stderr, "[%zu prompt tokens in %.1f ms, %zu tokens in %.1f ms: %.1f tokens/s, %d threads]\n",
                 req.prompt.size(), result->prompt_ms, result->tokens.size(), result->generation_ms,
                 result->tokens_per_second(), threads);
  }
  return 0;
}

}  // namespace

void add_run_command(CLI::App& app, Runner& run) {
  auto o = std::make_shared<RunOptions>();
  auto* cmd = app.add_subcommand("run", "generate text with a model on this node (no network)");
  cmd->add_option("--model,-m", o->model, "GGUF model file")->required();
  cmd->add_option("--prompt,-p", o->prompt, "the prompt (with --chat: the user's message)")->required();
  cmd->add_option("-n,--max-tokens", o->n, "tokens to generate")->capture_default_str();
  cmd->add_option("--temp", o->temp, "temperature; 0 is greedy")->capture_default_str();
  cmd->add_option("--top-k", o->top_k)->capture_default_str();
  cmd->add_option("--top-p", o->top_p)->capture_default_str();
  cmd->add_option("--min-p", o->min_p)->capture_default_str();
  cmd->add_option("--repeat-penalty", o->repeat_penalty)->capture_default_str();
  auto* seed = cmd->add_option("--seed", o->seed, "random seed (same seed, same output)");
  cmd->add_option("--stop", o->stop, "stop before this text (repeatable)");
  cmd->add_option("--threads,-t", o->threads, "threads (default: all cores)");
  cmd->add_option("--ctx", o->ctx, "context length")->capture_default_str();
  cmd->add_flag("--chat", o->chat, "format the prompt with the model's chat template");
  cmd->add_option("--system", o->system, "system message (with --chat)");
  cmd->add_option("--chat-template", o->chat_template, "llama2, llama3, mistral or chatml (overrides the model's)");
  cmd->add_flag("--json", o->json, "print {text, prompt_tokens, tokens, timings} as JSON");
  cmd->callback([&run, o, seed] {
    o->seed_given = seed->count() > 0;
    run = [o] { return run_model(*o); };
  });
}

}  // namespace clusterd::cli
