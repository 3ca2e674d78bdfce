use std::path::PathBuf;

/// Every failure of the issuer outside the token endpoint's own answers
/// (those are [`crate::oauth::OAuthError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file is unreadable or invalid.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// The key and what is wrong with it.
        message: String,
    },
    /// An environment override of the configuration is invalid.
    #[error("environment variable {variable} (overrides `{key}`): {message}")]
    Env {
        /// The variable.
        variable: &'static str,
        /// The configuration key it overrides.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The key store failed (I/O, lock, encoding).
    #[error("key store: {0}")]
    Store(String),
    /// The key-encryption key is malformed.
    #[error("key-encryption key: {0}")]
    Kek(String),
    /// A `[tls]` certificate or key file is unreadable or unusable.
    #[error("TLS: {}: {message}", path.display())]
    Tls {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A JOSE or crypto failure.
    #[error(transparent)]
    Jose(#[from] jwks_jose::Error),
    /// An operator command was given something it cannot act on.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config { .. } | Error::Env { .. } => "config",
            Error::Store(_) => "store",
            Error::Kek(_) => "kek",
            Error::Tls { .. } => "tls",
            Error::Jose(_) => "crypto",
            Error::Usage(_) => "usage",
        }
    }
}
