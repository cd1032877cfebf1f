// Chat templates: turning a conversation into the prompt text a model was trained on.
// We do not run Jinja; we recognise the model's template by its distinctive markers and
// render one of four well-known formats natively.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace clusterd {

enum class ChatTemplateFamily {
  kLlama2,   // <s>[INST] <<SYS>>\n...\n<</SYS>>\n\nuser [/INST] assistant </s>
  kLlama3,   // <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
  kMistral,  // <s> [INST] user [/INST] assistant</s> (Mistral 7B v0.1/v0.2, Mixtral 8x7B)
  kChatML,   // <|im_start|>role\ncontent<|im_end|>\n
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (other roles render like "user" where a format has no slot)
  std::string content;
};

// Recognises the family of a tokenizer.chat_template source: "<|start_header_id|>" ->
// llama3, "<|im_start|>" -> chatml, "[INST]" with "<<SYS>>" -> llama2, "[INST]" alone ->
// mistral. Anything else (or "") gives chatml with `recognized` set to false.
ChatTemplateFamily detect_chat_template(std::string_view jinja_source, bool& recognized);

// "llama2", "llama3", "mistral" or "chatml" (a --chat-template override); nullopt otherwise.
std::optional<ChatTemplateFamily> parse_chat_template_name(std::string_view name);
// The name parse_chat_template_name accepts for `family`.
const char* chat_template_name(ChatTemplateFamily family);

// Renders `messages` in `family`'s format. `bos_text`/`eos_text` are written where the
// format has BOS/EOS (llama2: before every [INST] turn and after each answer; llama3: once
// at the start; mistral: BOS once, EOS after each answer; chatml uses neither); pass ""
// for a token the tokenizer adds itself. With `add_generation_prompt` the text ends
// where the assistant's answer begins (llama2 and mistral prompts always do). Tokenize
// the result with parse_special = true.
// System messages: llama2 wraps them in <<SYS>> inside the next user turn, mistral puts
// them before the next user message followed by a blank line, llama3 and chatml give
// them their own header. Llama 2 and Llama 3 trim surrounding whitespace of messages,
// as their reference templates do; Mistral and ChatML keep content verbatim.
std::string render_chat(ChatTemplateFamily family, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                        const std::string& bos_text, const std::string& eos_text);

}  // namespace clusterd
