//! v3 auth tokens (etcd 3.4 `auth/simple_token.go`, `auth/jwt.go`), chosen with
//! `--auth-token`:
//! - **simple** (the default): `<16 random letters>.<log index>`. A token is made when its
//!   Authenticate entry applies, so every member that applies the entry knows it; each member
//!   forgets it when it goes unused for `--auth-token-ttl` (300 s), when its user is deleted
//!   or gets a new password, and when auth is turned off. A restarted member knows the tokens
//!   of the entries it replays; clients re-authenticate on `invalid auth token`, as with etcd.
//! - **jwt** (`jwt,pub-key=…,priv-key=…,sign-method=RS256,ttl=5m`): a signed JSON Web Token
//!   holding the user name, the auth revision it was issued at and its expiry; any member with
//!   the key verifies it, nothing is kept.
//!
//! A token's user comes with an auth revision: for a simple token the member's current one,
//! for a JWT the one it was issued at (a JWT from before an auth change is refused as old).
//!
//! Not here: passwords (the auth service checks them), permission checks (the store).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use etcd_store::TokenChange;

/// The simple token TTL by default (etcd's `--auth-token-ttl`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// How often at most expired simple tokens are swept out.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A bad `--auth-token` value.
#[derive(Debug, thiserror::Error)]
pub enum TokenConfigError {
    /// Neither `simple` nor `jwt`.
    #[error("invalid --auth-token type {0:?} (want simple or jwt)")]
    UnknownType(String),
    /// An option that is not `key=value` or not known.
    #[error("invalid --auth-token option {0:?}")]
    BadOption(String),
    /// A key file that could not be read or parsed.
    #[error("--auth-token {what} {path}: {reason}")]
    Key {
        /// Which key.
        what: &'static str,
        /// Its file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Something else about the JWT options.
    #[error("--auth-token: {0}")]
    Jwt(String),
}

/// Who a token names, and the auth revision to check them against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The user.
    pub user: String,
    /// For a JWT, the revision it was issued at; for a simple token, none (the member's
    /// current revision applies).
    pub revision: Option<u64>,
}

/// The member's token provider. See the module docs.
pub struct Tokens {
    kind: Kind,
    simple: Mutex<Simple>,
}

enum Kind {
    Simple,
    Jwt(Box<Jwt>),
}

struct Simple {
    ttl: Duration,
    /// Token → (user, when it lapses unless used).
    tokens: HashMap<String, (String, Instant)>,
    swept: Instant,
}

