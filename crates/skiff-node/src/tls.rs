//! Mutual TLS between peers (rustls with the `ring` provider), and the
//! development certificates `skiff certs` makes.
//!
//! # Who a certificate names
//!
//! Node `N`'s certificate carries the DNS name **`node-N.skiff`** in its
//! subjectAltName ([`node_name`]); nothing else in it is read. Every
//! certificate must chain to the cluster's CA (the `ca` file of
//! [`TlsConfig`]):
//!
//! * the listener requires a client certificate chaining to the CA
//!   ([`NodeTls::peer_acceptor`]), and after the TLS handshake the node id
//!   in the dialer's `Hello` must be one the certificate names
//!   ([`certificate_names_node`]), so that no node can speak as another;
//! * the dialer verifies that the listener's certificate chains to the CA
//!   and names the node it meant to dial ([`NodeTls::peer_connector`]).
//!
//! As always with TLS, the listener shows its certificate (and so its node
//! id) to whoever starts a handshake, before the client has shown its own;
//! the cluster id, the other ids and the membership are only ever sent
//! after the client has authenticated.
//!
//! For the file server, [`NodeTls::client_facing_server_config`] (no client
//! certificate asked) and [`NodeTls::client_config`] (trusts the CA) use
//! the same material.

use crate::config::TlsConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, DnsName, PrivateKeyDer, ServerName};
use skiff_core::NodeId;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

/// The DNS name in node `id`'s certificate: `node-<id>.skiff`.
pub fn node_name(id: NodeId) -> String {
    format!("node-{id}.skiff")
}

/// Why TLS material could not be loaded, built or written. Every variant
/// that concerns a file names it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written; what the system said is the source.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file holds no usable PEM item of the expected kind.
    #[error("{path}: no {what} in PEM form: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What it should hold ("certificate", "private key").
        what: &'static str,
        /// What the PEM reader said.
        reason: String,
    },
    /// The files load but do not make a TLS configuration (a key that does
    /// not match its certificate, a CA certificate that is not one).
    #[error("{files}: {source}")]
    Unusable {
        /// The files involved.
        files: String,
        /// What rustls said.
        source: rustls::Error,
    },
    /// A development certificate could not be generated.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file to write exists already.
    #[error("{0} exists already (use --force to overwrite)")]
    Exists(PathBuf),
}

