//! Pieces of the `cairn` command line that are not backup logic: password
//! input and progress display.

pub mod account;
pub mod password;
pub mod progress;
