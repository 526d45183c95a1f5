//! `cairnd` with the test-only `unsafe-ack` feature: the same program, only
//! under another name so the real `cairnd` is never the broken one. It
//! exists to prove that `cairn-jepsen` catches acknowledged writes that
//! were not durable (see `unsafe_ack` in `http/chunks.rs`).

#[path = "../main.rs"]
mod cairnd;

fn main() -> std::process::ExitCode {
    cairnd::main()
}
