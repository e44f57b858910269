// pushlab's browser page: the same topic followed by the browser's own five clients at once.
//
// Every column keeps its own cursor (the last seq it holds) and resumes from it, so each shows
// every message exactly once and in order, across its own disconnects. All columns start from
// one cursor, the newest seq when the topic was chosen (`GET /poll/{topic}` without `since`
// answers `{"next":N,"messages":[]}`), so they show the same messages side by side.
//
// For tests, each column is `<section data-transport="poll|longpoll|sse|stream|ws">` with
// `data-state` (closed | connecting | open | error), `data-count` (messages received) and
// `data-seqs` (the last SEQ_MEMORY seqs received, comma-separated).
'use strict';

const LOG_LINES = 20;
const LATENCY_WINDOW = 20;
const SEQ_MEMORY = 2000;
const LONGPOLL_TIMEOUT_S = 25;
const RETRY_MS = 1000;
const TOPIC_RE = /^[A-Za-z0-9_.-]{1,64}$/;

let pollEveryMs = 1000;

// A server started with --publish-token wants it for chat frames and the ticker control: open
// the page as /?token=TOKEN. Subscribing needs none.
const TOKEN = new URLSearchParams(location.search).get('token');

const $ = (sel, root = document) => root.querySelector(sel);

const page = {
  topic: $('#topic').value,
  // Promise of the start cursor of `page.topic`.
  start: null,
};

function setStatus(text) {
  $('#status').textContent = text;
}

