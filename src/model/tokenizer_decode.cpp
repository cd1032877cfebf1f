// From token ids back to bytes: each token's bytes (computed once at load), whole
// sequences, and a streaming decoder that only ever hands out complete UTF-8.
#include <string>
#include <string_view>

#include "clusterd/model/tokenizer.h"

namespace clusterd {
namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD
constexpr std::string_view kWordMarker = "\xE2\x96\x81";            // U+2581 "▁"

enum class Utf8Kind { kCharacter, kInvalid, kTruncated };
struct Utf8Step {
  Utf8Kind kind;
  size_t length;  // bytes of the character, of the invalid subpart, or available so far
};

// Classifies the bytes at the start of `s` (non-empty) following Unicode Table 3-7.
Utf8Step utf8_step(std::string_view s) {
  const auto c = static_cast<unsigned char>(s[0]);
  if (c < 0x80) return {Utf8Kind::kCharacter, 1};
  size_t continuation = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    continuation = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    continuation = 2;
    if (c == 0xE0) low = 0xA0;   // no overlong forms
    if (c == 0xED) high = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    continuation = 3;
    if (c == 0xF0) low = 0x90;   // no overlong forms
    if (c == 0xF4) high = 0x8F;  // nothing above U+10FFFF
  } else {
    return {Utf8Kind::kInvalid, 1};
  }
  for (size_t i = 1; i <= continuation; ++i) {
    if (i >= s.size()) return {Utf8Kind::kTruncated, i};
    const auto b = static_cast<unsigned char>(s[i]);
    const unsigned char lo = i == 1 ? low : 0x80;
    const unsigned char hi = i == 1 ? high : 0xBF;
    if (b < lo || b > hi) return {Utf8Kind::kInvalid, i};
  }
  return {Utf8Kind::kCharacter, continuation + 1};
}

// Appends the valid part of `bytes` to `out` (invalid subparts as U+FFFD) and returns
// how many bytes at the end form an unfinished character, which the caller keeps.
size_t append_complete_utf8(std::string_view bytes, std::string& out) {
  size_t offset = 0;
  while (offset < bytes.size()) {
    Utf8Step step = utf8_step(bytes.substr(offset));
    if (step.kind == Utf8Kind::kTruncated) return bytes.size() - offset;
    if (step.kind == Utf8Kind::kCharacter) {
      out.append(bytes.substr(offset, step.length));
    } else {
      out.append(kReplacementCharacter);
    }
    offset += step.length;
  }
  return 0;
}

// "<0x0A>" -> 0x0A; -1 when `text` is not of that form.
int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int value = 0;
  for (char c : text.substr(3, 2)) {
    value *= 16;
    if (c >= '0' && c <= '9') {
      value += c - '0';
    } else if (c >= 'A' && c <= 'F') {
      value += c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      value += c - 'a' + 10;
    } else {
      return -1;
    }
  }
  return value;
}

// Decodes one UTF-8 code point at `offset` (advancing it); invalid bytes yield 0xFFFFFFFF.
uint32_t next_code_point(std::string_view s, size_t& offset) {
  Utf8Step step = utf8_step(s.substr(offset));
  if (step.kind != Utf8Kind::kCharacter) {
    offset += step.length;
    return 0xFFFFFFFF;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(s.data() + offset);
  offset += step.length;
  switch (step.length) {
    case 1: return p[0];
    case 2: return ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
    case 3: return ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    default: return ((p[0] & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
  }
}

}  // namespace

void Tokenizer::build_token_bytes() {
  const bool spm = kind_ == TokenizerKind::kSentencePiece;
  for (TokenData& token : vocab_) {
    token.bytes.clear();
    switch (token.type) {
      case TokenType::kUserDefined: token.bytes = token.text; break;
      case TokenType::kByte: {
        int byte = parse_byte_token(token.text);
        token.bytes = byte >= 0 ? std::string(1, static_cast<char>(byte)) : token.text;
        break;
      }
      case TokenType::kNormal:
        if (spm) {
          for (size_t pos = 0; pos < token.text.size();) {
            if (token.text.compare(pos, kWordMarker.size(), kWordMarker) == 0) {
              token.bytes += ' ';
              pos += kWordMarker.size();
            } else {
              token.bytes += token.text[pos++];
            }
          }
        } else {
          // Each stand-in character back to its byte; anything else (not produced by the
          // byte mapping) is kept as written.
          for (size_t offset = 0; offset < token.text.size();) {
            size_t begin = offset;
            uint32_t cp = next_code_point(token.text, offset);
            auto it = char_bytes_.find(cp);
            if (it != char_bytes_.end()) {
              token.bytes += static_cast<char>(it->second);
            } else {
              token.bytes.append(token.text, begin, offset - begin);
            }
          }
        }
        break;
      default: break;  // control, unknown, unused: no text of their own
    }
  }
}

std::string Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return {};
  return vocab_[id].bytes;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_control) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= n_vocab()) continue;
    const TokenData& token = vocab_[id];
    out += (render_control && token.type == TokenType::kControl) ? token.text : token.bytes;
  }
  return out;
}

std::string StreamDecoder::push(int32_t id) { return push_bytes(tokenizer_.decode({&id, 1}, render_control_)); }

std::string StreamDecoder::push_bytes(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t held = append_complete_utf8(pending_, out);
  pending_.erase(0, pending_.size() - held);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = sanitize_utf8(pending_);
  pending_.clear();
  return out;
}

std::string sanitize_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t held = append_complete_utf8(bytes, out);
  if (held > 0) out.append(kReplacementCharacter);  // an unfinished character at the end
  return out;
}

}  // namespace clusterd
