// The Sluice chat widget: a floating chat bubble for any web page, added with
// one tag:
//
//   <script src="https://GATEWAY/widget.js" async></script>
//
// Optional attributes on that tag: data-title, data-lang ("en" or "zh"; the
// browser's language otherwise), data-token (an API key or JWT for
// auth.mode = "token"), data-open ("true": start opened), data-heartbeat-ms
// (how quiet the line may get before a ping; a dead line is dropped and
// resumed after twice that: 15000 by default).
//
// It lives in a shadow root (the page's styles and its own do not mix),
// loads the Sluice SDK and its Markdown parser and sanitizer (marked,
// DOMPurify) from the gateway, and keeps the conversation in sessionStorage
// so that a reload continues it, the running answer included.
(() => {
  'use strict';
  const script = document.currentScript;
  const base = new URL('.', script ? script.src : location.href);
  const wsUrl = new URL('v1/ws', base);
  wsUrl.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
  const data = script ? script.dataset : {};
  const STORE = 'sluice-widget:' + base.host;
  const PERSIST_MS = 250;

  const TEXT = {
    en: {
      title: 'Shop assistant', open: 'Open the chat', close: 'Close the chat', placeholder: 'Ask about orders, shipping, returns…',
      send: 'Send', stop: 'Stop', you: 'You', assistant: 'Assistant', answer: 'Answer',
      connecting: 'Connecting…', open_: 'Connected', reconnecting: 'Reconnecting…', resumed: 'Resumed', closed: 'Offline',
      order: 'Order', status: 'Status', items: 'Items', carrier: 'Carrier', tracking: 'Tracking', total: 'Total',
      notFound: 'No order with this number', sources: 'Sources', toolFailed: 'The lookup failed',
      source: (n) => `Source ${n}`, viewOriginal: 'View the original',
      redacted: (r) => `Part of this answer was hidden by moderation (${r}).`,
      stopped: (r) => `Moderation stopped this answer (${r}).`,
      cancelled: 'Stopped.', failed: (c) => `The answer failed (${c}).`, newChat: 'New chat',
      hint: 'Enter sends, Shift+Enter starts a new line',
      statuses: { processing: 'processing', shipped: 'shipped', in_transit: 'in transit', delivered: 'delivered', returned: 'returned', cancelled: 'cancelled' },
    },
    zh: {
      title: '商店客服', open: '打开聊天', close: '关闭聊天', placeholder: '询问订单、配送、退货……',
      send: '发送', stop: '停止', you: '您', assistant: '客服', answer: '回答',
      connecting: '正在连接…', open_: '已连接', reconnecting: '正在重新连接…', resumed: '已恢复', closed: '离线',
      order: '订单', status: '状态', items: '商品', carrier: '承运商', tracking: '物流单号', total: '金额',
      notFound: '没有这个订单号', sources: '来源', toolFailed: '查询失败',
      source: (n) => `来源 ${n}`, viewOriginal: '查看原文',
      redacted: (r) => `部分内容已被审核隐藏（${r}）。`,
      stopped: (r) => `该回答已被审核中止（${r}）。`,
      cancelled: '已停止。', failed: (c) => `回答失败（${c}）。`, newChat: '新对话',
      hint: '回车发送，Shift+回车换行',
      statuses: { processing: '处理中', shipped: '已发货', in_transit: '运输中', delivered: '已签收', returned: '已退回', cancelled: '已取消' },
    },
  };
  const lang = (data.lang || navigator.language || 'en').toLowerCase().startsWith('zh') ? 'zh' : 'en';
  const t = TEXT[lang];

  const CSS = `
    :host { all: initial; }
    * { box-sizing: border-box; }
    .bubble { position: fixed; right: 24px; bottom: 24px; width: 60px; height: 60px; border-radius: 50%;
      border: none; background: #0f766e; color: #fff; font-size: 28px; cursor: pointer; z-index: 2147483000;
      box-shadow: 0 6px 20px rgba(0,0,0,.25); }
    .bubble:focus-visible, button:focus-visible, textarea:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
    .panel { position: fixed; right: 24px; bottom: 96px; width: min(400px, calc(100vw - 32px));
      height: min(600px, calc(100vh - 120px)); display: none; flex-direction: column; background: #fff;
      border-radius: 14px; box-shadow: 0 10px 40px rgba(0,0,0,.3); overflow: hidden; z-index: 2147483000;
      font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "PingFang SC", "Noto Sans CJK SC", sans-serif; color: #111827; }
    .panel.open { display: flex; }
    header { display: flex; align-items: center; gap: 8px; padding: 12px 14px; background: #0f766e; color: #fff; }
    header h2 { font-size: 16px; margin: 0; flex: 1; }
    .state { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: rgba(255,255,255,.2); }
    .state[data-state="reconnecting"], .state[data-state="connecting"] { background: #f59e0b; color: #111; }
    .state[data-state="resumed"] { background: #a7f3d0; color: #064e3b; }
    .state[data-state="closed"] { background: #fecaca; color: #7f1d1d; }
    header button { background: transparent; border: 1px solid rgba(255,255,255,.5); color: #fff; border-radius: 6px;
      font-size: 12px; padding: 2px 8px; cursor: pointer; }
    .log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 10px; background: #f9fafb; }
    .msg { max-width: 88%; padding: 8px 12px; border-radius: 12px; word-wrap: break-word; overflow-wrap: anywhere; }
    .msg.user { align-self: flex-end; background: #0f766e; color: #fff; white-space: pre-wrap; }
    .msg.assistant { align-self: flex-start; background: #fff; border: 1px solid #e5e7eb; }
    .msg.assistant p { margin: 0 0 .5em; } .msg.assistant p:last-child { margin-bottom: 0; }
    .msg.assistant pre { background: #f3f4f6; padding: 8px; border-radius: 6px; overflow-x: auto; }
    .msg.assistant a { color: #0f766e; }
    .cursor { display: inline-block; width: .55em; height: 1.1em; vertical-align: text-bottom; background: #0f766e;
      margin-left: 2px; animation: blink 1s steps(2, start) infinite; }
    @keyframes blink { to { visibility: hidden; } }
    .card { align-self: flex-start; max-width: 88%; border: 1px solid #99f6e4; background: #f0fdfa; border-radius: 10px;
      padding: 8px 12px; font-size: 14px; }
    .card h3 { margin: 0 0 4px; font-size: 14px; }
    .card dl { display: grid; grid-template-columns: auto 1fr; gap: 2px 10px; margin: 0; }
    .card dt { color: #6b7280; } .card dd { margin: 0; }
    .card.sources a { display: block; color: #0f766e; font-weight: 600; }
    .card.failed { border-color: #fecaca; background: #fef2f2; }
    .card.passages { width: 88%; }
    .card.passages ol { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 6px; }
    .passage { background: #fff; border: 1px solid #ccfbf1; border-radius: 8px; transition: border-color .2s, box-shadow .2s; }
    .passage > button { display: block; width: 100%; text-align: left; background: none; border: none; border-radius: 8px;
      padding: 6px 8px; font: inherit; color: inherit; cursor: pointer; }
    .passage > button:hover { background: #f0fdfa; }
    .passage .n { color: #0f766e; font-weight: 700; margin-right: 4px; }
    .passage .title { font-weight: 600; }
    .passage .excerpt { display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden;
      color: #4b5563; font-size: 13px; margin-top: 2px; }
    .passage.open .excerpt { display: none; }
    .passage .body { padding: 0 8px 8px; font-size: 13px; color: #374151; }
    .passage .body p, .passage .body ul, .passage .body ol { margin: 0 0 .4em; }
    .passage .body ul, .passage .body ol { padding-left: 1.2em; }
    .passage .body a { color: #0f766e; }
    .passage .body a.original { display: inline-block; font-weight: 600; }
    .passage.flash { border-color: #f59e0b; box-shadow: 0 0 0 3px rgba(245,158,11,.35); }
    .cite { background: none; border: none; padding: 0 1px; margin: 0; font: inherit; font-size: .85em; font-weight: 600;
      color: #0f766e; cursor: pointer; text-decoration: underline dotted; text-underline-offset: 2px; }
    .cite:hover { text-decoration-style: solid; }
    .notice { align-self: stretch; font-size: 13px; padding: 6px 10px; border-radius: 8px; background: #fef3c7; color: #78350f; }
    .notice.error { background: #fee2e2; color: #7f1d1d; }
    form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid #e5e7eb; background: #fff; }
    textarea { flex: 1; resize: none; border: 1px solid #d1d5db; border-radius: 8px; padding: 8px; font: inherit; height: 44px; max-height: 120px; }
    form button { border: none; border-radius: 8px; padding: 0 14px; font: inherit; cursor: pointer; background: #0f766e; color: #fff; }
    form button.stop { background: #b91c1c; }
    form button[hidden] { display: none; }
    .sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  `;

  // ------------------------------------------------------------------ DOM

  const host = document.createElement('div');
  host.id = 'sluice-widget';
  const root = host.attachShadow({ mode: 'open' });
  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c) e.append(c);
    return e;
  };
  const style = el('style', { text: CSS });
  const bubble = el('button', { class: 'bubble', 'aria-label': t.open, 'aria-expanded': 'false', text: '💬' });
  const state = el('span', { class: 'state', role: 'status', 'data-state': 'connecting', text: t.connecting });
  const newChat = el('button', { type: 'button', class: 'new', text: t.newChat });
  const panel = el('section', { class: 'panel', role: 'dialog', 'aria-label': data.title || t.title, lang },
    el('header', {}, el('h2', { text: data.title || t.title }), state, newChat));
  // The conversation: a polite live region, so screen readers read answers
  // as they complete without interrupting.
  const log = el('div', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': t.answer });
  const input = el('textarea', { 'aria-label': t.placeholder, placeholder: t.placeholder, rows: '1' });
  const hint = el('span', { class: 'sr', id: 'sluice-hint', text: t.hint });
  input.setAttribute('aria-describedby', 'sluice-hint');
  const sendBtn = el('button', { type: 'submit', class: 'send', text: t.send });
  const stopBtn = el('button', { type: 'button', class: 'stop', text: t.stop, hidden: '' });
  const form = el('form', {}, input, hint, sendBtn, stopBtn);
  panel.append(log, form);
  root.append(style, panel, bubble);

  function setOpen(open) {
    panel.classList.toggle('open', open);
    bubble.setAttribute('aria-expanded', String(open));
    bubble.setAttribute('aria-label', open ? t.close : t.open);
    bubble.textContent = open ? '✕' : '💬';
    if (open) input.focus();
    saveUi(open);
  }
  bubble.addEventListener('click', () => setOpen(!panel.classList.contains('open')));

  // -------------------------------------------------------------- history

  // { session: {id, resumeToken, offset}, items: [...] }: each item a user
  // message, an assistant message (text, done, and the key of the turn's
  // passages it cites), a card (an order, sources; the turn's passages with
  // origin "retrieval" and a key) or a notice.
  let saved = { session: null, items: [], open: data.open === 'true' };
  try {
    saved = { ...saved, ...JSON.parse(sessionStorage.getItem(STORE) || '{}') };
  } catch { /* a corrupt entry starts afresh */ }
  // Written at once when a turn starts or ends, and at most every
  // PERSIST_MS while an answer streams: not the whole history per delta.
  // `saved` changes only inside event handlers, so any snapshot holds text
  // and offset that agree; a reload from an older one replays the rest.
  let persistTimer = null;
  function persist() {
    clearTimeout(persistTimer);
    persistTimer = null;
    try {
      sessionStorage.setItem(STORE, JSON.stringify(saved));
    } catch { /* storage full or blocked: the widget still works */ }
  }
  function persistSoon() {
    if (persistTimer === null) persistTimer = setTimeout(persist, PERSIST_MS);
  }
  window.addEventListener('pagehide', () => { if (persistTimer !== null) persist(); });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden' && persistTimer !== null) persist();
  });
  function saveUi(open) {
    saved.open = open;
    persist();
  }

  // ------------------------------------------------------------- rendering

  let markdown = (text) => { const d = document.createElement('div'); d.textContent = text; return d.innerHTML; };
  const views = [];  // DOM node per saved item

  function scroll() { log.scrollTop = log.scrollHeight; }

  // Set from the SDK once it is loaded: the [n] markers of a text.
  let findCitations = () => [];

  function hardenLinks(node) {
    for (const a of node.querySelectorAll('a')) {
      a.setAttribute('target', '_blank');
      a.setAttribute('rel', 'noopener noreferrer nofollow');
    }
  }

  // Only http(s) URLs become links.
  function safeUrl(url) {
    try {
      const u = new URL(String(url || ''));
      return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
    } catch {
      return null;
    }
  }

  // The retrieval sources item (the turn's passages) with this key.
  function passagesOf(key) {
    if (!key) return null;
    for (const it of saved.items) if (it.kind === 'sources' && it.key === key) return it;
    return null;
  }

  // Each [n] marker of the rendered answer whose number has a passage becomes
  // a button to card n. It works on the text nodes of the sanitized HTML and
  // builds the buttons with the DOM, so no model text is ever parsed as HTML;
  // text in links and code stays as it is. A group [1, 3] keeps its text:
  // its numbers are the buttons.
  function linkCitations(node, key) {
    const src = passagesOf(key);
    if (!src || !src.items.length) return;
    const walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT, {
      acceptNode: (n) => (n.parentElement.closest('a, code, pre, button') ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
    });
    const texts = [];
    while (walker.nextNode()) texts.push(walker.currentNode);
    for (const tn of texts) {
      const found = findCitations(tn.data, src.items);
      if (!found.length) continue;
      const frag = document.createDocumentFragment();
      let at = 0;
      const cite = (n, text) => {
        const s = src.items[n - 1];
        return el('button', { type: 'button', class: 'cite', 'data-n': String(n), 'data-key': src.key,
          title: s.title || '', 'aria-label': `${t.source(n)}: ${s.title || ''}`, text });
      };
      for (const c of found) {
        frag.append(tn.data.slice(at, c.start));
        if (/^\[\d+\]$/.test(c.marker)) {
          frag.append(cite(c.numbers[0], c.marker));
        } else {
          let i = 0;
          for (const m of c.marker.matchAll(/\d+/g)) {
            frag.append(c.marker.slice(i, m.index));
            const n = Number(m[0]);
            frag.append(c.numbers.includes(n) ? cite(n, m[0]) : m[0]);
            i = m.index + m[0].length;
          }
          frag.append(c.marker.slice(i));
        }
        at = c.end;
      }
      frag.append(tn.data.slice(at));
      tn.replaceWith(frag);
    }
  }

  function renderAssistant(node, item) {
    node.innerHTML = markdown(item.text);
    hardenLinks(node);
    linkCitations(node, item.sources);
    node.sluiceText = item.text;  // the raw text, for tests and copy
    node.setAttribute('aria-busy', item.done ? 'false' : 'true');
    if (!item.done) {
      const last = node.lastElementChild && /^(P|LI|H\d)$/.test(node.lastElementChild.tagName) ? node.lastElementChild : node;
      last.append(el('span', { class: 'cursor', 'aria-hidden': 'true' }));
    }
  }

  function orderCard(item) {
    const r = item.result || {};
    const card = el('div', { class: 'card order' + (item.ok ? '' : ' failed'), 'data-order': r.order_id || '' });
    if (!item.ok) {
      card.append(el('h3', { text: t.toolFailed }), el('div', { text: item.error || '' }));
      return card;
    }
    card.append(el('h3', { text: `${t.order} ${r.order_id || ''}` }));
    if (r.found === false) {
      card.append(el('div', { text: t.notFound }));
      return card;
    }
    const dl = el('dl');
    const row = (k, v) => { if (v) dl.append(el('dt', { text: k }), el('dd', { text: v })); };
    row(t.status, t.statuses[r.status] || r.status);
    row(t.items, (r.items || []).map((i) => `${lang === 'zh' ? i.name_zh || i.name : i.name} × ${i.quantity}`).join(', '));
    row(t.total, r.total);
    row(t.carrier, r.carrier);
    row(t.tracking, r.tracking);
    card.append(dl);
    return card;
  }

  // A short, plain part of a passage for its collapsed card.
  function excerpt(text, max = 110) {
    const plain = String(text || '').replace(/^\s*(?:[-*+]|\d+\.)\s+/gm, '').replace(/[*`]+/g, '').replace(/\s+/g, ' ').trim();
    const chars = Array.from(plain);
    if (chars.length <= max) return plain;
    let cut = chars.slice(0, max).join('');
    const space = cut.lastIndexOf(' ');
    if (space > cut.length * 0.7) cut = cut.slice(0, space);
    return cut.replace(/[\s,.;:，。；：、]+$/u, '') + '…';
  }

  // The turn's knowledge-base passages, numbered as the answer cites them.
  // A card opens (openPassage) to the whole passage and a link to it.
  function passagesCard(item) {
    const card = el('div', { class: 'card passages', 'data-origin': 'retrieval', 'data-key': item.key }, el('h3', { text: t.sources }));
    const list = el('ol');
    item.items.forEach((s, i) => {
      const n = i + 1;
      const id = `sluice-src-${item.key}-${n}`;
      const head = el('button', { type: 'button', class: 'head', 'aria-expanded': 'false', 'aria-controls': `${id}-body` },
        el('span', { class: 'n', text: `[${n}]` }), el('span', { class: 'title', text: s.title || s.id || '' }),
        s.snippet ? el('span', { class: 'excerpt', text: excerpt(s.snippet) }) : null);
      const li = el('li', { class: 'passage', id, 'data-n': String(n) }, head, el('div', { class: 'body', id: `${id}-body`, hidden: '' }));
      const plang = s.metadata && s.metadata.lang;
      if (typeof plang === 'string' && /^[a-z]{2,3}(-[a-z0-9]{1,8})*$/i.test(plang)) li.setAttribute('lang', plang);
      li.sluiceItem = s;
      list.append(li);
    });
    card.append(list);
    return card;
  }

  function openPassage(li, open) {
    const s = li.sluiceItem || {};
    const body = li.querySelector('.body');
    if (open && !body.firstChild) {
      const full = el('div', { class: 'full' });
      full.innerHTML = markdown(s.snippet || '');  // sanitized like an answer
      hardenLinks(full);
      body.append(full);
      const url = safeUrl(s.url);
      if (url) body.append(el('a', { class: 'original', href: url, target: '_blank', rel: 'noopener noreferrer nofollow', text: `${t.viewOriginal} ↗` }));
    }
    li.classList.toggle('open', open);
    li.querySelector('button.head').setAttribute('aria-expanded', String(open));
    body.hidden = !open;
  }

  // A citation was clicked: its card comes into view, highlighted.
  function showPassage(key, n) {
    const card = [...log.querySelectorAll('.card.passages')].find((c) => c.dataset.key === key);
    const li = card && card.querySelector(`li[data-n="${n}"]`);
    if (!li) return;
    const still = window.matchMedia && matchMedia('(prefers-reduced-motion: reduce)').matches;
    li.scrollIntoView({ block: 'nearest', behavior: still ? 'auto' : 'smooth' });
    li.classList.remove('flash');
    void li.offsetWidth;  // restart the highlight when clicked again
    li.classList.add('flash');
    clearTimeout(li.flashTimer);
    li.flashTimer = setTimeout(() => li.classList.remove('flash'), 2500);
    li.querySelector('button.head').focus({ preventScroll: true });
  }

  log.addEventListener('click', (e) => {
    const cite = e.target.closest('button.cite');
    if (cite) {
      showPassage(cite.dataset.key, Number(cite.dataset.n));
      return;
    }
    const head = e.target.closest('.passage > button.head');
    if (head) openPassage(head.parentElement, !head.parentElement.classList.contains('open'));
  });

  function render(item) {
    switch (item.kind) {
      case 'user': return el('div', { class: 'msg user', text: item.text });
      case 'assistant': {
        const node = el('div', { class: 'msg assistant' });
        renderAssistant(node, item);
        return node;
      }
      case 'tool': {
        if (item.name === 'lookup_order') return orderCard(item);
        return el('div', { class: 'card tool' + (item.ok ? '' : ' failed'), text: `${item.name}: ${item.ok ? '✓' : item.error}` });
      }
      case 'sources': {
        if (item.origin === 'retrieval') return passagesCard(item);
        const card = el('div', { class: 'card sources' }, el('h3', { text: t.sources }));
        for (const s of item.items) {
          const a = el('a', { href: /^https?:/i.test(s.url) ? s.url : '#', target: '_blank', rel: 'noopener noreferrer nofollow', text: s.title });
          card.append(a, s.snippet ? el('div', { text: s.snippet }) : null);
        }
        return card;
      }
      case 'notice': return el('div', { class: 'notice' + (item.error ? ' error' : ''), role: 'note', text: item.text });
      default: return el('div');
    }
  }

  function add(item) {
    saved.items.push(item);
    const node = render(item);
    views.push(node);
    log.append(node);
    scroll();
    return node;
  }

  function updateLast(kind) {
    for (let i = saved.items.length - 1; i >= 0; i--) {
      if (saved.items[i].kind === kind) return [saved.items[i], views[i]];
    }
    return [null, null];
  }

  function rerenderAll() {
    log.textContent = '';
    views.length = 0;
    for (const item of saved.items) {
      const node = render(item);
      views.push(node);
      log.append(node);
    }
    scroll();
  }

  // ------------------------------------------------------------ the chat

  let client = null;
  let session = null;
  let running = false;

  function setRunning(on) {
    running = on;
    stopBtn.hidden = !on;
    sendBtn.hidden = on;
  }

  function setState(s) {
    state.dataset.state = s;
    state.textContent = { connecting: t.connecting, open: t.open_, reconnecting: t.reconnecting, resumed: t.resumed, closed: t.closed }[s] || s;
  }

  // The key of this turn's passages: a retrieval sources item since the last
  // question (it comes before the turn's first text).
  function turnPassages() {
    for (let i = saved.items.length - 1; i >= 0; i--) {
      const it = saved.items[i];
      if (it.kind === 'user') break;
      if (it.kind === 'sources' && it.origin === 'retrieval') return it.key;
    }
    return undefined;
  }

  function currentAnswer() {
    const [item, node] = updateLast('assistant');
    if (item && !item.done) return [item, node];
    const fresh = { kind: 'assistant', text: '', done: false, sources: turnPassages() };
    return [fresh, add(fresh)];
  }

  function wire(s) {
    s.on('delta', (e) => {
      const [item, node] = currentAnswer();
      item.text += e.text;
      renderAssistant(node, item);
      setRunning(true);
      scroll();
    });
    s.on('tool_call', () => setRunning(true));
    s.on('tool_result', (e) => {
      const [item, node] = updateLast('assistant');
      if (item && !item.done && item.text === '') {  // an empty answer bubble before the card goes
        saved.items.splice(saved.items.indexOf(item), 1);
        views.splice(views.indexOf(node), 1);
        node.remove();
      }
      add({ kind: 'tool', name: e.name, ok: e.ok, result: e.result, error: e.error });
    });
    s.on('sources', (e) => {
      if (e.origin === 'retrieval') {
        // Before the turn's first text: the cards show at once, and the
        // answer's [n] markers link to them.
        add({ kind: 'sources', origin: 'retrieval', key: `${e.session_id}-${e.offset}`, items: e.items || [] });
        setRunning(true);
      } else {
        add({ kind: 'sources', items: e.items || [] });
      }
    });
    s.on('moderation', (e) => add({ kind: 'notice', text: e.action === 'stop' ? t.stopped(e.reason) : t.redacted(e.reason) }));
    s.on('error', (e) => add({ kind: 'notice', error: true, text: t.failed(e.code) }));
    s.on('resume_failed', () => {
      finishAnswer();
      saved.session = null;
      session = null;
      persist();
    });
    s.on('done', (e) => {
      finishAnswer();
      if (e.finish_reason === 'cancelled') add({ kind: 'notice', text: t.cancelled });
      setRunning(false);
      persist();
    });
  }

  function finishAnswer() {
    const [item, node] = updateLast('assistant');
    if (item && !item.done) {
      item.done = true;
      renderAssistant(node, item);
    }
    setRunning(false);
  }

  async function start() {
    try {
      const [sdk, { marked }, purify] = await Promise.all([
        import(new URL('sdk/sluice.mjs', base).href),
        import(new URL('vendor/marked.esm.js', base).href),
        import(new URL('vendor/purify.es.mjs', base).href),
      ]);
      const { SluiceClient } = sdk;
      if (sdk.citations) findCitations = sdk.citations;
      const DOMPurify = purify.default;
      // Model output is untrusted: Markdown to HTML, then only safe HTML
      // (no scripts, event handlers or javascript: links) reaches the page.
      markdown = (text) => DOMPurify.sanitize(marked.parse(text, { gfm: true, breaks: true, async: false }),
        { USE_PROFILES: { html: true }, FORBID_TAGS: ['style', 'form', 'input', 'img'] });
      const options = { url: wsUrl.href, token: data.token || undefined };
      if (data.heartbeatMs) options.heartbeatMs = Number(data.heartbeatMs);
      client = new SluiceClient(options);
      client.on('status', setState);
      client.on('saved', (s, st) => {
        if (s === session) {
          saved.session = st;
          if (s.running) persistSoon(); else persist();
        }
      });
      rerenderAll();
      if (saved.session && saved.session.id) {
        session = client.session(saved.session);
        wire(session);
        const [item] = updateLast('assistant');
        setRunning(Boolean(item && !item.done));
      }
      await client.connect();
    } catch (err) {
      setState('closed');
      add({ kind: 'notice', error: true, text: String(err && err.message || err) });
    }
  }

  function send() {
    const text = input.value.trim();
    if (!text || running || !client) return;
    input.value = '';
    add({ kind: 'user', text });
    if (!session) {
      session = client.session();
      wire(session);
    }
    setRunning(true);
    persist();
    session.send(text).catch((err) => {
      finishAnswer();
      add({ kind: 'notice', error: true, text: t.failed(err.code || err.message) });
      persist();
    });
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); send(); });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  stopBtn.addEventListener('click', () => session && session.cancel());
  newChat.addEventListener('click', () => {
    if (running && session) session.cancel();
    if (session) session.close();
    session = null;
    saved.items = [];
    saved.session = null;
    persist();
    rerenderAll();
    setRunning(false);
    input.focus();
  });

  const mount = () => {
    document.body.append(host);
    setOpen(Boolean(saved.open));
    start();
  };
  if (document.body) mount();
  else document.addEventListener('DOMContentLoaded', mount);
})();
