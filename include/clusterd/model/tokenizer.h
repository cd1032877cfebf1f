// Tokenizers read from a GGUF vocabulary: SentencePiece (tokenizer.ggml.model "llama")
// and byte-level BPE (tokenizer.ggml.model "gpt2"), token for token the same ids as
// llama.cpp's llama-vocab, plus a streaming detokenizer that never splits a UTF-8
// character.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "clusterd/common/status.h"
#include "clusterd/model/gguf.h"

namespace clusterd {

// tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // <s>, <|im_start|>: never produced from plain text
  kUserDefined = 4,  // always matched as a whole, even without parse_special
  kUnused = 5,
  kByte = 6,  // <0x0A>: SentencePiece byte fallback
};

enum class TokenizerKind {
  kSentencePiece,     // "llama"
  kBytePairEncoding,  // "gpt2" (byte-level)
};

// How byte-level BPE splits text into words before merging (tokenizer.ggml.pre).
enum class PreTokenizerKind {
  kNone,     // SentencePiece: no pre-tokenizer
  kDefault,  // "default" or absent: llama.cpp's default split
  kGpt2,     // "gpt-2"
  kLlama3,   // "llama-bpe", "llama3", "llama-v3"
  kQwen2,    // "qwen2", "qwen2.5", "deepseek-r1-qwen"
};

class Tokenizer {
 public:
  // Reads tokenizer.ggml.* from `file`. Errors name the file, the key and what is wrong
  // ("x.gguf: tokenizer.ggml.pre 'foo' is not supported (supported: ...)").
  static Result<std::unique_ptr<Tokenizer>> from_gguf(const GgufFile& file);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids for `text`. With `add_bos`, BOS comes first (when the vocabulary has one).
  // With `parse_special`, control tokens written in the text ("<|im_start|>") become
  // their ids; without it they are ordinary text. User-defined tokens are always matched
  // whole. Longer special tokens are matched before shorter ones. Safe to call from
  // several threads at once.
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

  // The raw bytes token `id` stands for: SentencePiece "▁" becomes a space, <0xNN> the
  // byte NN, byte-level BPE characters their bytes. Control and unknown tokens stand for
  // no text (""); user-defined tokens for their text. "" for an id out of range.
  // The bytes of one token may be part of a UTF-8 character (see StreamDecoder).
  std::string token_bytes(int32_t id) const;
  // The concatenated bytes of `ids`; with `render_control`, control tokens show as their
  // text ("<|im_end|>"). No leading space is removed.
  std::string decode(std::span<const int32_t> ids, bool render_control = false) const;

  // The vocabulary string of `id` as stored (byte-level BPE text stays mapped, "Ġ" etc.).
  const std::string& token_text(int32_t id) const;
  TokenType token_type(int32_t id) const;
  float token_score(int32_t id) const;

