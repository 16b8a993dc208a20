//! Secrets: which values must never reach an output, and masking them in the messages that do.

use rhai::ImmutableString;

/// Headers whose values are credentials: whatever is rendered into them is secret.
pub const CREDENTIAL_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "cookie",
];

/// Values that must never appear in the terminal, result files, reports or logs, and the places
/// they live. Values change per virtual user (a token extracted at login), so the plan keeps
/// where to look and a message is redacted against the user's current values when it is made:
/// messages are rare (the first error of each class per step), so the hot path pays nothing.
#[derive(Debug, Default, Clone)]
pub struct Secrets {
    /// Variables holding secrets: `secret: true` in `vars` or on an extraction, or rendered into
    /// a credential header.
    pub vars: Vec<ImmutableString>,
    /// Feeder columns `(feeder, field)` rendered into a credential header.
    pub fields: Vec<(usize, usize)>,
    /// Fixed secret text: secret `vars` values and literal credential header values.
    pub literals: Vec<String>,
}

/// The longest message kept for an output (an error example, a script error): a server or a
/// script controls what a message quotes, and a 512 KB thrown string helps nobody in a report.
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// `text` cut to [`MAX_MESSAGE_BYTES`] (on a character boundary), saying how much was cut.
pub fn clip(mut text: String) -> String {
    if text.len() <= MAX_MESSAGE_BYTES {
        return text;
    }
    let mut cut = MAX_MESSAGE_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = text.len() - cut;
    text.truncate(cut);
    text.push_str(&format!("… ({dropped} more bytes)"));
    text
}

/// Secrets shorter than this are not masked: masking every `1` or `ok` would garble messages
/// and a value that short protects nothing.
const MIN_SECRET_LEN: usize = 4;

impl Secrets {
    /// True when nothing is secret.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty() && self.fields.is_empty() && self.literals.is_empty()
    }

    /// Adds a fixed secret; for a credential like `Bearer abc`, its parts after the scheme too.
    pub fn add_literal(&mut self, value: &str) {
        for v in std::iter::once(value).chain(value.split_once(' ').map(|(_, rest)| rest.trim())) {
            if v.len() >= MIN_SECRET_LEN && !self.literals.iter().any(|l| l == v) {
                self.literals.push(v.to_string());
            }
        }
    }

    /// Adds a secret variable (once).
    pub fn add_var(&mut self, name: &str) {
        if !self.vars.iter().any(|v| v == name) {
            self.vars.push(name.into());
        }
    }

    /// Replaces every occurrence of a fixed secret or of one of `current` (the values the
    /// secret variables hold now) in `text` with `***`.
    pub fn redact<'v>(
        &'v self,
        current: impl IntoIterator<Item = &'v str>,
        text: String,
    ) -> String {
        mask(
            self.literals.iter().map(String::as_str).chain(current),
            text,
        )
    }
}

/// Replaces every occurrence of each of `values` (4 characters or longer) in `text` with `***`.
pub fn mask<'v>(values: impl IntoIterator<Item = &'v str>, text: String) -> String {
    let mut values: Vec<&str> = values
        .into_iter()
        .filter(|v| v.len() >= MIN_SECRET_LEN)
        .collect();
    // Longest first, so a value that contains another is masked whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = text;
    for v in &values {
        if out.contains(v) {
            out = out.replace(v, "***");
        }
    }
    // A message that ends inside a secret (a body cut at its first bytes) must not show the
    // secret's start either.
    for v in values {
        let cut = (MIN_SECRET_LEN..v.len())
            .rev()
            .filter(|&k| v.is_char_boundary(k))
            .find(|&k| out.ends_with(&v[..k]));
        if let Some(k) = cut {
            out.truncate(out.len() - k);
            out.push_str("***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{MAX_MESSAGE_BYTES, Secrets, clip};

    #[test]
    fn long_messages_are_clipped_on_a_character_boundary() {
        assert_eq!(clip("short".into()), "short");
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let out = clip(long.clone());
        assert!(out.len() < MAX_MESSAGE_BYTES + 40, "{}", out.len());
        assert!(out.ends_with(&format!("({} more bytes)", long.len() - MAX_MESSAGE_BYTES)));
    }

    #[test]
    fn a_message_cut_inside_a_secret_hides_its_start() {
        let out = super::mask(["sk-live-12345"], "body: {\"key\":\"sk-live-1".to_string());
        assert_eq!(out, "body: {\"key\":\"***");
        let kept = super::mask(["sk-live-12345"], "ends in sk-".to_string());
        assert_eq!(
            kept, "ends in sk-",
            "under the shortest secret length it is not a secret's start"
        );
    }

    #[test]
    fn redacts_literals_parts_and_current_values_longest_first() {
        let mut s = Secrets::default();
        s.add_literal("Bearer s3cr3t-token");
        s.add_var("key");
        let msg = "sent Bearer s3cr3t-token, got s3cr3t-token and k-123456 and abc".to_string();
        let out = s.redact(["k-123456", "k-1"], msg);
        assert_eq!(out, "sent ***, got *** and *** and abc");
        assert!(!s.is_empty());
        assert!(Secrets::default().is_empty());
    }
}
