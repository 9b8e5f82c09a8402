//! An in-process AMQP 1.0 peer that speaks enough of Azure Event Hubs for the Event Hubs
//! sink's tests: the real client (`azure_messaging_eventhubs`) connects to it over plain
//! TCP on 127.0.0.1 through its custom-endpoint setting.
//!
//! What it does:
//!
//! - accepts connections with SASL ANONYMOUS (what the client uses, with a SAS key or with
//!   Entra ID alike: the credential travels as a CBS token),
//! - answers CBS `put-token` requests on `$cbs` with status 202, and records the tokens,
//! - answers `$management` READ requests for the Event Hub (`com.microsoft:eventhub`:
//!   name, creation time, [`PeerOptions::partitions`] partition ids) and for a partition
//!   (`com.microsoft:partition`: sequence numbers counting the events recorded for it), with
//!   the value types the client expects, on the reply link the client attaches (closed
//!   again when the client closes it),
//! - accepts sender links to any address; links to the Event Hub (`amqps://host/hub`) and to
//!   its partitions (`amqps://host/hub/Partitions/N`) announce [`PeerOptions::max_message_size`]
//!   as their max-message-size,
//! - accepts transfers, unpacks batched messages (message format `0x80013700`, one AMQP
//!   `data` section per encoded event message) into individual [`RecordedEvent`]s with body,
//!   partition key (message annotation `x-opt-partition-key`), partition id (from the link
//!   address) and application properties, and records each accepted transfer as a
//!   [`RecordedBatch`] with its encoded size,
//! - rejects the next N transfers with `com.microsoft:server-busy` on request
//!   ([`Peer::fail_next`]), recording nothing for them,
//! - stops (every open connection is cut and the port refuses connections) and restarts on
//!   the same port ([`Peer::stop`], [`Peer::restart`]).
//!
//! What it does not emulate: TLS, SAS signature or token validation (every token is
//! accepted), partition assignment by key hashing (events sent
//! without a partition id are recorded with `partition_id: None`), service quotas and
//! throttling other than the injected server-busy rejections, message size checks (the size
//! is announced and recorded, never enforced), receivers (nothing can be read back over
//! AMQP), idle timeouts, link redirects and geo-replication.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SaslAnonymousMechanism,
    SessionAcceptor,
};
use fe2o3_amqp::link::delivery::Delivery;
use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::types::definitions::{self, AmqpError, ErrorCondition};
use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::message::__private::{Deserializable, Serializable};
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageId, Properties, TargetArchetype,
};
use fe2o3_amqp::types::primitives::{SimpleValue, Symbol, Timestamp, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The message format of an Event Hubs batch: the body's data sections are encoded
/// messages.
pub const BATCH_MESSAGE_FORMAT: u32 = 0x8001_3700;

/// How the peer behaves.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// The max-message-size announced on Event Hub and partition links (Standard tier:
    /// 1 MiB; Basic: 256 KiB).
    pub max_message_size: u64,
    /// How many partitions the `$management` answers list (`"0"`, `"1"`, ...).
    pub partitions: u32,
    /// The address to listen on; port 0 picks a free one.
    pub addr: SocketAddr,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            max_message_size: 1 << 20,
            partitions: 4,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// One event as the peer received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The event body (the concatenated data sections of the event's message).
    pub body: Vec<u8>,
    /// The `x-opt-partition-key` message annotation.
    pub partition_key: Option<String>,
    /// The partition from the link address (`.../Partitions/N`), if the sender named one.
    pub partition_id: Option<String>,
    /// Application properties, each value in its debug form for non-strings.
    pub properties: BTreeMap<String, String>,
    /// The index of the transfer (in [`Peer::batches`]) that carried the event.
    pub batch: usize,
}

/// One accepted transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedBatch {
    /// The link's target address.
    pub address: String,
    /// The message format of the transfer.
    pub message_format: u32,
    /// The encoded size of the message (all its sections), as the size limit counts it.
    pub bytes: u64,
    /// How many events it carried.
    pub events: usize,
}