  int32_t n_vocab() const { return static_cast<int32_t>(vocab_.size()); }
  // Special ids; -1 where the vocabulary has none.
  int32_t bos() const { return bos_; }
  int32_t eos() const { return eos_; }
  int32_t eot() const { return eot_; }
  int32_t eom() const { return eom_; }
  int32_t unk() const { return unk_; }
  int32_t pad() const { return pad_; }
  // Whether prompts for this model start with BOS (tokenizer.ggml.add_bos_token).
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }
  TokenizerKind kind() const { return kind_; }
  PreTokenizerKind pre_tokenizer() const { return pre_; }
  // tokenizer.chat_template, "" when the file has none.
  const std::string& chat_template() const { return chat_template_; }

  // True for tokens that end a generation: eos, eot, eom and end-of-turn control tokens
  // found by their text (<|im_end|>, <|eot_id|>, <|end|>, <|endoftext|>, ...).
  bool is_end_of_generation(int32_t id) const;

  // The id whose vocabulary string is exactly `text` (any token type).
  std::optional<int32_t> find_token(std::string_view text) const;

 private:
  struct TokenData {
    std::string text;   // as stored in the vocabulary
    std::string bytes;  // what token_bytes returns
    float score = 0.0f;
    TokenType type = TokenType::kNormal;
  };
  // A run of the input: either plain text (token < 0) or one special token.
  struct Fragment {
    int32_t token = -1;
    size_t begin = 0;
    size_t length = 0;
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using StringMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

  Tokenizer() = default;
  int32_t lookup(std::string_view text) const;  // -1 when absent

  // tokenizer_vocab.cpp
  Status load(const GgufFile& file);
  void find_special_tokens();
  std::vector<Fragment> split_special(std::string_view text, bool parse_special) const;

  // tokenizer_spm.cpp
  void spm_encode(std::string_view text, bool add_space_prefix, std::vector<int32_t>& out) const;
  void spm_byte_fallback(std::string_view bytes, std::vector<int32_t>& out) const;

  // tokenizer_bpe.cpp
  Status build_pre_tokenizer(const std::string& file_name, const std::string& pre_name);
  std::vector<std::string_view> pre_tokenize(std::string_view text) const;
  void bpe_encode(std::string_view text, std::vector<int32_t>& out) const;
  void bpe_encode_word(std::string_view word, std::vector<int32_t>& out) const;
  int32_t merge_rank(std::string_view left, std::string_view right) const;

  // tokenizer_decode.cpp
  void build_token_bytes();

  TokenizerKind kind_ = TokenizerKind::kSentencePiece;
  PreTokenizerKind pre_ = PreTokenizerKind::kNone;
  std::vector<TokenData> vocab_;
  StringMap ids_by_text_;
  StringMap merge_ranks_;                // "left right" -> rank (BPE)
  std::vector<int32_t> special_tokens_;  // control, user-defined, unknown; longest first
  std::vector<bool> end_of_generation_;
  int32_t byte_tokens_[256] = {};                     // SentencePiece byte fallback, -1 where missing
  std::string byte_chars_[256];                       // byte-level BPE: byte -> its stand-in character
  std::unordered_map<uint32_t, uint8_t> char_bytes_;  // and back: code point -> byte
  std::vector<std::shared_ptr<void>> pre_regexes_;    // compiled PCRE2 patterns, applied in turn
  bool ignore_merges_ = false;                        // llama3: a word that is a token is not merged further
  int32_t bos_ = -1, eos_ = -1, eot_ = -1, eom_ = -1, unk_ = -1, pad_ = -1;
  bool add_bos_ = false;
  bool add_eos_ = false;
  bool add_space_prefix_ = false;
  std::string chat_template_;
  std::string empty_;
};

// Turns generated token ids into text without ever emitting part of a UTF-8 character:
// bytes of an unfinished character are held until the next token completes it.
class StreamDecoder {
 public:
  // `tokenizer` must outlive the decoder. With `render_control`, control tokens show as
  // their text.
  explicit StreamDecoder(const Tokenizer& tokenizer, bool render_control = false)
      : tokenizer_(tokenizer), render_control_(render_control) {}

  // Adds token `id`; returns the text that is now complete (valid UTF-8, possibly "").
  // Bytes that can never start or continue a character come out as U+FFFD.
  std::string push(int32_t id);
  // Adds raw bytes directly (the same rules as push).
  std::string push_bytes(std::string_view bytes);
  // Returns whatever is held back, an unfinished character as U+FFFD, and resets.
  std::string flush();
  // Bytes currently held back.
  size_t pending() const { return pending_.size(); }

 private:
  const Tokenizer& tokenizer_;
  bool render_control_ = false;
  std::string pending_;
};

// Replaces every byte sequence in `bytes` that is not valid UTF-8 with U+FFFD (one per
// maximal invalid subpart, as the WHATWG and Unicode recommend).
std::string sanitize_utf8(std::string_view bytes);

}  // namespace clusterd
