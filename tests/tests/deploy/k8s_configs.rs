//! The configs inside the ConfigMaps pass `validate` where they run: in a chroot holding
//! the container's binary and every volume it mounts, filled from the render.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::k8s::{list, name, object, objects, render, str_of};
use crate::{ci, link_or_copy, output, run_ok, scratch, shout, show, tools_or_skip, BINS};

/// Secrets the manifests use but do not contain (made by cert-manager or by hand), and
/// which file of `logferry-aggregator certs` stands in for each key.
const EXTERNAL_SECRETS: [(&str, &[(&str, &str)]); 1] = [(
    "logferry-aggregator-tls",
    &[
        ("tls.crt", "server.pem"),
        ("tls.key", "server-key.pem"),
        ("ca.crt", "ca.pem"),
    ],
)];

#[test]
fn kubernetes_configmap_configs_pass_validate_in_the_pods_file_system() {
    let test = "kubernetes_configmap_configs_pass_validate_in_the_pods_file_system";
    let Some([kubectl, validate, chroot]) =
        tools_or_skip(test, ["kubectl", "kubernetes-validate", "chroot"])
    else {
        return;
    };
    let Some(chroot) = chroot_command(test, chroot) else {
        return;
    };
    let objs = objects(&validate, &render(&kubectl));
    let scratch = scratch();
    let certs = scratch.path().join("certs");
    run_ok(
        Command::new(logferry_e2e::binary("logferry-aggregator"))
            .args(["certs", "--san", "logferry-aggregator", "--out"])
            .arg(&certs),
    );
    let mut checked = 0;
    for workload in objs
        .iter()
        .filter(|o| o["kind"] == "DaemonSet" || o["kind"] == "StatefulSet")
    {
        let pod = &workload["spec"]["template"]["spec"];
        for c in list(&pod["containers"]) {
            let what = format!("{}/{}", name(workload), str_of(&c["name"]));
            let root = scratch.path().join(what.replace('/', "-"));
            fill_pod_volumes(&root, &objs, pod, c, &certs);
            let bin = image_binary(c);
            install_binary(&root, bin);
            assert!(
                c.get("command").is_none(),
                "{what}: `command` replaces the image's"
            );
            let mut args: Vec<String> = list(&c["args"]).iter().map(|a| str_of(a).into()).collect();
            if args.last().map(String::as_str) == Some("run") {
                args.pop();
            }
            args.push("validate".into());
            let out = output(
                Command::new(&chroot[0])
                    .args(&chroot[1..])
                    .arg(&root)
                    .arg(format!("/usr/bin/{bin}"))
                    .args(&args)
                    .env_clear()
                    .envs(container_env(&objs, c)),
            );
            assert!(
                out.status.success()
                    && String::from_utf8_lossy(&out.stdout).contains("config is valid"),
                "{what}: `{bin} {}` in the pod's file system:\n{}",
                args.join(" "),
                show(&out)
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2, "one agent and one aggregator container");
}

/// The binary an image runs: `registry/path/logferry-agent:tag` → `logferry-agent`.
fn image_binary(c: &Value) -> &'static str {
    let image = str_of(&c["image"]);
    let last = image.rsplit('/').next().unwrap();
    let repo_name = last.split([':', '@']).next().unwrap();
    BINS.into_iter()
        .find(|b| *b == repo_name)
        .unwrap_or_else(|| panic!("image {image} is neither of {BINS:?}"))
}

/// Writes every volume the container mounts under `root`, as the kubelet would: the
/// keys of ConfigMaps and Secrets as files, empty directories for the rest.
fn fill_pod_volumes(root: &Path, objs: &[Value], pod: &Value, c: &Value, certs: &Path) {
    for m in list(&c["volumeMounts"]) {
        let at = root.join(str_of(&m["mountPath"]).trim_start_matches('/'));
        assert!(
            m.get("subPath").is_none(),
            "subPath mounts are not simulated here"
        );
        let vol = list(&pod["volumes"])
            .into_iter()
            .find(|v| v["name"] == m["name"]);
        let files: BTreeMap<String, String> = match vol {
            Some(v) if v["configMap"].is_object() => {
                let cm = object(objs, "ConfigMap", str_of(&v["configMap"]["name"]));
                pick(&cm["data"], &v["configMap"]["items"])
            }
            Some(v) if v["secret"].is_object() => {
                let secret = str_of(&v["secret"]["secretName"]);
                let data = match objs
                    .iter()
                    .find(|o| o["kind"] == "Secret" && name(o) == secret)
                {
                    Some(s) => s["stringData"].clone(),
                    None => external_secret(secret, certs),
                };
                pick(&data, &v["secret"]["items"])
            }
            // hostPath, emptyDir, a volumeClaimTemplate: a directory.
            _ => BTreeMap::new(),
        };
        std::fs::create_dir_all(&at).unwrap();
        for (file, content) in files {
            std::fs::write(at.join(file), content).unwrap();
        }
    }
}

/// The files of a ConfigMap or Secret volume: `items` (key → path) or every key.
fn pick(data: &Value, items: &Value) -> BTreeMap<String, String> {
    let data = data.as_object().expect("data");
    if items.is_null() {
        return data
            .iter()
            .map(|(k, v)| (k.clone(), str_of(v).into()))
            .collect();
    }
    list(items)
        .iter()
        .map(|it| {
            let key = str_of(&it["key"]);
            let value = data.get(key).unwrap_or_else(|| panic!("no key {key}"));
            (str_of(&it["path"]).into(), str_of(value).into())
        })
        .collect()
}

fn external_secret(name: &str, certs: &Path) -> Value {
    let (_, keys) = EXTERNAL_SECRETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("Secret {name} is neither rendered nor in EXTERNAL_SECRETS"));
    keys.iter()
        .map(|(key, file)| {
            let content = std::fs::read_to_string(certs.join(file)).unwrap();
            ((*key).to_owned(), Value::String(content))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The container's environment: literal values, Secret and ConfigMap keys from the
/// render, and a stand-in for each downward-API field.
fn container_env(objs: &[Value], c: &Value) -> Vec<(String, String)> {
    list(&c["env"])
        .iter()
        .map(|e| {
            let from = &e["valueFrom"];
            let value = if let Some(v) = e["value"].as_str() {
                v.to_owned()
            } else if let Some(field) = from["fieldRef"]["fieldPath"].as_str() {
                format!("test-{field}")
            } else if from["secretKeyRef"].is_object() {
                let r = &from["secretKeyRef"];
                str_of(&object(objs, "Secret", str_of(&r["name"]))["stringData"][str_of(&r["key"])])
                    .to_owned()
            } else {
                let r = &from["configMapKeyRef"];
                str_of(&object(objs, "ConfigMap", str_of(&r["name"]))["data"][str_of(&r["key"])])
                    .to_owned()
            };
            (str_of(&e["name"]).to_owned(), value)
        })
        .collect()
}

/// Puts `bin` (a link to the tested build when the file system allows) and the shared
/// libraries it loads into `root`.
fn install_binary(root: &Path, bin: &str) {
    let src = logferry_e2e::binary(bin);
    let dst = root.join("usr/bin").join(bin);
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    link_or_copy(&src, &dst);
    copy_shared_libraries(root, &src);
}

/// Copies the shared libraries `exe` loads (and the loader) into `root`.
pub(super) fn copy_shared_libraries(root: &Path, exe: &Path) {
    let ldd = output(Command::new("ldd").arg(exe));
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let at = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::copy(lib, &at).unwrap_or_else(|e| panic!("copy {lib}: {e}"));
    }
}

/// `chroot`, or `unshare -r chroot` when not root; `None` (after a loud message, a
/// failure under CI) when neither can run.
pub(super) fn chroot_command(test: &str, chroot: PathBuf) -> Option<Vec<OsString>> {
    // SAFETY: geteuid only reads the process's effective user id.
    if unsafe { libc::geteuid() } == 0 {
        return Some(vec![chroot.into()]);
    }
    let cmd: Vec<OsString> = vec!["unshare".into(), "-r".into(), chroot.into()];
    let works = Command::new(&cmd[0])
        .args(&cmd[1..])
        .args(["/", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some(cmd);
    }
    let msg = format!("{test} SKIPPED: needs root, or `unshare -r` (user namespaces) for chroot");
    assert!(!ci(), "{msg}");
    shout(&msg);
    None
}
