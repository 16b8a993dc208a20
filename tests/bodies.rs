//! Request bodies as browsers and apps send them: `multipart/form-data` with templated fields and
//! files, parsed by a real multipart parser on the server; `body_file` sent byte for byte.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::util::*;

/// A part as the server parsed it: (name, file name, content type, bytes).
type Part = (String, Option<String>, Option<String>, Vec<u8>);

/// Each request's parts, or the content type and raw body of one that was not multipart.
type Bodies = Arc<Mutex<Vec<Result<Vec<Part>, (String, Vec<u8>)>>>>;

/// A server that parses multipart bodies with `multer` and keeps every request's parts, or the
/// raw body and content type of anything else.
fn parsing_server() -> (ServerThread, Bodies) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let srv = serve_on_thread(move |stream| {
        let seen = seen2.clone();
        async move {
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let ct = req
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let entry = match multer::parse_boundary(&ct) {
                            Ok(boundary) => {
                                let mut mp = multer::Multipart::with_reader(&body[..], boundary);
                                let mut parts = Vec::new();
                                while let Some(field) = mp.next_field().await.unwrap() {
                                    let name = field.name().unwrap_or("").to_string();
                                    let file = field.file_name().map(str::to_string);
                                    let fct = field.content_type().map(|m| m.to_string());
                                    let bytes = field.bytes().await.unwrap().to_vec();
                                    parts.push((name, file, fct, bytes));
                                }
                                Ok(parts)
                            }
                            Err(_) => Err((ct, body.to_vec())),
                        };
                        seen.lock().unwrap().push(entry);
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"{}"),
                        )))
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        }
    });
    (srv, seen)
}

#[test]
fn a_multipart_body_carries_templated_fields_and_files_the_server_parses() {
    let (srv, seen) = parsing_server();
    let d = dir();
    std::fs::create_dir_all(d.path().join("data")).unwrap();
    // Bytes that are not UTF-8, and a CRLF that must survive.
    let png: Vec<u8> = (0u8..=255).chain(*b"\r\n--x\r\n").collect();
    std::fs::write(d.path().join("data/avatar.png"), &png).unwrap();
    std::fs::write(d.path().join("data/notes.txt"), "line one\n").unwrap();
    let s = write_scenario(
        d.path(),
        &format!("http://{}", srv.addr),
        "vars: { who: ann }\njourneys:\n  j:\n    - name: upload\n      post: /upload\n      multipart:\n        fields: { user: '{{ who }}-{{ iteration }}', 'say \"hi\"': hello }\n        files:\n          avatar: { path: data/avatar.png }\n          notes: { path: data/notes.txt, content_type: text/markdown, filename: n.md }\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 2 }\n",
    );
    let (code, _, r, _) = run_bin_scenario(&s, &[]);
    assert_exit(code, 0, &r, &format!("{:?}", r.error_examples));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for (i, entry) in seen.iter().enumerate() {
        let parts = entry.as_ref().expect("a multipart body");
        let names: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(names, ["user", "say %22hi%22", "avatar", "notes"]);
        assert_eq!(parts[0].3, format!("ann-{}", i + 1).into_bytes());
        assert_eq!(parts[1].3, b"hello");
        assert_eq!(parts[2].1.as_deref(), Some("avatar.png"));
        assert_eq!(parts[2].2.as_deref(), Some("image/png"));
        assert_eq!(parts[2].3, png);
        assert_eq!(parts[3].1.as_deref(), Some("n.md"));
        assert_eq!(parts[3].2.as_deref(), Some("text/markdown"));
        assert_eq!(parts[3].3, b"line one\n");
    }
}

#[test]
fn body_file_is_sent_as_is_with_a_content_type_from_its_extension() {
    let (srv, seen) = parsing_server();
    let d = dir();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(d.path().join("blob.bin"), &big).unwrap();
    std::fs::write(
        d.path().join("order.json"),
        "{\"qty\": \"{{ not a template }}\"}",
    )
    .unwrap();
    let s = write_scenario(
        d.path(),
        &format!("http://{}", srv.addr),
        "journeys:\n  j:\n    - { name: blob, put: /blob, body_file: blob.bin }\n    - { name: order, post: /order, body_file: order.json }\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 1 }\n",
    );
    let (code, _, r, _) = run_bin_scenario(&s, &[]);
    assert_exit(code, 0, &r, &format!("{:?}", r.error_examples));
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0].as_ref().unwrap_err(),
        &("application/octet-stream".to_string(), big)
    );
    assert_eq!(
        seen[1].as_ref().unwrap_err(),
        &(
            "application/json".to_string(),
            b"{\"qty\": \"{{ not a template }}\"}".to_vec()
        )
    );
}

#[test]
fn missing_body_files_and_two_bodies_are_errors_at_their_position() {
    let d = dir();
    let s = write_scenario(
        d.path(),
        "http://127.0.0.1:9",
        "journeys:\n  j:\n    - name: up\n      post: /u\n      multipart:\n        files:\n          a: { path: nowhere.png }\n    - { name: two, post: /t, body: x, body_file: y.bin }\n    - { name: empty, post: /e, multipart: {} }\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 1 }\n",
    );
    let (code, _, err) = run_bin(&["validate", s.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("s.yaml:8:") && err.contains("cannot read `nowhere.png`"),
        "{err}"
    );
    assert!(
        err.contains("s.yaml:9:") && err.contains("one body"),
        "{err}"
    );
    assert!(
        err.contains("s.yaml:10:") && err.contains("needs `fields`, `files`"),
        "{err}"
    );
}
