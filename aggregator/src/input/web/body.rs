//! Reading an HTTP input's request body: at most `max_body_bytes` as sent, within
//! `body_timeout`, then decompressed (`Content-Encoding: gzip` or `zstd`) to at most
//! `max_decompressed_bytes`, so neither a huge body nor a zip bomb can use more memory
//! than the limits say.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use logferry_shared::codec::{self, Codec, DecompressError};

/// The limits a body is read under.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body as sent.
    pub max_body_bytes: usize,
    /// Largest body once decompressed.
    pub max_decompressed_bytes: usize,
    /// Time to receive the whole body.
    pub timeout: Duration,
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Over `max_body_bytes` (declared or sent): 413.
    #[error("request body exceeds {0} bytes")]
    TooLarge(usize),
    /// Decompresses past `max_decompressed_bytes`: 413.
    #[error("request body decompresses to more than {0} bytes")]
    InflatesTooLarge(usize),
    /// Not received within the timeout: 408.
    #[error("request body not received within {0:?}")]
    Timeout(Duration),
    /// The connection failed while reading: 400.
    #[error("reading the request body: {0}")]
    Read(String),
    /// A `Content-Encoding` we do not read: 415.
    #[error("Content-Encoding `{0}` is not supported (use gzip, zstd or none)")]
    Encoding(String),
    /// Not valid gzip or zstd: 400.
    #[error("{0}")]
    Corrupt(String),
}

impl BodyError {
    /// The status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) | BodyError::InflatesTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            BodyError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::Read(_) | BodyError::Corrupt(_) => StatusCode::BAD_REQUEST,
            BodyError::Encoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    /// The `result` label of `logferry_input_requests_total`.
    pub fn result(&self) -> &'static str {
        match self {
            BodyError::TooLarge(_) | BodyError::InflatesTooLarge(_) => "too_large",
            BodyError::Timeout(_) => "timeout",
            BodyError::Read(_) | BodyError::Corrupt(_) => "bad_request",
            BodyError::Encoding(_) => "unsupported_media_type",
        }
    }
}

/// The body's codec from `Content-Encoding` (none, `identity`, `gzip`, `x-gzip`, `zstd`).
pub fn encoding(headers: &HeaderMap) -> Result<Codec, BodyError> {
    let Some(v) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Codec::None);
    };
    let text = v.to_str().unwrap_or_default().trim().to_ascii_lowercase();
    match text.as_str() {
        "" | "identity" => Ok(Codec::None),
        "gzip" | "x-gzip" => Ok(Codec::Gzip),
        "zstd" => Ok(Codec::Zstd),
        _ => Err(BodyError::Encoding(
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        )),
    }
}

/// Receives the body as sent; a declared `Content-Length` over the limit is refused
/// before anything is read.
pub async fn receive(
    headers: &HeaderMap,
    body: Body,
    limits: &BodyLimits,
) -> Result<bytes::Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(BodyError::TooLarge(limits.max_body_bytes));
    }
    let collected = tokio::time::timeout(
        limits.timeout,
        Limited::new(body, limits.max_body_bytes).collect(),
    )
    .await;
    match collected {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyError::TooLarge(limits.max_body_bytes))
        }
        Ok(Err(e)) => Err(BodyError::Read(e.to_string())),
        Err(_) => Err(BodyError::Timeout(limits.timeout)),
    }
}

/// Decompresses `sent` (blocking work: call it off the reactor).
pub fn decompress(codec: Codec, sent: &[u8], limits: &BodyLimits) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    match codec::decompress_capped(codec, sent, limits.max_decompressed_bytes, &mut out) {
        Ok(()) => Ok(out),
        Err(DecompressError::TooLarge { cap }) => Err(BodyError::InflatesTooLarge(cap)),
        Err(e @ DecompressError::Corrupt { .. }) => Err(BodyError::Corrupt(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> BodyLimits {
        BodyLimits {
            max_body_bytes: 1 << 20,
            max_decompressed_bytes: 64 << 10,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_zip_bomb_stops_at_the_cap() {
        let zeros = vec![0u8; 8 << 20];
        for c in [Codec::Gzip, Codec::Zstd] {
            let mut packed = Vec::new();
            codec::compress(c, 3, &zeros, &mut packed).unwrap();
            assert!(packed.len() < 64 << 10);
            let e = decompress(c, &packed, &limits()).unwrap_err();
            assert!(matches!(e, BodyError::InflatesTooLarge(_)), "{c:?}: {e}");
            assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        }
        let e = decompress(Codec::Gzip, b"not gzip", &limits()).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn content_encodings() {
        let mut h = HeaderMap::new();
        assert_eq!(encoding(&h).unwrap(), Codec::None);
        for (v, c) in [
            ("gzip", Codec::Gzip),
            ("ZSTD", Codec::Zstd),
            ("identity", Codec::None),
        ] {
            h.insert(header::CONTENT_ENCODING, v.parse().unwrap());
            assert_eq!(encoding(&h).unwrap(), c, "{v}");
        }
        h.insert(header::CONTENT_ENCODING, "br".parse().unwrap());
        assert_eq!(
            encoding(&h).unwrap_err().status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}
