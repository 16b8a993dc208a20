//! How connections reach their targets: `defaults.hosts` overrides (curl's `--resolve`), proxies
//! (`defaults.proxy`, or `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY`) and the client certificate for
//! mutual TLS. Everything here is read and checked when the scenario loads; the HTTP client only
//! looks things up.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use base64::Engine as _;
use http::HeaderValue;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The connection settings of a run.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    /// Host names dialled at a fixed address.
    pub hosts: HostMap,
    /// The proxies requests go through.
    pub proxies: Proxies,
    /// The certificate and key presented to servers that ask for one (mutual TLS).
    pub identity: Option<Arc<ClientIdentity>>,
}

/// `defaults.hosts`: names dialled at a given address while TLS and `Host` keep the name.
#[derive(Debug, Clone, Default)]
pub struct HostMap(Vec<HostOverride>);

/// One `name[:port] → address[:port]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOverride {
    /// The host name, lower case.
    pub name: String,
    /// Only this port of the name, when the key says one.
    pub port: Option<u16>,
    /// The address dialled instead.
    pub to: IpAddr,
    /// The port dialled instead (the request's own port otherwise).
    pub to_port: Option<u16>,
}

impl HostMap {
    /// A map of these overrides.
    pub fn new(entries: Vec<HostOverride>) -> HostMap {
        HostMap(entries)
    }

    /// Whether no name is overridden.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The address to dial for `host:port`, when an entry names it: an entry with the same port
    /// wins over one for any port.
    pub fn lookup(&self, host: &str, port: u16) -> Option<SocketAddr> {
        let matches = |e: &&HostOverride| e.name.eq_ignore_ascii_case(host);
        let e = self
            .0
            .iter()
            .filter(matches)
            .find(|e| e.port == Some(port))
            .or_else(|| self.0.iter().filter(matches).find(|e| e.port.is_none()))?;
        Some(SocketAddr::new(e.to, e.to_port.unwrap_or(port)))
    }
}

/// Reads one `defaults.hosts` entry: `name` or `name:port` → `address` or `address:port`
/// (`[v6]:port` for IPv6 with a port).
pub fn parse_host_override(key: &str, value: &str) -> Result<HostOverride, String> {
    let (name, port) = match key.rsplit_once(':') {
        Some((n, p)) if !n.is_empty() => {
            let p = p
                .parse::<u16>()
                .map_err(|_| format!("`{p}` in `{key}` is not a port"))?;
            (n, Some(p))
        }
        _ => (key, None),
    };
    if name.is_empty() || name.contains(['/', ' ', '[']) {
        return Err(format!(
            "`{key}` is not a host name (write `api.example.com` or `api.example.com:443`)"
        ));
    }
    let value = value.trim();
    let (to, to_port) = if let Ok(ip) = value.parse::<IpAddr>() {
        (ip, None)
    } else if let Ok(sa) = value.parse::<SocketAddr>() {
        (sa.ip(), Some(sa.port()))
    } else {
        return Err(format!(
            "`{value}` is not an IP address: write `10.0.0.5`, `10.0.0.5:8443` or `[::1]:8443` (a host name cannot stand for another)"
        ));
    };
    Ok(HostOverride {
        name: name.to_ascii_lowercase(),
        port,
        to,
        to_port,
    })
}

/// An HTTP proxy: plain HTTP requests are forwarded in absolute form, TLS (and HTTP/2 without
/// TLS) goes through a `CONNECT` tunnel.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Host name or address.
    pub host: String,
    /// Port (8080 when the URL has none, as curl assumes 1080 and most proxies listen on 8080;
    /// stated in the README).
    pub port: u16,
    /// `Proxy-Authorization: Basic …` from the URL's user and password.
    pub auth: Option<HeaderValue>,
}

impl std::fmt::Debug for Proxy {
    // The credentials never reach a message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "http://{}:{}", self.host, self.port)
        }
    }
}

/// Reads a proxy URL: `http://[user:password@]host[:port]` (the scheme may be left out).
pub fn parse_proxy(url: &str) -> Result<Proxy, String> {
    let url = url.trim();
    let rest = match url.split_once("://") {
        Some(("http" | "HTTP", rest)) => rest,
        Some(("https", _)) => {
            return Err(
                "a TLS connection to the proxy itself (https://) is not supported: use http:// (HTTPS targets still go through a CONNECT tunnel)"
                    .into(),
            );
        }
        Some((other, _)) => {
            return Err(format!("unsupported proxy scheme `{other}`: expected http"));
        }
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let uri: http::uri::Authority = hostport
        .parse()
        .map_err(|_| format!("`{hostport}` is not host[:port]"))?;
    let host = uri.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("the proxy URL has no host".into());
    }
    let auth = match userinfo {
        None => None,
        Some(u) => {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            let pair = format!("{}:{}", percent_decode(user), percent_decode(pass));
            let value = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            );
            let mut v = HeaderValue::from_str(&value)
                .map_err(|_| "the proxy credentials are not valid in a header".to_string())?;
            v.set_sensitive(true);
            Some(v)
        }
    };
    Ok(Proxy {
        host: host.to_string(),
        port: uri.port_u16().unwrap_or(8080),
        auth,
    })
}

