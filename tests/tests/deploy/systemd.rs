//! The systemd units: the hardening the packages promise, and an exposure score that
//! stays in the "OK" band of `systemd-analyze security`.

use std::process::Command;

use crate::{output, repo, report, run_ok, shout, show, tools_or_skip, BINS};

/// `systemd-analyze security` fails a unit whose exposure is above this (tenths: 2.0).
/// Both units must stay in the "OK" band, which ends at 4.9; this keeps them well inside.
const SECURITY_THRESHOLD: u32 = 20;

#[test]
fn systemd_units_are_hardened_and_score_ok() {
    let test = "systemd_units_are_hardened_and_score_ok";
    let Some([analyze]) = tools_or_skip(test, ["systemd-analyze"]) else {
        return;
    };
    let readme = std::fs::read_to_string(repo().join("README.md"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let readme_systemd = readme
        .split_once("(`systemd-analyze security --offline=true`, systemd ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(version, _)| version.to_owned())
        .expect("README names the systemd version its exposure scores were measured with");
    let version = run_ok(Command::new(&analyze).arg("--version"));
    let ours = version
        .split_whitespace()
        .nth(1)
        .expect("systemd-analyze --version: systemd NNN");
    for bin in BINS {
        let unit = repo().join("systemd").join(format!("{bin}.service"));
        let text = std::fs::read_to_string(&unit).unwrap();
        let short = bin.trim_start_matches("logferry-");
        let required = [
            format!("User={bin}"),
            format!("ExecStart=/usr/bin/{bin} run"),
            format!("Environment=LOGFERRY_CONFIG=/etc/logferry/{short}.toml"),
            format!("ReadWritePaths=/var/lib/logferry/{short}"),
            format!("StateDirectory=logferry/{short}"),
            "ExecReload=/bin/kill -HUP $MAINPID".into(),
            "Restart=on-failure".into(),
            "ProtectSystem=strict".into(),
            "ProtectHome=yes".into(),
            "NoNewPrivileges=yes".into(),
            "PrivateTmp=yes".into(),
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX".into(),
            "SystemCallFilter=@system-service".into(),
        ];
        for line in &required {
            assert!(
                text.lines().any(|l| l == line),
                "{bin}.service lacks `{line}`"
            );
        }
        let caps = text
            .lines()
            .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
            .unwrap_or_else(|| panic!("{bin}.service lacks CapabilityBoundingSet="));
        let allowed = if bin == "logferry-agent" {
            "CAP_DAC_READ_SEARCH"
        } else {
            ""
        };
        assert_eq!(caps, allowed, "{bin}.service: capabilities");

        let out = output(
            Command::new(&analyze)
                .args(["security", "--offline=true"])
                .arg(format!("--threshold={SECURITY_THRESHOLD}"))
                .arg(&unit),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let score = stdout
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or("no overall exposure level printed");
        report(&format!(
            "systemd-analyze security: {}",
            score.trim_start_matches("→ ")
        ));
        assert!(
            out.status.success() && score.contains(" OK "),
            "{bin}.service must stay at or below {SECURITY_THRESHOLD} (OK band):\n{}",
            show(&out)
        );

        // README reports the score as measured ("**logferry-agent 1.5 OK**"); another
        // systemd weighs the settings differently, so only the same version is compared.
        let measured = score
            .split_once(&format!("{bin}.service: "))
            .and_then(|(_, rest)| {
                let mut words = rest.split_whitespace();
                Some(format!("**{bin} {} {}**", words.next()?, words.next()?))
            })
            .unwrap_or_else(|| panic!("cannot read the score of {bin} from `{score}`"));
        if readme_systemd == ours {
            assert!(
                readme.contains(&measured),
                "README must report {measured} (systemd {ours}, measured now)"
            );
        } else {
            shout(&format!(
                "README's exposure scores are from systemd {readme_systemd}, this is \
                 systemd {ours} (measured {measured}): not compared"
            ));
        }
    }
}
