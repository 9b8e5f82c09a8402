//! The rpm packages: `rpmbuild -bb` over the debug binaries, their file lists and
//! scriptlets, an install into a scratch root, and the packaged configs through
//! `validate` in that root.

use std::path::PathBuf;
use std::process::Command;

use crate::k8s_configs::{chroot_command, copy_shared_libraries};
use crate::{output, repo, run_ok, scratch, show, tools_or_skip, BINS};

#[test]
fn rpm_packages_query_and_install_into_a_scratch_root() {
    let test = "rpm_packages_query_and_install_into_a_scratch_root";
    let Some([rpmbuild, rpm, chroot]) = tools_or_skip(test, ["rpmbuild", "rpm", "chroot"]) else {
        return;
    };
    let scratch = scratch();
    let top = scratch.path().join("rpmbuild");
    let bin_dir = logferry_e2e::binary("logferry-agent")
        .parent()
        .unwrap()
        .to_path_buf();
    assert_eq!(
        bin_dir,
        logferry_e2e::binary("logferry-aggregator")
            .parent()
            .unwrap()
    );
    run_ok(
        Command::new(&rpmbuild)
            .arg("-bb")
            .arg("--quiet")
            .arg(repo().join("packaging/rpm/logferry.spec"))
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .arg("--define")
            .arg(format!("srcdir {}", repo().display()))
            .arg("--define")
            .arg(format!("bindir_src {}", bin_dir.display()))
            // Debug binaries, checked and thrown away: a fast payload.
            .args(["--define", "_binary_payload w3.zstdio"]),
    );
    let arch = run_ok(Command::new(&rpm).args(["--eval", "%{_arch}"]));
    let rpms: Vec<PathBuf> = BINS
        .iter()
        .map(|b| top.join(format!("RPMS/{0}/{b}-0.1.0-1.{0}.rpm", arch.trim())))
        .collect();

    for (bin, pkg) in BINS.iter().zip(&rpms) {
        let short = bin.trim_start_matches("logferry-");
        let files = run_ok(Command::new(&rpm).arg("-qpl").arg(pkg));
        let expected = [
            "/etc/logferry".to_owned(),
            format!("/etc/logferry/{short}.toml"),
            format!("/usr/bin/{bin}"),
            format!("/usr/lib/systemd/system/{bin}.service"),
            format!("/usr/share/doc/{bin}"),
            format!("/usr/share/doc/{bin}/README.md"),
            "/var/lib/logferry".to_owned(),
            format!("/var/lib/logferry/{short}"),
        ];
        assert_eq!(
            files.lines().collect::<Vec<_>>(),
            expected,
            "{bin}: rpm -qpl"
        );
        let flags = run_ok(
            Command::new(&rpm)
                .args([
                    "-qp",
                    "--qf",
                    "[%{FILEFLAGS:fflags} %{FILEUSERNAME} %{FILENAMES}\n]",
                ])
                .arg(pkg),
        );
        assert!(
            flags.contains(&format!("cn root /etc/logferry/{short}.toml")),
            "{flags}"
        );
        assert!(
            flags.contains(&format!(" {bin} /var/lib/logferry/{short}\n")),
            "{flags}"
        );
        let scripts = run_ok(Command::new(&rpm).args(["-qp", "--scripts"]).arg(pkg));
        for tag in ["PREIN", "POSTIN", "PREUN", "POSTUN"] {
            let script = run_ok(
                Command::new(&rpm)
                    .args(["-qp", "--qf"])
                    .arg(format!("%{{{tag}}}"))
                    .arg(pkg),
            );
            assert_ne!(script, "(none)", "{bin}: no {tag} scriptlet:\n{scripts}");
            let file = scratch.path().join(format!("{bin}.{tag}"));
            std::fs::write(&file, &script).unwrap();
            let out = output(Command::new("sh").arg("-n").arg(&file));
            assert!(
                out.status.success(),
                "{bin} {tag}: sh -n:\n{}\n{script}",
                show(&out)
            );
        }
    }

    let root = scratch.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    run_ok(
        Command::new(&rpm)
            .args([
                "-i",
                "--nodeps",
                "--noscripts",
                "--dbpath",
                "/var/lib/rpm",
                "--root",
            ])
            .arg(&root)
            .args(&rpms),
    );
    let installed = run_ok(
        Command::new(&rpm)
            .args([
                "-qa",
                "--qf",
                "%{NAME}\n",
                "--dbpath",
                "/var/lib/rpm",
                "--root",
            ])
            .arg(&root),
    );
    for bin in BINS {
        assert!(
            installed.lines().any(|l| l == bin),
            "{bin} not in the scratch rpmdb"
        );
        let version = run_ok(Command::new(root.join("usr/bin").join(bin)).arg("--version"));
        assert!(version.starts_with(bin), "{version}");
    }

    // The packaged configs pass `validate` where the packages put them, in a chroot of
    // the scratch root. The aggregator's config names the development certificate and the
    // token its %post makes (skipped by --noscripts): made here the same way first.
    let Some(chroot) = chroot_command(test, chroot) else {
        return;
    };
    let in_root = |args: &[&str]| {
        let out = output(
            Command::new(&chroot[0])
                .args(&chroot[1..])
                .arg(&root)
                .args(args)
                .env_clear(),
        );
        assert!(
            out.status.success(),
            "{args:?} in the rpm root:\n{}",
            show(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for bin in BINS {
        copy_shared_libraries(&root, &root.join("usr/bin").join(bin));
    }
    in_root(&[
        "/usr/bin/logferry-aggregator",
        "certs",
        "--out",
        "/etc/logferry/tls",
        "--san",
        "localhost",
    ]);
    std::fs::write(root.join("etc/logferry/agent-token"), "0123456789abcdef").unwrap();
    for bin in BINS {
        let short = bin.trim_start_matches("logferry-");
        let config = format!("/etc/logferry/{short}.toml");
        let valid = in_root(&[&format!("/usr/bin/{bin}"), "validate", "--config", &config]);
        assert!(valid.contains("config is valid"), "{bin} validate: {valid}");
    }
}
