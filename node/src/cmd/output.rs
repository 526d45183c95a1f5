//! How commands print: the `--json` document, or the text a renderer makes.

use cairn_node::client::CliError;
use serde::Serialize;

/// Prints `value` as JSON in `--json` mode, else the text `human` renders.
pub fn output<T: Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce(&T) -> String,
) -> Result<(), CliError> {
    if json {
        let text =
            serde_json::to_string_pretty(value).map_err(|e| CliError::Other(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", human(value));
    }
    Ok(())
}
