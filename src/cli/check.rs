//! `zrs check`: zc.zrs's `zrs-nagios`, with the lag in transactions as well.
//!
//! It asks the secondary's status socket, then the primary's (ZEO's `ruok`; see
//! [`zrs::net::status`]: a ZEO server running zc.zrs answers it as a zrs node does), and
//! prints what `zrs-nagios` prints, line for line — `Secondary behind primary by 68.5678
//! seconds > 30`, `Secondary up to date.`, `Primary behind secondary by …`, the storages
//! one side lacks, and with `-m` the perf data `|'lag'=68.5678seconds` — with the same exit
//! codes: 0, 1 (beyond `-w`), 2 (beyond `-e`, a primary behind its secondary, a storage
//! missing on one side, a server that cannot be reached or usage). Like `zrs-nagios` it
//! needs at least one of `-m`, `-w`, `-e`.
//!
//! Where the primary is a zrs node, it also counts the transactions (and bytes) it holds
//! past the secondary's last one, added as `(N transactions, B bytes)` after the seconds
//! and, with `-m`, as `'lag_transactions'=N` next to `'lag'`. A ZEO server cannot count
//! them; then the output is exactly `zrs-nagios`'s.

use std::collections::BTreeMap;
use std::process::ExitCode;

use zrs::net::parse_address;
use zrs::net::status::{human_bytes, query, Reply};
use zrs::secondary::Address;
use zrs::Tid;

const USAGE: &str = "Usage: zrs check [options] PRIMARY_ADDRESS SECONDARY_ADDRESS";

/// Check replication lag as zc.zrs's `zrs-nagios` does: exit 0 (fine), 1 (warning), 2
/// (error); `Secondary behind primary by N seconds`, and the lag in transactions.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The primary's status address (a zrs node's `--status`, or its ZEO server).
    primary: String,
    /// The secondary's status address.
    secondary: String,
    /// Output replication lag as metric.
    #[arg(short = 'm', long = "output-metrics")]
    output_metrics: bool,
    /// Warning lag, in seconds.
    #[arg(short, long, value_name = "SECONDS", default_value = "0")]
    warning: u64,
    /// Error lag, in seconds.
    #[arg(short, long, value_name = "SECONDS", default_value = "0")]
    error: u64,
}

/// Runs the check and prints its report; the exit code is Nagios's.
pub fn run(args: Args) -> ExitCode {
    let (text, level) = check(&args);
    println!("{text}");
    ExitCode::from(level)
}

fn ask(address: &str, name: &str, lag: Option<Tid>) -> Result<Reply, String> {
    let parsed: Address = parse_address(address)
        .map_err(|e| format!("Can't connect to {name} at '{address}': {e}"))?;
    query(&parsed, lag).map_err(|e| format!("Can't connect to {name} at '{address}': {e}"))
}

/// Python's `repr` of a str storage id (ids are plain names).
fn repr(id: &str) -> String {
    zrs::repr::py_str_repr(id)
}