#[derive(Default)]
struct Record {
    events: Vec<RecordedEvent>,
    batches: Vec<RecordedBatch>,
    tokens: Vec<String>,
    rejected: u64,
    connections: u64,
    open: u64,
    closed_by_client: u64,
}

struct Shared {
    options: PeerOptions,
    record: Mutex<Record>,
    fail_next: AtomicU32,
    /// Clones of the accepted sockets, shut down to cut the connections on `stop`.
    sockets: Mutex<Vec<std::net::TcpStream>>,
}

impl Shared {
    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running (or stopped) peer. Dropping it stops it.
pub struct Peer {
    /// Where it listens (the same after a restart).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl Peer {
    /// Starts listening; must be called inside a Tokio runtime.
    pub async fn start(options: PeerOptions) -> std::io::Result<Peer> {
        let listener = TcpListener::bind(options.addr).await?;
        let addr = listener.local_addr()?;
        let peer = Peer {
            addr,
            shared: Arc::new(Shared {
                options,
                record: Mutex::default(),
                fail_next: AtomicU32::new(0),
                sockets: Mutex::default(),
            }),
            tasks: Arc::default(),
            listener: Mutex::default(),
        };
        peer.serve(listener);
        Ok(peer)
    }

    /// The endpoint to give the client: `amqp://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("amqp://{}", self.addr)
    }

    fn serve(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(std) = stream.into_std() else { continue };
                if let Ok(clone) = std.try_clone() {
                    shared
                        .sockets
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(clone);
                }
                let Ok(stream) = tokio::net::TcpStream::from_std(std) else {
                    continue;
                };
                shared.record().connections += 1;
                let task = tokio::spawn(serve_connection(stream, shared.clone()));
                tasks.lock().unwrap_or_else(|p| p.into_inner()).push(task);
            }
        });
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(accept);
    }

    /// Every event received so far, in arrival order.
    pub fn events(&self) -> Vec<RecordedEvent> {
        self.shared.record().events.clone()
    }

    /// How many events the peer has recorded (cheaper than `events().len()`).
    pub fn event_count(&self) -> usize {
        self.shared.record().events.len()
    }

    /// Every accepted transfer so far, in arrival order.
    pub fn batches(&self) -> Vec<RecordedBatch> {
        self.shared.record().batches.clone()
    }

    /// The CBS tokens put so far.
    pub fn tokens(&self) -> Vec<String> {
        self.shared.record().tokens.clone()
    }

    /// How many transfers were rejected as server-busy.
    pub fn rejected(&self) -> u64 {
        self.shared.record().rejected
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> u64 {
        self.shared.record().connections
    }

    /// How many connections are open now.
    pub fn open_connections(&self) -> u64 {
        self.shared.record().open
    }

    /// How many connections the client closed with an AMQP close (not by dropping TCP).
    pub fn closed_by_client(&self) -> u64 {
        self.shared.record().closed_by_client
    }

    /// Rejects the next `n` transfers to the Event Hub with `com.microsoft:server-busy`.
    pub fn fail_next(&self, n: u32) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }

    /// Stops: the port refuses connections and every open connection is cut (TCP shutdown,
    /// without an AMQP close). Returns once the listening socket is closed.
    pub async fn stop(&self) {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(listener) = listener {
            listener.abort();
            let _ = listener.await;
        }
        self.cut();
    }

    fn cut(&self) {
        if let Some(listener) = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            listener.abort();
        }
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
        for socket in self
            .shared
            .sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Listens again on the same address, keeping what was recorded.
    pub async fn restart(&self) -> std::io::Result<()> {
        self.stop().await;
        let listener = TcpListener::bind(self.addr).await?;
        self.serve(listener);
        Ok(())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.cut();
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let acceptor = ConnectionAcceptor::builder()
        .container_id("logferry-eventhubs-peer")
        .sasl_acceptor(SaslAnonymousMechanism::new())
        .build();
    /// Counts the connection as open while it lives (the task may be aborted).
    struct Open(Arc<Shared>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.record().open -= 1;
        }
    }
    shared.record().open += 1;
    let _open = Open(shared.clone());
    let Ok(mut connection) = acceptor.accept(stream).await else {
        return;
    };
    let sessions = SessionAcceptor::new();
    let mut tasks = Vec::new();
    while let Ok(session) = sessions.accept(&mut connection).await {
        tasks.push(tokio::spawn(serve_session(session, shared.clone())));
    }
    for task in tasks {
        task.abort();
    }
    // The client's close frame (without an error) ends the connection as `RemoteClosed`.
    if let Err(fe2o3_amqp::connection::Error::RemoteClosed) = connection.on_close().await {
        shared.record().closed_by_client += 1;
    }
}

