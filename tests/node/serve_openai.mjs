// serve_openai.mjs - `minigpt serve` through OpenAI's official Node client:
// completions and chat, streamed and not; 4 concurrent streams all
// succeeding; an error surfaced as APIError; a replayed seed drawing the
// same text. Usage: node tests/node/serve_openai.mjs http://127.0.0.1:PORT/v1 MODEL
import OpenAI, { APIError } from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 60000 });
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`  ok   openai npm: ${name}`);
  } catch (e) {
    failed++;
    console.log(`  FAIL openai npm: ${name}: ${e && e.stack ? e.stack : e}`);
  }
}
function assert(cond, what) {
  if (!cond) throw new Error(what);
}

await check("completions.create: text, usage, finish_reason", async () => {
  const r = await client.completions.create({ model, prompt: "O Brasil é", max_tokens: 10, temperature: 0 });
  assert(r.object === "text_completion" && typeof r.choices[0].text === "string", JSON.stringify(r));
  assert(r.usage.completion_tokens === 10 && r.choices[0].finish_reason === "length", JSON.stringify(r));
});

await check("completions.create stream: the same text in chunks", async () => {
  const whole = await client.completions.create({ model, prompt: "Era uma vez", max_tokens: 16, temperature: 0 });
  const stream = await client.completions.create({ model, prompt: "Era uma vez", max_tokens: 16, temperature: 0, stream: true });
  let text = "", n = 0;
  for await (const c of stream) {
    text += c.choices[0].text;
    n++;
  }
  assert(text === whole.choices[0].text && n >= 2, `${JSON.stringify(text)} vs ${JSON.stringify(whole.choices[0].text)}`);
});

await check("chat.completions.create: an assistant message, usage", async () => {
  const r = await client.chat.completions.create({ model, messages: [{ role: "user", content: "Olá" }], max_tokens: 8, temperature: 0 });
  assert(r.object === "chat.completion" && r.choices[0].message.role === "assistant", JSON.stringify(r));
  assert(typeof r.choices[0].message.content === "string" && r.usage.total_tokens > 8, JSON.stringify(r));
});

await check("chat.completions.create stream: deltas spell the same answer", async () => {
  const messages = [{ role: "system", content: "Responda em português." }, { role: "user", content: "Olá" }];
  const whole = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
  const stream = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0, stream: true });
  let text = "", finish = null;
  for await (const c of stream) {
    text += c.choices[0]?.delta?.content ?? "";
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  assert(text === whole.choices[0].message.content && finish === "length", `${JSON.stringify(text)} ${finish}`);
});

await check("4 concurrent chat streams all succeed", async () => {
  const one = async (i) => {
    const stream = await client.chat.completions.create({
      model, messages: [{ role: "user", content: `Conte até ${i}` }], max_tokens: 24, stream: true, seed: i,
    });
    let n = 0;
    for await (const c of stream) if (c.choices[0]?.delta?.content) n++;
    return n;
  };
  const counts = await Promise.all([1, 2, 3, 4].map(one));
  assert(counts.every((n) => n > 0), JSON.stringify(counts));
});

await check("an error surfaces as APIError (400, the server's message)", async () => {
  try {
    await client.completions.create({ model, prompt: "x", temperature: -1 });
  } catch (e) {
    assert(e instanceof APIError && e.status === 400 && /temperature/.test(e.message), String(e));
    return;
  }
  throw new Error("no error");
});

await check("a replayed seed gives the same text", async () => {
  const a = await client.completions.create({ model, prompt: "Era uma vez", max_tokens: 16, temperature: 1 });
  assert(Number.isSafeInteger(a.seed), `seed ${a.seed}`);
  const b = await client.completions.create({ model, prompt: "Era uma vez", max_tokens: 16, temperature: 1, seed: a.seed });
  assert(a.choices[0].text === b.choices[0].text, `${JSON.stringify(a.choices[0].text)} vs ${JSON.stringify(b.choices[0].text)}`);
});

process.exit(failed ? 1 : 0);
