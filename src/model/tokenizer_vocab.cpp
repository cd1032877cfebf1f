// Tokenizer: reading the vocabulary from GGUF metadata, the special tokens, and the
// first stage of encoding (cutting special tokens out of the text).
#include <algorithm>
#include <array>
#include <string_view>

#include "clusterd/model/tokenizer.h"

namespace clusterd {
namespace {

// Texts that mark an end-of-turn token when the file names none (as llama.cpp does).
constexpr std::array<std::string_view, 10> kEndOfTurnTexts = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "<\xEF\xBD\x9C"  // DeepSeek's "<｜end▁of▁sentence｜>", split so the hex escape ends
    "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
    "<end_of_utterance>",
};

// Every token with one of these texts ends a generation, and is a control token
// whatever the file says (some conversions mark them user-defined).
constexpr std::array<std::string_view, 12> kEndOfGenerationTexts = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<\xEF\xBD\x9C"
    "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
};

const GgufValue* find_array(const GgufFile& file, const std::string& key, Status& error) {
  const GgufValue* value = file.find(key);
  if (value == nullptr) return nullptr;
  if (value->as_array() == nullptr) {
    error = invalid_argument(file.name() + ": " + key + " is a " + gguf_value_type_name(value->type) +
                             ", expected an array; the file's tokenizer metadata is damaged, reconvert the model");
  }
  return value;
}

}  // namespace

Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const GgufFile& file) {
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
  Status status = tokenizer->load(file);
  if (!status.is_ok()) return status;
  return tokenizer;
}

