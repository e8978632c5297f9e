// Credentials: every one of them, a page at a time from the server, sorted,
// searched and filtered by the server; validation with progress, whose last
// result per target the server keeps; create, edit, delete.

import { get, post, api, allIds } from './api.js';
import { h, clear, announce, endpoint, confirm, publicOf } from './dom.js';
import { may } from './session.js';
import { credentialForm } from './form.js';

const SIZES = [10, 20, 50, 100];
const COLUMNS = [
  { key: 'name', label: 'Name', sort: 'name' },
  { key: 'target_type', label: 'Target type', sort: 'target_type' },
  { key: 'targets', label: 'Targets' },
  { key: 'username', label: 'Username' },
  { key: 'description', label: 'Description' },
  { key: 'update_time', label: 'Updated', sort: 'update_time' },
  { key: 'last', label: 'Last validation' },
];

const state = {
  page: 1, size: 10, sort: 'id', order: 'asc', keyWord: '', type: '', selected: new Set(),
};

function query() {
  const q = new URLSearchParams({
    page: state.page, page_size: state.size, sort: state.sort, sort_order: state.order,
  });
  if (state.keyWord) q.set('key_word', state.keyWord);
  if (state.type) q.set('target_type', state.type);
  return `/api/v1/security/credentials?${q}`;
}

async function lastValidations(ids) {
  if (ids.length === 0) return new Map();
  const data = await get(`/api/v1/security/credentials/validations?credential_id_list=${ids.join(',')}`);
  return new Map(data.contents.map((v) => [v.credential_id, v]));
}

function targetTags(credential, last) {
  const verdicts = new Map((last?.details || []).map((d) => [endpoint(d.target), d]));
  return h('ul', { class: 'tags' }, publicOf(credential).targets.map((t) => {
    const key = endpoint(t);
    const verdict = verdicts.get(key);
    const kind = !verdict ? 'unknown' : verdict.connection_result === 'SUCCESS' ? 'ok' : 'failed';
    const said = !verdict ? 'not validated yet' : verdict.connection_result === 'SUCCESS' ? 'passed' : verdict.reason;
    return h('li', { class: `tag ${kind}`, title: verdict?.message || said },
      key, h('span', { class: 'visually-hidden' }, `: ${said}`));
  }));
}

function lastCell(last) {
  if (!last) return h('span', { class: 'muted' }, 'never');
  const failed = last.details.filter((d) => d.connection_result !== 'SUCCESS');
  return h('div', { class: 'last' },
    h('span', { class: failed.length ? 'bad' : 'good' },
      failed.length ? `${failed.length} of ${last.details.length} failed` : `all ${last.details.length} passed`),
    h('br'),
    h('time', { datetime: last.checked_at, class: 'muted' }, last.checked_at),
    failed.length ? h('ul', { class: 'reasons' }, failed.map((d) =>
      h('li', {}, `${endpoint(d.target)} ${d.reason}`))) : null);
}

async function verifiers() {
  const plugins = await get('/api/v1/plugins');
  return plugins.plugins.filter((p) => p.kind === 'verifier');
}

/** Validates ids in chunks, with a progress bar; returns the results. */
async function validateWithProgress(container, ids) {
  const bar = h('progress', { max: ids.length, value: 0, 'aria-label': 'Validation progress' });
  const label = h('span', {}, `0 of ${ids.length}`);
  const box = h('div', { class: 'progress', role: 'group', 'aria-label': 'Validating' }, bar, ' ', label);
  container.append(box);
  const results = [];
  const chunk = 20;
  for (let i = 0; i < ids.length; i += chunk) {
    const data = await post('/api/v1/security/credentials/validate', { credential_id_list: ids.slice(i, i + chunk) });
    results.push(...data.contents);
    bar.value = Math.min(ids.length, i + chunk);
    label.textContent = `${bar.value} of ${ids.length}`;
  }
  box.remove();
  return results;
}

