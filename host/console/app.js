// The console: sign-in, then one view per section, chosen by the URL's
// fragment (#/credentials, #/encryption, #/plugins, #/audit).

import { setToken, token, ApiError } from './api.js';
import { h, clear, announce } from './dom.js';
import { session, may, whoami } from './session.js';
import { credentialsView } from './credentials.js';
import { encryptionView } from './encryption.js';
import { pluginsView } from './plugins.js';
import { auditView } from './audit.js';

const views = {
  credentials: credentialsView,
  encryption: encryptionView,
  plugins: pluginsView,
  audit: auditView,
};

function signInView(main, problem) {
  const input = h('input', {
    id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true,
    'aria-describedby': 'token-help',
  });
  const message = h('p', { class: 'error', id: 'sign-in-error', role: 'alert' }, problem || '');
  const form = h('form', {
    class: 'card narrow',
    onsubmit: async (e) => {
      e.preventDefault();
      setToken(input.value.trim());
      try {
        await whoami();
        input.value = '';
        start();
      } catch (err) {
        setToken(null);
        message.textContent = err instanceof ApiError ? err.message : String(err);
        input.setAttribute('aria-invalid', 'true');
        input.focus();
      }
    },
  },
  h('h2', {}, 'Sign in'),
  h('label', { for: 'token' }, 'API token'),
  input,
  h('p', { class: 'hint', id: 'token-help' },
    'Make one on the server with: credhost token create --data-dir DIR --name NAME --scope admin --ttl 8h. ',
    'It is kept in this tab only, until you sign out or close it.'),
  message,
  h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')));
  clear(main, form);
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  input.focus();
}

function showSession() {
  document.getElementById('nav').hidden = false;
  const who = document.getElementById('who');
  who.hidden = false;
  document.getElementById('who-name').textContent = session.kind === 'token'
    ? `${session.name} (${session.scope})`
    : 'open access (no password, loopback)';
  document.getElementById('sign-out').hidden = session.kind !== 'token';
  for (const link of document.querySelectorAll('#nav a')) {
    const view = link.dataset.view;
    link.parentElement.hidden = view === 'audit' && !may('admin');
  }
}

async function route() {
  const main = document.getElementById('main');
  const name = (location.hash.replace(/^#\//, '') || 'credentials').split('?')[0];
  const view = views[name] ? name : 'credentials';
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.view === view) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  clear(main);
  try {
    await views[view](main);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      setToken(null);
      signInView(main, 'Your token is no longer accepted; sign in again.');
      return;
    }
    main.append(h('p', { class: 'error', role: 'alert' }, err.message || String(err)));
  }
}

async function start() {
  const main = document.getElementById('main');
  try {
    await whoami();
  } catch (err) {
    if (err instanceof ApiError && [400, 401, 403].includes(err.status)) {
      // A token this tab kept was refused (revoked, expired): say why.
      const refused = token();
      if (refused) setToken(null);
      signInView(main, refused ? err.message : '');
      return;
    }
    clear(main, h('p', { class: 'error', role: 'alert' }, err.message || String(err)));
    return;
  }
  showSession();
  route();
}

document.getElementById('sign-out').addEventListener('click', () => {
  setToken(null);
  Object.assign(session, { kind: null, scope: null, name: null });
  announce('Signed out.');
  signInView(document.getElementById('main'));
});
window.addEventListener('hashchange', () => { if (session.kind) route(); });
start();
