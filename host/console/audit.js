// Audit: the latest records of the audit log, filtered by principal, route
// and outcome (admin only).

import { get } from './api.js';
import { h, clear } from './dom.js';

export async function auditView(main) {
  const principal = h('input', { id: 'audit-principal', type: 'text', placeholder: 'token name, kind or hmac-sha256:…' });
  const route = h('input', { id: 'audit-route', type: 'text', placeholder: '/api/v1/security/credential' });
  const outcome = h('select', { id: 'audit-outcome' },
    h('option', { value: '' }, 'Any'), h('option', { value: 'success' }, 'Success'), h('option', { value: 'failure' }, 'Failure'));
  const results = h('div', {});
  main.append(h('h2', {}, 'Audit'),
    h('form', {
      class: 'filters',
      onsubmit: (e) => { e.preventDefault(); load(); },
    },
    h('label', { for: 'audit-principal' }, 'Principal'), principal,
    h('label', { for: 'audit-route' }, 'Route'), route,
    h('label', { for: 'audit-outcome' }, 'Outcome'), outcome,
    h('button', { type: 'submit' }, 'Filter')),
    results);

  // The latest filter asked for is drawn, never an older answer that came last.
  let asked = 0;
  async function load() {
    const mine = ++asked;
    const q = new URLSearchParams({ limit: 200 });
    if (principal.value.trim()) q.set('principal', principal.value.trim());
    if (route.value.trim()) q.set('route', route.value.trim());
    if (outcome.value) q.set('outcome', outcome.value);
    const data = await get(`/api/v1/audit?${q}`);
    if (mine !== asked) return;
    clear(results, data.contents.length === 0 ? h('p', { class: 'muted' }, 'No records.') :
      h('div', { class: 'scroll' }, h('table', { class: 'grid', id: 'audit' },
        h('thead', {}, h('tr', {}, ['Time', 'Principal', 'Client', 'Method', 'Route', 'Credentials', 'Outcome']
          .map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, data.contents.map((r) => h('tr', {},
          h('td', {}, h('time', { datetime: r.time }, r.time)),
          h('td', {}, r.principal ? who(r.principal) : r.type),
          h('td', {}, r.client || ''),
          h('td', {}, r.method || ''),
          h('td', {}, r.route || r.event || ''),
          h('td', {}, (r.credential_ids || []).join(', ')),
          h('td', {}, r.status ? `${r.status}${r.error_code ? ` ${r.error_code}` : ''}` : (r.type || '')),
        ))))));
  }

  await load();
}

// Token names are anyone's with the admin scope to choose, and need not be
// unique: the end of the token's audit id tells two of a name apart.
function who(principal) {
  if (!principal.name) return principal.kind;
  if (!principal.id) return principal.name;
  return h('span', { title: principal.id }, `${principal.name} (…${principal.id.slice(-8)})`);
}
