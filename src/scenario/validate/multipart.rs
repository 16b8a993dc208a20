//! `multipart` bodies (`multipart/form-data`, RFC 7578): templated text fields and files read
//! once at load, assembled into fixed byte pieces and the fields that render per request.

use std::hash::{Hash as _, Hasher as _};

use bytes::Bytes;
use http::HeaderValue;

use super::super::plan::{FileKind, Multipart, MultipartPiece};
use super::super::raw::RawMultipart;
use super::super::source::join_key;
use super::super::template::Escape;
use super::{JourneyCtx, Names, Validator};

impl Validator<'_> {
    /// The pieces of a multipart body and its `Content-Type` (with the boundary).
    pub(super) fn multipart(
        &mut self,
        m: &RawMultipart,
        p: &str,
        names: &Names<'_>,
        jc: &mut JourneyCtx,
    ) -> Option<(Multipart, HeaderValue)> {
        if m.fields.is_empty() && m.files.is_empty() {
            self.err(p, "a multipart body needs `fields`, `files` or both");
            return None;
        }
        let mut ok = true;
        let mut fields = Vec::new();
        for (name, value) in &m.fields {
            let at = join_key(&join_key(p, "fields"), name);
            match self.template(value, &at, Escape::None, names, jc) {
                Some(t) => fields.push((name, t)),
                None => ok = false,
            }
        }
        let mut files = Vec::new();
        for (name, f) in &m.files {
            let at = join_key(&join_key(p, "files"), name);
            let Some(bytes) = self.read_file(&join_key(&at, "path"), &f.path, FileKind::Data)
            else {
                ok = false;
                continue;
            };
            let content_type = f
                .content_type
                .clone()
                .unwrap_or_else(|| content_type_of(&f.path).to_string());
            if HeaderValue::from_str(&content_type).is_err() {
                self.err(
                    &join_key(&at, "content_type"),
                    format!("`{content_type}` is not a valid content type"),
                );
                ok = false;
            }
            let filename = f.filename.clone().unwrap_or_else(|| {
                f.path
                    .rsplit(['/', '\\'])
                    .next()
                    .unwrap_or(&f.path)
                    .to_string()
            });
            files.push((name, filename, content_type, bytes));
        }
        if !ok {
            return None;
        }
        let literals: Vec<&str> = fields.iter().filter_map(|(_, t)| t.as_literal()).collect();
        let boundary = boundary_for(
            p,
            files
                .iter()
                .map(|f| f.3.as_slice())
                .chain(literals.iter().map(|l| l.as_bytes())),
        );
        let mut pieces = Vec::new();
        let mut fixed = Vec::new();
        for (name, t) in fields {
            part_head(&mut fixed, &boundary, name, None, None);
            match t.as_literal() {
                Some(lit) => fixed.extend_from_slice(lit.as_bytes()),
                None => {
                    pieces.push(MultipartPiece::Bytes(Bytes::from(std::mem::take(
                        &mut fixed,
                    ))));
                    pieces.push(MultipartPiece::Field(t));
                }
            }
            fixed.extend_from_slice(b"\r\n");
        }
        for (name, filename, content_type, bytes) in files {
            part_head(
                &mut fixed,
                &boundary,
                name,
                Some(&filename),
                Some(&content_type),
            );
            fixed.extend_from_slice(&bytes);
            fixed.extend_from_slice(b"\r\n");
        }
        fixed.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        pieces.push(MultipartPiece::Bytes(Bytes::from(fixed)));
        let content_type =
            HeaderValue::from_str(&format!("multipart/form-data; boundary={boundary}")).ok()?;
        Some((Multipart { pieces, boundary }, content_type))
    }
}

/// A boundary that no file contains: a hash of where the body is written, salted until it is
/// absent from every file (templated fields render later; 16 hex digits of hash are not text a
/// field would hold by chance).
fn boundary_for<'b>(at: &str, files: impl Iterator<Item = &'b [u8]> + Clone) -> String {
    let mut salt = 0u32;
    loop {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (at, salt).hash(&mut h);
        let b = format!("stampede-{:016x}", h.finish());
        if !files
            .clone()
            .any(|f| f.windows(b.len()).any(|w| w == b.as_bytes()))
        {
            return b;
        }
        salt += 1;
    }
}

fn part_head(
    out: &mut Vec<u8>,
    boundary: &str,
    name: &str,
    filename: Option<&str>,
    content_type: Option<&str>,
) {
    out.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"").as_bytes(),
    );
    quoted(out, name);
    out.push(b'"');
    if let Some(f) = filename {
        out.extend_from_slice(b"; filename=\"");
        quoted(out, f);
        out.push(b'"');
    }
    out.extend_from_slice(b"\r\n");
    if let Some(ct) = content_type {
        out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// A name inside the quotes of `Content-Disposition`, escaped as browsers do (WHATWG: `"` as
/// `%22`, line breaks as `%0D` / `%0A`).
fn quoted(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'"' => out.extend_from_slice(b"%22"),
            b'\r' => out.extend_from_slice(b"%0D"),
            b'\n' => out.extend_from_slice(b"%0A"),
            _ => out.push(b),
        }
    }
}

/// The content type a file's extension suggests (`application/octet-stream` when unknown).
pub(super) fn content_type_of(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "json" => "application/json",
        "xml" => "application/xml",
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boundary_avoids_the_files_and_names_are_escaped() {
        let first = boundary_for("a", std::iter::empty());
        let file = format!("xx{first}yy");
        let other = boundary_for("a", std::iter::once(file.as_bytes()));
        assert_ne!(first, other);
        assert_eq!(boundary_for("a", std::iter::empty()), first, "stable");
        let mut out = Vec::new();
        part_head(&mut out, "B", "a\"b", Some("x\ny.txt"), Some("text/plain"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "--B\r\nContent-Disposition: form-data; name=\"a%22b\"; filename=\"x%0Ay.txt\"\r\nContent-Type: text/plain\r\n\r\n"
        );
    }
}
