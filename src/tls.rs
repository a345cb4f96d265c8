//! TLS for node-to-node links and the public API (rustls with the ring
//! provider only).
//!
//! Every node has a TLS key (Ed25519) separate from its secp256k1 block
//! key, because TLS cannot use secp256k1. Genesis pins it as
//! [`NodeDecl::tls`](rxchain_contracts::genesis::NodeDecl::tls): the
//! SHA3-256 of the DER SubjectPublicKeyInfo ([`spki_hash`]). Trust is
//! decided by that pin alone, never by certificate authorities or names:
//!
//! - A node's server ([`server_config`]) presents its certificate and
//!   *optionally* asks for a client certificate. A client certificate is
//!   accepted only if its key is some node's declared `tls`, and the
//!   handshake signature proves the client holds that key. Browsers and the
//!   CLI connect without one; the connection then carries
//!   [`PeerNode`]`(None)` and node-only routes refuse it ([`admit`]).
//! - A node's client to one peer ([`peer_client_config`]) presents this
//!   node's certificate and accepts the server only if its key is the `tls`
//!   declared for *that* node id, so a man in the middle with any other
//!   certificate, including another member node's, is refused.
//!
//! The declared keys are read from a [`Directory`] at every handshake: a
//! running node passes its live consortium (genesis plus the governance
//! decisions applied so far), so a node added or re-keyed by governance is
//! trusted from the block that decides it, and a removed node no longer is.
//!
//! The module is a leaf: it knows genesis and rustls, nothing else of ours.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rxchain_contracts::{Genesis, Hash};

/// The consortium whose declared TLS keys are trusted, asked afresh at each
/// handshake. A node passes its live consortium view; tools pass a fixed
/// genesis ([`Directory::fixed`]). Cheap to clone.
#[derive(Clone)]
pub struct Directory(Arc<dyn Fn() -> Arc<Genesis> + Send + Sync>);

impl Directory {
    /// A directory that asks `current` for the consortium as it stands.
    pub fn new(current: impl Fn() -> Arc<Genesis> + Send + Sync + 'static) -> Self {
        Directory(Arc::new(current))
    }

    /// A directory that is always `genesis`.
    pub fn fixed(genesis: Arc<Genesis>) -> Self {
        Directory::new(move || genesis.clone())
    }

    /// The consortium as it stands now.
    pub fn get(&self) -> Arc<Genesis> {
        (self.0)()
    }
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.get();
        let nodes: Vec<u64> = g
            .orgs
            .iter()
            .flat_map(|o| o.nodes.iter().map(|n| n.id))
            .collect();
        f.debug_struct("Directory").field("nodes", &nodes).finish()
    }
}

/// Why TLS material could not be loaded or a configuration built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds no certificate or no private key of a known kind.
    #[error("{what} is not valid PEM: {source}")]
    Pem {
        /// What was being read.
        what: String,
        /// The parser's error.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate does not parse as X.509.
    #[error("the certificate does not parse: {0}")]
    Certificate(#[source] webpki::Error),
    /// The certificate does not carry the public key of the private key.
    #[error("the certificate's public key is not the private key's")]
    KeyMismatch,
    /// Generating a key or certificate failed.
    #[error("cannot generate TLS material: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// SHA3-256 of a DER SubjectPublicKeyInfo: what genesis declares as a node's `tls`.
pub fn hash_spki(spki_der: &[u8]) -> Hash {
    Hash::of(&[spki_der])
}

/// The [`hash_spki`] of the public key a certificate carries.
pub fn spki_hash(cert: &CertificateDer<'_>) -> Result<Hash, TlsError> {
    let ee = webpki::EndEntityCert::try_from(cert).map_err(TlsError::Certificate)?;
    Ok(hash_spki(ee.subject_public_key_info().as_ref()))
}

/// The one crypto provider of the node: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process's default rustls provider, once.
///
/// reqwest is built without a provider of its own (so that aws-lc is never
/// linked) and panics when a client without a preconfigured TLS setup is
/// built before a default is installed. Every entry point that may build
/// one (the CLI, [`crate::node::start`], [`crate::client::Client::new`],
/// the test support) calls this first.
pub fn install_default_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::ring::default_provider()
            .install_default()
            .is_err()
        {
            // Another provider was installed first by someone else in the
            // process; reqwest then uses that one, which is all it needs.
            tracing::debug!("a rustls crypto provider was already installed");
        }
    });
}

/// A node's TLS identity: its certificate chain (leaf first) and private key.
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    hash: Hash,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key is never printed.
        f.debug_struct("TlsIdentity")
            .field("hash", &self.hash.to_hex())
            .finish_non_exhaustive()
    }
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            hash: self.hash,
        }
    }
}

