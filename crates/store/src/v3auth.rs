//! etcd v3 auth's replicated state (etcd 3.4 `auth/store.go`): users (a bcrypt hash, sorted
//! role names, the no-password option), roles (key permissions sorted by key), whether auth
//! is on, and the auth revision that every change bumps. Changes arrive through the log, so
//! every member agrees; hashes are computed before proposing (bcrypt salts at random), so no
//! password enters the log and applying stays deterministic.
//!
//! Rules, as etcd's:
//! - enabling needs a `root` user holding the `root` role (the `root` role is implicit: it
//!   needs no RoleAdd and allows everything); while on, `root` cannot be deleted, nor its
//!   role, nor the role taken from it;
//! - the revision starts at 1 and every change but enabling bumps it (a user or role added,
//!   deleted or changed, auth turned off); a request checked against an older revision is
//!   refused with `revision of auth store is old`;
//! - a permission covers `[key, range_end)`: an empty `range_end` is the one key, `"\0"` every
//!   key from `key` on. A request on one key needs a permission holding that key; a request on
//!   a range needs the union of the user's permissions (over all its roles) to cover the whole
//!   range;
//! - granting a permission with the same key and range end as an existing one replaces its
//!   type; revoking needs the exact key and range end.
//!
//! This is v3 auth only: v2 auth (`crate::auth`) is a separate store, as in etcd.
//!
//! Not here: passwords and bcrypt (the server checks them), tokens (per member, in memory:
//! the server keeps them), gRPC metadata, client certificates.

use std::collections::BTreeMap;

use etcd_mvcc::Error;
use etcd_v3proto::authpb::{permission::Type as PermType, Permission, Role, User};
use etcd_v3proto::etcdrs::AuthState;

/// The name of the all-powerful user and role.
pub const ROOT: &str = "root";

/// What a request needs on a key or range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// To read it.
    Read,
    /// To write it.
    Write,
}

/// Who a request comes from, as the receiving member found out: `revision` 0 means nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who<'a> {
    /// The user name (empty for nobody).
    pub user: &'a str,
    /// The auth revision the member checked the user against.
    pub revision: u64,
}

/// v3 auth's replicated state. See the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthV3 {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
}

impl Default for AuthV3 {
    fn default() -> AuthV3 {
        AuthV3 {
            enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
        }
    }
}

impl AuthV3 {
    /// Whether requests are checked.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The auth revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// A user.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// A role.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// User names, sorted.
    pub fn user_names(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// Role names, sorted.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    fn bump(&mut self) {
        self.revision += 1;
    }

    /// Turns auth on (nothing if it is on already). Does not bump the revision, as etcd.
    pub fn enable(&mut self) -> Result<(), Error> {
        if self.enabled {
            return Ok(());
        }
        let root = self.users.get(ROOT).ok_or(Error::RootUserNotExist)?;
        if !has_root_role(root) {
            return Err(Error::RootRoleNotExist);
        }
        self.enabled = true;
        Ok(())
    }

    /// Turns auth off (nothing if it is off).
    pub fn disable(&mut self) {
        if self.enabled {
            self.enabled = false;
            self.bump();
        }
    }

    /// Adds a user with a bcrypt `hash` (empty for a user without password).
    pub fn add_user(&mut self, name: &str, hash: &str, no_password: bool) -> Result<(), Error> {
        if name.is_empty() {
            return Err(Error::UserEmpty);
        }
        if self.users.contains_key(name) {
            return Err(Error::UserAlreadyExists);
        }
        let user = User {
            name: name.as_bytes().to_vec().into(),
            password: if no_password {
                Default::default()
            } else {
                hash.as_bytes().to_vec().into()
            },
            roles: Vec::new(),
            options: Some(etcd_v3proto::authpb::UserAddOptions { no_password }),
        };
        self.users.insert(name.to_string(), user);
        self.bump();
        Ok(())
    }

    /// Deletes a user.
    pub fn delete_user(&mut self, name: &str) -> Result<(), Error> {
        if self.enabled && name == ROOT {
            return Err(Error::InvalidAuthMgmt);
        }
        self.users.remove(name).ok_or(Error::UserNotFound)?;
        self.bump();
        Ok(())
    }

    /// Sets a user's password hash.
    pub fn change_password(&mut self, name: &str, hash: &str) -> Result<(), Error> {
        let user = self.users.get_mut(name).ok_or(Error::UserNotFound)?;
        user.password = hash.as_bytes().to_vec().into();
        self.bump();
        Ok(())
    }

