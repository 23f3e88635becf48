//! A connection to a primary over TCP or a Unix-domain socket, and connecting to one.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::address::{tcp_peer, unix_peer};
use crate::secondary::Address;

/// How long a connection attempt may take: Twisted's `connectTCP` default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected socket.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// A second handle on the same socket (one thread reads while another writes).
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }

    /// Shuts both directions down: a thread blocked reading the socket wakes up.
    pub fn shutdown(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        }
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(timeout),
            Stream::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(timeout),
            Stream::Unix(s) => s.set_write_timeout(timeout),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    /// One `writev` (a sealed window goes out as its pieces, not copied together).
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// Connects to `address` within `timeout` (over all the addresses a host name resolves
/// to); returns the stream and its peer as Twisted prints it.
///
/// An empty host is the local host, as `('', port)` is in zc.zrs configurations.
pub fn connect(address: &Address, timeout: Duration) -> io::Result<(Stream, String)> {
    match address {
        Address::Unix(path) => {
            let stream = UnixStream::connect(path)?;
            Ok((Stream::Unix(stream), unix_peer(path)))
        }
        Address::Tcp { host, port } => {
            let host = if host.is_empty() {
                "127.0.0.1"
            } else {
                host.as_str()
            };
            let deadline = Instant::now() + timeout;
            let mut last_error = None;
            for addr in (host, *port).to_socket_addrs()? {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match TcpStream::connect_timeout(&addr, left) {
                    Ok(stream) => {
                        // Small writes (the handshake, keep-alives) go out at once.
                        stream.set_nodelay(true)?;
                        let peer = stream.peer_addr().unwrap_or(addr);
                        return Ok((Stream::Tcp(stream), tcp_peer(&peer)));
                    }
                    Err(e) => last_error = Some(e),
                }
            }
            Err(last_error.unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {host}:{port} timed out"),
                )
            }))
        }
    }
}
