//! README's Configuration table, generated from [`SETTINGS`]; a test keeps
//! README's copy equal to it (and prints the table to paste when not).

#[cfg(test)]
use super::table::SETTINGS;

/// A doc comment as one line of text.
pub fn plain(doc: &str) -> String {
    doc.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The Markdown table, one row per key, grouped by section.
#[cfg(test)]
pub fn table() -> String {
    let mut out = String::from("| key | default | meaning |\n| --- | --- | --- |\n");
    let mut section = "";
    for s in SETTINGS {
        if s.section != section {
            section = s.section;
            // The section's name is also its `[table]` in a config file.
            out.push_str(&format!("| **[{section}]** | | |\n"));
        }
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            s.key,
            s.shown_default,
            plain(s.doc)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = "<!-- config-table: generated from broker/src/config/table.rs -->\n";
    const END: &str = "<!-- config-table end -->";

    #[test]
    fn readme_configuration_table_is_the_generated_one() {
        let readme = include_str!("../../../README.md");
        let expected = table();
        let found = readme
            .split_once(BEGIN)
            .and_then(|(_, rest)| rest.split_once(END))
            .map(|(t, _)| t);
        assert!(
            found == Some(expected.as_str()),
            "README's Configuration table differs from broker/src/config/table.rs; \
             paste this between the config-table markers:\n{expected}"
        );
    }

    #[test]
    fn every_key_has_a_meaning_and_no_cell_breaks_the_table() {
        for s in SETTINGS {
            assert!(!plain(s.doc).is_empty(), "{} has no doc", s.key);
            assert!(
                !s.doc.contains('|') && !s.shown_default.contains('|'),
                "{}: a | would split README's row",
                s.key
            );
        }
    }
}
