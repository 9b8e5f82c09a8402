use super::*;

const SAS: &str =
    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0";

fn parse(text: &str) -> Result<EventHubsConfig, String> {
    toml::from_str::<EventHubsConfig>(text).map_err(|e| e.to_string())
}

fn sink(text: &str) -> anyhow::Result<EventHubsSink> {
    let config = parse(text).map_err(anyhow::Error::msg)?;
    EventHubsSink::new("hub", &config, Adjustments::default())
}

#[test]
fn accepts_sas_and_entra_settings() {
    let config = parse(&format!(
        r#"
        connection_string = "{SAS}"
        event_hub = "logs"
        endpoint = "amqp://127.0.0.1:5672"
        partition_key = "{{k8s.namespace}}"
        properties = {{ level = "{{level}}" }}
        timeout = "5s"
        [queue]
        max_bytes = 1024
        [retry]
        initial_backoff = "1s"
        "#
    ))
    .unwrap();
    assert_eq!(config.timeout, Duration::from_secs(5));
    assert_eq!(config.queue.max_bytes, 1024);
    assert_eq!(config.retry.initial_backoff, Duration::from_secs(1));
    assert!(matches!(config.auth().unwrap(), Auth::ConnectionString(_)));

    let config = parse(
        r#"
        namespace = "ns.servicebus.windows.net"
        credential = "managed_identity"
        managed_identity_client_id = "00000000-0000-0000-0000-000000000001"
        event_hub = "logs"
        "#,
    )
    .unwrap();
    assert_eq!(config.timeout, Duration::from_secs(30));
    assert_eq!(
        config.auth().unwrap(),
        Auth::EntraId {
            namespace: "ns.servicebus.windows.net".into(),
            credential: CredentialKind::ManagedIdentity,
            client_id: Some("00000000-0000-0000-0000-000000000001".into()),
        }
    );
}

#[test]
fn reads_the_connection_string_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cs");
    std::fs::write(&path, format!("{SAS}\n")).unwrap();
    let config = parse(&format!(
        "connection_string_file = {:?}\nevent_hub = \"logs\"",
        path.display().to_string()
    ))
    .unwrap();
    assert_eq!(config.auth().unwrap(), Auth::ConnectionString(SAS.into()));
    let missing =
        parse("connection_string_file = \"/nonexistent/cs\"\nevent_hub = \"logs\"").unwrap();
    assert!(missing.auth().is_err());
}

#[test]
fn refuses_contradictory_or_incomplete_settings() {
    let cases = [
        // no credentials
        "event_hub = \"logs\"".to_owned(),
        // two connection string sources
        format!("connection_string = \"{SAS}\"\nconnection_string_env = \"X\"\nevent_hub = \"logs\""),
        // SAS and Entra ID
        format!("connection_string = \"{SAS}\"\nnamespace = \"ns.servicebus.windows.net\"\nevent_hub = \"logs\""),
        // namespace without credential
        "namespace = \"ns.servicebus.windows.net\"\nevent_hub = \"logs\"".to_owned(),
        // credential without namespace
        "credential = \"workload_identity\"\nevent_hub = \"logs\"".to_owned(),
        // client id without managed identity
        "namespace = \"ns.servicebus.windows.net\"\ncredential = \"developer_tools\"\nmanaged_identity_client_id = \"x\"\nevent_hub = \"logs\"".to_owned(),
        // key and partition
        format!("connection_string = \"{SAS}\"\nevent_hub = \"logs\"\npartition_key = \"{{host}}\"\npartition_id = \"0\""),
        // EntityPath names another hub
        format!("connection_string = \"{SAS};EntityPath=other\"\nevent_hub = \"logs\""),
        // not a connection string
        "connection_string = \"hello\"\nevent_hub = \"logs\"".to_owned(),
        // not an AMQP endpoint
        format!("connection_string = \"{SAS}\"\nevent_hub = \"logs\"\nendpoint = \"http://x\""),
    ];
    for case in cases {
        assert!(sink(&case).is_err(), "accepted:\n{case}");
    }
    for bad in [
        "event_hub = \"logs\"\ncredential = \"default\"",
        "event_hub = \"logs\"\nunknown = 1",
        "event_hub = \"logs\"\npartition_key = \"{host\"",
    ] {
        assert!(parse(bad).is_err(), "parsed:\n{bad}");
    }
}

