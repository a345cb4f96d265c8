//! `deploy/docker-compose.yml` matches what `rxchain node` accepts (issue
//! 11). Docker does not run here, so the compose file is read as data: the
//! layout it mounts is generated with `rxchain genesis new` from the
//! checked-in example (`fixtures/consortium.toml`) exactly as its header
//! says, and every service's settings file is loaded with the node's own
//! settings loader, under the environment of the image and the service.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use rxchain::config::Settings;
use rxchain::tls::TlsIdentity;
use rxchain_contracts::Genesis;
use yaml_rust2::{Yaml, YamlLoader};

const BIN: &str = env!("CARGO_BIN_EXE_rxchain");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn s(y: &Yaml) -> &str {
    y.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {y:?}"))
}

fn read_genesis(path: &Path) -> Genesis {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The `ENV` variables the Dockerfile sets in the image.
fn image_env() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let joined = text.replace("\\\n", " ");
    let mut env = Vec::new();
    for line in joined.lines() {
        if let Some(rest) = line.trim().strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV KEY=value");
                env.push((k.to_string(), v.to_string()));
            }
        }
    }
    env
}

/// One compose service, as the test needs it.
struct Service {
    name: String,
    hostname: String,
    config: PathBuf,
    settings: Settings,
    /// Container port → host port.
    ports: BTreeMap<u16, u16>,
    /// Named-volume mount targets.
    volume_targets: Vec<PathBuf>,
}

