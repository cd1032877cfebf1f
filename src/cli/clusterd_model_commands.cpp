// clusterd model info | model synth | tokenize
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "clusterd/engine/model.h"
#include "clusterd/engine/synth.h"
#include "clusterd/engine/weights.h"
#include "clusterd/model/chat_template.h"
#include "clusterd_commands.h"

namespace clusterd::cli {

namespace {

int fail(const Status& s) {
  std::fprintf(stderr, "clusterd: %s\n", s.message().c_str());
  return 1;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

struct InfoOptions {
  std::string file;
  int ctx = 4096;
  bool json = false;
};

int model_info(const InfoOptions& o) {
  auto model = Model::open(o.file);
  if (!model.is_ok()) return fail(model.status());
  const ModelParams& p = (*model)->params;
  const Tokenizer& tok = *(*model)->tokenizer;
  auto weights = load_weights(*(*model)->file, p, Shard::whole(p));
  if (!weights.is_ok()) return fail(weights.status());
  std::map<std::string, int> types;
  uint64_t tensor_bytes = 0;
  for (const auto& t : (*model)->file->tensors()) {
    types[std::string(tensor_type_name(t.type))]++;
    tensor_bytes += t.size;
  }
  bool recognized = false;
  std::string family = tok.chat_template().empty()
                           ? "none (ChatML is used)"
                           : chat_template_name(detect_chat_template(tok.chat_template(), recognized));
  if (!tok.chat_template().empty() && !recognized) family += " (template not recognized; ChatML is used)";
  const uint64_t kv = kv_bytes_per_token(p, TensorType::kF16) * o.ctx;
  nlohmann::json doc = {
      {"file", o.file},
      {"name", p.name},
      {"architecture", p.arch_name},
      {"n_vocab", p.n_vocab},
      {"n_embd", p.n_embd},
      {"n_layer", p.n_layer},
      {"n_head", p.n_head},
      {"n_head_kv", p.n_head_kv},
      {"head_dim", p.head_dim},
      {"n_ff", p.n_ff},
      {"n_ctx_train", p.n_ctx_train},
      {"rope_base", p.rope_base},
      {"tied_embeddings", p.tied_embeddings},
      {"tensor_types", types},
      {"tensor_bytes", tensor_bytes},
      {"tokenizer", tok.kind() == TokenizerKind::kSentencePiece ? "sentencepiece" : "bpe"},
      {"bos", tok.bos()},
      {"eos", tok.eos()},
      {"chat_template", family},
      {"ctx", o.ctx},
      {"kv_cache_bytes", kv},
      {"memory_bytes", tensor_bytes + kv},
  };
  if (o.json) {
    std::cout << doc.dump(2) << "\n";
    return 0;
  }
  std::printf("%s\n", o.file.c_str());
  std::printf("  architecture   %s%s\n", p.arch_name.c_str(), p.name.empty() ? "" : (" (" + p.name + ")").c_str());
  std::printf("  shape          n_embd %d, %d layers, %d heads (%d KV, head %d), n_ff %d, vocab %d\n", p.n_embd,
              p.n_layer, p.n_head, p.n_head_kv, p.head_dim, p.n_ff, p.n_vocab);
  std::printf("  context        %d trained; rope base %g%s%s\n", p.n_ctx_train, p.rope_base,
              p.rope_freq_factors ? ", llama3 frequency factors" : "", p.tied_embeddings ? "; tied embeddings" : "");
  std::string t;
  for (const auto& [name, n] : types) t += (t.empty() ? "" : ", ") + std::to_string(n) + " " + name;
  std::printf("  tensors        %s (%s)\n", t.c_str(), human_bytes(tensor_bytes).c_str());
  std::printf("  tokenizer      %s, %d tokens, bos %d, eos %d\n",
              tok.kind() == TokenizerKind::kSentencePiece ? "SentencePiece" : "byte-level BPE", tok.n_vocab(),
              tok.bos(), tok.eos());
  std::printf("  chat template  %s\n", family.c_str());
  std::printf("  memory         %s weights + %s KV cache (F16) at %d tokens of context = %s\n",
              human_bytes(tensor_bytes).c_str(), human_bytes(kv).c_str(), o.ctx,
              human_bytes(tensor_bytes + kv).c_str());
  return 0;
}

struct SynthFlags {
  SynthOptions o;
  std::string type = "q8_0";
  std::string like;
  std::string out;
};

int model_synth(SynthFlags& f) {
  auto type = parse_tensor_type(f.type);
  if (!type) return fail(invalid_argument("--type " + f.type + " is not a tensor type (f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K)"));
  f.o.type = *type;
  f.o.like = f.like;
  std::string notes;
  if (Status s = synthesize_model(f.o, f.out, &notes); !s.is_ok()) return fail(s);
  if (!notes.empty()) std::fprintf(stderr, "%s", notes.c_str());
  std::fprintf(stderr, "wrote %s: synthetic %s model with RANDOM weights (it writes gibberish)\n", f.out.c_str(),
               f.o.arch.c_str());
  return 0;
}

struct TokenizeOptions {
  std::string model;
  std::string text;
  bool no_bos = false;
  bool special = false;
};

int tokenize(const TokenizeOptions& o) {
  auto model = Model::open(o.model);
  if (!model.is_ok()) return fail(model.status());
  const Tokenizer& tok = *(*model)->tokenizer;
  std::cout << nlohmann::json(tok.encode(o.text, !o.no_bos && tok.add_bos(), o.special)).dump() << "\n";
  return 0;
}

}  // namespace

void add_model_commands(CLI::App& app, Runner& run) {
  auto* model = app.add_subcommand("model", "inspect and make model files");
  model->require_subcommand(1);

  auto info = std::make_shared<InfoOptions>();
  auto* info_cmd = model->add_subcommand("info", "architecture, shapes, types, tokenizer, memory needed");
  info_cmd->add_option("file", info->file, "GGUF model file")->required();
  info_cmd->add_option("--ctx", info->ctx, "context length for the memory estimate")->check(CLI::PositiveNumber);
  info_cmd->add_flag("--json", info->json, "print JSON");
  info_cmd->callback([&run, info] { run = [info] { return model_info(*info); }; });

  auto synth = std::make_shared<SynthFlags>();
  auto* s = model->add_subcommand("synth", "write a model with random weights (for tests and benchmarks)");
  s->add_option("--arch", synth->o.arch, "llama, qwen2 or qwen3")->capture_default_str();
  s->add_option("--n-embd", synth->o.n_embd)->capture_default_str();
  s->add_option("--n-layer", synth->o.n_layer)->capture_default_str();
  s->add_option("--n-head", synth->o.n_head)->capture_default_str();
  s->add_option("--n-head-kv", synth->o.n_head_kv)->capture_default_str();
  s->add_option("--head-dim", synth->o.head_dim, "default n_embd / n_head");
  s->add_option("--n-ff", synth->o.n_ff)->capture_default_str();
  s->add_option("--vocab", synth->o.n_vocab, "vocabulary size (ignored with --like)")->capture_default_str();
  s->add_option("--type", synth->type, "f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K")->capture_default_str();
  s->add_flag("--tied", synth->o.tied_embeddings, "no output.weight: reuse the token embeddings");
  s->add_option("--seed", synth->o.seed)->capture_default_str();
  s->add_option("--like", synth->like, "copy the tokenizer of this GGUF file");
  s->add_option("-o,--output", synth->out, "file to write")->required();
  s->callback([&run, synth] { run = [synth] { return model_synth(*synth); }; });
}

void add_tokenize_command(CLI::App& app, Runner& run) {
  auto o = std::make_shared<TokenizeOptions>();
  auto* cmd = app.add_subcommand("tokenize", "print the token ids of a text as a JSON array");
  cmd->add_option("--model", o->model, "GGUF model file")->required();
  cmd->add_flag("--no-bos", o->no_bos, "do not add the BOS token");
  cmd->add_flag("--special", o->special, "parse special-token text such as <|im_start|>");
  cmd->add_option("text", o->text, "text to tokenize")->required();
  cmd->callback([&run, o] { run = [o] { return tokenize(*o); }; });
}

}  // namespace clusterd::cli