struct Jwt {
    algorithm: jsonwebtoken::Algorithm,
    encoding: Option<jsonwebtoken::EncodingKey>,
    decoding: jsonwebtoken::DecodingKey,
    ttl: Duration,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

impl Tokens {
    /// Simple tokens lapsing after `ttl` unused.
    pub fn simple(ttl: Duration) -> Tokens {
        Tokens {
            kind: Kind::Simple,
            simple: Mutex::new(Simple {
                ttl,
                tokens: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    /// The provider `--auth-token` names (`simple`, or `jwt,` and its options), simple tokens
    /// lapsing after `ttl`.
    pub fn from_flag(flag: &str, ttl: Duration) -> Result<Tokens, TokenConfigError> {
        let mut parts = flag.split(',');
        match parts.next().unwrap_or("") {
            "simple" | "" => Ok(Tokens::simple(ttl)),
            "jwt" => {
                let mut options = HashMap::new();
                for part in parts {
                    let (k, v) = part
                        .split_once('=')
                        .ok_or_else(|| TokenConfigError::BadOption(part.to_string()))?;
                    if !matches!(k, "pub-key" | "priv-key" | "sign-method" | "ttl") {
                        return Err(TokenConfigError::BadOption(part.to_string()));
                    }
                    options.insert(k, v);
                }
                Ok(Tokens {
                    kind: Kind::Jwt(Box::new(Jwt::new(&options)?)),
                    simple: Mutex::new(Simple {
                        ttl,
                        tokens: HashMap::new(),
                        swept: Instant::now(),
                    }),
                })
            }
            other => Err(TokenConfigError::UnknownType(other.to_string())),
        }
    }

    /// Whether tokens are simple ones (made through the log).
    pub fn is_simple(&self) -> bool {
        matches!(self.kind, Kind::Simple)
    }

    /// Follows an applied auth change (called by the raft thread as entries apply).
    pub fn follow(&self, change: &TokenChange) {
        if !self.is_simple() {
            return;
        }
        let mut s = self.simple.lock().expect("tokens lock poisoned");
        let now = Instant::now();
        match change {
            TokenChange::Issued { token, user } => {
                let lapse = now + s.ttl;
                s.tokens.insert(token.clone(), (user.clone(), lapse));
            }
            TokenChange::UserInvalidated(user) => s.tokens.retain(|_, (u, _)| u != user),
            TokenChange::AllInvalidated => s.tokens.clear(),
        }
        if now.duration_since(s.swept) >= SWEEP_EVERY {
            s.tokens.retain(|_, (_, lapse)| *lapse > now);
            s.swept = now;
        }
    }

    /// The user of `token`, if it is valid here (a simple token's life starts again).
    pub fn info(&self, token: &str) -> Option<TokenInfo> {
        match &self.kind {
            Kind::Simple => {
                let mut s = self.simple.lock().expect("tokens lock poisoned");
                let ttl = s.ttl;
                let now = Instant::now();
                let (user, lapse) = s.tokens.get_mut(token)?;
                if *lapse <= now {
                    s.tokens.remove(token);
                    return None;
                }
                *lapse = now + ttl;
                Some(TokenInfo {
                    user: user.clone(),
                    revision: None,
                })
            }
            Kind::Jwt(jwt) => jwt.verify(token),
        }
    }

    /// The log index a simple token was made at (the member must have applied it to know the
    /// token); `None` for a token of another shape.
    pub fn simple_index(token: &str) -> Option<u64> {
        let (prefix, index) = token.split_once('.')?;
        (!prefix.is_empty() && !index.contains('.'))
            .then(|| index.parse().ok())
            .flatten()
    }

    /// A JWT for `user` at auth `revision`; `None` with simple tokens (the log made the
    /// token). Fails when the provider has only a public key.
    pub fn sign(&self, user: &str, revision: u64) -> Option<Result<String, String>> {
        match &self.kind {
            Kind::Simple => None,
            Kind::Jwt(jwt) => Some(jwt.sign(user, revision)),
        }
    }
}

/// 16 random letters: a simple token's prefix.
pub fn simple_prefix() -> String {
    use ring::rand::SecureRandom as _;
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let rng = ring::rand::SystemRandom::new();
    let mut out = String::with_capacity(16);
    while out.len() < 16 {
        let mut b = [0u8; 32];
        rng.fill(&mut b).expect("the system's random source failed");
        // 52 letters: bytes below 208 (4 × 52) pick one without bias.
        for x in b.into_iter().filter(|x| *x < 208) {
            if out.len() < 16 {
                out.push(LETTERS[usize::from(x % 52)] as char);
            }
        }
    }
    out
}

impl Jwt {
    fn new(options: &HashMap<&str, &str>) -> Result<Jwt, TokenConfigError> {
        use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
        let method = options.get("sign-method").copied().unwrap_or("");
        let algorithm: Algorithm = method
            .parse()
            .map_err(|_| TokenConfigError::Jwt(format!("unknown sign-method {method:?}")))?;
        let ttl = match options.get("ttl") {
            Some(t) => crate::gocompat::parse_duration(t)
                .filter(|n| *n > 0)
                .map(|n| Duration::from_nanos(n as u64))
                .ok_or_else(|| TokenConfigError::Jwt(format!("invalid ttl {t:?}")))?,
            None => Duration::from_secs(300),
        };
        let read = |what: &'static str| -> Result<Option<Vec<u8>>, TokenConfigError> {
            match options.get(what) {
                None | Some(&"") => Ok(None),
                Some(path) => std::fs::read(path)
                    .map(Some)
                    .map_err(|e| TokenConfigError::Key {
                        what,
                        path: path.to_string(),
                        reason: e.to_string(),
                    }),
            }
        };
        let key_error = |what: &'static str, e: jsonwebtoken::errors::Error| {
            let path = options.get(what).copied().unwrap_or("").to_string();
            TokenConfigError::Key {
                what,
                path,
                reason: e.to_string(),
            }
        };
        let (public, private) = (read("pub-key")?, read("priv-key")?);
        let (encoding, decoding) = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                // etcd reads an HMAC secret from priv-key.
                let secret = private
                    .or(public)
                    .ok_or_else(|| TokenConfigError::Jwt("HS* needs priv-key".into()))?;
                (
                    Some(EncodingKey::from_secret(&secret)),
                    DecodingKey::from_secret(&secret),
                )
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => {
                let public = public
                    .ok_or_else(|| TokenConfigError::Jwt(format!("{method} needs pub-key")))?;
                let decoding =
                    DecodingKey::from_rsa_pem(&public).map_err(|e| key_error("pub-key", e))?;
                let encoding = match private {
                    Some(p) => {
                        Some(EncodingKey::from_rsa_pem(&p).map_err(|e| key_error("priv-key", e))?)
                    }
                    None => None,
                };
                (encoding, decoding)
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let public = public
                    .ok_or_else(|| TokenConfigError::Jwt(format!("{method} needs pub-key")))?;
                let decoding =
                    DecodingKey::from_ec_pem(&public).map_err(|e| key_error("pub-key", e))?;
                let encoding = match private {
                    Some(p) => {
                        Some(EncodingKey::from_ec_pem(&p).map_err(|e| key_error("priv-key", e))?)
                    }
                    None => None,
                };
                (encoding, decoding)
            }
            other => {
                return Err(TokenConfigError::Jwt(format!(
                    "sign-method {other:?} is not supported"
                )))
            }
        };
        Ok(Jwt {
            algorithm,
            encoding,
            decoding,
            ttl,
        })
    }

    fn sign(&self, user: &str, revision: u64) -> Result<String, String> {
        let key = self
            .encoding
            .as_ref()
            .ok_or("auth: token signing attempted with verify-only key")?;
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            + self.ttl;
        let claims = Claims {
            username: user.to_string(),
            revision,
            exp: exp.as_secs(),
        };
        jsonwebtoken::encode(&jsonwebtoken::Header::new(self.algorithm), &claims, key)
            .map_err(|e| e.to_string())
    }

    fn verify(&self, token: &str) -> Option<TokenInfo> {
        let mut validation = jsonwebtoken::Validation::new(self.algorithm);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).ok()?;
        Some(TokenInfo {
            user: data.claims.username,
            revision: Some(data.claims.revision),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_tokens_name_their_user_until_unused_for_the_ttl() {
        let t = Tokens::simple(Duration::from_millis(200));
        t.follow(&TokenChange::Issued {
            token: "abc.5".into(),
            user: "alice".into(),
        });
        assert_eq!(t.info("abc.5").unwrap().user, "alice");
        assert_eq!(t.info("abc.6"), None);
        std::thread::sleep(Duration::from_millis(120));
        assert!(t.info("abc.5").is_some(), "use restarts its life");
        std::thread::sleep(Duration::from_millis(120));
        assert!(t.info("abc.5").is_some());
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(t.info("abc.5"), None, "lapsed unused");
    }

    #[test]
    fn a_users_tokens_go_with_a_new_password_and_all_go_when_auth_is_off() {
        let t = Tokens::simple(DEFAULT_TTL);
        for (token, user) in [("a.1", "alice"), ("b.2", "bob"), ("c.3", "alice")] {
            t.follow(&TokenChange::Issued {
                token: token.into(),
                user: user.into(),
            });
        }
        t.follow(&TokenChange::UserInvalidated("alice".into()));
        assert_eq!(t.info("a.1"), None);
        assert_eq!(t.info("c.3"), None);
        assert!(t.info("b.2").is_some());
        t.follow(&TokenChange::AllInvalidated);
        assert_eq!(t.info("b.2"), None);
    }

    #[test]
    fn simple_token_shapes() {
        assert_eq!(Tokens::simple_index("AbCdEfGhIjKlMnOp.42"), Some(42));
        assert_eq!(Tokens::simple_index("nodot"), None);
        assert_eq!(Tokens::simple_index("a.b.3"), None);
        assert_eq!(Tokens::simple_index(".3"), None);
        let p = simple_prefix();
        assert_eq!(p.len(), 16);
        assert!(p.bytes().all(|b| b.is_ascii_alphabetic()));
        assert_ne!(p, simple_prefix());
    }

    #[test]
    fn jwt_options_are_checked() {
        assert!(matches!(
            Tokens::from_flag("bogus", DEFAULT_TTL),
            Err(TokenConfigError::UnknownType(_))
        ));
        assert!(matches!(
            Tokens::from_flag("jwt,colour=blue", DEFAULT_TTL),
            Err(TokenConfigError::BadOption(_))
        ));
        assert!(matches!(
            Tokens::from_flag("jwt,sign-method=RS256,pub-key=/nonexistent", DEFAULT_TTL),
            Err(TokenConfigError::Key { .. })
        ));
        assert!(Tokens::from_flag("simple", DEFAULT_TTL)
            .unwrap()
            .is_simple());
    }

    #[test]
    fn jwts_carry_user_and_revision_and_forgeries_fail() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("secret");
        std::fs::write(&key, b"a shared secret of some length").unwrap();
        let flag = format!("jwt,sign-method=HS256,priv-key={},ttl=1m", key.display());
        let t = Tokens::from_flag(&flag, DEFAULT_TTL).unwrap();
        let token = t.sign("alice", 7).unwrap().unwrap();
        assert_eq!(
            t.info(&token),
            Some(TokenInfo {
                user: "alice".into(),
                revision: Some(7)
            })
        );
        // Another key's token, and a tampered one, are refused.
        let other = dir.path().join("other");
        std::fs::write(&other, b"another secret").unwrap();
        let flag2 = format!("jwt,sign-method=HS256,priv-key={}", other.display());
        let forged = Tokens::from_flag(&flag2, DEFAULT_TTL)
            .unwrap()
            .sign("root", 7)
            .unwrap()
            .unwrap();
        assert_eq!(t.info(&forged), None);
        let mut tampered = token.clone();
        tampered.insert(tampered.len() / 2, 'x');
        assert_eq!(t.info(&tampered), None);
        assert!(t.sign("x", 1).is_some());
        assert!(Tokens::simple(DEFAULT_TTL).sign("x", 1).is_none());
    }
}
