// Plugins: loaded verifiers and policies, their versions, hashes and
// limits, the files that failed to load, and reloading the directory.

import { get, post } from './api.js';
import { h, clear, announce } from './dom.js';
import { may } from './session.js';

function limits(l) {
  return `${l.deadline_ms} ms, ${Math.round(l.memory_bytes / 1048576)} MiB, ${Math.round(l.output_bytes / 1048576)} MiB out`;
}

export async function pluginsView(main) {
  const body = h('div', {});
  main.append(h('h2', {}, 'Plugins'), body);

  function render(view) {
    clear(body, 
      view.plugin_dir ? h('p', {}, 'Plugin directory: ', h('code', {}, view.plugin_dir)) : h('p', { class: 'muted' }, 'No plugin directory: the embedded plugins only.'),
      h('div', { class: 'scroll' }, h('table', { class: 'grid', id: 'plugins' },
        h('thead', {}, h('tr', {}, ['Name', 'Version', 'Kind', 'Serves', 'Contract', 'SHA-256', 'Limits', 'Source']
          .map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, view.plugins.map((p) => h('tr', {},
          h('th', { scope: 'row' }, p.name),
          h('td', {}, p.version),
          h('td', {}, p.kind),
          h('td', {}, p.target_type || p.algorithm || ''),
          h('td', {}, p.wit),
          h('td', {}, h('code', { title: p.sha256 }, p.sha256.slice(0, 12))),
          h('td', {}, limits(p.limits)),
          h('td', {}, p.source.path || p.source.kind)))))),
      view.failures.length
        ? h('div', { role: 'alert' }, h('h3', {}, 'Failed to load'),
          h('ul', { id: 'plugin-failures' }, view.failures.map((f) => h('li', {}, h('code', {}, f.file), `: ${f.error}`))))
        : null,
      may('admin') ? h('div', { class: 'actions' },
        h('button', {
          type: 'button', id: 'reload', class: 'primary',
          onclick: async (e) => {
            e.target.disabled = true;
            announce('Reloading the plugin directory…');
            try {
              const reloaded = await post('/api/v1/plugins/reload');
              render(reloaded);
              announce(`Reloaded: ${reloaded.plugins.length} plugins, ${reloaded.failures.length} failed.`, reloaded.failures.length ? 'warn' : 'ok');
            } catch (err) {
              e.target.disabled = false;
              announce(`Reload failed: ${err.message}`, 'error');
            }
          },
        }, 'Reload the plugin directory')) : null);
  }

  render(await get('/api/v1/plugins'));
}
