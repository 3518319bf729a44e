//! flexiapi-ingest (in progress)
