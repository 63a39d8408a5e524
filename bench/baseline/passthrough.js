// The floor of the Worker benchmark: a bare passthrough that adds a fixed provider bearer token
// (env.TOKEN, fetched once by the bench) and forwards the request. No caller check, no token
// cache, no header hygiene: nothing a gateway must do, only what every proxy Worker costs.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const rest = url.pathname.replace(/^\/optoro\//, '');
    const headers = new Headers(request.headers);
    headers.set('authorization', `Bearer ${env.TOKEN}`);
    return fetch(env.API_BASE + rest + url.search, {
      method: request.method,
      headers,
      body: request.body,
      redirect: 'manual',
    });
  },
};
