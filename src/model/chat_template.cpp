// The four chat formats, written out by hand from each model family's reference template.
#include "clusterd/model/chat_template.h"

#include <string>

namespace clusterd {
namespace {

std::string trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  size_t end = s.find_last_not_of(kSpace);
  return std::string(s.substr(begin, end - begin + 1));
}

// Several system messages before one user turn are joined by a blank line.
void add_system(std::string& pending, const std::string& content) {
  if (!pending.empty()) pending += "\n\n";
  pending += content;
}

// Llama 2 chat: <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s>
std::string render_llama2(const std::vector<ChatMessage>& messages, const std::string& bos, const std::string& eos) {
  std::string out;
  std::string system;
  bool pending_turn = false;  // a system prompt waits for its user turn
  auto user_turn = [&](const std::string& content) {
    std::string text;
    if (!system.empty()) text.append("<<SYS>>\n").append(system).append("\n<</SYS>>\n\n");
    text += content;
    out.append(bos).append("[INST] ").append(trim(text)).append(" [/INST]");
    system.clear();
    pending_turn = false;
  };
  for (const ChatMessage& message : messages) {
    if (message.role == "system") {
      add_system(system, message.content);
      pending_turn = true;
    } else if (message.role == "assistant") {
      if (pending_turn) user_turn("");
      out.append(" ").append(trim(message.content)).append(" ").append(eos);
    } else {
      user_turn(message.content);
    }
  }
  if (pending_turn) user_turn("");
  return out;
}

// Llama 3: <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>
std::string render_llama3(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                          const std::string& bos) {
  std::string out = bos;
  for (const ChatMessage& message : messages) {
    out.append("<|start_header_id|>").append(message.role).append("<|end_header_id|>\n\n");
    out.append(trim(message.content)).append("<|eot_id|>");
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// Mistral v1: <s> [INST] {system}\n\n{user} [/INST] {answer}</s> [INST] {user} [/INST]
std::string render_mistral(const std::vector<ChatMessage>& messages, const std::string& bos, const std::string& eos) {
  std::string out = bos;
  std::string system;
  for (const ChatMessage& message : messages) {
    if (message.role == "system") {
      add_system(system, message.content);
    } else if (message.role == "assistant") {
      out.append(" ").append(message.content).append(eos);
    } else {
      out += " [INST] ";
      if (!system.empty()) out.append(system).append("\n\n");
      out.append(message.content).append(" [/INST]");
      system.clear();
    }
  }
  if (!system.empty()) out.append(" [INST] ").append(system).append("\n\n [/INST]");
  return out;
}

// ChatML: <|im_start|>{role}\n{content}<|im_end|>\n
std::string render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& message : messages) {
    out.append("<|im_start|>").append(message.role).append("\n").append(message.content).append("<|im_end|>\n");
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace

ChatTemplateFamily detect_chat_template(std::string_view jinja_source, bool& recognized) {
  auto has = [&](std::string_view marker) { return jinja_source.find(marker) != std::string_view::npos; };
  recognized = true;
  if (has("<|start_header_id|>")) return ChatTemplateFamily::kLlama3;
  if (has("<|im_start|>")) return ChatTemplateFamily::kChatML;
  if (has("[INST]")) return has("<<SYS>>") ? ChatTemplateFamily::kLlama2 : ChatTemplateFamily::kMistral;
  recognized = false;
  return ChatTemplateFamily::kChatML;
}

std::optional<ChatTemplateFamily> parse_chat_template_name(std::string_view name) {
  for (ChatTemplateFamily family : {ChatTemplateFamily::kLlama2, ChatTemplateFamily::kLlama3,
                                    ChatTemplateFamily::kMistral, ChatTemplateFamily::kChatML}) {
    if (name == chat_template_name(family)) return family;
  }
  return std::nullopt;
}

const char* chat_template_name(ChatTemplateFamily family) {
  switch (family) {
    case ChatTemplateFamily::kLlama2: return "llama2";
    case ChatTemplateFamily::kLlama3: return "llama3";
    case ChatTemplateFamily::kMistral: return "mistral";
    case ChatTemplateFamily::kChatML: return "chatml";
  }
  return "chatml";
}

std::string render_chat(ChatTemplateFamily family, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                        const std::string& bos_text, const std::string& eos_text) {
  switch (family) {
    case ChatTemplateFamily::kLlama2: return render_llama2(messages, bos_text, eos_text);
    case ChatTemplateFamily::kLlama3: return render_llama3(messages, add_generation_prompt, bos_text);
    case ChatTemplateFamily::kMistral: return render_mistral(messages, bos_text, eos_text);
    case ChatTemplateFamily::kChatML: return render_chatml(messages, add_generation_prompt);
  }
  return render_chatml(messages, add_generation_prompt);
}

}  // namespace clusterd
