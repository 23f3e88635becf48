//! The serving side of the driver: a listening socket and the connections it accepts.
//!
//! [`Listener::bind`] opens a TCP or Unix-domain listening socket; its acceptor thread
//! hands each accepted connection to the driver's loop. Each connection of a primary then
//! has a reader thread (what the secondary sends: the handshake, keep-alives), a sealer
//! thread that takes what the primary transmits, reports when it takes a window (the
//! primary's cue to read the next one from its storage: [`crate::primary`]'s flow control)
//! and completes each window's `C` messages with the running md5, and a writer thread that
//! writes the sealed bytes (`start_writer`). Reading and encoding, hashing, and socket
//! writes thus run side by side; a connection holds a few windows at most, and a secondary
//! that stops reading blocks only its own threads.

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread;

use super::address::tcp_peer;
use super::stream::Stream;
use crate::protocol::seal::SealedWindow;
use crate::protocol::{Sealer, Unsealed};
use crate::secondary::Address;

/// What a writer thread is asked to do.
pub(super) enum Out {
    Bytes(Vec<u8>),
    /// A window to seal with the connection's running checksum, then write.
    Unsealed(Unsealed),
    /// Close the connection (after the bytes sent before).
    Close,
}

/// A bound listening socket, not yet accepting.
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    /// Where it listens, as bound (`127.0.0.1:8100`, `unix:/path`): the port chosen when 0
    /// was asked for.
    local: String,
}

#[derive(Debug)]
enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `address`. An empty host listens on every interface, as Twisted's
    /// `listenTCP(port, interface='')`; port 0 takes a free port (see [`Listener::local`]).
    /// A Unix socket path left over from an earlier run is replaced.
    pub fn bind(address: &Address) -> io::Result<Listener> {
        match address {
            Address::Tcp { host, port } => {
                let host = if host.is_empty() {
                    "0.0.0.0"
                } else {
                    host.as_str()
                };
                let listener = TcpListener::bind((host, *port))?;
                let local = listener.local_addr()?.to_string();
                Ok(Listener {
                    socket: Socket::Tcp(listener),
                    local,
                })
            }
            Address::Unix(path) => {
                let path = PathBuf::from(path);
                if std::fs::symlink_metadata(&path)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    std::fs::remove_file(&path)?;
                }
                let listener = UnixListener::bind(&path)?;
                Ok(Listener {
                    local: format!("unix:{}", path.display()),
                    socket: Socket::Unix(listener, path),
                })
            }
        }
    }

    /// Where it listens, as bound.
    pub fn local(&self) -> &str {
        &self.local
    }

    /// Starts the acceptor thread; each accepted connection and its peer (as Twisted prints
    /// it) goes to `accepted` until the returned handle stops it.
    pub(super) fn start(
        self,
        accepted: impl Fn(Stream, String) -> bool + Send + 'static,
    ) -> io::Result<Accepting> {
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        let wake = match &self.socket {
            Socket::Tcp(l) => Wake::Tcp(l.local_addr()?),
            Socket::Unix(_, path) => Wake::Unix(path.clone()),
        };
        thread::Builder::new()
            .name("zrs-accept".into())
            .spawn(move || loop {
                let next = match &self.socket {
                    Socket::Tcp(l) => l.accept().and_then(|(s, addr)| {
                        s.set_nodelay(true)?;
                        Ok((Stream::Tcp(s), tcp_peer(&addr)))
                    }),
                    Socket::Unix(l, _) => l
                        .accept()
                        .map(|(s, _)| (Stream::Unix(s), "UNIXAddress(None)".to_string())),
                };
                if flag.load(Ordering::SeqCst) {
                    if let Socket::Unix(_, path) = &self.socket {
                        let _ = std::fs::remove_file(path);
                    }
                    return; // dropping the socket stops listening
                }
                match next {
                    Ok((stream, peer)) => {
                        if !accepted(stream, peer) {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(target: super::LOG_TARGET, "accept failed: {e}");
                        // Out of descriptors and the like: do not spin.
                        thread::sleep(std::time::Duration::from_millis(10));
                    }
                }
            })?;
        Ok(Accepting { stopped, wake })
    }
}

