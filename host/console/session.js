// Who the console acts as, and what that allows.

import { get } from './api.js';

/** {kind: 'token' | 'anonymous' | …, scope, name} */
export const session = { kind: null, scope: null, name: null };

const ORDER = ['read', 'validate', 'write', 'admin'];

export function may(scope) {
  return ORDER.indexOf(session.scope) >= ORDER.indexOf(scope);
}

export async function whoami() {
  const me = await get('/api/v1/tokens/self');
  if (me.kind === 'token') {
    Object.assign(session, { kind: 'token', scope: me.token.scope, name: me.token.name });
  } else {
    Object.assign(session, { kind: me.kind, scope: me.scope, name: me.kind });
  }
}
