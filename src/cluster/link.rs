//! The node's two Redis connections, each on its own thread: one PUBLISHes what the loop
//! hands it, one SUBSCRIBEs to the cluster's channel and hands what arrives to the loop.
//! A third thread and connection claims tokens (`claims.rs`), a fourth reads the history of
//! topics (`kept.rs`). The history's publications themselves go through the publisher, as
//! scripts among its PUBLISHes, so that Redis orders them among the node's other messages.
//!
//! Both reconnect on their own with backoff (from 100 ms, doubling, at most 5 s) and report
//! their state; the loop wakes through a `mio::Waker`. The publisher's queue is bounded
//! (`[cluster] max_queue`): when Redis is slow or away, new messages are dropped and counted
//! rather than held without bound; what arrives waits in a queue of the same bound.
//! Publishing from one connection keeps the order in which the loop handed the messages over,
//! and Redis delivers a channel's messages to each subscriber in that order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::claims::{self, ClaimAnswer, ClaimKeys, ClaimRequest};
use super::kept::{self, HistoryAnswer, HistoryKeys, HistoryRequest};

/// How often a blocked thread looks at the stop flag.
pub(super) const POLL: Duration = Duration::from_millis(250);
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A connect or command that takes longer counts as Redis being away.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Most messages, and bytes (past which no more are added), of one pipelined write to Redis.
const MAX_PIPELINE: usize = 256;
const MAX_PIPELINE_BYTES: usize = 1 << 20;

/// What the link needs to start.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    pub redis_url: String,
    /// PEM certificates of the authority of a `rediss://` Redis (`[cluster] redis_ca`);
    /// `None`: the system's.
    pub redis_ca: Option<Vec<u8>>,
    pub node_id: String,
    /// What the channels' names start with (`[cluster] prefix`).
    pub prefix: String,
    pub max_queue: usize,
}

impl LinkSettings {
    /// The channel every node publishes to and subscribes to.
    pub fn all_channel(&self) -> String {
        format!("{}:all", self.prefix)
    }

    /// The channel of node `node` alone (answers to its questions).
    pub fn node_channel(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }
}

/// What the publisher thread sends, in order, on its one connection.
enum Outbound {
    /// PUBLISH the bytes to the channel.
    Message(String, Vec<u8>),
    /// A publication to a topic with history (`kept.rs`): the script positions it and
    /// publishes it; on the same connection as the node's other messages, so Redis orders
    /// it among them as the loop sent them. Answered as the history thread's answers are.
    Kept(HistoryRequest),
}

impl Outbound {
    fn len(&self) -> usize {
        match self {
            Outbound::Message(_, message) => message.len(),
            Outbound::Kept(HistoryRequest::Publish { frame, .. }) => frame.len(),
            Outbound::Kept(_) => 0,
        }
    }
}

/// What the link hands the loop.
#[derive(Debug)]
pub enum Inbound {
    /// A message another node (or this one) published.
    Message(Vec<u8>),
    /// A connection is up (again): the publisher's reaches the others, the subscriber's
    /// hears them.
    Connected { publisher: bool },
    /// A connection went away, with Redis's or the system's words.
    Lost { publisher: bool, reason: String },
    /// The claims thread's answer to a claim.
    Claimed(ClaimAnswer),
    /// The history thread's answer to a request.
    History(HistoryAnswer),
}

/// Whether the node hears and reaches the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisState {
    Connecting,
    Up,
    Down,
}

impl RedisState {
    pub fn name(self) -> &'static str {
        match self {
            RedisState::Connecting => "connecting",
            RedisState::Up => "up",
            RedisState::Down => "down",
        }
    }
}

