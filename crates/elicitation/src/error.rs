//! Every way a request can fail, and its one mapping to an RFC 9457 problem response.

use serde::Serialize;
use serde_json::{Value, json};

use crate::model::Elicitation;
use crate::schema::FieldError;
use crate::store::StoreError;

/// A failed request.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// 400: the body is not JSON, or a parameter is malformed.
    BadRequest(String),
    /// 401: no token, or a token that is forged, malformed or expired.
    Unauthorized(String),
    /// 403: a valid token for an agent that may not do this.
    Forbidden(String),
    /// 404: nothing there, or nothing this agent may see.
    NotFound(String),
    /// 405: the route does not take this method.
    MethodNotAllowed(&'static str),
    /// 409: the elicitation is in a state that does not allow this; `current` shows it.
    Conflict {
        /// Why.
        detail: String,
        /// The elicitation as it is now.
        current: Option<Box<Elicitation>>,
    },
    /// 410: the elicitation expired; `current` shows it.
    Gone {
        /// Why.
        detail: String,
        /// The elicitation as it is now.
        current: Option<Box<Elicitation>>,
    },
    /// 413: the body is larger than the limit.
    PayloadTooLarge(usize),
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 422: well-formed JSON that breaks the contract; one entry per field.
    Invalid {
        /// Summary.
        detail: String,
        /// The fields at fault.
        errors: Vec<FieldError>,
    },
    /// 429: a limit of the requester's or the addressee's was reached; nothing was changed.
    TooManyRequests {
        /// Which limit, and how far.
        detail: String,
        /// Seconds after which the same request may succeed (`Retry-After`).
        retry_after: u64,
    },
    /// 500: the store failed.
    Storage(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Self::Storage(e.0)
    }
}

impl Error {
    /// A 422 for a single field.
    pub fn invalid(pointer: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self::Invalid {
            detail: format!("{pointer}: {detail}"),
            errors: vec![FieldError {
                pointer: pointer.to_string(),
                detail,
            }],
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::MethodNotAllowed(_) => 405,
            Self::Conflict { .. } => 409,
            Self::Gone { .. } => 410,
            Self::PayloadTooLarge(_) => 413,
            Self::UnsupportedMediaType => 415,
            Self::Invalid { .. } => 422,
            Self::TooManyRequests { .. } => 429,
            Self::Storage(_) => 500,
        }
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::BadRequest(_) => ("bad-request", "Bad request"),
            Self::Unauthorized(_) => ("unauthorized", "Missing or invalid token"),
            Self::Forbidden(_) => ("forbidden", "Not allowed for this agent"),
            Self::NotFound(_) => ("not-found", "Not found"),
            Self::MethodNotAllowed(_) => ("method-not-allowed", "Method not allowed"),
            Self::Conflict { .. } => ("conflict", "Conflicts with the current state"),
            Self::Gone { .. } => ("expired", "Elicitation expired"),
            Self::PayloadTooLarge(_) => ("payload-too-large", "Request body too large"),
            Self::UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type"),
            Self::Invalid { .. } => ("validation-failed", "The request breaks the contract"),
            Self::TooManyRequests { .. } => ("too-many-requests", "A limit was reached"),
            Self::Storage(_) => ("internal", "Internal error"),
        }
    }

    /// The `application/problem+json` body. Server-side detail is not shown to clients.
    pub fn problem(&self) -> Problem {
        let (slug, title) = self.slug_and_title();
        let detail = match self {
            Self::BadRequest(d)
            | Self::Unauthorized(d)
            | Self::Forbidden(d)
            | Self::NotFound(d) => d.clone(),
            Self::MethodNotAllowed(allow) => format!("this route takes {allow}"),
            Self::Conflict { detail, .. }
            | Self::Gone { detail, .. }
            | Self::Invalid { detail, .. }
            | Self::TooManyRequests { detail, .. } => detail.clone(),
            Self::PayloadTooLarge(limit) => format!("the body may be at most {limit} bytes"),
            Self::UnsupportedMediaType => "send the body as application/json".to_string(),
            Self::Storage(_) => "the store failed; nothing was changed by this request".to_string(),
        };
        let current = match self {
            Self::Conflict { current, .. } | Self::Gone { current, .. } => current
                .as_ref()
                .map(|e| serde_json::to_value(e).unwrap_or(Value::Null)),
            _ => None,
        };
        let errors = match self {
            Self::Invalid { errors, .. } => Some(errors.clone()),
            _ => None,
        };
        Problem {
            kind: format!("/problems/{slug}"),
            title,
            status: self.status(),
            detail,
            errors,
            current,
        }
    }

    /// Extra response headers this error needs (`Allow`, `WWW-Authenticate`, `Retry-After`).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::TooManyRequests { retry_after, .. } => {
                vec![("retry-after", retry_after.max(&1).to_string())]
            }
            Self::MethodNotAllowed(allow) => vec![("allow", (*allow).to_string())],
            Self::Unauthorized(_) => vec![("www-authenticate", "Bearer".to_string())],
            _ => Vec::new(),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// Problem type (a URI reference).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the type.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// Field problems (422).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// The elicitation's current state (409, 410).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<Value>,
}

impl Problem {
    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .unwrap_or_else(|_| json!({"status": self.status}).to_string().into_bytes())
    }
}
