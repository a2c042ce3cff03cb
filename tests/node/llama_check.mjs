// llama_check.mjs - the real llama.cpp (node-llama-cpp's prebuilt CPU
// library; never built nor downloaded) on a GGUF file written by
// `minigpt convert --to-gguf`: prints JSON {"text_ids": [...], "greedy":
// [[...], ...], "probs": [{id: p, ...}, ...]} with llama.cpp's ids for TEXT,
// its greedy continuation (N tokens, or up to its end-of-generation token)
// of each PROMPT, and its 20 most likely first tokens after each PROMPT.
// usage: node llama_check.mjs FILE.gguf N TEXT PROMPT...
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [file, n, text, ...prompts] = process.argv.slice(2);
const llama = await getLlama({ build: "never", gpu: false, usePrebuiltBinaries: true,
  logLevel: LlamaLogLevel.error, skipDownload: true });
const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
const out = { text_ids: Array.from(model.tokenize(text)), greedy: [], probs: [] };
for (const p of prompts) {
  const context = await model.createContext({ contextSize: 64, batchSize: 64, threads: 1 });
  const seq = context.getSequence();
  const ids = [];
  for await (const r of seq.evaluateWithMetadata(model.tokenize(p), { probabilities: ids.length === 0 },
    { temperature: 0, yieldEogToken: true })) {
    const t = r.token;
    if (r.probabilities && out.probs.length < out.greedy.length + 1)
      out.probs.push(Object.fromEntries([...r.probabilities.entries()].slice(0, 20)));
    if (model.isEogToken(t)) break;
    ids.push(t);
    if (ids.length >= Number(n)) break;
  }
  out.greedy.push(ids);
  await context.dispose();
}
console.log(JSON.stringify(out));
await model.dispose();
await llama.dispose();
