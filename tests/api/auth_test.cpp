// API bearer tokens: the token file, and who may call which route.
#include "clusterd/api/auth.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace clusterd {
namespace {

constexpr const char* kReadToken = "read-token-0123456789";
constexpr const char* kInferenceToken = "inference-token-0123456789";
constexpr const char* kAdminToken = "admin-token-0123456789";

const char* kThreeTokens = R"(
[[tokens]]
name = "dashboard"
token = "read-token-0123456789"
scopes = ["read"]

[[tokens]]
name = "chat-app"
token = "inference-token-0123456789"
scopes = ["inference"]

[[tokens]]
name = "operator"
token = "admin-token-0123456789"
scopes = ["read", "admin"]
)";

TokenStore three_tokens() {
  auto store = parse_token_text(kThreeTokens, "tokens.toml");
  EXPECT_TRUE(store.is_ok()) << store.status().to_string();
  return store.is_ok() ? *store : TokenStore();
}

std::string bearer(const char* token) { return std::string("Bearer ") + token; }

// Expects `text` to be refused with a message naming the source and `entry`.
void expect_refused_naming(const std::string& text, const std::string& entry) {
  auto store = parse_token_text(text, "tokens.toml");
  ASSERT_FALSE(store.is_ok()) << "accepted:\n" << text;
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(store.status().message().find("tokens.toml"), std::string::npos) << store.status().message();
  EXPECT_NE(store.status().message().find(entry), std::string::npos) << store.status().message();
}

TEST(TokenFile, ValidFileWithThreeTokensGivesEachItsScope) {
  TokenStore store = three_tokens();
  EXPECT_FALSE(store.open_access());
  std::string who;
  EXPECT_EQ(store.check(bearer(kReadToken), Scope::kRead, who), TokenStore::Decision::kAllow);
  EXPECT_EQ(who, "dashboard");
  EXPECT_EQ(store.check(bearer(kInferenceToken), Scope::kInference, who), TokenStore::Decision::kAllow);
  EXPECT_EQ(who, "chat-app");
  EXPECT_EQ(store.check(bearer(kAdminToken), Scope::kAdmin, who), TokenStore::Decision::kAllow);
  EXPECT_EQ(who, "operator");
}

TEST(TokenFile, EntryWithoutANameIsRefusedNamingTheEntry) {
  expect_refused_naming(R"(
[[tokens]]
name = "ok"
token = "first-token-0123456789"
scopes = ["read"]

[[tokens]]
token = "second-token-0123456789"
scopes = ["read"]
)",
                        "tokens[1]");
}

TEST(TokenFile, EntryWithAnEmptyNameIsRefused) {
  expect_refused_naming("[[tokens]]\nname = \"\"\ntoken = \"first-token-0123456789\"\nscopes = [\"read\"]\n",
                        "tokens[0]");
}

TEST(TokenFile, TokenShorterThan16CharactersIsRefusedNamingTheEntry) {
  expect_refused_naming("[[tokens]]\nname = \"alice\"\ntoken = \"short\"\nscopes = [\"read\"]\n", "'alice'");
  expect_refused_naming("[[tokens]]\nname = \"alice\"\ntoken = \"123456789012345\"\nscopes = [\"read\"]\n",
                        "at least 16");
}

TEST(TokenFile, TokenOfExactly16CharactersIsAccepted) {
  EXPECT_TRUE(parse_token_text("[[tokens]]\nname = \"alice\"\ntoken = \"1234567890123456\"\nscopes = [\"read\"]\n", "t")
                  .is_ok());
}

TEST(TokenFile, MissingTokenIsRefusedNamingTheEntry) {
  expect_refused_naming("[[tokens]]\nname = \"alice\"\nscopes = [\"read\"]\n", "'alice'");
}

TEST(TokenFile, UnknownScopeIsRefusedNamingTheEntryAndTheValidScopes) {
  expect_refused_naming("[[tokens]]\nname = \"alice\"\ntoken = \"alice-token-0123456789\"\nscopes = [\"write\"]\n",
                        "'alice'");
  expect_refused_naming("[[tokens]]\nname = \"alice\"\ntoken = \"alice-token-0123456789\"\nscopes = [\"write\"]\n",
                        "read, inference or admin");
}

TEST(TokenFile, MissingOrEmptyScopesAreRefusedNamingTheEntry) {
  expect_refused_naming("[[tokens]]\nname = \"alice\"\ntoken = \"alice-token-0123456789\"\n", "'alice'");
  expect_refused_naming("[[tokens]]\nname = \"alice\"\ntoken = \"alice-token-0123456789\"\nscopes = []\n", "'alice'");
}

TEST(TokenFile, DuplicateTokenIsRefusedNamingTheSecondEntry) {
  expect_refused_naming(R"(
[[tokens]]
name = "alice"
token = "shared-token-0123456789"
scopes = ["read"]

[[tokens]]
name = "bob"
token = "shared-token-0123456789"
scopes = ["admin"]
)",
                        "'bob'");
}

TEST(TokenFile, FileWithoutTokensIsRefused) {
  expect_refused_naming("", "[[tokens]]");
  expect_refused_naming("tokens = []\n", "[[tokens]]");
}

