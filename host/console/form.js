// The create and edit form of a credential, built from what its verifier
// describes: the JSON Schema of its property. Lists of objects (targets)
// get a row each with their own fields; secrets (`writeOnly`) are never
// filled in, and left empty on edit they keep the stored one.

import { api, ApiError } from './api.js';
import { h, clear, uid, modal, publicOf } from './dom.js';

/** A field of the form: its element, and how to read and check it. */
function field(name, schema, required, value, editing) {
  const id = uid(name);
  const help = uid('help');
  const error = h('p', { class: 'field-error', id: uid('err'), role: 'alert' });
  const title = schema.title || name.replace(/_/g, ' ');
  const describe = [];
  if (schema.description) describe.push(schema.description);
  if (schema.writeOnly && editing) describe.push('Leave empty to keep the stored one.');
  let input;
  if (Array.isArray(schema.enum)) {
    input = h('select', { id, name }, schema.enum.map((option) =>
      h('option', { value: option, selected: (value ?? schema.default) === option }, option)));
  } else if (schema.type === 'integer' || schema.type === 'number') {
    input = h('input', {
      id, name, type: 'number', inputmode: 'numeric', min: schema.minimum, max: schema.maximum,
      placeholder: schema.default !== undefined ? String(schema.default) : undefined,
      value: value !== undefined && value !== null ? String(value) : undefined,
    });
  } else if (schema.contentMediaType || /key/.test(name) && schema.writeOnly) {
    input = h('textarea', { id, name, rows: 6, spellcheck: 'false', autocomplete: 'off' });
  } else {
    input = h('input', {
      id, name, type: schema.writeOnly ? 'password' : 'text',
      autocomplete: schema.writeOnly ? 'new-password' : 'off', spellcheck: 'false',
      maxlength: schema.maxLength,
      value: !schema.writeOnly && value !== undefined && value !== null ? String(value) : undefined,
    });
  }
  input.setAttribute('aria-describedby', `${help} ${error.id}`);
  if (required && !(schema.writeOnly && editing)) input.required = true;
  const wrapper = h('div', { class: 'field' },
    h('label', { for: id }, title, required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null),
    input,
    h('p', { class: 'hint', id: help }, describe.join(' ')),
    error);
  return {
    name, schema, element: wrapper, input,
    read() {
      const raw = input.value;
      if (schema.type === 'integer' || schema.type === 'number') return raw === '' ? undefined : Number(raw);
      return raw;
    },
    check() {
      const v = this.read();
      let problem = '';
      if (input.required && (v === undefined || v === '')) problem = `${title} is required.`;
      else if (typeof v === 'number' && (Number.isNaN(v) || (schema.minimum !== undefined && v < schema.minimum)
        || (schema.maximum !== undefined && v > schema.maximum))) {
        problem = `${title} must be between ${schema.minimum} and ${schema.maximum}.`;
      } else if (typeof v === 'string' && schema.minLength && v.length > 0 && v.length < schema.minLength) {
        problem = `${title} is too short.`;
      } else if (typeof v === 'string' && schema.maxLength && v.length > schema.maxLength) {
        problem = `${title} is longer than ${schema.maxLength} characters.`;
      }
      this.fail(problem);
      return !problem;
    },
    fail(problem) {
      error.textContent = problem;
      if (problem) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    },
  };
}

/** A list of objects (targets): one row per item, added one by one. */
function list(name, schema, required, values) {
  const itemSchema = schema.items || {};
  const props = itemSchema.properties || {};
  const itemRequired = new Set(itemSchema.required || []);
  const rows = [];
  const body = h('div', { class: 'rows' });
  const error = h('p', { class: 'field-error', role: 'alert' });
  const title = schema.title || name.replace(/_/g, ' ');
  function addRow(value = {}) {
    const fields = Object.entries(props).map(([key, s]) => field(key, s, itemRequired.has(key), value[key], false));
    const row = {
      fields,
      element: h('fieldset', { class: 'row' },
        h('legend', {}, `${title.replace(/s$/, '')} ${rows.length + 1}`),
        fields.map((f) => f.element),
        h('button', {
          type: 'button', class: 'quiet remove',
          onclick: () => {
            rows.splice(rows.indexOf(row), 1);
            row.element.remove();
            body.querySelectorAll('legend').forEach((l, i) => { l.textContent = `${title.replace(/s$/, '')} ${i + 1}`; });
          },
        }, 'Remove')),
    };
    rows.push(row);
    body.append(row.element);
    return row;
  }
  for (const v of values || []) addRow(v);
  if (rows.length === 0) addRow();
  const element = h('fieldset', { class: 'list' },
    h('legend', {}, title, required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null),
    schema.description ? h('p', { class: 'hint' }, schema.description) : null,
    body,
    h('button', {
      type: 'button', class: 'add',
      onclick: () => { const row = addRow(); row.fields[0].input.focus(); },
    }, `Add ${title.replace(/s$/, '').toLowerCase()}`),
    error);
  return {
    name, schema, element, rows,
    read() {
      return rows.map((row) => {
        const item = {};
        for (const f of row.fields) {
          const v = f.read();
          if (v !== undefined && v !== '') item[f.name] = v;
        }
        return item;
      });
    },
    check() {
      let ok = rows.every((row) => row.fields.map((f) => f.check()).every(Boolean));
      if ((schema.minItems || (required ? 1 : 0)) > rows.length) {
        error.textContent = `Add at least one ${title.replace(/s$/, '').toLowerCase()}.`;
        ok = false;
      } else {
        error.textContent = '';
      }
      return ok;
    },
    fail(problem) { error.textContent = problem; },
  };
}