/// `path` with `{id}` replaced by node `id`'s id.
pub fn path_for_node(path: &Path, id: NodeId) -> PathBuf {
    PathBuf::from(path.to_string_lossy().replace("{id}", &id.to_string()))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One node's TLS material: the cluster's CA and the node's certificate
/// chain and key, from which every TLS configuration of the node is built.
#[derive(Clone)]
pub struct NodeTls {
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    /// The files, for error messages.
    files: String,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl NodeTls {
    /// Loads node `id`'s material as `config` names it (paths as given:
    /// [`ClusterConfig::load`](crate::ClusterConfig::load) has made
    /// relative ones relative to the configuration file), and checks that
    /// it builds every configuration.
    pub fn load(config: &TlsConfig, id: NodeId) -> Result<NodeTls, TlsError> {
        let read = |path: PathBuf| {
            std::fs::read(&path)
                .map(|pem| (pem, path.clone()))
                .map_err(|source| TlsError::Io { path, source })
        };
        let (ca, ca_path) = read(config.ca.clone())?;
        let (cert, cert_path) = read(path_for_node(&config.cert, id))?;
        let (key, key_path) = read(path_for_node(&config.key, id))?;
        NodeTls::from_pem((&ca, &ca_path), (&cert, &cert_path), (&key, &key_path))
    }

    /// Builds the material from PEM text, each with the file it came from
    /// (used only in error messages).
    pub fn from_pem(
        ca: (&[u8], &Path),
        cert: (&[u8], &Path),
        key: (&[u8], &Path),
    ) -> Result<NodeTls, TlsError> {
        let pem_error = |path: &Path, what, reason: String| TlsError::Pem {
            path: path.to_path_buf(),
            what,
            reason,
        };
        let certificates = |(pem, path): (&[u8], &Path)| {
            let chain = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem_error(path, "certificate", e.to_string()))?;
            match chain.is_empty() {
                true => Err(pem_error(path, "certificate", "none found".into())),
                false => Ok(chain),
            }
        };
        let mut roots = RootCertStore::empty();
        for root in certificates(ca)? {
            roots.add(root).map_err(|source| TlsError::Unusable {
                files: ca.1.display().to_string(),
                source,
            })?;
        }
        let tls = NodeTls {
            roots: Arc::new(roots),
            chain: certificates(cert)?,
            key: Arc::new(
                PrivateKeyDer::from_pem_slice(key.0)
                    .map_err(|e| pem_error(key.1, "private key", e.to_string()))?,
            ),
            files: format!(
                "{}, {}, {}",
                ca.1.display(),
                cert.1.display(),
                key.1.display()
            ),
        };
        // Build the peer configurations once, so that a key that does not
        // match its certificate is reported at start, naming the files.
        tls.peer_tls()?;
        Ok(tls)
    }

    fn unusable(&self, source: rustls::Error) -> TlsError {
        TlsError::Unusable {
            files: self.files.clone(),
            source,
        }
    }

    /// The listener's side between peers: presents the node's certificate
    /// and requires a client certificate that chains to the CA.
    pub fn peer_acceptor(&self) -> Result<PeerAcceptor, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider())
            .build()
            .map_err(|e| self.unusable(rustls::Error::General(e.to_string())))?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.unusable(e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| self.unusable(e))?;
        Ok(PeerAcceptor(TlsAcceptor::from(Arc::new(config))))
    }

    /// The dialer's side between peers: presents the node's certificate and
    /// accepts only a listener whose certificate chains to the CA and names
    /// the node dialed.
    pub fn peer_connector(&self) -> Result<PeerConnector, TlsError> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.unusable(e))?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| self.unusable(e))?;
        Ok(PeerConnector(TlsConnector::from(Arc::new(config))))
    }

    /// Both ends of TLS between peers.
    pub fn peer_tls(&self) -> Result<PeerTls, TlsError> {
        Ok(PeerTls {
            acceptor: self.peer_acceptor()?,
            connector: self.peer_connector()?,
        })
    }

    /// A server configuration for the node's clients: the node's
    /// certificate, no client certificate asked for.
    pub fn client_facing_server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.unusable(e))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| self.unusable(e))?;
        Ok(Arc::new(config))
    }

    /// A client configuration that trusts the cluster's CA and shows no
    /// certificate: for the file server's clients (connect with the
    /// [`node_name`] of the node dialed as the server name).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.unusable(e))?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// What a node's transport needs for TLS: both ends.
#[derive(Clone, Debug)]
pub struct PeerTls {
    /// Accepts the peers that dial this node.
    pub acceptor: PeerAcceptor,
    /// Dials the peers.
    pub connector: PeerConnector,
}

/// Accepts TLS from peers, requiring their certificates.
#[derive(Clone)]
pub struct PeerAcceptor(TlsAcceptor);

impl std::fmt::Debug for PeerAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerAcceptor")
    }
}

impl PeerAcceptor {
    /// Runs the server side of the TLS handshake on `stream`. Returns the
    /// stream and the client's end-entity certificate.
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
    ) -> std::io::Result<(server::TlsStream<S>, CertificateDer<'static>)> {
        let stream = self.0.accept(stream).await?;
        let certificate = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.clone().into_owned())
            // The verifier requires a certificate, so this is not reached.
            .ok_or_else(|| std::io::Error::other("the peer presented no certificate"))?;
        Ok((stream, certificate))
    }
}

/// Dials peers over TLS, verifying who answers.
#[derive(Clone)]
pub struct PeerConnector(TlsConnector);

