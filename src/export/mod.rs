//! export: enriched, semantic spans from rollout graphs, sent on over OTLP.
