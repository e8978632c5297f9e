// The API, as the console speaks it: JSON, the obshell envelope, and a
// bearer token kept in this tab's session storage (never local storage,
// never the URL).

const KEY = 'credhost.token';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

/** One call; resolves with the envelope's `data`, rejects with ApiError. */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) {
    // A page that came over plain HTTP from another machine (one the
    // browser calls not secure) would send the token across the network
    // in clear, where the server could only refuse it once it was seen.
    if (!window.isSecureContext) {
      throw new ApiError(0, 'InsecureTransport',
        'this page came over plain HTTP from another machine, so a token would cross the ' +
        'network in clear: open the console over HTTPS, or on the server\'s own machine');
    }
    headers.Authorization = `Bearer ${t}`;
  }
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'Network', `the server cannot be reached: ${e.message}`);
  }
  let envelope;
  try {
    envelope = await response.json();
  } catch {
    throw new ApiError(response.status, 'Unknown', `the server answered ${response.status}`);
  }
  if (envelope.successful) return envelope.data ?? null;
  const error = envelope.error || {};
  throw new ApiError(response.status, error.errCode || 'Unknown', error.message || 'failed');
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body ?? {});

/** Every credential id the server has, page by page. */
export async function allIds() {
  const ids = [];
  for (let page = 1; ; page += 1) {
    const data = await get(`/api/v1/security/credentials?page=${page}&page_size=100&sort=id`);
    for (const c of data.contents) ids.push(c.credential_id);
    if (page >= data.page.total_pages) return ids;
  }
}
