//! Where passwords come from: an environment variable, a file, or a prompt
//! on the terminal, in that order. Non-interactive runs (CI, cron) must use
//! one of the first two; a missing password is a clear error, not a hang.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};

/// Reads a password from `$VAR`, the file named by `$VAR_FILE`, or a prompt
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
    if let Ok(p) = std::env::var(var) {
        return Ok(p.into_bytes());
    }
    let file_var = format!("{var}_FILE");
    if let Ok(path) = std::env::var(&file_var) {
        let mut bytes = std::fs::read(&path).with_context(|| format!("read {file_var}={path}"))?;
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        return Ok(bytes);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password: set {var} or {file_var}, or run on a terminal to be prompted");
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