    /// Grants a role to a user (granting one it has changes nothing).
    pub fn grant_role(&mut self, name: &str, role: &str) -> Result<(), Error> {
        let user = self.users.get_mut(name).ok_or(Error::UserNotFound)?;
        if role != ROOT && !self.roles.contains_key(role) {
            return Err(Error::RoleNotFound);
        }
        match user.roles.binary_search_by(|r| r.as_str().cmp(role)) {
            Ok(_) => return Ok(()),
            Err(at) => user.roles.insert(at, role.to_string()),
        }
        self.bump();
        Ok(())
    }

    /// Takes a role from a user.
    pub fn revoke_role(&mut self, name: &str, role: &str) -> Result<(), Error> {
        if self.enabled && name == ROOT && role == ROOT {
            return Err(Error::InvalidAuthMgmt);
        }
        let user = self.users.get_mut(name).ok_or(Error::UserNotFound)?;
        let before = user.roles.len();
        user.roles.retain(|r| r != role);
        if user.roles.len() == before {
            return Err(Error::RoleNotGranted);
        }
        self.bump();
        Ok(())
    }

    /// Adds a role with no permission.
    pub fn add_role(&mut self, name: &str) -> Result<(), Error> {
        if name.is_empty() {
            return Err(Error::RoleEmpty);
        }
        if self.roles.contains_key(name) {
            return Err(Error::RoleAlreadyExists);
        }
        let role = Role {
            name: name.as_bytes().to_vec().into(),
            key_permission: Vec::new(),
        };
        self.roles.insert(name.to_string(), role);
        self.bump();
        Ok(())
    }

    /// Deletes a role, and takes it from every user that has it.
    pub fn delete_role(&mut self, name: &str) -> Result<(), Error> {
        if self.enabled && name == ROOT {
            return Err(Error::InvalidAuthMgmt);
        }
        self.roles.remove(name).ok_or(Error::RoleNotFound)?;
        for user in self.users.values_mut() {
            user.roles.retain(|r| r != name);
        }
        self.bump();
        Ok(())
    }

    /// Grants a permission to a role (replacing the type of one on the same range).
    pub fn grant_permission(&mut self, name: &str, perm: Permission) -> Result<(), Error> {
        let role = self.roles.get_mut(name).ok_or(Error::RoleNotFound)?;
        let perms = &mut role.key_permission;
        // As etcd: only the first permission with the key is looked at for a replacement;
        // otherwise the new one goes after every permission with a key not above its own.
        let at = perms.partition_point(|p| p.key < perm.key);
        match perms.get_mut(at) {
            Some(p) if p.key == perm.key && p.range_end == perm.range_end => {
                p.perm_type = perm.perm_type;
            }
            _ => {
                let at = perms.partition_point(|p| p.key <= perm.key);
                perms.insert(at, perm);
            }
        }
        self.bump();
        Ok(())
    }

    /// Revokes a role's permission on exactly `[key, range_end)`.
    pub fn revoke_permission(
        &mut self,
        name: &str,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), Error> {
        let role = self.roles.get_mut(name).ok_or(Error::RoleNotFound)?;
        let before = role.key_permission.len();
        role.key_permission
            .retain(|p| p.key != key || p.range_end != range_end);
        if role.key_permission.len() == before {
            return Err(Error::PermissionNotGranted);
        }
        self.bump();
        Ok(())
    }

