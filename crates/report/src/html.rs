//! The HTML page: one self-contained file (inline CSS, images as base64 data
//! URIs, no script, no external resource) that opens offline in any browser.
//!
//! ```
//! use phyvae_report::html::escape;
//! assert_eq!(escape("a < b & \"c\""), "a &lt; b &amp; &quot;c&quot;");
//! ```

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::figure::Figure;
use crate::report::{Item, RunReport};

const STYLE: &str = "
body { font-family: 'DejaVu Sans', 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1400px; padding: 0 1.2em 3em; color: #222; background: #fff; }
header { border-bottom: 2px solid #ddd; margin-bottom: 1em; }
h1 { font-size: 1.5em; margin: 0.8em 0 0.3em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #eee; padding-bottom: 0.2em; }
nav a { margin-right: 1em; font-size: 0.9em; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #444; max-width: 34em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
table.cmp td { min-width: 20em; }
pre { background: #f5f5f5; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
p.note { font-size: 0.9em; color: #555; }
div.alert { flex-basis: 100%; border: 3px solid #c62828; background: #ffebee; color: #b71c1c; padding: 0.6em 1em; margin: 0.5em 0 1em; font-size: 1.05em; }
div.alert strong { display: block; font-size: 1.15em; margin-bottom: 0.3em; }
div.good { flex-basis: 100%; border: 2px solid #2e7d32; background: #e8f5e9; color: #1b5e20; padding: 0.5em 1em; margin: 0.5em 0 1em; }
.grid > pre, .grid > p.note { flex-basis: 100%; margin: 0.2em 0; }
";

/// Escapes text for HTML element content and attribute values.
#[must_use]
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

fn figure_html(f: &Figure, caption: &str) -> String {
    format!(
        "<figure id=\"fig-{name}\"><img alt=\"{title}\" width=\"{w}\" height=\"{h}\" src=\"data:image/png;base64,{data}\"><figcaption>{cap}</figcaption></figure>",
        name = escape(&f.name),
        title = escape(&f.title),
        w = f.width,
        h = f.height,
        data = STANDARD.encode(&f.png),
        cap = escape(caption),
    )
}

fn item_html(item: &Item) -> String {
    match item {
        Item::Figure(f, cap) => figure_html(f, cap),
        Item::Facts(rows) => {
            let mut s = String::from("<table class=\"facts\">");
            for (k, v) in rows {
                let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
            }
            s + "</table>"
        }
        Item::Table(head, rows) => {
            let mut s = String::from("<table><tr>");
            for h in head {
                let _ = write!(s, "<th>{}</th>", escape(h));
            }
            s.push_str("</tr>");
            for r in rows {
                s.push_str("<tr>");
                for c in r {
                    let _ = write!(s, "<td>{}</td>", escape(c));
                }
                s.push_str("</tr>");
            }
            s + "</table>"
        }
        Item::Code(c) => format!("<pre>{}</pre>", escape(c)),
        Item::Alert(title, lines) => {
            let mut s = format!(
                "<div class=\"alert\" role=\"alert\"><strong>{}</strong>",
                escape(title)
            );
            for l in lines {
                let _ = write!(s, "<p>{}</p>", escape(l));
            }
            s + "</div>"
        }
        Item::Verdict(t) => format!("<div class=\"good\">{}</div>", escape(t)),
        Item::Text(t) => format!("<p class=\"note\">{}</p>", escape(t)),
    }
}

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(title)
    )
}

fn nav(sections: &[(&str, &str)]) -> String {
    let mut s = String::from("<nav>");
    for (id, title) in sections {
        let _ = write!(s, "<a href=\"#{id}\">{}</a>", escape(title));
    }
    s + "</nav>"
}

/// The page of one run.
#[must_use]
pub fn single_page(report: &RunReport) -> String {
    let title = format!("phyvae report: {}", report.label);
    let mut s = head(&title);
    let ids: Vec<(&str, &str)> = report.sections.iter().map(|x| (x.id, x.title)).collect();
    let _ = write!(
        s,
        "<header><h1>{}</h1>{}</header>",
        escape(&title),
        nav(&ids)
    );
    s.push('\n');
    for sec in &report.sections {
        let _ = write!(
            s,
            "<section id=\"{}\"><h2>{}</h2><div class=\"grid\">",
            sec.id,
            escape(sec.title)
        );
        for item in &sec.items {
            s.push_str(&item_html(item));
        }
        s.push_str("</div></section>\n");
    }
    s + "</body></html>\n"
}

/// The page of several runs side by side: one column per run, the same
/// section and figure on each row (a dash where a run lacks it).
#[must_use]
pub fn comparison_page(reports: &[RunReport]) -> String {
    let labels: Vec<&str> = reports.iter().map(|r| r.label.as_str()).collect();
    let title = format!("phyvae comparison: {}", labels.join(" vs "));
    let mut s = head(&title);
    let mut ids: Vec<(&str, &str)> = Vec::new();
    for r in reports {
        for sec in &r.sections {
            if !ids.iter().any(|(id, _)| *id == sec.id) {
                ids.push((sec.id, sec.title));
            }
        }
    }
    let _ = write!(
        s,
        "<header><h1>{}</h1>{}</header>",
        escape(&title),
        nav(&ids)
    );
    s.push('\n');
    for (id, sec_title) in &ids {
        let _ = write!(
            s,
            "<section id=\"{id}\"><h2>{}</h2><table class=\"cmp\"><tr>",
            escape(sec_title)
        );
        for l in &labels {
            let _ = write!(s, "<th>{}</th>", escape(l));
        }
        s.push_str("</tr>");
        // Rows: the union of item keys, in order of first appearance.
        let per_run: Vec<Vec<(String, &Item)>> = reports
            .iter()
            .map(|r| {
                r.sections
                    .iter()
                    .filter(|x| x.id == *id)
                    .flat_map(|x| x.items.iter().enumerate().map(|(k, i)| (i.key(k), i)))
                    .collect()
            })
            .collect();
        let mut keys: Vec<String> = Vec::new();
        for run in &per_run {
            for (k, _) in run {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        for k in &keys {
            s.push_str("<tr>");
            for run in &per_run {
                match run.iter().find(|(kk, _)| kk == k) {
                    Some((_, item)) => {
                        let _ = write!(s, "<td>{}</td>", item_html(item));
                    }
                    None => s.push_str("<td>-</td>"),
                }
            }
            s.push_str("</tr>");
        }
        s.push_str("</table></section>\n");
    }
    s + "</body></html>\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Section;

    fn fig(name: &str) -> Figure {
        Figure {
            name: name.into(),
            title: format!("<{name}>"),
            width: 2,
            height: 3,
            png: vec![1, 2, 3],
        }
    }

    #[test]
    fn single_page_embeds_figures_as_data_uris_and_escapes_text() {
        let r = RunReport {
            label: "a&b".into(),
            sections: vec![Section {
                id: "latents",
                title: "Latent maps",
                items: vec![Item::Figure(fig("z1"), "cap <1>".into())],
            }],
        };
        let html = single_page(&r);
        // base64 of bytes 1, 2, 3 is "AQID".
        assert!(html.contains("src=\"data:image/png;base64,AQID\""));
        assert!(html.contains("<section id=\"latents\">"));
        assert!(html.contains("phyvae report: a&amp;b"));
        assert!(html.contains("cap &lt;1&gt;"));
        assert!(!html.contains("http"));
    }

    #[test]
    fn comparison_aligns_figures_by_name_and_marks_missing_ones() {
        let a = RunReport {
            label: "a".into(),
            sections: vec![Section {
                id: "latents",
                title: "L",
                items: vec![
                    Item::Figure(fig("z1"), String::new()),
                    Item::Figure(fig("z2"), String::new()),
                ],
            }],
        };
        let b = RunReport {
            label: "b".into(),
            sections: vec![Section {
                id: "latents",
                title: "L",
                items: vec![Item::Figure(fig("z2"), String::new())],
            }],
        };
        let html = comparison_page(&[a, b]);
        assert_eq!(html.matches("<tr>").count(), 3, "header + z1 row + z2 row");
        assert_eq!(html.matches("<td>-</td>").count(), 1, "b has no z1");
        assert_eq!(html.matches("id=\"fig-z2\"").count(), 2);
    }
}
