//! `ApiError`: the Kinesis error types, their HTTP statuses and wire shapes. Only `api/`
//! knows these names; inner errors reach them through the `From` impls here.

use axum::http::StatusCode;

use crate::data::writer::WriteError;
use crate::storage::StorageError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    ResourceNotFound,
    ResourceInUse,
    InvalidArgument,
    LimitExceeded,
    ProvisionedThroughputExceeded,
    ExpiredIterator,
    ExpiredNextToken,
    Validation,
    Serialization,
    UnknownOperation,
    MissingAuthenticationToken,
    IncompleteSignature,
    InvalidSignature,
    KmsNotFound,
    InternalFailure,
    /// The server is out of room for more bodies in flight (503, retried by the SDKs).
    ServiceUnavailable,
    /// The request body did not arrive in time (408, retried by the SDKs).
    RequestTimeout,
}

impl ErrorKind {
    pub fn type_name(self) -> &'static str {
        match self {
            ErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ErrorKind::ResourceInUse => "ResourceInUseException",
            ErrorKind::InvalidArgument => "InvalidArgumentException",
            ErrorKind::LimitExceeded => "LimitExceededException",
            ErrorKind::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
            ErrorKind::ExpiredIterator => "ExpiredIteratorException",
            ErrorKind::ExpiredNextToken => "ExpiredNextTokenException",
            ErrorKind::Validation => "ValidationException",
            ErrorKind::Serialization => "SerializationException",
            ErrorKind::UnknownOperation => "UnknownOperationException",
            ErrorKind::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            ErrorKind::IncompleteSignature => "IncompleteSignatureException",
            ErrorKind::InvalidSignature => "InvalidSignatureException",
            ErrorKind::KmsNotFound => "KMSNotFoundException",
            ErrorKind::InternalFailure => "InternalFailure",
            ErrorKind::ServiceUnavailable => "ServiceUnavailable",
            ErrorKind::RequestTimeout => "RequestTimeoutException",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InternalFailure => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    /// `None` for the errors Kinesis sends without a message (unknown operation,
    /// unparseable JSON).
    pub message: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: Some(message.into()),
        }
    }

    pub fn bare(kind: ErrorKind) -> ApiError {
        ApiError {
            kind,
            message: None,
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::InvalidArgument, message)
    }

    pub fn serialization(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Serialization, message)
    }

    pub fn internal() -> ApiError {
        ApiError::bare(ErrorKind::InternalFailure)
    }

    pub fn stream_not_found(name: &str, account: &str) -> ApiError {
        ApiError::new(
            ErrorKind::ResourceNotFound,
            format!("Stream {name} under account {account} not found."),
        )
    }

    pub fn shard_not_found(shard_id: &str, stream: &str, account: &str) -> ApiError {
        ApiError::new(
            ErrorKind::ResourceNotFound,
            format!("Shard {shard_id} in stream {stream} under account {account} does not exist"),
        )
    }

    pub fn stream_in_use(name: &str, account: &str, state: &str) -> ApiError {
        ApiError::new(
            ErrorKind::ResourceInUse,
            format!("Stream {name} under account {account} not ACTIVE, instead in state {state}"),
        )
    }

    /// The JSON body Kinesis sends: `__type` and `message`, except that
    /// `SerializationException` spells it `Message`.
    pub fn body(&self) -> String {
        let mut body = serde_json::Map::new();
        body.insert("__type".into(), self.kind.type_name().into());
        if let Some(m) = &self.message {
            let key = if self.kind == ErrorKind::Serialization {
                "Message"
            } else {
                "message"
            };
            body.insert(key.into(), m.clone().into());
        }
        serde_json::Value::Object(body).to_string()
    }
}

/// What a client is told when the data directory's file system is full: a retryable
/// InternalFailure (Kinesis has no error of its own for it) that says why.
pub const DISK_FULL: &str =
    "Internal service failure: the server's disk is full; the record was not written, retry later.";

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        tracing::error!(error = %e, "storage error");
        if e.is_storage_full() {
            return ApiError::new(ErrorKind::InternalFailure, DISK_FULL);
        }
        ApiError::internal()
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> ApiError {
        match e {
            WriteError::Storage(e) => e.into(),
            WriteError::ShuttingDown | WriteError::ShardClosed(_) => ApiError::internal(),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        tracing::error!(error = %e, "request task failed");
        ApiError::internal()
    }
}
