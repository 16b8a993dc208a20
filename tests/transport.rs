//! How connections reach their targets: `defaults.hosts` with the name kept for TLS and `Host`,
//! proxies (CONNECT tunnels, absolute-form forwarding, credentials, the environment variables),
//! mutual TLS, and IPv6 literal targets.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::util::proxy;
use crate::util::*;

/// What a TLS test server saw: the SNI of each handshake and the `Host` of each request.
#[derive(Debug, Default)]
struct TlsSeen {
    sni: Mutex<Vec<Option<String>>>,
    hosts: Mutex<Vec<String>>,
    refused: Mutex<u64>,
}

/// A TLS server for `shop.test` answering `{}` to everything; with `client_ca`, it demands a
/// client certificate that CA issued.
fn tls_server(client_ca: Option<CertificateDer<'static>>) -> (ServerThread, Arc<TlsSeen>) {
    let cert = rcgen::generate_simple_self_signed(vec!["shop.test".to_string()]).unwrap();
    let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca).unwrap();
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let seen = Arc::new(TlsSeen::default());
    let seen2 = seen.clone();
    let server = serve_on_thread(move |stream| {
        let (acceptor, seen) = (acceptor.clone(), seen2.clone());
        async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                *seen.refused.lock().unwrap() += 1;
                return;
            };
            let sni = tls.get_ref().1.server_name().map(str::to_string);
            seen.sni.lock().unwrap().push(sni);
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let host = req
                            .headers()
                            .get("host")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        seen.hosts.lock().unwrap().push(host);
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"{}"),
                        )))
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
        }
    });
    (server, seen)
}

fn one_request(target: &str, defaults: &str) -> String {
    format!(
        "target: {target}\ndefaults: {{ on_error: continue, {defaults} }}\njourneys:\n  j: [ {{ name: call, get: /ok }} ]\nflows:\n  f: {{ journey: j, vus: 1, per_vu_iterations: 2 }}\n"
    )
}

#[test]
fn a_host_override_dials_the_address_and_keeps_the_name_for_sni_and_host() {
    let (srv, seen) = tls_server(None);
    let d = dir();
    let port = srv.addr.port();
    let s = write(
        d.path(),
        "s.yaml",
        &one_request(
            &format!("https://shop.test:{port}"),
            "insecure: true, hosts: { shop.test: 127.0.0.1 }",
        ),
    );
    let (code, _, r, _) = run_bin_scenario(&s, &[]);
    assert_exit(code, 0, &r, &format!("{:?}", r.error_examples));
    assert_eq!(
        (step(&r, "f.call").requests, step(&r, "f.call").failed),
        (2, 0)
    );
    assert_eq!(
        *seen.sni.lock().unwrap(),
        vec![Some("shop.test".to_string())]
    );
    assert_eq!(
        *seen.hosts.lock().unwrap(),
        vec![format!("shop.test:{port}"); 2]
    );
}

/// A CA, and a client certificate it issued (PEM certificate and key).
fn client_identity() -> (CertificateDer<'static>, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["load-client".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.der().clone(), cert.pem(), key.serialize_pem())
}

#[test]
fn mutual_tls_is_accepted_with_the_issued_certificate_and_refused_without() {
    let (ca, cert_pem, key_pem) = client_identity();
    let (srv, seen) = tls_server(Some(ca));
    let target = format!("https://127.0.0.1:{}", srv.addr.port());
    let d = dir();
    write(d.path(), "client.pem", &cert_pem);
    write(d.path(), "client.key", &key_pem);
    let with = write(
        d.path(),
        "with.yaml",
        &one_request(
            &target,
            "insecure: true, client_cert: client.pem, client_key: client.key",
        ),
    );
    let (code, _, r, _) = run_bin_scenario(&with, &[]);
    assert_exit(code, 0, &r, &format!("{:?}", r.error_examples));
    assert_eq!(
        (step(&r, "f.call").requests, step(&r, "f.call").failed),
        (2, 0)
    );
    assert_eq!(*seen.refused.lock().unwrap(), 0);

    // Without a certificate, and with one the server's CA did not issue: a TLS error of the
    // step, counted, never a panic.
    let (_, other_cert, other_key) = client_identity();
    write(d.path(), "other.pem", &other_cert);
    write(d.path(), "other.key", &other_key);
    for defaults in [
        "insecure: true",
        "insecure: true, client_cert: other.pem, client_key: other.key",
    ] {
        let e = tempfile::tempdir_in(d.path()).unwrap();
        let s = write(e.path(), "s.yaml", &one_request(&target, defaults));
        for f in ["other.pem", "other.key"] {
            std::fs::copy(d.path().join(f), e.path().join(f)).unwrap();
        }
        let (code, _, r, _) = run_bin_scenario(&s, &[]);
        assert_eq!(
            code, 0,
            "{defaults}: no threshold, so the errors are counted, not gated"
        );
        let st = step(&r, "f.call");

        assert_eq!(st.failed, 2, "{defaults}");
        // In TLS 1.3 the server judges the client's certificate after the client's handshake
        // is done: its refusal arrives as an alert (`tls`) or, when the server's close overtakes
        // the alert, as a reset. Either way the step failed and nothing else was counted.
        let tls_or_reset = st.errors.get("tls").copied().unwrap_or(0)
            + st.errors.get("reset").copied().unwrap_or(0);
        assert_eq!(tls_or_reset, 2, "{defaults}: {:?}", st.errors);
    }
}

