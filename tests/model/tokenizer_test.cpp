// Tokenizers: the reference token ids for the fixture vocabularies, special tokens,
// BOS, round trips, streaming decode, and small hand-made vocabularies that pin down
// the merge rules.
#include "clusterd/model/tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "clusterd/model/gguf.h"
#include "support/shared_fixtures.h"

namespace clusterd {
namespace {

namespace fs = std::filesystem;

// ../shared next to the repository, looked for from the working directory (ctest runs
// in the build tree) and from the test binary's directory.
std::optional<fs::path> find_shared_dir() { return clusterd::testing::find_shared_dir(); }

#define REQUIRE_SHARED(var)                                                       \
  std::optional<fs::path> var = find_shared_dir();                                \
  if (!var)                                                                       \
  GTEST_SKIP() << "../shared was not found (test models and reference outputs); " \
                  "skipping tests that need it"

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& model) {
  Result<std::unique_ptr<GgufFile>> file = GgufFile::open(model);
  EXPECT_TRUE(file.is_ok()) << file.status().to_string();
  if (!file.is_ok()) return nullptr;
  Result<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::from_gguf(**file);
  EXPECT_TRUE(tokenizer.is_ok()) << tokenizer.status().to_string();
  if (!tokenizer.is_ok()) return nullptr;
  return std::move(tokenizer).value();
}

struct GoldenCase {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<GoldenCase> read_golden(const fs::path& path) {
  std::ifstream in(path);
  nlohmann::json doc = nlohmann::json::parse(in);
  std::vector<GoldenCase> cases;
  for (const auto& item : doc)
    cases.push_back({item.at("text").get<std::string>(), item.at("ids").get<std::vector<int32_t>>()});
  return cases;
}

std::string ids_to_string(const std::vector<int32_t>& ids) {
  std::ostringstream out;
  for (size_t i = 0; i < ids.size(); ++i) out << (i ? "," : "") << ids[i];
  return out.str();
}

// Every golden file whose model is present: (name, tokenizer, cases).
struct GoldenVocab {
  std::string name;
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<GoldenCase> cases;
};

std::vector<GoldenVocab> load_golden_vocabs(const fs::path& shared) {
  std::vector<GoldenVocab> vocabs;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(shared / "golden" / "tokenize")) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    std::string name = file.stem().string();
    fs::path model = shared / "models" / (name + ".gguf");
    if (!fs::exists(model)) continue;
    GoldenVocab vocab{name, load_tokenizer(model), read_golden(file)};
    if (vocab.tokenizer) vocabs.push_back(std::move(vocab));
  }
  return vocabs;
}

TEST(TokenizerGolden, EncodesEveryReferenceStringToTheReferenceIds) {
  REQUIRE_SHARED(shared);
  std::vector<GoldenVocab> vocabs = load_golden_vocabs(*shared);
  ASSERT_FALSE(vocabs.empty()) << "no golden/tokenize/NAME.json has a models/NAME.gguf under " << *shared;
  for (const GoldenVocab& vocab : vocabs) {
    size_t matched = 0;
    for (const GoldenCase& c : vocab.cases) {
      std::vector<int32_t> ids = vocab.tokenizer->encode(c.text, /*add_bos=*/false, /*parse_special=*/false);
      if (ids == c.ids) {
        ++matched;
      } else {
        ADD_FAILURE() << vocab.name << ": " << nlohmann::json(c.text).dump() << "\n  expected " << ids_to_string(c.ids)
                      << "\n  got      " << ids_to_string(ids);
      }
    }
    std::cout << "[ golden   ] " << vocab.name << ": " << matched << "/" << vocab.cases.size() << " strings match\n";
    EXPECT_EQ(matched, vocab.cases.size()) << vocab.name;
  }
}

TEST(TokenizerGolden, DecodeReturnsTheOriginalText) {
  REQUIRE_SHARED(shared);
  for (const GoldenVocab& vocab : load_golden_vocabs(*shared)) {
    const bool spm = vocab.tokenizer->kind() == TokenizerKind::kSentencePiece;
    for (const GoldenCase& c : vocab.cases) {
      std::string decoded = vocab.tokenizer->decode(vocab.tokenizer->encode(c.text, false, false));
      // SentencePiece marks the start of the text as a word start: a leading space.
      std::string expected = (spm && !c.text.empty()) ? " " + c.text : c.text;
      EXPECT_EQ(decoded, expected) << vocab.name;
    }
  }
}

