//! Reading event logs is [`sesame_toolkit::input`]'s (plain or gzip, `-` for
//! standard input, many files in order, whole-line chunks on a reader
//! thread), shared with `sesame canary` and `sesame load --replay`; the
//! fast parse of the lines is this crate's ([`crate::record`]).

pub use sesame_toolkit::input::{lines, Chunk, Chunks, CHUNK};
