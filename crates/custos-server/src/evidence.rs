//! `GET /v1/campaigns/{id}/evidence`: a campaign's signed evidence pack,
//! built by `custos-evidence` from the engine's campaign and the stored log
//! (the same bytes `custos evidence export` writes offline).
//!
//! Admin keys only: a pack holds the members' events and the holder names
//! of the destinations they paid to. Every export is logged with the key's
//! name. The pack is built into a temporary file on a blocking thread (one
//! scan of the log), then sent; the signing key is the data directory's,
//! created there on first use.

use axum::Extension;
use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use custos_core::campaigns::Campaign;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Code};

pub async fn get_campaign_evidence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(campaign_id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let lookup = campaign_id.clone();
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
    let Some(data_dir) = state.runtime.data_dir().map(std::path::Path::to_path_buf) else {
        return Err(ApiError::new(
            Code::Internal,
            "this server has no data directory for the evidence signing key",
        ));
    };
    let runtime = state.runtime.clone();
    let built = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let key =
            custos_evidence::load_or_create_signing_key(&data_dir).map_err(|e| e.to_string())?;
        let options = custos_evidence::ExportOptions::now(env!("CARGO_PKG_VERSION"));
        let mut file = tempfile::tempfile().map_err(|e| format!("temporary file: {e}"))?;
        {
            let mut out = std::io::BufWriter::new(&mut file);
            custos_evidence::export_campaign(
                &campaign,
                runtime.store().as_ref(),
                runtime.parser(),
                &key,
                &options,
                &mut out,
            )
            .map_err(|e| e.to_string())?;
            std::io::Write::flush(&mut out).map_err(|e| e.to_string())?;
        }
        use std::io::{Read as _, Seek as _};
        file.rewind().map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        Ok(bytes)
    })
    .await
    .map_err(|e| ApiError::new(Code::Internal, format!("building the pack: {e}")))?
    .map_err(|e| {
        tracing::error!(campaign = %campaign_id, error = %e, "evidence export failed");
        ApiError::unavailable(format!("building the pack: {e}"))
    })?;
    tracing::info!(
        campaign = %campaign_id,
        key = %caller.key_name,
        bytes = built.len(),
        "evidence pack exported"
    );
    let filename = format!(
        "attachment; filename=\"{}-evidence.tar\"",
        campaign_id.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-',
            "_"
        )
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        built,
    )
        .into_response())
}
