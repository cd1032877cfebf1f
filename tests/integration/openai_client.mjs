// Drives a clusterd node with the official `openai` npm package and prints what it got
// as one JSON document, for test_openai.sh to check.
//   node openai_client.mjs BASE_URL MODEL
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "clusterd-test-token-0123456789", maxRetries: 0 });
const out = {};

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

const completion = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 24, temperature: 0 });
out.completion = completion.choices[0].text;
out.completion_finish = completion.choices[0].finish_reason;
out.completion_usage = completion.usage;

const messages = [{ role: "user", content: "Tell me about Lily." }];
const chat = await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0 });
out.chat = chat.choices[0].message.content;
out.chat_role = chat.choices[0].message.role;

const stream = await client.chat.completions.create({
  model, messages, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true },
});
out.chat_stream = "";
out.stream_chunks = 0;
for await (const chunk of stream) {
  out.stream_chunks++;
  if (chunk.choices.length > 0 && chunk.choices[0].delta.role) out.stream_role = chunk.choices[0].delta.role;
  if (chunk.choices.length > 0 && chunk.choices[0].delta.content) out.chat_stream += chunk.choices[0].delta.content;
  if (chunk.usage) out.stream_usage = chunk.usage;
}

const textStream = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 24, temperature: 0, stream: true });
out.completion_stream = "";
for await (const chunk of textStream) out.completion_stream += chunk.choices[0]?.text ?? "";

try {
  await client.chat.completions.create({ model: "no-such-model", messages });
  out.error_status = 0;
} catch (e) {
  out.error_status = e.status;
  out.error_message = e.message;
}
try {
  await client.chat.completions.create({ model, messages, temperature: 7 });
  out.bad_field_status = 0;
} catch (e) {
  out.bad_field_status = e.status;
  out.bad_field_param = e.param;
}
console.log(JSON.stringify(out));
