//! The seed's v1 API (spec sections 2–6): `/v1/keys` (`keys`), `/v1/watch` (`watch`), and
//! `/`, `/v1/machines`, `/v1/leader`, `/v1/stats` and the peer API's `/name` (`info`).
//! Answers are the seed's JSON (`crate::http::reply`), errors its codes (`crate::http::error`).

pub(super) mod info;
pub(super) mod keys;
pub(super) mod watch;
