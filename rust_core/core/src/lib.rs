//! PeroMesh kernels, pure Rust (no Python): spreading activation over a compact
//! relation graph ([`Graph`], [`SpreadParams`]) and a text cleaner
//! ([`TextCleaner`]). The PyO3 binding lives in `../python`; the exact semantics
//! are shared with the NumPy reference in `server/native/reference/`.

pub mod graph;
pub mod spread;
pub mod text;

pub use graph::{Arc, Graph};
pub use spread::SpreadParams;
pub use text::TextCleaner;

/// Invalid input; the binding raises it as `ValueError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Invalid(String),
}

impl Error {
    pub(crate) fn invalid(message: String) -> Error {
        Error::Invalid(message)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}
