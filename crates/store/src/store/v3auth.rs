//! The v3 `auth` family: auth requests applied to [`crate::v3auth::AuthV3`], and the checks
//! every other v3 request passes when applied (etcd 3.4 `etcdserver/apply_auth.go`).
//!
//! Each request carries who asked (the user the receiving member found, and the auth
//! revision it found them at); it is checked here, in log order, against the auth state of
//! that moment, so a permission revoked before a write applies stops the write on every
//! member alike. Requests a member proposes itself (`system`: lease expiry, compaction,
//! alarms) are not checked.
//!
//! Checks, as etcd's: a put needs WRITE on its key (and READ with `prev_kv`), and WRITE on
//! every key already on its lease (whoever cannot revoke a lease may not grow it); a delete
//! WRITE on its range (and READ with `prev_kv`); a txn READ on every compare and the checks
//! of every op in both branches, nested txns included (etcd 3.4 skips nested txns; 3.5
//! checks them, and so do we); a lease revocation WRITE on every key on the lease; auth
//! management root, except that users may get themselves and roles they hold. Reads served
//! without the log are checked by the server with [`Store::check_read`].

use etcd_mvcc::pb::request_op::Request as Op;
use etcd_mvcc::pb::{
    AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse, AuthRoleDeleteResponse,
    AuthRoleGetResponse, AuthRoleGrantPermissionResponse, AuthRoleListResponse,
    AuthRoleRevokePermissionResponse, AuthStatusResponse, AuthUserAddResponse,
    AuthUserChangePasswordResponse, AuthUserDeleteResponse, AuthUserGetResponse,
    AuthUserGrantRoleResponse, AuthUserListResponse, AuthUserRevokeRoleResponse,
    AuthenticateResponse, RequestOp, TxnRequest,
};
use etcd_mvcc::{header, Answer, AuthAnswer, Error};
use etcd_v3proto::etcdrs::internal_request::Request;

use super::Store;
use crate::v3auth::{AuthV3, Need, Who};
use crate::Index;

/// What applying an auth request means for the tokens a member keeps (in memory, beside the
/// store, as etcd's token provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenChange {
    /// A simple token now names `user`.
    Issued {
        /// The token.
        token: String,
        /// Its user.
        user: String,
    },
    /// The user's tokens are void (deleted, or a new password).
    UserInvalidated(String),
    /// Every token is void (auth turned off).
    AllInvalidated,
}

impl<W> Store<W> {
    /// v3 auth's state.
    pub fn auth_v3(&self) -> &AuthV3 {
        &self.auth3
    }

    /// Checks a read served without the log (a Range, or a read-only txn) for `who`.
    /// As etcd, a caller found at another auth revision than the current one is refused as
    /// old (the auth state changed between the request's arrival and its read).
    pub fn check_read(&self, who: Who<'_>, request: &ReadCheck<'_>) -> Result<(), Error> {
        if who.revision != 0 && who.revision != self.auth3.revision() {
            return Err(Error::AuthOldRevision);
        }
        if !self.auth3.enabled() {
            return Ok(());
        }
        match request {
            ReadCheck::Range(key, end) => self.auth3.check(who, Need::Read, key, end),
            ReadCheck::Txn(t) => self.check_txn(who, t),
        }
    }

