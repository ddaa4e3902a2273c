//! `--config-file`: etcd's YAML configuration file, read into the same `(flag, value)` pairs
//! the command line gives, so that one set of checks applies to both.
//!
//! The keys are etcd's: each long flag's name (`name`, `data-dir`, `listen-client-urls`, …),
//! and the TLS settings nested under `client-transport-security` and
//! `peer-transport-security` (`cert-file`, `key-file`, `client-cert-auth`, `trusted-ca-file`,
//! `auto-tls`, `crl-file`, and for peers `allowed-cn`, `allowed-hostname`). URL lists are
//! comma-separated strings, as etcd writes them; `log-outputs` is a list. A key with no value
//! (`wal-dir:`) keeps the default, as in etcd.
//!
//! Unlike etcd, which ignores keys it does not know, an unknown key (a typo, a flag of the seed
//! such as `-n`) is refused with its name: a setting that silently does nothing is how a
//! deployment ends up not being what its file says.
//!
//! Not here: what the values mean (`super::parse_with_env` checks them as flags).

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

use super::{Error, Kind};

/// The file's settings as `(long flag name, value)` pairs, in file order; `kind_of` says
/// whether (and as what) a flag exists.
pub(super) fn read(
    path: &Path,
    kind_of: &dyn Fn(&str) -> Option<Kind>,
) -> Result<Vec<(String, String)>, Error> {
    let bad = |what: String| Error::Invalid(format!("--config-file {}: {what}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let docs = YamlLoader::load_from_str(&text).map_err(|e| bad(format!("invalid YAML: {e}")))?;
    let mut out = Vec::new();
    let top = match docs.as_slice() {
        [] | [Yaml::Null] => return Ok(out),
        [Yaml::Hash(h)] => h,
        [_] => return Err(bad("expected a mapping of etcd's configuration keys".into())),
        _ => return Err(bad("expected one YAML document".into())),
    };
    for (key, value) in top {
        let key = key_name(key).map_err(&bad)?;
        let nested = match key.as_str() {
            "client-transport-security" => Some(""),
            "peer-transport-security" => Some("peer-"),
            _ => None,
        };
        if let Some(prefix) = nested {
            let inner = match value {
                Yaml::Null => continue,
                Yaml::Hash(h) => h,
                _ => return Err(bad(format!("{key}: expected a mapping"))),
            };
            for (sub, v) in inner {
                let sub = key_name(sub).map_err(&bad)?;
                let Some(flag) = transport_flag(prefix, &sub) else {
                    return Err(bad(format!("unknown key {key}.{sub}")));
                };
                push(&mut out, &flag, &format!("{key}.{sub}"), v, kind_of).map_err(&bad)?;
            }
            continue;
        }
        // Only etcd's long names: the seed's short flags are command-line only.
        let known = key.len() >= 4 && key != "config-file" && kind_of(&key).is_some();
        if !known {
            return Err(bad(format!("unknown key {key:?}")));
        }
        push(&mut out, &key, &key, value, kind_of).map_err(&bad)?;
    }
    Ok(out)
}

/// The flag a `*-transport-security` key stands for.
fn transport_flag(prefix: &str, sub: &str) -> Option<String> {
    let flag = match (prefix, sub) {
        (_, "cert-file" | "key-file" | "client-cert-auth" | "trusted-ca-file" | "auto-tls") => {
            format!("{prefix}{sub}")
        }
        ("", "crl-file") => "client-crl-file".into(),
        ("peer-", "crl-file") => "peer-crl-file".into(),
        ("peer-", "allowed-cn") => "peer-cert-allowed-cn".into(),
        ("peer-", "allowed-hostname") => "peer-cert-allowed-hostname".into(),
        _ => return None,
    };
    Some(flag)
}

fn key_name(key: &Yaml) -> Result<String, String> {
    match key {
        Yaml::String(s) => Ok(s.clone()),
        other => Err(format!("a key must be a string, not {other:?}")),
    }
}

/// Adds `flag`'s value from the file (`key` names it in errors), checked against the flag's
/// kind; a null leaves the default.
fn push(
    out: &mut Vec<(String, String)>,
    flag: &str,
    key: &str,
    value: &Yaml,
    kind_of: &dyn Fn(&str) -> Option<Kind>,
) -> Result<(), String> {
    let kind = kind_of(flag).ok_or_else(|| format!("unknown key {key:?}"))?;
    let text = match (kind, value) {
        (_, Yaml::Null) => return Ok(()),
        (Kind::Bool, Yaml::Boolean(b)) => b.to_string(),
        (Kind::Bool, Yaml::String(s)) if matches!(s.as_str(), "true" | "false") => s.clone(),
        (Kind::Bool, other) => {
            return Err(format!(
                "{key}: expected true or false, not {}",
                show(other)
            ))
        }
        (Kind::Int, Yaml::Integer(n)) if *n >= 0 => n.to_string(),
        (Kind::Int, other) => {
            return Err(format!(
                "{key}: expected a non-negative integer, not {}",
                show(other)
            ))
        }
        (Kind::Str, Yaml::String(s) | Yaml::Real(s)) => s.clone(),
        (Kind::Str, Yaml::Integer(n)) => n.to_string(),
        (Kind::Str, Yaml::Boolean(b)) => b.to_string(),
        (Kind::Str, Yaml::Array(items)) => {
            let mut parts = Vec::new();
            for item in items {
                match item {
                    Yaml::String(s) => parts.push(s.clone()),
                    other => {
                        return Err(format!(
                            "{key}: expected a list of strings, not {}",
                            show(other)
                        ))
                    }
                }
            }
            parts.join(",")
        }
        (Kind::Str, other) => return Err(format!("{key}: expected a string, not {}", show(other))),
    };
    out.push((flag.to_string(), text));
    Ok(())
}

/// A value as the error shows it.
fn show(value: &Yaml) -> String {
    match value {
        Yaml::String(s) | Yaml::Real(s) => format!("{s:?}"),
        Yaml::Integer(n) => n.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Array(_) => "a list".into(),
        Yaml::Hash(_) => "a mapping".into(),
        _ => "that".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(name: &str) -> Option<Kind> {
        match name {
            "name" | "listen-client-urls" | "log-outputs" | "cert-file" | "peer-cert-file" => {
                Some(Kind::Str)
            }
            "snapshot-count" => Some(Kind::Int),
            "client-cert-auth" | "peer-client-cert-auth" => Some(Kind::Bool),
            _ => None,
        }
    }

    fn read_str(text: &str) -> Result<Vec<(String, String)>, Error> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.conf.yml");
        std::fs::write(&path, text).unwrap();
        read(&path, &kinds).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(m.replace(&path.display().to_string(), "F")),
            other => other,
        })
    }

    #[test]
    fn keys_become_flags_with_lists_joined_and_nulls_left_out() {
        let got = read_str(
            "name: 'infra1'\nsnapshot-count: 10000\nlisten-client-urls: https://10.0.0.1:2379,https://127.0.0.1:2379\n\
             log-outputs: [stderr, /var/log/etcd.log]\ncert-file:\n\
             client-transport-security:\n  cert-file: /c.pem\n  client-cert-auth: true\n\
             peer-transport-security:\n  cert-file: /p.pem\n",
        )
        .unwrap();
        let want: Vec<(String, String)> = [
            ("name", "infra1"),
            ("snapshot-count", "10000"),
            (
                "listen-client-urls",
                "https://10.0.0.1:2379,https://127.0.0.1:2379",
            ),
            ("log-outputs", "stderr,/var/log/etcd.log"),
            ("cert-file", "/c.pem"),
            ("client-cert-auth", "true"),
            ("peer-cert-file", "/p.pem"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(read_str("").unwrap(), vec![]);
    }

    #[test]
    fn bad_files_are_refused_naming_the_key() {
        for (text, want) in [
            ("nmae: x\n", "--config-file F: unknown key \"nmae\""),
            ("n: x\n", "--config-file F: unknown key \"n\""),
            ("snapshot-count: lots\n", "--config-file F: snapshot-count: expected a non-negative integer, not \"lots\""),
            ("snapshot-count: -1\n", "--config-file F: snapshot-count: expected a non-negative integer, not -1"),
            ("client-transport-security:\n  cert: x\n", "--config-file F: unknown key client-transport-security.cert"),
            ("client-transport-security:\n  client-cert-auth: yes\n", "--config-file F: client-transport-security.client-cert-auth: expected true or false, not \"yes\""),
            ("name: [a, {b: c}]\n", "--config-file F: name: expected a list of strings, not a mapping"),
            ("- a\n", "--config-file F: expected a mapping of etcd's configuration keys"),
        ] {
            assert_eq!(read_str(text), Err(Error::Invalid(want.into())), "{text}");
        }
        let Err(Error::Invalid(m)) = read_str("name: [unclosed\n") else {
            panic!()
        };
        assert!(m.starts_with("--config-file F: invalid YAML"), "{m}");
    }
}
