//! The platform, bound directly: Workers KV, `fetch`, `Headers`, `Response` and body streams,
//! one `wasm-bindgen` import each, so that a proxied request crosses into JavaScript only for
//! what it needs (no `request.cf` object, no wrapper types built per request).

use futures::StreamExt;
use js_sys::{Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// A Workers KV namespace binding.
    #[derive(Clone)]
    pub type KvNamespace;

    #[wasm_bindgen(method, catch, js_name = get)]
    fn get_text(this: &KvNamespace, key: &str) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = put)]
    fn put_with(
        this: &KvNamespace,
        key: &str,
        value: &str,
        options: &Object,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = delete)]
    fn delete_key(this: &KvNamespace, key: &str) -> Result<Promise, JsValue>;

    /// The global `fetch`.
    #[wasm_bindgen(catch, js_name = fetch)]
    fn global_fetch(request: &web_sys::Request) -> Result<Promise, JsValue>;
}

#[wasm_bindgen]
extern "C" {
    /// A Durable Object namespace binding.
    #[derive(Clone)]
    pub type ObjectNamespace;

    #[wasm_bindgen(method, catch, js_name = idFromName)]
    fn id_from_name(this: &ObjectNamespace, name: &str) -> Result<JsValue, JsValue>;

    #[wasm_bindgen(method, catch, js_name = get)]
    fn stub(this: &ObjectNamespace, id: &JsValue) -> Result<ObjectStub, JsValue>;

    /// A Durable Object stub.
    pub type ObjectStub;

    #[wasm_bindgen(method, catch, js_name = fetch)]
    fn stub_fetch(this: &ObjectStub, request: &web_sys::Request) -> Result<Promise, JsValue>;
}

impl ObjectNamespace {
    /// The namespace bound as `name` in `env`, if that binding is a Durable Object namespace.
    pub fn from_env(env: &JsValue, name: &str) -> Option<ObjectNamespace> {
        let v = Reflect::get(env, &JsValue::from_str(name)).ok()?;
        let f = Reflect::get(&v, &JsValue::from_str("idFromName")).ok()?;
        f.is_function().then(|| v.unchecked_into())
    }

    /// Sends `request` to the object named `name`; its response.
    pub async fn fetch_named(
        &self,
        name: &str,
        request: &web_sys::Request,
    ) -> Result<web_sys::Response, String> {
        let stub = self
            .id_from_name(name)
            .and_then(|id| self.stub(&id))
            .map_err(|e| message(&e))?;
        let resp = settle(stub.stub_fetch(request)).await?;
        Ok(resp.unchecked_into())
    }
}

#[wasm_bindgen]
extern "C" {
    /// A binding with a `fetch` of its own: an mTLS certificate binding
    /// (`[[mtls_certificates]]`), whose `fetch` presents the client certificate, or a service
    /// binding.
    #[derive(Clone)]
    pub type Fetcher;

    #[wasm_bindgen(method, catch, js_name = fetch)]
    fn fetcher_fetch(this: &Fetcher, request: &web_sys::Request) -> Result<Promise, JsValue>;
}

impl Fetcher {
    /// The binding `name` in `env`, if it has a `fetch`.
    pub fn from_env(env: &JsValue, name: &str) -> Option<Fetcher> {
        let v = Reflect::get(env, &JsValue::from_str(name)).ok()?;
        let f = Reflect::get(&v, &JsValue::from_str("fetch")).ok()?;
        f.is_function().then(|| v.unchecked_into())
    }
}

#[wasm_bindgen(module = "/js/platform.js")]
extern "C" {
    #[wasm_bindgen(js_name = sendWithin)]
    fn send_within_js(
        url: &str,
        method: &str,
        lines: &str,
        body: Option<JsValue>,
        ms: f64,
        controller: Option<web_sys::AbortController>,
        via: Option<Fetcher>,
    ) -> Promise;

    #[wasm_bindgen(js_name = isUnbuildable)]
    fn is_unbuildable(error: &JsValue) -> bool;

    #[wasm_bindgen(js_name = headerLinesOf)]
    fn header_lines_of(message: &JsValue) -> String;

    #[wasm_bindgen(catch, js_name = responseWith)]
    fn response_with_js(
        upstream: &web_sys::Response,
        status: u16,
        lines: &str,
        with_body: bool,
    ) -> Result<web_sys::Response, JsValue>;

    #[wasm_bindgen(js_name = isTimeout)]
    fn is_timeout(error: &JsValue) -> bool;

    #[wasm_bindgen(js_name = settledWithin)]
    fn settled_within_js(promise: &Promise, ms: f64) -> Promise;

    #[wasm_bindgen(catch, js_name = headersFromLines)]
    fn headers_from_lines(lines: &str) -> Result<web_sys::Headers, JsValue>;
}

