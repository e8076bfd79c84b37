//! The OpenAPI 3.1 description of every route: served at `GET /openapi.json`
//! and kept in `docs/openapi.json`.
//!
//! The description is built from the code, not written beside it, so it
//! cannot drift:
//!
//! - the operations are the rows of the route table ([`ROUTES`]): path,
//!   method, summary, path parameters and the key each route needs come
//!   from the row, so a route cannot exist without an operation;
//! - error responses come from the error-code table ([`Code`]): each route
//!   lists the codes it may return (those every route of its kind may, plus
//!   its own), grouped by their status, and every error response refers to
//!   one shared body: `Error` on `/v1`, Sift's `SiftError` on `/v205` and
//!   `SiftV3Error` on `/v3`, each derived from the struct that writes it;
//! - query parameters and request bodies are derived (`utoipa`'s
//!   `IntoParams` and `ToSchema`) from the structs the handlers deserialize.
//!
//! What the code holds only as JSON values (most success bodies: the
//! engine's accounts, holds, campaigns and cases, Sift's answers) is
//! described here by the fields every answer has. Real answers are checked
//! against the description by Schemathesis in CI (`scripts/schemathesis.sh`)
//! and by the api tests. `utoipa` is a dependency of this crate only; the
//! core's types (`Action`) are described here from their own lists.
//!
//! `docs/openapi.json` is [`json`]'s output; a test fails when it differs
//! (`UPDATE_DOCS=1` rewrites it).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, Paths, Ref, RefOr,
    Response, ResponseBuilder, Schema,
};
use utoipa::{IntoParams, ToSchema};

use crate::error::Code;
use crate::routes::{Access, ROUTES, Route};

/// `GET /openapi.json`: built once, then served from memory.
pub(crate) async fn get_openapi() -> axum::response::Response {
    use axum::response::IntoResponse;
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = TEXT.get_or_init(json).as_str();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response()
}

/// The `code` field's schema: a reference to `Code`.
pub(crate) fn code_ref() -> RefOr<Schema> {
    reference("Code")
}

/// The description as served and committed: pretty JSON, one newline at
/// the end.
pub fn json() -> String {
    let mut text =
        serde_json::to_string_pretty(&document()).expect("an OpenAPI document always serializes");
    text.push('\n');
    text
}

/// Which error body a route answers with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Native,
    Sift,
    SiftV3,
}

impl Family {
    fn of(route: &Route) -> Family {
        if route.path.starts_with("/v205/") {
            Family::Sift
        } else if route.path.starts_with("/v3/") {
            Family::SiftV3
        } else {
            Family::Native
        }
    }

    fn error_schema(self) -> &'static str {
        match self {
            Family::Native => "Error",
            Family::Sift => "SiftError",
            Family::SiftV3 => "SiftV3Error",
        }
    }
}

/// What a route's row does not say: its query, body, answers and the error
/// codes only it returns.
#[derive(Default)]
struct Spec {
    query: Vec<Parameter>,
    body: Option<RequestBody>,
    /// Status, description, content type and schema of each success.
    ok: Vec<(u16, &'static str, &'static str, RefOr<Schema>)>,
    codes: &'static [Code],
    /// Sift's own refusals beyond those translated from [`Code`].
    sift: &'static [(u16, &'static str)],
}

fn schema(value: Value) -> RefOr<Schema> {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| {
        panic!("a hand-written schema is not a valid OpenAPI schema: {e}: {value}")
    })
}

fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn ok_json(
    description: &'static str,
    body: Value,
) -> Vec<(u16, &'static str, &'static str, RefOr<Schema>)> {
    vec![(200, description, "application/json", schema(body))]
}

/// An object with these fields always present (more may be).
fn object(required: &[&str]) -> Value {
    json!({"type": "object", "required": required})
}

fn json_body<T: ToSchema>() -> Option<RequestBody> {
    Some(
        RequestBodyBuilder::new()
            .content(
                "application/json",
                Content::new(Some(reference(&T::name()))),
            )
            .required(Some(utoipa::openapi::Required::True))
            .build(),
    )
}

fn query<T: IntoParams>() -> Vec<Parameter> {
    T::into_params(|| Some(ParameterIn::Query))
}

