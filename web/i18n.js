// i18n.js - the interface's words: Brazilian Portuguese by default, English
// when the browser prefers it (navigator.languages lists en before pt).
const pt = {
  skip: 'Pular para o conteúdo', tab_chat: 'Conversa', tab_inside: 'Por dentro', tab_train: 'Treino',
  api_key_needed: 'Este servidor pede uma chave de API:', api_key_use: 'Usar',
  chat_hint: 'Escreva uma mensagem. O modelo responde token a token.', chat_input: 'Mensagem',
  chat_placeholder: 'Mensagem (Enter envia, Shift+Enter quebra a linha)', send: 'Enviar', stop: 'Parar',
  clear: 'Limpar', sampling: 'Amostragem', temperature: 'Temperatura', top_k: 'Top-k', top_p: 'Top-p',
  repeat_penalty: 'Penalidade de repetição', max_tokens: 'Máx. de tokens', seed: 'Semente (vazio: aleatória)',
  you: 'Você', model: 'Modelo', stopped: '(interrompido)',
  chat_stats: (s) => `${s.tokens} tokens · primeiro token em ${s.ttft} ms · ${s.tps} tokens/s`,
  inside_prompt: 'Texto de entrada', analyze: 'Analisar', next_token: 'Próximo token',
  inside_hint: 'Cada número abaixo vem do modelo real, do mesmo rastreamento que o modo --educational do terminal.',
  h_tokens: '1. Tokens',
  tokens_hint: 'O texto vira bytes, e as fusões BPE aprendidas juntam pares de tokens, em ordem de prioridade.',
  merges: 'Fusões BPE aplicadas', merge_line: (m) => `«${m.left}» + «${m.right}» → «${m.merged}» (id ${m.id}, prioridade ${m.rank})`,
  pretoken: 'pré-token', generated: 'gerado',
  h_attention: '2. Atenção: cada camada e cada cabeça',
  attention_hint: 'Linha: um token; coluna: um token anterior que ele olha; mais escuro, mais peso. Clique num mapa para ampliar.',
  layer_head: (l, h) => `Camada ${l}, cabeça ${h}`,
  h_next: '3. O próximo token',
  next_hint: 'Probabilidades = softmax(logits / temperatura); top-k e top-p cortam a cauda. Os controles remodelam a distribuição aqui mesmo, a partir dos logits enviados uma vez.',
  cut_info: (k, v, s) => `${k} de ${v} tokens sobram depois do corte; o servidor, com as mesmas configurações, sorteou «${s}».`,
  greedy: 'temperatura 0: sempre o mais provável', cut: 'cortado',
  h_layers: '4. Camadas: tempo e ativações', th_stage: 'Etapa', th_time: 'Tempo', th_mean: 'Média', th_std: 'Desvio',
  st_embed: 'embedding (token + posição)', st_attn: (l) => `camada ${l}: atenção`, st_mlp: (l) => `camada ${l}: MLP`,
  st_lnf: 'LayerNorm final (último token)',
  layers_info: (n, ms, m) => `prefill de ${n} tokens em ${ms} ms · ${m.layers} camadas, ${m.heads} cabeças, dimensão ${m.dim}, vocabulário ${m.vocab_size}`,
  c_loss: 'Perda (treino e validação)', c_lr: 'Taxa de aprendizado', c_grad: 'Norma do gradiente',
  c_speed: 'Tokens por segundo', samples: 'Amostras a cada avaliação', runs_title: 'Execuções anteriores',
  runs_show: 'Mostrar', c_runs: 'Perda por passo (linhas: treino; pontos: validação)', th_run: 'Execução',
  th_steps: 'Passos', th_train: 'Perda de treino', th_val: 'Perda de validação', th_bpb: 'Bits por byte',
  train_none: 'Para ver treinos aqui: minigpt serve --runs PASTA (execuções passadas) ou minigpt train --dashboard (ao vivo).',
  card_step: 'Passo', card_loss: 'Perda', card_val: 'Perda de validação', card_bpb: 'Bits por byte',
  card_lr: 'Taxa de aprendizado', card_grad: 'Norma do gradiente', card_speed: 'Tokens/s', card_eta: 'Tempo restante',
  card_elapsed: 'Decorrido', train: 'treino', validation: 'validação', step: 'passo',
  live: 'Treinando ao vivo', ended: 'Treino concluído.', reconnecting: 'Conexão perdida; tentando de novo…',
  sample_at: (s) => `passo ${s}`, error: 'Erro', train_log: 'Registro do treino',
  saved: (f, s) => `passo ${s}: salvo ${f}`, epoch_done: (e, l) => `fim da época ${e}: perda média ${l}`, no_runs: 'Nenhum train_log.jsonl encontrado.',
};
const en = {
  skip: 'Skip to content', tab_chat: 'Chat', tab_inside: 'Inside', tab_train: 'Training',
  api_key_needed: 'This server asks for an API key:', api_key_use: 'Use',
  chat_hint: 'Write a message. The model answers token by token.', chat_input: 'Message',
  chat_placeholder: 'Message (Enter sends, Shift+Enter for a new line)', send: 'Send', stop: 'Stop',
  clear: 'Clear', sampling: 'Sampling', temperature: 'Temperature', top_k: 'Top-k', top_p: 'Top-p',
  repeat_penalty: 'Repetition penalty', max_tokens: 'Max tokens', seed: 'Seed (empty: random)',
  you: 'You', model: 'Model', stopped: '(stopped)',
  chat_stats: (s) => `${s.tokens} tokens · first token in ${s.ttft} ms · ${s.tps} tokens/s`,
  inside_prompt: 'Input text', analyze: 'Analyze', next_token: 'Next token',
  inside_hint: 'Every number below comes from the real model, from the same trace as the terminal\'s --educational mode.',
  h_tokens: '1. Tokens',
  tokens_hint: 'The text becomes bytes, and the learned BPE merges join pairs of tokens, in order of priority.',
  merges: 'BPE merges applied', merge_line: (m) => `«${m.left}» + «${m.right}» → «${m.merged}» (id ${m.id}, rank ${m.rank})`,
  pretoken: 'pre-token', generated: 'generated',
  h_attention: '2. Attention: every layer and every head',
  attention_hint: 'Row: a token; column: an earlier token it looks at; darker, more weight. Click a map to enlarge it.',
  layer_head: (l, h) => `Layer ${l}, head ${h}`,
  h_next: '3. The next token',
  next_hint: 'Probabilities = softmax(logits / temperature); top-k and top-p cut the tail. The controls reshape the distribution right here, from the logits sent once.',
  cut_info: (k, v, s) => `${k} of ${v} tokens remain after the cut; the server, with the same settings, drew «${s}».`,
  greedy: 'temperature 0: always the most likely', cut: 'cut',
  h_layers: '4. Layers: time and activations', th_stage: 'Stage', th_time: 'Time', th_mean: 'Mean', th_std: 'Std',
  st_embed: 'embedding (token + position)', st_attn: (l) => `layer ${l}: attention`, st_mlp: (l) => `layer ${l}: MLP`,
  st_lnf: 'final LayerNorm (last token)',
  layers_info: (n, ms, m) => `prefill of ${n} tokens in ${ms} ms · ${m.layers} layers, ${m.heads} heads, width ${m.dim}, vocabulary ${m.vocab_size}`,
  c_loss: 'Loss (training and validation)', c_lr: 'Learning rate', c_grad: 'Gradient norm',
  c_speed: 'Tokens per second', samples: 'A sample at each evaluation', runs_title: 'Past runs',
  runs_show: 'Show', c_runs: 'Loss per step (lines: training; dots: validation)', th_run: 'Run',
  th_steps: 'Steps', th_train: 'Training loss', th_val: 'Validation loss', th_bpb: 'Bits per byte',
  train_none: 'To see training here: minigpt serve --runs DIR (past runs) or minigpt train --dashboard (live).',
  card_step: 'Step', card_loss: 'Loss', card_val: 'Validation loss', card_bpb: 'Bits per byte',
  card_lr: 'Learning rate', card_grad: 'Gradient norm', card_speed: 'Tokens/s', card_eta: 'Time left',
  card_elapsed: 'Elapsed', train: 'training', validation: 'validation', step: 'step',
  live: 'Training live', ended: 'Training finished.', reconnecting: 'Connection lost; retrying…',
  sample_at: (s) => `step ${s}`, error: 'Error', train_log: 'Training log',
  saved: (f, s) => `step ${s}: saved ${f}`, epoch_done: (e, l) => `end of epoch ${e}: mean loss ${l}`, no_runs: 'No train_log.jsonl found.',
};

function pick() {
  for (const l of navigator.languages || [navigator.language || '']) {
    const s = l.toLowerCase();
    if (s.startsWith('pt')) return 'pt-BR';
    if (s.startsWith('en')) return 'en';
  }
  return 'pt-BR';
}
export const lang = pick();
const words = lang === 'en' ? en : pt;

// t('key') or t('key', args...) for the entries that are functions
export function t(key, ...args) {
  const w = words[key];
  return typeof w === 'function' ? w(...args) : w ?? key;
}

// fills every [data-i18n] element's text and [data-i18n-placeholder]'s placeholder
export function applyI18n(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
}

export function num(x, digits = 3) {
  if (x === undefined || x === null || !isFinite(x)) return '–';
  const s = Number(x).toLocaleString(lang, { maximumFractionDigits: digits });
  return s === '-0' ? '0' : s;
}

// a token's text with its spaces made visible (a leading space is part of
// most tokens: " de" and "de" are different tokens)
export function visible(s) {
  return s.replaceAll(' ', '␣');
}
