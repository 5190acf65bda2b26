//! The integration tests, one binary: each file is a module (one link and one copy of the SDK's
//! generic code instead of one per file). Every test starts its own server, on its own data
//! directory and database; nothing is shared between tests but the process (the metrics
//! counters are global: tests read them as differences, never as absolute values).

#[macro_use]
mod common;

mod acl;
mod admin_api;
mod authcheck;
mod availability;
mod bad_input;
mod buckets_objects;
mod checksums;
mod cors;
mod crash;
mod group_commit;
mod inline;
mod integrity;
mod isolation;
mod lifecycle;
mod listing;
mod lookups;
mod metrics;
mod multipart;
mod multipart_scale;
mod pg_planning;
mod policy;
mod process;
mod protocol;
mod quota;
mod scale_out;
mod sigv4_forms;
mod storage;
mod tagging_versions;
mod timeouts;
mod tls;
mod versioning;
