// Encryption: the active policy, keys and the rows under each, rotation and
// policy swap, and the re-encryption's progress as it runs.

import { get, post, api } from './api.js';
import { h, clear, announce } from './dom.js';
import { may } from './session.js';

/** Rows not yet under the current key and the active policy. */
function rowsLeft(status) {
  const keys = status.keys.filter((k) => !k.current).reduce((n, k) => n + k.rows, 0);
  const policies = status.policies.filter((p) => !p.active).reduce((n, p) => n + p.rows, 0);
  return Math.max(keys, policies);
}

export async function encryptionView(main) {
  const body = h('div', {});
  main.append(h('h2', {}, 'Encryption'), body);
  let following = false;

  function render(status) {
    const rewrap = status.rewrap;
    const left = rowsLeft(status);
    const total = left + rewrap.done;
    clear(body,
      h('dl', { class: 'facts' },
        h('dt', {}, 'Active policy'), h('dd', { id: 'active-policy' }, status.active_policy),
        h('dt', {}, 'Current key'), h('dd', { id: 'current-key' }, String(status.current_key_id)),
        h('dt', {}, 'Re-encryption'), h('dd', { id: 'rewrap-state' }, rewrap.state === 'running'
          ? `running: ${rewrap.done} done, ${left} left, ${Math.round(rewrap.rows_per_second)} rows/s`
          : rewrap.state === 'failed' ? 'stopped' : left === 0 ? 'done: every row is under the current key and policy' : `${left} rows left`)),
      rewrap.state === 'running' || following
        ? h('div', { class: 'progress' },
          h('label', { for: 'rewrap-progress' }, 'Re-encryption progress'),
          h('progress', { id: 'rewrap-progress', max: Math.max(1, total), value: total - left }),
          h('span', {}, ` ${total - left} of ${total}`))
        : null,
      rewrap.error ? h('p', { class: 'error', role: 'alert', id: 'rewrap-error' }, `Stopped: ${rewrap.error}`) : null,
      h('h3', {}, 'Keys'),
      h('table', { class: 'grid', id: 'keys' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col' }, 'Rows'))),
        h('tbody', {}, status.keys.map((k) => h('tr', {},
          h('th', { scope: 'row' }, String(k.id)),
          h('td', {}, k.current ? 'current' : k.retired ? 'retired' : 'in use'),
          h('td', {}, String(k.rows)))))),
      h('h3', {}, 'Policies'),
      h('table', { class: 'grid', id: 'policies' },
        h('thead', {}, h('tr', {}, ['Policy', 'Version', 'Algorithm', 'Rows', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, status.policies.map((p) => h('tr', {},
          h('th', { scope: 'row' }, p.name), h('td', {}, p.version), h('td', {}, p.algorithm), h('td', {}, String(p.rows)),
          h('td', {}, p.active ? 'active' : p.loaded ? '' : 'not loaded'))))),
      may('admin') ? h('div', { class: 'actions' },
        h('button', { type: 'button', id: 'rotate', class: 'primary', onclick: rotate }, 'Rotate the key'),
        h('label', { for: 'policy-choice' }, 'Policy'),
        h('select', { id: 'policy-choice' }, status.policies.filter((p) => p.loaded).map((p) =>
          h('option', { value: p.name, selected: p.active }, p.name))),
        h('button', { type: 'button', id: 'swap', onclick: swap }, 'Make current'),
        rewrap.state === 'failed' ? h('button', { type: 'button', id: 'resume', onclick: resume }, 'Resume') : null)
        : null);
  }

  async function follow() {
    following = true;
    for (;;) {
      const status = await get('/api/v1/security/encryption');
      const left = rowsLeft(status);
      if (status.rewrap.state === 'failed' || (status.rewrap.state !== 'running' && left === 0)) {
        // The operator who started it sees the bar end where it ended
        // (full, or where it stopped), even when it ran too fast to watch.
        render(status);
        following = false;
        announce(status.rewrap.state === 'failed' ? 'The re-encryption stopped.' : 'Every row is under the current key and policy.',
          status.rewrap.state === 'failed' ? 'error' : 'ok');
        return;
      }
      render(status);
      if (status.rewrap.state !== 'running') await post('/api/v1/security/encryption/rewrap');
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  async function rotate() {
    const data = await post('/api/v1/security/keys/rotate');
    announce(`Key ${data.key_id} is current; re-encrypting.`);
    await follow();
  }

  async function swap() {
    const name = document.getElementById('policy-choice').value;
    await api('PUT', '/api/v1/security/encryption/policy', { policy: name });
    announce(`${name} is the policy for new secrets; re-encrypting.`);
    await follow();
  }

  async function resume() {
    await post('/api/v1/security/encryption/rewrap');
    await follow();
  }

  const status = await get('/api/v1/security/encryption');
  render(status);
  if (status.rewrap.state === 'running') await follow();
}
