//! What the simulator drives and how it reaches it: the embedded app or one or more
//! base URLs (`http://` or `https://`; several are nodes of one cluster, see
//! `engine::route`), the target profile, TLS trust (`--ca-cert`, `--insecure`) and the
//! source addresses listener sockets bind to.

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::plan::profile::Profile;
use crate::plan::source::SourceIps;

/// What `--target` says for the embedded app (the same as no `--target`).
pub const EMBEDDED: &str = "embedded";

/// The servers a run drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// The app booted in-process on 127.0.0.1:0 over SQLite in a temporary directory:
    /// always one target.
    Embedded,
    /// Running servers, in `--target` order (at least one; the same URL may repeat):
    /// each `http(s)://host:port` without a trailing slash. Several are nodes of one
    /// cluster sharing its database and broker.
    External { urls: Vec<String> },
}

/// In the plan JSON: `{"kind":"embedded"}`, or `{"kind":"external","url":<the first>,
/// "urls":[every one]}` (`url` as one-target plans always had it).
impl Serialize for TargetSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            TargetSpec::Embedded => {
                let mut s = serializer.serialize_struct("TargetSpec", 1)?;
                s.serialize_field("kind", "embedded")?;
                s.end()
            }
            TargetSpec::External { urls } => {
                let mut s = serializer.serialize_struct("TargetSpec", 3)?;
                s.serialize_field("kind", "external")?;
                s.serialize_field("url", urls.first().map_or("", String::as_str))?;
                s.serialize_field("urls", urls)?;
                s.end()
            }
        }
    }
}

/// Why the `--target` values do not make a [`TargetSpec`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{value:?}: {reason} (expected http://host:port)")]
    Url { value: String, reason: String },
    #[error(
        "`{EMBEDDED}` (the in-process app) is a target of its own: it cannot be repeated or mixed with URLs \
         (give no --target, or `--target {EMBEDDED}`, for the embedded app; or one or more `--target \
         http(s)://host:port` for running servers)"
    )]
    Mixed,
}

impl TargetSpec {
    /// The targets `values` name: none (or `embedded` alone) is the embedded app, else
    /// every value is a base URL.
    pub fn parse(values: &[String]) -> Result<TargetSpec, TargetError> {
        match values {
            [] => Ok(TargetSpec::Embedded),
            [one] if one == EMBEDDED => Ok(TargetSpec::Embedded),
            _ if values.iter().any(|v| v == EMBEDDED) => Err(TargetError::Mixed),
            _ => {
                let urls = values
                    .iter()
                    .map(|v| base_url(v).map_err(|reason| TargetError::Url { value: v.clone(), reason }))
                    .collect::<Result<_, _>>()?;
                Ok(TargetSpec::External { urls })
            }
        }
    }

    /// How many targets (1 for the embedded app).
    pub fn count(&self) -> usize {
        match self {
            TargetSpec::Embedded => 1,
            TargetSpec::External { urls } => urls.len().max(1),
        }
    }
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

    /// Whether every target is on this machine's loopback (so 127.0.0.x source
    /// addresses reach them).
    pub fn is_loopback(&self) -> bool {
        match &self.spec {
            TargetSpec::Embedded => true,
            TargetSpec::External { urls } => urls.iter().all(|url| {
                url::Url::parse(url).ok().is_some_and(|u| match u.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    Some(url::Host::Domain(d)) => d == "localhost",
                    None => false,
                })
            }),
        }
    }

    /// How the targets read in the plan and the terminal (several: comma separated).
    pub fn describe(&self) -> String {
        match &self.spec {
            TargetSpec::Embedded => "embedded (in-process, SQLite in a temp dir)".to_owned(),
            TargetSpec::External { urls } => {
                let trust = match (&self.tls.ca_cert, self.tls.insecure) {
                    (_, true) => " (TLS, certificate not verified: --insecure)".to_owned(),
                    (Some(ca), false) => format!(" (TLS, trusting {})", ca.display()),
                    (None, false) if urls.iter().any(|u| u.starts_with("https://")) => {
                        " (TLS, web PKI roots)".to_owned()
                    }
                    _ => String::new(),
                };
                format!("{}{trust}", urls.join(", "))
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

    #[test]
    fn several_urls_or_the_embedded_app_alone() {
        let v = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(TargetSpec::parse(&[]), Ok(TargetSpec::Embedded));
        assert_eq!(TargetSpec::parse(&v(&["embedded"])), Ok(TargetSpec::Embedded));
        let two = TargetSpec::parse(&v(&["http://a:1/", "http://a:1", "https://b"])).unwrap();
        let urls = v(&["http://a:1", "http://a:1", "https://b:443"]);
        assert_eq!(two, TargetSpec::External { urls });
        assert_eq!(two.count(), 3);
        let json = serde_json::to_value(&two).unwrap();
        assert_eq!(json["kind"], "external");
        assert_eq!(json["url"], "http://a:1", "the first, as one-target plans have it");
        assert_eq!(json["urls"].as_array().map(Vec::len), Some(3));
        assert_eq!(TargetSpec::parse(&v(&["embedded", "http://a:1"])), Err(TargetError::Mixed));
        assert_eq!(TargetSpec::parse(&v(&["http://a:1", "embedded"])), Err(TargetError::Mixed));
        assert_eq!(TargetSpec::parse(&v(&["embedded", "embedded"])), Err(TargetError::Mixed));
        assert!(
            matches!(TargetSpec::parse(&v(&["http://a:1", "ftp://b"])), Err(TargetError::Url { value, .. }) if value == "ftp://b")
        );
    }
}