#[test]
fn a_client_key_that_is_not_the_certificates_is_refused_at_load_with_its_position() {
    let (_, cert_pem, _) = client_identity();
    let (_, _, other_key) = client_identity();
    let d = dir();
    write(d.path(), "client.pem", &cert_pem);
    write(d.path(), "client.key", &other_key);
    write(d.path(), "empty.pem", "not pem\n");
    let s = write(
        d.path(),
        "s.yaml",
        &one_request(
            "https://127.0.0.1:9",
            "client_cert: client.pem,\n  client_key: client.key",
        ),
    );
    let (code, _, err) = run_bin(&["validate", s.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("s.yaml:2:") && err.contains("does not belong"),
        "{err}"
    );
    let s = write(
        d.path(),
        "s.yaml",
        &one_request(
            "https://127.0.0.1:9",
            "client_cert: empty.pem, client_key: missing.key",
        ),
    );
    let (code, _, err) = run_bin(&["validate", s.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read `missing.key`"), "{err}");
}

#[test]
fn a_proxy_tunnels_tls_and_overridden_hosts_and_forwards_plain_http_in_absolute_form() {
    let plain = start_server(ServerConfig::default());
    let other = start_server(ServerConfig::default());
    let (tls, tls_seen) = tls_server(None);
    let px = proxy::start(None);
    let d = dir();
    let s = write(
        d.path(),
        "s.yaml",
        &format!(
            "target: http://shop.test:{plain_port}\ntargets:\n  secure: https://shop.test:{tls_port}\n  moved: http://shop.test:{other_port}\ndefaults: {{ insecure: true, proxy: 'http://{proxy}', hosts: {{ 'shop.test:{tls_port}': 127.0.0.1, 'shop.test:{other_port}': 127.0.0.1 }} }}\njourneys:\n  j:\n    - {{ name: plain, get: /echo }}\n    - {{ name: secure, target: secure, get: /ok }}\n    - {{ name: moved, target: moved, get: /echo, check: {{ json: {{ $.headers.host: 'shop.test:{other_port}' }} }} }}\nflows:\n  f: {{ journey: j, vus: 1, per_vu_iterations: 1 }}\n",
            plain_port = plain.addr.port(),
            tls_port = tls.addr.port(),
            other_port = other.addr.port(),
            proxy = px.addr,
        ),
    );
    let (code, _, r, _) = run_bin_scenario(&s, &[]);
    assert_exit(code, 0, &r, &format!("{:?}", r.error_examples));
    for key in ["f.plain", "f.secure", "f.moved"] {
        assert_eq!(step(&r, key).failed, 0, "{key}: {:?}", r.error_examples);
    }
    // TLS, and a plain host `hosts` overrides, go through CONNECT to the overridden address
    // (a forwarded request line would make the proxy use the address instead of the name).
    assert_eq!(
        *px.seen.connects.lock().unwrap(),
        vec![
            format!("127.0.0.1:{}", tls.addr.port()),
            format!("127.0.0.1:{}", other.addr.port())
        ]
    );
    // Plain HTTP to a name goes in absolute form; the proxy resolves the name.
    assert_eq!(
        *px.seen.forwarded.lock().unwrap(),
        vec![(
            format!("GET http://shop.test:{}/echo HTTP/1.1", plain.addr.port()),
            format!("shop.test:{}", plain.addr.port())
        )]
    );
    assert_eq!(plain.seen.ok("/echo"), 1);
    assert_eq!(other.seen.ok("/echo"), 1);
    assert_eq!(
        *tls_seen.sni.lock().unwrap(),
        vec![Some("shop.test".to_string())]
    );
}

#[test]
fn proxy_credentials_are_sent_and_a_refusal_is_a_connect_error_that_says_so() {
    use base64::Engine as _;
    let (tls, _) = tls_server(None);
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("ann:p@ss")
    );
    let px = proxy::start(Some(want));
    let target = format!("https://127.0.0.1:{}", tls.addr.port());
    let d = dir();
    let good = write(
        d.path(),
        "good.yaml",
        &one_request(
            &target,
            &format!("insecure: true, proxy: 'http://ann:p%40ss@{}'", px.addr),
        ),
    );
    let (code, _, r, _) = run_bin_scenario(&good, &[]);
    assert_exit(code, 0, &r, &format!("{:?}", r.error_examples));
    assert_eq!(px.seen.connects.lock().unwrap().len(), 1);

    let e = tempfile::tempdir_in(d.path()).unwrap();
    let bad = write(
        e.path(),
        "bad.yaml",
        &one_request(
            &target,
            &format!("insecure: true, proxy: 'http://ann:wrong@{}'", px.addr),
        ),
    );
    let (code, _, r, _) = run_bin_scenario(&bad, &[]);
    assert_eq!(code, 0);
    let st = step(&r, "f.call");
    assert_eq!(
        st.errors.get("connect").copied(),
        Some(2),
        "{:?}",
        st.errors
    );
    let msg = &r.error_examples[0].message;
    assert!(msg.contains("407") && !msg.contains("wrong"), "{msg}");
    assert_eq!(*px.seen.refused.lock().unwrap(), 2);
}

#[test]
fn the_proxy_environment_variables_apply_unless_no_proxy_names_the_host() {
    let (tls, _) = tls_server(None);
    let px = proxy::start(None);
    let port = tls.addr.port();
    let d = dir();
    let s = write(
        d.path(),
        "s.yaml",
        &one_request(&format!("https://shop.test:{port}"), "insecure: true"),
    );
    let run = |no_proxy: &str| {
        let out = tempfile::tempdir_in(d.path()).unwrap();
        let status = run_command(&s, out.path())
            .env("HTTPS_PROXY", format!("http://{}", px.addr))
            .env("NO_PROXY", no_proxy)
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0), "NO_PROXY={no_proxy}");
        stampede::report::read_json(&out.path().join("results.json")).unwrap()
    };
    let r = run("example.com");
    assert_eq!(step(&r, "f.call").failed, 0, "{:?}", r.error_examples);
    assert_eq!(
        *px.seen.connects.lock().unwrap(),
        vec![format!("shop.test:{port}")]
    );
    // Bypassed, the name is resolved here, where it does not exist: connect errors, no CONNECT.
    let r = run("example.com, .test");
    assert_eq!(step(&r, "f.call").failed, 2);
    assert_eq!(
        px.seen.connects.lock().unwrap().len(),
        1,
        "NO_PROXY skipped it"
    );
}

#[test]
fn an_ipv6_literal_target_is_reached() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        assert!(std::env::var("CI").is_err(), "CI must have IPv6 loopback");
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen2 = seen.clone();
    let srv = serve_on_thread_at("[::1]:0", move |stream| {
        let seen = seen2.clone();
        async move {
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let host = req
                        .headers()
                        .get("host")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    seen.lock().unwrap().push(host);
                    async {
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
    let d = dir();
    let s = write(
        d.path(),
        "s.yaml",
        &one_request(&format!("http://[::1]:{}", srv.addr.port()), "timeout: 5s"),
    );
    let (code, _, r, _) = run_bin_scenario(&s, &[]);
    assert_exit(code, 0, &r, &format!("{:?}", r.error_examples));
    assert_eq!(
        *seen.lock().unwrap(),
        vec![format!("[::1]:{}", srv.addr.port()); 2]
    );
}
