//! XML text helpers and the EC2 error envelope.

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

/// [`escape`], appending to `out`; text with nothing to escape is copied whole. Characters
/// XML 1.0 cannot carry at all (control characters other than tab and newline, U+FFFE,
/// U+FFFF) become U+FFFD, and a carriage return a character reference, so any string gives
/// well-formed XML that reads back as it was, but for those.
pub fn escape_into(out: &mut String, s: &str) {
    if !s.bytes().any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'' | 0..=0x1f | 0xef)) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

pub const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// `<Response><Errors><Error>..</Error></Errors><RequestID>..</RequestID></Response>`, as EC2
/// sends it.
pub fn error_envelope(code: &str, message: &str, request_id: &str) -> String {
    format!(
        "{DECLARATION}<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
        escape(code),
        escape(message),
        escape(request_id)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes() {
        assert_eq!(super::escape("a<b & 'c'"), "a&lt;b &amp; &apos;c&apos;");
    }

    /// Whatever the text, the element holding it parses, and reads back as the text with only
    /// what XML cannot carry replaced.
    #[test]
    fn any_text_gives_well_formed_xml() {
        let mut all: String = (0u32..0x250).filter_map(char::from_u32).collect();
        all.push_str("\u{fffe}\u{ffff}\u{fffd}\u{10ffff}\r\n<&>]]>");
        for s in [all.as_str(), "\0", "a\u{1b}[31mred", "\r\n", "x\u{7f}y"] {
            let xml = format!("<a>{}</a>", super::escape(s));
            let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            let back = doc.root_element().text().unwrap_or("");
            let want: String = s
                .chars()
                .map(|c| match c {
                    '\t' | '\n' | '\r' => c,
                    '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
                    c => c,
                })
                .collect();
            assert_eq!(back, want);
        }
    }
}