TEST(TokenizerGolden, StreamDecoderNeverEmitsHalfACharacter) {
  REQUIRE_SHARED(shared);
  const std::vector<std::string> texts = {"Äpfel", "emoji 🙂🚀👩‍💻 done", "東京は日本の首都です。",
                                          "Cửa Việt ½"};
  for (const GoldenVocab& vocab : load_golden_vocabs(*shared)) {
    for (const std::string& text : texts) {
      std::vector<int32_t> ids = vocab.tokenizer->encode(text, false, false);
      StreamDecoder decoder(*vocab.tokenizer);
      std::string streamed;
      for (int32_t id : ids) {
        std::string piece = decoder.push(id);
        EXPECT_EQ(sanitize_utf8(piece), piece) << vocab.name << ": token " << id << " emitted invalid UTF-8";
        streamed += piece;
      }
      EXPECT_EQ(decoder.pending(), 0u) << vocab.name;
      streamed += decoder.flush();
      std::string expected = vocab.tokenizer->kind() == TokenizerKind::kSentencePiece ? " " + text : text;
      EXPECT_EQ(streamed, expected) << vocab.name;
    }
  }
}

TEST(TokenizerFixtures, MultiByteCharactersReallyAreSplitAcrossTokens) {
  // Guards the streaming test above: on these vocabularies "Äpfel" and "🙂" do arrive in pieces.
  REQUIRE_SHARED(shared);
  std::unique_ptr<Tokenizer> qwen = load_tokenizer(*shared / "models" / "tiny-qwen2.q8_0.gguf");
  ASSERT_TRUE(qwen);
  std::vector<int32_t> ids = qwen->encode("Äpfel", false, false);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(qwen->token_bytes(ids[0]), "\xC3");  // the first byte of Ä alone
  StreamDecoder decoder(*qwen);
  EXPECT_EQ(decoder.push(ids[0]), "");
  EXPECT_EQ(decoder.push(ids[1]), "Ä");

  std::unique_ptr<Tokenizer> stories = load_tokenizer(*shared / "models" / "stories260K.gguf");
  ASSERT_TRUE(stories);
  std::vector<int32_t> emoji = stories->encode("🙂", false, false);
  ASSERT_EQ(emoji.size(), 5u);  // "▁" and four byte-fallback tokens
  StreamDecoder spm_decoder(*stories);
  EXPECT_EQ(spm_decoder.push(emoji[0]), " ");
  for (int i = 1; i < 4; ++i) EXPECT_EQ(spm_decoder.push(emoji[i]), "");
  EXPECT_EQ(spm_decoder.push(emoji[4]), "🙂");
}

TEST(TokenizerFixtures, AddsBosOnlyWhenAsked) {
  REQUIRE_SHARED(shared);
  for (const char* name : {"stories260K.gguf", "tiny-llama3-bpe.f16.gguf"}) {
    std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(*shared / "models" / name);
    ASSERT_TRUE(tokenizer);
    EXPECT_TRUE(tokenizer->add_bos()) << name;
    std::vector<int32_t> with = tokenizer->encode("Hello world", true, false);
    std::vector<int32_t> without = tokenizer->encode("Hello world", false, false);
    ASSERT_EQ(with.size(), without.size() + 1) << name;
    EXPECT_EQ(with.front(), tokenizer->bos()) << name;
    EXPECT_NE(without.front(), tokenizer->bos()) << name;
    EXPECT_EQ(std::vector<int32_t>(with.begin() + 1, with.end()), without) << name;
    EXPECT_EQ(tokenizer->encode("", true, false), std::vector<int32_t>{tokenizer->bos()}) << name;
  }
  std::unique_ptr<Tokenizer> stories = load_tokenizer(*shared / "models" / "stories260K.gguf");
  ASSERT_TRUE(stories);
  EXPECT_EQ(stories->bos(), 1);
  EXPECT_EQ(stories->eos(), 2);
  EXPECT_EQ(stories->n_vocab(), 512);
}

