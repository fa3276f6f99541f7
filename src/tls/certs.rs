//! A small cluster CA and the certificates it signs, for `bramble certs` (rcgen, ring).
//!
//! Keys are ECDSA P-256. A CA directory holds `ca.pem` and `ca.key`; a node directory
//! `node.pem`, `node.key` and a copy of `ca.pem`; a client directory `NAME.pem`, `NAME.key`
//! and `ca.pem`. Key files are written mode 0600 and never overwritten.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// How long the CA is valid.
const CA_VALID_DAYS: u64 = 20 * 365;
/// How long node and client certificates are valid.
const LEAF_VALID_DAYS: u64 = 10 * 365;
/// Certificates start being valid this long before they are made, so a node whose clock is
/// slightly behind (a Pi before NTP) still accepts them.
const BACKDATE: Duration = Duration::from_secs(24 * 3600);

/// Why a certificate could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused the parameters or key.
    #[error("certificate generation failed: {0}")]
    Generate(rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why (named so it is shown once, in this message, not again as a cause).
        reason: std::io::Error,
    },
    /// A CA directory does not hold a usable CA.
    #[error("{path}: {message}")]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

// Not `#[from]`: that would also make it the cause, and `{:#}` would print it twice.
impl From<rcgen::Error> for CertError {
    fn from(error: rcgen::Error) -> Self {
        CertError::Generate(error)
    }
}

/// A certificate and its private key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// A certificate authority: its certificate and signing key.
pub struct Ca {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    key: KeyPair,
    common_name: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("common_name", &self.common_name)
            .finish_non_exhaustive()
    }
}

/// The parameters of a CA named `common_name`; rebuilt the same way to sign with a loaded
/// CA, so the issuer name in what it signs matches the CA certificate's subject.
fn ca_params(common_name: &str) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name("bramble", common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

fn name(organization: &str, common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, organization);
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Set `params` valid from a day ago for `days`.
fn validity(params: &mut CertificateParams, days: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let at = |d: Duration| {
        rcgen::date_time_ymd(1970, 1, 1) + time::Duration::seconds(d.as_secs() as i64)
    };
    params.not_before = at(now.saturating_sub(BACKDATE));
    params.not_after = at(now + Duration::from_secs(days * 24 * 3600));
}

impl Ca {
    /// A new CA whose certificate names it `common_name`.
    pub fn new(common_name: &str) -> Result<Ca, CertError> {
        let key = KeyPair::generate()?;
        let mut params = ca_params(common_name)?;
        validity(&mut params, CA_VALID_DAYS);
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key,
            common_name: common_name.to_string(),
        })
    }

    /// The CA in `dir` (`ca.pem` and `ca.key`, as [`Ca::write`] leaves them).
    pub fn load(dir: &Path) -> Result<Ca, CertError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        let cert_pem = read(&cert_path)?;
        let key = KeyPair::from_pem(&read(&key_path)?).map_err(|e| CertError::BadCa {
            path: key_path.clone(),
            message: format!("not a private key ({e})"),
        })?;
        let bad = |message: &str| CertError::BadCa {
            path: cert_path.clone(),
            message: message.to_string(),
        };
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|_| bad("no CERTIFICATE block"))?;
        let common_name =
            super::subject::common_name(&der).ok_or_else(|| bad("the CA has no common name"))?;
        let ca = Ca {
            cert_pem,
            key,
            common_name,
        };
        // A key that is not the certificate's would sign certificates nobody can verify.
        let probe = ca.client("key-check")?;
        if !ca.verifies(&probe)? {
            return Err(CertError::BadCa {
                path: key_path,
                message: "this key does not belong to ca.pem".into(),
            });
        }
        Ok(ca)
    }

    /// Whether `issued` chains to this CA (checked with rustls's own verifier).
    fn verifies(&self, issued: &Issued) -> Result<bool, CertError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, UnixTime};
        let root = CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(|e| {
            CertError::BadCa {
                path: "ca.pem".into(),
                message: e.to_string(),
            }
        })?;
        let mut roots = rustls::RootCertStore::empty();
        if roots.add(root).is_err() {
            return Ok(false);
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let Ok(verifier) =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
        else {
            return Ok(false);
        };
        let leaf = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).expect("made above");
        Ok(verifier
            .verify_client_cert(&leaf, &[], UnixTime::now())
            .is_ok())
    }

    /// Write `ca.pem` and `ca.key` into `dir` (made if absent); refuses to replace a CA.
    pub fn write(&self, dir: &Path) -> Result<(), CertError> {
        write_new(dir, "ca.key", &self.key.serialize_pem(), true)?;
        write_new(dir, "ca.pem", &self.cert_pem, false)?;
        Ok(())
    }

    fn sign(&self, mut params: CertificateParams) -> Result<Issued, CertError> {
        let issuer = Issuer::new(ca_params(&self.common_name)?, &self.key);
        validity(&mut params, LEAF_VALID_DAYS);
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A node certificate, usable as a server (clients, peers) and as a client (dialling
    /// peers); valid for `hosts` and `ips`.
    pub fn node(&self, id: u32, hosts: &[String], ips: &[IpAddr]) -> Result<Issued, CertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name("bramble", &format!("bramble-node-{id}"));
        for host in hosts {
            params
                .subject_alt_names
                .push(SanType::DnsName(host.as_str().try_into()?));
        }
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(params)
    }

    /// A client certificate whose subject common name is `user`.
    pub fn client(&self, user: &str) -> Result<Issued, CertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name("bramble", user);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }
}