impl TlsIdentity {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| TlsError::Read {
                path: p.into(),
                source,
            })
        };
        Self::from_pem(&read(cert_file)?, &read(key_file)?)
    }

    /// Parses a PEM certificate chain (leaf first) and a PEM private key,
    /// and checks that the leaf carries the key's public half.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let pem = |what: &str| {
            let what = what.to_string();
            move |source| TlsError::Pem { what, source }
        };
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem("the certificate file"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(pem("the key file"))?;
        let leaf = chain.first().ok_or(TlsError::Pem {
            what: "the certificate file".into(),
            source: rustls::pki_types::pem::Error::NoItemsFound,
        })?;
        let hash = spki_hash(leaf)?;
        let signing = provider().key_provider.load_private_key(key.clone_key())?;
        match signing.public_key() {
            Some(spki) if hash_spki(spki.as_ref()) == hash => {}
            _ => return Err(TlsError::KeyMismatch),
        }
        Ok(TlsIdentity { chain, key, hash })
    }

    /// The [`spki_hash`] of this identity's key, as genesis declares it.
    pub fn hash(&self) -> Hash {
        self.hash
    }
}

/// Freshly made (or derived) TLS material: a PKCS#8 private key and a
/// self-signed certificate, both PEM, with the key's pin.
pub struct GeneratedTls {
    /// The private key (PKCS#8 PEM). Secret.
    pub key_pem: String,
    /// The self-signed certificate (PEM).
    pub cert_pem: String,
    /// The pin genesis declares for it.
    pub hash: Hash,
}

impl GeneratedTls {
    /// The identity these files hold.
    pub fn identity(&self) -> Result<TlsIdentity, TlsError> {
        TlsIdentity::from_pem(&self.cert_pem, &self.key_pem)
    }
}

/// The names a generated certificate is valid for, besides those asked:
/// loopback, so that local tools and browsers can connect by those names.
const LOOPBACK_NAMES: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

fn self_signed(key: rcgen::KeyPair, names: &[String]) -> Result<GeneratedTls, TlsError> {
    let mut all: Vec<String> = LOOPBACK_NAMES.iter().map(|s| s.to_string()).collect();
    all.extend(
        names
            .iter()
            .filter(|n| !all.contains(n))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let mut params = rcgen::CertificateParams::new(all)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rxchain node");
    let cert = params.self_signed(&key)?;
    // The pin is read back from the certificate the way peers will read it.
    let hash = spki_hash(cert.der())?;
    Ok(GeneratedTls {
        key_pem: key.serialize_pem(),
        cert_pem: cert.pem(),
        hash,
    })
}

/// A fresh Ed25519 key and a self-signed certificate for it, valid for
/// loopback and `names` (host names or IP addresses).
pub fn generate(names: &[String]) -> Result<GeneratedTls, TlsError> {
    self_signed(rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?, names)
}

/// The Ed25519 key whose 32-byte seed is `seed`, with a self-signed
/// certificate for loopback. Anyone who knows the seed has the key: only
/// for derived demo and test keys.
pub fn from_seed(seed: [u8; 32]) -> Result<GeneratedTls, TlsError> {
    // The PKCS#8 v1 encoding of an Ed25519 key is a fixed prefix and the seed
    // (RFC 8410, section 7).
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let der = [&PREFIX[..], &seed].concat();
    let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(der),
        &rcgen::PKCS_ED25519,
    )?;
    self_signed(key, &[])
}

/// The request extension a TLS connection carries: the node whose declared
/// `tls` key the client's certificate holds, or `None` for a client without
/// a certificate (a browser, the CLI). Requests on plain-HTTP connections
/// carry no `PeerNode` at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerNode(pub Option<u64>);

impl PeerNode {
    /// The node a verified client certificate chain belongs to. The chain
    /// was accepted by [`server_config`]'s verifier, so its key is declared.
    pub fn of(genesis: &Genesis, certs: Option<&[CertificateDer<'_>]>) -> PeerNode {
        let id = certs
            .and_then(|c| c.first())
            .and_then(|leaf| spki_hash(leaf).ok())
            .and_then(|h| genesis.node_by_tls(&h).map(|(_, n)| n.id));
        PeerNode(id)
    }
}

/// Why a request on a TLS connection may not use a node-only route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerRefusal {
    /// The connection has no node certificate.
    #[error("this route is for consortium nodes: connect with the node's TLS certificate declared in genesis")]
    CertificateRequired,
    /// The connection's certificate is another node's than the one the
    /// request speaks for.
    #[error("the connection's TLS certificate is node {peer}'s, but the request speaks for node {claimed}")]
    CertificateMismatch {
        /// The node whose certificate the connection presented.
        peer: u64,
        /// The node the request names.
        claimed: String,
    },
}

impl PeerRefusal {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PeerRefusal::CertificateRequired => "peer_certificate_required",
            PeerRefusal::CertificateMismatch { .. } => "peer_certificate_mismatch",
        }
    }
}

