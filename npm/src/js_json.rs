//! JavaScript values as JSON data, for the Worker's config vars and the npm package's config
//! objects alike. Reading goes through `JSON.stringify` and serde_json: a cycle, a getter that
//! throws or nesting past serde_json's depth limit (128) is an error — never a wasm stack
//! overflow, and never the getter's own message (which could quote a secret).

use serde_json::Value;
use wasm_bindgen::JsValue;

/// Why a value is not JSON data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotJson {
    /// `JSON.stringify` threw (a cycle, a throwing getter) or gave nothing (`undefined`, a
    /// function).
    NotData,
    /// Valid JSON, but nested too deeply to parse.
    TooDeep,
}

impl NotJson {
    /// A short description for a config error.
    pub(crate) fn message(self) -> &'static str {
        match self {
            NotJson::NotData => "must be a plain object of strings, numbers and objects",
            NotJson::TooDeep => "is nested too deeply",
        }
    }
}

/// `v` as JSON data.
pub(crate) fn json_of(v: &JsValue) -> Result<Value, NotJson> {
    let text = js_sys::JSON::stringify(v)
        .map_err(|_| NotJson::NotData)?
        .as_string()
        .ok_or(NotJson::NotData)?;
    serde_json::from_str(&text).map_err(|_| NotJson::TooDeep)
}
