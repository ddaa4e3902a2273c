//! Who sent a request, for v3 auth (etcd 3.4 `auth/store.go` `AuthInfoFromCtx`,
//! `AuthInfoFromTLS`): the user of the `token` metadata (or `authorization`, as the JSON
//! gateway sends it), else the common name of the client certificate, else nobody.
//!
//! A token that this member does not know is refused (`invalid auth token`) even with auth
//! off, as etcd does. A simple token made by an entry this member has not applied yet waits
//! for it (bounded), as a client may authenticate with one member and go on with another.
//!
//! The caller travels with the request through the log (`etcdrs.InternalRequest` `username`,
//! `auth_revision`), where the store checks it; reads served here are checked against the
//! store directly.

use std::time::Duration;

use etcd_api::v3::V3Error;
use etcd_store::v3auth::Who;
use tonic::{Request, Status};

use super::error::status;
use super::Ctx;
use crate::tls::ClientCn;
use crate::tokens::Tokens;

/// How long a request waits for the entry that made its simple token to apply here.
const TOKEN_INDEX_WAIT: Duration = Duration::from_secs(3);

/// Who sent a request. The default is nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The user (empty: nobody).
    pub user: String,
    /// The auth revision the user was found at (0: nobody).
    pub revision: u64,
}

impl Caller {
    /// As the store checks it.
    pub(crate) fn who(&self) -> Who<'_> {
        Who {
            user: &self.user,
            revision: self.revision,
        }
    }
}

/// What a request carried to say who sent it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Credentials {
    token: Option<String>,
    common_name: Option<String>,
    /// Found already (a service's own call on a client's behalf, see `local.rs`).
    known: Option<Caller>,
}

impl Credentials {
    /// What `req` carries.
    pub(crate) fn of<T>(req: &Request<T>) -> Credentials {
        if let Some(known) = req.extensions().get::<Caller>() {
            return Credentials {
                known: Some(known.clone()),
                ..Default::default()
            };
        }
        let md = req.metadata();
        let token = md
            .get("token")
            .or_else(|| md.get("authorization"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let common_name = req
            .extensions()
            .get::<axum::extract::ConnectInfo<ClientCn>>()
            .and_then(|c| c.0 .0.clone());
        Credentials {
            token,
            common_name,
            known: None,
        }
    }
}

impl Ctx {
    /// The caller of `req` (an unknown token is an error).
    pub(crate) async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        self.caller_of(&Credentials::of(req)).await.map_err(status)
    }

    /// The caller `credentials` name.
    pub(crate) async fn caller_of(&self, credentials: &Credentials) -> Result<Caller, V3Error> {
        if let Some(known) = &credentials.known {
            return Ok(known.clone());
        }
        if let Some(token) = &credentials.token {
            let tokens = self.node.tokens();
            if tokens.is_simple() {
                if let Some(index) = Tokens::simple_index(token) {
                    self.wait_applied(index).await;
                }
            }
            let info = tokens.info(token).ok_or(V3Error::InvalidAuthToken)?;
            let revision = match info.revision {
                Some(r) => r,
                None => self.auth_revision(),
            };
            return Ok(Caller {
                user: info.user,
                revision,
            });
        }
        if let Some(cn) = &credentials.common_name {
            return Ok(Caller {
                user: cn.clone(),
                revision: self.auth_revision(),
            });
        }
        Ok(Caller::default())
    }

    /// The member's current auth revision.
    fn auth_revision(&self) -> u64 {
        self.node.read(|s| s.auth_v3().revision())
    }

    /// Waits (bounded) until this member has applied log index `index`.
    async fn wait_applied(&self, index: u64) {
        let deadline = tokio::time::Instant::now() + TOKEN_INDEX_WAIT;
        while self.node.applied() < index && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Ctx {
    /// Whether `req`'s caller may manage the cluster (etcd's `IsAdminPermitted`: with auth
    /// on, a user holding the root role).
    async fn admin<T>(&self, req: &Request<T>) -> Result<(), V3Error> {
        let caller = self.caller_of(&Credentials::of(req)).await?;
        self.node.read(|s| s.auth_v3().check_admin(caller.who()))
    }

    /// The admin check of Maintenance's Defragment, Hash, HashKV and Snapshot. etcd answers
    /// these refusals with its auth store's own text under `Unknown` (its maintenance
    /// server returns them unconverted).
    pub(crate) async fn check_admin<T>(&self, req: &Request<T>) -> Result<(), Status> {
        self.admin(req).await.map_err(|e| {
            let text = match e {
                V3Error::UserNotFound => "auth: user not found".to_string(),
                e => e.to_string().replacen("etcdserver: ", "auth: ", 1),
            };
            Status::unknown(text)
        })
    }

    /// The admin check of membership changes (etcd's gRPC errors).
    pub(crate) async fn check_member_admin<T>(&self, req: &Request<T>) -> Result<(), Status> {
        self.admin(req).await.map_err(status)
    }
}