/// A proxy URL as it may be shown: any `user:password@` replaced by `***@`.
pub fn without_credentials(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let shown = match rest[..authority_end].rsplit_once('@') {
        Some((_, host)) => format!("***@{host}{}", &rest[authority_end..]),
        None => rest.to_string(),
    };
    if scheme.is_empty() {
        shown
    } else {
        format!("{scheme}://{shown}")
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Which proxy each request takes.
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    http: Option<Proxy>,
    https: Option<Proxy>,
    bypass: Vec<Bypass>,
    /// Proxies from the environment leave loopback alone (as Go's and so k6's do): a proxy
    /// exported for the outside world must not swallow traffic to a local server.
    skip_loopback: bool,
}

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq)]
enum Bypass {
    All,
    /// The name and every name under it.
    Domain(String),
    /// An address range.
    Net(IpAddr, u8),
}

impl Proxies {
    /// No proxy at all (`defaults.proxy: none`).
    pub fn none() -> Proxies {
        Proxies::default()
    }

    /// One proxy for every request (`defaults.proxy: URL`), loopback included.
    pub fn fixed(p: Proxy) -> Proxies {
        Proxies {
            http: Some(p.clone()),
            https: Some(p),
            bypass: Vec::new(),
            skip_loopback: false,
        }
    }

    /// The proxies `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` name (lower-case names too, which
    /// win as curl's do); `env` reads a variable. An unreadable URL is an error naming it.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Proxies, String> {
        let var = |name: &str| {
            env(&name.to_ascii_lowercase())
                .or_else(|| env(name))
                .filter(|v| !v.trim().is_empty())
        };
        let read = |name: &str| {
            var(name)
                .map(|v| {
                    parse_proxy(&v)
                        .map_err(|e| format!("{name} `{}`: {e}", without_credentials(&v)))
                })
                .transpose()
        };
        let http = read("HTTP_PROXY")?;
        let https = read("HTTPS_PROXY")?;
        let bypass = var("NO_PROXY")
            .map(|v| parse_no_proxy(&v))
            .unwrap_or_default();
        Ok(Proxies {
            http,
            https,
            bypass,
            skip_loopback: true,
        })
    }

    /// Whether any request may take a proxy.
    pub fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }

    /// The proxy a request to `host` takes (`https` for a TLS target), if any. `dialled` is
    /// the address `defaults.hosts` gives the host: loopback and `NO_PROXY` ranges are judged on
    /// it too, since that is where the proxy would connect.
    pub fn for_target(&self, https: bool, host: &str, dialled: Option<IpAddr>) -> Option<&Proxy> {
        let p = if https { &self.https } else { &self.http }.as_ref()?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ips: Vec<IpAddr> = host
            .parse::<IpAddr>()
            .ok()
            .into_iter()
            .chain(dialled)
            .collect();
        if self.skip_loopback
            && (host.eq_ignore_ascii_case("localhost")
                || host.to_ascii_lowercase().ends_with(".localhost")
                || ips.iter().any(|ip| ip.is_loopback()))
        {
            return None;
        }
        let bypassed = self.bypass.iter().any(|b| match b {
            Bypass::All => true,
            Bypass::Domain(d) => {
                let h = host.to_ascii_lowercase();
                h == *d || h.strip_suffix(d.as_str()).is_some_and(|s| s.ends_with('.'))
            }
            Bypass::Net(net, bits) => ips.iter().any(|ip| in_net(*ip, *net, *bits)),
        });
        (!bypassed).then_some(p)
    }
}

