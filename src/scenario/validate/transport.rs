//! `defaults.hosts`, `defaults.proxy` (else the proxy environment variables) and
//! `defaults.client_cert` / `client_key`: how connections reach their targets.

use std::sync::Arc;

use super::super::plan::FileKind;
use super::super::raw::RawDefaults;
use super::super::source::join_key;
use super::super::transport::*;
use super::Validator;

impl Validator<'_> {
    pub(super) fn transport(&mut self, d: &RawDefaults) -> Transport {
        let mut hosts = Vec::new();
        for (name, to) in &d.hosts {
            match parse_host_override(name, to) {
                Ok(h) => hosts.push(h),
                Err(e) => self.err(&join_key("defaults.hosts", name), e),
            }
        }
        let proxies = match d.proxy.as_deref().map(str::trim) {
            Some("none" | "off") => Proxies::none(),
            Some(url) => match parse_proxy(url) {
                Ok(p) => Proxies::fixed(p),
                Err(e) => {
                    self.err(
                        "defaults.proxy",
                        format!(
                            "invalid proxy `{}`: {e} (or `none` to ignore the proxy environment variables)",
                            without_credentials(url)
                        ),
                    );
                    Proxies::none()
                }
            },
            None => match Proxies::from_env(|k| std::env::var(k).ok()) {
                Ok(p) => p,
                Err(e) => {
                    self.err(
                        "defaults",
                        format!("the proxy environment variable {e}; fix it, unset it, or set `defaults.proxy: none`"),
                    );
                    Proxies::none()
                }
            },
        };
        Transport {
            hosts: HostMap::new(hosts),
            proxies,
            identity: self.identity(d),
        }
    }

    fn identity(&mut self, d: &RawDefaults) -> Option<Arc<ClientIdentity>> {
        let (cert, key) = match (&d.client_cert, &d.client_key) {
            (None, None) => return None,
            (Some(c), Some(k)) => (c, k),
            (Some(_), None) => {
                self.err_key(
                    "defaults.client_cert",
                    "client_cert needs client_key: the PEM file of its private key",
                );
                return None;
            }
            (None, Some(_)) => {
                self.err_key(
                    "defaults.client_key",
                    "client_key needs client_cert: the PEM file of its certificate",
                );
                return None;
            }
        };
        let cert_pem = self.read_file("defaults.client_cert", cert, FileKind::Data)?;
        let key_pem = self.read_file("defaults.client_key", key, FileKind::Data)?;
        match ClientIdentity::from_pem(&cert_pem, &key_pem) {
            Ok(id) => Some(Arc::new(id)),
            Err(e) => {
                let (at, what) = match e {
                    IdentityError::Key(_) => ("defaults.client_key", key),
                    _ => ("defaults.client_cert", cert),
                };
                self.err(at, format!("`{what}`: {e}"));
                None
            }
        }
    }
}
