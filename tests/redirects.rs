//! Redirects followed as browsers follow them: method rules, cookies set on a hop, a hop to
//! another origin without `Authorization`, loops and the hop limit as step errors, `redirects: 0`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::util::*;

/// A server of redirects; `/echo` answers with the method, body and whether a cookie and an
/// `Authorization` came.
fn redirect_server(other: String) -> ServerThread {
    serve_on_thread(move |stream| {
        let other = other.clone();
        async move {
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let other = other.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let query = req.uri().query().unwrap_or("").to_string();
                        let method = req.method().to_string();
                        let cookie = req
                            .headers()
                            .get("cookie")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let auth = req.headers().contains_key("authorization");
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let to = |code: u16, location: &str| {
                            let mut r = hyper::Response::new(Full::new(Bytes::new()));
                            *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
                            r.headers_mut()
                                .insert("location", location.parse().unwrap());
                            r
                        };
                        let r = match path.as_str() {
                            "/login" => {
                                let mut r = to(302, "/home");
                                r.headers_mut()
                                    .insert("set-cookie", "sid=s1; Path=/".parse().unwrap());
                                r
                            }
                            "/home" if cookie.contains("sid=s1") => {
                                hyper::Response::new(Full::new(Bytes::from(r#"{"home":true}"#)))
                            }
                            "/home" => {
                                let mut r = hyper::Response::new(Full::new(Bytes::from("{}")));
                                *r.status_mut() = hyper::StatusCode::UNAUTHORIZED;
                                r
                            }
                            "/s301" => to(301, "/echo"),
                            "/s302" => to(302, "/echo"),
                            "/s303" => to(303, "/echo"),
                            "/s307" => to(307, "/echo"),
                            "/s308" => to(308, "/echo"),
                            "/away" => to(302, &format!("{other}/echo")),
                            "/loop-a" => to(302, "/loop-b"),
                            "/loop-b" => to(302, "loop-a"),
                            "/chain" => {
                                let n: u32 = query.trim_start_matches("n=").parse().unwrap_or(0);
                                if n == 0 {
                                    hyper::Response::new(Full::new(Bytes::from("{}")))
                                } else {
                                    to(302, &format!("/chain?n={}", n - 1))
                                }
                            }
                            "/echo" => hyper::Response::new(Full::new(Bytes::from(
                                serde_json::json!({
                                    "method": method,
                                    "body": String::from_utf8_lossy(&body),
                                    "auth": auth,
                                })
                                .to_string(),
                            ))),
                            _ => {
                                let mut r = hyper::Response::new(Full::new(Bytes::new()));
                                *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                                r
                            }
                        };
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        }
    })
}

#[test]
fn redirects_follow_the_method_rules_keep_cookies_and_count_hops() {
    let other = start_server(ServerConfig::default());
    let srv = redirect_server(other.url());
    let d = dir();
    let post = |name: &str, path: &str, method: &str, body: &str| {
        format!(
            "    - {{ name: {name}, post: {path}, headers: {{ authorization: 'Bearer t' }}, body: '{body}', check: {{ status: 200, json: {{ $.method: {method}, $.body: '{}' }} }} }}\n",
            if method == "POST" { body } else { "" }
        )
    };
    let steps = [
        "    - { name: login, post: /login, body: 'u=a', check: { status: 200, json: { $.home: true } } }\n".to_string(),
        post("moved", "/s301", "GET", "x=1"),
        post("found", "/s302", "GET", "x=2"),
        post("see_other", "/s303", "GET", "x=3"),
        post("temporary", "/s307", "POST", "x=4"),
        post("permanent", "/s308", "POST", "x=5"),
        "    - { name: raw, get: /s302, redirects: 0, check: { status: 302 } }\n".to_string(),
        "    - { name: long, get: '/chain?n=3' }\n".to_string(),
    ]
    .concat();
    let s = write_scenario(
        d.path(),
        &format!("http://{}", srv.addr),
        &format!(
            "journeys:\n  j:\n{steps}flows:\n  f: {{ journey: j, vus: 1, per_vu_iterations: 1 }}\n"
        ),
    );
    let (code, _, r, _) = run_bin_scenario(&s, &[]);
    assert_exit(code, 0, &r, &format!("{:?}", r.error_examples));
    let html = std::fs::read_to_string(d.path().join("out/report.html")).unwrap();
    assert!(
        html.contains("Redirects (each step"),
        "the report counts hops"
    );
    for (key, hops) in [
        ("f.login", 1),
        ("f.moved", 1),
        ("f.see_other", 1),
        ("f.temporary", 1),
        ("f.permanent", 1),
        ("f.raw", 0),
        ("f.long", 3),
    ] {
        let st = step(&r, key);
        assert_eq!(st.failed, 0, "{key}: {:?}", r.error_examples);
        assert_eq!(st.redirects, hops, "{key}");
    }
}

#[test]
fn a_hop_to_another_origin_drops_authorization_and_loops_and_limits_are_step_errors() {
    let other = start_server(ServerConfig::default());
    let srv = redirect_server(other.url());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &format!("http://{}", srv.addr),
        "defaults: { on_error: continue, redirects: 2 }\njourneys:\n  j:\n    - { name: away, get: /away, headers: { authorization: 'Bearer secret-t' }, extract: { hs: $.headers }, check: { status: 200 } }\n    - script: 'if \"authorization\" in hs { throw \"Authorization crossed to another origin\"; }'\n    - { name: loop, get: /loop-a }\n    - { name: limit, get: '/chain?n=5' }\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 1 }\n",
    );
    let (_, _, r, _) = run_bin_scenario(&s, &[]);
    assert_eq!(step(&r, "f.away").failed, 0, "{:?}", r.error_examples);
    assert!(
        !r.error_examples
            .iter()
            .any(|e| e.message.contains("crossed")),
        "{:?}",
        r.error_examples
    );
    assert_eq!(flow(&r, "f").errors.len(), 0, "{:?}", r.error_examples);
    assert_eq!(
        other.seen.arrivals("/echo").len(),
        1,
        "the hop went to the other origin"
    );
    // The other server echoes the headers it got: no Authorization crossed.
    let message = |key: &str| {
        r.error_examples
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.message.clone())
            .unwrap_or_default()
    };
    let looped = message("f.loop");
    assert!(
        looped.contains("redirect loop") && looped.contains("/loop-b"),
        "{looped}"
    );
    let limited = message("f.limit");
    assert!(
        limited.contains("more than 2 redirects") && limited.contains("n=3"),
        "{limited}"
    );
    assert_eq!(step(&r, "f.loop").failed, 1);
    assert_eq!(step(&r, "f.limit").failed, 1);
}
