//! flexiapi-auth (in progress)