/// What [`admit`] looks at in a request.
pub struct NodeClaims<'a> {
    /// The request path.
    pub path: &'a str,
    /// The `x-rxchain-node` header: the node that signed the request.
    pub node: Option<&'a str>,
    /// The `x-rxchain-org` header: present when an organisation admin signed.
    pub org: bool,
    /// The `x-rxchain-forwarded-by` header: the node relaying a client's request.
    pub forwarded_by: Option<&'a str>,
}

/// Paths only nodes call, whoever signs them: Raft, read indexes, and the
/// `/v1/node/` routes (a peer's access log for a patient's "who looked").
fn node_only_path(path: &str) -> bool {
    path.starts_with("/raft/") || path == "/v1/cluster/read-index" || path.starts_with("/v1/node/")
}

/// Whether a request that arrived on a TLS connection from `peer` may go
/// on. Node-only traffic must come over a connection whose certificate is
/// the node's own: Raft RPCs and read indexes, requests a node says it
/// forwards (`x-rxchain-forwarded-by` must be the connection's node), and
/// requests signed with a node key (`x-rxchain-node` without
/// `x-rxchain-org`: joining, cluster changes), whose signer must be the
/// connection's node or the node forwarding for it. Everything else is
/// public and admitted. The signature checks behind this stay as they are;
/// this adds that the bytes came from the node's own TLS endpoint.
pub fn admit(peer: PeerNode, req: &NodeClaims<'_>) -> Result<(), PeerRefusal> {
    let node_signed = req.node.is_some() && !req.org;
    if !(node_only_path(req.path) || req.forwarded_by.is_some() || node_signed) {
        return Ok(());
    }
    let Some(peer_id) = peer.0 else {
        return Err(PeerRefusal::CertificateRequired);
    };
    let is_peer = |claimed: &str| claimed.parse::<u64>().is_ok_and(|c| c == peer_id);
    let mismatch = |claimed: &str| PeerRefusal::CertificateMismatch {
        peer: peer_id,
        claimed: claimed.to_string(),
    };
    if let Some(f) = req.forwarded_by {
        if !is_peer(f) {
            return Err(mismatch(f));
        }
    }
    if let Some(n) = req.node.filter(|_| node_signed) {
        // A node relays another node's signed admin request (a joining node
        // asks a follower, which forwards to the leader) and names itself.
        if !is_peer(n) && req.forwarded_by.is_none() {
            return Err(mismatch(n));
        }
    }
    Ok(())
}

/// Which certificate keys a [`Pinned`] verifier accepts.
enum Pins {
    /// Exactly these key hashes.
    Fixed(Vec<Hash>),
    /// Any node the directory declares now.
    AnyNode(Directory),
    /// The key the directory declares now for this one node.
    Node(Directory, u64),
}

/// Accepts a certificate whose key hash is pinned, whatever its issuer,
/// names or dates: trust comes from the consortium, not from a CA.
struct Pinned {
    pins: Pins,
    algorithms: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for Pinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pins = match &self.pins {
            Pins::Fixed(p) => format!("{} fixed", p.len()),
            Pins::AnyNode(_) => "any declared node".into(),
            Pins::Node(_, id) => format!("node {id}"),
        };
        f.debug_struct("Pinned").field("pins", &pins).finish()
    }
}

impl Pinned {
    fn new(pins: Pins) -> Self {
        Pinned {
            pins,
            algorithms: provider().signature_verification_algorithms,
        }
    }

