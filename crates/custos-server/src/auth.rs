//! Who is calling, and whether they may: keys, the [`Caller`], and
//! [`authorize`], the one check every route and event passes.
//!
//! Keys are kept as SHA-256 digests and every presented token is compared
//! with every configured digest, without stopping at the first match, so the
//! time taken says nothing about how much of a key was right, nor which key
//! it was.
//!
//! A request is checked in two steps. Identification turns the key into a
//! [`Caller`] (its name and scopes; `401` when no key matches): the bearer
//! middleware here does it for `/v1`, `crate::sift::auth` where Sift's
//! clients put the key. Authorization asks whether the caller holds the
//! scope the route table (`routes.rs`) gives the route (`403
//! insufficient_scope` when not). Some events need more than the route
//! does: a `label` releases or cancels holds and an `analyst_action` clears
//! accounts, so they need `labels:write` and `holds:write` whatever route
//! they come through ([`scope_for_event`]).
//!
//! The caller's key name (never the key) is written into the request's span
//! and into every refusal logged here.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use custos_config::{ApiKey, Scope, Scopes};
use custos_core::event::EventType;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::AppState;
use crate::error::{ApiError, Code};

/// The key a request was made with: its name and what it may do. Put into
/// the request's extensions once the key is identified.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_name: Arc<str>,
    pub scopes: Scopes,
}

struct Known {
    digest: [u8; 32],
    caller: Caller,
}

/// The configured keys, by digest.
pub struct ApiKeys {
    known: Vec<Known>,
}

impl ApiKeys {
    pub fn new(keys: &[ApiKey]) -> ApiKeys {
        ApiKeys {
            known: keys
                .iter()
                .map(|k| Known {
                    digest: Sha256::digest(k.secret.as_bytes()).into(),
                    caller: Caller {
                        key_name: Arc::from(k.name.as_str()),
                        scopes: k.scopes,
                    },
                })
                .collect(),
        }
    }

    /// The caller a presented key belongs to. Every digest is compared, and
    /// the match is selected without a branch, so the time does not depend
    /// on which key (if any) matched. Configured keys are distinct, so at
    /// most one matches.
    pub fn identify(&self, presented: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // 1 + the index of the match; 0 for none.
        let mut found = 0u32;
        for (i, known) in self.known.iter().enumerate() {
            let candidate = u32::try_from(i + 1).unwrap_or(u32::MAX);
            found = u32::conditional_select(&found, &candidate, known.digest.ct_eq(&digest));
        }
        let index = usize::try_from(found).ok()?.checked_sub(1)?;
        self.known.get(index).map(|k| k.caller.clone())
    }
}

/// Checks that `caller` holds `scope`, for `what` (a route or an event, as
/// the error names it). The one place a scope is checked.
pub fn authorize(caller: &Caller, scope: Scope, what: &str) -> Result<(), ApiError> {
    if caller.scopes.allows(scope) {
        return Ok(());
    }
    tracing::info!(
        key = %caller.key_name,
        required = scope.as_str(),
        held = %caller.scopes,
        what,
        "request refused: the key lacks the scope"
    );
    Err(ApiError::new(
        Code::InsufficientScope,
        format!(
            "{what} needs the scope `{scope}`; the key {:?} has `{}`",
            caller.key_name, caller.scopes
        ),
    ))
}

/// The scope an event of this type needs beyond the route's own: labels
/// and analyst actions change holds and account risk, so a key that may
/// only send events cannot send them.
pub fn scope_for_event(event_type: EventType) -> Option<Scope> {
    match event_type {
        EventType::Label => Some(Scope::LabelsWrite),
        EventType::AnalystAction => Some(Scope::HoldsWrite),
        _ => None,
    }
}

/// [`scope_for_event`] for a type by its wire name (Sift's translated
/// events); unknown names need nothing more, the parser refuses them.
pub(crate) fn scope_for_event_name(event_type: &str) -> Option<Scope> {
    EventType::ALL
        .into_iter()
        .find(|t| t.as_str() == event_type)
        .and_then(scope_for_event)
}

