//! `zrs status`: a Data.fs's state (`zrs status PATH`), or a running node's (`zrs status
//! --node ADDRESS`, through its status socket; see [`zrs::net::status`]).

use std::path::PathBuf;

use zrs::net::status::{parse_listen_address, query, tid_hex};
use zrs::secondary::Address;
use zrs::storage::{FileStorage, Options, ReadStorage};

/// Print a Data.fs's last transaction (tid and time), size, object and transaction counts,
/// and whether it ends cleanly; or ask a running node's status socket for its role, peers,
/// connection state, position, lag behind its primary and rates.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["path", "node"]))]
pub struct Args {
    /// The Data.fs (opened read-only: no lock, safe while a node writes it).
    path: Option<PathBuf>,
    /// A running node's status address (its `--status`): HOST:PORT or unix:PATH.
    #[arg(long, value_name = "ADDRESS", value_parser = parse_node)]
    node: Option<Address>,
    /// Print JSON instead of lines of text.
    #[arg(long)]
    json: bool,
}

fn parse_node(s: &str) -> Result<Address, String> {
    parse_listen_address(s).map_err(|e| e.to_string())
}

pub fn run(args: Args) -> Result<(), String> {
    if let Some(address) = &args.node {
        let reply = query(address, None).map_err(|e| format!("asking {address}: {e}"))?;
        if args.json || !reply.is_zrs() {
            let text = serde_json::to_string_pretty(&reply.storages).expect("JSON values print");
            println!("{text}");
        } else {
            for (id, s) in &reply.storages {
                println!("storage {id}:");
                print_fields(s, "  ");
            }
        }
        return Ok(());
    }
    let path = args.path.as_ref().expect("clap requires path or node");
    if !path.exists() {
        return Err(format!("{}: no such file", path.display()));
    }
    let storage = FileStorage::open(
        path,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .map_err(|e| format!("opening {}: {e}", path.display()))?;
    let reader = storage.file_reader();
    let last = storage.last_transaction();
    let tail = storage.recovered_tail();
    let status = serde_json::json!({
        "storage": path.display().to_string(),
        "last-transaction": tid_hex(last),
        "last-transaction-time": last.to_string(),
        "size": storage.size(),
        "objects": storage.len(),
        "transactions": reader.transaction_count(),
        "ends-cleanly": tail.is_none(),
        "damaged-tail": tail.map(|t| serde_json::json!({
            "at": t.pos, "bytes": t.len, "what": t.what,
        })),
    });
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).expect("JSON values print")
        );
    } else {
        print_fields(&status, "");
    }
    Ok(())
}

/// `key: value` lines, nested objects indented.
fn print_fields(value: &serde_json::Value, indent: &str) {
    let Some(object) = value.as_object() else {
        println!("{indent}{value}");
        return;
    };
    for (k, v) in object {
        match v {
            serde_json::Value::Object(_) => {
                println!("{indent}{k}:");
                print_fields(v, &format!("{indent}  "));
            }
            serde_json::Value::String(s) => println!("{indent}{k}: {s}"),
            serde_json::Value::Null => println!("{indent}{k}: -"),
            _ => println!("{indent}{k}: {v}"),
        }
    }
}
