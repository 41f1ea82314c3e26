//! TLS for a [`Client`](super::Client), against servers whose cluster says
//! `[tls] clients = true`.
//!
//! # Which server a client accepts
//!
//! The certificate must chain to the cluster's CA and name a node of the
//! cluster (`node-<id>.skiff`, see [`node_name`]). A client talks to
//! *addresses*, and follows redirects that name addresses, not node ids, so:
//!
//! * when the client knows which node listens at the address (it was built
//!   from the cluster's configuration, [`ClientTls::for_cluster`]), the
//!   certificate must name exactly that node;
//! * otherwise (addresses typed on a command line, or a redirect to an
//!   address the configuration does not list) any node's certificate from
//!   the CA is accepted.
//!
//! The second rule is safe because only the cluster's CA issues node
//! certificates and it issues them to members only: whoever completes the
//! handshake holds the key of some member of the cluster, which may serve
//! any request (a follower redirects to the leader anyway). What it cannot
//! guarantee is *which* member answers, which a client without the
//! configuration has no way to know anyway.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use skiff_node::tls::{node_name, TlsError};
use skiff_node::{ClusterConfig, NodeId};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The server name a client asks for when it does not know which node an
/// address is: it matches no node's certificate, and the verifier takes it
/// to mean "any node of the cluster".
const ANY_NODE: &str = "any-node.skiff";

/// How a client speaks TLS to the file servers: the cluster's CA, and which
/// node listens at which client address, where known.
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
    /// Node ids by client address (`host:port` as the configuration and
    /// redirects spell it).
    nodes: HashMap<String, NodeId>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the CA certificates in the PEM file at `path`; accepts any
    /// node's certificate from them (see the [module docs](self)).
    pub fn from_ca_file(path: &Path) -> Result<ClientTls, TlsError> {
        let pem = std::fs::read(path).map_err(|source| TlsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        ClientTls::from_ca_pem(&pem, path)
    }

    /// Trusts the CA certificates in `pem` (read from `path`, which only
    /// error messages use).
    pub fn from_ca_pem(pem: &[u8], path: &Path) -> Result<ClientTls, TlsError> {
        let verifier = ClusterNodeVerifier::trusting(pem, path)?;
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| unusable(path, source))?
            // Custom only in which name it checks; the chain is checked by
            // the standard verifier.
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(ClientTls {
            connector: TlsConnector::from(Arc::new(config)),
            nodes: HashMap::new(),
        })
    }

    /// TLS for clients of `cluster`, if its `[tls]` says `clients = true`:
    /// trusts its CA (the path as the configuration holds it: resolved
    /// by [`ClusterConfig::load`]), and knows which node listens at each
    /// client address.
    pub fn for_cluster(cluster: &ClusterConfig) -> Result<Option<ClientTls>, TlsError> {
        let Some(tls) = cluster.tls.as_ref().filter(|tls| tls.clients) else {
            return Ok(None);
        };
        Ok(Some(
            ClientTls::from_ca_file(&tls.ca)?.knowing_nodes(cluster),
        ))
    }

    /// The same, but knowing which node of `cluster` listens at each client
    /// address, so that each must show its own node's certificate.
    pub fn knowing_nodes(mut self, cluster: &ClusterConfig) -> ClientTls {
        self.nodes = cluster
            .nodes
            .iter()
            .map(|node| (node.client_address.to_string(), NodeId(node.id)))
            .collect();
        self
    }

    /// The name the server at `address` must show: its node's, if known,
    /// else the stand-in for any node of the cluster.
    pub fn server_name(&self, address: &str) -> ServerName<'static> {
        let name = match self.nodes.get(address) {
            Some(&id) => node_name(id),
            None => ANY_NODE.to_owned(),
        };
        // Both are valid DNS names: `node-<digits>.skiff` and ANY_NODE.
        ServerName::try_from(name).unwrap_or_else(|_| ServerName::try_from(ANY_NODE).unwrap())
    }

    /// Runs the TLS handshake with the server at `address` over `stream`
    /// (connected to `address`), verifying the server as the
    /// [module docs](self) say.
    pub async fn connect(
        &self,
        address: &str,
        stream: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        self.connector
            .connect(self.server_name(address), stream)
            .await
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn unusable(path: &Path, source: rustls::Error) -> TlsError {
    TlsError::Unusable {
        files: path.display().to_string(),
        source,
    }
}

/// The node a certificate names (its first `node-<id>.skiff` DNS name), if
/// any. Only for choosing the name to verify: the certificate is then
/// verified for that name by the standard verifier.
fn node_named_in(certificate: &CertificateDer<'_>) -> Option<NodeId> {
    let certificate = webpki::EndEntityCert::try_from(certificate).ok()?;
    let found = certificate.valid_dns_names().find_map(node_id_in_name);
    found
}

/// The id in a node name, `node-<id>.skiff` exactly as [`node_name`] spells it.
fn node_id_in_name(name: &str) -> Option<NodeId> {
    let digits = name.strip_prefix("node-")?.strip_suffix(".skiff")?;
    let id = NodeId(digits.parse().ok()?);
    (node_name(id) == name).then_some(id)
}

/// The standard verifier, except that the name [`ANY_NODE`] accepts the
/// certificate of any node.
#[derive(Debug)]
struct ClusterNodeVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ClusterNodeVerifier {
    /// Trusts the CA certificates in `pem` (read from `path`, which only
    /// error messages use).
    fn trusting(pem: &[u8], path: &Path) -> Result<Arc<ClusterNodeVerifier>, TlsError> {
        let pem_error = |reason: String| TlsError::Pem {
            path: path.to_path_buf(),
            what: "certificate",
            reason,
        };
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate = certificate.map_err(|e| pem_error(e.to_string()))?;
            roots
                .add(certificate)
                .map_err(|source| unusable(path, source))?;
        }
        if roots.is_empty() {
            return Err(pem_error("none found".into()));
        }
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| unusable(path, rustls::Error::General(e.to_string())))?;
        Ok(Arc::new(ClusterNodeVerifier { inner }))
    }
}

