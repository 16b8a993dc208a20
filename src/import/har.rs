//! The HAR 1.2 format, as much of it as an import reads (browsers write more; the rest is
//! ignored).

use serde::Deserialize;

/// A HAR file.
#[derive(Debug, Deserialize)]
pub struct Har {
    /// Its one log.
    pub log: Log,
}

/// The log: the recorded exchanges.
#[derive(Debug, Deserialize)]
pub struct Log {
    /// Exchanges in the order they started.
    #[serde(default)]
    pub entries: Vec<Entry>,
}

/// One request and its response.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// ISO 8601 start time.
    #[serde(default)]
    pub started_date_time: String,
    /// Milliseconds the exchange took.
    #[serde(default)]
    pub time: f64,
    /// The request.
    pub request: Request,
    /// The response.
    pub response: Response,
}

/// A recorded request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Method.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers as sent.
    #[serde(default)]
    pub headers: Vec<Header>,
    /// The body, if any.
    #[serde(default)]
    pub post_data: Option<PostData>,
}

/// A request body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostData {
    /// Its media type.
    #[serde(default)]
    pub mime_type: String,
    /// Its text.
    #[serde(default)]
    pub text: String,
}

/// A recorded response.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// Status code (0 when the request failed).
    #[serde(default)]
    pub status: u16,
    /// Headers.
    #[serde(default)]
    pub headers: Vec<Header>,
    /// The body.
    #[serde(default)]
    pub content: Content,
}

/// A response body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    /// Its media type.
    #[serde(default)]
    pub mime_type: String,
    /// Its text (absent when the recorder left bodies out).
    #[serde(default)]
    pub text: Option<String>,
    /// `base64` when `text` is encoded.
    #[serde(default)]
    pub encoding: Option<String>,
}

/// A header.
#[derive(Debug, Deserialize)]
pub struct Header {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// Why a recording could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum HarError {
    /// Not JSON, or not HAR.
    #[error(
        "not a HAR file: {0}\n  hint: save the recording from the browser's network panel (\"Save all as HAR\")"
    )]
    Parse(String),
    /// No requests in it.
    #[error("the recording has no requests")]
    Empty,
    /// No origin could be chosen.
    #[error("no page origin found in the recording\n  hint: name one with --origin https://host")]
    NoOrigin,
    /// Every request was left out.
    #[error(
        "no request to {origin} is left: {statics} static assets and {others} requests to other hosts were left out\n  hint: --origin names another origin; --keep-static and --keep-third-party keep those requests"
    )]
    NothingKept {
        /// The chosen origin.
        origin: String,
        /// Static assets left out.
        statics: usize,
        /// Other hosts' requests left out.
        others: usize,
    },
}

impl Har {
    /// Parses HAR text.
    pub fn parse(text: &str) -> Result<Har, HarError> {
        serde_json::from_str(text).map_err(|e| HarError::Parse(e.to_string()))
    }
}

impl Content {
    /// The body as text (decoded when the recorder stored it as base64).
    pub fn body(&self) -> Option<String> {
        use base64::Engine as _;
        let text = self.text.as_ref()?;
        if self.encoding.as_deref() == Some("base64") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()?;
            return String::from_utf8(bytes).ok();
        }
        Some(text.clone())
    }
}

/// `(scheme://host[:port], path?query)` of an absolute URL.
pub(super) fn split_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let cut = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, path) = rest.split_at(cut);
    // `user:password@host`: the credentials are never part of the origin.
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let path = path.split('#').next().unwrap_or("");
    let path = if path.is_empty() || path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    Some((
        format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            host.to_ascii_lowercase()
        ),
        path,
    ))
}

/// The page's origin: the first HTML document's, else the origin most requests went to.
pub(super) fn main_origin(entries: &[Entry]) -> Option<String> {
    if let Some(e) = entries
        .iter()
        .find(|e| e.response.content.mime_type.contains("text/html"))
    {
        return split_url(&e.request.url).map(|(o, _)| o);
    }
    let mut counts: Vec<(String, usize)> = Vec::new();
    for e in entries {
        if let Some((o, _)) = split_url(&e.request.url) {
            match counts.iter_mut().find(|(x, _)| *x == o) {
                Some((_, n)) => *n += 1,
                None => counts.push((o, 1)),
            }
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(o, _)| o)
}

/// Seconds since the epoch of an ISO 8601 / RFC 3339 time.
pub(super) fn seconds(t: &str) -> Option<f64> {
    let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()?;
    Some(at.unix_timestamp_nanos() as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_origin_and_path() {
        assert_eq!(
            split_url("HTTPS://Shop.Example.com:8443/a/b?x=1#frag"),
            Some(("https://shop.example.com:8443".into(), "/a/b?x=1".into()))
        );
        assert_eq!(
            split_url("http://h?q=1"),
            Some(("http://h".into(), "/?q=1".into()))
        );
        assert_eq!(split_url("not a url"), None);
    }
}
