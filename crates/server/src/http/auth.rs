//! etcd v2 authentication: the `/v2/auth` API and the check every key request goes through.
//!
//! Who asks: HTTP basic auth (`Authorization: Basic user:password`), checked against the
//! user's bcrypt hash; else, on an HTTPS listener with client certificates, the certificate's
//! common name names the user (no password: the certificate is the proof); else the `guest`
//! role. While auth is off everyone may do everything. The `root` role may do everything,
//! including the auth API and member changes; other roles get exactly their patterns (see
//! `etcd_store::auth`). v1 requests go through the same check, so the older API is no way
//! around it.
//!
//! Deliberately stricter than etcd 3.4: listing a directory's children needs access to the
//! whole tree below it (`/dir/*`), not only to the directory's own key.
//!
//! Password checks cost a bcrypt verification (cost 10); a successful check is remembered
//! in memory (user, password, hash) until the user's hash changes, so keep-alive clients do
//! not pay it per request. Passwords are never logged, stored on disk or sent to peers.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use etcd_store::auth::{Permissions, ROOT};
use etcd_store::Command;
use serde::{Deserialize, Serialize};

use super::app::App;
use super::reply::{json, message};
use crate::tls::ClientCn;

/// bcrypt cost of stored passwords (etcd's).
const BCRYPT_COST: u32 = 10;

/// What a request may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// Auth is off, or the root role: everything.
    Anyone,
    /// These roles' patterns.
    Roles(BTreeSet<String>),
    /// Credentials were given and are wrong.
    Denied,
}

impl Who {
    /// Whether this may access `key`.
    pub fn may(&self, app: &App, key: &str, write: bool, recursive: bool) -> bool {
        match self {
            Who::Anyone => true,
            Who::Denied => false,
            Who::Roles(roles) => app
                .node
                .read(|s| s.auth().allows(roles, key, write, recursive)),
        }
    }

    /// `may`, against a store already locked by the caller.
    pub fn may_in(
        &self,
        store: &crate::node::Store,
        key: &str,
        write: bool,
        recursive: bool,
    ) -> bool {
        match self {
            Who::Anyone => true,
            Who::Denied => false,
            Who::Roles(roles) => {
                !store.auth().enabled || store.auth().allows(roles, key, write, recursive)
            }
        }
    }

    /// Whether this has the root role (or auth is off).
    pub fn is_root(&self) -> bool {
        matches!(self, Who::Anyone)
    }
}

/// Who is asking, from the request's headers and connection.
pub async fn who(app: &App, headers: &HeaderMap, cn: Option<&str>) -> Who {
    let enabled = app.node.read(|s| s.auth().enabled);
    if !enabled {
        return Who::Anyone;
    }
    let roles_of = |name: &str| -> Option<BTreeSet<String>> {
        app.node
            .read(|s| s.auth().users.get(name).map(|u| u.roles.clone()))
    };
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let Some((user, password)) = parse_basic(value.as_bytes()) else {
            return Who::Denied;
        };
        if !check_password(app, &user, &password).await {
            return Who::Denied;
        }
        return match roles_of(&user) {
            Some(roles) if roles.contains(ROOT) => Who::Anyone,
            Some(roles) => Who::Roles(roles),
            None => Who::Denied,
        };
    }
    if let Some(cn) = cn {
        if let Some(roles) = roles_of(cn) {
            return if roles.contains(ROOT) {
                Who::Anyone
            } else {
                Who::Roles(roles)
            };
        }
    }
    Who::Roles([etcd_store::auth::GUEST.to_string()].into())
}

/// `Basic base64(user:password)`.
fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

async fn check_password(app: &App, user: &str, password: &str) -> bool {
    let hash = app
        .node
        .read(|s| s.auth().users.get(user).map(|u| u.password_hash.clone()));
    let Some(hash) = hash else {
        return false;
    };
    {
        let cache = app.passwords.0.lock().expect("password cache poisoned");
        if let Some((p, h)) = cache.get(user) {
            if *h == hash {
                return p == password;
            }
        }
    }
    let (pw, h) = (password.to_string(), hash.clone());
    let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pw, &h).unwrap_or(false))
        .await
        .unwrap_or(false);
    if ok {
        app.passwords
            .0
            .lock()
            .expect("password cache poisoned")
            .insert(user.to_string(), (password.to_string(), hash));
    }
    ok
}

/// etcd's answer to a request the credentials do not allow, on the auth and members APIs.
pub fn insufficient() -> Response {
    message(StatusCode::UNAUTHORIZED, "Insufficient credentials")
}

/// Layer of the `/v2/auth` routes: only the root role (or anyone while auth is off) gets
/// through, except to `GET /v2/auth/enable`.
pub(super) async fn root_only(
    State(app): State<App>,
    conn: Conn,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let open = req.method() == axum::http::Method::GET && req.uri().path() == "/v2/auth/enable";
    if !open {
        if let Err(r) = require_root(&app, req.headers(), cn_of(&conn)).await {
            return r;
        }
    }
    next.run(req).await
}