#[test]
fn the_compose_file_runs_what_genesis_new_writes() {
    let compose_dir = repo().join("deploy");
    let text = std::fs::read_to_string(compose_dir.join("docker-compose.yml")).unwrap();
    let doc = &YamlLoader::load_from_str(&text).unwrap()[0];

    // The layout, generated where the compose file expects it
    // (`deploy/consortium`), in a scratch copy of `deploy/`.
    let scratch = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["genesis", "new", "--config"])
        .arg(repo().join("fixtures/consortium.toml"))
        .arg("--out")
        .arg(scratch.path().join("consortium"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let genesis = read_genesis(&scratch.path().join("consortium/genesis.json"));
    assert!(
        text.contains(
            "rxchain genesis new --config fixtures/consortium.toml --out deploy/consortium"
        ),
        "the header says how the layout is made"
    );

    let named_volumes: BTreeSet<String> = doc["volumes"]
        .as_hash()
        .expect("top-level volumes")
        .keys()
        .map(|k| s(k).to_string())
        .collect();
    let services = doc["services"].as_hash().expect("services");
    assert_eq!(services.len(), 3, "three organisations");
    let image_env = image_env();
    let mut parsed = Vec::new();
    for (name, svc) in services {
        let name = s(name).to_string();
        // The image is built from the repository's Dockerfile.
        let context = compose_dir.join(s(&svc["build"]["context"]));
        assert!(
            context.join(s(&svc["build"]["dockerfile"])).is_file(),
            "{name}: the build context holds the Dockerfile"
        );
        let command: Vec<&str> = svc["command"].as_vec().unwrap().iter().map(s).collect();
        assert_eq!(&command[..2], ["node", "--config"], "{name}: runs a node");
        let in_container = Path::new(command[2]);
        // Bind mounts map container paths to the generated files.
        let mut binds: Vec<(PathBuf, PathBuf, bool)> = Vec::new();
        let mut volume_targets = Vec::new();
        for v in svc["volumes"].as_vec().unwrap() {
            let parts: Vec<&str> = s(v).split(':').collect();
            let (src, dst) = (parts[0], PathBuf::from(parts[1]));
            let ro = parts.get(2) == Some(&"ro");
            if let Some(rel) = src.strip_prefix("./") {
                let host = scratch.path().join(rel);
                assert!(host.is_dir(), "{name}: {src} is a generated directory");
                binds.push((host, dst, ro));
            } else {
                assert!(
                    named_volumes.contains(src),
                    "{name}: {src} is a declared volume"
                );
                volume_targets.push(dst);
            }
        }
        let to_host = |p: &Path| -> Option<PathBuf> {
            binds
                .iter()
                .find_map(|(host, dst, _)| p.strip_prefix(dst).ok().map(|rest| host.join(rest)))
        };
        let config = to_host(in_container)
            .unwrap_or_else(|| panic!("{name}: {} is not mounted", in_container.display()));
        assert!(config.is_file(), "{name}: {} exists", config.display());
        // The image's environment, then the service's, as docker sets them.
        let mut env = image_env.clone();
        if let Some(h) = svc["environment"].as_hash() {
            for (k, v) in h {
                let v = match v {
                    Yaml::String(v) => v.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => panic!("{name}: environment value {other:?}"),
                };
                env.push((s(k).to_string(), v));
            }
        }
        let settings = Settings::load(&config, env)
            .unwrap_or_else(|e| panic!("{name}: rxchain node refuses its settings: {e}"));
        // Files named relative to the settings file are in the mounted
        // directory; what the node writes is on a named volume, not the
        // read-only configuration.
        for f in [&settings.genesis, &settings.node_key_file]
            .into_iter()
            .chain(settings.data_key_file.as_ref())
        {
            assert!(f.is_file(), "{name}: {} exists", f.display());
        }
        assert!(
            volume_targets
                .iter()
                .any(|t| settings.data_dir.starts_with(t)),
            "{name}: data_dir {} is on a volume",
            settings.data_dir.display()
        );
        assert!(
            binds
                .iter()
                .all(|(_, dst, ro)| *ro && !settings.data_dir.starts_with(dst)),
            "{name}: configuration is mounted read-only, data elsewhere"
        );
        let mut ports = BTreeMap::new();
        for p in svc["ports"].as_vec().unwrap() {
            let (host, container) = s(p).split_once(':').unwrap();
            ports.insert(container.parse().unwrap(), host.parse().unwrap());
        }
        let hostname = svc["hostname"].as_str().unwrap_or(&name).to_string();
        parsed.push(Service {
            name,
            hostname,
            config,
            settings,
            ports,
            volume_targets,
        });
    }

    // Against genesis: each service runs one declared node with its
    // declared keys, and the services cover every declared node.
    let mut nodes = BTreeSet::new();
    let mut host_ports = BTreeSet::new();
    for svc in &parsed {
        let st = &svc.settings;
        let name = &svc.name;
        assert_eq!(read_genesis(&st.genesis), genesis, "{name}: same genesis");
        let (org, decl) = genesis
            .node(st.node_id)
            .unwrap_or_else(|| panic!("{name}: node {} declared", st.node_id));
        assert!(
            svc.config.parent().unwrap().ends_with(org.id.as_str()),
            "{name}: mounts its own organisation's directory"
        );
        assert_eq!(
            rxchain::keys::read(&st.node_key_file).unwrap().public(),
            decl.key,
            "{name}: node key"
        );
        let tls = st
            .tls
            .as_ref()
            .expect("TLS on: the node listens on 0.0.0.0");
        assert_eq!(
            TlsIdentity::load(&tls.cert_file, &tls.key_file)
                .unwrap()
                .hash(),
            decl.tls,
            "{name}: TLS key pinned by genesis"
        );
        assert_eq!(
            rxchain::keys::read(st.data_key_file.as_ref().unwrap())
                .unwrap()
                .public(),
            org.data_key,
            "{name}: data key"
        );
        assert!(!st.insecure_plaintext && !st.testing_faults);
        // Reachable where it says: the advertised host is the service's
        // name on the compose network, the port the one it listens on,
        // and that port is published.
        let adv = st.advertise.as_deref().expect("advertise set");
        let (host, port) = adv.rsplit_once(':').unwrap();
        let port: u16 = port.parse().unwrap();
        assert!(
            host == svc.hostname || host == svc.name,
            "{name}: advertises {adv}"
        );
        assert_eq!(
            port,
            st.listen.port(),
            "{name}: advertise port = listen port"
        );
        assert!(
            st.listen.ip().is_unspecified(),
            "{name}: listens on all interfaces"
        );
        let published = svc
            .ports
            .get(&port)
            .unwrap_or_else(|| panic!("{name}: port {port} is published"));
        assert!(
            host_ports.insert(*published),
            "host port {published} reused"
        );
        assert!(!svc.volume_targets.is_empty());
        nodes.insert(st.node_id);
    }
    let declared: BTreeSet<u64> = genesis
        .orgs
        .iter()
        .flat_map(|o| o.nodes.iter().map(|n| n.id))
        .collect();
    assert_eq!(nodes, declared, "one service per declared node");
    let bootstraps: Vec<_> = parsed.iter().filter(|s| s.settings.bootstrap).collect();
    assert_eq!(bootstraps.len(), 1, "exactly one node bootstraps");
    // Peers name the other services where they advertise themselves.
    let advertised: BTreeMap<String, &str> = parsed
        .iter()
        .map(|s| {
            (
                s.settings.node_id.to_string(),
                s.settings.advertise.as_deref().unwrap(),
            )
        })
        .collect();
    for svc in &parsed {
        assert_eq!(svc.settings.peers.len(), parsed.len() - 1);
        for (id, addr) in &svc.settings.peers {
            assert_eq!(
                advertised.get(id),
                Some(&addr.as_str()),
                "{}: peer {id}",
                svc.name
            );
        }
    }
}
