//! Binding a listener inside a named network namespace.
//!
//! A socket belongs to the namespace of the thread that created it, for its whole life. So a
//! short-lived std thread enters the namespace (`setns(CLONE_NEWNET)` changes only the calling
//! thread), creates and binds the listener, and exits; the listener then serves from any tokio
//! worker. A dedicated thread, never a pooled one: a pooled thread (`spawn_blocking`) would
//! stay in the namespace and run unrelated work there later.

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Where `ip netns add NAME` puts its namespace handles.
pub const NETNS_DIR: &str = "/var/run/netns";

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("`{name}` is not a valid network namespace name")]
    InvalidName { name: String },
    #[error("could not open network namespace {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not enter network namespace `{name}`")]
    Enter {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not bind {addr} in network namespace `{name}`")]
    Bind {
        name: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("could not hand the listener bound in `{name}` to tokio")]
    Register {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the thread binding in network namespace `{name}` died")]
    Thread { name: String },
}

/// Names `ip netns` accepts and that stay inside [`NETNS_DIR`].
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Binds a TCP listener on `addr` inside the namespace `/var/run/netns/<name>`.
///
/// Must be called from within a tokio runtime (the listener is registered with its reactor).
pub async fn bind_in_netns(name: &str, addr: SocketAddr) -> Result<tokio::net::TcpListener, NetnsError> {
    if !valid_name(name) {
        return Err(NetnsError::InvalidName { name: name.to_string() });
    }
    let path = PathBuf::from(NETNS_DIR).join(name);
    let owned_name = name.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("netns-bind-{name}"))
        .spawn(move || {
            let _ = tx.send(bind_on_this_thread(&owned_name, &path, addr));
        })
        .map_err(|_| NetnsError::Thread { name: name.to_string() })?;
    let std_listener = rx.await.map_err(|_| NetnsError::Thread { name: name.to_string() })??;
    tokio::net::TcpListener::from_std(std_listener).map_err(|source| NetnsError::Register { name: name.to_string(), source })
}

/// Runs on the dedicated thread: enter the namespace, bind, return.
fn bind_on_this_thread(name: &str, path: &std::path::Path, addr: SocketAddr) -> Result<std::net::TcpListener, NetnsError> {
    let ns = File::open(path).map_err(|source| NetnsError::Open { path: path.to_path_buf(), source })?;
    enter_netns(&ns).map_err(|source| NetnsError::Enter { name: name.to_string(), source })?;
    let listener = std::net::TcpListener::bind(addr).map_err(|source| NetnsError::Bind { name: name.to_string(), addr, source })?;
    listener.set_nonblocking(true).map_err(|source| NetnsError::Bind { name: name.to_string(), addr, source })?;
    Ok(listener)
}

/// Moves the calling thread into the network namespace `ns` refers to.
#[allow(unsafe_code)]
fn enter_netns(ns: &File) -> std::io::Result<()> {
    // SAFETY: `setns` takes a file descriptor and a flag and touches no memory of ours; the
    // descriptor is open and owned by `ns` for the duration of the call. It changes only the
    // calling thread's network namespace, and that thread is a dedicated one that exits right
    // after binding.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_netns_directory() {
        for bad in ["", ".", "..", "../x", "a/b", "a\0b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(valid_name("corral-vpc-0a1b2c3d"));
    }

    #[tokio::test]
    async fn missing_namespace_is_an_open_error() {
        let err = bind_in_netns("corral-no-such-namespace-xyz", "127.0.0.1:0".parse().unwrap()).await.unwrap_err();
        assert!(matches!(err, NetnsError::Open { .. }), "{err:?}");
    }
}