// The newest seq of the topic: where every column starts.
function startCursor() {
  if (!page.start) {
    const topic = page.topic;
    page.start = (async () => {
      for (;;) {
        try {
          const r = await fetch(`/poll/${topic}`);
          const body = await r.json();
          if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
          setStatus('');
          return body.next;
        } catch (e) {
          setStatus(`cannot reach the server (${e.message}); retrying`);
          await sleep(RETRY_MS);
        }
      }
    })();
  }
  return page.start;
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

// Now in milliseconds since the epoch, at the finest resolution the browser gives.
function nowMs() {
  return performance.timeOrigin + performance.now();
}

function fmtMs(ms) {
  if (!Number.isFinite(ms)) return '–';
  return ms < 10 ? `${ms.toFixed(2)} ms` : ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

async function errorText(r) {
  try {
    return (await r.json()).error || `HTTP ${r.status}`;
  } catch (_) {
    return `HTTP ${r.status}`;
  }
}

class Column {
  constructor(spec) {
    this.spec = spec;
    const el = $('#column-template').content.firstElementChild.cloneNode(true);
    el.dataset.transport = spec.id;
    el.id = `col-${spec.id}`;
    this.el = el;
    this.role = (name) => $(`[data-role="${name}"]`, el);
    this.role('title').textContent = spec.title;
    $('[data-action="connect"]', el).addEventListener('click', () => this.connect());
    $('[data-action="disconnect"]', el).addEventListener('click', () => this.disconnect());
    if (spec.extra) spec.extra(this, this.role('extra'));
    this.wanted = false;
    this.session = null; // { stop() } of the running connection
    this.reset();
  }

  reset() {
    this.cursor = null;
    this.seqs = [];
    this.count = 0;
    this.latencies = [];
    this.requests = 0;
    this.emptyResponses = 0;
    this.gaps = 0;
    this.missed = 0;
    this.errors = 0;
    this.lines = [];
    this.role('log').replaceChildren();
    this.role('wire').textContent = this.spec.wire(page.topic);
    this.render();
  }

  setState(state, text) {
    this.el.dataset.state = state;
    this.role('state').textContent = text;
  }

  async connect() {
    this.wanted = true;
    if (this.session) return;
    this.setState('connecting', 'connecting…');
    const topic = page.topic;
    const start = await startCursor();
    if (!this.wanted || this.session || topic !== page.topic) return;
    if (this.cursor === null) this.cursor = start;
    this.session = this.spec.open(this, topic);
  }

  disconnect() {
    this.wanted = false;
    if (this.session) this.session.stop();
    this.session = null;
    this.setState('closed', 'closed (disconnected by you)');
  }

  // One message as parsed from the wire. JSON numbers are doubles: `ts` (ns since the epoch,
  // about 1.8e18) is rounded to 256 ns, far below the millisecond latencies shown.
  deliver(msg) {
    if (this.cursor !== null && msg.seq <= this.cursor) {
      this.note(`duplicate or old seq ${msg.seq} ignored (cursor ${this.cursor})`, 'bad');
      return;
    }
    if (this.cursor !== null && msg.seq !== this.cursor + 1) {
      this.note(`seq ${this.cursor + 1}..${msg.seq - 1} missing without a gap notice`, 'bad');
    }
    this.cursor = msg.seq;
    this.count += 1;
    this.seqs.push(msg.seq);
    if (this.seqs.length > SEQ_MEMORY) this.seqs.splice(0, this.seqs.length - SEQ_MEMORY);
    const latency = nowMs() - msg.ts / 1e6;
    this.latencies.push(latency);
    if (this.latencies.length > LATENCY_WINDOW) this.latencies.shift();
    this.line({ seq: msg.seq, text: msg.data, latency });
  }

  gap(g) {
    this.gaps += 1;
    this.missed += g.missed;
    if (this.cursor === null || g.to > this.cursor) this.cursor = g.to;
    this.note(`gap: missed ${g.missed} (seq ${g.from}..${g.to}), fell behind the history`, 'gap');
  }

  note(text, kind) {
    this.line({ seq: null, text, kind });
  }

  line(entry) {
    this.lines.push(entry);
    if (this.lines.length > LOG_LINES) this.lines.shift();
    this.scheduleRender();
  }

  scheduleRender() {
    if (this.renderPending) return;
    this.renderPending = true;
    setTimeout(() => { this.renderPending = false; this.render(); }, 50);
  }

  render() {
    const el = this.el;
    el.dataset.count = String(this.count);
    el.dataset.seqs = this.seqs.join(',');
    el.dataset.cursor = this.cursor === null ? '' : String(this.cursor);
    this.role('count').textContent = String(this.count);
    const lat = this.latencies;
    if (lat.length) {
      const mean = lat.reduce((a, b) => a + b, 0) / lat.length;
      this.role('latency').textContent =
        `${fmtMs(lat[lat.length - 1])} · mean ${fmtMs(mean)} · max ${fmtMs(Math.max(...lat))}`;
    } else {
      this.role('latency').textContent = '–';
    }
    this.role('requests').textContent = this.spec.requestsText(this);
    this.role('gaps').textContent = this.gaps ? `${this.gaps} (${this.missed} missed)` : 'none';
    const items = this.lines.slice().reverse().map((e) => {
      const li = document.createElement('li');
      if (e.seq === null) {
        li.className = e.kind || 'note';
        li.textContent = e.text;
        return li;
      }
      li.dataset.seq = String(e.seq);
      const seq = document.createElement('span');
      seq.className = 'seq';
      seq.textContent = `#${e.seq}`;
      const data = document.createElement('span');
      data.className = 'data';
      data.textContent = e.text;
      const lat = document.createElement('span');
      lat.className = 'lat';
      lat.textContent = fmtMs(e.latency);
      li.append(seq, data, lat);
      return li;
    });
    this.role('log').replaceChildren(...items);
  }
}

// Requests-and-batches text of the two polling columns.
function batchText(c) {
  if (!c.requests) return '–';
  const perRequest = (c.count / c.requests).toFixed(2);
  return `${c.requests} · ${perRequest} msg/request · ${c.emptyResponses} empty`;
}

// Text of the three one-connection columns.
function connectionText(c) {
  if (!c.requests) return '–';
  const reconnects = c.requests - 1;
  return `${c.requests} connection${c.requests > 1 ? 's' : ''} (${reconnects} reconnect${reconnects === 1 ? '' : 's'}) · ${c.count} msg`;
}

// Runs `body(signal)` until stopped; returns the session handle.
function fetchSession(col, body) {
  const abort = new AbortController();
  (async () => {
    try {
      await body(abort.signal);
    } catch (e) {
      if (!abort.signal.aborted) col.setState('error', `error: ${e.message}`);
    }
  })();
  return { stop: () => abort.abort() };
}

// A poll or long-poll batch: `{"next":N,"gap":{..}?,"messages":[..]}`.
async function takeBatch(col, r) {
  if (!r.ok) throw new Error(await errorText(r));
  const batch = await r.json();
  if (batch.gap) col.gap(batch.gap);
  for (const m of batch.messages) col.deliver(m);
  if (batch.messages.length === 0 && !batch.gap) col.emptyResponses += 1;
  if (batch.next > col.cursor) col.cursor = batch.next;
  col.scheduleRender();
}

// Network errors are retried after a pause; HTTP errors stop the column (a 400 will not heal).
async function retrying(col, signal, what, attempt) {
  for (;;) {
    if (signal.aborted) return;
    try {
      await attempt();
      return;
    } catch (e) {
      if (signal.aborted) return;
      if (!(e instanceof TypeError)) throw e;
      col.errors += 1;
      col.setState('connecting', `${what} failed (${e.message}); retrying`);
      await sleep(RETRY_MS, signal);
    }
  }
}

const TRANSPORTS = [
  {
    id: 'poll',
    title: 'Short poll',
    wire: (t) => `fetch GET /poll/${t}?since=N every ${pollEveryMs} ms`,
    extra(col, span) {
      const sel = document.createElement('select');
      sel.setAttribute('aria-label', 'poll interval');
      sel.dataset.role = 'interval';
      for (const ms of [250, 500, 1000, 2000, 5000]) {
        const o = document.createElement('option');
        o.value = String(ms);
        o.textContent = `every ${ms} ms`;
        o.selected = ms === pollEveryMs;
        sel.append(o);
      }
      sel.addEventListener('change', () => {
        pollEveryMs = Number(sel.value);
        col.role('wire').textContent = col.spec.wire(page.topic);
      });
      span.append(sel);
    },
    requestsText: batchText,
    open: (col, topic) => fetchSession(col, async (signal) => {
      col.setState('open', `polling every ${pollEveryMs} ms`);
      while (!signal.aborted) {
        const due = performance.now() + pollEveryMs;
        await retrying(col, signal, 'poll', async () => {
          col.requests += 1;
          const r = await fetch(`/poll/${topic}?since=${col.cursor}`, { signal });
          await takeBatch(col, r);
          col.setState('open', `polling every ${pollEveryMs} ms`);
        });
        await sleep(Math.max(0, due - performance.now()), signal);
      }
    }),
  },
  {
    id: 'longpoll',
    title: 'Long poll',
    wire: (t) => `fetch GET /longpoll/${t}?since=N&timeout=${LONGPOLL_TIMEOUT_S}, again at once`,
    requestsText: batchText,
    open: (col, topic) => fetchSession(col, async (signal) => {
      while (!signal.aborted) {
        await retrying(col, signal, 'long poll', async () => {
          col.requests += 1;
          col.setState('open', 'request held by the server, waiting');
          const r = await fetch(`/longpoll/${topic}?since=${col.cursor}&timeout=${LONGPOLL_TIMEOUT_S}`, { signal });
          await takeBatch(col, r);
        });
      }
    }),
  },
  {
    id: 'sse',
    title: 'Server-Sent Events',
    wire: (t) => `new EventSource("/sse/${t}?since=N"), Last-Event-ID on reconnect`,
    requestsText: connectionText,
    open(col, topic) {
      const names = ['CONNECTING', 'OPEN', 'CLOSED'];
      const es = new EventSource(`/sse/${topic}?since=${col.cursor}`);
      const show = () => {
        const rs = es.readyState;
        col.setState(['connecting', 'open', 'closed'][rs], `readyState ${rs} ${names[rs]}`);
      };
      col.requests += 1;
      show();
      es.onopen = () => { show(); col.scheduleRender(); };
      es.onmessage = (e) => col.deliver(JSON.parse(e.data));
      es.addEventListener('gap', (e) => col.gap(JSON.parse(e.data).gap));
      es.onerror = () => {
        show();
        // The browser reconnects by itself (with Last-Event-ID) unless it gave up (CLOSED).
        if (es.readyState === EventSource.CONNECTING) col.requests += 1;
      };
      return { stop: () => es.close() };
    },
  },
  {
    id: 'stream',
    title: 'Chunked stream',
    wire: (t) => `fetch GET /stream/${t}?since=N, body.getReader(), NDJSON lines`,
    requestsText: connectionText,
    open: (col, topic) => fetchSession(col, async (signal) => {
      while (!signal.aborted) {
        await retrying(col, signal, 'stream', async () => {
          col.requests += 1;
          col.setState('connecting', 'requesting');
          const r = await fetch(`/stream/${topic}?since=${col.cursor}`, { signal });
          if (!r.ok) throw new Error(await errorText(r));
          col.setState('open', 'reading the response body');
          const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let nl;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl);
              buf = buf.slice(nl + 1);
              if (!line) continue; // heartbeat
              const o = JSON.parse(line);
              if (o.gap) col.gap(o.gap);
              else col.deliver(o);
            }
          }
          col.setState('connecting', 'stream ended; reconnecting');
        });
        await sleep(RETRY_MS, signal);
      }
    }),
  },
  {
    id: 'ws',
    title: 'WebSocket',
    wire: (t) => `new WebSocket("ws://…/ws/${t}?since=N"), one text frame per message`,
    requestsText: connectionText,
    open(col, topic) {
      const names = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];
      let ws = null;
      let stopped = false;
      let retry = null;
      const show = (extra) => {
        const rs = ws.readyState;
        const state = ['connecting', 'open', 'closed', 'closed'][rs];
        col.setState(state, `readyState ${rs} ${names[rs]}${extra ? ` · ${extra}` : ''}`);
      };
      const dial = () => {
        col.requests += 1;
        ws = new WebSocket(`${wsBase()}/ws/${topic}?since=${col.cursor}`);
        show();
        ws.onopen = () => { show(); col.scheduleRender(); };
        ws.onmessage = (e) => {
          const o = JSON.parse(e.data);
          if (o.gap) col.gap(o.gap);
          else col.deliver(o);
        };
        ws.onclose = (e) => {
          if (stopped) return;
          show(`close ${e.code}${e.reason ? ` ${e.reason}` : ''}; reconnecting`);
          retry = setTimeout(dial, RETRY_MS);
        };
      };
      dial();
      return {
        stop() {
          stopped = true;
          clearTimeout(retry);
          ws.close(1000, 'disconnect button');
        },
      };
    },
  },
];

