//! `/`: the admin web page, to search and tail logs and to see the traffic summaries,
//! rules, agents and sinks, with a readiness badge in its header.
//!
//! Static files compiled into the binary (`web/index.html`, the scripts of [`SCRIPTS`]
//! and `web/style.css`; plain HTML, CSS and JavaScript, no build step, nothing loaded
//! from elsewhere), served at `/`, `/ui/<script>.js` and `/ui/style.css` without a
//! token. The page
//! itself holds no data: its script calls the JSON API under `/api/`, which checks tokens
//! as always ([`super::auth`]). The token typed into the page is kept in the tab's
//! `sessionStorage` and sent as `Authorization: Bearer`; live tail reads `/api/tail` with
//! `fetch` and parses the Server-Sent Events itself, because `EventSource` cannot send
//! that header (tokens never go into URLs).
//!
//! Every answer carries a strict `Content-Security-Policy` ([`CONTENT_SECURITY_POLICY`]:
//! scripts, styles and requests to this origin only, no inline script or style, no
//! framing), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and
//! `Cache-Control: no-cache` (the browser revalidates, so an upgrade shows at once). The
//! script inserts every value from the API as text, never as HTML: log lines are
//! hostile input.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// The page.
pub const INDEX_HTML: &str = include_str!("web/index.html");
/// Its scripts, as (path, text), in the order the page loads them: the shared helpers,
/// the traffic chart, the rules view, then the page's own script that wires them.
pub const SCRIPTS: &[(&str, &str)] = &[
    ("/ui/common.js", include_str!("web/common.js")),
    ("/ui/chart.js", include_str!("web/chart.js")),
    ("/ui/rules.js", include_str!("web/rules.js")),
    ("/ui/app.js", include_str!("web/app.js")),
];
/// Its style sheet.
pub const STYLE_CSS: &str = include_str!("web/style.css");

/// The policy every web answer carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}

/// `GET /`.
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /ui/<name>.js`: one of [`SCRIPTS`].
pub fn script(path: &'static str) -> Response {
    match SCRIPTS.iter().find(|(p, _)| *p == path) {
        Some((_, text)) => asset("text/javascript; charset=utf-8", text),
        None => crate::http::error(
            axum::http::StatusCode::NOT_FOUND,
            "not found",
            "no such script",
        ),
    }
}

/// `GET /ui/style.css`.
pub async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn assets_have_their_types_and_the_security_headers() {
        for (resp, ty) in [
            (index().await, "text/html; charset=utf-8"),
            (script("/ui/app.js"), "text/javascript; charset=utf-8"),
            (script("/ui/chart.js"), "text/javascript; charset=utf-8"),
            (style_css().await, "text/css; charset=utf-8"),
        ] {
            let h = resp.headers();
            assert_eq!(h[header::CONTENT_TYPE], ty);
            assert_eq!(h[header::CACHE_CONTROL], "no-cache");
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(!csp.contains("unsafe"), "{csp}");
        }
    }

    /// The policy forbids inline script and style: the page must not need any.
    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = INDEX_HTML.to_ascii_lowercase();
        for (at, _) in html.match_indices("<script") {
            let tag = &html[at..at + html[at..].find('>').unwrap()];
            assert!(tag.contains("src=\"/ui/"), "inline script: {tag}");
        }
        assert!(!html.contains("<style"), "inline style element");
        assert!(!html.contains(" style="), "inline style attribute");
        for (at, _) in html.match_indices(" on") {
            let name: String = html[at + 3..]
                .chars()
                .take_while(char::is_ascii_alphabetic)
                .collect();
            assert!(
                !html[at + 3 + name.len()..].starts_with('='),
                "inline event handler on{name}"
            );
        }
        assert!(
            !html.contains("http:") && !html.contains("https:"),
            "a resource from elsewhere"
        );
    }

    /// Data reaches the DOM as text only.
    #[test]
    fn the_script_never_parses_html() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "EventSource",
        ] {
            for (path, text) in SCRIPTS {
                assert!(!text.contains(sink), "{path} uses {sink}");
            }
        }
    }

    /// The page loads every script, in the order of [`SCRIPTS`], and nothing else.
    #[test]
    fn the_page_loads_each_script_in_order() {
        let loaded: Vec<&str> = INDEX_HTML
            .match_indices("<script src=\"")
            .map(|(at, m)| {
                let rest = &INDEX_HTML[at + m.len()..];
                &rest[..rest.find('"').unwrap()]
            })
            .collect();
        let served: Vec<&str> = SCRIPTS.iter().map(|(p, _)| *p).collect();
        assert_eq!(loaded, served);
        for (path, _) in SCRIPTS {
            assert!(
                super::super::ROUTES.contains(&("GET", path)),
                "{path} is not in ROUTES"
            );
        }
    }
}
