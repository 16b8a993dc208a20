//! Secrets (`secret: true` variables, secret extractions and whatever goes into credential
//! headers) never reach the terminal, result files, reports or script output, even when a check
//! failure or a script error quotes them.

use std::process::Command;

use crate::util::*;

const API_KEY: &str = "k-live-7f3a9c1e5b";
const PIN: &str = "pin-4711-xyz";
/// The session cookie the test server sets on `/setcookie`.
const SESSION: &str = "abc123";

/// Everything a run showed: its stdout, its stderr and every file it wrote to `out`.
fn outputs(run: &std::process::Output, out: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut all = vec![
        ("stdout".to_string(), run.stdout.clone()),
        ("stderr".to_string(), run.stderr.clone()),
    ];
    for entry in std::fs::read_dir(out).unwrap() {
        let p = entry.unwrap().path();
        all.push((p.display().to_string(), std::fs::read(&p).unwrap()));
    }
    all
}

#[test]
fn secret_values_are_masked_in_every_output() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        &format!(
            r#"
vars:
  api_key: {{ env: STAMPEDE_TEST_API_KEY, secret: true }}
  pin: {{ value: "{PIN}", secret: true }}
  region: {{ env: STAMPEDE_TEST_UNSET_REGION, default: eu }}
defaults: {{ on_error: continue }}
journeys:
  j:
    steps:
      - name: login
        post: /login
        json: {{ user: "alice-{{{{vu}}}}" }}
        extract: {{ token: $.token }}
      - name: session
        get: /setcookie
        extract: {{ sid: {{ cookie: sid, secret: true }} }}
      - name: authorized
        post: /echo
        headers: {{ Authorization: "Bearer {{{{token}}}}", X-Api-Key: "{{{{api_key}}}}" }}
        json: {{ pin: "{{{{pin}}}}", region: "{{{{region}}}}" }}
        check: {{ json: {{ $.headers.authorization: nobody }} }}
      - name: body
        post: /echo
        body: "{{{{api_key}}}} {{{{sid}}}} {{{{pin}}}}"
        check: {{ json: {{ $.body: nothing }} }}
      - script: 'print("key " + api_key + " token " + token + " pin " + pin + " sid " + sid); throw "failing with " + token;'
flows:
  f: {{ journey: j, vus: 1, iterations: 2 }}
"#
        ),
    );
    let out = d.path().join("out");
    let run = Command::new(bin())
        .args(["run", s.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .env("STAMPEDE_TEST_API_KEY", API_KEY)
        .env_remove("STAMPEDE_TEST_UNSET_REGION")
        .output()
        .unwrap();
    assert!(out.exists(), "{}", String::from_utf8_lossy(&run.stderr));
    let outputs = outputs(&run, &out);
    assert!(
        outputs.len() >= 6,
        "expected every result file: {outputs:?}"
    );

    // The values really were used (the server saw them), and the failures that quote them
    // really were recorded, so the masking below is tested, not vacuous.
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_eq!(step(&r, "f.login").requests, 2);
    assert!(r.error_examples.len() >= 3, "{:?}", r.error_examples);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("[script] key *** token *** pin *** sid ***"),
        "{stderr}"
    );
    let json =
        String::from_utf8_lossy(&std::fs::read(out.join("results.json")).unwrap()).into_owned();
    assert!(
        json.contains("Bearer ***"),
        "the check failure quotes the header, masked: {json}"
    );
    assert!(json.contains("failing with ***"), "{json}");

    for secret in [API_KEY, PIN, SESSION, "tok-alice-1"] {
        for (name, bytes) in &outputs {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains(secret),
                "{secret} appears in {name}:\n{text}"
            );
        }
    }
}

#[test]
fn an_unset_environment_variable_without_default_is_a_validation_error() {
    let d = dir();
    let s = write(
        d.path(),
        "s.yaml",
        "target: http://127.0.0.1:9\nvars:\n  key: { env: STAMPEDE_TEST_SURELY_UNSET, secret: true }\njourneys:\n  j: [ { get: / } ]\nflows:\n  f: { journey: j, vus: 1, iterations: 1 }\n",
    );
    let out = Command::new(bin())
        .args(["validate", s.to_str().unwrap()])
        .env_remove("STAMPEDE_TEST_SURELY_UNSET")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("s.yaml:3:"), "{err}");
    assert!(
        err.contains("STAMPEDE_TEST_SURELY_UNSET") && err.contains("default"),
        "{err}"
    );
}

