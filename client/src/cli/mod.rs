//! The `cairn` command line around the `cairn_client` library: clap types
//! ([`args`]), one function per command ([`commands`]), what is printed
//! ([`output`], [`account`]), and the pieces that are not backup logic:
//! opening vaults with their passwords ([`open`], [`password`]), progress
//! display ([`progress`]) and signals during account-vault jobs
//! ([`interrupt`]). Unattended backups have a module each, clap types and
//! command together: [`schedule`], [`retention`], [`daemon`].

pub mod account;
pub mod args;
pub mod commands;
pub mod daemon;
pub mod interrupt;
pub mod open;
pub mod output;
pub mod password;
pub mod progress;
pub mod retention;
pub mod schedule;
