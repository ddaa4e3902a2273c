//! Answers shared by the handlers: the seed's JSON event, plain text, etcd v2's JSON (Go's
//! escaping) and its `{"message": …}` errors, plain-text 404 and 405. The one place these
//! shapes are written.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use etcd_api::{time, Action, KeyResponse};
use etcd_store::Event;

/// etcd's plain-text 404 for paths no route serves.
pub(super) async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain")],
        "404 page not found",
    )
        .into_response()
}

pub(super) fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::CONTENT_TYPE, "text/plain")],
        "Method Not Allowed",
    )
        .into_response()
}

/// The wire form of a store event; `ttl` is counted from now.
pub(super) fn render(e: &Event) -> KeyResponse {
    KeyResponse {
        action: match e.action {
            etcd_store::Action::Get => Action::Get,
            a if a.removes() => Action::Delete,
            _ => Action::Set,
        },
        key: e.key.clone(),
        dir: e.dir,
        prev_value: e.prev_value.clone(),
        value: e.value.clone(),
        new_key: e.new_key,
        expiration: e.expiration.map(time::format_rfc3339_nanos),
        ttl: e
            .expiration
            .and_then(|t| time::remaining_ttl_secs(t, crate::clock::now())),
        index: e.index,
    }
}

/// A 200 JSON response.
pub(super) fn json_ok(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

pub(super) fn event_response(e: &Event) -> Response {
    json_ok(serde_json::to_vec(&render(e)).expect("serialising a response cannot fail"))
}

/// A 200 plain-text answer (Go's `text/plain; charset=utf-8`).
pub(super) fn text(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A JSON answer as etcd's Go encoder writes it (HTML-safe escapes).
pub(super) fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        etcd_api::v2::to_go_json(value),
    )
        .into_response()
}

/// etcd's `{"message": …}` answer (members and auth APIs).
pub(super) fn message(status: StatusCode, text: impl Into<String>) -> Response {
    #[derive(serde::Serialize)]
    struct Message {
        message: String,
    }
    json(
        status,
        &Message {
            message: text.into(),
        },
    )
}