/// The spec of the route named `name` (`METHOD path`); `None` for a route
/// not described yet, which a test refuses.
fn spec(name: &str) -> Option<Spec> {
    use crate::analyst::{ActionBody, CampaignQuery, HoldQuery, OneHoldQuery};
    use crate::cases::{CaseBody, CaseQuery};
    use crate::rules::{EditEntries, ReplaceEntries};
    use crate::webhooks::{DeadQuery, RetryQuery};
    use Code::*;

    let hold = reference("Hold");
    let case = reference("Case");
    let case_codes: &[Code] = &[
        MissingField,
        InvalidField,
        CaseNotFound,
        CaseResolved,
        AccountNotFound,
        HoldNotOpen,
        EventIdConflict,
        StorageUnavailable,
    ];
    let case_action = |codes| Spec {
        body: json_body::<CaseBody>(),
        ok: vec![(
            200,
            "The case after the action.",
            "application/json",
            case.clone(),
        )],
        codes,
        ..Spec::default()
    };
    let sift_answer = object(&["status", "error_message", "time"]);
    let spec = match name {
        "POST /v1/events" => Spec {
            body: Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        Content::new(Some(schema(json!({"oneOf": [
                            {"$ref": "#/components/schemas/Event"},
                            {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                        ]})))),
                    )
                    .content(
                        "application/x-ndjson",
                        Content::new(Some(schema(json!({"type": "string"})))),
                    )
                    .required(Some(utoipa::openapi::Required::True))
                    .build(),
            ),
            ok: vec![
                (
                    200,
                    "One answer for one event, an array for an array; one line per event for NDJSON.",
                    "application/json",
                    schema(json!({"oneOf": [
                        {"$ref": "#/components/schemas/EventAnswer"},
                        {"type": "array", "items": {"$ref": "#/components/schemas/EventAnswer"}},
                    ]})),
                ),
                (
                    200,
                    "",
                    "application/x-ndjson",
                    schema(json!({"type": "string"})),
                ),
            ],
            codes: &[
                EmptyBatch,
                InvalidEvent,
                MissingField,
                InvalidField,
                UnknownEventType,
                TimeOutOfRange,
                EventIdConflict,
                BatchTooLarge,
                StorageUnavailable,
            ],
            ..Spec::default()
        },
        "GET /v1/events/{event_id}" => Spec {
            ok: ok_json(
                "The stored event, personal values in clear, and its decision.",
                object(&["event_id", "seq", "received_at_ms", "event", "decision"]),
            ),
            codes: &[EventNotFound, StorageUnavailable],
            ..Spec::default()
        },
        "GET /v1/accounts/{account_id}" => Spec {
            ok: ok_json(
                "The account's state, login profile and recent events.",
                object(&["login_profile", "recent_events"]),
            ),
            codes: &[AccountNotFound, StorageUnavailable],
            ..Spec::default()
        },
        "GET /v1/rules" => Spec {
            ok: ok_json(
                "The live rule set.",
                object(&["version", "name", "rules", "lists"]),
            ),
            ..Spec::default()
        },
        "POST /v1/rules" => Spec {
            body: Some(rules_body()),
            ok: vec![(
                201,
                "The installed version.",
                "application/json",
                schema(json!({"type": "object", "required": ["version", "name", "rules"], "properties": {
                    "version": {"type": "integer", "minimum": 1},
                    "name": {"type": "string"},
                    "rules": {"type": "integer", "minimum": 0, "description": "How many rules."},
                }})),
            )],
            codes: &[
                InvalidRules,
                InvalidToml,
                InvalidRemovalOverride,
                RulesRemovalUnconfirmed,
                RulesChanged,
                StorageUnavailable,
            ],
            ..Spec::default()
        },
        "POST /v1/rules/check" => Spec {
            body: Some(rules_body()),
            ok: ok_json(
                "The rule set compiles; what installing it would remove.",
                object(&["valid", "rules", "would_remove"]),
            ),
            codes: &[InvalidRules, InvalidToml],
            ..Spec::default()
        },
        "GET /v1/rules/{version}" => Spec {
            ok: ok_json("A stored rule-set version.", object(&["version"])),
            codes: &[RulesVersionNotFound, StorageUnavailable],
            ..Spec::default()
        },
        "GET /v1/lists/{name}" => Spec {
            ok: ok_json("A named list and its entries.", object(&["name", "entries"])),
            codes: &[ListNotFound],
            ..Spec::default()
        },
        "PUT /v1/lists/{name}" | "PATCH /v1/lists/{name}" => Spec {
            body: if name.starts_with("PUT") {
                json_body::<ReplaceEntries>()
            } else {
                json_body::<EditEntries>()
            },
            ok: vec![(
                201,
                "The rule-set version the edit installed.",
                "application/json",
                schema(object(&["version", "name", "rules"])),
            )],
            codes: &[
                InvalidListEdit,
                ListNotFound,
                InvalidRules,
                InvalidRemovalOverride,
                RulesRemovalUnconfirmed,
                RulesChanged,
                StorageUnavailable,
            ],
            ..Spec::default()
        },
        "GET /v1/webhooks" => Spec {
            ok: ok_json("Delivery per endpoint.", object(&["endpoints"])),
            codes: &[StorageUnavailable],
            ..Spec::default()
        },
        "GET /v1/webhooks/dead" => Spec {
            query: query::<DeadQuery>(),
            ok: ok_json(
                "Deliveries given up, newest first.",
                json!({"type": "object", "required": ["dead"], "properties": {
                    "dead": {"type": "array", "items": object(&["webhook_id", "endpoint", "type", "attempts"])},
                }}),
            ),
            codes: &[StorageUnavailable],
            ..Spec::default()
        },
        "POST /v1/webhooks/{webhook_id}/retry" => Spec {
            query: query::<RetryQuery>(),
            ok: ok_json("The deliveries put back to pending.", object(&[])),
            codes: &[DeadWebhookNotFound, StorageUnavailable],
            ..Spec::default()
        },
        "GET /v1/holds" => Spec {
            query: query::<HoldQuery>(),
            ok: ok_json(
                "Payout holds of one status, newest first.",
                json!({"type": "object", "required": ["status", "holds", "open", "untracked"], "properties": {
                    "status": {"type": "string"},
                    "holds": {"type": "array", "items": {"$ref": "#/components/schemas/Hold"}},
                    "open": {"type": "integer", "minimum": 0},
                    "untracked": {"type": "integer", "minimum": 0},
                }}),
            ),
            codes: &[InvalidField],
            ..Spec::default()
        },
        "GET /v1/holds/{hold_id}" => Spec {
            query: query::<OneHoldQuery>(),
            ok: vec![(200, "The hold.", "application/json", hold.clone())],
            codes: &[HoldNotFound, HoldAmbiguous],
            ..Spec::default()
        },
        "POST /v1/payouts/{payout_id}/release" | "POST /v1/payouts/{payout_id}/cancel" => Spec {
            body: json_body::<ActionBody>(),
            ok: vec![(200, "The hold, now closed.", "application/json", hold.clone())],
            codes: &[
                MissingField,
                EventIdConflict,
                StorageUnavailable,
                HoldNotFound,
                HoldNotOpen,
                HoldAmbiguous,
            ],
            ..Spec::default()
        },
        "POST /v1/accounts/{account_id}/clear" => Spec {
            body: json_body::<ActionBody>(),
            ok: ok_json(
                "The account cleared and the holds released.",
                object(&["cleared", "released"]),
            ),
            codes: &[
                MissingField,
                EventIdConflict,
                StorageUnavailable,
                AccountNotFound,
                AccountNotAtRisk,
            ],
            ..Spec::default()
        },
        "GET /v1/campaigns" => Spec {
            query: query::<CampaignQuery>(),
            ok: ok_json(
                "Campaigns.",
                json!({"type": "object", "required": ["campaigns"], "properties": {
                    "campaigns": {"type": "array", "items": {"$ref": "#/components/schemas/CampaignSummary"}},
                }}),
            ),
            codes: &[InvalidField],
            ..Spec::default()
        },
        "GET /v1/campaigns/{campaign_id}" => Spec {
            ok: ok_json(
                "The campaign, with the holds of its accounts.",
                object(&["id", "status", "accounts", "destinations", "holds"]),
            ),
            codes: &[CampaignNotFound],
            ..Spec::default()
        },
        "GET /v1/campaigns/{campaign_id}/evidence" => Spec {
            ok: vec![(
                200,
                "The signed evidence pack (docs/evidence.md).",
                "application/x-tar",
                schema(json!({"type": "string", "contentMediaType": "application/x-tar"})),
            )],
            codes: &[CampaignNotFound, StorageUnavailable],
            ..Spec::default()
        },
        "POST /v1/campaigns/{campaign_id}/confirm" | "POST /v1/campaigns/{campaign_id}/dismiss" => {
            Spec {
                body: json_body::<ActionBody>(),
                ok: vec![(
                    200,
                    "The campaign's summary with its new status.",
                    "application/json",
                    reference("CampaignSummary"),
                )],
                codes: &[
                    MissingField,
                    EventIdConflict,
                    StorageUnavailable,
                    CampaignNotFound,
                    CampaignUnchanged,
                ],
                ..Spec::default()
            }
        }
        "GET /v1/cases" => Spec {
            query: query::<CaseQuery>(),
            ok: ok_json(
                "Cases, newest first, and how many match.",
                json!({"type": "object", "required": ["cases", "total"], "properties": {
                    "cases": {"type": "array", "items": {"type": "object"}},
                    "total": {"type": "integer", "minimum": 0},
                }}),
            ),
            codes: &[InvalidField, StorageUnavailable],
            ..Spec::default()
        },
        "POST /v1/cases" => Spec {
            body: json_body::<CaseBody>(),
            ok: vec![(201, "The case opened.", "application/json", case.clone())],
            codes: &[
                MissingField,
                InvalidField,
                AccountNotFound,
                EventIdConflict,
                StorageUnavailable,
            ],
            ..Spec::default()
        },
        "GET /v1/cases/{case_id}/evidence" => Spec {
            ok: vec![(
                200,
                "The signed evidence pack of the case's accounts (docs/evidence.md).",
                "application/x-tar",
                schema(json!({"type": "string", "contentMediaType": "application/x-tar"})),
            )],
            codes: &[CaseNotFound, StorageUnavailable],
            ..Spec::default()
        },
        "POST /v1/tokens/match" => Spec {
            body: json_body::<crate::tokens::MatchBody>(),
            ok: ok_json(
                "Per destination sent, by its index: its token and the accounts that set it.",
                json!({"type": "object", "required": ["destinations", "matched", "accounts_scanned", "cut"],
                    "properties": {
                        "destinations": {"type": "array", "items": {
                            "type": "object",
                            "required": ["index", "institution_id", "destination_token", "matched", "accounts"],
                            "properties": {
                                "index": {"type": "integer", "minimum": 0},
                                "institution_id": {"type": "string"},
                                "destination_token": {"type": "string"},
                                "matched": {"type": "boolean"},
                                "accounts": {"type": "array", "items": {"type": "string"}},
                            },
                        }},
                        "matched": {"type": "integer", "minimum": 0},
                        "accounts_scanned": {"type": "integer", "minimum": 0},
                        "cut": {"type": "boolean"},
                    }}),
            ),
            codes: &[InvalidJson, InvalidField, BatchTooLarge, StorageUnavailable],
            ..Spec::default()
        },
        "GET /v1/cases/{case_id}" => Spec {
            ok: vec![(200, "The case.", "application/json", case.clone())],
            codes: &[CaseNotFound, StorageUnavailable],
            ..Spec::default()
        },
        "POST /v1/cases/{case_id}/notes"
        | "POST /v1/cases/{case_id}/assign"
        | "POST /v1/cases/{case_id}/status"
        | "POST /v1/cases/{case_id}/accounts"
        | "POST /v1/cases/{case_id}/merge" => case_action(case_codes),
        "POST /v1/cases/{case_id}/resolve" => Spec {
            body: json_body::<CaseBody>(),
            ok: ok_json(
                "The case resolved and the feedback it gave.",
                json!({"type": "object", "required": ["case", "feedback"], "properties": {
                    "case": {"$ref": "#/components/schemas/Case"},
                    "feedback": {"type": "object"},
                }}),
            ),
            codes: case_codes,
            ..Spec::default()
        },
        "POST /v205/events" => Spec {
            body: Some(
                RequestBodyBuilder::new()
                    .content("application/json", Content::new(Some(schema(json!({
                        "type": "object",
                        "required": ["$type"],
                        "properties": {
                            "$type": {"type": "string", "description": "Sift's reserved event type (`$create_order`, ...) or a custom one."},
                            "$api_key": {"type": "string"},
                            "$user_id": {"type": "string"},
                        },
                    })))))
                    .required(Some(utoipa::openapi::Required::True))
                    .build(),
            ),
            ok: ok_json("Sift's answer (`status` 0), with the score when asked.", sift_answer.clone()),
            ..Spec::default()
        },
        "GET /v205/score/{user_id}"
        | "GET /v205/users/{user_id}/score"
        | "POST /v205/users/{user_id}/score" => Spec {
            ok: ok_json(
                "Sift's score answer.",
                json!({"type": "object", "required": ["status", "error_message", "scores"], "properties": {
                    "status": {"type": "integer", "const": 0},
                    "error_message": {"type": "string"},
                    "scores": {"type": "object"},
                }}),
            ),
            sift: &[(404, "Sift's status 54: the user has no scoreable events.")],
            ..Spec::default()
        },
        "POST /v205/users/{user_id}/labels" => Spec {
            body: Some(
                RequestBodyBuilder::new()
                    .content("application/json", Content::new(Some(schema(json!({
                        "type": "object",
                        "properties": {
                            "$is_fraud": {"type": "boolean"},
                            "$api_key": {"type": "string"},
                        },
                    })))))
                    .required(Some(utoipa::openapi::Required::True))
                    .build(),
            ),
            ok: ok_json("Sift's answer.", sift_answer.clone()),
            ..Spec::default()
        },
        "DELETE /v205/users/{user_id}/labels" => Spec {
            ok: vec![(204, "The label is removed.", "", schema(object(&[])))],
            ..Spec::default()
        },
        "GET /v3/accounts/{account_id}/decisions" => Spec {
            ok: ok_json(
                "Sift's decisions.",
                object(&["data", "has_more", "total_results"]),
            ),
            ..Spec::default()
        },
        "GET /v3/accounts/{account_id}/users/{user_id}/decisions" => Spec {
            ok: ok_json("The user's latest applied decisions.", object(&["decisions"])),
            ..Spec::default()
        },
        "POST /v3/accounts/{account_id}/users/{user_id}/decisions" => Spec {
            body: Some(
                RequestBodyBuilder::new()
                    .content("application/json", Content::new(Some(schema(json!({
                        "type": "object",
                        "required": ["decision_id", "source"],
                        "properties": {
                            "decision_id": {"type": "string"},
                            "source": {"type": "string"},
                            "analyst": {"type": "string"},
                            "description": {"type": "string"},
                        },
                    })))))
                    .required(Some(utoipa::openapi::Required::True))
                    .build(),
            ),
            ok: ok_json("The decision applied.", object(&[])),
            ..Spec::default()
        },
        "GET /livez" | "GET /healthz" => Spec {
            ok: vec![(200, "The process and the engine thread answer.", "application/json", reference("Health"))],
            codes: &[StorageUnavailable],
            ..Spec::default()
        },
        "GET /readyz" => Spec {
            ok: vec![(200, "The engine can commit.", "application/json", reference("Health"))],
            codes: &[NotReady],
            ..Spec::default()
        },
        "GET /metrics" => Spec {
            ok: vec![(200, "Prometheus text.", "text/plain", schema(json!({"type": "string"})))],
            ..Spec::default()
        },
        "GET /openapi.json" => Spec {
            ok: ok_json("This description.", object(&["openapi", "info", "paths"])),
            ..Spec::default()
        },
        _ => return None,
    };
    Some(spec)
}

