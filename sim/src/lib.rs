//! zrs-sim
