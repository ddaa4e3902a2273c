//! etcd v2 authentication's replicated state: users (a bcrypt hash and role names), roles
//! (read and write key patterns), and whether auth is on. Changes arrive as commands through
//! the log, so every member agrees; the password hash is computed before proposing (it is
//! salted, so not deterministic), and no password ever enters the log.
//!
//! Rules follow etcd v2: the `root` user must exist before auth is enabled and always has the
//! `root` role; the `root` role (everything, and the auth API) cannot be changed or deleted;
//! enabling auth creates the `guest` role (read and write `/*`) if missing, which applies to
//! requests without credentials. A pattern ending in `*` matches every key it prefixes; any
//! other pattern matches that key only. Deliberately stricter than etcd 3.4: granting a role
//! that does not exist is refused (etcd stores it and then fails to read the user back).
//!
//! Not here: password checks (bcrypt is slow and the server caches), HTTP, request parsing.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The root user's and role's name.
pub const ROOT: &str = "root";
/// The role of requests without credentials.
pub const GUEST: &str = "guest";

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// bcrypt hash of the password.
    pub password_hash: String,
    /// Role names, sorted.
    pub roles: BTreeSet<String>,
}

/// Key patterns a role may read and write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Readable patterns.
    pub read: BTreeSet<String>,
    /// Writable patterns.
    pub write: BTreeSet<String>,
}

/// The whole auth state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    /// Whether requests are checked.
    pub enabled: bool,
    /// Users by name.
    pub users: BTreeMap<String, User>,
    /// Roles by name (`root` is implicit and never stored).
    pub roles: BTreeMap<String, Permissions>,
}

/// An auth command's refusal: an HTTP status and etcd's message (without the `auth: `
/// prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 403, 404 or 409.
    pub status: u16,
    /// What is wrong.
    pub message: String,
}

fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// True when `pattern` gives access to `key` itself.
pub fn pattern_matches(pattern: &str, key: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => key == pattern,
    }
}

/// True when `pattern` gives access to `key` and everything below it (recursive reads and
/// deletes, recursive watches): only a `*` pattern whose prefix prefixes `key`.
pub fn pattern_covers_tree(pattern: &str, key: &str) -> bool {
    pattern
        .strip_suffix('*')
        .is_some_and(|prefix| key.starts_with(prefix))
}

/// The root role's permissions, as shown.
pub fn root_permissions() -> Permissions {
    let all: BTreeSet<String> = ["/*".to_string()].into();
    Permissions {
        read: all.clone(),
        write: all,
    }
}

impl Auth {
    /// The permissions of a role, `root` included.
    pub fn role(&self, name: &str) -> Option<Permissions> {
        if name == ROOT {
            return Some(root_permissions());
        }
        self.roles.get(name).cloned()
    }

    /// Whether any of `roles` may access `key` (`write` for writes), the whole tree below it
    /// when `recursive`.
    pub fn allows(
        &self,
        roles: &BTreeSet<String>,
        key: &str,
        write: bool,
        recursive: bool,
    ) -> bool {
        roles.iter().any(|r| {
            if r == ROOT {
                return true;
            }
            let Some(p) = self.roles.get(r) else {
                return false;
            };
            let patterns = if write { &p.write } else { &p.read };
            patterns.iter().any(|pat| {
                if recursive {
                    pattern_covers_tree(pat, key)
                } else {
                    pattern_matches(pat, key)
                }
            })
        })
    }

    /// Creates or changes a user.
    pub fn put_user(
        &mut self,
        name: &str,
        password_hash: Option<&str>,
        roles: &[String],
        grant: &[String],
        revoke: &[String],
    ) -> Result<bool, Refusal> {
        let missing_role = roles
            .iter()
            .chain(grant)
            .find(|r| *r != ROOT && !self.roles.contains_key(*r));
        if let Some(r) = missing_role {
            return Err(refuse(404, format!("Role {r} does not exist.")));
        }
        match self.users.get_mut(name) {
            None => {
                let Some(hash) = password_hash else {
                    return Err(refuse(
                        400,
                        format!("Cannot create user {name} with an empty password"),
                    ));
                };
                let mut all: BTreeSet<String> = roles.iter().chain(grant).cloned().collect();
                if name == ROOT {
                    all.insert(ROOT.to_string());
                }
                self.users.insert(
                    name.to_string(),
                    User {
                        password_hash: hash.to_string(),
                        roles: all,
                    },
                );
                Ok(true)
            }
            Some(user) => {
                // Every check before any change: a refused command changes nothing.
                if name == ROOT && revoke.iter().any(|r| r == ROOT) {
                    return Err(refuse(
                        403,
                        "Cannot revoke the root role from the root user.",
                    ));
                }
                if let Some(hash) = password_hash {
                    user.password_hash = hash.to_string();
                }
                for r in grant.iter().chain(roles) {
                    user.roles.insert(r.clone());
                }
                for r in revoke {
                    user.roles.remove(r);
                }
                Ok(false)
            }
        }
    }