    fn accepts(&self, hash: &Hash) -> bool {
        match &self.pins {
            Pins::Fixed(p) => p.contains(hash),
            Pins::AnyNode(d) => d.get().node_by_tls(hash).is_some(),
            Pins::Node(d, id) => d.get().node(*id).is_some_and(|(_, n)| n.tls == *hash),
        }
    }

    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let hash = spki_hash(cert).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        if self.accepts(&hash) {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for Pinned {
    fn client_auth_mandatory(&self) -> bool {
        // Browsers and the CLI have no node certificate; node-only routes
        // check for one per request ([`admit`]).
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Every node's declared TLS pin.
fn all_pins(genesis: &Genesis) -> Vec<Hash> {
    genesis
        .orgs
        .iter()
        .flat_map(|o| o.nodes.iter().map(|n| n.tls))
        .collect()
}

/// The node's server configuration: presents `identity`, and accepts an
/// optional client certificate only if its key is the `tls` of a node the
/// directory declares at the time of the handshake.
pub fn server_config(
    identity: &TlsIdentity,
    nodes: Directory,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let verifier = Arc::new(Pinned::new(Pins::AnyNode(nodes)));
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration that accepts a server only if its key hash is
/// one of `pins`, presenting `identity` as client certificate if given.
pub fn pinned_client_config(
    pins: Vec<Hash>,
    identity: Option<&TlsIdentity>,
) -> Result<rustls::ClientConfig, TlsError> {
    client_config(Pins::Fixed(pins), identity)
}

fn client_config(
    pins: Pins,
    identity: Option<&TlsIdentity>,
) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned::new(pins)));
    Ok(match identity {
        Some(id) => builder.with_client_auth_cert(id.chain.clone(), id.key.clone_key())?,
        None => builder.with_no_client_auth(),
    })
}

/// The client configuration a node uses to reach node `target`: it presents
/// this node's certificate and accepts only the key the directory declares
/// for `target` at the time of the handshake. While `target` is not
/// declared, no server is accepted at all.
pub fn peer_client_config(
    nodes: Directory,
    target: u64,
    identity: &TlsIdentity,
) -> Result<rustls::ClientConfig, TlsError> {
    client_config(Pins::Node(nodes, target), Some(identity))
}

/// A client configuration for the CLI and tools: trusts any node declared
/// in `genesis`, presenting no certificate.
pub fn genesis_client_config(genesis: &Genesis) -> Result<rustls::ClientConfig, TlsError> {
    pinned_client_config(all_pins(genesis), None)
}

/// A client configuration that trusts servers whose certificate chains to
/// one of the CA certificates in `ca_pem` (for a public API behind a
/// CA-issued certificate), presenting no certificate.
pub fn ca_client_config(ca_pem: &str) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|source| TlsError::Pem {
            what: "the CA file".into(),
            source,
        })?;
        roots.add(cert)?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_key_is_stable_and_its_certificate_carries_it() {
        let a = from_seed([7; 32]).unwrap();
        let b = from_seed([7; 32]).unwrap();
        assert_eq!(a.hash, b.hash, "the pin depends on the seed alone");
        assert_ne!(a.hash, from_seed([8; 32]).unwrap().hash);
        let id = a.identity().unwrap();
        assert_eq!(id.hash(), a.hash);
        // A certificate for another key does not load with this key.
        let other = generate(&[]).unwrap();
        assert!(matches!(
            TlsIdentity::from_pem(&other.cert_pem, &a.key_pem),
            Err(TlsError::KeyMismatch)
        ));
    }

    #[test]
    fn node_only_routes_need_the_signing_nodes_certificate() {
        let claims = |path, node, org, forwarded_by| NodeClaims {
            path,
            node,
            org,
            forwarded_by,
        };
        let raft = claims("/raft/append", Some("2"), false, None);
        assert_eq!(admit(PeerNode(Some(2)), &raft), Ok(()));
        assert_eq!(
            admit(PeerNode(None), &raft),
            Err(PeerRefusal::CertificateRequired)
        );
        assert_eq!(
            admit(PeerNode(Some(3)), &raft).map_err(|e| e.code()),
            Err("peer_certificate_mismatch")
        );
        let read_index = claims("/v1/cluster/read-index", None, false, None);
        assert_eq!(
            admit(PeerNode(None), &read_index),
            Err(PeerRefusal::CertificateRequired)
        );
        assert_eq!(admit(PeerNode(Some(1)), &read_index), Ok(()));
        // A peer's access log: never for a browser, even unsigned.
        let access = claims("/v1/node/access", None, false, None);
        assert_eq!(
            admit(PeerNode(None), &access),
            Err(PeerRefusal::CertificateRequired)
        );
        let access = claims("/v1/node/access", Some("2"), false, None);
        assert_eq!(admit(PeerNode(Some(2)), &access), Ok(()));
        assert!(admit(PeerNode(Some(3)), &access).is_err());
        // A client's submission forwarded by node 2 must come from node 2.
        let fwd = claims("/v1/tx", None, false, Some("2"));
        assert_eq!(admit(PeerNode(Some(2)), &fwd), Ok(()));
        assert!(admit(PeerNode(Some(3)), &fwd).is_err());
        assert!(admit(PeerNode(None), &fwd).is_err());
        // Node 4's join request relayed by node 2.
        let join = claims("/v1/cluster/learners", Some("4"), false, Some("2"));
        assert_eq!(admit(PeerNode(Some(2)), &join), Ok(()));
        let direct = claims("/v1/cluster/learners", Some("4"), false, None);
        assert!(admit(PeerNode(Some(2)), &direct).is_err());
        assert_eq!(admit(PeerNode(Some(4)), &direct), Ok(()));
        // Public routes and org-admin requests need no certificate.
        assert_eq!(
            admit(PeerNode(None), &claims("/v1/tx", None, false, None)),
            Ok(())
        );
        let admin = claims("/v1/cluster/voters", Some("1"), true, None);
        assert_eq!(admit(PeerNode(None), &admin), Ok(()));
    }
}
