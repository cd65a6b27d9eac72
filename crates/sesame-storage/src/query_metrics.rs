//! Database query timings, by query and by the role of the server that
//! answered.

use sesame_domain::DbRole;
use std::time::Instant;

/// `sesame_db_query_duration_seconds{query, role}`: the query names are a
/// fixed set, so label values stay bounded.
pub(crate) fn observe(query: &'static str, role: DbRole, started: Instant) {
    metrics::histogram!(
        "sesame_db_query_duration_seconds",
        "query" => query,
        "role" => role.as_str()
    )
    .record(started.elapsed().as_secs_f64());
}

/// Records a query's duration when dropped, whichever way it returns.
pub(crate) struct QueryTimer {
    query: &'static str,
    role: DbRole,
    started: Instant,
}

impl QueryTimer {
    pub(crate) fn start(query: &'static str, role: DbRole) -> Self {
        Self {
            query,
            role,
            started: Instant::now(),
        }
    }
}

impl Drop for QueryTimer {
    fn drop(&mut self) {
        observe(self.query, self.role, self.started);
    }
}
