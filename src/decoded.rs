//! The result shape every sans-IO parser in wson shares.

/// What a parser made of the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<T> {
    /// Not enough bytes yet; nothing was consumed. Call again with more.
    Incomplete,
    /// A complete item, made of the first `len` bytes of the input.
    Done { item: T, len: usize },
}
