//! The simulator's own test CA and server certificate, made fresh at every start.
//!
//! Clients trust exactly this CA (its PEM is [`TestCa::ca_pem`]) and keep
//! certificate verification on, as they would with a real processor. The keys
//! live only in memory and die with the process.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;

/// A CA and a server certificate it signed for the given host names.
pub struct TestCa {
    ca_pem: String,
    server_config: Arc<ServerConfig>,
}

impl TestCa {
    /// Makes a CA and a server certificate valid for `hosts` (DNS names or IP
    /// addresses), for one day from now.
    pub fn generate(hosts: &[String]) -> Result<Self, Error> {
        let now = time::OffsetDateTime::now_utc();
        let window = |params: &mut CertificateParams| {
            params.not_before = now - time::Duration::minutes(5);
            params.not_after = now + time::Duration::days(1);
        };

        let ca_key = KeyPair::generate().map_err(Error::tls)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(Error::tls)?;
        window(&mut ca_params);
        // A name of its own per start, so that a client holding another run's CA
        // fails on an unknown issuer rather than matching a namesake.
        let serial = anshin_crypto::token::random_token("ca").map_err(Error::tls)?;
        ca_params.distinguished_name.push(
            DnType::CommonName,
            format!("anshin processor simulator test CA {serial}"),
        );
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(Error::tls)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().map_err(Error::tls)?;
        let mut server_params = CertificateParams::new(hosts.to_vec()).map_err(Error::tls)?;
        window(&mut server_params);
        server_params
            .distinguished_name
            .push(DnType::CommonName, "anshin processor simulator");
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .map_err(Error::tls)?;

        let chain = vec![
            CertificateDer::from(server_cert.der().to_vec()),
            CertificateDer::from(ca_cert.der().to_vec()),
        ];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(Error::tls)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(Error::tls)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            ca_pem: ca_cert.pem(),
            server_config: Arc::new(config),
        })
    }

    /// The CA certificate, PEM: the one certificate a client should trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server side: the certificate for the hosts and its chain (also
    /// what anshin's PostgreSQL TLS tests serve).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.server_config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_is_pem_and_server_config_speaks_http1() {
        let ca = TestCa::generate(&["localhost".into(), "127.0.0.1".into()]).expect("generate");
        assert!(ca.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(ca.server_config().alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
