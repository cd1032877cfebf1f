// Byte-level BPE (GPT-2 style): a pre-tokenizer regex cuts the text into words, every
// byte of a word becomes its stand-in character (so any byte is representable), and the
// adjacent pair with the lowest merge rank is merged first until no merge applies.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <queue>
#include <string>
#include <vector>

#include "clusterd/model/tokenizer.h"

namespace clusterd {
namespace {

// The pre-tokenizer patterns, as llama.cpp runs them. The "(?i:'s|...)" groups of the
// originals are spelt out per letter so that Unicode case folding cannot widen them.
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr const char* kLlama3Pattern =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// llama.cpp's fallback for "default": four passes, each splitting the pieces of the last.
constexpr const char* kDefaultPatterns[] = {
    R"([\p{P}\$\+<=>\^~\|]+)",
    kGpt2Pattern,
    R"(\p{N}+)",
    R"([0-9][0-9][0-9])",
};

struct PreTokenizerName {
  const char* name;
  PreTokenizerKind kind;
};
constexpr PreTokenizerName kPreTokenizerNames[] = {
    {"default", PreTokenizerKind::kDefault},  {"gpt-2", PreTokenizerKind::kGpt2},
    {"gpt2", PreTokenizerKind::kGpt2},        {"phi-2", PreTokenizerKind::kGpt2},
    {"roberta-bpe", PreTokenizerKind::kGpt2}, {"llama-bpe", PreTokenizerKind::kLlama3},
    {"llama3", PreTokenizerKind::kLlama3},    {"llama-v3", PreTokenizerKind::kLlama3},
    {"falcon3", PreTokenizerKind::kLlama3},   {"pixtral", PreTokenizerKind::kLlama3},
    {"qwen2", PreTokenizerKind::kQwen2},      {"qwen2.5", PreTokenizerKind::kQwen2},
    {"qwen-2.5", PreTokenizerKind::kQwen2},   {"deepseek-r1-qwen", PreTokenizerKind::kQwen2},
};

struct BpeSymbol {
  int prev;
  int next;
  size_t begin;
  size_t n;
};

struct BpeBigram {
  int left;
  int right;
  int32_t rank;
  size_t size;
};

// Lowest rank first; on a tie the leftmost pair.
struct BpeBigramOrder {
  bool operator()(const BpeBigram& a, const BpeBigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

std::string utf8_encode(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

size_t utf8_sequence_length(unsigned char first) {
  static constexpr unsigned char kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[first >> 4];
}

// Cuts every piece of `pieces` at the matches of `code`; text between matches stays a
// piece of its own (llama.cpp keeps it too), so no byte is ever dropped.
std::vector<std::string_view> split_by_pattern(const std::vector<std::string_view>& pieces, pcre2_code* code) {
  std::vector<std::string_view> out;
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(code, nullptr);
  for (std::string_view piece : pieces) {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
    size_t start = 0;
    while (start < piece.size()) {
      int rc = pcre2_match(code, subject, piece.size(), start, 0, match, nullptr);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
        // A very long run of one class; the interpreter keeps its stack on the heap.
        rc = pcre2_match(code, subject, piece.size(), start, PCRE2_NO_JIT, match, nullptr);
      }
      if (rc < 0) break;
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
      size_t match_begin = ovector[0];
      size_t match_end = ovector[1];
      if (match_end <= match_begin) break;  // the patterns never match empty; stay safe anyway
      if (match_begin > start) out.push_back(piece.substr(start, match_begin - start));
      out.push_back(piece.substr(match_begin, match_end - match_begin));
      start = match_end;
    }
    if (start < piece.size()) out.push_back(piece.substr(start));
  }
  pcre2_match_data_free(match);
  return out;
}

}  // namespace

Status Tokenizer::build_pre_tokenizer(const std::string& file_name, const std::string& pre_name) {
  pre_ = PreTokenizerKind::kNone;
  for (const PreTokenizerName& entry : kPreTokenizerNames) {
    if (pre_name == entry.name) pre_ = entry.kind;
  }
  if (pre_ == PreTokenizerKind::kNone) {
    std::string supported;
    for (const PreTokenizerName& entry : kPreTokenizerNames)
      supported += std::string(supported.empty() ? "" : ", ") + entry.name;
    return invalid_argument(file_name + ": tokenizer.ggml.pre '" + pre_name +
                            "' is not a supported pre-tokenizer (supported: " + supported + ")");
  }
  std::vector<const char*> patterns;
  switch (pre_) {
    case PreTokenizerKind::kGpt2: patterns = {kGpt2Pattern}; break;
    case PreTokenizerKind::kLlama3: patterns = {kLlama3Pattern}; break;
    case PreTokenizerKind::kQwen2: patterns = {kQwen2Pattern}; break;
    default: patterns.assign(std::begin(kDefaultPatterns), std::end(kDefaultPatterns)); break;
  }
  ignore_merges_ = pre_ == PreTokenizerKind::kLlama3;

  pre_regexes_.clear();
  for (const char* pattern : patterns) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error_code, &error_offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof(message));
      return internal_error(file_name + ": pre-tokenizer pattern for '" + pre_name + "' does not compile at offset " +
                            std::to_string(error_offset) + ": " + reinterpret_cast<const char*>(message));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // without JIT the interpreter still works
    pre_regexes_.emplace_back(code, [](void* p) { pcre2_code_free(static_cast<pcre2_code*>(p)); });
  }

