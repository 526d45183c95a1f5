//! Tables of the operator commands' text output (`cairnd admin …`,
//! `cairnd cluster status`): columns as wide as their longest cell, so a
//! long name widens its column instead of shifting the ones after it; no
//! borders, two spaces apart, no trailing blanks.

/// A table with these column headers.
pub fn table(headers: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_header(headers.to_vec());
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    t
}

/// The table's lines, each ending in a newline, without trailing blanks;
/// `indent` starts each line.
pub fn text(t: &comfy_table::Table, indent: &str) -> String {
    t.lines()
        .map(|l| format!("{indent}{}\n", l.trim_end()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_follow_the_longest_cell() {
        let mut t = table(&["name", "size"]);
        t.add_row(vec!["a-very-long-account-name", "1.0 KiB"]);
        t.add_row(vec!["b", "2 B"]);
        assert_eq!(
            text(&t, "  "),
            "  name                      size\n  \
             a-very-long-account-name  1.0 KiB\n  \
             b                         2 B\n"
        );
    }
}
