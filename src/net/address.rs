//! Primary addresses as a command line gives them, and peers as Twisted prints them.

use std::net::SocketAddr;

use crate::repr::py_str_repr;
use crate::secondary::Address;

/// A primary address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("{0:?}: expected HOST:PORT, [IPV6]:PORT, :PORT or unix:PATH")]
    Shape(String),
    #[error("{input:?}: port {port:?} is not a number from 1 to 65535")]
    Port { input: String, port: String },
    #[error("{0:?}: empty socket path")]
    EmptyPath(String),
}

/// Parses a primary address: `HOST:PORT`, `[IPV6]:PORT`, `:PORT` (the local host, as `('',
/// PORT)` in a zc.zrs configuration), or a Unix-domain socket as `unix:PATH` or any path
/// containing a `/`.
pub fn parse_address(input: &str) -> Result<Address, AddressError> {
    if let Some(path) = input.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(AddressError::EmptyPath(input.to_string()));
        }
        return Ok(Address::Unix(path.to_string()));
    }
    if input.contains('/') {
        return Ok(Address::Unix(input.to_string()));
    }
    let (host, port) = if let Some(rest) = input.strip_prefix('[') {
        let (host, rest) = rest
            .split_once(']')
            .ok_or_else(|| AddressError::Shape(input.to_string()))?;
        let port = rest
            .strip_prefix(':')
            .ok_or_else(|| AddressError::Shape(input.to_string()))?;
        (host, port)
    } else {
        let (host, port) = input
            .rsplit_once(':')
            .ok_or_else(|| AddressError::Shape(input.to_string()))?;
        if host.contains(':') {
            // A bare IPv6 address: the port would be ambiguous.
            return Err(AddressError::Shape(input.to_string()));
        }
        (host, port)
    };
    let port_error = || AddressError::Port {
        input: input.to_string(),
        port: port.to_string(),
    };
    let port: u16 = port.parse().map_err(|_| port_error())?;
    if port == 0 {
        return Err(port_error());
    }
    Ok(Address::tcp(host, port))
}

/// A TCP peer as Twisted's `str(transport.getPeer())` prints it in zc.zrs's logs:
/// `IPv4Address(TCP, '127.0.0.1', 8000)` or `IPv6Address(TCP, '::1', 8000)`.
pub fn tcp_peer(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("IPv4Address(TCP, '{}', {})", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("IPv6Address(TCP, '{}', {})", a.ip(), a.port()),
    }
}

/// A Unix-domain peer as Twisted prints a client's peer: the path it connected to.
pub fn unix_peer(path: &str) -> String {
    format!("UNIXAddress({})", py_str_repr(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_address_forms() {
        assert_eq!(
            parse_address("127.0.0.1:8000"),
            Ok(Address::tcp("127.0.0.1", 8000))
        );
        assert_eq!(
            parse_address("primary.example:8100"),
            Ok(Address::tcp("primary.example", 8100))
        );
        assert_eq!(parse_address(":8000"), Ok(Address::tcp("", 8000)));
        assert_eq!(parse_address("[::1]:8000"), Ok(Address::tcp("::1", 8000)));
        assert_eq!(
            parse_address("unix:zrs.sock"),
            Ok(Address::Unix("zrs.sock".into()))
        );
        assert_eq!(
            parse_address("/run/zrs.sock"),
            Ok(Address::Unix("/run/zrs.sock".into()))
        );
    }

    #[test]
    fn bad_addresses_name_what_is_wrong() {
        assert!(matches!(parse_address("8000"), Err(AddressError::Shape(_))));
        assert!(matches!(
            parse_address("::1:8000"),
            Err(AddressError::Shape(_))
        ));
        assert!(matches!(
            parse_address("[::1]8000"),
            Err(AddressError::Shape(_))
        ));
        assert!(matches!(parse_address("[::1"), Err(AddressError::Shape(_))));
        assert_eq!(
            parse_address("h:80x").unwrap_err().to_string(),
            "\"h:80x\": port \"80x\" is not a number from 1 to 65535"
        );
        assert!(matches!(
            parse_address("h:0"),
            Err(AddressError::Port { .. })
        ));
        assert!(matches!(
            parse_address("h:65536"),
            Err(AddressError::Port { .. })
        ));
        assert!(matches!(
            parse_address("unix:"),
            Err(AddressError::EmptyPath(_))
        ));
    }

    #[test]
    fn peers_print_as_twisted_prints_them() {
        assert_eq!(
            tcp_peer(&"127.0.0.1:8000".parse().unwrap()),
            "IPv4Address(TCP, '127.0.0.1', 8000)"
        );
        assert_eq!(
            tcp_peer(&"[::1]:8000".parse().unwrap()),
            "IPv6Address(TCP, '::1', 8000)"
        );
        assert_eq!(unix_peer("/tmp/zrs.sock"), "UNIXAddress('/tmp/zrs.sock')");
    }
}