/// Python's `str(float)`: the shortest repr, with `.0` on integral values and exponents of
/// at least two digits.
fn py_float(x: f64) -> String {
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{x:e}");
        let (mantissa, exp) = s.split_once('e').expect("{:e} has an exponent");
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    if x.fract() == 0.0 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

/// The report and the exit level.
fn check(args: &Args) -> (String, u8) {
    if !(args.output_metrics || args.warning > 0 || args.error > 0) {
        return (format!("{USAGE}\n"), 2);
    }
    let secondary = match ask(&args.secondary, "secondary", None) {
        Ok(r) => r,
        Err(e) => return (e, 2),
    };
    let secondary_tids = match secondary.last_transactions() {
        Ok(t) => t,
        Err(e) => return (format!("secondary: {e}"), 2),
    };
    // Ask the primary once per secondary storage with that storage's tid (one question
    // when, as usual, there is one storage), so a zrs primary counts what lies past it.
    let mut primary: Option<Reply> = None;
    let mut behind: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let lag_questions: Vec<Option<Tid>> = if secondary_tids.is_empty() {
        vec![None]
    } else {
        secondary_tids.values().map(|t| Some(*t)).collect()
    };
    for (i, tid) in lag_questions.into_iter().enumerate() {
        let reply = match ask(&args.primary, "primary", tid) {
            Ok(r) => r,
            Err(e) => return (e, 2),
        };
        if let Some(id) = secondary_tids.keys().nth(i) {
            let after = &reply.storages.get(id).map(|s| &s["after"]);
            if let Some(after) = after {
                if let (Some(t), Some(b)) =
                    (after["transactions"].as_u64(), after["bytes"].as_u64())
                {
                    behind.insert(id.clone(), (t, b));
                }
            }
        }
        if !reply.is_zrs() {
            primary = Some(reply);
            break; // a ZEO server: one `ruok` says all it can
        }
        primary.get_or_insert(reply);
    }
    let primary = primary.expect("asked at least once");
    let primary_tids = match primary.last_transactions() {
        Ok(t) => t,
        Err(e) => return (format!("primary: {e}"), 2),
    };
    report(&primary_tids, &secondary_tids, &behind, args)
}

fn report(
    primary: &BTreeMap<String, Tid>,
    secondary: &BTreeMap<String, Tid>,
    behind: &BTreeMap<String, (u64, u64)>,
    args: &Args,
) -> (String, u8) {
    let mut output: Vec<String> = Vec::new();
    let mut metrics: Vec<String> = Vec::new();
    let mut level = 0u8;
    if primary.is_empty() && secondary.is_empty() {
        return ("No storages".into(), 1);
    }
    for (sid, ptid) in primary {
        let shown = if sid == "1" {
            String::new()
        } else {
            format!(" ({})", repr(sid))
        };
        let Some(stid) = secondary.get(sid) else {
            output.push(format!(
                "Storage {} in primary, but not secondary",
                repr(sid)
            ));
            level = 2;
            continue;
        };
        let delta = ptid.to_unix() - stid.to_unix();
        let transactions = behind.get(sid);
        if args.output_metrics {
            let suffix = if sid == "1" { "" } else { sid.as_str() };
            let mut metric = format!("'lag{suffix}'={delta:.4}seconds");
            if let Some((t, _)) = transactions {
                metric.push_str(&format!(" 'lag_transactions{suffix}'={t}"));
            }
            metrics.push(metric);
        }
        if delta < 0.0 {
            output.push(format!(
                "Primary{shown} behind secondary by {} seconds",
                py_float(delta)
            ));
            level = 2;
        } else if delta > 0.0 {
            let mut line = format!("Secondary{shown} behind primary by {delta:.4} seconds");
            if args.error > 0 && delta > args.error as f64 {
                line.push_str(&format!(" > {}", args.error));
                level = 2;
            } else if args.warning > 0 && delta > args.warning as f64 {
                line.push_str(&format!(" > {}", args.warning));
                level = level.max(1);
            }
            if let Some((t, b)) = transactions {
                line.push_str(&format!(" ({t} transactions, {})", human_bytes(*b as f64)));
            }
            output.push(line);
        } else {
            output.push(format!("Secondary{shown} up to date."));
        }
    }
    for sid in secondary.keys() {
        if !primary.contains_key(sid) {
            output.push(format!(
                "Storage {} in secondary, but not primary",
                repr(sid)
            ));
            level = 2;
        }
    }
    if !metrics.is_empty() {
        let first = metrics.remove(0);
        output[0].push('|');
        output[0].push_str(&first);
    }
    if !metrics.is_empty() {
        if output.len() == 1 {
            output.push(String::new());
        }
        let last = output.last_mut().expect("not empty");
        last.push_str("| ");
        last.push_str(&metrics.join("\n "));
    }
    (output.join("\n"), level)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(m: bool, w: u64, e: u64) -> Args {
        Args {
            primary: String::new(),
            secondary: String::new(),
            output_metrics: m,
            warning: w,
            error: e,
        }
    }

    fn tids(pairs: &[(&str, f64)]) -> BTreeMap<String, Tid> {
        pairs
            .iter()
            .map(|(id, secs)| (id.to_string(), Tid::from_unix(*secs)))
            .collect()
    }

    #[test]
    fn python_float_str() {
        assert_eq!(py_float(-60.0), "-60.0");
        assert_eq!(py_float(-68.56779999), "-68.56779999");
        assert_eq!(py_float(-1.3969838619232178e-08), "-1.3969838619232178e-08");
        assert_eq!(py_float(-0.5), "-0.5");
    }

    #[test]
    fn one_storage_as_zrs_nagios_prints_it() {
        let p = tids(&[("1", 1_700_000_100.0)]);
        let s = tids(&[("1", 1_700_000_000.0)]);
        let none = BTreeMap::new();
        let (text, level) = report(&p, &s, &none, &args(true, 0, 0));
        assert_eq!(
            (text.as_str(), level),
            (
                "Secondary behind primary by 100.0000 seconds|'lag'=100.0000seconds",
                0
            )
        );
        let (text, level) = report(&p, &s, &none, &args(false, 30, 0));
        assert_eq!(
            (text.as_str(), level),
            ("Secondary behind primary by 100.0000 seconds > 30", 1)
        );
        let (text, level) = report(&p, &s, &none, &args(true, 33, 44));
        assert_eq!(
            (text.as_str(), level),
            (
                "Secondary behind primary by 100.0000 seconds > 44|'lag'=100.0000seconds",
                2
            )
        );
        let (text, level) = report(&s, &p, &none, &args(false, 99, 0));
        assert_eq!(
            (text.as_str(), level),
            ("Primary behind secondary by -100.0 seconds", 2)
        );
        let (text, level) = report(&p, &p, &none, &args(false, 99, 0));
        assert_eq!((text.as_str(), level), ("Secondary up to date.", 0));
    }

    #[test]
    fn transactions_are_added_where_the_primary_counts_them() {
        let p = tids(&[("1", 1_700_000_100.0)]);
        let s = tids(&[("1", 1_700_000_000.0)]);
        let behind = BTreeMap::from([("1".to_string(), (12, 3456))]);
        let (text, level) = report(&p, &s, &behind, &args(true, 30, 0));
        assert_eq!(
            (text.as_str(), level),
            (
                "Secondary behind primary by 100.0000 seconds > 30 (12 transactions, 3.5 kB)\
                 |'lag'=100.0000seconds 'lag_transactions'=12",
                1
            )
        );
    }

    #[test]
    fn several_storages_as_zrs_nagios_prints_them() {
        // zc.zrs's nagios.rst: first is behind, second and 1 up to date, friday and
        // thursday on one side only.
        let p = tids(&[
            ("first", 1_700_000_068.5),
            ("second", 1_700_000_000.0),
            ("1", 1_700_000_000.0),
            ("friday", 1_700_000_000.0),
        ]);
        let s = tids(&[
            ("first", 1_700_000_000.0),
            ("second", 1_700_000_000.0),
            ("1", 1_700_000_000.0),
            ("thursday", 1_700_000_000.0),
        ]);
        let (text, level) = report(&p, &s, &BTreeMap::new(), &args(true, 33, 99));
        assert_eq!(
            text,
            "Secondary up to date.|'lag'=0.0000seconds\n\
             Secondary ('first') behind primary by 68.5000 seconds > 33\n\
             Storage 'friday' in primary, but not secondary\n\
             Secondary ('second') up to date.\n\
             Storage 'thursday' in secondary, but not primary| 'lagfirst'=68.5000seconds\n \
             'lagsecond'=0.0000seconds"
        );
        assert_eq!(level, 2);
    }

    #[test]
    fn no_options_is_usage() {
        assert_eq!(check(&args(false, 0, 0)), (format!("{USAGE}\n"), 2));
    }
}
