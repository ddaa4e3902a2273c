//! The Auth service (etcd 3.4 `v3rpc/auth.go`, `etcdserver/v3_server.go`): every RPC goes
//! through the log with its caller, and the store applies it (checking root where etcd
//! does; see `etcd_store::v3auth`). Gets and lists too, as etcd's do, so they are
//! linearizable.
//!
//! Passwords stay on the member that received them: UserAdd and UserChangePassword put the
//! bcrypt hash (`--bcrypt-cost`) in the log, never the password; Authenticate checks the
//! password here against the member's copy of the user, then proposes the token (a simple
//! token is named by the entry's log index, so every member knows it once applied; a JWT is
//! signed here once the entry applied). A password checked against auth state that changed
//! before the entry applied is checked again, as etcd does.
//!
//! AuthStatus (etcd 3.5) is served too: it reads the state through the log like the others.

use std::sync::Arc;

use etcd_api::v3::V3Error;
use etcd_mvcc::{Answer, AuthAnswer};
use etcd_v3proto::etcdrs::internal_request::Request as Internal;
use etcd_v3proto::etcdrs::Authenticate;
use etcd_v3proto::etcdserverpb::auth_server;
use etcd_v3proto::etcdserverpb::*;
use tonic::{Request, Response, Status};

use super::error::status;
use super::Ctx;

/// How many times Authenticate checks a password again when auth changed meanwhile.
const AUTHENTICATE_TRIES: usize = 3;

/// The Auth service.
pub struct Auth(pub Arc<Ctx>);

impl Auth {
    /// Puts `request` through the log as `req`'s caller; its answer with the header filled.
    async fn apply<T>(&self, req: &Request<T>, request: Internal) -> Result<AuthAnswer, Status> {
        let caller = self.0.caller(req).await?;
        match self.0.write(&caller, request).await? {
            Answer::Auth(a) => Ok(a),
            _ => Err(Status::internal("etcd-rs: mismatched answer")),
        }
    }

    /// bcrypt of `password` at the configured cost, off the async threads.
    async fn hash(&self, password: String) -> Result<String, Status> {
        let cost = self.0.bcrypt_cost;
        tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await
            .map_err(|e| Status::internal(format!("etcd-rs: hashing failed: {e}")))?
            .map_err(|e| Status::internal(format!("etcd-rs: hashing failed: {e}")))
    }
}

