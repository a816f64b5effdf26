//! The deployment files: the systemd unit passes `systemd-analyze verify` without a
//! complaint, the Kubernetes manifests pass a schema validator (kubernetes-validate,
//! installed by `make test` into target/pyenv), and the configurations they carry
//! pass `check`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `check` on `yaml` with the deployment's paths moved into `dir`.
fn check_config(yaml: &str, dir: &Path) {
    let secret = dir.join("messenger-secret");
    std::fs::write(&secret, support::SECRET).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let yaml = yaml
        .replace(
            "/run/credentials/intercom-secure-proxy.service/messenger-secret",
            &secret.display().to_string(),
        )
        .replace(
            "/etc/intercom-secure-proxy/secret/messenger-secret",
            &secret.display().to_string(),
        )
        .replace("/var/log/intercom-secure-proxy", &dir.display().to_string())
        .replace("legacy-app:3000", "127.0.0.1:3000");
    let conf = dir.join("config.yaml");
    std::fs::write(&conf, yaml).unwrap();
    let (code, text) = support::check_config_file(&conf, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("WARN"), "the shipped configuration draws warnings: {text}");
}

#[test]
fn the_systemd_unit_verifies_and_its_configuration_checks() {
    let dir = tempfile::tempdir().unwrap();
    // verify insists that the binaries exist: point the unit at the one just built.
    let unit = std::fs::read_to_string(repo("deploy/systemd/intercom-secure-proxy.service"))
        .unwrap()
        .replace("/usr/local/bin/intercom-secure-proxy", &support::binary().display().to_string());
    let path = dir.path().join("intercom-secure-proxy.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (scripts/install-deps.sh installs systemd)");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    // verify reports unknown keys and bad values as warnings with exit 0.
    assert!(
        !text.contains("intercom-secure-proxy.service"),
        "systemd-analyze complains about the unit:\n{text}"
    );
    check_config(&std::fs::read_to_string(repo("deploy/systemd/config.yaml")).unwrap(), dir.path());
}

#[test]
fn the_kubernetes_manifests_validate_and_their_configuration_checks() {
    let validator = repo("target/pyenv/bin/kubernetes-validate");
    assert!(
        validator.exists(),
        "{} is missing: run `make test` (target packaging-deps)",
        validator.display()
    );
    let manifests: Vec<PathBuf> = std::fs::read_dir(repo("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    assert_eq!(
        manifests.len(),
        5,
        "Deployment, Service, ConfigMap, Secret, PodDisruptionBudget: {manifests:?}"
    );
    let out = Command::new(&validator).arg("--strict").args(&manifests).output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(" passed for resource ").count(), 5, "{text}");

    let configmap: yaml_serde::Value = yaml_serde::from_str(
        &std::fs::read_to_string(repo("deploy/kubernetes/configmap.yaml")).unwrap(),
    )
    .unwrap();
    let config =
        configmap["data"]["config.yaml"].as_str().expect("the ConfigMap carries config.yaml");
    let dir = tempfile::tempdir().unwrap();
    check_config(config, dir.path());
    // The probes use the admin listener the configuration opens.
    let deployment = std::fs::read_to_string(repo("deploy/kubernetes/deployment.yaml")).unwrap();
    assert!(
        config.contains("listen: \"0.0.0.0:9090\"") && deployment.contains("containerPort: 9090")
    );
    assert!(deployment.contains("path: /readyz") && deployment.contains("path: /healthz"));
}
