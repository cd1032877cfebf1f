// Chat templates: recognising a model's template and rendering each family exactly as
// its reference template does.
#include "clusterd/model/chat_template.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace clusterd {
namespace {

const std::vector<ChatMessage> kConversation = {
    {"system", "You are a helpful assistant."},
    {"user", "Hello"},
    {"assistant", "Hi there!"},
    {"user", "What is 2+2?"},
};

TEST(ChatTemplateRender, Llama2WrapsTheSystemPromptInTheFirstTurn) {
  EXPECT_EQ(render_chat(ChatTemplateFamily::kLlama2, kConversation, true, "<s>", "</s>"),
            "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello [/INST]"
            " Hi there! </s>"
            "<s>[INST] What is 2+2? [/INST]");
}

TEST(ChatTemplateRender, Llama2WithoutSystemPromptTrimsMessages) {
  EXPECT_EQ(render_chat(ChatTemplateFamily::kLlama2, {{"user", "  Hello \n"}}, true, "<s>", "</s>"),
            "<s>[INST] Hello [/INST]");
}

TEST(ChatTemplateRender, Llama3UsesHeaderTokensAndABlankLine) {
  EXPECT_EQ(render_chat(ChatTemplateFamily::kLlama3, kConversation, true, "<|begin_of_text|>", "<|eot_id|>"),
            "<|begin_of_text|>"
            "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there!<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateRender, Llama3WithoutGenerationPromptEndsAfterTheLastMessage) {
  EXPECT_EQ(render_chat(ChatTemplateFamily::kLlama3, {{"user", "Hi"}}, false, "", ""),
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

TEST(ChatTemplateRender, MistralPutsTheSystemPromptBeforeTheFirstUserMessage) {
  EXPECT_EQ(render_chat(ChatTemplateFamily::kMistral, kConversation, true, "<s>", "</s>"),
            "<s> [INST] You are a helpful assistant.\n\nHello [/INST] Hi there!</s>"
            " [INST] What is 2+2? [/INST]");
}

TEST(ChatTemplateRender, ChatMLGivesEveryMessageItsOwnBlock) {
  EXPECT_EQ(render_chat(ChatTemplateFamily::kChatML, kConversation, true, "", "<|im_end|>"),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHello<|im_end|>\n"
            "<|im_start|>assistant\nHi there!<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(ChatTemplateFamily::kChatML, {{"user", " x "}}, false, "", ""),
            "<|im_start|>user\n x <|im_end|>\n");
}

TEST(ChatTemplateDetect, RecognisesEachFamilyByItsMarkers) {
  bool recognized = false;
  EXPECT_EQ(detect_chat_template("{{ '<|start_header_id|>' + message['role'] }}", recognized),
            ChatTemplateFamily::kLlama3);
  EXPECT_TRUE(recognized);
  EXPECT_EQ(detect_chat_template("{{'<|im_start|>' + message['role'] + '\\n'}}", recognized),
            ChatTemplateFamily::kChatML);
  EXPECT_TRUE(recognized);
  EXPECT_EQ(detect_chat_template("{{ bos_token + '[INST] ' + '<<SYS>>\\n' }}", recognized),
            ChatTemplateFamily::kLlama2);
  EXPECT_TRUE(recognized);
  EXPECT_EQ(detect_chat_template("{{ bos_token }}{{ '[INST] ' + message['content'] + ' [/INST]' }}", recognized),
            ChatTemplateFamily::kMistral);
  EXPECT_TRUE(recognized);
}

TEST(ChatTemplateDetect, UnknownTemplateFallsBackToChatMLUnrecognized) {
  bool recognized = true;
  EXPECT_EQ(detect_chat_template("{% for m in messages %}<|user|>{{ m.content }}{% endfor %}", recognized),
            ChatTemplateFamily::kChatML);
  EXPECT_FALSE(recognized);
  recognized = true;
  EXPECT_EQ(detect_chat_template("", recognized), ChatTemplateFamily::kChatML);
  EXPECT_FALSE(recognized);
}

TEST(ChatTemplateName, ParsesTheFourOverrideNames) {
  EXPECT_EQ(parse_chat_template_name("llama2"), ChatTemplateFamily::kLlama2);
  EXPECT_EQ(parse_chat_template_name("llama3"), ChatTemplateFamily::kLlama3);
  EXPECT_EQ(parse_chat_template_name("mistral"), ChatTemplateFamily::kMistral);
  EXPECT_EQ(parse_chat_template_name("chatml"), ChatTemplateFamily::kChatML);
  EXPECT_EQ(parse_chat_template_name("vicuna"), std::nullopt);
  EXPECT_EQ(parse_chat_template_name(""), std::nullopt);
  for (ChatTemplateFamily family : {ChatTemplateFamily::kLlama2, ChatTemplateFamily::kLlama3,
                                    ChatTemplateFamily::kMistral, ChatTemplateFamily::kChatML}) {
    EXPECT_EQ(parse_chat_template_name(chat_template_name(family)), family);
  }
}

}  // namespace
}  // namespace clusterd
