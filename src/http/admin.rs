//! The admin page served at `GET /` of the `[http]` listeners: one static HTML file with its
//! style and script inline (no external assets), which loads without the API key and then
//! reads everything through the API with the key the operator types.
//!
//! Its Content-Security-Policy allows exactly the page's own inline style and script, by
//! their SHA-256 (CSP level 2 hash sources), and fetches to its own origin only: even if a
//! user or topic name were ever written into the page as markup, no injected script would run.

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

pub const PAGE: &str = include_str!("admin.html");
pub const HTML: &str = "text/html; charset=utf-8";

/// The headers the page goes out with.
pub fn headers() -> [(&'static str, &'static str); 4] {
    [
        ("Content-Security-Policy", POLICY.as_str()),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
    ]
}

static POLICY: LazyLock<String> = LazyLock::new(|| {
    let hashes = |tag: &str| -> String {
        inline_blocks(PAGE, tag)
            .map(|block| format!(" 'sha256-{}'", STANDARD.encode(Sha256::digest(block))))
            .collect()
    };
    format!(
        "default-src 'none'; script-src{}; style-src{}; connect-src 'self'; img-src data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hashes("script"),
        hashes("style"),
    )
});

/// The text of each `<tag>…</tag>` block of `page`, as the browser hashes it (everything
/// between the opening tag's `>` and the closing tag).
fn inline_blocks<'p>(page: &'p str, tag: &str) -> impl Iterator<Item = &'p str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = page;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest.get(start..)?.find(&close)?;
        let block = rest.get(start..start + len)?;
        rest = rest.get(start + len + close.len()..)?;
        Some(block)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_one_script_and_the_one_style_of_the_page() {
        assert_eq!(inline_blocks(PAGE, "script").count(), 1);
        assert_eq!(inline_blocks(PAGE, "style").count(), 1);
        let policy = headers()[0].1;
        assert_eq!(policy.matches("'sha256-").count(), 2, "{policy}");
        let script = inline_blocks(PAGE, "script").next().unwrap_or_default();
        assert!(script.contains("fetch(\"/api/\""));
        assert!(policy.contains(&STANDARD.encode(Sha256::digest(script))));
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for attribute in ["src=", "href=", "http://", "https://", "@import", "url("] {
            assert!(!PAGE.contains(attribute), "the admin page has {attribute}");
        }
    }

    #[test]
    fn blocks_are_found_between_their_tags_only() {
        let page = "<style>a</style><p><script>one</script><script>two</script>";
        assert_eq!(
            inline_blocks(page, "script").collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert_eq!(inline_blocks(page, "style").collect::<Vec<_>>(), ["a"]);
        assert_eq!(inline_blocks("<script>unclosed", "script").count(), 0);
    }
}
