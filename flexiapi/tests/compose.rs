//! `compose/` is never started here (no Docker engine on the test machines), so what can drift without
//! notice is checked against the code: each flexiapi service runs a real subcommand with settings the
//! configuration reads (no misspelt name left at its default), pointing at services the file defines with the
//! credentials those services are given, on the port the container publishes; Grafana mounts directories that
//! exist and its dashboards use the datasource it provisions. (The panels' SQL runs in
//! `ingest/tests/dashboards.rs`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use flexiapi_core::config::Source;
use flexiapi_core::Config;
use yaml_rust2::{Yaml, YamlLoader};

fn compose_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../compose")
}

fn load(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .remove(0)
}

/// Applies YAML merge keys (`<<: *anchor`), which Compose honours and the YAML 1.2 loader leaves as is:
/// the mapping's own keys win over the merged ones.
fn merged(node: &Yaml) -> Yaml {
    match node {
        Yaml::Hash(map) => {
            let mut out = yaml_rust2::yaml::Hash::new();
            if let Some(Yaml::Hash(base)) = map.get(&Yaml::String("<<".into())) {
                for (k, v) in base {
                    out.insert(k.clone(), merged(v));
                }
            }
            for (k, v) in map {
                if k.as_str() != Some("<<") {
                    out.insert(k.clone(), merged(v));
                }
            }
            Yaml::Hash(out)
        }
        Yaml::Array(items) => Yaml::Array(items.iter().map(merged).collect()),
        other => other.clone(),
    }
}

fn text(node: &Yaml) -> String {
    match node {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// A service's `environment` (map form) as name → value.
fn environment(service: &Yaml) -> BTreeMap<String, String> {
    match &service["environment"] {
        Yaml::Hash(map) => map.iter().map(|(k, v)| (text(k), text(v))).collect(),
        Yaml::BadValue => BTreeMap::new(),
        other => panic!("environment in list form is not checked: {other:?}"),
    }
}

/// The host of `scheme://user:password@host:port/…` or of `host:port`.
fn host(address: &str) -> &str {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    rest.split(['/', ':']).next().unwrap()
}

fn services() -> yaml_rust2::yaml::Hash {
    let compose = merged(&load(&compose_dir().join("docker-compose.yml")));
    compose["services"].as_hash().expect("services").clone()
}

#[test]
fn flexiapi_services_run_real_subcommands_with_settings_the_config_reads() {
    let services = services();
    let names: Vec<String> = services.keys().map(text).collect();
    let mut flexiapi = 0;
    for (name, service) in &services {
        let name = text(name);
        for dependency in service["depends_on"].as_hash().into_iter().flatten() {
            assert!(
                names.contains(&text(dependency.0)),
                "{name} depends on an undefined service"
            );
        }
        if service["image"].as_str() != Some("flexiapi-rs:local") {
            continue;
        }
        flexiapi += 1;
        assert_eq!(
            service["build"]["dockerfile"].as_str(),
            Some("compose/Dockerfile"),
            "{name}"
        );
        let command: Vec<String> = service["command"]
            .as_vec()
            .unwrap_or_else(|| panic!("{name}: command"))
            .iter()
            .map(text)
            .collect();
        let help = Command::new(env!("CARGO_BIN_EXE_flexiapi"))
            .args(&command)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            help.status.success(),
            "{name}: `flexiapi {}` is not a subcommand: {}",
            command.join(" "),
            String::from_utf8_lossy(&help.stderr)
        );

        let env = environment(service);
        let source = Source::from_pairs(env.clone());
        let config = Config::from_source(&source).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            source.unread(),
            Vec::<String>::new(),
            "{name}: settings nothing reads"
        );
        assert!(config.scale_mode(), "{name}: compose runs the scale mode");
        assert!(config.database_url.starts_with("postgres://"), "{name}");
        for (setting, address) in [
            ("FLEXIAPI_DATABASE_URL", Some(config.database_url.as_str())),
            ("FLEXIAPI_KAFKA_BROKERS", config.kafka_brokers.as_deref()),
            ("FLEXIAPI_CLICKHOUSE_URL", config.clickhouse_url.as_deref()),
        ] {
            let address = address.unwrap_or_else(|| panic!("{name}: {setting} unset"));
            for one in address.split(',') {
                assert!(
                    names.iter().any(|n| n == host(one)),
                    "{name}: {setting} points at {}, not a service",
                    host(one)
                );
            }
        }
        // Published ports map onto the address the server listens on inside the container.
        for port in service["ports"].as_vec().into_iter().flatten() {
            let port = text(port);
            let inside = port.rsplit(':').next().unwrap();
            assert_eq!(inside, config.listen.port().to_string(), "{name}: {port}");
        }
        assert!(
            config.listen.ip().is_unspecified(),
            "{name}: must listen beyond the container"
        );

        // The credentials the flexiapi roles use are those the database services are created with.
        let postgres = environment(&services[&Yaml::String("postgres".into())]);
        assert_eq!(
            config.database_url,
            format!(
                "postgres://{}:{}@postgres:5432/{}",
                postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"]
            ),
            "{name}"
        );
        let clickhouse = environment(&services[&Yaml::String("clickhouse".into())]);
        assert_eq!(
            config.clickhouse_user.as_deref(),
            Some(clickhouse["CLICKHOUSE_USER"].as_str())
        );
        assert_eq!(
            config.clickhouse_password.as_deref(),
            Some(clickhouse["CLICKHOUSE_PASSWORD"].as_str())
        );
        assert_eq!(
            config.clickhouse_database, clickhouse["CLICKHOUSE_DB"],
            "{name}"
        );
    }
    assert_eq!(flexiapi, 4, "migrate, serve, ingest and sink");
}

