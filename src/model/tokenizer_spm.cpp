// SentencePiece (BPE-style, as llama.cpp runs it): spaces become "▁", the text is cut
// into UTF-8 characters, and the adjacent pair whose merged text is the best-scoring
// token is merged first, until no pair forms a token. Characters that are no token
// fall back to their bytes (<0xNN>).
#include <queue>
#include <string>
#include <vector>

#include "clusterd/model/tokenizer.h"

namespace clusterd {
namespace {

constexpr std::string_view kWordMarker = "\xE2\x96\x81";  // U+2581 "▁"

// A run of the text, linked to its neighbours; n == 0 once merged into its left neighbour.
struct SpmSymbol {
  int prev;
  int next;
  size_t begin;
  size_t n;
};

struct SpmBigram {
  int left;
  int right;
  float score;
  size_t size;  // bytes of both symbols when the pair was queued
};

// Best score first; on a tie the leftmost pair, so the result does not depend on the heap.
struct SpmBigramOrder {
  bool operator()(const SpmBigram& a, const SpmBigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

// Bytes in the UTF-8 sequence that `first` starts (1 for a stray continuation byte).
size_t utf8_sequence_length(unsigned char first) {
  static constexpr unsigned char kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[first >> 4];
}

}  // namespace

void Tokenizer::spm_encode(std::string_view raw, bool add_space_prefix, std::vector<int32_t>& out) const {
  std::string text;
  text.reserve(raw.size() + raw.size() / 2 + 3);
  if (add_space_prefix) text += kWordMarker;
  for (char c : raw) {
    if (c == ' ') {
      text += kWordMarker;
    } else {
      text += c;
    }
  }
  if (text.empty()) return;

  std::vector<SpmSymbol> symbols;
  for (size_t offset = 0; offset < text.size();) {
    size_t n = std::min(text.size() - offset, utf8_sequence_length(static_cast<unsigned char>(text[offset])));
    int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, offset + n == text.size() ? -1 : index + 1, offset, n});
    offset += n;
  }

  std::priority_queue<SpmBigram, std::vector<SpmBigram>, SpmBigramOrder> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    // Linked neighbours are always adjacent in the text.
    std::string_view merged(text.data() + symbols[left].begin, symbols[left].n + symbols[right].n);
    int32_t id = lookup(merged);
    if (id < 0) return;
    queue.push({left, right, vocab_[id].score, merged.size()});
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    SpmBigram bigram = queue.top();
    queue.pop();
    SpmSymbol& left = symbols[bigram.left];
    SpmSymbol& right = symbols[bigram.right];
    // Stale: one side was merged away or grew since the pair was queued.
    if (left.n == 0 || right.n == 0 || left.n + right.n != bigram.size) continue;
    left.n += right.n;
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = bigram.left;
    try_add(left.prev, bigram.left);
    try_add(bigram.left, left.next);
  }

  // Symbol 0 only ever grows, so the chain starts there.
  for (int i = 0; i != -1; i = symbols[i].next) {
    std::string_view piece(text.data() + symbols[i].begin, symbols[i].n);
    int32_t id = lookup(piece);
    if (id >= 0) {
      out.push_back(id);
    } else {
      spm_byte_fallback(piece, out);
    }
  }
}

void Tokenizer::spm_byte_fallback(std::string_view bytes, std::vector<int32_t>& out) const {
  for (char c : bytes) {
    int32_t id = byte_tokens_[static_cast<unsigned char>(c)];
    if (id < 0) id = unk_;
    if (id >= 0) out.push_back(id);
  }
}

}  // namespace clusterd