/// The root role's check for the auth API, member changes and the like: `Ok` if allowed.
pub async fn require_root(
    app: &App,
    headers: &HeaderMap,
    cn: Option<&str>,
) -> Result<(), Response> {
    if who(app, headers, cn).await.is_root() {
        Ok(())
    } else {
        Err(insufficient())
    }
}

// ---------------------------------------------------------------------------------------------
// Wire types
// ---------------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Default, Clone)]
struct Kv {
    /// etcdctl sends `null` for "none".
    #[serde(default, deserialize_with = "null_as_empty")]
    read: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    write: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Serialize, Deserialize, Default, Clone)]
struct PermJson {
    #[serde(default, deserialize_with = "null_as_default")]
    kv: Kv,
}

fn null_as_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Kv, D::Error> {
    Ok(Option::<Kv>::deserialize(d)?.unwrap_or_default())
}

impl PermJson {
    fn from_store(p: &Permissions) -> PermJson {
        PermJson {
            kv: Kv {
                read: p.read.iter().cloned().collect(),
                write: p.write.iter().cloned().collect(),
            },
        }
    }

    fn to_store(&self) -> Permissions {
        Permissions {
            read: self.kv.read.iter().cloned().collect(),
            write: self.kv.write.iter().cloned().collect(),
        }
    }
}

#[derive(Serialize)]
struct RoleJson {
    role: String,
    permissions: PermJson,
}