/// Unpacks the answer of the kind asked for, filling its header.
macro_rules! answer {
    ($ctx:expr, $answer:expr, $kind:ident) => {
        match $answer {
            AuthAnswer::$kind(mut resp) => {
                $ctx.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(Status::internal("etcd-rs: mismatched answer")),
        }
    };
}

#[tonic::async_trait]
impl auth_server::Auth for Auth {
    async fn auth_enable(
        &self,
        req: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        let a = self
            .apply(&req, Internal::AuthEnable(*req.get_ref()))
            .await?;
        answer!(self.0, a, Enable)
    }

    async fn auth_disable(
        &self,
        req: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        let a = self
            .apply(&req, Internal::AuthDisable(*req.get_ref()))
            .await?;
        answer!(self.0, a, Disable)
    }

    async fn auth_status(
        &self,
        req: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        let a = self
            .apply(&req, Internal::AuthStatus(*req.get_ref()))
            .await?;
        answer!(self.0, a, Status)
    }

    async fn authenticate(
        &self,
        req: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let AuthenticateRequest { name, password } = req.into_inner();
        for _ in 0..AUTHENTICATE_TRIES {
            let (user, checked_revision) = self
                .0
                .node
                .read(|s| {
                    let auth = s.auth_v3();
                    if !auth.enabled() {
                        return Err(V3Error::AuthNotEnabled);
                    }
                    let user = auth.user(&name).cloned().ok_or(V3Error::AuthFailed)?;
                    if user.options.is_some_and(|o| o.no_password) {
                        return Err(V3Error::NoPasswordUser);
                    }
                    Ok((user, auth.revision()))
                })
                .map_err(status)?;
            let hash = String::from_utf8_lossy(&user.password).into_owned();
            let given = password.clone();
            let matches =
                tokio::task::spawn_blocking(move || bcrypt::verify(given, &hash).unwrap_or(false))
                    .await
                    .unwrap_or(false);
            if !matches {
                tracing::info!(user = %name, "v3 authentication failed: wrong password");
                return Err(status(V3Error::AuthFailed));
            }
            let request = Internal::Authenticate(Authenticate {
                name: name.clone(),
                simple_token_prefix: crate::tokens::simple_prefix(),
                checked_revision,
            });
            let mut resp = match self.0.write_system(request).await {
                Ok(Answer::Auth(AuthAnswer::Authenticate(resp))) => resp,
                Ok(_) => return Err(Status::internal("etcd-rs: mismatched answer")),
                Err(e) if e.message() == V3Error::AuthOldRevision.to_string() => continue,
                Err(e) => return Err(e),
            };
            if let Some(signed) = self.0.node.tokens().sign(&name, checked_revision) {
                resp.token = signed.map_err(Status::unknown)?;
            }
            self.0.fill(&mut resp.header);
            return Ok(Response::new(resp));
        }
        Err(status(V3Error::AuthOldRevision))
    }

    async fn user_add(
        &self,
        req: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let mut r = req.get_ref().clone();
        let no_password = r.options.is_some_and(|o| o.no_password);
        if !no_password && r.hashed_password.is_empty() {
            r.hashed_password = self.hash(std::mem::take(&mut r.password)).await?;
        }
        r.password.clear();
        let a = self.apply(&req, Internal::UserAdd(r)).await?;
        answer!(self.0, a, UserAdd)
    }

    async fn user_get(
        &self,
        req: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let a = self
            .apply(&req, Internal::UserGet(req.get_ref().clone()))
            .await?;
        answer!(self.0, a, UserGet)
    }

    async fn user_list(
        &self,
        req: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        let a = self.apply(&req, Internal::UserList(*req.get_ref())).await?;
        answer!(self.0, a, UserList)
    }

    async fn user_delete(
        &self,
        req: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let a = self
            .apply(&req, Internal::UserDelete(req.get_ref().clone()))
            .await?;
        answer!(self.0, a, UserDelete)
    }

    async fn user_change_password(
        &self,
        req: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let mut r = req.get_ref().clone();
        if r.hashed_password.is_empty() {
            r.hashed_password = self.hash(std::mem::take(&mut r.password)).await?;
        }
        r.password.clear();
        let a = self.apply(&req, Internal::UserChangePassword(r)).await?;
        answer!(self.0, a, UserChangePassword)
    }

    async fn user_grant_role(
        &self,
        req: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let a = self
            .apply(&req, Internal::UserGrantRole(req.get_ref().clone()))
            .await?;
        answer!(self.0, a, UserGrantRole)
    }

    async fn user_revoke_role(
        &self,
        req: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let a = self
            .apply(&req, Internal::UserRevokeRole(req.get_ref().clone()))
            .await?;
        answer!(self.0, a, UserRevokeRole)
    }

    async fn role_add(
        &self,
        req: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        let a = self
            .apply(&req, Internal::RoleAdd(req.get_ref().clone()))
            .await?;
        answer!(self.0, a, RoleAdd)
    }

    async fn role_get(
        &self,
        req: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let a = self
            .apply(&req, Internal::RoleGet(req.get_ref().clone()))
            .await?;
        answer!(self.0, a, RoleGet)
    }

    async fn role_list(
        &self,
        req: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        let a = self.apply(&req, Internal::RoleList(*req.get_ref())).await?;
        answer!(self.0, a, RoleList)
    }

    async fn role_delete(
        &self,
        req: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let a = self
            .apply(&req, Internal::RoleDelete(req.get_ref().clone()))
            .await?;
        answer!(self.0, a, RoleDelete)
    }

    async fn role_grant_permission(
        &self,
        req: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let a = self
            .apply(&req, Internal::RoleGrantPermission(req.get_ref().clone()))
            .await?;
        answer!(self.0, a, RoleGrantPermission)
    }

    async fn role_revoke_permission(
        &self,
        req: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let a = self
            .apply(&req, Internal::RoleRevokePermission(req.get_ref().clone()))
            .await?;
        answer!(self.0, a, RoleRevokePermission)
    }
}