#[test]
fn grafana_provisions_the_datasource_its_dashboards_use() {
    let services = services();
    let grafana = &services[&Yaml::String("grafana".into())];
    let mut mounts = BTreeMap::new();
    for volume in grafana["volumes"].as_vec().expect("grafana volumes") {
        let volume = text(volume);
        let mut parts = volume.split(':');
        let (from, to) = (parts.next().unwrap(), parts.next().unwrap());
        let from = compose_dir().join(from);
        assert!(from.is_dir(), "{} is not a directory", from.display());
        mounts.insert(to.to_owned(), from);
    }
    let provisioning = &mounts["/etc/grafana/provisioning"];

    let datasources = load(&provisioning.join("datasources/clickhouse.yaml"));
    let datasource = &datasources["datasources"][0];
    let clickhouse = environment(&services[&Yaml::String("clickhouse".into())]);
    assert_eq!(datasource["jsonData"]["host"].as_str(), Some("clickhouse"));
    assert_eq!(
        datasource["jsonData"]["username"].as_str(),
        Some(clickhouse["CLICKHOUSE_USER"].as_str())
    );
    assert_eq!(
        datasource["jsonData"]["defaultDatabase"].as_str(),
        Some(clickhouse["CLICKHOUSE_DB"].as_str())
    );
    assert_eq!(
        datasource["secureJsonData"]["password"].as_str(),
        Some(clickhouse["CLICKHOUSE_PASSWORD"].as_str())
    );
    // The plugin Grafana installs is the datasource's type.
    let plugins = environment(grafana)["GF_INSTALL_PLUGINS"].clone();
    let kind = datasource["type"].as_str().unwrap();
    assert!(
        plugins.split(',').any(|p| p == kind),
        "{kind} not in {plugins}"
    );
    let uid = datasource["uid"].as_str().unwrap();

    let providers = load(&provisioning.join("dashboards/flexiapi.yaml"));
    let path = providers["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let dashboards = mounts
        .get(path)
        .unwrap_or_else(|| panic!("the dashboards provider reads {path}, which is not mounted"));
    let mut panels = 0;
    for entry in std::fs::read_dir(dashboards).unwrap() {
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            panels += 1;
            for source in std::iter::once(&panel["datasource"]).chain(
                panel["targets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| &t["datasource"]),
            ) {
                assert_eq!(source["uid"], uid, "panel {}", panel["title"]);
                assert_eq!(source["type"], kind, "panel {}", panel["title"]);
            }
        }
    }
    assert!(
        panels >= 7,
        "the statistics dashboard has its seven panels ({panels})"
    );
}
