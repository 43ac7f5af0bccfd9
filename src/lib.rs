//! netcarve: carve Windows TCP/UDP endpoint objects out of memory images, with owners and
//! full-precision create times, and compare them with live-response captures.
//!
//! Data flows one way:
//! image file → [`container`] (physical memory) → [`paging`] (VA→PA) → [`kernel`] (DTB, base, PDB id,
//! KUSER facts) → [`pipeline`] (open, identify, choose the [`profile`]) → [`carve`] (pool headers,
//! tag search, decoding, calibration; beside it [`tables`], the walk of tcpip.sys's own tables, whose
//! objects the carve's decoder reads too) → [`scan`] (the whole run, its result) → [`output`].
//! Captures flow through [`capture`] into [`compare`]. [`synth`] writes images with known ground truth
//! from the profile numbers alone, never through the reader's code.

// Items of private modules say so (`pub(crate)`), so that the dead-code lint sees them.
#![warn(unreachable_pub)]

pub mod arch;
pub mod bytes;
pub mod capture;
pub mod carve;
pub mod cli;
pub mod commands;
pub mod compare;
pub mod container;
pub mod error;
pub mod evidence;
pub mod filetime;
pub mod kernel;
pub mod output;
pub mod paging;
pub mod pipeline;
pub mod profile;
pub mod record;
pub mod research;
pub mod scan;
pub mod synth;
pub mod tables;
pub mod timings;

pub use error::{Error, Result};