/// The loop's end of the link.
pub struct Link {
    settings: LinkSettings,
    outbound: SyncSender<Outbound>,
    all_channel: String,
    instance: String,
    inbound: Receiver<Inbound>,
    stop: Arc<AtomicBool>,
    /// Messages Redis refused (an error reply, not a dead connection): the other nodes never
    /// got them.
    lost_in_flight: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
    /// To the claims thread.
    claims: SyncSender<ClaimRequest>,
    /// Set by the claims thread once it has given this node's claims up (stopping).
    claims_left: Arc<AtomicBool>,
    /// Claim answers received, for the hub to take.
    claim_answers: Vec<ClaimAnswer>,
    /// To the history thread (`kept.rs`).
    history: SyncSender<HistoryRequest>,
    /// History answers received, for the hub to take.
    history_answers: Vec<HistoryAnswer>,
    /// The threads woke the loop and it has not drained since (see `start`).
    woken: Arc<AtomicBool>,
    state: RedisState,
    publisher_up: bool,
    subscriber_up: bool,
    /// Messages not queued because the queue was full.
    pub dropped: u64,
    pub sent: u64,
    pub received: u64,
    /// Times the link came up (both connections): each time, what the other nodes said
    /// while it was down is lost to this node, and what it said is lost to them.
    pub came_up: u64,
}

impl Link {
    /// Starts the threads; they connect in the background. `wake` is called when a message
    /// message handed to the loop.
    pub fn start(
        settings: LinkSettings,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> std::io::Result<Link> {
        let client = match &settings.redis_ca {
            None => redis::Client::open(settings.redis_url.as_str()),
            Some(authority) => redis::Client::build_with_tls(
                settings.redis_url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(authority.clone()),
                },
            ),
        }
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
        let mut nonce = [0_u8; 6];
        getrandom::fill(&mut nonce).map_err(std::io::Error::other)?;
        let instance = format!(
            "{}#{}",
            settings.node_id,
            nonce
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect::<String>()
        );
        let (outbound, outbound_rx) = mpsc::sync_channel::<Outbound>(settings.max_queue);
        // Bounded too: a loop that falls behind holds the subscriber thread back (Redis then
        // buffers, and past its pubsub output limit drops the connection, which reconnects)
        // instead of growing this queue.
        let (inbound_tx, inbound) = mpsc::sync_channel::<Inbound>(settings.max_queue);
        let stop = Arc::new(AtomicBool::new(false));
        let lost_in_flight = Arc::new(AtomicU64::new(0));
        // One wake per loop turn however many messages arrive meanwhile: the threads wake
        // the loop only when it has not been woken since it last drained (`receive`).
        let woken = Arc::new(AtomicBool::new(false));
        let wake = {
            let woken = Arc::clone(&woken);
            Arc::new(move || {
                if !woken.swap(true, Ordering::SeqCst) {
                    wake();
                }
            })
        };
        let publisher = {
            let (client, stop, tx, wake) = (
                client.clone(),
                Arc::clone(&stop),
                inbound_tx.clone(),
                Arc::clone(&wake),
            );
            let lost = Arc::clone(&lost_in_flight);
            let keys = HistoryKeys {
                prefix: settings.prefix.clone(),
                channel: settings.all_channel(),
            };
            std::thread::Builder::new()
                .name("wson-cluster-pub".to_owned())
                .spawn(move || {
                    publish_loop(&client, &keys, &outbound_rx, &stop, &tx, &*wake, &lost);
                })?
        };
        let (claims, claims_rx) = mpsc::sync_channel::<ClaimRequest>(settings.max_queue);
        let claims_left = Arc::new(AtomicBool::new(false));
        let claimer = {
            let (client, stop, tx, wake) = (
                client.clone(),
                Arc::clone(&stop),
                inbound_tx.clone(),
                Arc::clone(&wake),
            );
            let left = Arc::clone(&claims_left);
            let keys = ClaimKeys {
                prefix: settings.prefix.clone(),
                instance: instance.clone(),
            };
            std::thread::Builder::new()
                .name("wson-cluster-claims".to_owned())
                .spawn(move || {
                    claims::claims_loop(&client, keys, &claims_rx, &stop, &tx, &*wake);
                    left.store(true, Ordering::SeqCst);
                })?
        };
        let (history, history_rx) = mpsc::sync_channel::<HistoryRequest>(settings.max_queue);
        let historian = {
            let (client, stop, tx, wake) = (
                client.clone(),
                Arc::clone(&stop),
                inbound_tx.clone(),
                Arc::clone(&wake),
            );
            let keys = HistoryKeys {
                prefix: settings.prefix.clone(),
                channel: settings.all_channel(),
            };
            std::thread::Builder::new()
                .name("wson-cluster-history".to_owned())
                .spawn(move || kept::history_loop(&client, keys, &history_rx, &stop, &tx, &*wake))?
        };
        let subscriber = {
            let (stop, wake) = (Arc::clone(&stop), Arc::clone(&wake));
            let channels = [settings.all_channel(), settings.node_channel(&instance)];
            std::thread::Builder::new()
                .name("wson-cluster-sub".to_owned())
                .spawn(move || subscribe_loop(&client, &channels, &stop, &inbound_tx, &*wake))?
        };
        Ok(Link {
            all_channel: settings.all_channel(),
            instance,
            settings,
            outbound,
            inbound,
            stop,
            lost_in_flight,
            woken,
            threads: vec![publisher, subscriber, claimer, historian],
            claims,
            claims_left,
            claim_answers: Vec::new(),
            history,
            history_answers: Vec::new(),
            state: RedisState::Connecting,
            publisher_up: false,
            subscriber_up: false,
            dropped: 0,
            sent: 0,
            received: 0,
            came_up: 0,
        })
    }

