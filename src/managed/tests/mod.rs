//! Managed clients: one file per concern beside the code's.

use super::*;

mod admin;
mod cidr;
mod record;

/// The providers the tests configure.
fn is_provider(id: &str) -> bool {
    ["optoro", "partner", "optimum"].contains(&id)
}
