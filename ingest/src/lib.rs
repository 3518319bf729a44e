//! Statistics ingest: FlexiAPI-compatible endpoints fed by Flexisip servers.

pub mod event;