/// How to wake the acceptor thread blocked in `accept`: connect to it.
#[derive(Debug)]
enum Wake {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

/// A running acceptor thread.
#[derive(Debug)]
pub(super) struct Accepting {
    stopped: Arc<AtomicBool>,
    wake: Wake,
}

impl Accepting {
    /// Stops accepting and closes the listening socket.
    pub(super) fn stop(self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = match &self.wake {
            Wake::Tcp(addr) => {
                let mut addr = *addr;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                TcpStream::connect(addr).map(drop)
            }
            Wake::Unix(path) => UnixStream::connect(path).map(drop),
        };
    }
}

/// What the sealer thread hands the socket writer thread.
enum Sealed {
    Bytes(Vec<u8>),
    /// Written from the window's own buffer and its `C`s (vectored, no copy).
    Window(SealedWindow),
    /// The stream cannot go on: report this, close.
    Fail(io::Error),
    /// Close the connection (after the bytes before).
    Close,
}

/// Starts the two output threads of a served connection. The sealer takes what the primary
/// transmits, calls `ready` each time it takes a window (the primary may then read and
/// encode the next one), and seals unsealed windows with the connection's running checksum
/// (md5, most of a primary's work); the writer writes the sealed bytes to the socket and
/// calls `failed` if that fails. So reading, hashing and socket writes run side by side.
///
/// Memory: the window the primary encodes, the next one queued, the one being sealed, one
/// sealed queued and the one being written (a sealed window is the window itself and its
/// `C`s): five windows per connection at most.
pub(super) fn start_writer(
    mut stream: Stream,
    ready: impl Fn() -> bool + Send + 'static,
    failed: impl FnOnce(io::Error) + Send + 'static,
) -> io::Result<SyncSender<Out>> {
    // The primary transmits once per `ready`: the queue holds the next window and the close.
    let (sender, outs) = mpsc::sync_channel::<Out>(2);
    let (to_writer, sealed) = mpsc::sync_channel::<Sealed>(1);
    thread::Builder::new()
        .name("zrs-writer".into())
        .spawn(move || {
            for out in sealed {
                let error = match out {
                    Sealed::Bytes(bytes) => match stream.write_all(&bytes) {
                        Ok(()) => continue,
                        Err(e) => e,
                    },
                    Sealed::Window(window) => match window.write_to(&mut stream) {
                        Ok(()) => continue,
                        Err(e) => e,
                    },
                    Sealed::Fail(e) => e,
                    Sealed::Close => break,
                };
                let _ = stream.shutdown();
                failed(error);
                return;
            }
            let _ = stream.flush();
            let _ = stream.shutdown();
        })?;
    thread::Builder::new()
        .name("zrs-sealer".into())
        .spawn(move || {
            let mut sealer: Option<Sealer> = None;
            for out in outs {
                // Asked before hashing: the next window is read and encoded meanwhile.
                if matches!(out, Out::Bytes(_) | Out::Unsealed(_)) && !ready() {
                    return;
                }
                let next = match out {
                    Out::Bytes(bytes) => Sealed::Bytes(bytes),
                    Out::Unsealed(window) => {
                        if let Some(start) = window.start() {
                            sealer = Some(Sealer::new(start));
                        }
                        match sealer.as_mut() {
                            Some(sealer) => Sealed::Window(sealer.seal(window)),
                            None => Sealed::Fail(io::Error::other(
                                "the primary sent a window to seal before the connection's first",
                            )),
                        }
                    }
                    Out::Close => Sealed::Close,
                };
                let last = matches!(next, Sealed::Fail(_) | Sealed::Close);
                if to_writer.send(next).is_err() || last {
                    return; // the writer failed (and reported it), or this was the end
                }
            }
        })?;
    Ok(sender)
}