/// Waits until `promise` settles or `ms` pass, whichever is first.
pub async fn settled_within(promise: &Promise, ms: u64) {
    let _ = JsFuture::from(settled_within_js(promise, ms as f64)).await;
}

/// How a [`send_within`] ended without a response.
pub enum SendFailure {
    /// No response headers within the deadline (the request was aborted).
    Timeout,
    /// The platform refused to build the request (a header it refuses).
    Unbuildable,
    /// What `fetch` rejected with.
    Failed(JsValue),
}

/// Builds and sends a request in one crossing into JavaScript: `method` to `url` with the
/// headers of `lines`, `body` (or none), redirects returned and never followed, waiting at most
/// `ms` for the response headers, after which the request is aborted — through `controller`,
/// when given (whoever holds it may abort the request too), else through one of its own. Sent
/// by `via`'s own `fetch` when given. The body is not under the deadline.
pub async fn send_within(
    url: &str,
    method: &str,
    lines: &HeaderLines,
    body: Option<JsValue>,
    ms: u64,
    controller: Option<web_sys::AbortController>,
    via: Option<&Fetcher>,
) -> Result<web_sys::Response, SendFailure> {
    let sent = send_within_js(
        url,
        method,
        &lines.0,
        body,
        ms as f64,
        controller,
        via.cloned(),
    );
    match JsFuture::from(sent).await {
        Ok(resp) => Ok(resp.unchecked_into()),
        Err(e) if is_timeout(&e) => Err(SendFailure::Timeout),
        Err(e) if is_unbuildable(&e) => Err(SendFailure::Unbuildable),
        Err(e) => Err(SendFailure::Failed(e)),
    }
}

/// The caller's response in one crossing: `status`, the headers of `lines` and `upstream`'s
/// body stream itself (none when `with_body` is false; a header the platform refuses is an
/// error).
pub fn response_with(
    upstream: &web_sys::Response,
    status: u16,
    lines: &HeaderLines,
    with_body: bool,
) -> Result<web_sys::Response, JsValue> {
    response_with_js(upstream, status, &lines.0, with_body)
}

/// What a JavaScript error says (its `message`, or the value as a string), for logs.
pub fn message(e: &JsValue) -> String {
    if let Some(s) = e.as_string() {
        return s;
    }
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .unwrap_or_else(|| "a JavaScript error".into())
}

/// What a promise the platform returned (or failed to) settles with; an error as its message.
pub async fn settle_promise(p: Result<Promise, JsValue>) -> Result<JsValue, String> {
    settle(p).await
}

async fn settle(p: Result<Promise, JsValue>) -> Result<JsValue, String> {
    JsFuture::from(p.map_err(|e| message(&e))?)
        .await
        .map_err(|e| message(&e))
}

impl KvNamespace {
    /// The namespace bound as `name` in `env`, if that binding is a KV namespace.
    pub fn from_env(env: &JsValue, name: &str) -> Option<KvNamespace> {
        let v = Reflect::get(env, &JsValue::from_str(name)).ok()?;
        let get = Reflect::get(&v, &JsValue::from_str("get")).ok()?;
        get.is_function().then(|| v.unchecked_into())
    }

    /// The text under `key`, `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<String>, String> {
        Ok(settle(self.get_text(key)).await?.as_string())
    }

    /// Stores `value` under `key`, for `ttl_s` seconds (`None`: no expiry).
    pub async fn put(&self, key: &str, value: &str, ttl_s: Option<u64>) -> Result<(), String> {
        let options = Object::new();
        if let Some(ttl) = ttl_s {
            Reflect::set(
                &options,
                &JsValue::from_str("expirationTtl"),
                &JsValue::from_f64(ttl as f64),
            )
            .map_err(|e| message(&e))?;
        }
        settle(self.put_with(key, value, &options)).await.map(drop)
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) -> Result<(), String> {
        settle(self.delete_key(key)).await.map(drop)
    }
}

/// `fetch(request)` — `via.fetch(request)` when given: the response, or the error it
/// rejected with.
pub async fn fetch(
    request: &web_sys::Request,
    via: Option<&Fetcher>,
) -> Result<web_sys::Response, JsValue> {
    let promise = match via {
        Some(f) => f.fetcher_fetch(request)?,
        None => global_fetch(request)?,
    };
    let resp = JsFuture::from(promise).await?;
    Ok(resp.unchecked_into())
}

