//! [`App`]: what every handler is given (axum state).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::NodeInfo;
use crate::node::Node;

/// What every handler needs.
#[derive(Clone)]
pub struct App {
    /// The door to this member: proposals, reads, watches, status.
    pub node: Node,
    /// This member's configuration.
    pub member: Arc<NodeInfo>,
    /// Largest value accepted.
    pub max_value_bytes: usize,
    /// Largest cluster this member lets others join (`-maxsize`).
    pub max_members: usize,
    /// Flips to true when the node stops; waiting watches end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// When this process started (Unix nanoseconds).
    pub started: i64,
    /// Password checks that succeeded (see `auth`).
    pub passwords: PasswordCache,
    /// The v3 space quota in bytes, if any (`/metrics` reports it).
    pub quota: Option<u64>,
    /// Origins the v2 API answers CORS requests for (`--cors`; `*` is any).
    pub cors: Arc<Vec<String>>,
}

impl App {
    /// Largest request body read: room for a maximal value percent-encoded, plus the rest.
    pub(super) fn body_limit(&self) -> usize {
        self.max_value_bytes
            .saturating_mul(3)
            .saturating_add(64 << 10)
    }
}

/// Successful password checks (v2 auth): user → (password, the hash it was checked against),
/// so that a user's requests pay for bcrypt once, not each time.
#[derive(Clone, Default)]
pub struct PasswordCache(pub(super) Arc<Mutex<HashMap<String, (String, String)>>>);
