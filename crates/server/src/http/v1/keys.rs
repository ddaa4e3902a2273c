//! `/v1/keys/<key>`: GET reads (value or listing), POST/PUT set or test-and-set, DELETE
//! deletes. Validation errors (keyword prefix, missing value, bad TTL, sizes) are answered
//! before the log and consume no index.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use etcd_api::ErrorCode;
use etcd_store::{path, Command, Got};

use crate::http::app::App;
use crate::http::auth;
use crate::http::error::Error;
use crate::http::form::key_from_path;
use crate::http::form::Params;
use crate::http::reply::{event_response, json_ok, method_not_allowed, render};
use crate::{clock, gocompat};

/// The `/v1/keys` handler.
pub(in crate::http) async fn keys(
    State(app): State<App>,
    conn: auth::Conn,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let key = key_from_path(uri.path(), "/v1/keys")?;
        // v2 auth applies to v1 requests too: the older API is no way around it.
        let who = auth::who(&app, &headers, auth::cn_of(&conn)).await;
        let write = !matches!(method, Method::GET | Method::HEAD);
        if !who.may(&app, &key, write, false) {
            return Err(Error::unauthorized());
        }
        let can_read = who.may(&app, &key, false, false);
        match method {
            Method::GET => {
                if Params::from_query(&uri).get("consistent") == Some("true") {
                    // Through the log, as etcd v2's quorum reads: a leader that has lost its
                    // quorum can never commit the entry, so it can never answer stale data.
                    // (raft ReadIndex was used first; the fault test caught a resumed, paused
                    // leader answering stale through it.)
                    if let Err(e) = app.node.propose(Command::Read).await? {
                        return Err(e.into());
                    }
                }
                // Listing a directory reads its children: the tree below it. (Decided on
                // what the read returns, so a directory created meanwhile is no way in.)
                let may_list = who.may(&app, &key, false, true);
                get(&app, &key, may_list)
            }
            Method::POST | Method::PUT => {
                let params =
                    Params::from_request(&method, &uri, &headers, body, app.body_limit()).await?;
                set(&app, key, &params, can_read).await
            }
            Method::DELETE => delete(&app, key, can_read).await,
            _ => Ok(method_not_allowed()),
        }
    };
    let mut response = result.await.unwrap_or_else(IntoResponse::into_response);
    // As etcd v2 does: the store's index with every answer, errors included (etcdctl shows it).
    let index = app.node.read(|s| s.index());
    response
        .headers_mut()
        .insert("x-etcd-index", HeaderValue::from(index));
    response
}

fn get(app: &App, key: &str, may_list: bool) -> Result<Response, Error> {
    let got = app.node.read(|s| s.get(key))?;
    Ok(match got {
        Got::Value(e) => event_response(&e),
        Got::Listing(_) if !may_list => return Err(Error::unauthorized()),
        Got::Listing(items) => {
            let items: Vec<_> = items.iter().map(render).collect();
            json_ok(serde_json::to_vec(&items).expect("serialising a listing cannot fail"))
        }
    })
}

async fn set(app: &App, key: String, params: &Params, can_read: bool) -> Result<Response, Error> {
    if path::is_reserved(&key) {
        return Err(Error::new(ErrorCode::KeywordPrefix, "Set"));
    }
    let value = match params.get("value") {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => return Err(Error::new(ErrorCode::ValueRequired, "Set")),
    };
    if value.len() > app.max_value_bytes {
        return Err(Error::new(
            ErrorCode::TooLarge,
            format!("the value is larger than {} bytes", app.max_value_bytes),
        ));
    }
    let ttl_secs = match params.get("ttl") {
        None | Some("") => None,
        Some(t) => Some(gocompat::atoi(t).ok_or_else(|| Error::new(ErrorCode::TtlNaN, "Set"))?),
    };
    let time = clock::now();
    let command = match params.get("prevValue") {
        Some(prev) if !prev.is_empty() => Command::TestAndSet {
            key,
            prev_value: prev.to_string(),
            value,
            ttl_secs,
            time,
        },
        _ => Command::Set {
            key,
            value,
            ttl_secs,
            time,
        },
    };
    propose(app, command, can_read).await
}

async fn delete(app: &App, key: String, can_read: bool) -> Result<Response, Error> {
    if path::is_reserved(&key) {
        return Err(Error::new(ErrorCode::KeywordPrefix, "Delete"));
    }
    propose(app, Command::Delete { key }, can_read).await
}

/// Proposes a write; `can_read`: the caller may read the key (else the previous value is
/// left out of the answer, and out of a failed test-and-set's cause).
async fn propose(app: &App, command: Command, can_read: bool) -> Result<Response, Error> {
    match app.node.propose(command).await? {
        Ok(Some(mut event)) => {
            if !can_read {
                event.prev_value = None;
            }
            Ok(event_response(&event))
        }
        Ok(None) => unreachable!("client commands always answer with an event"),
        Err(etcd_store::Error::TestFailed { .. }) if !can_read => {
            Err(Error::new(ErrorCode::TestFailed, ""))
        }
        Err(e) => Err(e.into()),
    }
}