    /// Deletes a user.
    pub fn delete_user(&mut self, name: &str) -> Result<(), Refusal> {
        if name == ROOT && self.enabled {
            return Err(refuse(
                403,
                "Cannot delete root user while auth is enabled.",
            ));
        }
        self.users
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| refuse(404, format!("User {name} does not exist.")))
    }

    /// Creates a role, or grants or revokes patterns of an existing one. Returns whether it
    /// was created.
    pub fn put_role(
        &mut self,
        name: &str,
        permissions: Option<&Permissions>,
        grant: Option<&Permissions>,
        revoke: Option<&Permissions>,
    ) -> Result<bool, Refusal> {
        if name == ROOT {
            return Err(refuse(403, "Cannot modify role root: is root role."));
        }
        match self.roles.get_mut(name) {
            None => {
                let mut p = permissions.cloned().unwrap_or_default();
                if let Some(g) = grant {
                    p.read.extend(g.read.iter().cloned());
                    p.write.extend(g.write.iter().cloned());
                }
                self.roles.insert(name.to_string(), p);
                Ok(true)
            }
            Some(p) => {
                if grant.is_none() && revoke.is_none() {
                    return Err(refuse(409, format!("Role {name} already exists.")));
                }
                if let Some(g) = grant {
                    p.read.extend(g.read.iter().cloned());
                    p.write.extend(g.write.iter().cloned());
                }
                if let Some(r) = revoke {
                    for pat in &r.read {
                        p.read.remove(pat);
                    }
                    for pat in &r.write {
                        p.write.remove(pat);
                    }
                }
                Ok(false)
            }
        }
    }

    /// Deletes a role (and takes it from every user).
    pub fn delete_role(&mut self, name: &str) -> Result<(), Refusal> {
        if name == ROOT {
            return Err(refuse(403, "Cannot modify role root: is root role."));
        }
        if self.roles.remove(name).is_none() {
            return Err(refuse(404, format!("Role {name} does not exist.")));
        }
        for u in self.users.values_mut() {
            u.roles.remove(name);
        }
        Ok(())
    }

    /// Turns auth on (the root user must exist; the guest role is created if missing) or off.
    pub fn set_enabled(&mut self, enabled: bool) -> Result<(), Refusal> {
        if enabled == self.enabled {
            return Err(refuse(
                409,
                if enabled {
                    "already enabled"
                } else {
                    "already disabled"
                },
            ));
        }
        if enabled {
            if !self.users.contains_key(ROOT) {
                return Err(refuse(409, "No root user available, please create one"));
            }
            self.roles
                .entry(GUEST.to_string())
                .or_insert_with(root_permissions);
        }
        self.enabled = enabled;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn patterns_match_keys_and_trees_as_etcd() {
        assert!(pattern_matches("/foo/*", "/foo/x"));
        assert!(pattern_matches("/foo/*", "/foo/"));
        assert!(!pattern_matches("/foo/*", "/foo"));
        assert!(pattern_matches("/foo*", "/foobar"));
        assert!(pattern_matches("/pub", "/pub"));
        assert!(!pattern_matches("/pub", "/pub/x"));
        assert!(pattern_covers_tree("/foo/*", "/foo/x"));
        assert!(!pattern_covers_tree("/foo/*", "/foo"));
        assert!(!pattern_covers_tree("/pub", "/pub"));
        assert!(pattern_covers_tree("/*", "/"));
    }

    #[test]
    fn roles_grant_read_and_write_separately() {
        let mut a = Auth::default();
        a.put_role(
            "r",
            Some(&Permissions {
                read: roles(&["/r/*"]),
                write: roles(&["/w"]),
            }),
            None,
            None,
        )
        .unwrap();
        let r = roles(&["r"]);
        assert!(a.allows(&r, "/r/x", false, false));
        assert!(!a.allows(&r, "/r/x", true, false));
        assert!(a.allows(&r, "/w", true, false));
        assert!(!a.allows(&r, "/w", false, false));
        assert!(a.allows(&r, "/r/x", false, true));
        assert!(!a.allows(&roles(&["nope"]), "/r/x", false, false));
        assert!(a.allows(&roles(&[ROOT]), "/anything", true, true));
    }

    #[test]
    fn enabling_needs_root_and_creates_guest() {
        let mut a = Auth::default();
        assert_eq!(a.set_enabled(true).unwrap_err().status, 409);
        a.put_user(ROOT, Some("h"), &[], &[], &[]).unwrap();
        assert!(a.users[ROOT].roles.contains(ROOT));
        a.set_enabled(true).unwrap();
        assert_eq!(a.role(GUEST), Some(root_permissions()));
        assert_eq!(a.delete_user(ROOT).unwrap_err().status, 403);
        assert_eq!(a.put_role(ROOT, None, None, None).unwrap_err().status, 403);
        assert_eq!(a.delete_role(ROOT).unwrap_err().status, 403);
        assert_eq!(a.set_enabled(true).unwrap_err().status, 409);
    }

    #[test]
    fn users_need_a_password_and_existing_roles() {
        let mut a = Auth::default();
        assert_eq!(
            a.put_user("bob", None, &[], &[], &[]).unwrap_err().status,
            400
        );
        assert_eq!(
            a.put_user("bob", Some("h"), &[], &["nope".into()], &[])
                .unwrap_err()
                .status,
            404
        );
        a.put_role("r1", None, None, None).unwrap();
        assert!(a
            .put_user("bob", Some("h"), &[], &["r1".into()], &[])
            .unwrap());
        assert!(!a.put_user("bob", None, &[], &[], &["r1".into()]).unwrap());
        assert!(a.users["bob"].roles.is_empty());
        a.put_user("bob", None, &[], &["r1".into()], &[]).unwrap();
        a.delete_role("r1").unwrap();
        assert!(
            a.users["bob"].roles.is_empty(),
            "a deleted role leaves its users"
        );
        // A refused change changes nothing, not even the password.
        a.put_user(ROOT, Some("old"), &[], &[], &[]).unwrap();
        let refused = a.put_user(ROOT, Some("new"), &[], &[], &[ROOT.to_string()]);
        assert_eq!(refused.unwrap_err().status, 403);
        assert_eq!(a.users[ROOT].password_hash, "old");
    }
}