function wsBase() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
}

const columns = TRANSPORTS.map((spec) => new Column(spec));
$('#columns').append(...columns.map((c) => c.el));

function connectAll() {
  for (const c of columns) c.connect();
}

function disconnectAll() {
  for (const c of columns) c.disconnect();
}

$('#connect-all').addEventListener('click', connectAll);
$('#disconnect-all').addEventListener('click', disconnectAll);

$('#topic-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = $('#topic').value.trim();
  if (!TOPIC_RE.test(name)) {
    setStatus(`"${name}" is not a topic name: 1 to 64 of A-Z a-z 0-9 _ . -`);
    return;
  }
  const wanted = columns.filter((c) => c.wanted);
  disconnectAll();
  page.topic = name;
  page.start = null;
  for (const c of columns) c.reset();
  for (const c of wanted) c.connect();
});

// The ticker control: `POST /ticker?rate=R` sets the server's built-in ticker on topic `ticker`.
function showTicker(rate) {
  const s = $('#ticker-state');
  s.dataset.rate = String(rate);
  s.textContent = rate > 0 ? `running at ${rate} msg/s on topic "ticker"` : 'idle (0 msg/s)';
}

async function tickerRequest(method, query) {
  try {
    const headers = TOKEN && method !== 'GET' ? { Authorization: `Bearer ${TOKEN}` } : {};
    const r = await fetch(`/ticker${query}`, { method, headers });
    if (!r.ok) throw new Error(await errorText(r));
    const body = await r.json();
    showTicker(body.rate);
    if (method === 'GET') $('#ticker-rate').value = String(body.rate);
  } catch (e) {
    $('#ticker-state').textContent = `ticker: ${e.message}`;
  }
}