Status Tokenizer::load(const GgufFile& file) {
  const std::string& name = file.name();
  auto bad = [&](const std::string& key, const std::string& what) {
    return invalid_argument(name + ": " + key + " " + what);
  };

  const GgufValue* model_value = file.find("tokenizer.ggml.model");
  if (model_value == nullptr || model_value->as_string() == nullptr) {
    return bad("tokenizer.ggml.model",
               "is missing; the file has no vocabulary (use a GGUF converted with its tokenizer)");
  }
  const std::string& model = *model_value->as_string();
  if (model == "llama") {
    kind_ = TokenizerKind::kSentencePiece;
  } else if (model == "gpt2") {
    kind_ = TokenizerKind::kBytePairEncoding;
  } else {
    return bad("tokenizer.ggml.model", "'" + model + "' is not supported (supported: llama, gpt2)");
  }
  const bool spm = kind_ == TokenizerKind::kSentencePiece;

  Status error;
  const GgufValue* tokens = find_array(file, "tokenizer.ggml.tokens", error);
  if (!error.is_ok()) return error;
  if (tokens == nullptr || tokens->as_array()->empty()) return bad("tokenizer.ggml.tokens", "is missing or empty");
  const std::vector<GgufValue>& token_items = *tokens->as_array();
  if (token_items.size() > static_cast<size_t>(INT32_MAX)) return bad("tokenizer.ggml.tokens", "has too many tokens");
  const size_t n = token_items.size();

  const GgufValue* scores = find_array(file, "tokenizer.ggml.scores", error);
  if (!error.is_ok()) return error;
  if (scores != nullptr && scores->as_array()->size() != n) {
    return bad("tokenizer.ggml.scores",
               "has " + std::to_string(scores->as_array()->size()) + " entries for " + std::to_string(n) + " tokens");
  }
  const GgufValue* types = find_array(file, "tokenizer.ggml.token_type", error);
  if (!error.is_ok()) return error;
  if (types != nullptr && types->as_array()->size() != n) {
    return bad("tokenizer.ggml.token_type",
               "has " + std::to_string(types->as_array()->size()) + " entries for " + std::to_string(n) + " tokens");
  }

  vocab_.resize(n);
  ids_by_text_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    TokenData& token = vocab_[i];
    const std::string* text = token_items[i].as_string();
    if (text == nullptr) return bad("tokenizer.ggml.tokens", "entry " + std::to_string(i) + " is not a string");
    // An empty string would match everywhere; give it a name nobody types (llama.cpp does the same).
    token.text = text->empty() ? "[EMPTY_" + std::to_string(i) + "]" : *text;
    if (scores != nullptr) {
      std::optional<double> score = (*scores->as_array())[i].as_float();
      if (!score) return bad("tokenizer.ggml.scores", "entry " + std::to_string(i) + " is not a number");
      token.score = static_cast<float>(*score);
    }
    if (types != nullptr) {
      std::optional<int64_t> type = (*types->as_array())[i].as_int();
      if (!type) return bad("tokenizer.ggml.token_type", "entry " + std::to_string(i) + " is not an integer");
      token.type = (*type >= 1 && *type <= 6) ? static_cast<TokenType>(*type) : TokenType::kUndefined;
    }
    ids_by_text_[token.text] = static_cast<int32_t>(i);  // a later duplicate wins, as in llama.cpp
  }

  if (!spm) {
    const GgufValue* merges = find_array(file, "tokenizer.ggml.merges", error);
    if (!error.is_ok()) return error;
    if (merges == nullptr) return bad("tokenizer.ggml.merges", "is missing; a gpt2 (BPE) vocabulary needs its merges");
    const std::vector<GgufValue>& merge_items = *merges->as_array();
    merge_ranks_.reserve(merge_items.size());
    for (size_t rank = 0; rank < merge_items.size(); ++rank) {
      const std::string* merge = merge_items[rank].as_string();
      if (merge == nullptr) return bad("tokenizer.ggml.merges", "entry " + std::to_string(rank) + " is not a string");
      // "left right"; the left part is never empty, so the separator is the first space after byte 0.
      if (merge->size() < 3 || merge->find(' ', 1) == std::string::npos) continue;
      merge_ranks_.emplace(*merge, static_cast<int32_t>(rank));  // the first (best) rank wins
    }
    const GgufValue* pre = file.find("tokenizer.ggml.pre");
    const std::string pre_name = (pre != nullptr && pre->as_string() != nullptr) ? *pre->as_string() : "default";
    Status pre_status = build_pre_tokenizer(name, pre_name);
    if (!pre_status.is_ok()) return pre_status;
  }

  // Special ids: SentencePiece files conventionally use <unk>=0, <s>=1, </s>=2.
  const int32_t n_vocab = static_cast<int32_t>(n);
  auto default_id = [&](int32_t id) { return (spm && id < n_vocab) ? id : -1; };
  unk_ = default_id(0);
  bos_ = default_id(1);
  eos_ = default_id(2);
  auto read_id = [&](const char* key, int32_t& id) {
    const GgufValue* value = file.find(key);
    if (value == nullptr) return;
    std::optional<int64_t> v = value->as_int();
    // Out-of-range ids (0xFFFFFFFF is a common "none") leave the default in place.
    if (v && *v >= 0 && *v < n_vocab) id = static_cast<int32_t>(*v);
  };
  read_id("tokenizer.ggml.bos_token_id", bos_);
  read_id("tokenizer.ggml.eos_token_id", eos_);
  read_id("tokenizer.ggml.unknown_token_id", unk_);
  read_id("tokenizer.ggml.padding_token_id", pad_);
  read_id("tokenizer.ggml.eot_token_id", eot_);
  read_id("tokenizer.ggml.eom_token_id", eom_);

  add_bos_ = spm || pre_ == PreTokenizerKind::kLlama3;
  add_space_prefix_ = spm;
  auto read_flag = [&](const char* key, bool& flag) {
    const GgufValue* value = file.find(key);
    if (value == nullptr) return;
    if (std::optional<bool> b = value->as_bool()) {
      flag = *b;
    } else if (std::optional<int64_t> i = value->as_int()) {
      flag = *i != 0;
    }
  };
  read_flag("tokenizer.ggml.add_bos_token", add_bos_);
  read_flag("tokenizer.ggml.add_eos_token", add_eos_);
  read_flag("tokenizer.ggml.add_space_prefix", add_space_prefix_);
  if (bos_ < 0) add_bos_ = false;

  if (const GgufValue* tmpl = file.find("tokenizer.chat_template"); tmpl != nullptr && tmpl->as_string() != nullptr) {
    chat_template_ = *tmpl->as_string();
  }

  for (int b = 0; b < 256; ++b) {
    static const char* hex = "0123456789ABCDEF";
    const char name_buf[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
    int32_t id = lookup(name_buf);
    if (id < 0) id = lookup(std::string(1, static_cast<char>(b)));
    byte_tokens_[b] = id;
  }

  find_special_tokens();
  build_token_bytes();
  return Status::ok();
}

