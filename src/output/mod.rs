//! (being written)
pub mod compare;