    pub fn node_id(&self) -> &str {
        &self.settings.node_id
    }

    /// This run of the node, as its messages name it: `NODE_ID#NONCE`. Two nodes given the
    /// same `node_id` by mistake stay apart (and are told about), and a node restarted
    /// under its old name is a new member.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn state(&self) -> RedisState {
        self.state
    }

    /// Messages Redis refused.
    pub fn lost(&self) -> u64 {
        self.lost_in_flight.load(Ordering::Relaxed)
    }

    /// Hands `message` to the publisher thread, or counts it dropped when Redis is known to
    /// be away (a stale backlog must not flood the nodes when it is back), the queue is full
    /// or the thread is gone. Never blocks.
    pub fn publish(&mut self, message: Vec<u8>) {
        let channel = self.all_channel.clone();
        self.send(channel, message);
    }

    /// `publish`, to node `node` alone.
    pub fn publish_to(&mut self, node: &str, message: Vec<u8>) {
        let channel = self.settings.node_channel(node);
        self.send(channel, message);
    }

    fn send(&mut self, channel: String, message: Vec<u8>) {
        if self.state == RedisState::Down {
            self.dropped += 1;
            return;
        }
        match self.outbound.try_send(Outbound::Message(channel, message)) {
            Ok(()) => self.sent += 1,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped += 1,
        }
    }

    /// What arrived since the last call, state changes applied; never blocks.
    pub fn receive(&mut self) -> Vec<Vec<u8>> {
        // Before draining: what a thread queues from now on wakes the loop again.
        self.woken.store(false, Ordering::SeqCst);
        let mut messages = Vec::new();
        while let Ok(inbound) = self.inbound.try_recv() {
            match inbound {
                Inbound::Message(message) => {
                    self.received += 1;
                    messages.push(message);
                }
                Inbound::Connected { publisher } => {
                    if publisher {
                        self.publisher_up = true;
                    } else {
                        self.subscriber_up = true;
                    }
                    if self.publisher_up && self.subscriber_up && self.state != RedisState::Up {
                        log::info!(node = self.settings.node_id.as_str(), channel = self.all_channel.as_str(); "cluster: connected to Redis");
                        self.state = RedisState::Up;
                        self.came_up += 1;
                        // Claims are waited for again from now: the claims thread need not
                        // sit out its backoff.
                        let _ = self.claims.try_send(ClaimRequest::Connect);
                    }
                }
                Inbound::Lost { publisher, reason } => {
                    if self.state != RedisState::Down {
                        log::warn!(node = self.settings.node_id.as_str(), reason = reason.as_str(); "cluster: Redis lost; delivering to this node's clients only until it is back");
                    }
                    if publisher {
                        self.publisher_up = false;
                    } else {
                        self.subscriber_up = false;
                    }
                    self.state = RedisState::Down;
                }
                Inbound::Claimed(answer) => self.claim_answers.push(answer),
                Inbound::History(answer) => self.history_answers.push(answer),
            }
        }
        messages
    }

    /// The claim answers `receive` found.
    pub fn take_claim_answers(&mut self) -> Vec<ClaimAnswer> {
        std::mem::take(&mut self.claim_answers)
    }

    /// Hands a publication to a topic with history (`HistoryRequest::Publish`) to the
    /// publisher thread, behind the messages handed to it before; false when Redis is known
    /// to be away, the queue is full or the thread is gone (nothing is sent). Never blocks.
    pub fn publish_kept(&mut self, request: HistoryRequest) -> bool {
        if self.state == RedisState::Down {
            return false;
        }
        self.outbound.try_send(Outbound::Kept(request)).is_ok()
    }

    /// The history answers `receive` found.
    pub fn take_history_answers(&mut self) -> Vec<HistoryAnswer> {
        std::mem::take(&mut self.history_answers)
    }

    /// Hands a request to the history thread; false when its queue is full or it is gone
    /// (the request is dropped). Never blocks.
    pub fn ask_history(&mut self, request: HistoryRequest) -> bool {
        self.history.try_send(request).is_ok()
    }

    /// Hands a request to the claims thread; false when its queue is full or it is gone
    /// (the request is dropped). Never blocks.
    pub fn ask_claims(&mut self, request: ClaimRequest) -> bool {
        self.claims.try_send(request).is_ok()
    }

    /// Asks the threads to stop (they notice within `POLL`) without waiting for them.
    pub fn stop(&mut self) {
        // Ahead of the flag's POLL: the claims thread gives the node's claims up at once.
        let _ = self.claims.try_send(ClaimRequest::Leave);
        self.stop.store(true, Ordering::SeqCst);
        self.threads.clear();
    }
}

