//! The v2 auth family: users and roles (`etcd_store::auth` holds the rules); a refused change
//! is a deterministic error carrying etcd's status and message.

use super::{Outcome, Store};
use crate::auth::Refusal;
use crate::command::Command;
use crate::error::Error;

/// An auth command's outcome as an apply result.
fn auth_result<T>(r: std::result::Result<T, Refusal>) -> Outcome {
    r.map(|_| None).map_err(|e| Error::Auth {
        status: e.status,
        message: e.message,
    })
}

impl<W> Store<W> {
    /// Applies an auth command.
    pub(super) fn apply_auth(&mut self, cmd: &Command) -> Outcome {
        match cmd {
            Command::AuthPutUser {
                name,
                password_hash,
                roles,
                grant,
                revoke,
            } => auth_result(self.auth.put_user(
                name,
                password_hash.as_deref(),
                roles,
                grant,
                revoke,
            )),
            Command::AuthDeleteUser { name } => auth_result(self.auth.delete_user(name)),
            Command::AuthPutRole {
                name,
                permissions,
                grant,
                revoke,
            } => auth_result(self.auth.put_role(
                name,
                permissions.as_ref(),
                grant.as_ref(),
                revoke.as_ref(),
            )),
            Command::AuthDeleteRole { name } => auth_result(self.auth.delete_role(name)),
            Command::AuthEnable { enabled } => auth_result(self.auth.set_enabled(*enabled)),
            _ => unreachable!("not an auth command"),
        }
    }
}