/// A rule set: TOML, or the same as JSON (with an `override` when it
/// removes what the live set protects).
fn rules_body() -> RequestBody {
    RequestBodyBuilder::new()
        .content(
            "application/toml",
            Content::new(Some(schema(json!({"type": "string"})))),
        )
        .content(
            "application/json",
            Content::new(Some(schema(
                json!({"type": "object", "required": ["rules"]}),
            ))),
        )
        .required(Some(utoipa::openapi::Required::True))
        .build()
}

/// The codes every route of its kind may return, besides its own.
fn common_codes(route: &Route, spec: &Spec) -> Vec<Code> {
    use Code::*;
    // The checks of every request (`edge.rs`) and the accept loop's.
    let mut codes = vec![
        HostNotAllowed,
        OriginNotAllowed,
        UriTooLong,
        Internal,
        Overloaded,
        ShuttingDown,
    ];
    if matches!(
        route.access,
        Access::Bearer(_) | Access::BearerIfMetricsKey(_)
    ) {
        codes.extend([
            MissingApiKey,
            InvalidAuthorizationHeader,
            InvalidApiKey,
            InsufficientScope,
        ]);
    }
    if let Access::Sift(_) = route.access {
        codes.extend([InvalidApiKey, InsufficientScope]);
    }
    if route.path.contains('{') {
        codes.push(InvalidPath);
    }
    if !spec.query.is_empty() {
        codes.push(InvalidQuery);
    }
    if route.method != "GET" {
        codes.extend([
            InvalidBody,
            InvalidJson,
            PayloadTooLarge,
            BodyTimeout,
            UnsupportedMediaType,
        ]);
    }
    codes
}