/// Where replies to a request node (`$cbs`, `$management`) go: the latest sender link
/// whose source is that node (the client attaches a new pair of links per request round).
type Replies = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Message<AmqpValue<Value>>>>>>;

async fn serve_session(mut session: ListenerSessionHandle, shared: Arc<Shared>) {
    let event_links = LinkAcceptor::builder()
        .max_message_size(shared.options.max_message_size)
        .build();
    let other_links = LinkAcceptor::new();
    let replies: Replies = Arc::default();
    let mut tasks = Vec::new();
    while let Some(attach) = session.next_incoming_attach().await {
        let target = attach.target.as_deref().and_then(|t| match t {
            TargetArchetype::Target(t) => t.address.clone(),
            #[allow(unreachable_patterns)]
            _ => None,
        });
        let source = attach.source.as_deref().and_then(|s| s.address.clone());
        let node = target.clone().unwrap_or_default();
        let is_request_node = node == "$cbs" || node == "$management";
        let acceptor = if is_request_node {
            &other_links
        } else {
            &event_links
        };
        let link = match acceptor.accept_incoming_attach(attach, &mut session).await {
            Ok(link) => link,
            Err(_) => continue,
        };
        match link {
            LinkEndpoint::Receiver(receiver) if is_request_node => {
                tasks.push(tokio::spawn(serve_requests(
                    receiver,
                    node,
                    replies.clone(),
                    shared.clone(),
                )));
            }
            LinkEndpoint::Receiver(receiver) => {
                tasks.push(tokio::spawn(serve_events(receiver, node, shared.clone())));
            }
            LinkEndpoint::Sender(sender) => {
                let (tx, rx) = mpsc::unbounded_channel();
                replies
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(source.unwrap_or_default(), tx);
                tasks.push(tokio::spawn(send_replies(sender, rx)));
            }
        }
    }
    for task in tasks {
        task.abort();
    }
    let _ = session.end().await;
}

