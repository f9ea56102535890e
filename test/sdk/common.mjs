// Shared by the SDK loop scripts: configuration from the environment, a
// fetch that remembers every response's headers, and the one-JSON-line
// result convention (exit status non-zero on any error).

export function config() {
  const base = process.env.WHYOPS_BASE_URL;
  const key = process.env.WHYOPS_KEY;
  if (!base || !key) {
    throw new Error('set WHYOPS_BASE_URL (e.g. http://127.0.0.1:8080) and WHYOPS_KEY (a whyops_... key)');
  }
  return { base: base.replace(/\/+$/, ''), key };
}

// The headers a caller of the proxy cares about, from a fetch Response.
export function proxyHeaders(response) {
  if (!response || !response.headers) return null;
  return {
    'x-request-id': response.headers.get('x-request-id'),
    'x-trace-id': response.headers.get('x-trace-id'),
  };
}

// A fetch for the SDK clients' `fetch` option that logs every exchange, so
// that the stream helpers (which hide their Response) still show the headers
// the proxy answered with.  Calls are made one after the other, so the last
// entry belongs to the call that just finished.
export function recordingFetch(log) {
  return async (url, init) => {
    const sent = new Headers((init && init.headers) || {});
    const response = await fetch(url, init);
    log.push({
      method: (init && init.method) || 'GET',
      path: new URL(String(url)).pathname,
      status: response.status,
      headers: proxyHeaders(response),
      sent: { 'anthropic-version': sent.get('anthropic-version') },
    });
    return response;
  };
}

export function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg);
}

export function last(log, what) {
  assert(log.length > 0, `no HTTP exchange recorded for ${what}`);
  return log[log.length - 1];
}

// Runs the script body; prints its result as one JSON line on success, the
// error (with the API error body if any) on stderr and exit status 1 otherwise.
export async function main(body) {
  try {
    const result = await body();
    process.stdout.write(JSON.stringify(result) + '\n');
  } catch (err) {
    const detail = { error: String(err && err.message ? err.message : err) };
    if (err && err.status !== undefined) detail.status = err.status;
    if (err && err.error !== undefined) detail.body = err.error;
    process.stderr.write((err && err.stack ? err.stack : String(err)) + '\n');
    process.stdout.write(JSON.stringify({ ok: false, ...detail }) + '\n');
    process.exitCode = 1;
  }
}
