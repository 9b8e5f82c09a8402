//! The Kubernetes manifests: `kubectl kustomize k8s/` renders, the render passes
//! `kubernetes-validate --strict`, and the workloads agree with the configs they run.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{output, repo, run_ok, scratch, show, tools_or_skip, IMAGE_UID};

/// The oldest Kubernetes the manifests support (StatefulSet PVC retention is GA in 1.32)
/// and the newest schema kubernetes-validate ships.
const K8S_VERSIONS: [&str; 2] = ["1.32.0", "1.37.0"];

#[test]
fn kubernetes_manifests_render_and_pass_strict_schema_validation() {
    let test = "kubernetes_manifests_render_and_pass_strict_schema_validation";
    let Some([kubectl, validate]) = tools_or_skip(test, ["kubectl", "kubernetes-validate"]) else {
        return;
    };
    let scratch = scratch();
    let rendered = scratch.path().join("k8s.yaml");
    std::fs::write(&rendered, render(&kubectl)).unwrap();
    for version in K8S_VERSIONS {
        let out = output(
            Command::new(&validate)
                .args(["--strict", "--quiet", "-k", version])
                .arg(&rendered),
        );
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "kubernetes-validate --strict -k {version} on the render of k8s/:\n{}",
            show(&out)
        );
    }
}

#[test]
fn kubernetes_workloads_match_their_configs() {
    let test = "kubernetes_workloads_match_their_configs";
    let Some([kubectl, validate]) = tools_or_skip(test, ["kubectl", "kubernetes-validate"]) else {
        return;
    };
    let objs = objects(&validate, &render(&kubectl));
    for (kind, name) in [
        ("Namespace", "logferry"),
        ("ServiceAccount", "logferry-agent"),
        ("ServiceAccount", "logferry-aggregator"),
        ("DaemonSet", "logferry-agent"),
        ("StatefulSet", "logferry-aggregator"),
        ("Service", "logferry-aggregator"),
        ("PodDisruptionBudget", "logferry-aggregator"),
        ("NetworkPolicy", "logferry-agent"),
        ("NetworkPolicy", "logferry-aggregator"),
    ] {
        object(&objs, kind, name);
    }

    // The agent: every node, the node's logs read-only, the spool on the node.
    let ds = object(&objs, "DaemonSet", "logferry-agent");
    let pod = &ds["spec"]["template"]["spec"];
    let agent = &pod["containers"][0];
    let agent_cfg = mounted_config(&objs, pod, agent);
    assert!(
        list(&pod["tolerations"])
            .iter()
            .any(|t| t["operator"] == "Exists" && t.get("key").is_none()),
        "the agent must tolerate every taint to run on every node"
    );
    for path in ["/var/log", "/var/log/pods"] {
        let (vol, mount) = volume_at(pod, agent, path);
        assert_eq!(vol["hostPath"]["path"], path, "{path} must be a hostPath");
        assert_eq!(mount["readOnly"], true, "{path} must be mounted read-only");
    }
    let data_dir = toml_str(&agent_cfg, "", "data_dir").expect("agent data_dir");
    let (vol, _) = volume_at(pod, agent, &data_dir);
    assert!(
        vol["hostPath"].is_object(),
        "the spool must outlive the pod (hostPath)"
    );
    assert!(
        list(&agent["env"]).iter().any(|e| e["name"] == "NODE_NAME"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"),
        "NODE_NAME must come from the downward API"
    );
    let admin = listen_port(&agent_cfg, "admin");
    assert_eq!(admin, 7402);
    assert_probes(agent, admin);
    assert_locked_down(agent);

    // The aggregator: non-root, a volume per replica, probes and Service on its ports.
    let sts = object(&objs, "StatefulSet", "logferry-aggregator");
    let pod = &sts["spec"]["template"]["spec"];
    let agg = &pod["containers"][0];
    let agg_cfg = mounted_config(&objs, pod, agg);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["runAsUser"], IMAGE_UID,
        "the aggregator runs as the image's user"
    );
    let data_dir = toml_str(&agg_cfg, "", "data_dir").expect("aggregator data_dir");
    let mount = list(&agg["volumeMounts"])
        .into_iter()
        .find(|m| m["mountPath"] == data_dir.as_str())
        .unwrap_or_else(|| panic!("nothing mounted at the aggregator's data_dir {data_dir}"));
    assert!(
        list(&sts["spec"]["volumeClaimTemplates"])
            .iter()
            .any(|t| t["metadata"]["name"] == mount["name"]),
        "the aggregator's data_dir must be a volume per replica (volumeClaimTemplates)"
    );
    let admin = listen_port(&agg_cfg, "admin");
    let ingest = listen_port(&agg_cfg, "ingest");
    assert_eq!((ingest, admin), (7400, 7401));
    assert_probes(agg, admin);
    assert_locked_down(agg);
    let svc = object(&objs, "Service", "logferry-aggregator");
    let port = &svc["spec"]["ports"][0];
    assert_eq!(port["port"], ingest);
    assert_eq!(container_port(agg, &port["targetPort"]), ingest);
    assert_eq!(
        toml_str(&agent_cfg, "output", "url").as_deref(),
        Some(format!("https://logferry-aggregator:{ingest}").as_str()),
        "the agent must send to the aggregator Service"
    );
    let labels = &pod_labels(sts);
    for selector in [
        &svc["spec"]["selector"],
        &object(&objs, "PodDisruptionBudget", "logferry-aggregator")["spec"]["selector"]
            ["matchLabels"],
    ] {
        assert!(
            selects(selector, labels),
            "{selector} must select the aggregator pods"
        );
    }
    let np = object(&objs, "NetworkPolicy", "logferry-aggregator");
    assert!(
        list(&np["spec"]["ingress"]).iter().any(|rule| {
            list(&rule["ports"]).iter().any(|p| p["port"] == ingest)
                && list(&rule["from"])
                    .iter()
                    .any(|f| selects(&f["podSelector"]["matchLabels"], &pod_labels(ds)))
        }),
        "the aggregator's NetworkPolicy must admit the agents on {ingest}"
    );
    for workload in [ds, sts] {
        let sa = workload["spec"]["template"]["spec"]["serviceAccountName"]
            .as_str()
            .expect("serviceAccountName");
        object(&objs, "ServiceAccount", sa);
    }
}