/// The HTTP status of `code` on a route of `family`: Sift answers a bad key
/// with 400 (v205) or 401 (v3), as Sift does.
fn status_of(code: Code, family: Family) -> u16 {
    match (family, code) {
        (Family::Sift, Code::InvalidApiKey) => 400,
        (Family::SiftV3, Code::InvalidApiKey) => 401,
        _ => code.status().as_u16(),
    }
}

fn operation(route: &Route) -> Operation {
    let family = Family::of(route);
    let spec = spec(route.name).unwrap_or_default();
    let mut builder = OperationBuilder::new()
        .operation_id(Some(operation_id(route)))
        .summary(Some(first_sentence(route.what)))
        .description(Some(route.what))
        .tag(tag(route));

    let mut parameters: Vec<Parameter> = path_parameters(route.path)
        .map(|name| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(utoipa::openapi::Required::True)
                .schema(Some(schema(json!({"type": "string", "minLength": 1}))))
                .build()
        })
        .collect();
    parameters.extend(spec.query.iter().cloned());
    if let Access::Sift(_) = route.access {
        parameters.push(
            ParameterBuilder::new()
                .name("api_key")
                .parameter_in(ParameterIn::Query)
                .description(Some("The key, as older Sift clients send it."))
                .schema(Some(schema(json!({"type": "string"}))))
                .build(),
        );
    }
    builder = builder.parameters(Some(parameters));
    if let Some(body) = spec.body.clone() {
        builder = builder.request_body(Some(body));
    }

    let mut responses: BTreeMap<u16, Response> = BTreeMap::new();
    for (status, description, content_type, body) in &spec.ok {
        let response = responses
            .remove(status)
            .map(ResponseBuilder::from)
            .unwrap_or_else(|| ResponseBuilder::new().description(*description));
        let response = if content_type.is_empty() {
            response
        } else {
            response.content(*content_type, Content::new(Some(body.clone())))
        };
        responses.insert(*status, response.build());
    }
    let mut by_status: BTreeMap<u16, Vec<Code>> = BTreeMap::new();
    for code in common_codes(route, &spec)
        .into_iter()
        .chain(spec.codes.iter().copied())
    {
        let codes = by_status.entry(status_of(code, family)).or_default();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    let mut sift_descriptions: BTreeMap<u16, &str> = BTreeMap::new();
    if family != Family::Native {
        // Sift's own refusals of a request (fields, values) are 400s.
        by_status.entry(400).or_default();
        for (status, description) in spec.sift {
            by_status.entry(*status).or_default();
            sift_descriptions.insert(*status, description);
        }
    }
    for (status, codes) in by_status {
        let mut description = String::new();
        for code in &codes {
            if !description.is_empty() {
                description.push_str(", ");
            }
            description.push('`');
            description.push_str(code.as_str());
            description.push('`');
        }
        if let Some(sift) = sift_descriptions.get(&status) {
            if !description.is_empty() {
                description.push_str("; ");
            }
            description.push_str(sift);
        }
        if description.is_empty() {
            description.push_str("The request is refused.");
        }
        responses.insert(
            status,
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(reference(family.error_schema()))),
                )
                .build(),
        );
    }
    let mut built = utoipa::openapi::ResponsesBuilder::new();
    for (status, response) in responses {
        built = built.response(status.to_string(), response);
    }
    builder = builder.responses(built.build());

    builder = match route.access {
        Access::Open => builder.securities(Some(Vec::<SecurityRequirement>::new())),
        Access::Bearer(scope) => {
            builder.security(SecurityRequirement::new("bearer", [scope.as_str()]))
        }
        Access::BearerIfMetricsKey(scope) => builder
            .security(SecurityRequirement::new("bearer", [scope.as_str()]))
            .security(SecurityRequirement::default()),
        Access::Sift(scope) => builder
            .security(SecurityRequirement::new("sift_basic", [scope.as_str()]))
            .security(SecurityRequirement::new("sift_query_key", [scope.as_str()])),
    };
    builder.build()
}

fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

/// `GET /v1/events/{event_id}` → `get_v1_events_event_id`.
fn operation_id(route: &Route) -> String {
    let mut id = route.method.to_ascii_lowercase();
    for part in route.path.split(|c: char| !c.is_ascii_alphanumeric()) {
        if !part.is_empty() {
            id.push('_');
            id.push_str(part);
        }
    }
    id
}

fn first_sentence(what: &str) -> String {
    match what.find(". ") {
        Some(end) => what[..=end].to_string(),
        None => what.to_string(),
    }
}

fn tag(route: &Route) -> &'static str {
    let p = route.path;
    if p.starts_with("/v205/") || p.starts_with("/v3/") {
        "sift"
    } else if p.starts_with("/v1/events")
        || p.starts_with("/v1/accounts/{account_id}") && route.method == "GET"
    {
        "events"
    } else if p.starts_with("/v1/rules") || p.starts_with("/v1/lists") {
        "rules"
    } else if p.starts_with("/v1/webhooks") {
        "webhooks"
    } else if p.starts_with("/v1/cases") {
        "cases"
    } else if p.ends_with("/evidence") {
        "evidence"
    } else if p.starts_with("/v1/") {
        "analyst"
    } else {
        "operations"
    }
}

/// The whole description.
pub fn document() -> OpenApi {
    let mut paths: BTreeMap<&str, PathItem> = BTreeMap::new();
    for route in ROUTES {
        let method = match route.method {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            "PUT" => HttpMethod::Put,
            "PATCH" => HttpMethod::Patch,
            "DELETE" => HttpMethod::Delete,
            other => unreachable!("the route table has no {other} route"),
        };
        let item = PathItem::new(method, operation(route));
        match paths.remove(route.path) {
            Some(mut existing) => {
                existing.merge_operations(item);
                paths.insert(route.path, existing);
            }
            None => {
                paths.insert(route.path, item);
            }
        }
    }
    let mut all_paths = Paths::new();
    for (path, item) in paths {
        all_paths.paths.insert(path.to_string(), item);
    }

    let components = ComponentsBuilder::new()
        .schema_from::<crate::error::WireError>()
        .schema_from::<crate::error::ErrorType>()
        .schema("Code", code_schema())
        .schema_from::<crate::sift::SiftWireError>()
        .schema_from::<crate::sift::V3WireError>()
        .schema_from::<crate::health::Health>()
        .schema_from::<crate::analyst::ActionBody>()
        .schema_from::<crate::cases::CaseBody>()
        .schema_from::<crate::tokens::MatchBody>()
        .schema_from::<crate::tokens::Written>()
        .schema_from::<crate::rules::ReplaceEntries>()
        .schema_from::<crate::rules::EditEntries>()
        .schema("Event", event_schema())
        .schema("Action", action_schema())
        .schema(
            "Reason",
            schema(json!({
                "type": "object",
                "description": "A rule that fired, with the values it read (`saw`).",
                "required": ["code", "action", "score", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "action": {"$ref": "#/components/schemas/Action"},
                    "score": {"type": "integer", "minimum": 0},
                    "message": {"type": "string"},
                    "saw": {"type": "object"},
                    "owner_confirms": {"type": "boolean"},
                },
            })),
        )
        .schema(
            "EventAnswer",
            schema(json!({
                "type": "object",
                "required": ["event_id", "action", "score", "reasons", "policy", "rules_version"],
                "properties": {
                    "event_id": {"type": "string"},
                    "action": {"$ref": "#/components/schemas/Action"},
                    "score": {"type": "integer", "minimum": 0},
                    "reasons": {"type": "array", "items": {"$ref": "#/components/schemas/Reason"}},
                    "shadow": {"type": "array", "items": {"$ref": "#/components/schemas/Reason"}},
                    "policy": {"type": "string"},
                    "rules_version": {"type": "integer", "minimum": 0},
                    "features": {"type": "object"},
                    "duplicate": {"type": "boolean", "const": true},
                },
            })),
        )
        .schema("Case", case_schema())
        .schema(
            "Hold",
            schema(json!({
                "type": "object",
                "description": "A payout or loan disbursement held (docs/holds.md).",
                "required": [
                    "hold_id", "account_id", "kind", "event_id", "amount", "currency", "status",
                    "reasons", "score", "held_at", "expires_at",
                ],
                "properties": {
                    "hold_id": {"type": "string"},
                    "account_id": {"type": "string"},
                    "kind": {"type": "string"},
                    "event_id": {"type": "string"},
                    "amount": {"type": "integer", "minimum": 0},
                    "currency": {"type": "string"},
                    "status": {"type": "string"},
                    "reasons": {"type": "array", "items": {"type": "string"}},
                    "score": {"type": "integer", "minimum": 0},
                    "held_at": {"type": "string"},
                    "expires_at": {"type": "string"},
                },
            })),
        )
        .schema(
            "CampaignSummary",
            schema(json!({
                "type": "object",
                "required": [
                    "id", "status", "accounts", "destinations", "institutions", "money",
                    "detected_at", "last_activity",
                ],
                "properties": {
                    "id": {"type": "string"},
                    "status": {"type": "string"},
                    "accounts": {"type": "integer", "minimum": 0},
                    "destinations": {"type": "integer", "minimum": 0},
                    "institutions": {"type": "array", "items": {"type": "string"}},
                    "money": {"type": "object"},
                    "detected_at": {"type": "string"},
                    "last_activity": {"type": "string"},
                    "merged": {"type": "array", "items": {"type": "string"}},
                },
            })),
        )
        .security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .security_scheme(
            "sift_basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        )
        .security_scheme(
            "sift_query_key",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("api_key"))),
        )
        .build();

    let tags = [
        (
            "events",
            "Events in, decisions out; stored events and accounts.",
        ),
        ("rules", "Rule sets and named lists."),
        ("analyst", "Holds, accounts at risk and campaigns."),
        ("cases", "Cases worked by analysts."),
        ("evidence", "Signed evidence packs."),
        ("webhooks", "Webhook delivery."),
        (
            "sift",
            "Sift-compatible routes (docs/sift.md), answered in Sift's shapes.",
        ),
        ("operations", "Probes, metrics and this description."),
    ]
    .map(|(name, description)| {
        TagBuilder::new()
            .name(name)
            .description(Some(description))
            .build()
    });

    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Custos")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The HTTP API of `custos serve`. Errors on `/v1` share one body (`Error`, \
                     codes in docs/errors.md); scopes per route in docs/keys.md.",
                ))
                .build(),
        )
        .paths(all_paths)
        .components(Some(components))
        .tags(Some(tags.to_vec()))
        .build()
}

