//! The container recipe: hadolint, and what hadolint cannot know (non-root targets, a
//! build context that holds the whole workspace). Docker itself does not run in CI.

use std::process::Command;

use crate::{output, repo, show, tools_or_skip, BINS, IMAGE_UID};

#[test]
fn container_recipe_lints_clean_and_covers_the_workspace() {
    let test = "container_recipe_lints_clean_and_covers_the_workspace";
    let Some([hadolint]) = tools_or_skip(test, ["hadolint"]) else {
        return;
    };
    let dockerfile = repo().join("packaging/docker/Dockerfile");
    let out = output(
        Command::new(&hadolint)
            .args(["--no-color", "--failure-threshold", "style"])
            .arg(&dockerfile),
    );
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "hadolint {}:\n{}",
        dockerfile.display(),
        show(&out)
    );

    // What hadolint does not know: both targets run their binary as a non-root user, and
    // the build stage copies (and the dockerignore lets through) every workspace member.
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    for bin in BINS {
        let target = bin.trim_start_matches("logferry-");
        let stage = text
            .split("\nFROM ")
            .find(|s| {
                s.lines()
                    .next()
                    .is_some_and(|l| l.ends_with(&format!(" AS {target}")))
            })
            .unwrap_or_else(|| panic!("no stage `AS {target}`"));
        for line in [
            format!("USER {IMAGE_UID}:{IMAGE_UID}"),
            format!("ENTRYPOINT [\"/usr/bin/{bin}\"]"),
            format!("COPY --from=build /out/{bin} /usr/bin/{bin}"),
        ] {
            assert!(
                stage.lines().any(|l| l == line),
                "stage {target} lacks `{line}`"
            );
        }
    }
    let ignore =
        std::fs::read_to_string(repo().join("packaging/docker/Dockerfile.dockerignore")).unwrap();
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let members = cargo
        .lines()
        .find_map(|l| l.strip_prefix("members = "))
        .expect("workspace members");
    // Every directory the build reads: the workspace members and the crates that
    // `[patch.crates-io]` builds from a path (vendored fixes).
    let mut dirs: Vec<String> = members
        .trim_matches(['[', ']'])
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .collect();
    let patch = cargo
        .split("\n[patch.crates-io]\n")
        .nth(1)
        .map(|rest| rest.split("\n[").next().unwrap_or(rest))
        .unwrap_or("");
    let patched: Vec<String> = patch
        .lines()
        .filter_map(|l| l.split_once("path = \"").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once('"').map(|(path, _)| path.to_string()))
        .collect();
    assert!(
        patch.lines().filter(|l| l.contains(" = {")).count() == patched.len(),
        "every patched crate comes from a path in the workspace: {patch}"
    );
    dirs.extend(patched);
    // A directory is in the build context when it or one of its parents is copied (and
    // let through by the dockerignore): `COPY tests tests` covers `tests/eventhubs-peer`.
    let covered = |dir: &str, listed: &dyn Fn(&str) -> bool| {
        let mut at = Some(dir);
        while let Some(d) = at {
            if listed(d) {
                return true;
            }
            at = d.rsplit_once('/').map(|(parent, _)| parent);
        }
        false
    };
    for dir in &dirs {
        assert!(
            covered(dir, &|d| text.lines().any(|l| l == format!("COPY {d} {d}"))),
            "the Dockerfile's build stage does not copy {dir} (nor a parent of it)"
        );
        assert!(
            covered(dir, &|d| ignore.lines().any(|l| l == format!("!{d}/"))),
            "Dockerfile.dockerignore keeps {dir} out"
        );
    }
}
