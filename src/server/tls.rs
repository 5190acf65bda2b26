//! TLS on the S3 listener: a certificate chain and key from PEM files, served by rustls (ring
//! provider) and replaced in place on SIGHUP. A reload changes what new handshakes present;
//! connections already open keep their session, so a reload drops nothing.

use rustls::ServerConfig;
use rustls::crypto::ring::default_provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate {0}: {1}")]
    Cert(PathBuf, String),
    #[error("TLS key {0}: {1}")]
    Key(PathBuf, String),
    #[error("TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// Where the certificate chain and its key are read from, at start and at every reload.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The certificate new handshakes get; swapped whole by `reload`.
#[derive(Debug)]
pub struct Certs {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certs {
    pub fn load(files: TlsFiles) -> Result<Arc<Certs>, TlsError> {
        let current = RwLock::new(read(&files)?);
        Ok(Arc::new(Certs { files, current }))
    }

    /// Reads the files again; on any error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = read(&self.files)?;
        // A poisoned lock only means a panic elsewhere while swapping an Arc: the value is whole.
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// A server configuration offering `alpn` (in order of preference), certificates from
    /// `self`.
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
        let mut c = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(c))
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// Parses the chain and key and checks that they belong together.
fn read(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_err = |e: String| TlsError::Cert(files.cert.clone(), e);
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError::Key(files.key.clone(), e.to_string()))?;
    let signer = default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key(files.key.clone(), e.to_string()))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match().map_err(|e| {
        TlsError::Key(
            files.key.clone(),
            format!("does not match the certificate: {e}"),
        )
    })?;
    Ok(Arc::new(ck))
}

/// Reloads `certs` on every SIGHUP until `stop`. Without TLS a SIGHUP is logged and ignored
/// (its default action would stop the server). The handler is installed by this call, before
/// the returned future first runs, so a SIGHUP right after start is never fatal.
pub fn reload_on_hangup(
    certs: Option<Arc<Certs>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let hup = signal(SignalKind::hangup());
    async move {
        let mut hup = match hup {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGHUP; TLS certificates will not reload");
                return;
            }
        };
        loop {
            tokio::select! {
                s = hup.recv() => if s.is_none() { return },
                _ = stop.changed() => return,
            }
            let Some(certs) = &certs else {
                tracing::info!("SIGHUP: no TLS certificate to reload");
                continue;
            };
            // Two small files, on a blocking thread all the same.
            let c = certs.clone();
            match tokio::task::spawn_blocking(move || c.reload()).await {
                Ok(Ok(())) => {
                    tracing::info!(cert = %certs.files.cert.display(), "TLS certificate reloaded")
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "TLS reload failed; the previous certificate stays")
                }
                Err(e) => tracing::error!(error = %e, "TLS reload did not finish"),
            }
        }
    }
}