pub(super) fn render(kubectl: &Path) -> String {
    run_ok(
        Command::new(kubectl)
            .arg("kustomize")
            .arg(repo().join("k8s")),
    )
}

/// Python for [`objects`]: YAML documents to one JSON array; a Secret's `data` is decoded
/// into `stringData`, as the API server would present it to the pod.
const YAML_TO_JSON: &str = r#"
import base64, json, sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
for d in docs:
    if d.get("kind") == "Secret":
        plain = {k: base64.b64decode(v).decode() for k, v in (d.pop("data", None) or {}).items()}
        plain.update(d.get("stringData") or {})
        d["stringData"] = plain
json.dump(docs, sys.stdout)
"#;

/// The rendered objects, parsed by the tools venv's Python (PyYAML comes with
/// kubernetes-validate, whose executable `validate` is).
pub(super) fn objects(validate: &Path, yaml: &str) -> Vec<Value> {
    let python = validate.with_file_name("python");
    let mut child = Command::new(&python)
        .args(["-c", YAML_TO_JSON])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "YAML to JSON:\n{}", show(&out));
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(objs) => objs,
        other => panic!("expected a list of objects, got {other}"),
    }
}

pub(super) fn list(v: &Value) -> Vec<&Value> {
    v.as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

pub(super) fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

pub(super) fn name(obj: &Value) -> &str {
    str_of(&obj["metadata"]["name"])
}

pub(super) fn object<'a>(objs: &'a [Value], kind: &str, name_: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && name(o) == name_)
        .unwrap_or_else(|| panic!("the render has no {kind} {name_}"))
}

fn pod_labels(workload: &Value) -> Value {
    workload["spec"]["template"]["metadata"]["labels"].clone()
}

/// Whether every label of `selector` is on `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v))
}

/// The volume mounted at `path` in container `c`, and its mount.
fn volume_at<'a>(pod: &'a Value, c: &'a Value, path: &str) -> (&'a Value, &'a Value) {
    let mount = list(&c["volumeMounts"])
        .into_iter()
        .find(|m| m["mountPath"] == path)
        .unwrap_or_else(|| panic!("nothing is mounted at {path}"));
    let vol = list(&pod["volumes"])
        .into_iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume {}", mount["name"]));
    (vol, mount)
}

/// The config file the container runs (`--config PATH` in its args), read from the
/// ConfigMap mounted at that path's directory.
fn mounted_config(objs: &[Value], pod: &Value, c: &Value) -> String {
    let args = list(&c["args"]);
    let i = args
        .iter()
        .position(|a| *a == "--config")
        .expect("the container passes --config");
    let path = Path::new(str_of(args[i + 1]));
    let (vol, _) = volume_at(pod, c, path.parent().unwrap().to_str().unwrap());
    let cm = object(objs, "ConfigMap", str_of(&vol["configMap"]["name"]));
    str_of(&cm["data"][path.file_name().unwrap().to_str().unwrap()]).to_owned()
}

fn container_port(c: &Value, port: &Value) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    list(&c["ports"])
        .iter()
        .find(|p| p["name"] == *port)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no container port named {port}"))
}

/// Liveness on /healthz and readiness on /readyz, both on the admin port.
fn assert_probes(c: &Value, admin: u64) {
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{}: {probe}", c["name"]);
        assert_eq!(
            container_port(c, &get["port"]),
            admin,
            "{}: {probe} port",
            c["name"]
        );
    }
}

fn assert_locked_down(c: &Value) {
    let sc = &c["securityContext"];
    assert_eq!(
        sc["readOnlyRootFilesystem"], true,
        "{}: read-only root fs",
        c["name"]
    );
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{}", c["name"]);
    assert_eq!(
        sc["capabilities"]["drop"],
        serde_json::json!(["ALL"]),
        "{}",
        c["name"]
    );
    for r in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                c["resources"][r][resource].is_string(),
                "{}: {resource} {r}",
                c["name"]
            );
        }
    }
}

/// `value` of `key = "value"` in `[table]` ("" for the top level) of one of our small
/// TOML configs.
fn toml_str(text: &str, table: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[') {
            current = header
                .trim_end_matches(']')
                .trim_matches(['[', ']'])
                .to_owned();
        } else if current == table {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            if k.trim() == key {
                let v = v.trim();
                let quoted = v.strip_prefix('"').and_then(|v| v.split('"').next());
                return Some(quoted.unwrap_or(v).to_owned());
            }
        }
    }
    None
}

fn listen_port(config: &str, table: &str) -> u64 {
    let listen = toml_str(config, table, "listen").unwrap_or_else(|| panic!("[{table}] listen"));
    listen.rsplit(':').next().unwrap().parse().unwrap()
}
