//! HTML for the tools' self-contained reports (`sesame triage --html`,
//! `sesame load --html`): escaping text from logs and flags into a page, and
//! the page's opening. A report page loads nothing (no script, no link, no
//! image), so it can be attached to a ticket as it is; its charts come from
//! [`crate::chart`].

use std::fmt::Write as _;

/// `text` made safe as HTML text or as a quoted attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The start of a report page, up to and including `<body>`: the doctype,
/// UTF-8, the (escaped) title and an inline style sheet.
pub fn page_start(title: &str, css: &str) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{}</title><style>{css}</style></head><body>"#,
        escape(title)
    );
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_html_would_read_as_markup() {
        assert_eq!(escape("<a&\">"), "&lt;a&amp;&quot;&gt;");
        assert_eq!(escape("it's"), "it&#39;s");
        assert_eq!(escape("plain — text"), "plain — text");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn a_page_starts_self_contained() {
        let page = page_start("load: <x>", "body{margin:0}");
        assert!(page.starts_with("<!doctype html>"));
        assert!(page.contains("<title>load: &lt;x&gt;</title>"));
        assert!(page.contains("<style>body{margin:0}</style>"));
        assert!(page.ends_with("<body>"));
    }
}