impl Issued {
    /// Write `<stem>.pem`, `<stem>.key` and the CA's `ca.pem` into `dir`; refuses to replace
    /// a key.
    pub fn write(&self, dir: &Path, stem: &str, ca: &Ca) -> Result<Vec<PathBuf>, CertError> {
        let key = write_new(dir, &format!("{stem}.key"), &self.key_pem, true)?;
        let cert = write_new(dir, &format!("{stem}.pem"), &self.cert_pem, false)?;
        let ca_path = dir.join("ca.pem");
        match std::fs::read_to_string(&ca_path) {
            Ok(existing) if existing == ca.cert_pem => {}
            Ok(_) => {
                return Err(CertError::BadCa {
                    path: ca_path,
                    message: "holds another CA; write into another directory".into(),
                })
            }
            Err(_) => {
                write_new(dir, "ca.pem", &ca.cert_pem, false)?;
            }
        }
        Ok(vec![cert, key, ca_path])
    }
}

fn read(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|reason| CertError::Io {
        path: path.to_path_buf(),
        reason,
    })
}

/// Create `dir/name` with `text`; an existing file is an error (a key is never replaced).
fn write_new(dir: &Path, name: &str, text: &str, secret: bool) -> Result<PathBuf, CertError> {
    let path = dir.join(name);
    let io = |reason| CertError::Io {
        path: path.clone(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(|reason| CertError::Io {
        path: path.clone(),
        reason: if reason.kind() == std::io::ErrorKind::AlreadyExists {
            std::io::Error::new(
                reason.kind(),
                "already exists; remove it first to replace it",
            )
        } else {
            reason
        },
    })?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_ca_loads_and_signs_what_its_certificate_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("cluster").unwrap();
        ca.write(dir.path()).unwrap();
        let loaded = Ca::load(dir.path()).unwrap();
        assert_eq!(loaded.common_name, "cluster");
        let node = loaded
            .node(3, &["pi3".into()], &["10.0.0.3".parse().unwrap()])
            .unwrap();
        assert!(ca.verifies(&node).unwrap());
        let other = Ca::new("cluster").unwrap();
        assert!(!other.verifies(&node).unwrap());
    }

    #[test]
    fn nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("cluster").unwrap();
        ca.write(dir.path()).unwrap();
        let error = Ca::new("x").unwrap().write(dir.path()).unwrap_err();
        assert!(error.to_string().contains("already exists"), "{error}");
        let client = ca.client("bob").unwrap();
        client.write(dir.path(), "bob", &ca).unwrap();
        assert!(client.write(dir.path(), "bob", &ca).is_err());
    }

    #[test]
    fn a_key_from_another_ca_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        Ca::new("a").unwrap().write(dir.path()).unwrap();
        Ca::new("b").unwrap().write(other.path()).unwrap();
        std::fs::copy(other.path().join("ca.key"), dir.path().join("ca.key")).unwrap();
        let error = Ca::load(dir.path()).unwrap_err();
        assert!(error.to_string().contains("does not belong"), "{error}");
    }
}
