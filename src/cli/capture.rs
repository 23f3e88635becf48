//! `zrs capture`: record what a primary sends, to replay it in the simulator.
//!
//! Connects as a secondary would, sends the handshake (protocol, start tid), and writes every
//! byte received after it to a file, untouched, until the stream has been quiet for a while
//! (a primary never ends the stream itself: it waits for more commits). The file is what a
//! scenario's `send file` step delivers.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use zrs::net::{connect, parse_address, Stream, DEFAULT_CONNECT_TIMEOUT};
use zrs::protocol::framing::FrameDecoder;
use zrs::protocol::handshake::hello;
use zrs::secondary::Address;
use zrs::Tid;

use super::secondary::parse_seconds;

/// Record a primary's replication stream: connect to ADDRESS, ask for the transactions after
/// --start, and write every byte received after the handshake to OUT until the stream is
/// quiet for --idle seconds (or --max-bytes are written, or the primary closes).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The primary: HOST:PORT, [IPV6]:PORT, :PORT (local host) or unix:PATH.
    #[arg(value_parser = parse_primary)]
    address: Address,
    /// Where to write the captured bytes (replaced if it exists).
    out: PathBuf,
    /// Ask for the transactions after this tid: 16 hex digits, or `zero` for all of them.
    #[arg(long, value_name = "TID|zero", default_value = "zero", value_parser = parse_tid)]
    start: Tid,
    /// The protocol id to send in the handshake.
    #[arg(long, value_name = "ID", default_value = "zrs2.0")]
    protocol: String,
    /// Stop once nothing has arrived for this many seconds.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_idle)]
    idle: Duration,
    /// Stop after writing this many bytes.
    #[arg(long, value_name = "N")]
    max_bytes: Option<u64>,
}

fn parse_primary(s: &str) -> Result<Address, String> {
    parse_address(s).map_err(|e| e.to_string())
}

fn parse_idle(s: &str) -> Result<Duration, String> {
    let d = parse_seconds(s)?;
    if d.is_zero() {
        return Err(format!("{s:?}: the idle time must be more than 0"));
    }
    Ok(d)
}

/// `zero`, or a tid as 16 hex digits.
fn parse_tid(s: &str) -> Result<Tid, String> {
    if s == "zero" {
        return Ok(Tid::ZERO);
    }
    let bad = || format!("{s:?}: expected `zero` or 16 hex digits");
    if s.len() != 16 || !s.is_ascii() {
        return Err(bad());
    }
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(Tid(bytes))
}

/// Why the capture ended.
enum End {
    Idle,
    Closed,
    MaxBytes,
}

pub fn run(args: Args) -> Result<(), String> {
    let (mut stream, peer) = connect(&args.address, DEFAULT_CONNECT_TIMEOUT)
        .map_err(|e| format!("connecting to {}: {e}", args.address))?;
    let handshake = hello(args.protocol.as_bytes(), args.start).concat();
    stream
        .write_all(&handshake)
        .map_err(|e| format!("sending the handshake to {peer}: {e}"))?;
    stream
        .set_read_timeout(Some(args.idle))
        .map_err(|e| format!("{peer}: {e}"))?;
    let file =
        File::create(&args.out).map_err(|e| format!("creating {}: {e}", args.out.display()))?;
    let mut out = BufWriter::new(file);
    let mut frames = FrameDecoder::new(u32::MAX);
    let mut messages = 0u64;
    let (written, end) = copy_stream(&mut stream, &mut out, args.max_bytes, |chunk| {
        frames.feed(chunk);
        while let Ok(Some(_)) = frames.next_frame_slice() {
            messages += 1;
        }
    })
    .map_err(|e| format!("capturing from {peer} into {}: {e}", args.out.display()))?;
    let _ = stream.shutdown();
    out.flush()
        .and_then(|()| out.get_ref().sync_all())
        .map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    let why = match end {
        End::Idle => format!("quiet for {} s", args.idle.as_secs_f64()),
        End::Closed => "the primary closed the connection".to_string(),
        End::MaxBytes => "--max-bytes reached".to_string(),
    };
    eprintln!(
        "zrs capture: {written} bytes, {messages} messages from {peer} into {} ({why})",
        args.out.display()
    );
    if frames.buffered() > 0 {
        eprintln!(
            "zrs capture: warning: the capture ends inside a message ({} bytes of it)",
            frames.buffered()
        );
    }
    Ok(())
}

/// Copies the stream into `out` until it is idle, closed, or `max` bytes are written.
fn copy_stream(
    stream: &mut Stream,
    out: &mut impl Write,
    max: Option<u64>,
    mut seen: impl FnMut(&[u8]),
) -> io::Result<(u64, End)> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        let room = max.map_or(buf.len() as u64, |m| (m - written).min(buf.len() as u64)) as usize;
        if room == 0 {
            return Ok((written, End::MaxBytes));
        }
        match stream.read(&mut buf[..room]) {
            Ok(0) => return Ok((written, End::Closed)),
            Ok(n) => {
                out.write_all(&buf[..n])?;
                seen(&buf[..n]);
                written += n as u64;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok((written, End::Idle))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tids() {
        assert_eq!(parse_tid("zero"), Ok(Tid::ZERO));
        assert_eq!(
            parse_tid("03c4f2a1b2c3d4e5"),
            Ok(Tid([0x03, 0xc4, 0xf2, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5]))
        );
        assert!(parse_tid("03c4").is_err());
        assert!(parse_tid("03c4f2a1b2c3d4eg").is_err());
        assert!(parse_tid("é3c4f2a1b2c3d4e").is_err());
    }
}
