use super::*;

fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
    let cfg: AgentConfig = config::from_str(text, "t.toml", &[], ENV_PREFIX)?;
    cfg.validate()?;
    Ok(cfg)
}

const MINIMAL: &str = "data_dir = \"/d\"\n[[inputs]]\ninclude = [\"/var/log/*.log\"]\n[output]\nurl = \"https://agg:7400\"\ntoken = \"t\"\n";

#[test]
fn minimal_config_gets_defaults() {
    let cfg = parse(MINIMAL).unwrap();
    assert_eq!(cfg.output.compression, Codec::Zstd);
    assert_eq!(cfg.output.batch_max_bytes, 2 << 20);
    assert_eq!(cfg.output.batch_timeout, Duration::from_millis(200));
    assert_eq!(cfg.spool.when_full, WhenFull::Block);
    assert_eq!(cfg.inputs[0].read_from, ReadFrom::Beginning);
    assert_eq!(cfg.admin.listen.port(), 7402);
    assert_eq!(cfg.compression_level(), 1);
}

#[test]
fn durations_and_enums_parse() {
    let text = MINIMAL.to_owned()
        + "compression = \"gzip\"\nbatch_timeout = \"1s 500ms\"\n[spool]\nwhen_full = \"drop_oldest\"\n";
    let cfg = parse(&text).unwrap();
    assert_eq!(cfg.output.compression, Codec::Gzip);
    assert_eq!(cfg.output.batch_timeout, Duration::from_millis(1500));
    assert_eq!(cfg.spool.when_full, WhenFull::DropOldest);
}

#[test]
fn errors_name_the_key() {
    let cases = [
        (MINIMAL.replace("https://agg:7400", "ftp://x"), "output.url"),
        (
            MINIMAL.to_owned() + "compression = \"lz4\"\n",
            "output.compression",
        ),
        (
            MINIMAL.to_owned() + "batch_timeout = \"soon\"\n",
            "output.batch_timeout",
        ),
        (
            MINIMAL.replace("/var/log/*.log", "/var/log/[*.log"),
            "inputs[0].include[0]",
        ),
        (MINIMAL.to_owned() + "bogus = 1\n", "output"),
        (
            MINIMAL.to_owned() + "[spool]\nwhen_full = \"panic\"\n",
            "spool.when_full",
        ),
        (
            MINIMAL.to_owned() + "[output.tls]\nca = \"/nonexistent\"\n",
            "output.tls.ca",
        ),
    ];
    for (text, key) in cases {
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.starts_with(key), "expected `{key}` in: {err}");
    }
}

#[test]
fn a_spool_smaller_than_a_batch_is_refused_with_the_batch_size() {
    let small = MINIMAL.to_owned() + "[spool]\nmax_bytes = 1048576\n";
    let err = parse(&small).unwrap_err().to_string();
    assert!(
        err.starts_with("spool.max_bytes") && err.contains("2097152"),
        "{err}"
    );
    let both = MINIMAL.to_owned() + "batch_max_bytes = 262144\n[spool]\nmax_bytes = 1048576\n";
    let cfg = parse(&both).unwrap();
    assert_eq!(cfg.output.batch_max_bytes, 256 << 10);
    assert_eq!(cfg.spool.max_bytes, 1 << 20);
}

#[test]
fn input_format_and_multiline() {
    use crate::container::Format;
    use crate::multiline::Preset;
    let cfg = parse(MINIMAL).unwrap();
    assert_eq!(cfg.inputs[0].format, Format::Auto);
    assert!(cfg.inputs[0].multiline.is_none());
    assert_eq!(cfg.inputs[0].compression, InputCompression::None);
    assert_eq!(cfg.tail.gzip_incomplete_timeout, Duration::from_secs(60));
    let with = |extra: &str| {
        MINIMAL.replace(
            "include = [\"/var/log/*.log\"]\n",
            &format!("include = [\"/var/log/*.log\"]\n{extra}"),
        )
    };
    let cfg = parse(&with(
        "format = \"cri\"\n[inputs.multiline]\npreset = \"java\"\ntimeout = \"2s\"\n",
    ))
    .unwrap();
    assert_eq!(cfg.inputs[0].format, Format::Cri);
    for (text, want) in [
        ("none", InputCompression::None),
        ("gzip", InputCompression::Gzip),
        ("auto", InputCompression::Auto),
    ] {
        let cfg = parse(&with(&format!("compression = \"{text}\"\n"))).unwrap();
        assert_eq!(cfg.inputs[0].compression, want);
    }
    let m = cfg.inputs[0].multiline.as_ref().unwrap();
    assert_eq!(m.preset, Some(Preset::Java));
    assert_eq!((m.max_lines, m.timeout), (500, Duration::from_secs(2)));
    for (extra, key) in [
        ("format = \"json\"\n", "inputs[0].format"),
        (
            "[inputs.multiline]\nstart_pattern = \"(oops\"\n",
            "inputs[0].multiline.start_pattern",
        ),
        (
            "[inputs.multiline]\nmax_lines = 10\n",
            "inputs[0].multiline",
        ),
        (
            "[inputs.multiline]\npreset = \"java\"\nmaxlines = 3\n",
            "inputs[0].multiline",
        ),
        (
            "[inputs.multiline]\npreset = \"go\"\ntimeout = \"0s\"\n",
            "inputs[0].multiline.timeout",
        ),
        ("compression = \"zstd\"\n", "inputs[0].compression"),
    ] {
        let err = parse(&with(extra)).unwrap_err().to_string();
        assert!(err.starts_with(key), "expected `{key}` in: {err}");
    }
}
