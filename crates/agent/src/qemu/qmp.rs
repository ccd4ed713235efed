//! A small QMP client: newline-delimited JSON over QEMU's unix control socket.
//!
//! ```text
//!  client                              QEMU
//!    | <------ {"QMP": {...}}  greeting  |
//!    | {"execute":"qmp_capabilities"} -> |
//!    | <------------------ {"return":{}} |
//!    | {"execute":C,"id":N} ------------> |
//!    | <---- {"event":...} (any time)     |
//!    | <---- {"return":..,"id":N} or {"error":{"class","desc"},"id":N}
//! ```
//!
//! Events can arrive before a command's answer; [`Qmp::execute`] queues them and
//! [`Qmp::next_event`] hands them out. Reading keeps partial lines in the client, so
//! `next_event` can sit in a `select!` next to other work and be cancelled safely. A
//! response to an abandoned command (one whose caller timed out) is recognised by its id and
//! dropped.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// A QMP message larger than this is a protocol error, not something to buffer forever.
/// (The largest answers we ask for, `query-block` and `query-named-block-nodes`, take a few
/// KiB per disk and layer.)
const MAX_MESSAGE_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("cannot connect to QMP socket {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("QMP socket I/O failed")]
    Io(#[source] std::io::Error),
    #[error("QMP connection closed by QEMU")]
    Closed,
    #[error("QMP protocol error: {0}")]
    Protocol(String),
    #[error("QMP command {command} failed: {class}: {desc}")]
    Command { command: String, class: String, desc: String },
}

/// An asynchronous event QEMU sent (`SHUTDOWN`, `RESET`, `POWERDOWN`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct QmpEvent {
    pub event: String,
    pub data: Value,
}

pub struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// Bytes of a message not yet complete; kept across cancelled reads.
    partial: Vec<u8>,
    next_id: u64,
    events: VecDeque<QmpEvent>,
}

impl Qmp {
    /// Connects, reads the greeting and leaves capabilities negotiation mode.
    pub async fn connect(path: &Path) -> Result<Qmp, QmpError> {
        let stream = UnixStream::connect(path).await.map_err(|source| QmpError::Connect { path: path.to_path_buf(), source })?;
        let (r, w) = stream.into_split();
        let mut qmp = Qmp { reader: BufReader::new(r), writer: w, partial: Vec::new(), next_id: 1, events: VecDeque::new() };
        let greeting = qmp.read_message().await?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(format!("expected a QMP greeting, got {greeting}")));
        }
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    /// Runs `command` and returns its `return` value; events met on the way are queued.
    pub async fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({ "execute": command, "id": id });
        if let Some(args) = arguments {
            request["arguments"] = args;
        }
        let mut line = request.to_string().into_bytes();
        line.push(b'\n');
        self.writer.write_all(&line).await.map_err(QmpError::Io)?;
        loop {
            let msg = self.read_message().await?;
            if let Some(event) = as_event(&msg) {
                self.events.push_back(event);
                continue;
            }
            if msg.get("id").and_then(Value::as_u64) != Some(id) {
                continue; // the answer to a command whose caller gave up waiting
            }
            if let Some(ret) = msg.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = msg.get("error") {
                let field = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                return Err(QmpError::Command { command: command.to_string(), class: field("class"), desc: field("desc") });
            }
            return Err(QmpError::Protocol(format!("unexpected answer to {command}: {msg}")));
        }
    }

    /// The next event: a queued one, or the next one QEMU sends. Cancel-safe.
    pub async fn next_event(&mut self) -> Result<QmpEvent, QmpError> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(e);
            }
            let msg = self.read_message().await?;
            if let Some(event) = as_event(&msg) {
                return Ok(event);
            }
            // A late answer to an abandoned command: nothing to do with it.
        }
    }

    /// Waits for the first event `wanted` accepts, taking it out of the stream; every other
    /// event stays queued, in order, for [`Qmp::next_event`]. Cancel-safe (wrap it in a
    /// timeout to bound the wait).
    pub async fn wait_event(&mut self, wanted: impl Fn(&QmpEvent) -> bool) -> Result<QmpEvent, QmpError> {
        if let Some(i) = self.events.iter().position(&wanted) {
            return Ok(self.events.remove(i).expect("index just found"));
        }
        loop {
            let msg = self.read_message().await?;
            if let Some(event) = as_event(&msg) {
                if wanted(&event) {
                    return Ok(event);
                }
                self.events.push_back(event);
            }
        }
    }

    /// `query-status`'s `status` field ("running", "paused", "shutdown", ...).
    pub async fn query_status(&mut self) -> Result<String, QmpError> {
        let ret = self.execute("query-status", None).await?;
        ret.get("status")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| QmpError::Protocol(format!("query-status answered {ret}")))
    }

    async fn read_message(&mut self) -> Result<Value, QmpError> {
        loop {
            // read_until appends to `partial` as bytes arrive, so a cancelled call loses nothing.
            let n = self.reader.read_until(b'\n', &mut self.partial).await.map_err(QmpError::Io)?;
            if n == 0 {
                return Err(QmpError::Closed);
            }
            if self.partial.last() != Some(&b'\n') {
                if self.partial.len() > MAX_MESSAGE_BYTES {
                    return Err(QmpError::Protocol(format!("message longer than {MAX_MESSAGE_BYTES} bytes")));
                }
                continue;
            }
            let line = std::mem::take(&mut self.partial);
            let text = String::from_utf8_lossy(&line);
            if text.trim().is_empty() {
                continue;
            }
            return serde_json::from_str(&text).map_err(|e| QmpError::Protocol(format!("bad JSON from QEMU ({e}): {}", text.trim())));
        }
    }
}

