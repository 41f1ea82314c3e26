//! The page: the template, style and script kept as files next to this
//! module (`timeline.html`, `.css`, `.js`), compiled in, with the
//! recording embedded as JSON. It needs no network: nothing is fetched
//! except, in live mode, the status it polls from the server that served it.

use anyhow::Context;
use skiff_sim::timeline::Timeline;
use std::path::Path;

const TEMPLATE: &str = include_str!("timeline.html");
const STYLE: &str = include_str!("timeline.css");
const SCRIPT: &str = include_str!("timeline.js");

/// The page drawing `data`, a recording in the layout of
/// `Timeline::to_json` (or, live, `{"live":true,...}`).
pub fn render(title: &str, data: &str) -> String {
    // Inside <script>, "</script>" or "<!--" in a text would end or
    // confuse the element; JSON may spell "<" as an escape instead.
    let data = data.replace('<', "\\u003c");
    TEMPLATE
        .replacen("{{TITLE}}", &escape_html(title), 1)
        .replacen("{{STYLE}}", STYLE, 1)
        .replacen("{{SCRIPT}}", SCRIPT, 1)
        .replacen("{{DATA}}", &data, 1)
}

/// Writes the page drawing `timeline` to `path`; returns its size in bytes.
pub fn write(timeline: &Timeline, title: &str, path: &Path) -> anyhow::Result<usize> {
    let page = render(title, &timeline.to_json());
    std::fs::write(path, &page).with_context(|| format!("writing {}", path.display()))?;
    Ok(page.len())
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained_and_embeds_the_data_safely() {
        let mut timeline = Timeline::new("t", 1, "us");
        timeline.violation(1, "a </script><script>alert(1)</script> text");
        let page = render("a <b> title", &timeline.to_json());
        assert!(page.contains("<title>a &lt;b&gt; title</title>"));
        assert_eq!(
            page.matches("</script>").count(),
            2,
            "only the page's own two scripts end"
        );
        assert!(!page.contains("{{"), "every placeholder is filled");
        for remote in ["http://", "https://", "src=\"//"] {
            assert!(
                !page.contains(remote),
                "the page fetches nothing ({remote})"
            );
        }
    }
}
