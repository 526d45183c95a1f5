//! The downloads role's routes (issue 13): `GET /download/` lists the
//! client builds this node serves with their SHA-256, and the files that
//! install one pre-configured for this cluster (see
//! [`crate::downloads`]). Every route takes `?org=ORG` for an
//! organization's brand. Public (a client has no token before it is
//! installed) and outside `/api/v1` (no JSON API), so not in the OpenAPI
//! document; mounted behind the `downloads` role.
//!
//! | path | body |
//! |---|---|
//! | `GET /download/` | JSON [`DownloadIndex`] |
//! | `GET /download/install.sh` | the install script |
//! | `GET /download/client.toml` | the client configuration |
//! | `GET /download/ca.pem` | the cluster's CA certificate (404 without one) |
//! | `GET /download/{platform}/cairn` | a client build |

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cairn_consensus::event::Role;
use cairn_proto::download::{Branding, ClientBuild, DownloadFile, DownloadIndex};
use cairn_proto::route::segment;
use serde::Deserialize;

use super::{ApiError, HttpState};
use crate::cluster::Cluster;
use crate::downloads::{self, Build, Downloads, Refusal, ScriptBuild};

/// The routes of the downloads role.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/download", get(index))
        .route("/download/", get(index))
        .route("/download/install.sh", get(install_script))
        .route("/download/client.toml", get(client_config))
        .route("/download/ca.pem", get(ca))
        .route("/download/{platform}/cairn", get(binary))
}

/// `?org=ORG`: whose brand the download carries.
#[derive(Debug, Default, Deserialize)]
pub struct Brand {
    /// An organization's name; absent: the cluster's brand.
    pub org: Option<String>,
}

impl Brand {
    /// The query suffix that keeps the organization in further links.
    fn suffix(&self) -> String {
        self.org
            .as_deref()
            .map(|o| format!("?org={}", segment(o)))
            .unwrap_or_default()
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError::NotFound(r.to_string())
    }
}

/// What every download of one request is made of.
struct Offer {
    branding: Branding,
    servers: Vec<String>,
    config: String,
    builds: Vec<Build>,
}

/// The brand, servers and client configuration of a request.
fn configured(
    app: &Cluster,
    dl: &Downloads,
    brand: &Brand,
) -> Result<(Branding, Vec<String>, String), ApiError> {
    let branding = app
        .state
        .read(|s| downloads::branding_for(s, &dl.branding, brand.org.as_deref()))?;
    let servers: Vec<String> = app
        .serving(Role::Auth)
        .into_iter()
        .map(|(_, url)| url)
        .collect();
    let config = downloads::client_config(&servers, dl.ca_pem.is_some(), &branding)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((branding, servers, config))
}

/// The builds on disk, listed (and hashed if new) on a blocking thread.
async fn builds(dl: &Arc<Downloads>) -> Result<Vec<Build>, ApiError> {
    let lister = dl.clone();
    tokio::task::spawn_blocking(move || lister.builds())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Everything a request's downloads are made of.
async fn offer(app: &Cluster, dl: &Arc<Downloads>, brand: &Brand) -> Result<Offer, ApiError> {
    let (branding, servers, config) = configured(app, dl, brand)?;
    Ok(Offer {
        branding,
        servers,
        config,
        builds: builds(dl).await?,
    })
}

fn base(app: &Cluster) -> String {
    app.identity.advertise.trim_end_matches('/').to_string()
}

fn script_of(app: &Cluster, dl: &Downloads, offer: &Offer) -> String {
    let base = base(app);
    let builds: Vec<ScriptBuild> = offer
        .builds
        .iter()
        .map(|b| ScriptBuild {
            platform: b.platform.clone(),
            url: format!("{base}/download/{}/cairn", b.platform),
            sha256: b.sha256.clone(),
        })
        .collect();
    downloads::install_script(
        &offer.branding,
        &builds,
        &offer.config,
        dl.ca_pem.as_deref(),
    )
}

fn file(url: String, bytes: &[u8]) -> DownloadFile {
    DownloadFile {
        url,
        size: bytes.len() as u64,
        sha256: downloads::sha256_hex(bytes),
    }
}

async fn index(
    State(app): State<Arc<Cluster>>,
    State(dl): State<Arc<Downloads>>,
    Query(brand): Query<Brand>,
) -> Result<Json<DownloadIndex>, ApiError> {
    let offer = offer(&app, &dl, &brand).await?;
    let base = base(&app);
    let q = brand.suffix();
    let script = script_of(&app, &dl, &offer);
    Ok(Json(DownloadIndex {
        builds: offer
            .builds
            .iter()
            .map(|b| ClientBuild {
                platform: b.platform.clone(),
                file: DownloadFile {
                    url: format!("{base}/download/{}/cairn", b.platform),
                    size: b.size,
                    sha256: b.sha256.clone(),
                },
            })
            .collect(),
        install_script: file(format!("{base}/download/install.sh{q}"), script.as_bytes()),
        client_config: file(
            format!("{base}/download/client.toml{q}"),
            offer.config.as_bytes(),
        ),
        ca: dl
            .ca_pem
            .as_deref()
            .map(|pem| file(format!("{base}/download/ca.pem"), pem.as_bytes())),
        branding: offer.branding,
        servers: offer.servers,
    }))
}

fn text(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn install_script(
    State(app): State<Arc<Cluster>>,
    State(dl): State<Arc<Downloads>>,
    Query(brand): Query<Brand>,
) -> Result<Response, ApiError> {
    let offer = offer(&app, &dl, &brand).await?;
    Ok(text("text/x-shellscript", script_of(&app, &dl, &offer)))
}

async fn client_config(
    State(app): State<Arc<Cluster>>,
    State(dl): State<Arc<Downloads>>,
    Query(brand): Query<Brand>,
) -> Result<Response, ApiError> {
    let (_, _, config) = configured(&app, &dl, &brand)?;
    Ok(text("application/toml", config))
}

async fn ca(State(dl): State<Arc<Downloads>>) -> Result<Response, ApiError> {
    match &dl.ca_pem {
        Some(pem) => Ok(text("application/x-pem-file", pem.clone())),
        None => Err(ApiError::NotFound(
            "this cluster's certificates chain to the public roots: no CA to download".into(),
        )),
    }
}

async fn binary(
    State(dl): State<Arc<Downloads>>,
    Path(platform): Path<String>,
) -> Result<Response, ApiError> {
    let build = builds(&dl)
        .await?
        .into_iter()
        .find(|b| b.platform == platform)
        .ok_or(Refusal::UnknownPlatform(platform))?;
    let file = std::fs::File::open(&build.path)
        .map_err(|e| ApiError::Internal(format!("{}: {e}", build.path.display())))?;
    // 1 MiB reads on a blocking thread each; the stream ends after the
    // first error (the client sees a short body, the checksum catches it).
    let stream = futures_util::stream::unfold(Some(file), |f| async move {
        let mut f = f?;
        let read = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut buf = vec![0u8; 1 << 20];
            let n = f.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((buf, f))
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        match read {
            Ok((buf, _)) if buf.is_empty() => None,
            Ok((buf, f)) => Some((Ok(axum::body::Bytes::from(buf)), Some(f))),
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, build.size.to_string()),
            (
                header::HeaderName::from_static("x-checksum-sha256"),
                build.sha256,
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
