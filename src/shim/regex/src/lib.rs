//! The parts of `regex`'s API that oci-spec uses, from regex-lite (see Cargo.toml for why).
pub use regex_lite::{escape, Captures, Error, Regex, RegexBuilder};