function buildFields(schema, value, editing) {
  const required = new Set(schema.required || []);
  return Object.entries(schema.properties || {}).map(([name, s]) => {
    if (s.type === 'array' && s.items && s.items.type === 'object') {
      return list(name, s, required.has(name), value?.[name]);
    }
    return field(name, s, required.has(name), value?.[name], editing);
  });
}

/** Splits a failed verification's message into its targets. */
function perTarget(message) {
  const body = message.includes(': ') ? message.slice(message.indexOf(': ') + 2) : message;
  return body.split('; ').map((part) => {
    const m = part.match(/^(\S+) ([A-Z_]+): (.*)$/s);
    return m ? { target: m[1], reason: m[2], message: m[3] } : { target: '', reason: '', message: part };
  });
}

/** Opens the form; resolves with the saved credential, or null. */
export function credentialForm(verifiers, credential) {
  const editing = Boolean(credential);
  return modal(editing ? `Edit ${credential.name}` : 'New credential', (close) => {
    const typeId = uid('type');
    const typeSelect = h('select', { id: typeId, disabled: editing },
      verifiers.map((v) => h('option', { value: v.target_type, selected: editing && v.target_type === credential.target_type }, v.target_type)));
    const name = field('name', { title: 'Name', maxLength: 64, minLength: 1 }, true, credential?.name, editing);
    const description = field('description', { title: 'Description', maxLength: 256 }, false, credential?.description, editing);
    const propertyBox = h('div', { class: 'property' });
    const outcome = h('div', { class: 'outcome', role: 'alert' });
    let fields = [];
    let verifier;
    function render() {
      verifier = verifiers.find((v) => v.target_type === typeSelect.value) || verifiers[0];
      const value = editing ? publicOf(credential) : undefined;
      fields = buildFields(verifier.property_schema || { properties: {} }, value, editing);
      clear(propertyBox, h('fieldset', { class: 'group' },
        h('legend', {}, verifier.property_schema?.title || `${verifier.target_type} property`),
        fields.map((f) => f.element)));
    }
    typeSelect.addEventListener('change', render);
    render();
    // A new secret goes only to the host keys pinned for the targets; after
    // a host's key really changed, the operator says so.
    const forgetId = uid('forget');
    const forget = editing ? h('input', { type: 'checkbox', id: forgetId, name: 'forget_host_keys' }) : null;
    const save = h('button', { type: 'submit', class: 'primary' }, editing ? 'Save' : 'Create');
    const form = h('form', {
      class: 'credential-form', novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        clear(outcome);
        const ok = [name, description, ...fields].map((f) => f.check()).every(Boolean);
        if (!ok) {
          const bad = form.querySelector('[aria-invalid="true"]');
          if (bad) bad.focus();
          return;
        }
        const property = {};
        for (const f of fields) {
          const v = f.read();
          if (v === undefined) continue;
          if (v === '' && !f.schema.writeOnly) continue;
          property[f.name] = v;
        }
        for (const f of fields) {
          // A secret left empty: "" keeps the stored one on edit.
          if (f.schema.writeOnly && property[f.name] === undefined) property[f.name] = '';
        }
        const body = { name: name.read(), description: description.read(), [verifier.property_field]: property };
        save.disabled = true;
        save.textContent = 'Logging in to the targets…';
        try {
          const query = forget && forget.checked ? '?forget_host_keys=true' : '';
          const saved = editing
            ? await api('PATCH', `/api/v1/security/credential/${credential.credential_id}${query}`, body)
            : await api('POST', '/api/v1/security/credential', { target_type: verifier.target_type, ...body });
          close(saved);
        } catch (err) {
          save.disabled = false;
          save.textContent = editing ? 'Save' : 'Create';
          if (!(err instanceof ApiError)) throw err;
          if (/ValidationFailed$/.test(err.code)) {
            outcome.append(h('p', {}, 'The server could not log in to every target; nothing was saved:'),
              h('ul', { class: 'verdicts' }, perTarget(err.message).map((t) =>
                h('li', {}, h('strong', {}, t.target), ' ', h('span', { class: 'reason' }, t.reason), ' ', t.message))));
          } else if (err.code === 'Credential.Name.AlreadyExists') {
            name.fail(err.message);
            name.input.focus();
          } else if (err.code === 'Common.InvalidIp' || err.code === 'Credential.SSH.InvalidPort') {
            outcome.append(h('p', {}, err.message));
            const bad = [...form.querySelectorAll('input[name="ip"], input[name="port"]')]
              .find((i) => i.value && err.message.includes(`'${i.value}'`));
            if (bad) { bad.setAttribute('aria-invalid', 'true'); bad.focus(); }
          } else {
            outcome.append(h('p', {}, `${err.code}: ${err.message}`));
          }
        }
      },
    },
    h('div', { class: 'field' }, h('label', { for: typeId }, 'Target type'), typeSelect),
    name.element, description.element, propertyBox,
    forget && h('div', { class: 'field inline' }, forget,
      h('label', { for: forgetId }, "The targets' host keys changed: learn them afresh (with a new passphrase)")),
    outcome,
    h('div', { class: 'actions' }, save, h('button', { type: 'button', onclick: () => close(null) }, 'Cancel')));
    return form;
  });
}