    /// The checks of a v3 request that is not itself about auth (see the module docs).
    pub(super) fn check_v3_auth(&self, who: Who<'_>, req: &Option<Request>) -> Result<(), Error> {
        if !self.auth3.enabled() {
            return Ok(());
        }
        let a = &self.auth3;
        match req {
            Some(Request::Put(p)) => {
                a.check(who, Need::Write, &p.key, &[])?;
                self.check_lease_keys(who, p.lease)?;
                if p.prev_kv {
                    a.check(who, Need::Read, &p.key, &[])?;
                }
                Ok(())
            }
            Some(Request::DeleteRange(d)) => {
                a.check(who, Need::Write, &d.key, &d.range_end)?;
                if d.prev_kv {
                    a.check(who, Need::Read, &d.key, &d.range_end)?;
                }
                Ok(())
            }
            Some(Request::Txn(t)) => self.check_txn(who, t),
            Some(Request::LeaseRevoke(r)) => self.check_lease_keys(who, r.id),
            Some(
                Request::AuthEnable(_)
                | Request::AuthDisable(_)
                | Request::UserAdd(_)
                | Request::UserDelete(_)
                | Request::UserChangePassword(_)
                | Request::UserGrantRole(_)
                | Request::UserRevokeRole(_)
                | Request::UserList(_)
                | Request::RoleAdd(_)
                | Request::RoleList(_)
                | Request::RoleDelete(_)
                | Request::RoleGrantPermission(_)
                | Request::RoleRevokePermission(_),
            ) => a.check_admin(who),
            Some(Request::UserGet(g)) => match a.check_admin(who) {
                Err(_) if g.name == who.user => Ok(()),
                r => r,
            },
            Some(Request::RoleGet(g)) => match a.check_admin(who) {
                Err(_) if a.has_role(who.user, &g.role) => Ok(()),
                r => r,
            },
            Some(
                Request::Compaction(_)
                | Request::LeaseGrant(_)
                | Request::Alarm(_)
                | Request::AuthStatus(_)
                | Request::Authenticate(_),
            )
            | None => Ok(()),
        }
    }

    fn check_txn(&self, who: Who<'_>, t: &TxnRequest) -> Result<(), Error> {
        let a = &self.auth3;
        for c in &t.compare {
            a.check(who, Need::Read, &c.key, &c.range_end)?;
        }
        t.success
            .iter()
            .chain(&t.failure)
            .try_for_each(|op| self.check_op(who, op))
    }

    fn check_op(&self, who: Who<'_>, op: &RequestOp) -> Result<(), Error> {
        let a = &self.auth3;
        match &op.request {
            Some(Op::RequestRange(r)) => a.check(who, Need::Read, &r.key, &r.range_end),
            Some(Op::RequestPut(p)) => a.check(who, Need::Write, &p.key, &[]),
            Some(Op::RequestDeleteRange(d)) => {
                if d.prev_kv {
                    a.check(who, Need::Read, &d.key, &d.range_end)?;
                }
                a.check(who, Need::Write, &d.key, &d.range_end)
            }
            Some(Op::RequestTxn(t)) => self.check_txn(who, t),
            None => Ok(()),
        }
    }

    /// WRITE on every key on lease `id` (none: nothing to check).
    fn check_lease_keys(&self, who: Who<'_>, id: i64) -> Result<(), Error> {
        match self.leases.get(id) {
            Some(lease) => lease
                .keys
                .iter()
                .try_for_each(|k| self.auth3.check(who, Need::Write, k, &[])),
            None => Ok(()),
        }
    }

