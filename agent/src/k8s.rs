//! Kubernetes metadata from the paths where kubelet and the runtime keep container logs:
//!
//! - `.../pods/<namespace>_<pod>_<pod uid>/<container>/<N>.log` (and rotated
//!   `<N>.log.<timestamp>` names): namespace, pod, pod uid, container;
//! - `.../containers/<pod>_<namespace>_<container>-<64 hex container id>.log`: pod,
//!   namespace, container, container id.
//!
//! Only the last path components are looked at, so any prefix works (`/var/log`, a test's
//! temporary directory). A path without exactly that shape, or with names Kubernetes
//! would not allow (empty, too long, characters outside `[A-Za-z0-9-]`, plus `.` in pod
//! names), gives `None`: plain files get no Kubernetes attributes. Pure: no I/O.

use std::path::{Component, Path};

/// What a container log's path says about its pod and container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sMetadata {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's uid (from `pods/` paths only).
    pub pod_uid: Option<String>,
    /// The container's name.
    pub container: String,
    /// The runtime's container id (from `containers/` paths only).
    pub container_id: Option<String>,
}

impl K8sMetadata {
    /// Reads the metadata from a container log path; `None` if the path has neither shape.
    pub fn from_path(path: &Path) -> Option<K8sMetadata> {
        let mut names = path.components().rev().map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        });
        let file = names.next()??;
        let parent = names.next()??;
        let pod_dir = names.next().flatten();
        if let (Some(pod_dir), Some(Some("pods"))) = (pod_dir, names.next()) {
            return from_pods_names(pod_dir, parent, file);
        }
        if parent == "containers" {
            return from_containers_name(file);
        }
        None
    }

    /// The source attributes for the wire (`k8s.namespace`, `k8s.pod`, `k8s.pod_uid` when
    /// known, `k8s.container`).
    pub fn attrs(&self) -> Vec<(&'static str, String)> {
        let mut attrs = vec![
            ("k8s.namespace", self.namespace.clone()),
            ("k8s.pod", self.pod.clone()),
        ];
        if let Some(uid) = &self.pod_uid {
            attrs.push(("k8s.pod_uid", uid.clone()));
        }
        attrs.push(("k8s.container", self.container.clone()));
        attrs
    }
}

/// `<namespace>_<pod>_<uid>`, `<container>`, `<N>.log`.
fn from_pods_names(pod_dir: &str, container: &str, file: &str) -> Option<K8sMetadata> {
    let mut parts = pod_dir.split('_');
    let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || !is_log_file_name(file)
        || !is_label(container, 63)
        || !is_label(namespace, 63)
        || !is_pod_name(pod)
        || !is_label(uid, 64)
    {
        return None;
    }
    Some(K8sMetadata {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        pod_uid: Some(uid.to_owned()),
        container: container.to_owned(),
        container_id: None,
    })
}

/// `<pod>_<namespace>_<container>-<id>.log`.
fn from_containers_name(file: &str) -> Option<K8sMetadata> {
    let stem = file.strip_suffix(".log")?;
    let mut parts = stem.split('_');
    let (pod, namespace, rest) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (container, id) = rest.rsplit_once('-')?;
    let hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    if !is_pod_name(pod)
        || !is_label(namespace, 63)
        || !is_label(container, 63)
        || id.len() != 64
        || !id.bytes().all(hex)
    {
        return None;
    }
    Some(K8sMetadata {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        pod_uid: None,
        container: container.to_owned(),
        container_id: Some(id.to_owned()),
    })
}

/// `0.log`, `12.log`, `0.log.20261122-100000`.
fn is_log_file_name(file: &str) -> bool {
    let digits = file.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && {
        let rest = &file[digits..];
        rest == ".log" || rest.starts_with(".log.")
    }
}