#[test]
fn groups_waiting_events_by_key_in_order() {
    let s = sink(&format!(
        "connection_string = \"{SAS}\"\nevent_hub = \"logs\"\npartition_key = \"{{host}}\"\nproperties = {{ lvl = \"{{level:-none}}\" }}"
    ))
    .unwrap();
    let mut batch: Vec<Pending> = [
        r#"{"host":"a","level":"info"}"#,
        r#"{"host":"b"}"#,
        r#"{"host":"a","level":"error"}"#,
        r#"not json"#,
        r#"{"host":"b"}"#,
    ]
    .iter()
    .map(|l| Pending::new(l.as_bytes().to_vec()))
    .collect();
    batch[4].outcome = Outcome::Delivered;
    let groups = s.group(&batch);
    let shape: Vec<(Option<String>, Vec<usize>)> = groups
        .iter()
        .map(|g| (g.key.clone(), g.events.iter().map(|e| e.0).collect()))
        .collect();
    assert_eq!(
        shape,
        vec![
            (Some("a".into()), vec![0, 2]),
            (Some("b".into()), vec![1]),
            (Some("unknown".into()), vec![3]),
        ]
    );
    assert_eq!(groups[0].events[1].1, vec![("lvl".into(), "error".into())]);
    assert_eq!(groups[1].events[0].1, vec![("lvl".into(), "none".into())]);
}

#[test]
fn classifies_service_errors() {
    let described = |condition| {
        AmqpError::from(AmqpErrorKind::AmqpDescribedError(
            azure_core_amqp::AmqpDescribedError::new(condition, None, Default::default()),
        ))
    };
    let hub = |e: AmqpError| azure_messaging_eventhubs::EventHubsError::from(e);
    assert_eq!(
        classify(&hub(described(AmqpErrorCondition::ServerBusyError))),
        FailureKind::Throttled
    );
    assert_eq!(
        classify(&hub(described(AmqpErrorCondition::UnauthorizedAccess))),
        FailureKind::Refused
    );
    assert_eq!(
        classify(&hub(described(AmqpErrorCondition::InternalError))),
        FailureKind::Unavailable
    );
    assert_eq!(
        classify(&hub(AmqpError::with_message("connection refused"))),
        FailureKind::Unavailable
    );
    // Wrapped the way the client wraps link errors.
    let wrapped = AmqpError::from(azure_core::Error::with_error(
        azure_core::error::ErrorKind::Other,
        described(AmqpErrorCondition::ServerBusyError),
        "Could not ensure sender",
    ));
    assert_eq!(classify(&hub(wrapped)), FailureKind::Throttled);
}

/// Both README examples are valid `[sinks.hub]` tables of the aggregator's config.
#[test]
fn readme_examples_are_valid_configs() {
    let doc = include_str!("../../../../README.md");
    let mut found = 0;
    for (start, _) in doc.match_indices("[sinks.hub]\ntype = \"eventhubs\"") {
        let end = start + doc[start..].find("```").unwrap();
        let table: toml::Table = toml::from_str(&doc[start..end]).unwrap();
        let sink = table["sinks"]["hub"].clone();
        let config: crate::config::SinkConfig = sink.try_into().unwrap();
        let crate::config::SinkConfig::Eventhubs(c) = config else {
            panic!("not an eventhubs sink: {config:?}");
        };
        assert_eq!(c.event_hub, "logs");
        if c.connection_string_env.is_some() {
            // Read at startup: the example names a variable that is not set here.
            assert!(c.check().is_err());
        } else {
            assert!(c.check().is_ok(), "{:?}", c.check());
        }
        found += 1;
    }
    assert_eq!(found, 2, "README's two Event Hubs examples");
}