/// An event: the fields of every event (docs/events.md), the types from
/// the core's own list. The fields of each type are in docs/events.md.
fn event_schema() -> RefOr<Schema> {
    let types: Vec<&str> = custos_core::EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    schema(json!({
        "type": "object",
        "required": ["event_id", "type", "account_id", "time"],
        "description": "An event (docs/events.md); the other fields depend on `type`.",
        "properties": {
            "event_id": {"type": "string", "minLength": 1, "maxLength": 256},
            "type": {"type": "string", "enum": types},
            "account_id": {"type": "string", "minLength": 1, "maxLength": 256},
            "time": {"type": "string", "format": "date-time"},
            "session_id": {"type": "string"},
            "ip": {"type": "string"},
            "user_agent": {"type": "string", "maxLength": 2048},
            "device_id": {"type": "string"},
            "attributes": {"type": "object"},
        },
        "examples": [{
            "event_id": "evt-example-1",
            "type": "login",
            "account_id": "acct-example",
            "time": "2026-01-05T09:30:00Z",
            "session_id": "sess-example",
            "ip": "203.0.113.7",
            "device_id": "dev-example",
        }],
    }))
}

/// A case as the core serializes it (`custos_core::cases::Case`), its
/// statuses and resolutions from the core's own names.
fn case_schema() -> RefOr<Schema> {
    use custos_core::cases::{CaseResolution, CaseStatus};
    let statuses = [
        CaseStatus::Open,
        CaseStatus::Investigating,
        CaseStatus::Resolved,
    ];
    for status in statuses {
        // Exhaustive on purpose: a new status does not compile until it is
        // listed above.
        match status {
            CaseStatus::Open | CaseStatus::Investigating | CaseStatus::Resolved => {}
        }
    }
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let entry = json!({
        "type": "object",
        "required": ["at", "by", "what", "detail", "event_id"],
        "properties": {
            "at": {"type": "integer", "description": "Seconds since the Unix epoch."},
            "by": {"type": "string"},
            "what": {"type": "string"},
            "detail": {"type": "string"},
            "event_id": {"type": "string"},
        },
    });
    let strings = json!({"type": "array", "items": {"type": "string"}});
    schema(json!({
        "type": "object",
        "required": [
            "id", "title", "status", "opened_at", "opened_by", "updated_at", "accounts",
            "holds", "linked", "notes", "history",
        ],
        "properties": {
            "id": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "string", "enum": statuses},
            "resolution": {"type": "string", "enum": CaseResolution::WIRE_NAMES},
            "assignee": {"type": "string"},
            "opened_at": {"type": "integer"},
            "opened_by": {"type": "string"},
            "updated_at": {"type": "integer"},
            "accounts": strings,
            "holds": strings,
            "campaign": {"type": "string"},
            "linked": strings,
            "merged_into": {"type": "string"},
            "notes": {"type": "array", "items": entry},
            "history": {"type": "array", "items": entry},
        },
    }))
}

