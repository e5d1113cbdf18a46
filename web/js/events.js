// The /ws WebSocket: one connection for the whole page, reconnected with
// back-off. Every JSON event {type, job, ...} is dispatched as a DOM event of
// that type on `events` (a CustomEvent whose detail is the message) and also as
// a generic "message" event. "connection" events say {state: live|connecting|offline}.
// The API key goes in the subprotocol list (auth.js); a new key reconnects.

import { auth, wsProtocols } from './auth.js';

class EventHub extends EventTarget {
  constructor() {
    super();
    this.ws = null;
    this.state = 'connecting';
    this.delay = 500;
    this.timer = null;
    this.failures = 0;
    this.lastMessageAt = 0;
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/ws`;
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('connection', { detail: { state } }));
  }

  start() {
    if (this.ws || typeof WebSocket === 'undefined') return;
    let ws;
    try {
      const protocols = wsProtocols();
      ws = protocols ? new WebSocket(this.url(), protocols) : new WebSocket(this.url());
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 500;
      this.failures = 0;
      this.setState('live');
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (!msg || typeof msg !== 'object' || !msg.type) return;
      this.lastMessageAt = Date.now();
      this.dispatchEvent(new CustomEvent(msg.type, { detail: msg }));
      this.dispatchEvent(new CustomEvent('message', { detail: msg }));
    };
    ws.onclose = () => {
      this.ws = null;
      this.failures += 1;
      this.setState(this.failures >= 2 ? 'offline' : 'connecting');
      this.retry();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  retry() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start(), this.delay);
    this.delay = Math.min(this.delay * 2, 10000);
  }

  // Sends a JSON message when connected; returns whether it went out.
  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  get live() { return this.state === 'live'; }
}

export const events = new EventHub();

auth.addEventListener('change', () => {
  if (events.ws) events.ws.close(); // onclose reconnects with the new key
  else { events.delay = 500; events.retry(); }
});