/// Checks the event's own scope ([`scope_for_event`]) for `caller`.
pub fn authorize_event(caller: &Caller, event_type: EventType) -> Result<(), ApiError> {
    match scope_for_event(event_type) {
        Some(scope) => authorize(
            caller,
            scope,
            &format!("an event of type {}", event_type.as_str()),
        ),
        None => Ok(()),
    }
}

/// Records the caller's key name in the request's span.
pub(crate) fn record_caller(caller: &Caller) {
    tracing::Span::current().record("key", &*caller.key_name);
}

/// Identifies an `Authorization: Bearer` key: the caller, or `401`.
pub fn bearer_caller(state: &AppState, request: &Request) -> Result<Caller, ApiError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
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
    let Some(token) = token else {
        return Err(ApiError::new(
            Code::InvalidAuthorizationHeader,
            "the Authorization header must be `Bearer <api key>`",
        ));
    };
    match state.api_keys.identify(token) {
        Some(caller) => {
            record_caller(&caller);
            Ok(caller)
        }
        None => {
            tracing::debug!("request refused: the api key is not valid");
            Err(ApiError::new(
                Code::InvalidApiKey,
                "the API key is not valid",
            ))
        }
    }
}

/// The middleware of a bearer-key route: identifies the caller, checks the
/// route's scope, and hands the [`Caller`] to the handler.
pub async fn require_scope(
    state: AppState,
    scope: Scope,
    route: &'static str,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = bearer_caller(&state, &request)?;
    authorize(&caller, scope, route)?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, secret: &str, scopes: Scopes) -> ApiKey {
        ApiKey {
            name: name.into(),
            secret: secret.into(),
            scopes,
        }
    }

    #[test]
    fn each_key_is_identified_as_its_own_caller() {
        let keys = ApiKeys::new(&[
            key(
                "ingest",
                "first-key-0123456789",
                Scopes::of([Scope::EventsWrite]),
            ),
            key("ops", "second-key-0123456789", Scopes::ADMIN),
        ]);
        let first = keys.identify("first-key-0123456789").unwrap();
        assert_eq!(
            (&*first.key_name, first.scopes),
            ("ingest", Scopes::of([Scope::EventsWrite]))
        );
        let second = keys.identify("second-key-0123456789").unwrap();
        assert_eq!((&*second.key_name, second.scopes), ("ops", Scopes::ADMIN));
        assert!(keys.identify("first-key-012345678").is_none());
        assert!(keys.identify("").is_none());
        assert!(ApiKeys::new(&[]).identify("").is_none());
    }

    #[test]
    fn authorize_names_the_missing_scope_and_never_the_key() {
        let caller = Caller {
            key_name: "ingest".into(),
            scopes: Scopes::of([Scope::EventsWrite]),
        };
        assert!(authorize(&caller, Scope::EventsWrite, "POST /v1/events").is_ok());
        let e = authorize(&caller, Scope::RulesWrite, "POST /v1/rules").unwrap_err();
        assert_eq!(e.code, Code::InsufficientScope);
        assert_eq!(e.status(), 403);
        assert!(
            e.message.contains("`rules:write`") && e.message.contains("\"ingest\""),
            "{}",
            e.message
        );
        let e = authorize_event(&caller, EventType::Label).unwrap_err();
        assert!(
            e.message
                .starts_with("an event of type label needs the scope `labels:write`"),
            "{}",
            e.message
        );
        assert!(authorize_event(&caller, EventType::AnalystAction).is_err());
        assert!(authorize_event(&caller, EventType::Payout).is_ok());
        assert_eq!(scope_for_event_name("label"), Some(Scope::LabelsWrite));
        assert_eq!(
            scope_for_event_name("analyst_action"),
            Some(Scope::HoldsWrite)
        );
        assert_eq!(scope_for_event_name("login"), None);
    }
}