    /// Whether `user` holds `role` (for RoleGet by a user that is not root).
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    /// Checks that `who` may do what needs `need` on `[key, range_end)` (etcd's
    /// `isOpPermitted`): everyone while auth is off; otherwise a named user checked against
    /// the current revision, root for everything, others by their roles' permissions.
    pub fn check(
        &self,
        who: Who<'_>,
        need: Need,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        let user = self.current_user(who)?;
        if has_root_role(user) || self.permitted(user, need, key, range_end) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    /// Checks that `who` may manage auth and membership (etcd's `IsAdminPermitted`).
    pub fn check_admin(&self, who: Who<'_>) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        if who.user.is_empty() {
            return Err(Error::UserEmpty);
        }
        let user = self.users.get(who.user).ok_or(Error::UserNotFound)?;
        if has_root_role(user) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    fn current_user(&self, who: Who<'_>) -> Result<&User, Error> {
        if who.revision == 0 {
            return Err(Error::UserEmpty);
        }
        if who.revision < self.revision {
            return Err(Error::AuthOldRevision);
        }
        self.users.get(who.user).ok_or(Error::PermissionDenied)
    }

    /// Whether `user`'s roles give `need` on the key (empty `range_end`) or the whole range
    /// (etcd's interval-tree `Intersects` and `Contains`).
    fn permitted(&self, user: &User, need: Need, key: &[u8], range_end: &[u8]) -> bool {
        let mut spans: Vec<(&[u8], End<'_>)> = Vec::new();
        for role in user.roles.iter().filter_map(|r| self.roles.get(r)) {
            for p in &role.key_permission {
                let grants = match PermType::try_from(p.perm_type) {
                    Ok(PermType::Readwrite) => true,
                    Ok(PermType::Read) => need == Need::Read,
                    Ok(PermType::Write) => need == Need::Write,
                    Err(_) => false,
                };
                if grants {
                    spans.push((&p.key, End::of(&p.key, &p.range_end)));
                }
            }
        }
        let holds = |start: &[u8], end: &End<'_>| start <= key && End::Before(key) < *end;
        let wanted = match range_end {
            [] => return spans.iter().any(|(s, e)| holds(s, e)),
            [0] => End::Never,
            end => End::Before(end),
        };
        if wanted <= End::Before(key) {
            // An empty (inverted) range: etcd allows it where a permission holds its key.
            return spans.iter().any(|(s, e)| holds(s, e));
        }
        // The union of the spans must cover [key, range_end): walk them by start.
        spans.sort_by(|a, b| a.0.cmp(b.0));
        let mut covered = End::Before(key); // [key, covered) is held
        for (start, end) in spans {
            if End::Before(start) > covered {
                break; // a gap
            }
            covered = covered.max(end);
        }
        covered >= wanted
    }

    /// The state as a snapshot record.
    pub fn to_state(&self) -> AuthState {
        AuthState {
            enabled: self.enabled,
            revision: self.revision,
            users: self.users.values().cloned().collect(),
            roles: self.roles.values().cloned().collect(),
        }
    }

    /// The state a snapshot record holds.
    pub fn from_state(s: AuthState) -> AuthV3 {
        let name = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        AuthV3 {
            enabled: s.enabled,
            revision: s.revision.max(1),
            users: s.users.into_iter().map(|u| (name(&u.name), u)).collect(),
            roles: s.roles.into_iter().map(|r| (name(&r.name), r)).collect(),
        }
    }
}

fn has_root_role(user: &User) -> bool {
    user.roles.iter().any(|r| r == ROOT)
}

/// Where a span of keys ends, ordered as the keys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End<'a> {
    /// Just before this key (a range end).
    Before(&'a [u8]),
    /// Just after this key (a one-key permission: `key + "\0"`).
    After(&'a [u8]),
    /// Never: every key from the start on (`"\0"`).
    Never,
}

impl<'a> End<'a> {
    fn of(key: &'a [u8], range_end: &'a [u8]) -> End<'a> {
        match range_end {
            [] => End::After(key),
            [0] => End::Never,
            end => End::Before(end),
        }
    }

    /// The end as a byte string (`After(k)` is `k` then a zero byte), for ordering.
    fn bytes(&self) -> Option<impl Iterator<Item = &'a u8>> {
        match *self {
            End::Before(k) => Some(k.iter().chain(None)),
            End::After(k) => Some(k.iter().chain(Some(&0u8))),
            End::Never => None,
        }
    }
}

impl PartialOrd for End<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for End<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (self.bytes(), other.bytes()) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => a.cmp(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(t: PermType, key: &str, end: &str) -> Permission {
        Permission {
            perm_type: t as i32,
            key: key.as_bytes().to_vec().into(),
            range_end: end.as_bytes().to_vec().into(),
        }
    }

    /// Auth on, with root, and `alice` holding role `r` with `perms`.
    fn with_alice(perms: &[Permission]) -> AuthV3 {
        let mut a = AuthV3::default();
        a.add_user(ROOT, "h", false).unwrap();
        a.grant_role(ROOT, ROOT).unwrap();
        a.add_user("alice", "h", false).unwrap();
        a.add_role("r").unwrap();
        for p in perms {
            a.grant_permission("r", p.clone()).unwrap();
        }
        a.grant_role("alice", "r").unwrap();
        a.enable().unwrap();
        a
    }

    fn alice(a: &AuthV3) -> Who<'_> {
        Who {
            user: "alice",
            revision: a.revision(),
        }
    }

