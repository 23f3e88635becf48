//! Fault-injection campaigns: many seeded runs, each a generated scenario checked by
//! oracles after every step; every failure shrunk into a scenario file.
//!
//! - [`rng`]: the run's random stream, from (campaign seed, run index);
//! - [`swarm`]: which faults a run injects, and how often;
//! - [`generate`]: a run's steps, drawn from its stream while they execute;
//! - [`oracle`]: what must hold after every step;
//! - [`reader`]: the reader's-eye oracles: the replica's bytes as Python ZODB reads them;
//! - [`trace`]: the run's trace hash (the determinism check);
//! - [`shrink`]: a failing run's steps cut down while it still fails the same oracle;
//! - [`campaign`]: runs in parallel, aggregated in run order;
//! - [`summary`]: the campaign's summary, its file format and the merge of shards.

pub mod campaign;
pub mod execute;
pub mod generate;
pub mod oracle;
pub mod reader;
pub mod rng;
pub mod shrink;
pub mod summary;
pub mod swarm;
pub mod trace;