#[test]
fn credential_headers_reach_the_server_whole_and_every_output_masked() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    // X-Api-Key from a plain variable, a literal Proxy-Authorization and Cookie: all credential
    // headers, so their values are secret. `short` is a secret under 4 characters (never masked:
    // it would garble every message); `four` is exactly 4 (masked).
    let s = write_scenario(
        d.path(),
        &srv.url(),
        r#"
vars: { plain: "plainvar-1234", short: { value: "abc", secret: true }, four: { value: "wxyz", secret: true } }
defaults: { on_error: continue }
journeys:
  j:
    - name: creds
      post: /echo
      headers: { X-Api-Key: "{{ plain }}", Proxy-Authorization: "Basic cHJveHk6c2VjcmV0", Cookie: "sess=cookie-val-42" }
      extract: { h: $.headers }
    - script: |
        if h["x-api-key"] != plain || h["proxy-authorization"] != "Basic cHJveHk6c2VjcmV0" || h["cookie"] != "sess=cookie-val-42" { throw "the server got something else"; }
        throw "saw " + h["x-api-key"] + " " + h["proxy-authorization"] + " " + h["cookie"] + " s=" + short + " f=" + four;
flows: { f: { journey: j, vus: 1, iterations: 1 } }
"#,
    );
    let out = d.path().join("out");
    let run = Command::new(bin())
        .args(["run", s.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    let messages: Vec<&str> = r
        .error_examples
        .iter()
        .map(|e| e.message.as_str())
        .collect();
    // The script's first check passed (the server received the real values), so it threw the
    // second message, which quotes every credential: masked, but for the 3-character secret.
    assert!(
        messages
            .iter()
            .any(|m| m.ends_with("saw *** *** *** s=abc f=***")),
        "{messages:?}"
    );
    let mut outputs = vec![run.stdout, run.stderr];
    for entry in std::fs::read_dir(&out).unwrap() {
        outputs.push(std::fs::read(entry.unwrap().path()).unwrap());
    }
    for secret in ["plainvar-1234", "cHJveHk6c2VjcmV0", "cookie-val-42", "wxyz"] {
        for bytes in &outputs {
            assert!(
                !String::from_utf8_lossy(bytes).contains(secret),
                "{secret} leaked"
            );
        }
    }
}

/// A user whose creation fails (the script library's set-up throws) quotes a secret feeder
/// column and a secret variable in its error; neither reaches any output. The user was never
/// made, so the message must be masked against what it held when it failed.
#[test]
fn a_secret_in_a_failed_user_creation_reaches_no_output() {
    const TOKEN: &str = "tok-row-93c1d7";
    const KEY: &str = "var-key-51e8aa";
    let srv = start_server(ServerConfig::default());
    let d = dir();
    std::fs::write(d.path().join("creds.csv"), format!("token\n{TOKEN}\n")).unwrap();
    std::fs::write(
        d.path().join("setup.rhai"),
        "throw \"cannot set up \" + creds.token + \" with \" + key;\n",
    )
    .unwrap();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        &format!(
            r#"
vars:
  key: {{ value: "{KEY}", secret: true }}
data:
  creds: {{ csv: creds.csv, pick: unique }}
scripts: [setup.rhai]
journeys:
  j:
    - name: me
      get: /
      headers: {{ Authorization: "Bearer {{{{creds.token}}}}" }}
flows:
  f: {{ journey: j, vus: 1, iterations: 1 }}
"#
        ),
    );
    let out = d.path().join("out");
    // The cap only bounds the test: the flow must end by itself once its one user failed (it
    // waited for its iteration budget forever).
    let run = Command::new(bin())
        .args(["run", s.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(["--duration", "120s"])
        .output()
        .unwrap();
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert!(
        r.duration_s < 60.0,
        "the flow ran to the cap ({} s) instead of ending when its user failed",
        r.duration_s
    );
    // The creation really failed with the message that quotes both values.
    let example = r
        .error_examples
        .iter()
        .find(|e| e.class == "script")
        .unwrap_or_else(|| panic!("no script error: {:?}", r.error_examples));
    assert!(example.message.contains("cannot set up"), "{example:?}");
    let outputs = outputs(&run, &out);
    for secret in [TOKEN, KEY] {
        for (name, bytes) in &outputs {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains(secret),
                "{secret} appears in {name}:\n{text}"
            );
        }
    }
}