TEST(TokenizerFixtures, ParseSpecialTurnsControlTokenTextIntoItsId) {
  REQUIRE_SHARED(shared);
  std::unique_ptr<Tokenizer> qwen = load_tokenizer(*shared / "models" / "tiny-qwen2.q8_0.gguf");
  ASSERT_TRUE(qwen);
  // The fixture carries the GPT-2 vocabulary: <|endoftext|> is its one control token
  // (it has no <|im_start|>; the hand-made vocabulary below covers that one).
  std::optional<int32_t> end = qwen->find_token("<|endoftext|>");
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(qwen->encode("<|endoftext|>", false, true), std::vector<int32_t>{*end});
  std::vector<int32_t> as_text = qwen->encode("<|endoftext|>", false, false);
  EXPECT_GT(as_text.size(), 1u);
  EXPECT_EQ(qwen->decode(as_text), "<|endoftext|>");

  std::vector<int32_t> mixed = qwen->encode("Hi<|endoftext|>Hi", false, true);
  std::vector<int32_t> hi = qwen->encode("Hi", false, false);
  std::vector<int32_t> expected = hi;
  expected.push_back(*end);
  expected.insert(expected.end(), hi.begin(), hi.end());
  EXPECT_EQ(mixed, expected);
  EXPECT_TRUE(qwen->is_end_of_generation(*end));
  EXPECT_FALSE(qwen->is_end_of_generation(hi.front()));
  EXPECT_EQ(qwen->token_bytes(*end), "");  // control tokens stand for no text
  EXPECT_EQ(qwen->decode(std::vector<int32_t>{*end}, /*render_control=*/true), "<|endoftext|>");
}

TEST(TokenizerFixtures, FindsTokensByTheirVocabularyText) {
  REQUIRE_SHARED(shared);
  std::unique_ptr<Tokenizer> stories = load_tokenizer(*shared / "models" / "stories260K.gguf");
  ASSERT_TRUE(stories);
  EXPECT_EQ(stories->find_token("<s>"), std::optional<int32_t>(1));
  EXPECT_EQ(stories->find_token("no such token"), std::nullopt);
  EXPECT_TRUE(stories->is_end_of_generation(stories->eos()));
  EXPECT_EQ(stories->token_bytes(stories->bos()), "");
}

TEST(TokenizerFixtures, RefusesAFileWithoutAVocabulary) {
  GgufWriter writer;
  writer.set("general.architecture", GgufValue::str("llama"));
  std::vector<uint8_t> bytes = writer.to_bytes();
  Result<std::unique_ptr<GgufFile>> file = GgufFile::parse(bytes, "novocab.gguf");
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  Result<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::from_gguf(**file);
  ASSERT_FALSE(tokenizer.is_ok());
  EXPECT_NE(tokenizer.status().message().find("novocab.gguf"), std::string::npos);
  EXPECT_NE(tokenizer.status().message().find("tokenizer.ggml.model"), std::string::npos);
}

// --- hand-made vocabularies --------------------------------------------------------

GgufValue strings(const std::vector<std::string>& items) {
  std::vector<GgufValue> values;
  for (const std::string& s : items) values.push_back(GgufValue::str(s));
  return GgufValue::array(GgufValueType::kString, std::move(values));
}

GgufValue floats(const std::vector<float>& items) {
  std::vector<GgufValue> values;
  for (float f : items) values.push_back(GgufValue::f32(f));
  return GgufValue::array(GgufValueType::kFloat32, std::move(values));
}

GgufValue ints(const std::vector<int32_t>& items) {
  std::vector<GgufValue> values;
  for (int32_t i : items) values.push_back(GgufValue::i32(i));
  return GgufValue::array(GgufValueType::kInt32, std::move(values));
}

// Holds the bytes the parsed file points into.
struct MadeVocab {
  std::vector<uint8_t> bytes;
  std::unique_ptr<Tokenizer> tokenizer;
};

MadeVocab make_vocab(const GgufWriter& writer) {
  MadeVocab made;
  made.bytes = writer.to_bytes();
  Result<std::unique_ptr<GgufFile>> file = GgufFile::parse(made.bytes, "made.gguf");
  EXPECT_TRUE(file.is_ok()) << file.status().to_string();
  if (!file.is_ok()) return made;
  Result<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::from_gguf(**file);
  EXPECT_TRUE(tokenizer.is_ok()) << tokenizer.status().to_string();
  if (tokenizer.is_ok()) made.tokenizer = std::move(tokenizer).value();
  return made;
}

