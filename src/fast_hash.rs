//! The hash maps and sets of the per-record paths (which rollout an id belongs to,
//! each rollout's bundle and state, the files a log entry touched, a rollout's shared
//! strings) and of the reducer's indexes.
//!
//! The standard library's maps hash with SipHash-1-3, which showed in profiles: a
//! few lookups per record, each hashing an id of 16 to 36 bytes. foldhash (the
//! default hasher of `hashbrown`) is several times faster on such keys and is still
//! seeded at random per process, so that ids chosen by a sender cannot be aimed at
//! one bucket. Build these maps with `default()`, not `new()`.

/// A `HashMap` hashed with foldhash.
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A `HashSet` hashed with foldhash.
pub type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
