//! The scenario language: parsing `.scn` files into steps.

pub mod literal;
pub mod parse;
pub mod step;

pub use parse::{Line, ParseError, Scenario};
pub use step::{ClientAction, Expr, Open, Outgoing, Step, StorageKind};