void Tokenizer::find_special_tokens() {
  auto make_control = [&](int32_t id) { vocab_[id].type = TokenType::kControl; };
  if (eot_ < 0) {
    for (std::string_view text : kEndOfTurnTexts) {
      if (int32_t id = lookup(text); id >= 0) {
        eot_ = id;
        break;
      }
    }
  }
  if (eom_ < 0) eom_ = lookup("<|eom_id|>");

  end_of_generation_.assign(vocab_.size(), false);
  for (std::string_view text : kEndOfGenerationTexts) {
    if (int32_t id = lookup(text); id >= 0) {
      end_of_generation_[id] = true;
      make_control(id);
    }
  }
  for (int32_t id : {eos_, eot_, eom_}) {
    if (id >= 0) end_of_generation_[id] = true;
  }
  if (eot_ >= 0) make_control(eot_);
  if (eom_ >= 0) make_control(eom_);

  special_tokens_.clear();
  for (size_t id = 0; id < vocab_.size(); ++id) {
    TokenType type = vocab_[id].type;
    if (type == TokenType::kControl || type == TokenType::kUserDefined || type == TokenType::kUnknown) {
      special_tokens_.push_back(static_cast<int32_t>(id));
    }
  }
  std::stable_sort(special_tokens_.begin(), special_tokens_.end(),
                   [&](int32_t a, int32_t b) { return vocab_[a].text.size() > vocab_[b].text.size(); });
}

std::vector<Tokenizer::Fragment> Tokenizer::split_special(std::string_view text, bool parse_special) const {
  std::vector<Fragment> fragments{{-1, 0, text.size()}};
  std::vector<Fragment> next;
  for (int32_t id : special_tokens_) {
    const TokenData& token = vocab_[id];
    if (!parse_special && token.type != TokenType::kUserDefined) continue;
    const std::string& needle = token.text;
    if (text.find(needle) == std::string_view::npos) continue;
    next.clear();
    for (const Fragment& fragment : fragments) {
      if (fragment.token >= 0) {
        next.push_back(fragment);
        continue;
      }
      std::string_view part = text.substr(fragment.begin, fragment.length);
      size_t pos = 0;
      for (size_t match = part.find(needle); match != std::string_view::npos; match = part.find(needle, pos)) {
        if (match > pos) next.push_back({-1, fragment.begin + pos, match - pos});
        next.push_back({id, 0, 0});
        pos = match + needle.size();
      }
      if (pos < part.size()) next.push_back({-1, fragment.begin + pos, part.size() - pos});
    }
    fragments.swap(next);
  }
  return fragments;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> out;
  if (add_bos && bos_ >= 0) out.push_back(bos_);
  if (text.empty()) return out;
  // SentencePiece puts the word-start marker before text that follows a special token
  // (or starts the input), never in the middle.
  bool after_special = true;
  for (const Fragment& fragment : split_special(text, parse_special)) {
    if (fragment.token >= 0) {
      out.push_back(fragment.token);
      after_special = true;
      continue;
    }
    std::string_view part = text.substr(fragment.begin, fragment.length);
    if (kind_ == TokenizerKind::kSentencePiece) {
      spm_encode(part, add_space_prefix_ && after_special, out);
    } else {
      bpe_encode(part, out);
    }
    after_special = false;
  }
  return out;
}

int32_t Tokenizer::lookup(std::string_view text) const {
  auto it = ids_by_text_.find(text);
  return it == ids_by_text_.end() ? -1 : it->second;
}

std::optional<int32_t> Tokenizer::find_token(std::string_view text) const {
  int32_t id = lookup(text);
  if (id < 0) return std::nullopt;
  return id;
}

const std::string& Tokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return empty_;
  return vocab_[id].text;
}

TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return TokenType::kUndefined;
  return vocab_[id].type;
}

float Tokenizer::token_score(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return 0.0f;
  return vocab_[id].score;
}

bool Tokenizer::is_end_of_generation(int32_t id) const { return id >= 0 && id < n_vocab() && end_of_generation_[id]; }

}  // namespace clusterd