/// Header lines: `name LF value LF` per header, the form [`headers_from`] builds `Headers`
/// from in one call. A name or value holding a LF cannot be a header (Fetch forbids it, and it
/// would shift the pairs): it is refused.
#[derive(Clone, Default)]
pub struct HeaderLines(String);

impl HeaderLines {
    /// Adds a header.
    pub fn push(&mut self, name: &str, value: &str) -> Result<(), JsValue> {
        if name.contains('\n') || value.contains('\n') {
            return Err(JsValue::from_str("a header cannot hold a line break"));
        }
        self.0.push_str(name);
        self.0.push('\n');
        self.0.push_str(value);
        self.0.push('\n');
        Ok(())
    }

    /// Lines from pairs.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<Self, JsValue> {
        let mut lines = HeaderLines::default();
        for (k, v) in pairs {
            lines.push(k.as_ref(), v.as_ref())?;
        }
        Ok(lines)
    }
}

/// `Headers` holding `lines` (a name or value the platform refuses is an error).
pub fn headers_from(lines: &HeaderLines) -> Result<web_sys::Headers, JsValue> {
    headers_from_lines(&lines.0)
}

/// Headers from pairs (a name or value the platform refuses is an error).
pub fn headers<K: AsRef<str>, V: AsRef<str>>(
    pairs: &[(K, V)],
) -> Result<web_sys::Headers, JsValue> {
    headers_from(&HeaderLines::from_pairs(pairs)?)
}

/// Every header of a `Request` or a `Response`, read in one call: the text of
/// `headerLines`, which the pairs borrow from (no string per header). Names are lower-case, as
/// the platform iterates them, each once (a repeated header comes joined, `Set-Cookie` aside).
pub struct HeaderText(String);

impl HeaderText {
    /// The headers of `message` (a `Request` or a `Response`).
    pub fn of(message: &JsValue) -> HeaderText {
        HeaderText(header_lines_of(message))
    }

    /// The (name, value) pairs, in the platform's order.
    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut parts = self.0.split('\n');
        std::iter::from_fn(move || Some((parts.next()?, parts.next()?)))
    }

    /// (name, value) pairs, in the platform's order.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.iter().collect()
    }

    /// The value of header `name` (in any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// One header's value in `pairs` (from [`HeaderText::pairs`]: lower-case names, each once).
pub fn find_header<'p>(pairs: &[(&str, &'p str)], name: &str) -> Option<&'p str> {
    pairs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, v)| v)
}

/// One header's value.
pub fn header(headers: &web_sys::Headers, name: &str) -> Option<String> {
    headers.get(name).ok().flatten()
}

/// A response of `status` with `headers` and `body` (a stream, bytes or nothing).
pub fn response(
    status: u16,
    headers: &web_sys::Headers,
    body: Option<&JsValue>,
) -> Result<web_sys::Response, JsValue> {
    let init = web_sys::ResponseInit::new();
    init.set_status(status);
    init.set_headers(headers);
    match body {
        Some(b) => {
            web_sys::Response::new_with_opt_readable_stream_and_init(Some(b.unchecked_ref()), &init)
        }
        None => web_sys::Response::new_with_opt_str_and_init(None, &init),
    }
}

/// A response whose body is `text`.
pub fn text_response(
    status: u16,
    headers: &web_sys::Headers,
    text: &str,
) -> Result<web_sys::Response, JsValue> {
    let init = web_sys::ResponseInit::new();
    init.set_status(status);
    init.set_headers(headers);
    web_sys::Response::new_with_opt_str_and_init(Some(text), &init)
}

/// The chunks of a body stream, as byte vectors.
pub fn chunks(
    body: web_sys::ReadableStream,
) -> impl futures::Stream<Item = Result<Vec<u8>, String>> {
    wasm_streams::ReadableStream::from_raw(body.unchecked_into())
        .into_stream()
        .map(|chunk| {
            let chunk = chunk.map_err(|e| message(&e))?;
            chunk
                .dyn_into::<Uint8Array>()
                .map(|a| a.to_vec())
                .map_err(|_| "a body chunk is not bytes".to_string())
        })
}

/// Reads a body stream whole, giving up past `limit` bytes (`Ok(None)`).
pub async fn read_limited(
    body: Option<web_sys::ReadableStream>,
    limit: usize,
) -> Result<Option<Vec<u8>>, String> {
    let mut buf = Vec::new();
    let Some(body) = body else {
        return Ok(Some(buf));
    };
    let mut stream = Box::pin(chunks(body));
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
        if buf.len() > limit {
            return Ok(None);
        }
    }
    Ok(Some(buf))
}
