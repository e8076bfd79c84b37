//! Evidence packs over HTTP: `GET /v1/campaigns/{id}/evidence` and
//! `GET /v1/cases/{id}/evidence`, a campaign's or a case's signed pack,
//! built by `custos-evidence` from the engine's campaign or case and the
//! stored log (the same bytes `custos evidence export` writes offline).
//! The console's download buttons stream the same packs through
//! [`campaign_scope`], [`case_scope`] and [`build_pack`].
//!
//! One scope for both entry points, [`EXPORT_SCOPE`] (`evidence:export`,
//! which leads and admins hold; a key needs it or `admin`): a pack holds
//! the accounts' events and the holder names of the destinations they paid
//! to. The route table and the console's role check both read it. Every
//! export is logged with the key's (or the person's) name. The pack is
//! built into a temporary file on a blocking thread (one pass over the
//! accounts' records), then streamed from it in 64 KiB chunks, so memory
//! does not grow with the pack; the signing key is the data directory's,
//! created there on first use.

use axum::Extension;
use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use custos_config::Scope;
use custos_core::campaigns::Campaign;
use custos_core::cases::Case;
use custos_evidence::PackScope;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Code};

/// The scope an evidence export needs, by key or in the console.
pub const EXPORT_SCOPE: Scope = Scope::EvidenceExport;

pub async fn get_campaign_evidence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(campaign_id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let scope = campaign_scope(&state, &campaign_id).await?;
    let pack = build_pack(&state, scope, &caller).await?;
    Ok(pack_response(&campaign_id, pack))
}

pub async fn get_case_evidence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(case_id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let scope = case_scope(&state, &case_id).await?;
    let pack = build_pack(&state, scope, &caller).await?;
    Ok(pack_response(&case_id, pack))
}

/// The scope of campaign `campaign_id`; `campaign_not_found` when there is
/// none.
pub(crate) async fn campaign_scope(
    state: &AppState,
    campaign_id: &str,
) -> Result<PackScope, ApiError> {
    let lookup = campaign_id.to_string();
    let found = state
        .runtime
        .read(move |engine| engine.campaigns().campaign(&lookup).cloned())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    if found.is_null() {
        return Err(ApiError::new(
            Code::CampaignNotFound,
            format!("no campaign with id {campaign_id:?}"),
        ));
    }
    let campaign: Campaign = serde_json::from_value(found)
        .map_err(|e| ApiError::new(Code::Internal, format!("reading the campaign: {e}")))?;
    Ok(PackScope::campaign(&campaign))
}

/// The scope of case `case_id`; `case_not_found` when there is none.
pub(crate) async fn case_scope(state: &AppState, case_id: &str) -> Result<PackScope, ApiError> {
    let lookup = case_id.to_string();
    let found = state
        .runtime
        .read(move |engine| {
            engine
                .cases()
                .get(&lookup)
                .map(|case| (case.clone(), engine.case_trouble_since(case)))
        })
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let found: Option<(Case, Option<i64>)> = serde_json::from_value(found)
        .map_err(|e| ApiError::new(Code::Internal, format!("reading the case: {e}")))?;
    match found {
        Some((case, trouble_since)) => Ok(PackScope::case(&case, trouble_since)),
        None => Err(crate::cases::case_not_found(case_id)),
    }
}

/// Builds the pack of `scope` for `caller` and logs the export.
pub(crate) async fn build_pack(
    state: &AppState,
    scope: PackScope,
    caller: &Caller,
) -> Result<BuiltPack, ApiError> {
    let Some(data_dir) = state.runtime.data_dir().map(std::path::Path::to_path_buf) else {
        return Err(ApiError::new(
            Code::Internal,
            "this server has no data directory for the evidence signing key",
        ));
    };
    let runtime = state.runtime.clone();
    let (kind, id) = (scope.kind, scope.id.clone());
    let built = tokio::task::spawn_blocking(move || -> Result<BuiltPack, String> {
        let key =
            custos_evidence::load_or_create_signing_key(&data_dir).map_err(|e| e.to_string())?;
        let options = custos_evidence::ExportOptions::now(env!("CARGO_PKG_VERSION"));
        // An unnamed temporary file: gone when the last handle closes,
        // whether the download finishes or the client leaves.
        let mut file = tempfile::tempfile().map_err(|e| format!("temporary file: {e}"))?;
        {
            let mut out = std::io::BufWriter::new(&mut file);
            custos_evidence::export(
                &scope,
                runtime.store().as_ref(),
                runtime.parser(),
                &key,
                &options,
                &mut out,
            )
            .map_err(|e| e.to_string())?;
            std::io::Write::flush(&mut out).map_err(|e| e.to_string())?;
        }
        use std::io::Seek as _;
        let len = file.stream_position().map_err(|e| e.to_string())?;
        file.rewind().map_err(|e| e.to_string())?;
        Ok(BuiltPack { file, len })
    })
    .await
    .map_err(|e| ApiError::new(Code::Internal, format!("building the pack: {e}")))?
    .map_err(|e| {
        tracing::error!(scope = kind, id = %id, error = %e, "evidence export failed");
        ApiError::unavailable(format!("building the pack: {e}"))
    })?;
    tracing::info!(
        scope = kind,
        id = %id,
        key = %caller.key_name,
        bytes = built.len,
        "evidence pack exported"
    );
    Ok(built)
}

/// A pack written to a temporary file, rewound, and its length in bytes.
pub(crate) struct BuiltPack {
    file: std::fs::File,
    pub(crate) len: u64,
}

/// Bytes read from the pack's file per chunk of the response.
const CHUNK_BYTES: usize = 64 * 1024;

/// A response body fed, chunk by chunk, by a blocking thread reading the
/// pack's file: a pack of any size leaves without being held in memory
/// (at most the channel's few chunks are).
struct FileChunks {
    chunks: tokio::sync::mpsc::Receiver<std::io::Result<axum::body::Bytes>>,
}

impl http_body::Body for FileChunks {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|read| read.map(http_body::Frame::data)))
    }
}

fn stream_file(mut file: std::fs::File) -> axum::body::Body {
    let (send, chunks) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        loop {
            let mut buffer = vec![0; CHUNK_BYTES];
            match file.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    buffer.truncate(n);
                    // The client left: stop reading.
                    if send.blocking_send(Ok(buffer.into())).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = send.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    axum::body::Body::new(FileChunks { chunks })
}

/// A pack as a download named after `id`, streamed from its file.
pub(crate) fn pack_response(id: &str, pack: BuiltPack) -> Response {
    let filename = format!(
        "attachment; filename=\"{}-evidence.tar\"",
        id.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-',
            "_"
        )
    );
    (
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (header::CONTENT_DISPOSITION, filename),
            (header::CONTENT_LENGTH, pack.len.to_string()),
        ],
        stream_file(pack.file),
    )
        .into_response()
}