    #[test]
    fn enable_needs_root_with_the_root_role() {
        let mut a = AuthV3::default();
        assert_eq!(a.enable(), Err(Error::RootUserNotExist));
        a.add_user(ROOT, "h", false).unwrap();
        assert_eq!(a.enable(), Err(Error::RootRoleNotExist));
        a.grant_role(ROOT, ROOT).unwrap();
        let before = a.revision();
        a.enable().unwrap();
        assert!(a.enabled());
        assert_eq!(a.revision(), before, "enabling does not bump the revision");
        a.disable();
        assert_eq!(a.revision(), before + 1);
    }

    #[test]
    fn the_revision_starts_at_1_and_every_change_bumps_it() {
        let mut a = AuthV3::default();
        assert_eq!(a.revision(), 1);
        a.add_user("u", "h", false).unwrap();
        a.add_role("r").unwrap();
        a.grant_role("u", "r").unwrap();
        assert_eq!(a.revision(), 4);
        a.grant_role("u", "r").unwrap();
        assert_eq!(a.revision(), 4, "granting a role held changes nothing");
        assert_eq!(a.add_user("u", "h", false), Err(Error::UserAlreadyExists));
        assert_eq!(a.revision(), 4, "a refusal changes nothing");
    }

    #[test]
    fn root_cannot_lose_its_user_or_role_while_auth_is_on() {
        let mut a = with_alice(&[]);
        assert_eq!(a.delete_user(ROOT), Err(Error::InvalidAuthMgmt));
        assert_eq!(a.revoke_role(ROOT, ROOT), Err(Error::InvalidAuthMgmt));
        assert_eq!(a.delete_role(ROOT), Err(Error::InvalidAuthMgmt));
        a.disable();
        a.revoke_role(ROOT, ROOT).unwrap();
        a.delete_user(ROOT).unwrap();
    }

    #[test]
    fn deleting_a_role_takes_it_from_every_user() {
        let mut a = with_alice(&[]);
        a.delete_role("r").unwrap();
        assert!(a.user("alice").unwrap().roles.is_empty());
        assert_eq!(a.grant_role("alice", "r"), Err(Error::RoleNotFound));
        assert_eq!(a.revoke_role("alice", "r"), Err(Error::RoleNotGranted));
    }

    #[test]
    fn permissions_stay_sorted_by_key_and_a_regrant_replaces_the_type() {
        let mut a = with_alice(&[]);
        a.grant_permission("r", perm(PermType::Read, "b", ""))
            .unwrap();
        a.grant_permission("r", perm(PermType::Write, "a", "c"))
            .unwrap();
        a.grant_permission("r", perm(PermType::Write, "b", ""))
            .unwrap();
        a.grant_permission("r", perm(PermType::Read, "b", "\0"))
            .unwrap();
        let perms = &a.role("r").unwrap().key_permission;
        let shown: Vec<_> = perms
            .iter()
            .map(|p| (p.perm_type, p.key.to_vec(), p.range_end.to_vec()))
            .collect();
        assert_eq!(
            shown,
            vec![
                (1, b"a".to_vec(), b"c".to_vec()),
                (1, b"b".to_vec(), vec![]),
                (0, b"b".to_vec(), vec![0]),
            ]
        );
        assert_eq!(
            a.revoke_permission("r", b"a", b""),
            Err(Error::PermissionNotGranted),
            "revoking needs the exact range"
        );
        a.revoke_permission("r", b"a", b"c").unwrap();
    }

    #[test]
    fn a_key_needs_a_permission_that_holds_it() {
        let a = with_alice(&[
            perm(PermType::Read, "k", ""),
            perm(PermType::Write, "w/", "w0"),
            perm(PermType::Readwrite, "z", "\0"),
        ]);
        let w = alice(&a);
        assert_eq!(a.check(w, Need::Read, b"k", b""), Ok(()));
        assert_eq!(
            a.check(w, Need::Write, b"k", b""),
            Err(Error::PermissionDenied)
        );
        assert_eq!(
            a.check(w, Need::Read, b"k0", b""),
            Err(Error::PermissionDenied)
        );
        assert_eq!(a.check(w, Need::Write, b"w/x", b""), Ok(()));
        assert_eq!(
            a.check(w, Need::Read, b"w/x", b""),
            Err(Error::PermissionDenied)
        );
        assert_eq!(
            a.check(w, Need::Write, b"w0", b""),
            Err(Error::PermissionDenied)
        );
        assert_eq!(a.check(w, Need::Write, b"zzz", b""), Ok(()));
        assert_eq!(a.check(w, Need::Read, b"\xff", b""), Ok(()));
    }