$('#ticker-form').addEventListener('submit', (e) => {
  e.preventDefault();
  tickerRequest('POST', `?rate=${encodeURIComponent($('#ticker-rate').value)}`);
});

// Chat: one WebSocket to `/ws/{room}` (only new messages); what we send is published there.
const chat = { ws: null, room: null, retry: null };

function chatState(state, text) {
  $('#chat').dataset.state = state;
  $('#chat-state').textContent = text;
  $('#chat-send').disabled = state !== 'open';
}

function chatLine(cls, parts) {
  const log = $('#chat-log');
  const li = document.createElement('li');
  if (cls) li.className = cls;
  for (const [c, text] of parts) {
    const span = document.createElement('span');
    span.className = c;
    span.textContent = text;
    li.append(span);
  }
  log.prepend(li);
  while (log.children.length > LOG_LINES) log.lastElementChild.remove();
}

function joinRoom(room) {
  if (chat.ws) {
    chat.ws.onclose = null;
    chat.ws.close(1000, 'left the room');
  }
  clearTimeout(chat.retry);
  chat.room = room;
  const auth = TOKEN ? `?token=${encodeURIComponent(TOKEN)}` : '';
  const ws = new WebSocket(`${wsBase()}/ws/${room}${auth}`);
  chat.ws = ws;
  chatState('connecting', `joining "${room}"…`);
  ws.onopen = () => chatState('open', `in room "${room}" · readyState 1 OPEN`);
  ws.onmessage = (e) => {
    const o = JSON.parse(e.data);
    if (o.gap) {
      chatLine('gap', [['data', `gap: missed ${o.gap.missed} messages`]]);
      return;
    }
    const when = new Date(o.ts / 1e6).toLocaleTimeString();
    chatLine('', [['seq', `#${o.seq}`], ['when', when], ['data', o.data]]);
  };
  ws.onclose = (e) => {
    chatState('closed', `closed (${e.code}); rejoining`);
    chat.retry = setTimeout(() => joinRoom(room), RETRY_MS);
  };
}

$('#room-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const room = $('#room').value.trim();
  if (!TOPIC_RE.test(room)) {
    chatState('error', 'a room name is 1 to 64 of A-Z a-z 0-9 _ . -');
    return;
  }
  joinRoom(room);
});

$('#chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('#chat-input');
  const text = input.value;
  if (!text || !chat.ws || chat.ws.readyState !== WebSocket.OPEN) return;
  chat.ws.send(text);
  input.value = '';
});

tickerRequest('GET', '');
joinRoom($('#room').value);
connectAll();
