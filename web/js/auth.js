// API keys in the browser (docs/ui.md, "API keys"). When the server answers
// 401, the key dialog asks for a key; it is kept in this tab's
// sessionStorage (gone when the tab closes, never sent to another origin),
// sent as "Authorization: Bearer KEY" on every API call (api.js) and as the
// WebSocket subprotocol "bearer.KEY" (events.js). A "change" event on `auth`
// tells the WebSocket to reconnect with the new key.

const STORE = 'pixmend.apiKey';
const KEY_RE = /^[A-Za-z0-9._~-]{16,256}$/;

export const auth = new EventTarget();

export function apiKey() {
  try { return sessionStorage.getItem(STORE) || ''; } catch { return ''; }
}

export function setApiKey(key) {
  try {
    if (key) sessionStorage.setItem(STORE, key);
    else sessionStorage.removeItem(STORE);
  } catch { /* storage disabled: the key lives as long as this call chain */ }
  showKeyButton();
  auth.dispatchEvent(new Event('change'));
}

// `headers` (a plain object) with the Authorization header when a key is set.
export function withKey(headers = {}) {
  const key = apiKey();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

// The subprotocols of the WebSocket: the server answers "pixmend.v1" and
// reads the key from the second (a header cannot be set on a browser WebSocket,
// and the key never goes into the URL).
export function wsProtocols() {
  const key = apiKey();
  return key ? ['pixmend.v1', `bearer.${key}`] : undefined;
}

let pending = null;
let declined = false; // the dialog was cancelled: calls fail quietly until the Key button is used

function showKeyButton() {
  const btn = document.getElementById('key-open');
  if (btn) btn.hidden = !(apiKey() || declined);
}

// Shows the key dialog (once for every request waiting on it) with `reason`
// (the server's sentence). Resolves with the key entered; rejects when the
// dialog is cancelled, and at once while it stays declined (so that polling
// does not reopen it).
export function askForKey(reason) {
  if (pending) return pending;
  if (declined) return Promise.reject(new Error('no API key given'));
  const dlg = document.getElementById('key-dialog');
  if (!dlg || typeof dlg.showModal !== 'function') return Promise.reject(new Error('no key dialog'));
  const form = document.getElementById('key-form');
  const input = document.getElementById('key-input');
  const error = document.getElementById('key-error');
  document.getElementById('key-why').textContent = reason || 'This server needs an API key.';
  error.textContent = '';
  input.value = '';
  pending = new Promise((resolve, reject) => {
    const finish = (key) => {
      form.removeEventListener('submit', onSubmit);
      dlg.removeEventListener('close', onClose);
      if (dlg.open) dlg.close();
      pending = null;
      declined = !key;
      showKeyButton();
      if (key) resolve(key); else reject(new Error('no API key given'));
    };
    const onSubmit = (e) => {
      e.preventDefault();
      const key = input.value.trim();
      if (!KEY_RE.test(key)) {
        error.textContent = 'A key is 16 to 256 letters, digits or . _ ~ - (as your operator gave it).';
        input.focus();
        return;
      }
      setApiKey(key);
      finish(key);
    };
    const onClose = () => finish(null);
    form.addEventListener('submit', onSubmit);
    dlg.addEventListener('close', onClose);
    dlg.showModal();
    input.focus();
  });
  return pending;
}

// The top bar's key button (shown while a key is in use or the dialog was
// cancelled): forget the key and ask for one.
export function wireKeyButton() {
  const btn = document.getElementById('key-open');
  const cancel = document.getElementById('key-cancel');
  if (cancel) cancel.addEventListener('click', () => document.getElementById('key-dialog').close());
  if (!btn) return;
  showKeyButton();
  btn.addEventListener('click', () => {
    declined = false;
    setApiKey('');
    askForKey('Enter the API key to use in this tab.').catch(() => {});
  });
}