/// Hands `message` to the reply link of `node`, waiting up to 5 s for the client to attach
/// it.
async fn reply(replies: &Replies, node: &str, message: Message<AmqpValue<Value>>) -> bool {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let tx = replies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
            .cloned();
        if let Some(tx) = tx {
            return tx.send(message).is_ok();
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

async fn send_replies(
    mut sender: Sender,
    mut rx: mpsc::UnboundedReceiver<Message<AmqpValue<Value>>>,
) {
    loop {
        tokio::select! {
            message = rx.recv() => {
                let Some(message) = message else { break };
                if sender.send(message).await.is_err() {
                    return;
                }
            }
            // The client closes its reply link when it is done (e.g. when the producer
            // closes): dropping ours answers its detach.
            _ = sender.on_detach() => return,
        }
    }
    let _ = sender.close().await;
}

/// Answers CBS `put-token` (202) and anything else (501, not implemented).
async fn serve_requests(
    mut receiver: Receiver,
    node: String,
    replies: Replies,
    shared: Arc<Shared>,
) {
    loop {
        let delivery: Delivery<Value> = match receiver.recv().await {
            Ok(d) => d,
            Err(_) => break,
        };
        if receiver.accept(&delivery).await.is_err() {
            break;
        }
        let message = delivery.into_message();
        let operation = message
            .application_properties
            .as_ref()
            .and_then(|p| p.0.get("operation"))
            .and_then(|v| match v {
                SimpleValue::String(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let text = |key: &str| {
            message
                .application_properties
                .as_ref()
                .and_then(|p| p.0.get(key))
                .and_then(|v| match v {
                    SimpleValue::String(s) => Some(s.clone()),
                    _ => None,
                })
        };
        let mut body = Value::Null;
        let (status, description) = if node == "$cbs" && operation == "put-token" {
            if let Value::String(token) = &message.body {
                shared.record().tokens.push(token.clone());
            }
            (202, "Accepted")
        } else if node == "$management" && operation == "READ" {
            let name = text("name").unwrap_or_default();
            match text("type").as_deref() {
                Some("com.microsoft:eventhub") => {
                    body = eventhub_properties(&name, shared.options.partitions);
                    (200, "OK")
                }
                Some("com.microsoft:partition") => {
                    let partition = text("partition").unwrap_or_default();
                    body = partition_properties(&name, &partition, &shared);
                    (200, "OK")
                }
                _ => (404, "unknown entity type"),
            }
        } else {
            (501, "not implemented by the test peer")
        };
        let correlation = message
            .properties
            .as_ref()
            .and_then(|p| p.message_id.clone());
        let to = message.properties.as_ref().and_then(|p| p.reply_to.clone());
        let mut props = ApplicationProperties::default();
        props
            .0
            .insert("status-code".to_owned(), SimpleValue::Int(status));
        props.0.insert(
            "status-description".to_owned(),
            SimpleValue::String(description.to_owned()),
        );
        let response = Message::builder()
            .properties(Properties {
                correlation_id: correlation.or(Some(MessageId::Ulong(0))),
                to,
                ..Default::default()
            })
            .application_properties(props)
            .value(body)
            .build();
        if !reply(&replies, &node, response).await {
            break;
        }
    }
}

/// A map with string keys, as `$management` answers.
fn string_map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::String(k.to_owned()), v))
            .collect(),
    )
}

/// The answer to a READ of `com.microsoft:eventhub`, with the value types the client
/// expects (it panics on others).
fn eventhub_properties(name: &str, partitions: u32) -> Value {
    string_map(vec![
        ("name", Value::String(name.to_owned())),
        ("type", Value::String("com.microsoft:eventhub".to_owned())),
        (
            "created_at",
            Value::Timestamp(Timestamp::from_milliseconds(1_795_341_600_000)),
        ),
        ("partition_count", Value::Int(partitions as i32)),
        (
            "partition_ids",
            Value::Array(
                (0..partitions)
                    .map(|p| Value::String(p.to_string()))
                    .collect::<Vec<_>>()
                    .into(),
            ),
        ),
    ])
}

/// The answer to a READ of `com.microsoft:partition`; sequence numbers count the events
/// recorded for that partition id.
fn partition_properties(name: &str, partition: &str, shared: &Shared) -> Value {
    let count = shared
        .record()
        .events
        .iter()
        .filter(|e| e.partition_id.as_deref() == Some(partition))
        .count() as i64;
    string_map(vec![
        ("name", Value::String(name.to_owned())),
        ("type", Value::String("com.microsoft:partition".to_owned())),
        ("partition", Value::String(partition.to_owned())),
        ("begin_sequence_number", Value::Long(0)),
        ("last_enqueued_sequence_number", Value::Long(count - 1)),
        ("last_enqueued_offset", Value::String(count.to_string())),
        (
            "last_enqueued_time_utc",
            Value::Timestamp(Timestamp::from_milliseconds(1_795_341_600_000)),
        ),
        ("is_partition_empty", Value::Bool(count == 0)),
        ("last_enqueued_sequence_number_epoch", Value::Long(0)),
    ])
}

/// Records the events of every transfer, or rejects it as server-busy when asked to.
async fn serve_events(mut receiver: Receiver, address: String, shared: Arc<Shared>) {
    let partition_id = address
        .rsplit_once("/Partitions/")
        .map(|(_, id)| id.to_owned());
    loop {
        let delivery: Delivery<Body<Value>> = match receiver.recv().await {
            Ok(d) => d,
            Err(_) => break,
        };
        let busy = shared
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if busy {
            shared.record().rejected += 1;
            let error = definitions::Error::new(
                ErrorCondition::Custom(Symbol::from("com.microsoft:server-busy")),
                Some("the test peer was asked to be busy".to_owned()),
                None,
            );
            if receiver.reject(&delivery, error).await.is_err() {
                break;
            }
            continue;
        }
        let format = delivery.message_format().unwrap_or(0);
        let (delivery, message) = delivery.into_parts();
        let events = match unpack(&message, format, partition_id.as_deref()) {
            Ok(events) => events,
            Err(reason) => {
                let error = definitions::Error::new(AmqpError::DecodeError, Some(reason), None);
                if receiver.reject(delivery, error).await.is_err() {
                    break;
                }
                continue;
            }
        };
        {
            let mut record = shared.record();
            let batch = record.batches.len();
            record.batches.push(RecordedBatch {
                address: address.clone(),
                message_format: format,
                bytes: encoded_size(&message),
                events: events.len(),
            });
            record
                .events
                .extend(events.into_iter().map(|e| RecordedEvent { batch, ..e }));
        }
        if receiver.accept(delivery).await.is_err() {
            break;
        }
    }
}

/// The events a transfer carries: the data sections of a batch, each an encoded message,
/// or the message itself.
fn unpack(
    message: &Message<Body<Value>>,
    format: u32,
    partition_id: Option<&str>,
) -> Result<Vec<RecordedEvent>, String> {
    if format != BATCH_MESSAGE_FORMAT {
        return Ok(vec![event_of(message, partition_id)]);
    }
    let Body::Data(sections) = &message.body else {
        return Err("a batch whose body is not data sections".to_owned());
    };
    sections
        .iter()
        .map(|data| {
            serde_amqp::from_slice::<Deserializable<Message<Body<Value>>>>(&data.0)
                .map(|inner| event_of(&inner.0, partition_id))
                .map_err(|e| format!("a batched message does not decode: {e}"))
        })
        .collect()
}

fn event_of(message: &Message<Body<Value>>, partition_id: Option<&str>) -> RecordedEvent {
    let body = match &message.body {
        Body::Data(sections) => sections.iter().flat_map(|d| d.0.iter().copied()).collect(),
        Body::Value(v) => format!("{:?}", v.0).into_bytes(),
        _ => Vec::new(),
    };
    let partition_key = message.message_annotations.as_ref().and_then(|a| {
        a.0.iter().find_map(|(k, v)| match (k, v) {
            (OwnedKey::Symbol(s), Value::String(key)) if s.0 == "x-opt-partition-key" => {
                Some(key.clone())
            }
            _ => None,
        })
    });
    let properties = message
        .application_properties
        .as_ref()
        .map(|p| {
            p.0.iter()
                .map(|(k, v)| {
                    let v = match v {
                        SimpleValue::String(s) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default();
    RecordedEvent {
        body,
        partition_key,
        partition_id: partition_id.map(str::to_owned),
        properties,
        batch: 0,
    }
}

/// The encoded size of `message`, as it went over the wire.
fn encoded_size(message: &Message<Body<Value>>) -> u64 {
    serde_amqp::to_vec(&Serializable(message)).map_or(0, |v| v.len() as u64)
}