    /// Applies an auth request (already checked); `None` if `req` is not one.
    pub(super) fn apply_auth_v3(
        &mut self,
        index: Index,
        req: &Request,
    ) -> Option<(Result<Answer, Error>, Option<TokenChange>)> {
        let h = || Some(header(self.v3.revision()));
        let a = &mut self.auth3;
        let mut change = None;
        let answer = match req {
            Request::AuthEnable(_) => a
                .enable()
                .map(|()| AuthAnswer::Enable(AuthEnableResponse { header: h() })),
            Request::AuthDisable(_) => {
                if a.enabled() {
                    change = Some(TokenChange::AllInvalidated);
                }
                a.disable();
                Ok(AuthAnswer::Disable(AuthDisableResponse { header: h() }))
            }
            Request::AuthStatus(_) => Ok(AuthAnswer::Status(AuthStatusResponse {
                header: h(),
                enabled: a.enabled(),
                auth_revision: a.revision(),
            })),
            Request::Authenticate(r) => {
                let user = a.user(&r.name);
                if !a.enabled() {
                    Err(Error::AuthNotEnabled)
                } else if user.is_none_or(|u| u.options.is_some_and(|o| o.no_password)) {
                    Err(Error::AuthFailed)
                } else if r.checked_revision != a.revision() {
                    // The password was checked against an older state (it may have changed).
                    Err(Error::AuthOldRevision)
                } else {
                    let token = format!("{}.{index}", r.simple_token_prefix);
                    change = Some(TokenChange::Issued {
                        token: token.clone(),
                        user: r.name.clone(),
                    });
                    Ok(AuthAnswer::Authenticate(AuthenticateResponse {
                        header: h(),
                        token,
                    }))
                }
            }
            Request::UserAdd(r) => {
                let no_password = r.options.is_some_and(|o| o.no_password);
                a.add_user(&r.name, &r.hashed_password, no_password)
                    .map(|()| AuthAnswer::UserAdd(AuthUserAddResponse { header: h() }))
            }
            Request::UserDelete(r) => a.delete_user(&r.name).map(|()| {
                change = Some(TokenChange::UserInvalidated(r.name.clone()));
                AuthAnswer::UserDelete(AuthUserDeleteResponse { header: h() })
            }),
            Request::UserChangePassword(r) => {
                a.change_password(&r.name, &r.hashed_password).map(|()| {
                    change = Some(TokenChange::UserInvalidated(r.name.clone()));
                    AuthAnswer::UserChangePassword(AuthUserChangePasswordResponse { header: h() })
                })
            }
            Request::UserGrantRole(r) => a
                .grant_role(&r.user, &r.role)
                .map(|()| AuthAnswer::UserGrantRole(AuthUserGrantRoleResponse { header: h() })),
            Request::UserGet(r) => match a.user(&r.name) {
                Some(u) => Ok(AuthAnswer::UserGet(AuthUserGetResponse {
                    header: h(),
                    roles: u.roles.clone(),
                })),
                None => Err(Error::UserNotFound),
            },
            Request::UserRevokeRole(r) => a
                .revoke_role(&r.name, &r.role)
                .map(|()| AuthAnswer::UserRevokeRole(AuthUserRevokeRoleResponse { header: h() })),
            Request::UserList(_) => Ok(AuthAnswer::UserList(AuthUserListResponse {
                header: h(),
                users: a.user_names(),
            })),
            Request::RoleAdd(r) => a
                .add_role(&r.name)
                .map(|()| AuthAnswer::RoleAdd(AuthRoleAddResponse { header: h() })),
            Request::RoleGet(r) => match a.role(&r.role) {
                Some(role) => Ok(AuthAnswer::RoleGet(AuthRoleGetResponse {
                    header: h(),
                    perm: role.key_permission.clone(),
                })),
                None => Err(Error::RoleNotFound),
            },
            Request::RoleList(_) => Ok(AuthAnswer::RoleList(AuthRoleListResponse {
                header: h(),
                roles: a.role_names(),
            })),
            Request::RoleDelete(r) => a
                .delete_role(&r.role)
                .map(|()| AuthAnswer::RoleDelete(AuthRoleDeleteResponse { header: h() })),
            Request::RoleGrantPermission(r) => a
                .grant_permission(&r.name, r.perm.clone().unwrap_or_default())
                .map(|()| {
                    AuthAnswer::RoleGrantPermission(AuthRoleGrantPermissionResponse { header: h() })
                }),
            Request::RoleRevokePermission(r) => a
                .revoke_permission(&r.role, &r.key, &r.range_end)
                .map(|()| {
                    AuthAnswer::RoleRevokePermission(AuthRoleRevokePermissionResponse {
                        header: h(),
                    })
                }),
            _ => return None,
        };
        Some((answer.map(Answer::Auth), change))
    }
}

/// A read served without the log, to check.
#[derive(Debug, Clone, Copy)]
pub enum ReadCheck<'a> {
    /// A Range over `[key, range_end)`.
    Range(&'a [u8], &'a [u8]),
    /// A read-only txn.
    Txn(&'a TxnRequest),
}