// A SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, then `pieces` with `scores`.
MadeVocab make_spm(const std::vector<std::string>& pieces, const std::vector<float>& scores) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> all_scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    tokens.push_back(name);
    all_scores.push_back(0);
    types.push_back(6);
  }
  for (size_t i = 0; i < pieces.size(); ++i) {
    tokens.push_back(pieces[i]);
    all_scores.push_back(scores[i]);
    types.push_back(1);
  }
  GgufWriter writer;
  writer.set("tokenizer.ggml.model", GgufValue::str("llama"));
  writer.set("tokenizer.ggml.tokens", strings(tokens));
  writer.set("tokenizer.ggml.scores", floats(all_scores));
  writer.set("tokenizer.ggml.token_type", ints(types));
  return make_vocab(writer);
}

TEST(TokenizerSentencePiece, MergesTheBestScoringPairFirst) {
  constexpr int32_t kFirst = 3 + 256;  // ids of `pieces` start here
  MadeVocab ab_wins = make_spm({"\xE2\x96\x81", "a", "b", "c", "ab", "bc"}, {-1, -1, -1, -1, -2, -3});
  ASSERT_TRUE(ab_wins.tokenizer);
  // "▁abc": "ab" (-2) beats "bc" (-3).
  EXPECT_EQ(ab_wins.tokenizer->encode("abc", false, false), (std::vector<int32_t>{kFirst, kFirst + 4, kFirst + 3}));
  MadeVocab bc_wins = make_spm({"\xE2\x96\x81", "a", "b", "c", "ab", "bc"}, {-1, -1, -1, -1, -3, -2});
  ASSERT_TRUE(bc_wins.tokenizer);
  EXPECT_EQ(bc_wins.tokenizer->encode("abc", false, false), (std::vector<int32_t>{kFirst, kFirst + 1, kFirst + 5}));
}

