//! Bearer-token authentication, checked in constant time.
//!
//! Keys are kept as SHA-256 digests and every presented token is compared
//! with every configured digest, without stopping at the first match, so the
//! time taken says nothing about how much of a key was right.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::{ApiError, Code};

pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl ApiKeys {
    pub fn new(keys: &[String]) -> ApiKeys {
        ApiKeys {
            digests: keys
                .iter()
                .map(|k| Sha256::digest(k.as_bytes()).into())
                .collect(),
        }
    }

    pub fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut matched = subtle::Choice::from(0);
        for known in &self.digests {
            matched |= known.ct_eq(&digest);
        }
        matched.into()
    }
}

pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request.headers().get(header::AUTHORIZATION);
    let Some(value) = header else {
        return Err(ApiError::new(
            Code::MissingApiKey,
            "missing Authorization header; send `Authorization: Bearer <api key>`",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match token {
        Some(token) if state.api_keys.accepts(token) => Ok(next.run(request).await),
        Some(_) => Err(ApiError::new(
            Code::InvalidApiKey,
            "the API key is not valid",
        )),
        None => Err(ApiError::new(
            Code::InvalidAuthorizationHeader,
            "the Authorization header must be `Bearer <api key>`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_keys_are_accepted() {
        let keys = ApiKeys::new(&[
            "first-key-0123456789".into(),
            "second-key-0123456789".into(),
        ]);
        assert!(keys.accepts("first-key-0123456789"));
        assert!(keys.accepts("second-key-0123456789"));
        assert!(!keys.accepts("first-key-012345678"));
        assert!(!keys.accepts(""));
        assert!(!ApiKeys::new(&[]).accepts(""));
    }
}