  // GPT-2's byte-to-unicode table: printable bytes stand for themselves, the rest are
  // moved to U+0100 and up so that no word contains spaces or control characters.
  uint32_t next_free = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    uint32_t cp = printable ? b : next_free++;
    byte_chars_[b] = utf8_encode(cp);
    char_bytes_[cp] = static_cast<uint8_t>(b);
  }
  return Status::ok();
}

std::vector<std::string_view> Tokenizer::pre_tokenize(std::string_view text) const {
  std::vector<std::string_view> pieces{text};
  for (const std::shared_ptr<void>& regex : pre_regexes_) {
    pieces = split_by_pattern(pieces, static_cast<pcre2_code*>(regex.get()));
  }
  return pieces;
}

void Tokenizer::bpe_encode(std::string_view text, std::vector<int32_t>& out) const {
  for (std::string_view word : pre_tokenize(text)) bpe_encode_word(word, out);
}

int32_t Tokenizer::merge_rank(std::string_view left, std::string_view right) const {
  std::string key;
  key.reserve(left.size() + 1 + right.size());
  key.append(left).append(1, ' ').append(right);
  auto it = merge_ranks_.find(key);
  return it == merge_ranks_.end() ? -1 : it->second;
}

void Tokenizer::bpe_encode_word(std::string_view word, std::vector<int32_t>& out) const {
  std::string mapped;
  mapped.reserve(word.size() * 2);
  std::vector<BpeSymbol> symbols;
  symbols.reserve(word.size());
  for (char c : word) {
    const std::string& stand_in = byte_chars_[static_cast<unsigned char>(c)];
    int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, index + 1, mapped.size(), stand_in.size()});
    mapped += stand_in;
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  if (ignore_merges_) {
    if (int32_t id = lookup(mapped); id >= 0) {
      out.push_back(id);
      return;
    }
  }

  std::priority_queue<BpeBigram, std::vector<BpeBigram>, BpeBigramOrder> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    std::string_view left_text(mapped.data() + symbols[left].begin, symbols[left].n);
    std::string_view right_text(mapped.data() + symbols[right].begin, symbols[right].n);
    int32_t rank = merge_rank(left_text, right_text);
    if (rank < 0) return;
    queue.push({left, right, rank, left_text.size() + right_text.size()});
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    BpeBigram bigram = queue.top();
    queue.pop();
    BpeSymbol& left = symbols[bigram.left];
    BpeSymbol& right = symbols[bigram.right];
    if (left.n == 0 || right.n == 0 || left.n + right.n != bigram.size) continue;  // stale
    left.n += right.n;
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = bigram.left;
    try_add(left.prev, bigram.left);
    try_add(bigram.left, left.next);
  }

  for (int i = 0; i != -1; i = symbols[i].next) {
    std::string_view piece(mapped.data() + symbols[i].begin, symbols[i].n);
    if (int32_t id = lookup(piece); id >= 0) {
      out.push_back(id);
      continue;
    }
    // Not a token (an incomplete vocabulary): fall back to one token per byte character.
    for (size_t offset = 0; offset < piece.size();) {
      size_t n = std::min(piece.size() - offset, utf8_sequence_length(static_cast<unsigned char>(piece[offset])));
      if (int32_t id = lookup(piece.substr(offset, n)); id >= 0) out.push_back(id);
      offset += n;
    }
  }
}

}  // namespace clusterd