fn as_event(msg: &Value) -> Option<QmpEvent> {
    let event = msg.get("event")?.as_str()?.to_string();
    Some(QmpEvent { event, data: msg.get("data").cloned().unwrap_or(Value::Null) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    /// A fake QEMU: sends the greeting, then for each request line calls `answer`, which
    /// returns the raw text to send back (possibly several lines, possibly split).
    async fn fake_qemu(
        listener: UnixListener,
        answer: impl Fn(&Value) -> Vec<String> + Send + 'static,
    ) -> tokio::task::JoinHandle<Vec<Value>> {
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (r, mut w) = stream.into_split();
            w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}\r\n").await.unwrap();
            let mut lines = BufReader::new(r).lines();
            let mut seen = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                let req: Value = serde_json::from_str(&line).unwrap();
                for chunk in answer(&req) {
                    w.write_all(chunk.as_bytes()).await.unwrap();
                    w.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
                seen.push(req);
            }
            seen
        })
    }

    fn id(req: &Value) -> u64 {
        req["id"].as_u64().unwrap()
    }

    #[tokio::test]
    async fn handshake_execute_and_events_in_between() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let server = fake_qemu(UnixListener::bind(&path).unwrap(), |req| {
            let id = id(req);
            match req["execute"].as_str().unwrap() {
                "qmp_capabilities" => vec![format!("{{\"return\": {{}}, \"id\": {id}}}\r\n")],
                "query-status" => vec![
                    // An event first, and the answer split across writes.
                    "{\"timestamp\": {}, \"event\": \"RESET\", \"data\": {\"guest\": false}}\r\n".into(),
                    "{\"return\": {\"status\": \"runn".into(),
                    format!("ing\", \"running\": true}}, \"id\": {id}}}\r\n"),
                ],
                "system_reset" => vec![format!("{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"nope\"}}, \"id\": {id}}}\r\n")],
                _ => vec![],
            }
        })
        .await;

        let mut qmp = Qmp::connect(&path).await.unwrap();
        assert_eq!(qmp.query_status().await.unwrap(), "running");
        let err = qmp.execute("system_reset", None).await.unwrap_err();
        assert!(err.to_string().contains("system_reset") && err.to_string().contains("nope"), "{err}");
        let ev = qmp.next_event().await.unwrap();
        assert_eq!(ev.event, "RESET");
        assert_eq!(ev.data["guest"], false);
        drop(qmp);
        let seen = server.await.unwrap();
        let commands: Vec<&str> = seen.iter().map(|r| r["execute"].as_str().unwrap()).collect();
        assert_eq!(commands, ["qmp_capabilities", "query-status", "system_reset"]);
        let ids: Vec<u64> = seen.iter().map(id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
    }

    #[tokio::test]
    async fn wait_event_takes_the_wanted_event_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let server = fake_qemu(UnixListener::bind(&path).unwrap(), |req| {
            let id = id(req);
            match req["execute"].as_str().unwrap() {
                "qmp_capabilities" => vec![format!("{{\"return\": {{}}, \"id\": {id}}}\n")],
                // One event before the answer (queued by execute), two after it.
                "device_del" => vec![
                    "{\"event\": \"RESET\"}\n".into(),
                    format!("{{\"return\": {{}}, \"id\": {id}}}\n"),
                    "{\"event\": \"STOP\"}\n".into(),
                    "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"vol-1\"}}\n".into(),
                ],
                _ => vec![],
            }
        })
        .await;
        let mut qmp = Qmp::connect(&path).await.unwrap();
        qmp.execute("device_del", Some(json!({"id": "vol-1"}))).await.unwrap();
        let ev = qmp.wait_event(|e| e.event == "DEVICE_DELETED" && e.data["device"] == "vol-1").await.unwrap();
        assert_eq!(ev.data["device"], "vol-1");
        assert_eq!(qmp.next_event().await.unwrap().event, "RESET");
        assert_eq!(qmp.next_event().await.unwrap().event, "STOP");
        // Nothing else comes: a bounded wait times out, and the stream is still usable.
        let r = tokio::time::timeout(std::time::Duration::from_millis(50), qmp.wait_event(|_| true)).await;
        assert!(r.is_err());
        drop(qmp);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn late_answers_are_dropped_and_eof_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let server = fake_qemu(UnixListener::bind(&path).unwrap(), |req| {
            let id = id(req);
            match req["execute"].as_str().unwrap() {
                "qmp_capabilities" => vec![format!("{{\"return\": {{}}, \"id\": {id}}}\n")],
                // Answers an older id first (as if a previous caller had timed out).
                "query-status" => vec![
                    format!("{{\"return\": {{\"status\": \"paused\"}}, \"id\": {}}}\n", id - 1),
                    format!("{{\"return\": {{\"status\": \"prelaunch\"}}, \"id\": {id}}}\n"),
                ],
                _ => vec![],
            }
        })
        .await;
        let mut qmp = Qmp::connect(&path).await.unwrap();
        assert_eq!(qmp.query_status().await.unwrap(), "prelaunch");
        drop(qmp);
        server.await.unwrap();

        // QEMU closing the connection (it exited) after one last event.
        let dir2 = tempfile::tempdir().unwrap();
        let path2 = dir2.path().join("qmp.sock");
        let listener = UnixListener::bind(&path2).unwrap();
        let closer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"{\"QMP\": {}}\n").await.unwrap();
            let mut buf = [0u8; 256];
            let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
            s.write_all(b"{\"return\": {}, \"id\": 1}\n{\"event\": \"SHUTDOWN\"}\n").await.unwrap();
            // dropping `s` closes the connection
        });
        let mut qmp2 = Qmp::connect(&path2).await.unwrap();
        closer.await.unwrap();
        assert_eq!(qmp2.next_event().await.unwrap().event, "SHUTDOWN");
        assert!(matches!(qmp2.next_event().await, Err(QmpError::Closed)));
    }

    #[tokio::test]
    async fn next_event_survives_cancellation_mid_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"{\"QMP\": {}}\n").await.unwrap();
            let mut buf = [0u8; 256];
            let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
            s.write_all(b"{\"return\": {}, \"id\": 1}\n{\"event\": \"POWER").await.unwrap();
            rx.await.unwrap();
            s.write_all(b"DOWN\"}\n").await.unwrap();
            s
        });
        let mut qmp = Qmp::connect(&path).await.unwrap();
        // Cancel a read that has consumed half an event.
        let r = tokio::time::timeout(std::time::Duration::from_millis(100), qmp.next_event()).await;
        assert!(r.is_err(), "no whole event yet");
        tx.send(()).unwrap();
        assert_eq!(qmp.next_event().await.unwrap().event, "POWERDOWN");
        drop(server.await.unwrap());
    }

    #[tokio::test]
    async fn connect_errors_name_the_socket_and_bad_greetings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.sock");
        let err = Qmp::connect(&missing).await.err().unwrap();
        assert!(err.to_string().contains("nope.sock"), "{err}");

        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"{\"hello\": 1}\n").await.unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        });
        let err = Qmp::connect(&path).await.err().unwrap();
        assert!(matches!(err, QmpError::Protocol(_)), "{err}");
    }
}