impl ServerCertVerifier for ClusterNodeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let is_any_node =
            matches!(server_name, ServerName::DnsName(name) if name.as_ref() == ANY_NODE);
        if !is_any_node {
            return self.inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            );
        }
        let not_a_node = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        let node = node_named_in(end_entity).ok_or(not_a_node.clone())?;
        let name = ServerName::try_from(node_name(node)).map_err(|_| not_a_node)?;
        self.inner
            .verify_server_cert(end_entity, intermediates, &name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_node::tls::DevCa;

    #[test]
    fn only_canonical_node_names_carry_an_id() {
        assert_eq!(node_id_in_name("node-2.skiff"), Some(NodeId(2)));
        assert_eq!(
            node_id_in_name("node-18446744073709551615.skiff"),
            Some(NodeId(u64::MAX))
        );
        for not_a_node in [
            "node-02.skiff",
            "node-.skiff",
            "node-+2.skiff",
            "node-2.skiff.evil",
            "evil.skiff",
            ANY_NODE,
        ] {
            assert_eq!(node_id_in_name(not_a_node), None, "{not_a_node}");
        }
    }

    #[test]
    fn a_known_address_asks_for_its_node_and_an_unknown_one_for_any_node() {
        let ca = DevCa::new().unwrap();
        let mut tls =
            ClientTls::from_ca_pem(ca.certificate_pem().as_bytes(), Path::new("ca")).unwrap();
        tls.nodes.insert("127.0.0.1:7001".into(), NodeId(3));
        assert_eq!(tls.server_name("127.0.0.1:7001").to_str(), "node-3.skiff");
        assert_eq!(tls.server_name("127.0.0.1:7002").to_str(), ANY_NODE);
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    fn verify(
        verifier: &ClusterNodeVerifier,
        certificate: &CertificateDer<'_>,
        name: &str,
    ) -> Result<(), rustls::Error> {
        let name = ServerName::try_from(name.to_owned()).unwrap();
        verifier
            .verify_server_cert(certificate, &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn any_node_means_a_node_certificate_from_the_cluster_ca() {
        let ca = DevCa::new().unwrap();
        let verifier =
            ClusterNodeVerifier::trusting(ca.certificate_pem().as_bytes(), Path::new("ca"))
                .unwrap();
        let node_2 = der(&ca.issue_node(NodeId(2)).unwrap().certificate);
        verify(&verifier, &node_2, ANY_NODE).unwrap();
        verify(&verifier, &node_2, "node-2.skiff").unwrap();
        // A known address must show its own node's certificate.
        assert!(verify(&verifier, &node_2, "node-3.skiff").is_err());
        // Another CA's node certificate is no node of this cluster.
        let stranger = der(&DevCa::new()
            .unwrap()
            .issue_node(NodeId(2))
            .unwrap()
            .certificate);
        assert!(verify(&verifier, &stranger, ANY_NODE).is_err());
        // A certificate from the cluster's CA that names no node.
        let (ca_certificate, ca_key) = rcgen_ca();
        let verifier =
            ClusterNodeVerifier::trusting(ca_certificate.pem().as_bytes(), Path::new("ca"))
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let server = rcgen::CertificateParams::new(vec!["server.example".to_owned()])
            .unwrap()
            .signed_by(&key, &ca_certificate, &ca_key)
            .unwrap();
        assert!(verify(&verifier, &der(&server.pem()), ANY_NODE).is_err());
        assert!(verify(&verifier, &der(&server.pem()), "server.example").is_ok());
    }

    /// A CA whose key the test holds, to issue a certificate that is not a node's.
    fn rcgen_ca() -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        (params.self_signed(&key).unwrap(), key)
    }
}