export async function credentialsView(main) {
  const types = await verifiers();
  const results = h('div', { id: 'results' });
  const toolbar = h('div', { class: 'toolbar' });
  main.append(h('h2', {}, 'Credentials'), toolbar, results);

  const search = h('input', { id: 'search', type: 'search', value: state.keyWord, placeholder: 'name, address or username' });
  const typeFilter = h('select', { id: 'type-filter' },
    h('option', { value: '' }, 'All types'),
    types.map((v) => h('option', { value: v.target_type, selected: state.type === v.target_type }, v.target_type)));
  const size = h('select', { id: 'page-size' },
    SIZES.map((n) => h('option', { value: n, selected: state.size === n }, String(n))));
  toolbar.append(
    h('form', {
      class: 'filters', role: 'search',
      onsubmit: (e) => { e.preventDefault(); state.keyWord = search.value.trim(); state.page = 1; refresh(); },
    },
    h('label', { for: 'search' }, 'Search'), search,
    h('label', { for: 'type-filter' }, 'Type'), typeFilter,
    h('label', { for: 'page-size' }, 'Per page'), size,
    h('button', { type: 'submit' }, 'Search')),
    h('div', { class: 'actions' },
      may('write') ? h('button', { type: 'button', class: 'primary', id: 'new-credential', onclick: () => edit(null) }, 'New credential') : null,
      may('validate') ? h('button', { type: 'button', id: 'validate-selected', onclick: () => validate([...state.selected]) }, 'Validate selected') : null,
      may('validate') ? h('button', { type: 'button', id: 'validate-all', onclick: async () => validate(await allIds()) }, 'Validate all') : null,
      may('write') ? h('button', { type: 'button', class: 'danger', id: 'delete-selected', onclick: () => remove([...state.selected]) }, 'Delete selected') : null));
  typeFilter.addEventListener('change', () => { state.type = typeFilter.value; state.page = 1; refresh(); });
  size.addEventListener('change', () => { state.size = Number(size.value); state.page = 1; refresh(); });

  let rows = [];

  async function edit(credential) {
    const saved = await credentialForm(types, credential);
    if (saved) {
      announce(`Saved ${saved.name}.`, 'ok');
      refresh();
    }
  }

  async function validate(ids) {
    if (ids.length === 0) { announce('Select credentials to validate first.', 'warn'); return; }
    const outcome = await validateWithProgress(toolbar, ids);
    const failed = outcome.filter((r) => r.failed_count > 0).length;
    announce(`${ids.length} validated: ${ids.length - failed} passed, ${failed} failed.`, failed ? 'warn' : 'ok');
    refresh();
  }

  async function remove(ids) {
    if (ids.length === 0) { announce('Select credentials to delete first.', 'warn'); return; }
    const names = ids.map((id) => rows.find((c) => c.credential_id === id)?.name || `#${id}`);
    const yes = await confirm(`Delete ${ids.length} credential${ids.length > 1 ? 's' : ''}?`, names);
    if (!yes) return;
    const data = await api('DELETE', '/api/v1/security/credentials', { credential_id_list: ids });
    state.selected.clear();
    announce(`Deleted ${data.deleted.length}.`, 'ok');
    refresh();
  }

  function header(column) {
    if (!column.sort) return h('th', { scope: 'col' }, column.label);
    const active = state.sort === column.sort;
    const ariaSort = active ? (state.order === 'asc' ? 'ascending' : 'descending') : 'none';
    return h('th', { scope: 'col', 'aria-sort': ariaSort },
      h('button', {
        type: 'button', class: 'sort', dataset: { sort: column.sort },
        onclick: () => {
          state.order = active && state.order === 'asc' ? 'desc' : 'asc';
          state.sort = column.sort;
          refresh();
        },
      }, column.label, h('span', { 'aria-hidden': 'true' }, active ? (state.order === 'asc' ? ' ▲' : ' ▼') : '')));
  }

  // Refreshes overlap (the first load, then a new page size at once): the
  // latest one asked for is drawn, never an older answer that came last.
  let asked = 0;
  async function refresh() {
    const mine = ++asked;
    const data = await get(query());
    const last = await lastValidations(data.contents.map((c) => c.credential_id));
    if (mine !== asked) return;
    rows = data.contents;
    const pages = Math.max(1, data.page.total_pages);
    clear(results);
    const all = h('input', {
      type: 'checkbox', id: 'select-page', 'aria-label': 'Select every credential on this page',
      onchange: (e) => {
        for (const c of rows) { if (e.target.checked) state.selected.add(c.credential_id); else state.selected.delete(c.credential_id); }
        refreshChecks();
      },
    });
    const table = h('table', { class: 'grid', id: 'credentials' },
      h('caption', { class: 'visually-hidden' }, 'Credentials'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, all), COLUMNS.map(header), h('th', { scope: 'col' }, 'Actions'))),
      h('tbody', {}, rows.map((c) => {
        const pub = publicOf(c);
        const check = h('input', {
          type: 'checkbox', class: 'select', 'aria-label': `Select ${c.name}`, checked: state.selected.has(c.credential_id),
          onchange: (e) => { if (e.target.checked) state.selected.add(c.credential_id); else state.selected.delete(c.credential_id); },
        });
        return h('tr', { dataset: { id: c.credential_id } },
          h('td', {}, check),
          h('th', { scope: 'row', class: 'name' }, c.name),
          h('td', {}, c.target_type),
          h('td', {}, targetTags(c, last.get(c.credential_id))),
          h('td', {}, pub.username || ''),
          h('td', {}, c.description || ''),
          h('td', {}, h('time', { datetime: c.update_time }, c.update_time)),
          h('td', {}, lastCell(last.get(c.credential_id))),
          h('td', { class: 'row-actions' },
            may('write') ? h('button', { type: 'button', onclick: () => edit(c), 'aria-label': `Edit ${c.name}` }, 'Edit') : null,
            may('validate') ? h('button', { type: 'button', onclick: () => validate([c.credential_id]), 'aria-label': `Validate ${c.name}` }, 'Validate') : null,
            may('write') ? h('button', { type: 'button', class: 'danger', onclick: () => remove([c.credential_id]), 'aria-label': `Delete ${c.name}` }, 'Delete') : null));
      })));
    function refreshChecks() {
      for (const box of table.querySelectorAll('tbody input.select')) {
        box.checked = state.selected.has(Number(box.closest('tr').dataset.id));
      }
    }
    const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' },
      h('button', { type: 'button', id: 'prev-page', disabled: state.page <= 1, onclick: () => { state.page -= 1; refresh(); } }, 'Previous'),
      h('span', { id: 'page-of', 'aria-live': 'polite' }, `Page ${state.page} of ${pages} (${data.page.total_elements} credentials)`),
      h('button', { type: 'button', id: 'next-page', disabled: state.page >= pages, onclick: () => { state.page += 1; refresh(); } }, 'Next'));
    results.append(rows.length ? h('div', { class: 'scroll' }, table) : h('p', { class: 'muted' }, 'No credentials.'), pager);
  }

  await refresh();
}
