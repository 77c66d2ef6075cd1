//! The sandbox's certificate authority: generated at start, it signs a certificate for
//! Discord's API host, so a bot reaches the sandbox as `https://discord.com` through its
//! CONNECT proxy ([`super::tunnel`]) after trusting the CA's PEM (`GET /sandbox/ca.pem`).

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The hosts the sandbox holds a certificate for: Discord's REST API host (serenity's and
/// discord.py's base URL) and its bare alias.
pub const HOSTS: [&str; 2] = ["discord.com", "www.discord.com"];

/// A CA made for this run and the TLS acceptor that presents its certificate for [`HOSTS`].
#[derive(Clone)]
pub struct Authority {
    ca_pem: String,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

/// Why the CA or its certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("sandbox certificate authority: {0}")]
pub struct TlsError(String);

impl Authority {
    /// Generates a fresh CA key and certificate, and a leaf for [`HOSTS`] signed by it. The CA's
    /// key never leaves this process, so trusting its PEM trusts only this sandbox.
    pub fn generate() -> Result<Self, TlsError> {
        let err = |e: rcgen::Error| TlsError(e.to_string());
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "troupe sandbox CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().map_err(err)?;
        let mut leaf_params = CertificateParams::new(HOSTS.map(String::from).to_vec()).map_err(err)?;
        leaf_params.distinguished_name.push(DnType::CommonName, HOSTS[0]);
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).map_err(err)?;

        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone(), ca_cert.der().clone()];
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError(e.to_string()))?;
        // As Discord's API does: HTTP/2 to a client that offers it (one connection carries
        // every concurrent request), HTTP/1.1 to one that does not.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            ca_pem: ca_cert.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The CA certificate, PEM-encoded: what a client adds to its trusted roots.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Terminates TLS on a tunnelled connection.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_start_makes_its_own_ca() {
        let a = Authority::generate().unwrap();
        let b = Authority::generate().unwrap();
        assert!(a.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(a.ca_pem(), b.ca_pem());
    }
}
