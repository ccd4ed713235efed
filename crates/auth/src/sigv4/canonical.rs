//! The SigV4 canonical request, built the same way for signing and for verifying.
//!
//! ```text
//!   METHOD\n
//!   canonical URI\n          path normalised, then every byte but unreserved and '/' encoded
//!   canonical query\n        decoded, re-encoded, sorted by key then value
//!   name:value\n ...\n       signed headers only, values trimmed, whitespace runs collapsed
//!   signed;header;names\n
//!   payload hash
//! ```
//!
//! The path is the one received, already percent-encoded by the client, and is encoded once
//! more here: that is the "double encoding" AWS specifies for every service but S3.

use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but the unreserved characters `A-Z a-z 0-9 - _ . ~`.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// The same, keeping `/` (path segments).
const ENCODE_PATH: &AsciiSet = &ENCODE.remove(b'/');

pub(super) const SIGNATURE_PARAM: &str = "X-Amz-Signature";

/// Builds the canonical request. `signed_headers` are lowercase names in the order the client
/// listed them; `presigned` leaves `X-Amz-Signature` out of the query. Fails (with detail for
/// the log) when a signed header is absent from the request.
pub(super) fn request(
    req: &super::SignedRequest,
    signed_headers: &[String],
    presigned: bool,
    payload_hash: &str,
) -> Result<String, String> {
    let mut out = String::with_capacity(256);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&uri(req.path));
    out.push('\n');
    out.push_str(&query(req.query, presigned));
    out.push('\n');
    for name in signed_headers {
        let values: Vec<String> =
            req.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| collapse_whitespace(v)).collect();
        if values.is_empty() {
            return Err(format!("signed header {name:?} is not in the request"));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    Ok(out)
}

/// The canonical URI: dot segments resolved and empty segments dropped (AWS removes
/// consecutive slashes), then each segment URI-encoded.
pub(super) fn uri(raw_path: &str) -> String {
    let normalised = normalise_path(raw_path);
    percent_encode(normalised.as_bytes(), ENCODE_PATH).to_string()
}

fn normalise_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    if path.starts_with('/') {
        out.push('/');
    }
    out.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The canonical query string: each `key=value` percent-decoded (`+` is a literal plus, as
/// AWS treats it) and re-encoded, sorted by encoded key, then encoded value.
pub(super) fn query(raw: &str, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(raw)
        .filter(|(k, _)| !(presigned && k == SIGNATURE_PARAM))
        .map(|(k, v)| (encode(k.as_bytes()), encode(v.as_bytes())))
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(raw.len() + 16);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Decoded `(key, value)` pairs of a raw query string; a key without `=` has an empty value.
/// Bytes that are not UTF-8 after decoding are replaced, which can only make a signature fail.
/// The server reads a query's parameters with this too, so it acts on the values signed (a
/// `+` is a plus to both; read as a space it was a different value than the one signed).
pub fn query_pairs(raw: &str) -> impl Iterator<Item = (String, String)> + '_ {
    raw.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k), decode(v))
    })
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// URI-encodes everything but unreserved characters, with upper-case hex.
pub(super) fn encode(bytes: &[u8]) -> String {
    percent_encode(bytes, ENCODE).to_string()
}

/// Trims a header value and turns each run of whitespace inside it into one space.
fn collapse_whitespace(v: &str) -> String {
    v.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first value of a header, by case-insensitive name.
pub(super) fn header_value<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_normalisation() {
        for (raw, want) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("/./", "/"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/./example", "/example"),
            ("//example//", "/example/"),
            ("/a/b/../c/", "/a/c/"),
            ("/../..", "/"),
        ] {
            assert_eq!(normalise_path(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn path_is_encoded_again() {
        assert_eq!(uri("/example space/"), "/example%20space/");
        assert_eq!(uri("/example%20space/"), "/example%2520space/");
        assert_eq!(uri("/-._~0-9A-Za-z"), "/-._~0-9A-Za-z");
        assert_eq!(uri("/\u{1234}"), "/%E1%88%B4");
    }

    #[test]
    fn query_is_sorted_and_reencoded() {
        assert_eq!(query("Param2=value2&Param1=value1", false), "Param1=value1&Param2=value2");
        assert_eq!(query("b=2&a&a=1", false), "a=&a=1&b=2");
        assert_eq!(query("k=a%2fb&k=a b&x=%7E+", false), "k=a%20b&k=a%2Fb&x=~%2B");
        assert_eq!(query("&&Action=Foo&", false), "Action=Foo");
        assert_eq!(query("A=1&X-Amz-Signature=ab", true), "A=1");
        assert_eq!(query("A=1&X-Amz-Signature=ab", false), "A=1&X-Amz-Signature=ab");
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        assert_eq!(collapse_whitespace("  a   b \t c  "), "a b c");
        assert_eq!(collapse_whitespace(""), "");
    }
}
