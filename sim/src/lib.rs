//! zrs-sim: the deterministic simulator for zrs: real primary and secondary nodes over a
//! virtual clock, network and disk.
//!
//! - [`reactor`]: the virtual clock and the queue of delayed calls.
//! - [`network`]: connection attempts, the connection, chunked delivery.
//! - [`blobfiles`]: what a blob directory holds, read from the directory.
//! - [`workload`]: a model of what a ZODB application commits on the primary.
//! - [`primary_node`]: the real primary over a real storage the workload commits into.
//! - [`clients`]: scripted clients of the primary node (`client …` steps).
//! - [`link`]: a connection's bytes in flight from the primary, and the stream faults.
//! - [`world`]: one run's world, and the dispatch of the secondary's actions.
//! - [`scenario`]: the `.scn` language; [`runner`] runs it into a transcript.
//! - [`transcript`]: log capture, formatted as zc.zrs's tests print logs.
//! - [`zodb`]: reading the secondary's root like a ZODB client.
//! - [`reference`]: differential runs against the real zc.zrs secondary.
//!
//! Nothing here reads the wall clock or the OS's randomness: a run is a function of its
//! scenario (and, for campaigns, of its seed).

pub mod blobfiles;
pub mod clients;
pub mod coverage;
pub mod disk;
pub mod fuzz;
pub mod link;
pub mod network;
pub mod primary_node;
pub mod reactor;
pub mod reference;
pub mod runner;
pub mod scenario;
pub mod storage;
pub mod transcript;
pub mod workload;
pub mod world;
pub mod zodb;