impl std::fmt::Debug for PeerConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerConnector")
    }
}

impl PeerConnector {
    /// Runs the client side of the TLS handshake on `stream`, to node `peer`.
    pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        peer: NodeId,
        stream: S,
    ) -> std::io::Result<client::TlsStream<S>> {
        let name = ServerName::try_from(node_name(peer)).map_err(std::io::Error::other)?;
        self.0.connect(name, stream).await
    }
}

/// Whether `certificate` names node `id` ([`node_name`] among its DNS
/// subjectAltNames). The chain itself is checked by the TLS handshake.
pub fn certificate_names_node(certificate: &CertificateDer<'_>, id: NodeId) -> bool {
    let Ok(certificate) = webpki::EndEntityCert::try_from(certificate) else {
        return false;
    };
    let Ok(name) = DnsName::try_from(node_name(id)) else {
        return false;
    };
    certificate
        .verify_is_valid_for_subject_name(&ServerName::DnsName(name))
        .is_ok()
}

/// A development certificate authority, made fresh in memory. Not for
/// production: its key is written next to the certificates it signs.
pub struct DevCa {
    certificate: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevCa")
    }
}

/// A certificate and its private key, in PEM form.
#[derive(Clone, Debug)]
pub struct PemPair {
    /// The certificate.
    pub certificate: String,
    /// The private key (PKCS#8).
    pub key: String,
}

/// The files [`DevCa::write_cluster`] writes in its directory.
pub const CA_FILE: &str = "ca.pem";

impl DevCa {
    /// A new CA with a fresh key.
    pub fn new() -> Result<DevCa, TlsError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "skiff development CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let certificate = params.self_signed(&key)?;
        Ok(DevCa { certificate, key })
    }

    /// The CA's certificate in PEM form.
    pub fn certificate_pem(&self) -> String {
        self.certificate.pem()
    }

    /// A certificate and key for node `id`, naming [`node_name`]`(id)`,
    /// usable both to accept and to dial.
    pub fn issue_node(&self, id: NodeId) -> Result<PemPair, TlsError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec![node_name(id)])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, node_name(id));
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let certificate = params.signed_by(&key, &self.certificate, &self.key)?;
        Ok(PemPair {
            certificate: certificate.pem(),
            key: key.serialize_pem(),
        })
    }

    /// Writes `ca.pem` and, for each of `ids`, `node-<id>.pem` and
    /// `node-<id>.key` (mode 0600) into `dir`, which must exist. Refuses to
    /// replace an existing file unless `force`. Returns the [`TlsConfig`]
    /// naming them (with `{id}`), paths under `dir`.
    pub fn write_cluster(
        &self,
        dir: &Path,
        ids: impl IntoIterator<Item = NodeId>,
        force: bool,
    ) -> Result<TlsConfig, TlsError> {
        let config = TlsConfig {
            ca: dir.join(CA_FILE),
            cert: dir.join("node-{id}.pem"),
            key: dir.join("node-{id}.key"),
            clients: false,
        };
        let mut files = vec![(config.ca.clone(), self.certificate_pem(), false)];
        for id in ids {
            let pair = self.issue_node(id)?;
            files.push((path_for_node(&config.cert, id), pair.certificate, false));
            files.push((path_for_node(&config.key, id), pair.key, true));
        }
        // Check all before writing any, so that a refusal leaves nothing half-made.
        if !force {
            if let Some((path, ..)) = files.iter().find(|(path, ..)| path.exists()) {
                return Err(TlsError::Exists(path.clone()));
            }
        }
        for (path, text, secret) in files {
            write_file(&path, text.as_bytes(), secret)
                .map_err(|source| TlsError::Io { path, source })?;
        }
        Ok(config)
    }
}

