// Building the page without innerHTML: every text goes in as text.

/** h('button', {type: 'button', onclick: f}, 'Save') */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.append(child);
    else el.append(document.createTextNode(String(child)));
  }
}

/** Empties `el`, then appends `children` as h() does (nulls skipped). */
export function clear(el, ...children) {
  while (el.firstChild) el.firstChild.remove();
  append(el, children);
  return el;
}

let ids = 0;
/** A fresh element id, for labels and descriptions. */
export function uid(prefix = 'f') {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** Says `text` in the live region (and shows it). */
export function announce(text, kind = 'info') {
  const status = document.getElementById('status');
  status.className = `status ${kind}`;
  status.textContent = text;
}

/** `ip:port`, or `[ip]:port` for IPv6. */
export function endpoint(t) {
  return t.ip.includes(':') ? `[${t.ip}]:${t.port}` : `${t.ip}:${t.port}`;
}

/** A modal dialog with `content`; resolves with what `done` is called with. */
export function modal(title, build) {
  const dialog = document.getElementById('dialog');
  const opener = document.activeElement;
  clear(dialog);
  return new Promise((resolve) => {
    const close = (value) => {
      dialog.close();
      clear(dialog);
      if (opener && opener.focus) opener.focus();
      resolve(value);
    };
    dialog.append(
      h('h2', { id: 'dialog-title' }, title),
      build(close),
    );
    dialog.addEventListener('cancel', (e) => { e.preventDefault(); close(null); }, { once: true });
    dialog.showModal();
    const first = dialog.querySelector('input, select, textarea, button');
    if (first) first.focus();
  });
}

/** Asks yes or no. */
export function confirm(title, lines, yes = 'Delete') {
  return modal(title, (close) => h('div', {},
    h('ul', { class: 'plain' }, lines.map((l) => h('li', {}, l))),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'danger', onclick: () => close(true) }, yes),
      h('button', { type: 'button', onclick: () => close(false) }, 'Cancel'))));
}

/** The public part of a credential: the one field holding `targets`. */
export function publicOf(credential) {
  for (const value of Object.values(credential)) {
    if (value && typeof value === 'object' && Array.isArray(value.targets)) return value;
  }
  return { targets: [] };
}
