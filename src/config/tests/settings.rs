//! The settings types: how a [`ConfigError`] prints, inside a provider entry and outside one.

use super::*;

#[test]
fn config_error_display_format() {
    let e = ConfigError {
        provider: Some("x".into()),
        key: "token_url".into(),
        message: "is required".into(),
    };
    assert_eq!(e.to_string(), "provider `x`: token_url: is required");
    assert_eq!(
        ConfigError::global("TOKENGATE_KEY", "is missing").to_string(),
        "TOKENGATE_KEY: is missing"
    );
}
