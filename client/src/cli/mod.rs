//! The `cairn` command line around the `cairn_client` library: clap types
//! ([`args`]), one function per command ([`commands`]), what is printed
//! ([`output`], [`account`]), and the pieces that are not backup logic:
//! opening vaults with their passwords ([`open`], [`password`]), progress
//! display ([`progress`]), how a command ends ([`exit`]), `cairn repair`
//! ([`repair`]), the commands that look into snapshots (`dump`, `find`,
//! `diff`, `stats`: [`browse`]), shell completions and man pages
//! ([`manual`]), `--exclude-file` and `--files-from` ([`lists`]),
//! signals during account-vault jobs ([`interrupt`]), `cairn tag`
//! ([`tag`]), `cairn copy` ([`copy`]), key slots (`cairn key`: [`keys`]) and `cairn mount`
//! ([`mount`]); the time zone of human output and retention ([`zone`]); the pipeline's
//! CPU ceiling on given files (`cairn benchmark`: [`benchmark`]). Unattended backups have a module each, clap types and
//! command together: [`schedule`], [`retention`], [`daemon`].

pub mod account;
pub mod args;
pub mod benchmark;
pub mod browse;
pub mod commands;
pub mod copy;
pub mod daemon;
pub mod exit;
pub mod interrupt;
pub mod keys;
pub mod lists;
pub mod manual;
pub mod mount;
pub mod open;
pub mod output;
pub mod password;
pub mod progress;
pub mod repair;
pub mod retention;
pub mod schedule;
pub mod tag;
pub mod zone;