/// `Code` as a string enumeration of every wire code, from the code table.
fn code_schema() -> RefOr<Schema> {
    let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    schema(json!({"type": "string", "enum": codes, "description": "docs/errors.md"}))
}

/// The engine's actions, from the core's own list.
fn action_schema() -> RefOr<Schema> {
    let actions: Vec<&str> = custos_core::Action::ALL
        .iter()
        .map(|a| a.as_str())
        .collect();
    schema(json!({"type": "string", "enum": actions}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described() {
        for route in ROUTES {
            let spec = spec(route.name)
                .unwrap_or_else(|| panic!("{} has no spec in openapi.rs", route.name));
            assert!(!spec.ok.is_empty(), "{} has no success answer", route.name);
        }
    }

    /// A schema referenced but never registered (a nested `ToSchema` type
    /// left out of the components) would make every client generator fail.
    #[test]
    fn every_reference_resolves() {
        fn walk(
            value: &Value,
            schemas: &serde_json::Map<String, Value>,
            missing: &mut Vec<String>,
        ) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(reference)) = map.get("$ref") {
                        let name = reference.trim_start_matches("#/components/schemas/");
                        if name == reference || !schemas.contains_key(name) {
                            missing.push(reference.clone());
                        }
                    }
                    map.values().for_each(|v| walk(v, schemas, missing));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, schemas, missing)),
                _ => {}
            }
        }
        let doc: Value = serde_json::from_str(&json()).expect("the description is JSON");
        let schemas = doc["components"]["schemas"]
            .as_object()
            .expect("the description has component schemas");
        let mut missing = Vec::new();
        walk(&doc, schemas, &mut missing);
        assert!(missing.is_empty(), "unresolved references: {missing:?}");
    }

    /// `docs/openapi.json` is [`json`]'s output. When it differs this
    /// fails; `UPDATE_DOCS=1 cargo test -p custos-server openapi` rewrites it.
    #[test]
    fn the_committed_description_is_generated_from_the_code() {
        let doc = crate::generated_docs::read("openapi.json");
        crate::generated_docs::check("openapi.json", "openapi::document", ("", &doc, ""), &json());
    }
}
