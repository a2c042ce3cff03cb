// llama_check.mjs - the real llama.cpp (node-llama-cpp's prebuilt CPU
// library; never built nor downloaded) on a GGUF file written by
// `minigpt convert --to-gguf`: prints JSON {"text_ids": [...], "greedy":
// [[...], ...]} with llama.cpp's ids for TEXT and its greedy continuation
// (N tokens, or up to its end-of-generation token) of each PROMPT.
// usage: node llama_check.mjs FILE.gguf N TEXT PROMPT...
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [file, n, text, ...prompts] = process.argv.slice(2);
const llama = await getLlama({ build: "never", gpu: false, usePrebuiltBinaries: true,
  logLevel: LlamaLogLevel.error, skipDownload: true });
const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
const out = { text_ids: Array.from(model.tokenize(text)), greedy: [] };
for (const p of prompts) {
  const context = await model.createContext({ contextSize: 64, batchSize: 64, threads: 1 });
  const seq = context.getSequence();
  const ids = [];
  for await (const t of seq.evaluate(model.tokenize(p), { temperature: 0 })) {
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
