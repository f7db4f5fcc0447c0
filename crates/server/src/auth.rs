//! Who may call the API, and where it may listen. Loopback needs nothing; any other address must be asked for
//! explicitly and then needs credentials: HTTP basic users (A1111's `--api-auth user:pass,...`) or an API key sent
//! as `Authorization: Bearer KEY`.

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use crate::error::ApiError;

#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// (user, password) pairs for HTTP basic authentication.
    pub basic: Vec<(String, String)>,
    pub api_key: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CredentialsError {
    #[error("invalid --api-auth entry {entry:?}: expected user:password (several separated by commas)")]
    BadBasic { entry: String },
    #[error("the API key is empty")]
    EmptyKey,
    #[error(
        "refusing to listen on {address}: it is not a loopback address; pass --listen to allow other machines to connect"
    )]
    RemoteNotAllowed { address: SocketAddr },
    #[error("refusing to listen on {address} without authentication: give --api-auth user:password or --api-key KEY")]
    RemoteWithoutAuth { address: SocketAddr },
}

impl Credentials {
    /// From `--api-auth` ("user:pass,user2:pass2") and `--api-key`.
    pub fn new(api_auth: Option<&str>, api_key: Option<&str>) -> Result<Credentials, CredentialsError> {
        let mut basic = Vec::new();
        for entry in api_auth.into_iter().flat_map(|list| list.split(',')) {
            match entry.split_once(':') {
                Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                    basic.push((user.to_string(), password.to_string()))
                }
                _ => return Err(CredentialsError::BadBasic { entry: entry.to_string() }),
            }
        }
        let api_key = match api_key {
            Some(key) if key.trim().is_empty() => return Err(CredentialsError::EmptyKey),
            key => key.map(str::to_string),
        };
        Ok(Credentials { basic, api_key })
    }

    pub fn required(&self) -> bool {
        !self.basic.is_empty() || self.api_key.is_some()
    }

    /// Whether an `Authorization` header value passes.
    pub fn accepts(&self, authorization: Option<&str>) -> bool {
        if !self.required() {
            return true;
        }
        let Some(value) = authorization.map(str::trim) else { return false };
        if let (Some(key), Some(given)) = (&self.api_key, value.strip_prefix("Bearer ")) {
            return same(key.as_bytes(), given.trim().as_bytes());
        }
        let Some(encoded) = value.strip_prefix("Basic ") else { return false };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
        let Some((user, password)) = std::str::from_utf8(&decoded).ok().and_then(|s| s.split_once(':')) else {
            return false;
        };
        // Every pair is compared, so the time taken does not tell which user exists.
        self.basic.iter().fold(false, |found, (u, p)| {
            (same(u.as_bytes(), user.as_bytes()) & same(p.as_bytes(), password.as_bytes())) | found
        })
    }

    /// Loopback is always allowed; another address needs `allow_remote` (the explicit flag) and credentials.
    pub fn check_bind(&self, address: SocketAddr, allow_remote: bool) -> Result<(), CredentialsError> {
        if address.ip().is_loopback() {
            return Ok(());
        }
        if !allow_remote {
            return Err(CredentialsError::RemoteNotAllowed { address });
        }
        if !self.required() {
            return Err(CredentialsError::RemoteWithoutAuth { address });
        }
        Ok(())
    }
}

/// Compares in time that depends on the length only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

pub async fn require_credentials(
    State(credentials): State<std::sync::Arc<Credentials>>,
    request: Request,
    next: Next,
) -> Response {
    let header = request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    if credentials.accepts(header) { next.run(request).await } else { ApiError::Unauthorized.into_response() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_bearer_are_checked() {
        let credentials = Credentials::new(Some("ann:secret,bob:pw"), Some("key123")).unwrap();
        let basic = |s: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s));
        assert!(credentials.accepts(Some(&basic("bob:pw"))));
        assert!(!credentials.accepts(Some(&basic("bob:secret"))));
        assert!(credentials.accepts(Some("Bearer key123")));
        assert!(!credentials.accepts(Some("Bearer key124")));
        assert!(!credentials.accepts(None));
        assert!(Credentials::default().accepts(None));
    }

    #[test]
    fn bad_entries_and_unsafe_binds_are_refused() {
        assert_eq!(
            Credentials::new(Some("nopassword"), None).unwrap_err(),
            CredentialsError::BadBasic { entry: "nopassword".into() }
        );
        let open = Credentials::default();
        let everywhere: SocketAddr = "0.0.0.0:7860".parse().unwrap();
        assert!(open.check_bind("127.0.0.1:7860".parse().unwrap(), false).is_ok());
        assert!(open.check_bind("[::1]:7860".parse().unwrap(), false).is_ok());
        assert!(matches!(open.check_bind(everywhere, false), Err(CredentialsError::RemoteNotAllowed { .. })));
        assert!(matches!(open.check_bind(everywhere, true), Err(CredentialsError::RemoteWithoutAuth { .. })));
        let keyed = Credentials::new(None, Some("k")).unwrap();
        assert!(keyed.check_bind(everywhere, true).is_ok());
        assert!(matches!(keyed.check_bind(everywhere, false), Err(CredentialsError::RemoteNotAllowed { .. })));
    }
}