/// Writes `contents` to `path`, readable only by the owner when `secret`
/// (also when the file existed with a wider mode).
fn write_file(path: &Path, contents: &[u8], secret: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mode = if secret { 0o600 } else { 0o644 };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Node `id`'s material, its certificate from `issuer`, trusting `trusted`.
    pub(crate) fn material_from(trusted: &DevCa, issuer: &DevCa, id: u64) -> NodeTls {
        let pair = issuer.issue_node(NodeId(id)).unwrap();
        let here = Path::new("test");
        NodeTls::from_pem(
            (trusted.certificate_pem().as_bytes(), here),
            (pair.certificate.as_bytes(), here),
            (pair.key.as_bytes(), here),
        )
        .unwrap()
    }

    fn material(ca: &DevCa, id: u64) -> NodeTls {
        material_from(ca, ca, id)
    }

    #[test]
    fn a_node_certificate_names_its_node_only() {
        let ca = DevCa::new().unwrap();
        let pair = ca.issue_node(NodeId(2)).unwrap();
        let der = CertificateDer::from_pem_slice(pair.certificate.as_bytes()).unwrap();
        assert!(certificate_names_node(&der, NodeId(2)));
        assert!(!certificate_names_node(&der, NodeId(3)));
        assert!(!certificate_names_node(&der, NodeId(22)));
    }

    #[test]
    fn written_files_are_loadable_private_and_not_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::new().unwrap();
        let config = ca
            .write_cluster(dir.path(), [NodeId(1), NodeId(2)], false)
            .unwrap();
        assert_eq!(config.cert, dir.path().join("node-{id}.pem"));
        NodeTls::load(&config, NodeId(2)).unwrap();
        let key = std::fs::metadata(dir.path().join("node-1.key")).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
        let err = ca
            .write_cluster(dir.path(), [NodeId(1)], false)
            .unwrap_err();
        assert!(err.to_string().contains("ca.pem exists already"), "{err}");
        ca.write_cluster(dir.path(), [NodeId(1)], true).unwrap();
    }

    #[test]
    fn unreadable_or_mismatched_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::new().unwrap();
        let mut config = ca
            .write_cluster(dir.path(), [NodeId(1), NodeId(2)], false)
            .unwrap();
        let err = NodeTls::load(&config, NodeId(3)).unwrap_err().to_string();
        assert!(err.contains("node-3.pem"), "{err}");
        std::fs::write(dir.path().join("ca.pem"), "not pem").unwrap();
        let err = NodeTls::load(&config, NodeId(1)).unwrap_err().to_string();
        assert!(err.contains("ca.pem: no certificate"), "{err}");
        ca.write_cluster(dir.path(), [NodeId(1), NodeId(2)], true)
            .unwrap();
        config.key = dir.path().join("node-2.key");
        let err = NodeTls::load(&config, NodeId(1)).unwrap_err().to_string();
        assert!(
            err.contains("node-1.pem") && err.contains("node-2.key"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn client_configs_speak_to_the_client_facing_server() {
        let ca = DevCa::new().unwrap();
        let node = material(&ca, 1);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(node.client_facing_server_config().unwrap());
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut stream = acceptor.accept(stream).await.unwrap();
            stream.write_all(b"hello").await.unwrap();
            stream.shutdown().await.unwrap();
        });
        let connector = TlsConnector::from(node.client_config().unwrap());
        let stream = TcpStream::connect(address).await.unwrap();
        let name = ServerName::try_from(node_name(NodeId(1))).unwrap();
        let mut stream = connector.connect(name, stream).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"hello");
        server.await.unwrap();
        // A client expecting another node refuses this one's certificate.
        let other = TlsConnector::from(material(&ca, 2).client_config().unwrap());
        let (a, b) = tokio::io::duplex(1 << 16);
        let acceptor = TlsAcceptor::from(node.client_facing_server_config().unwrap());
        let server = tokio::spawn(async move { acceptor.accept(b).await.is_err() });
        let name = ServerName::try_from(node_name(NodeId(2))).unwrap();
        assert!(other.connect(name, a).await.is_err());
        assert!(server.await.unwrap());
    }
}