#[derive(Serialize)]
struct UserJson {
    user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<RoleJson>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRequest {
    user: Option<String>,
    password: Option<String>,
    roles: Option<Vec<String>>,
    grant: Option<Vec<String>>,
    revoke: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RoleRequest {
    role: Option<String>,
    permissions: Option<PermJson>,
    grant: Option<PermJson>,
    revoke: Option<PermJson>,
}

fn role_json(app: &App, name: &str) -> Option<RoleJson> {
    app.node.read(|s| {
        s.auth().role(name).map(|p| RoleJson {
            role: name.to_string(),
            permissions: PermJson::from_store(&p),
        })
    })
}

fn user_json(app: &App, name: &str, always_roles: bool) -> Option<UserJson> {
    let roles = app
        .node
        .read(|s| s.auth().users.get(name).map(|u| u.roles.clone()))?;
    let list: Vec<RoleJson> = roles.iter().filter_map(|r| role_json(app, r)).collect();
    Some(UserJson {
        user: name.to_string(),
        roles: (always_roles || !list.is_empty()).then_some(list),
    })
}

/// Proposes an auth command; maps the store's refusal to etcd's `{"message":"auth: ..."}`.
async fn propose(app: &App, command: Command) -> Result<(), Response> {
    match app.node.propose(command).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(etcd_store::Error::Auth { status, message: m })) => Err(message(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            format!("auth: {m}"),
        )),
        Ok(Err(e)) => Err(message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(t) => Err(message(StatusCode::INTERNAL_SERVER_ERROR, t.to_string())),
    }
}

async fn read_json<T: for<'de> Deserialize<'de>>(body: Body) -> Result<T, Response> {
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| message(StatusCode::BAD_REQUEST, e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| message(StatusCode::BAD_REQUEST, e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// The connection's certificate name, as handlers extract it (see `ClientCn`).
pub type Conn = Option<axum::Extension<axum::extract::ConnectInfo<ClientCn>>>;

/// The certificate name of `conn`, if any.
pub fn cn_of(conn: &Conn) -> Option<&str> {
    conn.as_ref().and_then(|e| e.0 .0 .0.as_deref())
}

/// `GET /v2/auth/enable`: `{"enabled":bool}`, for anyone.
pub(super) async fn enable_status(State(app): State<App>) -> Response {
    #[derive(Serialize)]
    struct Enabled {
        enabled: bool,
    }
    let enabled = app.node.read(|s| s.auth().enabled);
    json(StatusCode::OK, &Enabled { enabled })
}

/// `PUT /v2/auth/enable` and `DELETE /v2/auth/enable`.
pub(super) async fn enable(State(app): State<App>, method: axum::http::Method) -> Response {
    let enabled = method == axum::http::Method::PUT;
    match propose(&app, Command::AuthEnable { enabled }).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(r) => r,
    }
}

/// `GET /v2/auth/users`.
pub(super) async fn list_users(State(app): State<App>) -> Response {
    #[derive(Serialize)]
    struct Users {
        users: Vec<UserJson>,
    }
    let names: Vec<String> = app.node.read(|s| s.auth().users.keys().cloned().collect());
    let users = names
        .iter()
        .filter_map(|n| user_json(&app, n, false))
        .collect();
    json(StatusCode::OK, &Users { users })
}

/// `GET /v2/auth/users/<name>`.
pub(super) async fn get_user(State(app): State<App>, Path(name): Path<String>) -> Response {
    match user_json(&app, &name, true) {
        Some(u) => json(StatusCode::OK, &u),
        None => message(
            StatusCode::NOT_FOUND,
            format!("auth: User {name} does not exist."),
        ),
    }
}

/// `PUT /v2/auth/users/<name>` `{"user","password","roles"|"grant"|"revoke"}`: creates (201)
/// or changes (200) a user.
pub(super) async fn put_user(
    State(app): State<App>,
    Path(name): Path<String>,
    body: Body,
) -> Response {
    let req: UserRequest = match read_json(body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if req.user.as_deref().is_some_and(|u| u != name) {
        return message(
            StatusCode::BAD_REQUEST,
            "User JSON name does not match the name in the URL",
        );
    }
    let password_hash = match req.password.filter(|p| !p.is_empty()) {
        Some(p) => match tokio::task::spawn_blocking(move || bcrypt::hash(p, BCRYPT_COST)).await {
            Ok(Ok(h)) => Some(h),
            _ => {
                return message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "hashing the password failed",
                )
            }
        },
        None => None,
    };
    let existed = app.node.read(|s| s.auth().users.contains_key(&name));
    let command = Command::AuthPutUser {
        name: name.clone(),
        password_hash,
        roles: req.roles.unwrap_or_default(),
        grant: req.grant.unwrap_or_default(),
        revoke: req.revoke.unwrap_or_default(),
    };
    if let Err(r) = propose(&app, command).await {
        return r;
    }
    #[derive(Serialize)]
    struct Answer {
        user: String,
        roles: Option<Vec<String>>,
    }
    let roles: Vec<String> = app.node.read(|s| {
        s.auth()
            .users
            .get(&name)
            .map(|u| u.roles.iter().cloned().collect())
            .unwrap_or_default()
    });
    let (status, roles) = if existed {
        (StatusCode::OK, Some(roles))
    } else {
        (StatusCode::CREATED, (!roles.is_empty()).then_some(roles))
    };
    json(status, &Answer { user: name, roles })
}

/// `DELETE /v2/auth/users/<name>`.
pub(super) async fn delete_user(State(app): State<App>, Path(name): Path<String>) -> Response {
    match propose(&app, Command::AuthDeleteUser { name }).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(r) => r,
    }
}

/// `GET /v2/auth/roles`.
pub(super) async fn list_roles(State(app): State<App>) -> Response {
    #[derive(Serialize)]
    struct Roles {
        roles: Vec<RoleJson>,
    }
    let mut names: Vec<String> = app.node.read(|s| s.auth().roles.keys().cloned().collect());
    names.push(ROOT.to_string());
    names.sort();
    let roles = names.iter().filter_map(|n| role_json(&app, n)).collect();
    json(StatusCode::OK, &Roles { roles })
}

/// `GET /v2/auth/roles/<name>`.
pub(super) async fn get_role(State(app): State<App>, Path(name): Path<String>) -> Response {
    match role_json(&app, &name) {
        Some(r) => json(StatusCode::OK, &r),
        None => message(
            StatusCode::NOT_FOUND,
            format!("auth: Role {name} does not exist."),
        ),
    }
}

/// `PUT /v2/auth/roles/<name>` `{"role","permissions"|"grant"|"revoke"}`.
pub(super) async fn put_role(
    State(app): State<App>,
    Path(name): Path<String>,
    body: Body,
) -> Response {
    let req: RoleRequest = match read_json(body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if req.role.as_deref().is_some_and(|r| r != name) {
        return message(
            StatusCode::BAD_REQUEST,
            "Role JSON name does not match the name in the URL",
        );
    }
    let existed = app.node.read(|s| s.auth().roles.contains_key(&name));
    let command = Command::AuthPutRole {
        name: name.clone(),
        permissions: req.permissions.as_ref().map(PermJson::to_store),
        grant: req.grant.as_ref().map(PermJson::to_store),
        revoke: req.revoke.as_ref().map(PermJson::to_store),
    };
    if let Err(r) = propose(&app, command).await {
        return r;
    }
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    match role_json(&app, &name) {
        Some(r) => json(status, &r),
        None => status.into_response(),
    }
}

/// `DELETE /v2/auth/roles/<name>`.
pub(super) async fn delete_role(State(app): State<App>, Path(name): Path<String>) -> Response {
    match propose(&app, Command::AuthDeleteRole { name }).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_parse() {
        assert_eq!(
            parse_basic(b"Basic YWxpY2U6YXB3"),
            Some(("alice".into(), "apw".into()))
        );
        assert_eq!(
            parse_basic(b"basic YTpiOmM="),
            Some(("a".into(), "b:c".into()))
        );
        assert_eq!(parse_basic(b"Bearer x"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
        assert_eq!(parse_basic(b"Basic YWxpY2U="), None, "no colon");
    }
}