impl Drop for Link {
    /// Waits (at most `IO_TIMEOUT` and a `POLL`) for the claims thread to give this node's
    /// claims up, so that its clients may reconnect to another node at once: the process
    /// is ending, nothing else waits.
    fn drop(&mut self) {
        self.stop();
        let deadline = Instant::now() + IO_TIMEOUT + POLL;
        while !self.claims_left.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn backoff(current: Duration, stop: &AtomicBool) -> Duration {
    let mut slept = Duration::ZERO;
    while slept < current && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(POLL.min(current - slept));
        slept += POLL;
    }
    (current * 2).min(MAX_BACKOFF)
}

fn publish_loop(
    client: &redis::Client,
    keys: &HistoryKeys,
    outbound: &Receiver<Outbound>,
    stop: &AtomicBool,
    inbound: &mpsc::SyncSender<Inbound>,
    wake: &(dyn Fn() + Send + Sync),
    lost: &AtomicU64,
) {
    let mut wait = FIRST_BACKOFF;
    // Messages whose PUBLISH met a dead connection: sent first on the next one, so a Redis
    // restart between two messages loses none (the connection's death shows only then).
    let mut retry: Option<Vec<Outbound>> = None;
    while !stop.load(Ordering::SeqCst) {
        let mut connection = match client.get_connection_with_timeout(IO_TIMEOUT) {
            Ok(connection) => connection,
            Err(error) => {
                let _ = inbound.send(Inbound::Lost {
                    publisher: true,
                    reason: error.to_string(),
                });
                wake();
                wait = backoff(wait, stop);
                continue;
            }
        };
        let _ = connection.set_write_timeout(Some(IO_TIMEOUT));
        let _ = connection.set_read_timeout(Some(IO_TIMEOUT));
        wait = FIRST_BACKOFF;
        if inbound
            .send(Inbound::Connected { publisher: true })
            .is_err()
        {
            return;
        }
        wake();
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let mut batch = match retry.take() {
                Some(batch) => batch,
                None => match outbound.recv_timeout(POLL) {
                    Ok(outbound) => vec![outbound],
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
            };
            // What is queued already goes in the same write, pipelined: one round trip to
            // Redis for the lot instead of one per message (the order is kept).
            let mut bytes: usize = batch.iter().map(Outbound::len).sum();
            while batch.len() < MAX_PIPELINE && bytes < MAX_PIPELINE_BYTES {
                let Ok(next) = outbound.try_recv() else {
                    break;
                };
                bytes += next.len();
                batch.push(next);
            }
            let mut pipeline = redis::pipe();
            for item in &batch {
                match item {
                    Outbound::Message(channel, message) => {
                        pipeline
                            .cmd("PUBLISH")
                            .arg(channel.as_str())
                            .arg(message.as_slice());
                    }
                    Outbound::Kept(request) => {
                        pipeline.add_command(kept::publish_command(keys, request));
                    }
                }
            }
            let published: redis::RedisResult<Vec<redis::Value>> = pipeline.query(&mut connection);
            let error = match published {
                Ok(values) => {
                    // Positions to the loop; a script Redis refused is answered unavailable.
                    for (item, value) in batch.iter().zip(&values) {
                        if let Outbound::Kept(request) = item {
                            let answer = kept::publish_answer(request, Some(value));
                            let _ = inbound.send(Inbound::History(answer));
                            wake();
                        }
                    }
                    continue;
                }
                Err(error) => error,
            };
            let connection_failed = super::reconnecting::connection_failed(&error);
            if !connection_failed || error.is_timeout() {
                // A history publication may have been positioned before a timeout: sent
                // again, it would be twice. Answered unavailable (README).
                batch.retain(|item| match item {
                    Outbound::Kept(request) => {
                        let _ = inbound.send(Inbound::History(kept::publish_answer(request, None)));
                        wake();
                        false
                    }
                    Outbound::Message(..) => true,
                });
            }
            if !connection_failed {
                // Redis refused a message itself (an error reply): it would again. Which
                // one the pipeline does not say; the batch counts as lost.
                lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                log::warn!(reason:% = error, messages = batch.len(); "cluster: Redis refused a message; dropped with its batch");
                continue;
            }
            retry = Some(batch);
            let _ = inbound.send(Inbound::Lost {
                publisher: true,
                reason: error.to_string(),
            });
            wake();
            break;
        }
    }
}

fn subscribe_loop(
    client: &redis::Client,
    channels: &[String],
    stop: &AtomicBool,
    inbound: &mpsc::SyncSender<Inbound>,
    wake: &(dyn Fn() + Send + Sync),
) {
    let mut wait = FIRST_BACKOFF;
    while !stop.load(Ordering::SeqCst) {
        let reason = match listen(client, channels, stop, inbound, wake) {
            Ok(()) => return,
            Err(reason) => reason,
        };
        if inbound
            .send(Inbound::Lost {
                publisher: false,
                reason,
            })
            .is_err()
        {
            return;
        }
        wake();
        wait = backoff(wait, stop);
    }
}

/// Subscribes and hands every message over until `stop` (`Ok`) or the connection fails.
fn listen(
    client: &redis::Client,
    channels: &[String],
    stop: &AtomicBool,
    inbound: &mpsc::SyncSender<Inbound>,
    wake: &(dyn Fn() + Send + Sync),
) -> Result<(), String> {
    let mut connection = client
        .get_connection_with_timeout(IO_TIMEOUT)
        .map_err(|error| error.to_string())?;
    let mut pubsub = connection.as_pubsub();
    pubsub
        .subscribe(channels)
        .map_err(|error| error.to_string())?;
    pubsub
        .set_read_timeout(Some(POLL))
        .map_err(|error| error.to_string())?;
    inbound
        .send(Inbound::Connected { publisher: false })
        .map_err(|_| "the loop is gone".to_owned())?;
    wake();
    while !stop.load(Ordering::SeqCst) {
        match pubsub.get_message() {
            Ok(message) => {
                let payload = message.get_payload_bytes().to_vec();
                if inbound.send(Inbound::Message(payload)).is_err() {
                    return Ok(());
                }
                wake();
            }
            Err(error) if error.is_timeout() => {}
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(())
}
