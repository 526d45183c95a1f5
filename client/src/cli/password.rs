//! Where passwords come from: an environment variable, a file, the output
//! of a command (a password manager), or a prompt on the terminal, in that
//! order. Non-interactive runs (CI, cron) must use one of the first three;
//! a missing password is a clear error, not a hang.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};

/// Reads a password from `$VAR`, the file named by `$VAR_FILE`, the output
/// of `sh -c "$VAR_COMMAND"`, or a prompt
/// (`new`: a password being set, asked twice on a terminal and refused when
/// empty from any source; an existing one is taken as it is, so a vault
/// an older build let be created with an empty password still opens).
pub fn read(var: &str, prompt: &str, new: bool) -> Result<Vec<u8>> {
    let pw = read_any(var, prompt, new)?;
    if new && pw.is_empty() {
        bail!("an empty password is not allowed");
    }
    Ok(pw)
}

fn read_any(var: &str, prompt: &str, confirm: bool) -> Result<Vec<u8>> {
    if let Some(pw) = from_environment(var) {
        return pw;
    }
    let (file_var, command_var) = (format!("{var}_FILE"), format!("{var}_COMMAND"));
    if !std::io::stdin().is_terminal() {
        bail!(
            "no password: set {var}, {file_var} or {command_var}, or run on a terminal to be prompted"
        );
    }
    let first = rpassword::prompt_password(prompt).context("read password")?;
    if confirm {
        let again = rpassword::prompt_password("Repeat the password: ").context("read password")?;
        if again != first {
            bail!("the passwords do not match");
        }
    }
    Ok(first.into_bytes())
}

/// The password from `$VAR`, the file named by `$VAR_FILE` or the output
/// of `sh -c "$VAR_COMMAND"`, in that order; `None` when none of them is
/// set (never a prompt: for unattended runs such as `cairn daemon`).
pub fn from_environment(var: &str) -> Option<Result<Vec<u8>>> {
    if let Ok(p) = std::env::var(var) {
        return Some(Ok(p.into_bytes()));
    }
    let file_var = format!("{var}_FILE");
    if let Ok(path) = std::env::var(&file_var) {
        return Some(
            std::fs::read(&path)
                .with_context(|| format!("read {file_var}={path}"))
                .map(trim_newline),
        );
    }
    let command_var = format!("{var}_COMMAND");
    let command = std::env::var(&command_var).ok()?;
    let run = || {
        let out = std::process::Command::new("sh")
            .args(["-c", &command])
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("run {command_var}"))?;
        if !out.status.success() {
            bail!("{command_var} failed ({})", out.status);
        }
        Ok(trim_newline(out.stdout))
    };
    Some(run())
}

/// `bytes` without the line ending(s) a file or a command's output ends with.
fn trim_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    bytes
}