TEST(TokenFile, SyntaxErrorGivesTheLine) {
  expect_refused_naming("[[tokens]]\nname = \"alice\"\ntoken = = \"x\"\n", "line 3");
}

TEST(TokenFile, LoadReadsAFileAndAMissingOneNamesThePath) {
  auto dir = std::filesystem::temp_directory_path();
  auto path = dir / ("clusterd-tokens-" + std::to_string(::getpid()) + ".toml");
  {
    std::ofstream out(path);
    out << kThreeTokens;
  }
  auto store = load_token_file(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  std::string who;
  EXPECT_EQ(store->check(bearer(kAdminToken), Scope::kAdmin, who), TokenStore::Decision::kAllow);

  auto missing = load_token_file(path);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find(path.string()), std::string::npos) << missing.status().message();
}

TEST(TokenCheck, OpenAccessAllowsEverythingWithoutAHeader) {
  TokenStore open;
  EXPECT_TRUE(open.open_access());
  std::string who;
  EXPECT_EQ(open.check("", Scope::kAdmin, who), TokenStore::Decision::kAllow);
  EXPECT_EQ(who, "anonymous");
}

TEST(TokenCheck, MissingHeaderIsUnauthenticated) {
  std::string who;
  EXPECT_EQ(three_tokens().check("", Scope::kRead, who), TokenStore::Decision::kUnauthenticated);
}

TEST(TokenCheck, WrongTokenIsUnauthenticated) {
  TokenStore store = three_tokens();
  std::string who;
  EXPECT_EQ(store.check("Bearer not-a-token-0123456789", Scope::kRead, who), TokenStore::Decision::kUnauthenticated);
  EXPECT_EQ(store.check("Bearer ", Scope::kRead, who), TokenStore::Decision::kUnauthenticated);
  EXPECT_TRUE(who.empty());
}

TEST(TokenCheck, PrefixOrExtensionOfARealTokenIsUnauthenticated) {
  TokenStore store = three_tokens();
  std::string who;
  std::string admin = kAdminToken;
  EXPECT_EQ(store.check("Bearer " + admin.substr(0, admin.size() - 1), Scope::kRead, who),
            TokenStore::Decision::kUnauthenticated);
  EXPECT_EQ(store.check("Bearer " + admin + "x", Scope::kRead, who), TokenStore::Decision::kUnauthenticated);
}

TEST(TokenCheck, TokenWithoutTheBearerSchemeIsUnauthenticated) {
  TokenStore store = three_tokens();
  std::string who;
  EXPECT_EQ(store.check(kAdminToken, Scope::kRead, who), TokenStore::Decision::kUnauthenticated);
  EXPECT_EQ(store.check(std::string("Basic ") + kAdminToken, Scope::kRead, who),
            TokenStore::Decision::kUnauthenticated);
}

TEST(TokenCheck, ReadTokenOnAnAdminRouteIsForbidden) {
  std::string who;
  EXPECT_EQ(three_tokens().check(bearer(kReadToken), Scope::kAdmin, who), TokenStore::Decision::kForbidden);
  EXPECT_EQ(who, "dashboard");  // known, so the log can say who was refused
}

TEST(TokenCheck, ReadTokenOnAnInferenceRouteIsForbidden) {
  std::string who;
  EXPECT_EQ(three_tokens().check(bearer(kReadToken), Scope::kInference, who), TokenStore::Decision::kForbidden);
}

TEST(TokenCheck, InferenceTokenIsAllowedOnReadAndInferenceRoutesButNotAdmin) {
  TokenStore store = three_tokens();
  std::string who;
  EXPECT_EQ(store.check(bearer(kInferenceToken), Scope::kRead, who), TokenStore::Decision::kAllow);
  EXPECT_EQ(store.check(bearer(kInferenceToken), Scope::kInference, who), TokenStore::Decision::kAllow);
  EXPECT_EQ(store.check(bearer(kInferenceToken), Scope::kAdmin, who), TokenStore::Decision::kForbidden);
}

TEST(TokenCheck, AdminTokenIsAllowedEverywhere) {
  TokenStore store = three_tokens();
  for (Scope needed : {Scope::kRead, Scope::kInference, Scope::kAdmin}) {
    std::string who;
    EXPECT_EQ(store.check(bearer(kAdminToken), needed, who), TokenStore::Decision::kAllow) << scope_name(needed);
    EXPECT_EQ(who, "operator");
  }
}

TEST(TokenCheck, HighestListedScopeCountsWhateverItsPlaceInTheList) {
  auto store = parse_token_text(
      "[[tokens]]\nname = \"ops\"\ntoken = \"ops-token-0123456789\"\nscopes = [\"admin\", \"read\"]\n", "t");
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  std::string who;
  EXPECT_EQ(store->check("Bearer ops-token-0123456789", Scope::kAdmin, who), TokenStore::Decision::kAllow);
}

TEST(ScopeName, NamesEveryScope) {
  EXPECT_STREQ(scope_name(Scope::kRead), "read");
  EXPECT_STREQ(scope_name(Scope::kInference), "inference");
  EXPECT_STREQ(scope_name(Scope::kAdmin), "admin");
}

}  // namespace
}  // namespace clusterd
