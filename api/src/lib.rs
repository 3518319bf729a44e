//! flexiapi-api (in progress)
