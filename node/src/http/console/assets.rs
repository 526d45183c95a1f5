//! The console's static files, compiled into `cairnd` (nothing is loaded
//! from the internet): htmx and hash-wasm's argon2id (vendored from their
//! npm tarballs, licenses beside them in `assets/`), the console's own
//! script (in-browser key derivation) and style sheet.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

/// One vendored or own file: URL name, content type, bytes.
struct Asset {
    name: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file served under `/console/assets/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "htmx-2.0.11.min.js",
        mime: JS,
        bytes: include_bytes!("assets/htmx-2.0.11.min.js"),
    },
    Asset {
        name: "hash-wasm-argon2-4.13.0.umd.min.js",
        mime: JS,
        bytes: include_bytes!("assets/hash-wasm-argon2-4.13.0.umd.min.js"),
    },
    Asset {
        name: "console.js",
        mime: JS,
        bytes: include_bytes!("assets/console.js"),
    },
    Asset {
        name: "console.css",
        mime: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/console.css"),
    },
];

/// The URL of asset `name` (one of [`ASSETS`]).
pub fn url(name: &str) -> String {
    format!("/console/assets/{name}")
}

/// `GET /console/assets/{name}`: the file, or 404.
pub async fn serve(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => (
            [(CONTENT_TYPE, a.mime), (CACHE_CONTROL, "no-cache")],
            a.bytes,
        )
            .into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vendored files are the ones the pages name, and none is empty.
    #[test]
    fn every_asset_is_present() {
        for a in ASSETS {
            assert!(!a.bytes.is_empty(), "{}", a.name);
        }
        let hw = ASSETS
            .iter()
            .find(|a| a.name.starts_with("hash-wasm"))
            .expect("hash-wasm");
        assert!(String::from_utf8_lossy(hw.bytes).contains("argon2id"));
    }
}
