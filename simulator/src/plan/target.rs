//! What the simulator drives and how it reaches it: the embedded app or a base URL
//! (`http://` or `https://`), the target profile, TLS trust (`--ca-cert`, `--insecure`)
//! and the source addresses listener sockets bind to.

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Serialize;

use crate::plan::profile::Profile;
use crate::plan::source::SourceIps;

/// The server a run drives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetSpec {
    /// The app booted in-process on 127.0.0.1:0 over SQLite in a temporary directory.
    Embedded,
    /// A running server; `url` is `http(s)://host:port` without a trailing slash.
    External { url: String },
}

/// How `https://` certificates are trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TlsOptions {
    /// Extra CA certificates (PEM) trusted besides the web PKI roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// Accept any certificate (a self-signed test endpoint).
    pub insecure: bool,
}

/// The target part of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetPlan {
    pub spec: TargetSpec,
    /// How `run` maps onto the target app (`--profile`, or the scenario's `profile`);
    /// the built-in firehose profile by default.
    pub profile: Profile,
    pub tls: TlsOptions,
    /// Source addresses listener connections bind to (`--source-ips`); empty: the
    /// kernel's choice.
    pub source_ips: SourceIps,
}

impl TargetPlan {
    pub fn is_embedded(&self) -> bool {
        self.spec == TargetSpec::Embedded
    }

    /// Whether the target is on this machine's loopback (so 127.0.0.x source addresses
    /// reach it).
    pub fn is_loopback(&self) -> bool {
        match &self.spec {
            TargetSpec::Embedded => true,
            TargetSpec::External { url } => url::Url::parse(url).ok().is_some_and(|u| match u.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            }),
        }
    }

    /// How the target reads in the plan and the terminal.
    pub fn describe(&self) -> String {
        match &self.spec {
            TargetSpec::Embedded => "embedded (in-process, SQLite in a temp dir)".to_owned(),
            TargetSpec::External { url } => {
                let trust = match (&self.tls.ca_cert, self.tls.insecure) {
                    (_, true) => " (TLS, certificate not verified: --insecure)".to_owned(),
                    (Some(ca), false) => format!(" (TLS, trusting {})", ca.display()),
                    (None, false) if url.starts_with("https://") => " (TLS, web PKI roots)".to_owned(),
                    _ => String::new(),
                };
                format!("{url}{trust}")
            }
        }
    }
}

/// The `http(s)://host:port` base URL of a target given as `raw`; the error is the
/// reason it is not one.
pub fn base_url(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw).map_err(|e| e.to_string())?;
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err("only http:// and https:// targets are supported".into());
    }
    let host = url.host_str().ok_or("no host")?;
    let port = url.port_or_known_default().ok_or("no port")?;
    if url.path() != "/" && !url.path().is_empty() {
        return Err("give the server's base URL, without a path".into());
    }
    Ok(format!("{scheme}://{host}:{port}"))
}

/// The certificates of a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("--ca-cert {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--ca-cert {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("--ca-cert {}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_http_or_https_base_urls() {
        assert_eq!(base_url("http://127.0.0.1:4000/").unwrap(), "http://127.0.0.1:4000");
        assert_eq!(base_url("http://localhost").unwrap(), "http://localhost:80");
        assert_eq!(base_url("https://localhost").unwrap(), "https://localhost:443");
        assert_eq!(base_url("https://x:8443").unwrap(), "https://x:8443");
        assert!(base_url("ftp://x:1").is_err());
        assert!(base_url("127.0.0.1:4000").is_err());
        assert!(base_url("http://h:1/app").is_err());
    }
}