    #[test]
    fn a_range_needs_the_union_of_permissions_to_cover_it() {
        let a = with_alice(&[
            perm(PermType::Read, "a", "c"),
            perm(PermType::Read, "c", "e"),
            perm(PermType::Read, "e", ""),
            perm(PermType::Read, "m", "\0"),
        ]);
        let w = alice(&a);
        assert_eq!(
            a.check(w, Need::Read, b"a", b"e"),
            Ok(()),
            "adjacent spans join"
        );
        assert_eq!(a.check(w, Need::Read, b"b", b"d"), Ok(()));
        assert_eq!(
            a.check(w, Need::Read, b"a", b"e\0"),
            Ok(()),
            "the one key e joins"
        );
        assert_eq!(
            a.check(w, Need::Read, b"a", b"f"),
            Err(Error::PermissionDenied),
            "a gap after e"
        );
        assert_eq!(a.check(w, Need::Read, b"m", b"\0"), Ok(()));
        assert_eq!(a.check(w, Need::Read, b"n", b"zz"), Ok(()));
        assert_eq!(
            a.check(w, Need::Read, b"l", b"n"),
            Err(Error::PermissionDenied)
        );
        assert_eq!(
            a.check(w, Need::Read, b"e", b"\0"),
            Err(Error::PermissionDenied)
        );
    }

    #[test]
    fn permissions_of_every_role_add_up() {
        let mut a = with_alice(&[perm(PermType::Read, "a", "c")]);
        a.add_role("s").unwrap();
        a.grant_permission("s", perm(PermType::Readwrite, "c", "f"))
            .unwrap();
        assert_eq!(
            a.check(alice(&a), Need::Read, b"a", b"f"),
            Err(Error::PermissionDenied)
        );
        a.grant_role("alice", "s").unwrap();
        assert_eq!(a.check(alice(&a), Need::Read, b"a", b"f"), Ok(()));
        assert_eq!(
            a.check(alice(&a), Need::Write, b"a", b"f"),
            Err(Error::PermissionDenied)
        );
    }

    #[test]
    fn requests_checked_against_an_older_revision_or_by_nobody_are_refused() {
        let mut a = with_alice(&[perm(PermType::Read, "k", "")]);
        let old = a.revision();
        a.add_role("other").unwrap();
        let stale = Who {
            user: "alice",
            revision: old,
        };
        assert_eq!(
            a.check(stale, Need::Read, b"k", b""),
            Err(Error::AuthOldRevision)
        );
        let nobody = Who {
            user: "",
            revision: 0,
        };
        assert_eq!(
            a.check(nobody, Need::Read, b"k", b""),
            Err(Error::UserEmpty)
        );
        assert_eq!(a.check_admin(nobody), Err(Error::UserEmpty));
        let ghost = Who {
            user: "ghost",
            revision: a.revision(),
        };
        assert_eq!(
            a.check(ghost, Need::Read, b"k", b""),
            Err(Error::PermissionDenied)
        );
        assert_eq!(a.check_admin(ghost), Err(Error::UserNotFound));
        assert_eq!(a.check_admin(alice(&a)), Err(Error::PermissionDenied));
        let root = Who {
            user: ROOT,
            revision: a.revision(),
        };
        assert_eq!(a.check_admin(root), Ok(()));
        assert_eq!(a.check(root, Need::Write, b"anything", b"\0"), Ok(()));
    }

    #[test]
    fn with_auth_off_everything_is_allowed() {
        let mut a = with_alice(&[]);
        a.disable();
        let nobody = Who {
            user: "",
            revision: 0,
        };
        assert_eq!(a.check(nobody, Need::Write, b"k", b""), Ok(()));
        assert_eq!(a.check_admin(nobody), Ok(()));
    }

    #[test]
    fn the_state_survives_its_snapshot_record() {
        let a = with_alice(&[perm(PermType::Write, "a", "b")]);
        let back = AuthV3::from_state(a.to_state());
        assert_eq!(back, a);
    }
}