fn parse_no_proxy(v: &str) -> Vec<Bypass> {
    v.split([',', ' '])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            if e == "*" {
                return Bypass::All;
            }
            let (addr, bits) = match e.split_once('/') {
                Some((a, b)) => (a, b.parse::<u8>().ok()),
                None => (e, None),
            };
            if let Ok(ip) = addr.trim_start_matches('[').trim_end_matches(']').parse() {
                let full = if matches!(ip, IpAddr::V4(_)) { 32 } else { 128 };
                return Bypass::Net(ip, bits.unwrap_or(full).min(full));
            }
            // `example.com:8080`: the port is ignored, as most tools do.
            let name = e.split(':').next().unwrap_or(e);
            Bypass::Domain(
                name.trim_start_matches("*.")
                    .trim_start_matches('.')
                    .to_ascii_lowercase(),
            )
        })
        .collect()
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// A certificate chain and its private key, presented when a server asks (mutual TLS).
pub struct ClientIdentity {
    /// The chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certs", &self.certs.len())
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// Reads PEM text: every certificate of `cert`, the first private key of `key` (PKCS#8,
    /// PKCS#1 or SEC1), and checks that the key is the leaf certificate's.
    pub fn from_pem(cert: &[u8], key: &[u8]) -> Result<ClientIdentity, IdentityError> {
        let certs = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| IdentityError::Cert(e.to_string()))?;
        if certs.is_empty() {
            return Err(IdentityError::Cert(
                "no `BEGIN CERTIFICATE` section found".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
            IdentityError::Key(match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "no `BEGIN PRIVATE KEY` (or RSA / EC PRIVATE KEY) section found".into()
                }
                e => e.to_string(),
            })
        })?;
        let signer = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| IdentityError::Key(e.to_string()))?;
        rustls::sign::CertifiedKey::new(certs.clone(), signer)
            .keys_match()
            .map_err(|_| IdentityError::Mismatch)?;
        Ok(ClientIdentity { certs, key })
    }
}

/// Why a client certificate or key cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// The certificate file has no usable certificate.
    #[error("{0}")]
    Cert(String),
    /// The key file has no usable key.
    #[error("{0}")]
    Key(String),
    /// The key does not belong to the certificate.
    #[error("the private key does not belong to the first certificate")]
    Mismatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_overrides_prefer_the_entry_for_the_port() {
        let m = HostMap::new(vec![
            parse_host_override("api.example.com", "10.0.0.5").unwrap(),
            parse_host_override("API.example.com:443", "[::1]:8443").unwrap(),
        ]);
        assert_eq!(
            m.lookup("api.example.com", 80),
            Some("10.0.0.5:80".parse().unwrap())
        );
        assert_eq!(
            m.lookup("api.EXAMPLE.com", 443),
            Some("[::1]:8443".parse().unwrap())
        );
        assert_eq!(m.lookup("example.com", 80), None);
        assert!(parse_host_override("a.b", "db.internal").is_err());
        assert!(parse_host_override("a.b:http", "10.0.0.1").is_err());
    }

    #[test]
    fn proxy_urls_carry_credentials_that_never_print() {
        let p = parse_proxy("http://al%40ice:s3cret@proxy.corp:3128").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.corp", 3128));
        let expected = base64::engine::general_purpose::STANDARD.encode("al@ice:s3cret");
        assert_eq!(
            p.auth.as_ref().unwrap().to_str().unwrap(),
            format!("Basic {expected}")
        );
        assert_eq!(format!("{p:?}"), "http://proxy.corp:3128");
        assert_eq!(parse_proxy("[::1]").unwrap().port, 8080);
        assert!(parse_proxy("https://proxy:443").is_err());
        assert!(parse_proxy("socks5://proxy:1080").is_err());
    }

    #[test]
    fn environment_proxies_follow_no_proxy_and_leave_loopback_alone() {
        let env = |k: &str| match k {
            "HTTP_PROXY" => Some("http://p1:1".to_string()),
            "https_proxy" => Some("p2:2".to_string()),
            "NO_PROXY" => Some("internal.corp, .svc,10.0.0.0/8 ,[fd00::]/8".to_string()),
            _ => None,
        };
        let p = Proxies::from_env(env).unwrap();
        assert_eq!(
            p.for_target(false, "api.example.com", None).unwrap().host,
            "p1"
        );
        assert_eq!(
            p.for_target(true, "api.example.com", None).unwrap().host,
            "p2"
        );
        for bypassed in [
            "internal.corp",
            "db.internal.corp",
            "a.svc",
            "10.1.2.3",
            "fd00::1",
            "localhost",
            "127.0.0.1",
            "::1",
        ] {
            assert!(p.for_target(true, bypassed, None).is_none(), "{bypassed}");
        }
        assert!(p.for_target(true, "notinternal.corp", None).is_some());
        assert!(p.for_target(true, "11.0.0.1", None).is_some());
        // Where an override sends the name decides too.
        let lo = Some("127.0.0.1".parse().unwrap());
        assert!(p.for_target(true, "api.example.com", lo).is_none());
        let inside = Some("10.9.9.9".parse().unwrap());
        assert!(p.for_target(true, "api.example.com", inside).is_none());
        let fixed = Proxies::fixed(parse_proxy("127.0.0.1:9").unwrap());
        assert!(fixed.for_target(false, "127.0.0.1", None).is_some());
        let bad = Proxies::from_env(|k| (k == "HTTPS_PROXY").then(|| "ftp://u:pw@x".to_string()));
        let e = bad.unwrap_err();
        assert!(e.starts_with("HTTPS_PROXY `ftp://***@x`"), "{e}");
    }
}