TEST(TokenizerSentencePiece, FallsBackToBytesForUnknownCharacters) {
  MadeVocab made = make_spm({"\xE2\x96\x81", "a"}, {-1, -1});
  ASSERT_TRUE(made.tokenizer);
  // "é" is not a piece: its two UTF-8 bytes become <0xC3> <0xA9>.
  EXPECT_EQ(made.tokenizer->encode("aé", false, false),
            (std::vector<int32_t>{3 + 256, 3 + 256 + 1, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(made.tokenizer->decode(made.tokenizer->encode("aé", false, false)), " aé");
}

TEST(TokenizerSentencePiece, ParseSpecialRestartsTheWordPrefixAfterASpecialToken) {
  MadeVocab made = make_spm({"\xE2\x96\x81", "a",
                             "\xE2\x96\x81"
                             "a"},
                            {-1, -1, -0.5f});
  ASSERT_TRUE(made.tokenizer);
  const int32_t space_a = 3 + 256 + 2;
  EXPECT_EQ(made.tokenizer->encode("a</s>a", true, true), (std::vector<int32_t>{1, space_a, 2, space_a}));
}

// A byte-level BPE vocabulary: the 256 byte characters, a few merges, ChatML control tokens.
MadeVocab make_chatml_bpe() {
  std::vector<std::string> tokens;
  // GPT-2's byte-to-unicode table, written out the same way the converters do.
  int next_free = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    int cp = printable ? b : next_free++;
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    tokens.push_back(s);
  }
  tokens.push_back("he");            // 256
  tokens.push_back("ll");            // 257
  tokens.push_back("hell");          // 258
  tokens.push_back("hello");         // 259
  tokens.push_back("<|im_start|>");  // 260
  tokens.push_back("<|im_end|>");    // 261
  std::vector<int32_t> types(tokens.size(), 1);
  types[260] = 3;
  types[261] = 3;
  GgufWriter writer;
  writer.set("tokenizer.ggml.model", GgufValue::str("gpt2"));
  writer.set("tokenizer.ggml.pre", GgufValue::str("qwen2"));
  writer.set("tokenizer.ggml.tokens", strings(tokens));
  writer.set("tokenizer.ggml.token_type", ints(types));
  writer.set("tokenizer.ggml.merges", strings({"l l", "h e", "he ll", "hell o"}));
  writer.set("tokenizer.ggml.eos_token_id", GgufValue::u32(261));
  return make_vocab(writer);
}

TEST(TokenizerBytePair, MergesByRankAndFallsBackToByteCharacters) {
  MadeVocab made = make_chatml_bpe();
  ASSERT_TRUE(made.tokenizer);
  EXPECT_EQ(made.tokenizer->encode("hello", false, false), std::vector<int32_t>{259});
  // " hello": the space is its own byte character (Ġ = token 32) in front of the word.
  EXPECT_EQ(made.tokenizer->encode(" hello", false, false), (std::vector<int32_t>{32, 259}));
  EXPECT_EQ(made.tokenizer->decode(made.tokenizer->encode("héllo\n", false, false)), "héllo\n");
}

TEST(TokenizerBytePair, KeepsInvalidUtf8AndHugeWhitespaceRunsIntact) {
  MadeVocab made = make_chatml_bpe();
  ASSERT_TRUE(made.tokenizer);
  const std::string broken = "a\xFF b\xC3";
  EXPECT_EQ(made.tokenizer->decode(made.tokenizer->encode(broken, false, false)), broken);
  const std::string spaces = std::string(200000, ' ') + "x" + std::string(100000, '\n');
  EXPECT_EQ(made.tokenizer->decode(made.tokenizer->encode(spaces, false, false)), spaces);
}

TEST(TokenizerBytePair, ParseSpecialMatchesImStartAsOneToken) {
  MadeVocab made = make_chatml_bpe();
  ASSERT_TRUE(made.tokenizer);
  const Tokenizer& tok = *made.tokenizer;
  EXPECT_EQ(tok.find_token("<|im_start|>"), std::optional<int32_t>(260));
  EXPECT_EQ(tok.encode("<|im_start|>hello<|im_end|>", false, true), (std::vector<int32_t>{260, 259, 261}));
  std::vector<int32_t> plain = tok.encode("<|im_start|>", false, false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(tok.decode(plain), "<|im_start|>");
  EXPECT_TRUE(tok.is_end_of_generation(261));
  EXPECT_FALSE(tok.is_end_of_generation(260));
  EXPECT_FALSE(tok.add_bos());
}

TEST(TokenizerBytePair, RefusesAnUnknownPreTokenizerByName) {
  GgufWriter writer;
  writer.set("tokenizer.ggml.model", GgufValue::str("gpt2"));
  writer.set("tokenizer.ggml.pre", GgufValue::str("made-up"));
  writer.set("tokenizer.ggml.tokens", strings({"a", "b"}));
  writer.set("tokenizer.ggml.merges", strings({"a b"}));
  std::vector<uint8_t> bytes = writer.to_bytes();
  Result<std::unique_ptr<GgufFile>> file = GgufFile::parse(bytes, "pre.gguf");
  ASSERT_TRUE(file.is_ok());
  Result<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::from_gguf(**file);
  ASSERT_FALSE(tokenizer.is_ok());
  EXPECT_NE(tokenizer.status().message().find("'made-up'"), std::string::npos) << tokenizer.status().message();
}

TEST(TokenizerStream, HoldsBackPartialSequencesAndReplacesInvalidBytes) {
  MadeVocab made = make_chatml_bpe();
  ASSERT_TRUE(made.tokenizer);
  StreamDecoder decoder(*made.tokenizer);
  const std::string emoji = "🚀";  // F0 9F 9A 80
  for (size_t i = 0; i + 1 < emoji.size(); ++i) EXPECT_EQ(decoder.push_bytes(emoji.substr(i, 1)), "");
  EXPECT_EQ(decoder.push_bytes(emoji.substr(3)), emoji);
  EXPECT_EQ(decoder.push_bytes("\xFF"
                               "a"),
            "\xEF\xBF\xBD"
            "a");                                 // never valid: replaced at once
  EXPECT_EQ(decoder.push_bytes("\xE6\x9D"), "");  // two of the three bytes of 東
  EXPECT_EQ(decoder.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(decoder.pending(), 0u);
  EXPECT_EQ(decoder.push_bytes("\xE6\x9D\xB1"), "東");
}

TEST(TokenizerStream, SanitizeReplacesEachInvalidSubpart) {
  EXPECT_EQ(sanitize_utf8("ok"), "ok");
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong: two bad bytes
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  EXPECT_EQ(sanitize_utf8("\xF0\x9F\x9A"), "\xEF\xBF\xBD");                          // one truncated character
}

}  // namespace
}  // namespace clusterd
