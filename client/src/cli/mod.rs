//! Pieces of the `cairn` command line that are not backup logic: password
//! input, progress display, and signals during account-vault jobs.

pub mod account;
pub mod interrupt;
pub mod password;
pub mod progress;
