//! OTLP/HTTP's two encodings: requests decoded from protobuf or OTLP JSON, answers
//! (`ExportLogsServiceResponse`, and `google.rpc.Status` for errors) encoded in the
//! request's encoding.
//!
//! JSON is read by `opentelemetry-proto`'s serde mapping, which follows the OTLP JSON
//! rules: lowerCamelCase keys, trace and span ids in hex (either case), 64-bit integers
//! as strings or numbers, unknown keys ignored. It refuses (400) what real exporters do
//! not send: enum names instead of numbers (`"severityNumber":"SEVERITY_NUMBER_INFO"`),
//! `null` for a list, and `"NaN"`/`"Infinity"` strings for doubles.

use axum::http::StatusCode;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message;

/// `application/x-protobuf`.
pub const PROTOBUF: &str = "application/x-protobuf";
/// `application/json`.
pub const JSON: &str = "application/json";

/// A request's (and so its answer's) encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Binary protobuf.
    Protobuf,
    /// OTLP JSON.
    Json,
}

impl Encoding {
    /// The encoding of a `Content-Type` value (`application/x-protobuf`,
    /// `application/protobuf`, `application/json`; parameters ignored).
    pub fn from_content_type(value: &str) -> Option<Encoding> {
        let essence = value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    /// The `Content-Type` of answers in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }
}

/// Decodes a request body.
pub fn decode(encoding: Encoding, body: &[u8]) -> Result<ExportLogsServiceRequest, String> {
    match encoding {
        Encoding::Protobuf => ExportLogsServiceRequest::decode(body)
            .map_err(|e| format!("not a valid ExportLogsServiceRequest (protobuf): {e}")),
        Encoding::Json => serde_json::from_slice(body)
            .map_err(|e| format!("not a valid ExportLogsServiceRequest (OTLP JSON): {e}")),
    }
}

/// The success answer: empty, or with `partial_success` when records were refused.
pub fn response(encoding: Encoding, rejected: u64, error_message: Option<&str>) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => {
            let partial_success = (rejected > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: rejected as i64,
                error_message: error_message.unwrap_or_default().to_owned(),
            });
            ExportLogsServiceResponse { partial_success }.encode_to_vec()
        }
        Encoding::Json => {
            let body = match rejected {
                0 => serde_json::json!({}),
                n => serde_json::json!({"partialSuccess": {
                    // int64 is a string in proto3 JSON.
                    "rejectedLogRecords": n.to_string(),
                    "errorMessage": error_message.unwrap_or_default(),
                }}),
            };
            body.to_string().into_bytes()
        }
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP error answers (its `details` left out).
#[derive(Clone, PartialEq, Message)]
pub struct Status {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What went wrong, for people.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The gRPC code matching an HTTP status, for [`Status::code`].
fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        404 | 405 => 12,      // UNIMPLEMENTED
        408 => 4,             // DEADLINE_EXCEEDED
        429 => 8,             // RESOURCE_EXHAUSTED
        503 => 14,            // UNAVAILABLE
        _ => 13,              // INTERNAL
    }
}

/// An error answer's body.
pub fn status(encoding: Encoding, http: StatusCode, message: &str) -> Vec<u8> {
    let code = grpc_code(http);
    match encoding {
        Encoding::Protobuf => Status {
            code,
            message: message.to_owned(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({"code": code, "message": message})
            .to_string()
            .into_bytes(),
    }
}