fn is_label(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

fn is_pod_name(s: &str) -> bool {
    (1..=253).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    const ID: &str = "4f5c2a1b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a291807f6e5d4c3b2a19080";

    fn meta(p: &str) -> Option<K8sMetadata> {
        K8sMetadata::from_path(Path::new(p))
    }

    #[test]
    fn pods_paths() {
        let m =
            meta("/var/log/pods/shop_api-7d9f8.v2_0b6f4c1e-8a2b-4c3d-9e8f-123456789abc/api/0.log")
                .unwrap();
        assert_eq!(
            m,
            K8sMetadata {
                namespace: "shop".into(),
                pod: "api-7d9f8.v2".into(),
                pod_uid: Some("0b6f4c1e-8a2b-4c3d-9e8f-123456789abc".into()),
                container: "api".into(),
                container_id: None,
            }
        );
        assert_eq!(
            m.attrs(),
            vec![
                ("k8s.namespace", "shop".to_owned()),
                ("k8s.pod", "api-7d9f8.v2".to_owned()),
                (
                    "k8s.pod_uid",
                    "0b6f4c1e-8a2b-4c3d-9e8f-123456789abc".to_owned()
                ),
                ("k8s.container", "api".to_owned()),
            ]
        );
        // Rotated names, any prefix, a static pod's hash uid.
        let m = meta("/tmp/x/pods/kube-system_etcd-node-1_8f1c3a5e9b7d2f4a6c8e0b1d3f5a7c9e/etcd/12.log.20261122-100000")
            .unwrap();
        assert_eq!(
            (m.namespace.as_str(), m.container.as_str()),
            ("kube-system", "etcd")
        );
        assert!(meta("pods/a_b_c/d/0.log").is_some(), "relative paths too");
        let m = meta("/var/log/pods/a_b_c/containers/0.log").unwrap();
        assert_eq!(m.container, "containers");
    }

    #[test]
    fn containers_paths() {
        let m = meta(&format!(
            "/var/log/containers/api-7d9f8_shop_side-car-{ID}.log"
        ))
        .unwrap();
        assert_eq!(
            m,
            K8sMetadata {
                namespace: "shop".into(),
                pod: "api-7d9f8".into(),
                pod_uid: None,
                container: "side-car".into(),
                container_id: Some(ID.into()),
            }
        );
        assert_eq!(
            m.attrs(),
            vec![
                ("k8s.namespace", "shop".to_owned()),
                ("k8s.pod", "api-7d9f8".to_owned()),
                ("k8s.container", "side-car".to_owned()),
            ]
        );
    }

    #[test]
    fn other_shapes_are_refused() {
        for p in [
            "/var/log/app.log".to_owned(),
            "/".to_owned(),
            "".to_owned(),
            "0.log".to_owned(),
            "/var/log/pods/shop_api_uid/api/app.log".to_owned(),
            "/var/log/pods/shop_api_uid/api/0.txt".to_owned(),
            "/var/log/pods/shop_api/api/0.log".to_owned(),
            "/var/log/pods/shop_api_uid_x/api/0.log".to_owned(),
            "/var/log/pods/_api_uid/api/0.log".to_owned(),
            "/var/log/pods/shop_api_uid/a_b/0.log".to_owned(),
            "/var/log/pods/shop_api_uid/../0.log".to_owned(),
            "/var/log/other/shop_api_uid/api/0.log".to_owned(),
            "/var/log/pods/shop_api_uid/api/x/0.log".to_owned(),
            "/var/log/pods/shop_a pi_uid/api/0.log".to_owned(),
            format!("/var/log/containers/api_shop_c-{ID}.txt"),
            format!("/var/log/containers/api_shop_c_{ID}.log"),
            format!("/var/log/containers/api_shop_{ID}.log"),
            format!("/var/log/containers/api_shop_c-{}.log", &ID[1..]),
            format!("/var/log/containers/api_shop_c-{}.log", ID.to_uppercase()),
            format!("/var/log/containers/api_sh.op_c-{ID}.log"),
            format!("/var/log/containers/x/api_shop_c-{ID}.log"),
            "/var/log/containers/api_shop_c-1.log".to_owned(),
        ] {
            assert_eq!(meta(&p), None, "{p}");
        }
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
    }

    proptest! {
        #[test]
        fn never_panics(p in any::<String>()) {
            let _ = meta(&p);
        }

        #[test]
        fn never_panics_on_path_like_strings(p in "(/|pods|containers|_|-|\\.log|[a-z0-9.]{1,3}|\\.\\.){0,12}") {
            let _ = meta(&p);
        }

        #[test]
        fn built_paths_read_back(
            ns in label(), pod in "[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?", uid in "[a-f0-9-]{8,36}",
            container in label(), n in 0u32..100, prefix in "(/[a-z]{1,8}){0,3}",
        ) {
            let p = PathBuf::from(format!("{prefix}/pods/{ns}_{pod}_{uid}/{container}/{n}.log"));
            let m = K8sMetadata::from_path(&p).unwrap();
            prop_assert_eq!((&m.namespace, &m.pod, m.pod_uid.as_ref(), &m.container), (&ns, &pod, Some(&uid), &container));
            let p = PathBuf::from(format!("{prefix}/containers/{pod}_{ns}_{container}-{ID}.log"));
            let m = K8sMetadata::from_path(&p).unwrap();
            prop_assert_eq!((&m.namespace, &m.pod, &m.container), (&ns, &pod, &container));
        }
    }
}
