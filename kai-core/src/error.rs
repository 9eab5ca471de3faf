//! The crate's error type and the kinds every surface maps it to.

use std::path::{Path, PathBuf};

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can fail in kai-core.
///
/// Each message names the value that failed and, where there is one, the fix. Callers that
/// branch on the failure use [`Error::kind`], which every binding maps the same way.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A caller-supplied value is invalid.
    #[error("invalid {name}: {reason}")]
    InvalidInput {
        /// The argument, field or variable that contains the value.
        name: String,
        /// What is wrong with it, including the value where it is short enough to show.
        reason: String,
    },

    /// A named thing that the caller asked for does not exist.
    #[error("{what} `{name}` not found{hint}")]
    NotFound {
        /// The kind of thing, for example "model manifest".
        what: &'static str,
        /// The name the caller gave.
        name: String,
        /// Text appended to the message, such as the list of known names.
        hint: String,
    },

    /// A model's files are missing, corrupt or unusable.
    #[error("model `{model}`: {reason}")]
    Model {
        /// The model name, or the folder it was loaded from.
        model: String,
        /// What is wrong and which command repairs it.
        reason: String,
    },

    /// The request is valid but this build or this machine cannot serve it.
    #[error("not supported: {0}")]
    NotSupported(String),

    /// Reading or writing a file or folder failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation, for example "cannot read".
        op: &'static str,
        /// The file or folder involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The database or another store failed, or contains data kai cannot read.
    #[error("storage failed: {0}")]
    Storage(String),

    /// A write conflicts with the stored state, such as a stale version.
    #[error("conflict: {0}")]
    Conflict(String),

    /// A tensor operation failed inside candle.
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),

    /// The tokenizer failed on an input it should accept.
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),

    /// A bug in kai, such as a panic that a binding caught.
    #[error("internal error: {0}; please report it as a bug")]
    Internal(String),
}

/// The category of an [`Error`], shared by every surface: Python exception classes, Node
/// `err.code`, HTTP statuses and exit codes of the `kai` command all derive from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad input from the caller.
    InvalidInput,
    /// A named record or resource does not exist.
    NotFound,
    /// A model's files are missing or corrupt.
    ModelNotFound,
    /// A write lost a race with another writer.
    Conflict,
    /// The storage (files, database) failed.
    Storage,
    /// Valid but unsupported by this build or machine.
    NotSupported,
    /// A bug or an unexpected failure inside kai.
    Internal,
}

impl ErrorKind {
    /// Every kind, in the order of the error table.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::InvalidInput,
        ErrorKind::NotFound,
        ErrorKind::ModelNotFound,
        ErrorKind::Conflict,
        ErrorKind::Storage,
        ErrorKind::NotSupported,
        ErrorKind::Internal,
    ];

    /// Returns the stable code that Node receives as `err.code` and REST clients as
    /// `error.code`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "KAI_INVALID_INPUT",
            ErrorKind::NotFound => "KAI_NOT_FOUND",
            ErrorKind::ModelNotFound => "KAI_MODEL_NOT_FOUND",
            ErrorKind::Conflict => "KAI_CONFLICT",
            ErrorKind::Storage => "KAI_STORAGE",
            ErrorKind::NotSupported => "KAI_NOT_SUPPORTED",
            ErrorKind::Internal => "KAI_INTERNAL",
        }
    }

    /// Returns the exit status of the `kai` command for this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Internal => 1,
            ErrorKind::InvalidInput => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::ModelNotFound => 4,
            ErrorKind::Conflict => 5,
            ErrorKind::Storage => 6,
            ErrorKind::NotSupported => 7,
        }
    }
}

impl Error {
    /// Returns the category that surfaces map this error to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Model { .. } => ErrorKind::ModelNotFound,
            Error::NotSupported(_) => ErrorKind::NotSupported,
            Error::Io { .. } | Error::Storage(_) => ErrorKind::Storage,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Tensor(_) | Error::Tokenizer(_) | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Builds an [`Error::InvalidInput`].
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::Model`].
    pub fn model(model: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Model {
            model: model.into(),
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::Internal`] from a caught panic's payload.
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic with a non-text payload".to_owned());
        Error::Internal(format!("panic: {message}"))
    }

    /// Runs `f`, turning a panic into [`Error::Internal`], for bindings whose callers
    /// cannot receive a Rust panic.
    pub fn catch_panic<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .unwrap_or_else(|payload| Err(Error::from_panic(payload.as_ref())))
    }

    /// Builds an [`Error::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Fails with [`Error::NotFound`] naming `what` when `path` does not exist, so a
    /// mistyped input path is reported as missing, not as a failure to read it.
    pub fn require_path(path: &Path, what: &'static str) -> Result<()> {
        if path.exists() {
            return Ok(());
        }
        Err(Error::NotFound {
            what,
            name: path.display().to_string(),
            hint: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_exit_codes_are_distinct() {
        let codes: std::collections::HashSet<_> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        let exits: std::collections::HashSet<_> =
            ErrorKind::ALL.iter().map(|k| k.exit_code()).collect();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
        assert_eq!(exits.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn caught_panic_is_internal() {
        let err = Error::catch_panic::<()>(|| panic!("boom")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert!(err.to_string().contains("boom"), "{err}");
    }

    #[test]
    fn io_error_is_storage_kind() {
        let err = Error::io(
            "cannot read",
            "/x",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(err.kind(), ErrorKind::Storage);
        assert!(err.to_string().starts_with("cannot read /x"));
    }
}
