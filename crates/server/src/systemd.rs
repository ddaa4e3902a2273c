//! systemd's readiness protocol (`sd_notify`): with `Type=notify`, systemd waits for
//! `READY=1` before it counts the unit as started (and starts the units ordered after it), and
//! `STOPPING=1` says a stop has begun.
//!
//! The message is one datagram to the socket named by `NOTIFY_SOCKET` (a path, or an abstract
//! socket when it starts with `@`). Without the variable (not under systemd) nothing is sent.
//! A failure to send is logged and otherwise ignored: it must not stop a member from serving.
//!
//! Not here: watchdog pings (`WatchdogSec=`), which etcd does not send either.

use std::os::unix::net::UnixDatagram;

/// Tells systemd the member serves clients.
pub fn notify_ready() {
    notify("READY=1");
}

/// Tells systemd the member is stopping.
pub fn notify_stopping() {
    notify("STOPPING=1");
}

fn notify(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&target, state) {
        tracing::warn!("sd_notify {state} to {}: {e}", target.to_string_lossy());
    }
}

fn send(target: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let socket = UnixDatagram::unbound()?;
    let bytes = target.as_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt as _;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &addr)?
    } else {
        socket.send_to(state.as_bytes(), target)?
    };
    if sent != state.len() {
        return Err(std::io::Error::other("short datagram"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_one_datagram_to_a_path_or_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("etcd-rs-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let abstract_listener = UnixDatagram::bind_addr(&addr).unwrap();
        send(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = abstract_listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");

        assert!(send(dir.path().join("nobody").as_os_str(), "READY=1").is_err());
    }
}
